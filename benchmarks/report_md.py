#!/usr/bin/env python
"""Print the Markdown tables of docs/performance.md from results/cpu.json and scaling.json.

    python benchmarks/report_md.py                 # both files from benchmarks/results/
    python benchmarks/report_md.py --dir /tmp/out  # elsewhere
    python benchmarks/report_md.py --write DIR     # each table (onnx.json's too) in a file

``python docs/generate.py performance`` writes the files the page includes this way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNITS = {"iteration": "per iteration", "epoch": "per epoch", "call": "per call"}
TITLES = {
    "W1": "W1: 784-10-10, full batch (60,000), gradient descent lr 0.1",
    "W2": "W2: 784-512-256-10, Adam lr 1e-3, batch 128, shuffled",
    "W3": "W3: 784-512-256-10, SGD momentum 0.9 lr 0.01, batch 1024, shuffled",
    "infer": "Inference: predict 60,000 rows with the W2 net",
    "W2f64": "W2 in float64",
}


def _s(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.1f} ms"


def _range(lo: float, hi: float) -> str:
    """``lo – hi`` with the unit written once where both share it: ``48.8 – 65.1 ms``."""
    a, b = _s(lo), _s(hi)
    if a.split()[1] == b.split()[1]:
        return f"{a.split()[0]} – {b}"
    return f"{a} – {b}"


def workload_table(w: str, wd: dict) -> str:
    """One workload's title and table: each implementation's time and ratios."""
    out = [f"**{TITLES.get(w, w)}** ({UNITS.get(wd['unit'], wd['unit'])})\n"]
    extra = w == "infer"
    head = "| implementation | median | min – max | × GEMM floor (IQR) | xpnet ÷ this |"
    sep = "| --- | ---: | ---: | ---: | ---: |"
    if extra:
        head += " rows/s |"
        sep += " ---: |"
    out += [head, sep]
    for name, e in wd["impls"].items():
        label = f"**{e['label']}**" if name == "xpnet" else e["label"]
        iqr = (f" ({e['x_floor_q1']:.2f} – {e['x_floor_q3']:.2f})"
               if "x_floor_q1" in e and name != "floor" else "")
        row = (f"| {label} | {_s(e['median'])} | {_range(e['min'], e['max'])} | "
               f"{e['x_floor']:.2f}{iqr} | {e['xpnet_over_this']:.2f} |")
        if extra:
            row += f" {e['rows_per_second']:,.0f} |"
        out.append(row)
    return "\n".join(out) + "\n"


def memory_table(mem: dict) -> str:
    """Peak resident memory above the baseline, one row per implementation."""
    out = ["| implementation (one W2 epoch, fresh process) | peak RSS above baseline | "
           "baseline (library + data) |", "| --- | ---: | ---: |"]
    for e in mem.values():
        if "peak_above_baseline_mib" in e:
            out.append(f"| {e['label']} | {e['peak_above_baseline_mib']:.1f} MiB | "
                       f"{e['baseline_mib']:.0f} MiB |")
    return "\n".join(out) + "\n"


def targets_table(targets: list) -> str:
    """Each target, the value now, and whether it is met."""
    out = ["| target | now | met |", "| --- | --- | --- |"]
    for t in targets:
        out.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def long_run_table(r: dict) -> str:
    """Memory over a long ``fit`` (``results/memory.json`` of bench_memory.py)."""
    first = r["results"][0]
    warm, epochs = first["warmup_epochs"], first["epochs"]
    out = [f"| Scenario | RSS after epoch {warm} | Peak RSS after epoch {warm} | "
           f"Peak RSS after epoch {epochs} | Peak growth | RSS trend after epoch {warm} |",
           "| --- | --- | --- | --- | --- | --- |"]
    for e in r["results"]:
        out.append(f"| {e['scenario']} | {e['rss_after_warmup_mib']:.1f} MiB | "
                   f"{e['peak_rss_after_warmup_mib']:.1f} MiB | {e['peak_rss_end_mib']:.1f} MiB | "
                   f"{e['peak_growth_pct']:.2f} % | "
                   f"{e['rss_slope_kib_per_epoch']:+.2f} KiB/epoch |")
    return "\n".join(out) + "\n"


def cpu_tables(r: dict) -> str:
    out = [workload_table(w, wd) for w, wd in r["workloads"].items()]
    if r.get("memory"):
        out.append(memory_table(r["memory"]))
    if r.get("targets"):
        out.append(targets_table(r["targets"]))
    return "\n".join(out)


def tables(d: Path) -> dict[str, str]:
    """Every table of docs/performance.md from the results in ``d``: name -> Markdown.

    The names: each workload of cpu.json (``W1``, ``W2``, ``W3``, ``infer``, ``W2f64``),
    ``memory``, ``targets``, ``scaling``, ``onnx``, ``bounds`` (bench_bounds.py) and
    ``memory-long-run`` (for docs/reliability.md), where the files hold them.
    """
    found: dict[str, str] = {}
    if (d / "cpu.json").exists():
        r = json.loads((d / "cpu.json").read_text())
        found.update({w: workload_table(w, wd) for w, wd in r["workloads"].items()})
        if r.get("memory"):
            found["memory"] = memory_table(r["memory"])
        if r.get("targets"):
            found["targets"] = targets_table(r["targets"])
    if (d / "scaling.json").exists():
        found["scaling"] = scaling_table(json.loads((d / "scaling.json").read_text()))
    if (d / "memory.json").exists():
        found["memory-long-run"] = long_run_table(json.loads((d / "memory.json").read_text()))
    if (d / "onnx.json").exists():
        from bench_onnx import table

        found["onnx"] = table(json.loads((d / "onnx.json").read_text())) + "\n"
    if (d / "bounds.json").exists():
        from bench_bounds import table as bounds_table

        found["bounds"] = bounds_table(json.loads((d / "bounds.json").read_text()))
    return found


def scaling_table(r: dict) -> str:
    out = ["| sweep | net | batch | xpnet per step | GEMM floor per step | ratio |",
           "| --- | --- | ---: | ---: | ---: | ---: |"]
    for s, pts in r["sweeps"].items():
        for p in pts:
            out.append(f"| {s} = {p['x']} | {'-'.join(map(str, p['sizes']))} | {p['batch']} | "
                       f"{p['xpnet_step'] * 1e3:.2f} ms | {p['floor_step'] * 1e3:.2f} ms | "
                       f"{p['ratio']:.2f} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=str(HERE / "results"))
    p.add_argument("--write", metavar="FOLDER",
                   help="write each table to FOLDER/<name>.md instead of printing them")
    a = p.parse_args(argv)
    d = Path(a.dir)
    if a.write:
        out = Path(a.write)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in tables(d).items():
            (out / f"{name}.md").write_text(text)
        return 0
    if (d / "cpu.json").exists():
        r = json.loads((d / "cpu.json").read_text())
        env = r["env"]
        print(f"<!-- cpu.json: {env['date']}, xpnet {env.get('xpnet_git')}, {env['cpu']}, "
              f"{env['blas']} -->\n")
        print(cpu_tables(r))
    if (d / "scaling.json").exists():
        print(scaling_table(json.loads((d / "scaling.json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
