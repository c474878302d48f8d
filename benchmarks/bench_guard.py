#!/usr/bin/env python
"""What the non-finite guard's update check costs on the host, on W2, interleaved.

W2 is 784-512-256-10, Adam lr 1e-3, batch 128, float32, 60,000 MNIST-shaped rows (the
real t10k images tiled, or seeded random data), one process, one model, one optimizer.
Two variants of the guard's update, for the compiled (numba) update and for the NumPy
ufunc update (``XPNET_JIT=0``):

  unchecked  the update applied in place (``update_``), as before the guard covered it
             (the loss and the gradients are checked first in both)
  checked    ``update_(check_finite=True)``, what ``fit`` does now: the update written
             into a second set of arrays, checked chunk by chunk, swapped in

Two measurements:

  steps   the variants alternate step by step inside real W2 epochs; each update call
          is timed (``perf_counter``), so the rest of the step, the same for both, adds
          no noise. Median, min and max per variant over all steps.
  epochs  whole W2 epochs (``history["seconds"]``), the variants alternating epoch by
          epoch, the order rotating each pair; before each epoch the script waits (up
          to ``--max-wait`` s) until other processes use fewer than ``--max-background``
          cores. Median, min, max, and the median of the paired differences.

    python benchmarks/bench_guard.py --threads 2 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="epoch pairs per path (default 7)")
    p.add_argument("--step-epochs", type=int, default=2,
                   help="epochs of step-by-step alternation per path (default 2)")
    p.add_argument("--n", type=int, default=60000, help="rows (default 60,000)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    p.add_argument("--paths", default="jit,ufunc", help="jit, ufunc or both (default)")
    p.add_argument("--max-background", type=float, default=0.5,
                   help="wait before each epoch until other processes use fewer cores")
    p.add_argument("--max-wait", type=float, default=30.0, help="longest wait (s)")
    return p.parse_args(argv)


def _stats(name: str, values: list[float], unit: float, suffix: str) -> str:
    return (f"{name:<10} median {statistics.median(values) * unit:8.3f}{suffix}  "
            f"min {min(values) * unit:8.3f}  max {max(values) * unit:8.3f}  (n={len(values)})")


def main(args) -> int:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import limit_threads, load_data, pin_threads_env, wait_quiet

    pin_threads_env(args.threads)
    limit_threads(args.threads)
    import xpnet as xn
    from xpnet.optimizers import Optimizer

    X, y, source = load_data(args.n, "float32")
    real_update_ = Optimizer.update_
    times: dict[str, list[float]] = {}
    mode = {"alternate": False, "variant": "checked", "i": 0}

    def update_(self, params, grads, state, *, check_finite=False, spare=None):
        if mode["alternate"]:
            mode["i"] += 1
            mode["variant"] = "checked" if mode["i"] % 2 else "unchecked"
        checked = mode["variant"] == "checked"
        t0 = time.perf_counter()
        out = real_update_(self, params, grads, state, check_finite=checked, spare=spare)
        times.setdefault(mode["variant"], []).append(time.perf_counter() - t0)
        return out

    Optimizer.update_ = update_
    print(f"data: {source}; {args.threads} BLAS threads; W2 epochs of {args.n} rows")
    for path in args.paths.split(","):
        os.environ["XPNET_JIT"] = "1" if path == "jit" else "0"
        if path == "jit":
            import numba  # noqa: F401  (imported: every fit uses the compiled update)
        m = xn.MLP([784, 512, 256, 10], backend="numpy", seed=0)
        opt = xn.Adam(lr=1e-3)
        fit = dict(epochs=1, batch_size=128, optimizer=opt, verbose=0)
        for variant in ("unchecked", "checked"):  # warm-up: compile, fault the memory in
            mode.update(alternate=False, variant=variant)
            m.fit(X, y, **fit)
        times.clear()
        mode.update(alternate=True)
        for _ in range(args.step_epochs):
            m.fit(X, y, **fit)
        for variant in ("unchecked", "checked"):
            print(f"{path:<6} steps   " + _stats(variant, times[variant], 1e3, " ms"))
        d = statistics.median(times["checked"]) - statistics.median(times["unchecked"])
        print(f"{path:<6} steps   checked - unchecked: {d * 1e3:+.3f} ms per step")
        epochs: dict[str, list[float]] = {"unchecked": [], "checked": []}
        mode.update(alternate=False)
        for rep in range(args.repeats):
            for variant in (("unchecked", "checked") if rep % 2 == 0 else
                            ("checked", "unchecked")):
                mode["variant"] = variant
                wait_quiet(args.max_background, args.max_wait)
                epochs[variant].append(m.fit(X, y, **fit).history["seconds"][0])
        for variant, t in epochs.items():
            print(f"{path:<6} epochs  " + _stats(variant, t, 1.0, " s "))
        diffs = [c - u for c, u in zip(epochs["checked"], epochs["unchecked"], strict=True)]
        base = statistics.median(epochs["unchecked"])
        print(f"{path:<6} epochs  checked - unchecked, paired: median "
              f"{statistics.median(diffs):+.3f} s ({statistics.median(diffs) / base * 100:+.1f} "
              f"%), min {min(diffs):+.3f}, max {max(diffs):+.3f}")
    Optimizer.update_ = real_update_
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
