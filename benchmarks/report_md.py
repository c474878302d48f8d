#!/usr/bin/env python
"""Print the Markdown tables of docs/performance.md from results/cpu.json and scaling.json.

    python benchmarks/report_md.py                 # both files from benchmarks/results/
    python benchmarks/report_md.py --dir /tmp/out  # elsewhere
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


def cpu_tables(r: dict) -> str:
    out = []
    for w, wd in r["workloads"].items():
        out.append(f"**{TITLES.get(w, w)}** ({UNITS.get(wd['unit'], wd['unit'])})\n")
        extra = w == "infer"
        head = ("| implementation | median | min – max | × GEMM floor | × floor, IQR | "
                "xpnet ÷ this |")
        sep = "| --- | ---: | ---: | ---: | ---: | ---: |"
        if extra:
            head += " rows/s |"
            sep += " ---: |"
        out += [head, sep]
        for name, e in wd["impls"].items():
            label = f"**{e['label']}**" if name == "xpnet" else e["label"]
            iqr = (f"{e['x_floor_q1']:.2f} – {e['x_floor_q3']:.2f}"
                   if "x_floor_q1" in e and name != "floor" else "")
            row = (f"| {label} | {_s(e['median'])} | {_s(e['min'])} – {_s(e['max'])} | "
                   f"{e['x_floor']:.2f} | {iqr} | {e['xpnet_over_this']:.2f} |")
            if extra:
                row += f" {e['rows_per_second']:,.0f} |"
            out.append(row)
        out.append("")
    mem = r.get("memory")
    if mem:
        out += ["| implementation (one W2 epoch, fresh process) | peak RSS above baseline | "
                "baseline (library + data) |", "| --- | ---: | ---: |"]
        for e in mem.values():
            if "peak_above_baseline_mib" in e:
                out.append(f"| {e['label']} | {e['peak_above_baseline_mib']:.1f} MiB | "
                           f"{e['baseline_mib']:.0f} MiB |")
        out.append("")
    if r.get("targets"):
        out += ["| target | now | met |", "| --- | --- | --- |"]
        for t in r["targets"]:
            out.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
        out.append("")
    return "\n".join(out)


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
    a = p.parse_args(argv)
    d = Path(a.dir)
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
