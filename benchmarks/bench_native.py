#!/usr/bin/env python
"""xpnet on PyTorch and on JAX against the same W2 job written natively in that library.

W2's shape (784-512-256-10, Adam lr 1e-3, batch 128, float32) on ``--n`` seeded random
rows (default 60,000, W2's own: there one epoch's ``fit`` compiles the update where numba
is installed, as a W2 fit does; ``XPNET_JIT=0`` times the NumPy update instead, and at
12,800 rows an epoch is below the compile threshold):
``model.fit`` with ``backend="torch"`` beside PyTorch eager with
``torch.optim.Adam``, and ``backend="jax"`` beside a ``jax.jit``'d optax step (one call per
batch, parameters donated), the pairs alternating in one process, ``--repeats`` epochs
each (default 5). Prints each median epoch with min-max and the median of the paired
ratios xpnet / native.

    python benchmarks/bench_native.py                  # torch and jax
    python benchmarks/bench_native.py --backends torch --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def compare(name, X, y, args):
    """One backend: xpnet's epoch and the native one, alternating; prints the medians."""
    from bench_cpu import JaxRunner, TorchRunner

    import xpnet as xn

    sizes = [784, 512, 256, 10]
    be = xn.get_backend(name)
    Xb, yb = be.asarray(X), be.asarray(y)
    model = xn.MLP(sizes, backend=be, seed=0)
    opt = xn.Adam(lr=1e-3)
    native = (TorchRunner(sizes, X, y, 128, "adam", 1e-3, "float32", threads=args.threads)
              if name == "torch" else JaxRunner(sizes, X, y, 128, "adam", 1e-3, "float32"))

    def xpnet_epoch():
        h = model.fit(Xb, yb, epochs=1, batch_size=128, optimizer=opt, verbose=0)
        return h.history["seconds"][0]

    def native_epoch():
        t0 = time.perf_counter()
        native.loss = native._epoch(native.X, native.y)
        return time.perf_counter() - t0

    xpnet_epoch()
    native_epoch()  # warm-up: compiles, allocates
    times: dict[str, list[float]] = {"xpnet": [], "native": []}
    for r in range(args.repeats):
        order = [("xpnet", xpnet_epoch), ("native", native_epoch)]
        for label, f in order if r % 2 == 0 else order[::-1]:
            times[label].append(f())
    ratio = statistics.median(a / b for a, b in zip(times["xpnet"], times["native"],
                                                    strict=True))
    for label, t in times.items():
        print(f"{name:6} {label:7} median {statistics.median(t):.3f} s "
              f"({min(t):.3f}-{max(t):.3f})")
    print(f"{name:6} xpnet / native: {ratio:.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="torch,jax")
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import limit_threads, pin_threads_env

    pin_threads_env(args.threads)
    limit_threads(args.threads)
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.random((args.n, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.n).astype(np.int64)
    for name in args.backends.split(","):
        compare(name, X, y, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
