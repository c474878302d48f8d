#!/usr/bin/env python
"""Where one xpnet training epoch spends its time (CPU, numpy backend).

Runs one epoch of a workload from ``bench_cpu.py`` (default W2: 784-512-256-10,
Adam, batch 128, 60,000 rows) with timers wrapped around xpnet's building
blocks (Dense/activation forward and backward, the loss, the optimizer update,
the batch ``take``, the accuracy count), next to the GEMM floor of the same
epoch, and prints a breakdown. ``Dense`` time minus the floor is the non-GEMM
work inside the layers (bias add, bias gradient, copies). ``--cprofile`` also
prints cProfile's top functions by own time.

The timers are installed on the classes in this process only; hooks that never
fire (a method renamed or fused away) are listed, and their time lands in
"fit loop, rest".
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Breakdown of one xpnet training epoch on CPU.")
    p.add_argument("--workload", default="W2", choices=("W1", "W2", "W3", "W2f64"))
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cprofile", action="store_true", help="also print cProfile's top 25")
    p.add_argument("--max-background", type=float, default=0.3,
                   help="wait (up to --max-wait s) until other processes use fewer cores")
    p.add_argument("--max-wait", type=float, default=120.0)
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if ARGS is not None:
    from _common import pin_threads_env

    pin_threads_env(ARGS.threads)

import functools  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    LoadMeter,
    blas_line,
    environment,
    limit_threads,
    load_data,
    wait_quiet,
)
from bench_cpu import SPECS, GemmFloor  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
HOOKED: list[str] = []


def _wrap(owner, attr, label):
    fn = getattr(owner, attr, None)
    if fn is None:
        return False

    @functools.wraps(fn)
    def timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[label] += time.perf_counter() - t0
            CALLS[label] += 1

    setattr(owner, attr, timed)
    return True


def install(xn, model, opt) -> list[str]:
    missing = []
    hooks = [
        (xn.layers.Dense, "forward", "Dense.forward (X@W + b)"),
        (xn.layers.Dense, "backward", "Dense.backward (A.T@dZ, sum, dZ@W.T)"),
        (xn.layers.ReLU, "forward", "ReLU forward"),
        (xn.layers.ReLU, "backward", "ReLU backward"),
        (type(model.loss), "value_and_grad", "loss value_and_grad"),
        (type(opt), "update", "optimizer.update"),
        (type(opt), "update_", "optimizer.update_ (in place)"),
        (type(model), "_accuracy_count", "accuracy count"),
        (model.backend.xp, "take", "xp.take (batch gather)"),
    ]
    for owner, attr, label in hooks:
        if _wrap(owner, attr, label):
            HOOKED.append(label)
        else:
            missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
    return missing


def main(args) -> int:
    import xpnet as xn

    ctl = limit_threads(args.threads)  # noqa: F841
    env = environment(args.threads)
    print(f"BLAS: {blas_line(env)}   xpnet {env['xpnet']} ({env['xpnet_git']})")
    spec = SPECS[args.workload]
    dtype = "float64" if args.workload == "W2f64" else "float32"
    X, y, source = load_data(args.n, "float32")
    if dtype == "float64":
        X = X.astype(np.float64)
    print(f"data: {source}")
    model = xn.MLP(spec["sizes"], backend="numpy", dtype=dtype, seed=0)
    opt = {"adam": lambda: xn.Adam(lr=spec["lr"]),
           "momentum": lambda: xn.SGD(lr=spec["lr"], momentum=0.9),
           "gd": lambda: xn.SGD(lr=spec["lr"])}[spec["opt"]]()
    floor = GemmFloor(spec["sizes"], X, spec["batch"], X.dtype)
    floor.warmup()
    model.fit(X[:4096], y[:4096], epochs=1, batch_size=spec["batch"], optimizer=opt, verbose=0)
    if args.max_background > 0:
        wait_quiet(args.max_background, args.max_wait)
    floor_s = min(floor.run() for _ in range(2))
    missing = install(xn, model, opt)
    TIMES.clear()
    CALLS.clear()
    prof = None
    if args.cprofile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    if args.max_background > 0:
        wait_quiet(args.max_background, args.max_wait)
    t0 = time.perf_counter()
    with LoadMeter() as load:
        h = model.fit(X, y, epochs=1, batch_size=spec["batch"], optimizer=opt, verbose=0)
    wall = time.perf_counter() - t0
    if prof is not None:
        prof.disable()
    epoch = h.history["seconds"][0]
    steps = h.params["steps_per_epoch"]
    print(f"\n{args.workload}: {'-'.join(map(str, spec['sizes']))}, {spec['opt']}, batch "
          f"{spec['batch'] or args.n}, {steps} steps, {dtype}")
    print(f"fit wall {wall:.3f} s; epoch (history) {epoch:.3f} s; GEMM floor {floor_s:.3f} s "
          f"-> {epoch / floor_s:.2f}x floor")
    print(f"\n{'part':<40}{'seconds':>9}{'% epoch':>9}{'calls':>8}{'µs/call':>9}")
    accounted = 0.0
    for label, t in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        accounted += t
        print(f"{label:<40}{t:>9.3f}{100 * t / epoch:>8.1f}%{CALLS[label]:>8}"
              f"{1e6 * t / CALLS[label]:>9.1f}")
    rest = epoch - accounted
    label = "fit loop, rest (finiteness, sums, python)"
    print(f"{label:<40}{rest:>9.3f}{100 * rest / epoch:>8.1f}%")
    dense = sum(t for k, t in TIMES.items() if k.startswith("Dense"))
    print(f"\nGEMM floor of this epoch: {floor_s:.3f} s ({100 * floor_s / epoch:.1f}% of the "
          f"epoch); Dense time above the floor (bias, bias grad, copies, overhead): "
          f"{dense - floor_s:.3f} s")
    print(f"non-GEMM total: {epoch - floor_s:.3f} s ({100 * (epoch - floor_s) / epoch:.1f}%)")
    if missing:
        print(f"hooks that did not attach: {', '.join(missing)}")
    idle = [lb for lb in HOOKED if lb not in CALLS]
    if idle:
        print(f"hooks that never fired: {', '.join(idle)}")
    if load.foreign is not None:
        print(f"other processes used {load.foreign:.2f} cores during the epoch"
              + (" (the numbers are disturbed)" if load.foreign > 0.3 else ""))
    if prof is not None:
        import pstats

        print()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
