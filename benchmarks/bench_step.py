#!/usr/bin/env python
"""One number per process: the W2 training step of the xpnet on PYTHONPATH, in ms
(``--tiny``: the 32-16-16-10 net's step at batch 8, in us).

W2 is 784-512-256-10, Adam lr 1e-3, batch 128, float32, here on seeded random rows
(``--n``, default 19,200). The process warms up on 1,280 rows, trains ``--epochs``
epochs (default 3) and prints the fastest epoch's time per step (``history["seconds"]``,
which leaves out fit's one-off checks). Meant to be run in alternating processes
against two trees, so that both see the same machine state, e.g.::

    git worktree add ../before bf84aed
    for i in 1 2 3 4 5 6; do for tree in ../before .; do
        echo "$tree $(PYTHONPATH=$tree python benchmarks/bench_step.py)"
    done; done

``XPNET_JIT=0`` or ``1`` selects the NumPy ufunc or the compiled update.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=19200, help="rows (default 19,200)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (default 3)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    p.add_argument("--tiny", action="store_true",
                   help="the tiny net instead: 32-16-16-10, batch 8 (prints us per step)")
    args = p.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import limit_threads, pin_threads_env

    pin_threads_env(args.threads)
    limit_threads(args.threads)
    import numpy as np

    import xpnet as xn

    if os.environ.get("XPNET_JIT") == "1":
        import numba  # noqa: F401  (loaded: every fit then uses the compiled update)
    sizes, batch = ([32, 16, 16, 10], 8) if args.tiny else ([784, 512, 256, 10], 128)
    rng = np.random.default_rng(0)
    X = rng.random((args.n, sizes[0]), dtype=np.float32)
    y = rng.integers(0, 10, args.n)
    model = xn.MLP(sizes, backend="numpy", seed=0)
    model.fit(X[:1280], y[:1280], epochs=1, batch_size=batch, verbose=0)
    seconds = []
    for _ in range(args.epochs):
        h = model.fit(X, y, epochs=1, batch_size=batch, optimizer=xn.Adam(1e-3), verbose=0)
        seconds.append(h.history["seconds"][0])
    steps = -(-args.n // batch)
    print(f"{min(seconds) / steps * (1e6 if args.tiny else 1e3):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
