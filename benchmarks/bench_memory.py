"""Memory over a long run: does the resident set stay flat over hundreds of epochs?

Trains the default digits net (``xn.datasets.load("digits")``, ``MLP([64, 512, 256, 10])``,
Adam, batch 128) for many epochs in one ``fit`` and samples, after every epoch, the
process's current RSS (``/proc/self/statm``) and its peak RSS (``getrusage``'s
``ru_maxrss``). Each scenario runs in a fresh subprocess, so peaks do not mix:

- ``plain``: ``fit`` with no callbacks;
- ``callbacks``: validation data, ``EarlyStopping`` (patience larger than the run, best
  weights kept), ``CSVLogger`` and ``ModelCheckpoint`` writing every epoch.

The figure of merit is the growth of the peak RSS from the end of the warm-up epochs
(default 5) to the end of the run; the target is < 5 %. The slope of the current RSS
over the post-warm-up epochs (a leak shows as a steady climb) is reported too.

Usage::

    python benchmarks/bench_memory.py                 # 300 epochs per scenario
    python benchmarks/bench_memory.py --epochs 1000   # longer
    python benchmarks/bench_memory.py --quick         # 30 epochs, a smoke run

Writes ``benchmarks/results/memory.json`` (``--out DIR`` to change) and prints a table.
Linux only (``/proc/self/statm``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import environment, pin_threads_env, write_json  # noqa: E402

TARGET_PCT = 5.0
SCENARIOS = ("plain", "callbacks")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_scenario(name: str, epochs: int, warmup: int) -> dict:
    """Train in this process and return the per-epoch memory samples."""
    import numpy as np

    import xpnet as xn

    ds = xn.datasets.load("digits")
    X, y = ds.x_train, ds.y_train
    model = xn.MLP([64, 512, 256, 10], backend="numpy", seed=0)
    rss, maxrss, seconds = [], [], []

    class Sampler(xn.Callback):
        def on_epoch_end(self, epoch, logs):
            rss.append(_rss_bytes())
            maxrss.append(_maxrss_bytes())
            seconds.append(logs["seconds"])

    baseline = {"rss": _rss_bytes(), "maxrss": _maxrss_bytes()}
    with tempfile.TemporaryDirectory(prefix="xpnet-bench-memory-") as tmp:
        callbacks: list = []
        kwargs: dict = {}
        if name == "callbacks":
            callbacks = [
                xn.EarlyStopping(monitor="val_loss", patience=10 * epochs,
                                 restore_best_weights=True),
                xn.CSVLogger(Path(tmp) / "log.csv"),
                xn.ModelCheckpoint(Path(tmp) / "last.safetensors"),
            ]
            kwargs["validation_data"] = (ds.x_test, ds.y_test)
        t0 = time.perf_counter()
        history = model.fit(X, y, epochs=epochs, batch_size=128, optimizer=xn.Adam(lr=1e-3),
                            seed=0, verbose=0, callbacks=[*callbacks, Sampler()], **kwargs)
        wall = time.perf_counter() - t0
        files = sorted(p.name for p in Path(tmp).iterdir())
    w = warmup - 1  # index of the last warm-up epoch
    after = np.array(rss[w:], dtype=np.float64)
    slope = float(np.polyfit(np.arange(after.size), after, 1)[0]) if after.size > 1 else 0.0
    peak_growth = 100.0 * (maxrss[-1] - maxrss[w]) / maxrss[w]
    rss_growth = 100.0 * (max(rss[w:]) - rss[w]) / rss[w]
    return {
        "scenario": name,
        "epochs": len(history.epoch),
        "warmup_epochs": warmup,
        "wall_seconds": wall,
        "median_epoch_seconds": float(np.median(seconds)),
        "final_loss": history.history["loss"][-1],
        "final_val_accuracy": history.history.get("val_accuracy", [None])[-1],
        "baseline_rss_mib": baseline["rss"] / 2**20,
        "rss_after_warmup_mib": rss[w] / 2**20,
        "max_rss_after_warmup_mib": max(rss[w:]) / 2**20,
        "rss_end_mib": rss[-1] / 2**20,
        "peak_rss_after_warmup_mib": maxrss[w] / 2**20,
        "peak_rss_end_mib": maxrss[-1] / 2**20,
        "peak_growth_pct": peak_growth,
        "rss_growth_pct": rss_growth,
        "rss_slope_kib_per_epoch": slope / 1024,
        "files_left": files,
        "rss_mib": [r / 2**20 for r in rss],
        "maxrss_mib": [r / 2**20 for r in maxrss],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=5, help="epochs before the reference sample")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--quick", action="store_true", help="30 epochs (smoke run)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--scenario", help=argparse.SUPPRESS)  # internal: run one, print JSON
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 30
    if not 1 <= args.warmup < args.epochs:
        p.error(f"--warmup must be in [1, --epochs), got {args.warmup}")

    if args.scenario:
        pin_threads_env(args.threads)
        print(json.dumps(run_scenario(args.scenario, args.epochs, args.warmup)))
        return 0

    pin_threads_env(args.threads)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    bad = set(names) - set(SCENARIOS)
    if bad:
        p.error(f"unknown scenarios {sorted(bad)}; choose from {', '.join(SCENARIOS)}")
    results = []
    for name in names:
        cmd = [sys.executable, __file__, "--scenario", name, "--epochs", str(args.epochs),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
        print(f"running {name}: {args.epochs} epochs ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"\n{'scenario':<10} {'epochs':>6} {'RSS@warm-up':>12} {'peak@warm-up':>13} "
          f"{'peak@end':>9} {'growth':>7} {'slope':>13} {'s/epoch':>8}")
    ok = True
    for r in results:
        ok &= r["peak_growth_pct"] < TARGET_PCT
        print(f"{r['scenario']:<10} {r['epochs']:>6} {r['rss_after_warmup_mib']:>9.1f} MiB "
              f"{r['peak_rss_after_warmup_mib']:>9.1f} MiB {r['peak_rss_end_mib']:>5.1f} MiB "
              f"{r['peak_growth_pct']:>6.2f}% {r['rss_slope_kib_per_epoch']:>7.2f} KiB/ep "
              f"{r['median_epoch_seconds']:>8.4f}")
    print(f"target: peak RSS growth after epoch {args.warmup} < {TARGET_PCT}% -> "
          f"{'PASS' if ok else 'FAIL'}")
    record = {
        "benchmark": "memory",
        "command": " ".join(["python benchmarks/bench_memory.py", *(argv or sys.argv[1:])]),
        "target_peak_growth_pct": TARGET_PCT,
        "passed": ok,
        "environment": environment(args.threads),
        "results": results,
    }
    path = args.out / "memory.json"
    write_json(path, record)
    print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
