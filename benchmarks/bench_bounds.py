#!/usr/bin/env python
"""How much of a W2 epoch the update check and the loop around the math cost, side by side.

W2 is 784-512-256-10, Adam lr 1e-3, batch 128, float32, 60,000 MNIST-shaped rows (the
real t10k images tiled, or seeded random data). Seven implementations, interleaved in
one process, each run ``--repeats`` times (one epoch a run):

  floor                   the GEMMs alone (bench_cpu.py's GEMM floor)
  numpy                   the clean hand-written NumPy loop of bench_cpu.py
  numpy_compiled          that loop with its Adam replaced by xpnet's compiled
                          (numba) update, in place and unchecked: about the least a
                          Python loop that does W2's math pays
  xpnet, xpnet_jit        model.fit with the NumPy ufunc and the compiled update
  xpnet_unchecked,        the same with the guard's update check switched off (the
  xpnet_jit_unchecked     loss and the gradients are still checked): the update
                          applied in place, as before the guard covered it

Each run's time is divided by the floor's time in the same round, and by the NumPy
loop's; the table gives the median and the min - max of those per-round ratios.

    python benchmarks/bench_bounds.py --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = {
    "floor": "GEMM floor",
    "numpy": "NumPy clean loop",
    "numpy_compiled": "NumPy loop + compiled update, unchecked",
    "xpnet": "xpnet",
    "xpnet_unchecked": "xpnet, update check off",
    "xpnet_jit": "xpnet + numba",
    "xpnet_jit_unchecked": "xpnet + numba, update check off",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="runs per implementation (5)")
    p.add_argument("--n", type=int, default=60000, help="rows (default 60,000)")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads (default 2)")
    p.add_argument("--out", default=str(HERE / "results"), help="folder for bounds.json")
    return p.parse_args(argv)


@contextlib.contextmanager
def _jit(on: bool):
    """``XPNET_JIT`` set for the block (read at every update)."""
    old = os.environ.get("XPNET_JIT")
    os.environ["XPNET_JIT"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["XPNET_JIT"]
        else:
            os.environ["XPNET_JIT"] = old


@contextlib.contextmanager
def _update_check_off():
    """``Optimizer.update_`` with ``check_finite=False`` whatever the caller asks."""
    from xpnet.optimizers import Optimizer

    real = Optimizer.update_

    def unchecked(self, params, grads, state, **kwargs):
        return real(self, params, grads, state, spare=kwargs.get("spare"))

    Optimizer.update_ = unchecked
    try:
        yield
    finally:
        Optimizer.update_ = real


def runners(X, y):
    """The seven implementations, each with ``warmup()`` and ``run() -> seconds``."""
    import numpy as np
    from bench_cpu import SPECS, GemmFloor, NumpyLoop, XpnetRunner

    import xpnet as xn

    spec = SPECS["W2"]
    sizes, batch, lr = spec["sizes"], spec["batch"], spec["lr"]

    class CompiledUpdateLoop(NumpyLoop):
        name = "numpy_compiled"

        def _update(self):
            if not hasattr(self, "opt_"):
                self.opt_ = xn.Adam(lr=self.lr)
                self.live_ = {str(i): p for i, p in enumerate(self.params)}
                self.state_ = self.opt_.init(self.live_)
            with _jit(True):
                self.opt_.update_(self.live_, {str(i): g for i, g in enumerate(self.grads)},
                                  self.state_)

    class Switched:
        def __init__(self, name, inner, jit, check):
            self.name, self.inner, self.jit, self.check = name, inner, jit, check

        def _call(self, method):
            with _jit(self.jit), (contextlib.nullcontext() if self.check
                                  else _update_check_off()):
                return method()

        def warmup(self):
            return self._call(self.inner.warmup)

        def run(self):
            return self._call(self.inner.run)

    def xpnet_runner(jit):
        return XpnetRunner(sizes, X, y, batch, "adam", lr, "float32", jit=jit)

    return {
        "floor": GemmFloor(sizes, X, batch, np.float32),
        "numpy": NumpyLoop(sizes, X, y, batch, "adam", lr, np.float32),
        "numpy_compiled": CompiledUpdateLoop(sizes, X, y, batch, "adam", lr, np.float32),
        "xpnet": Switched("xpnet", xpnet_runner(False), False, True),
        "xpnet_unchecked": Switched("xpnet_unchecked", xpnet_runner(False), False, False),
        "xpnet_jit": Switched("xpnet_jit", xpnet_runner(True), True, True),
        "xpnet_jit_unchecked": Switched("xpnet_jit_unchecked", xpnet_runner(True), True, False),
    }


def summary(times: dict[str, list[float]]) -> dict:
    """Per implementation: seconds and the per-round ratios to the floor and the loop."""
    out = {}
    for name, t in times.items():
        x_floor = [a / b for a, b in zip(t, times["floor"], strict=True)]
        x_numpy = [a / b for a, b in zip(t, times["numpy"], strict=True)]
        out[name] = {"label": LABELS[name], "seconds": t,
                     "median": statistics.median(t), "min": min(t), "max": max(t),
                     "x_floor": statistics.median(x_floor), "x_floor_min": min(x_floor),
                     "x_floor_max": max(x_floor), "x_numpy": statistics.median(x_numpy),
                     "x_numpy_min": min(x_numpy), "x_numpy_max": max(x_numpy)}
    return out


def table(r: dict) -> str:
    """The Markdown table of a bounds.json."""
    out = ["| implementation (W2, one epoch) | median | × GEMM floor (min – max) | "
           "× NumPy loop (min – max) |", "| --- | ---: | ---: | ---: |"]
    for e in r["impls"].values():
        out.append(f"| {e['label']} | {e['median']:.2f} s | {e['x_floor']:.2f} "
                   f"({e['x_floor_min']:.2f} – {e['x_floor_max']:.2f}) | {e['x_numpy']:.2f} "
                   f"({e['x_numpy_min']:.2f} – {e['x_numpy_max']:.2f}) |")
    return "\n".join(out) + "\n"


def main(args) -> int:
    sys.path.insert(0, str(HERE))
    from _common import environment, limit_threads, load_data, log, pin_threads_env, write_json

    pin_threads_env(args.threads)
    limit_threads(args.threads)
    import numba  # noqa: F401  (imported: the compiled variants use it in every fit)

    X, y, source = load_data(args.n, "float32")
    impls = runners(X, y)
    for im in impls.values():
        im.warmup()
    times: dict[str, list[float]] = {name: [] for name in impls}
    for rep in range(args.repeats):
        for name, im in impls.items():
            times[name].append(im.run())
        log(f"round {rep + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    r = {"env": environment(args.threads),
         "config": {"n": args.n, "repeats": args.repeats, "threads": args.threads,
                    "data": source},
         "impls": summary(times)}
    out = Path(args.out) / "bounds.json"
    write_json(out, r)
    print(table(r))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
