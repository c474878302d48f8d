"""`xpnet train` on the bundled digits with its defaults, once per backend, interleaved.

Each run is a fresh `xpnet train --backend B --no-save --json --quiet` process (the
default experiment: 64-512-256-10, dropout 0.3, Adam with a cosine schedule, batch 64,
20 epochs), so every backend pays its own imports; the backends take turns, repeat after
repeat, so that a busy spell of a shared machine hits them alike. The script reports, per
backend, the median training time (``train_seconds``: the fit alone) and the whole
command's wall time, with min-max, and the ratio of the medians to NumPy's.

    python benchmarks/bench_backends.py                       # numpy, jax; 5 repeats
    python benchmarks/bench_backends.py --backends numpy,jax,torch,array_api_strict

Writes ``results/backends.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_once(backend: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "xpnet", "train", "--backend", backend, "--no-save", "--json",
           "--quiet", *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {"train_seconds": summary["train_seconds"], "wall_seconds": wall,
            "test_accuracy": summary["test"]["accuracy"]}


def describe(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,jax")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("extra", nargs="*", help="more `xpnet train` flags")
    args = ap.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    samples: dict[str, list[dict]] = {b: [] for b in backends}
    for r in range(args.repeats):
        for b in backends:
            samples[b].append(run_once(b, args.extra))
            print(f"repeat {r + 1} {b}: {samples[b][-1]}", file=sys.stderr)
    base = statistics.median(s["train_seconds"] for s in samples[backends[0]])
    print(f"| backend | fit (median [min-max]) | command wall time | fit vs {backends[0]} "
          "| test accuracy |")
    print("|---|---|---|---|---|")
    for b in backends:
        fit = [s["train_seconds"] for s in samples[b]]
        wall = [s["wall_seconds"] for s in samples[b]]
        acc = statistics.median(s["test_accuracy"] for s in samples[b])
        print(f"| `{b}` | {describe(fit)} | {describe(wall)} | "
              f"{statistics.median(fit) / base:.1f}x | {acc:.4f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "backends.json").write_text(json.dumps(
        {"backends": backends, "repeats": args.repeats, "extra": args.extra,
         "cpus": os.cpu_count(), "samples": samples}, indent=1) + "\n")


if __name__ == "__main__":
    main()
