#!/usr/bin/env python
"""CPU benchmark: xpnet (numpy backend) against the GEMM floor and its peers.

Every workload runs all implementations in ONE process, interleaved: repeat r
runs each implementation once (the order rotates every repeat), so a change in
machine load hits all of them alike. Reported per implementation: the median,
min and max over the repeats, the time ratio to the GEMM floor (the median of
the per-repeat ratios, paired within a repeat) and xpnet's time divided by
this implementation's time.

Workloads (float32, 60,000 MNIST-shaped rows, 2 threads by default)

  W1     784-10-10 ReLU, full batch, plain gradient descent lr 0.1    (per iteration)
  W2     784-512-256-10 ReLU, Adam lr 1e-3, batch 128, shuffled        (per epoch)
  W3     the same net, SGD momentum 0.9 lr 0.01, batch 1024, shuffled  (per epoch)
  infer  predict 60,000 rows with the W2 net                           (per call)
  W2f64  W2 in float64: GEMM floor, clean NumPy, xpnet                 (per epoch)
  memory peak RSS above baseline while training one W2 epoch, each
         implementation in a fresh subprocess

Implementations

  floor    only the matrix products forward + backward need at those shapes,
           NumPy BLAS, preallocated outputs (``np.matmul(..., out=)``)
  numpy    a clean hand-written NumPy training loop
  xpnet    ``xn.MLP(...).fit(...)`` on the numpy backend (time per epoch from
           ``history.history["seconds"]``, which excludes fit's one-off checks;
           fit's wall time is kept in the JSON as ``fit_wall``)
  torch    PyTorch CPU eager, index slicing of a pre-permuted tensor
  torch_dl PyTorch CPU eager with ``DataLoader(TensorDataset, shuffle=True)``
  jax_scan JAX + optax, the whole epoch one ``jax.jit`` call (gather, then the steps
           in ``lax.scan``, parameters donated)
  jax_step JAX + optax, one ``jax.jit`` call per step (parameters donated)
  sklearn  scikit-learn ``MLPClassifier`` (``partial_fit`` per epoch; W1 uses
           ``warm_start`` + ``max_iter`` so validation is paid once per sample)

Run ``python benchmarks/bench_cpu.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# xpnet's fits here tune glibc malloc as `xpnet train` does (a fit called from Python
# leaves it alone by default since the thresholds outlive the call; docs/performance.md)
os.environ.setdefault("XPNET_MALLOC_TUNING", "1")

# ---- arguments and thread pinning happen before numpy is imported ------------------------
WORKLOADS = ("W1", "W2", "W3", "infer", "W2f64", "memory")
IMPL_LABELS = {
    "floor": "GEMM floor",
    "numpy": "NumPy clean loop",
    "xpnet": "xpnet",
    "xpnet_jit": "xpnet + numba",
    "torch": "PyTorch CPU (slicing)",
    "torch_dl": "PyTorch CPU (DataLoader)",
    "jax_scan": "JAX jit, epoch in lax.scan",
    "jax_step": "JAX jit per step",
    "sklearn": "scikit-learn MLP",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="xpnet CPU benchmark: GEMM floor, clean NumPy, xpnet, PyTorch, "
                    "scikit-learn, interleaved in one process.")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--impls", default=",".join(IMPL_LABELS),
                   help=f"comma-separated subset of {','.join(IMPL_LABELS)} (default: all; "
                        "the floor is always measured)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation "
                   "(default 5; the median is reported)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 6,000 rows, 2 repeats, fewer W1 iterations")
    p.add_argument("--n", type=int, default=None, help="number of rows (default 60,000)")
    p.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads (default 2)")
    p.add_argument("--w1-iters", type=int, default=20,
                   help="W1 iterations per timed sample (default 20)")
    p.add_argument("--out", default=None,
                   help="output folder for cpu.json and cpu.png (default benchmarks/results)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--merge", action="store_true",
                   help="keep the workloads of an existing cpu.json that this run does not "
                        "measure (rerun a subset, e.g. one disturbed by other processes)")
    p.add_argument("--max-background", type=float, default=0.3,
                   help="on a shared machine: wait before each sample until other processes "
                        "use fewer cores than this, and rerun a sample during which they used "
                        "more (default 0.3; 0 disables)")
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="longest wait for a quiet machine before a sample (s, default 60)")
    p.add_argument("--wait-budget", type=float, default=900.0,
                   help="total seconds the run may spend waiting for a quiet machine; then it "
                        "measures as it is and the table shows the disturbance (default 900)")
    p.add_argument("--retries", type=int, default=2,
                   help="reruns of a sample disturbed by other processes (default 2)")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    a.impls = [i.strip() for i in a.impls.split(",") if i.strip()]
    for i in a.impls:
        if i not in IMPL_LABELS:
            p.error(f"unknown implementation {i!r}; choose from {', '.join(IMPL_LABELS)}")
    if "floor" not in a.impls:
        a.impls.insert(0, "floor")
    if a.repeats < 1:
        p.error("--repeats must be >= 1")
    if a.quick:
        a.n = a.n or 6000
        a.repeats = min(a.repeats, 2)
        a.w1_iters = min(a.w1_iters, 3)
    a.n = a.n or 60000
    return a


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import pin_threads_env

    pin_threads_env(ARGS.threads)

import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    REPO,
    WAIT_BUDGET,
    LoadMeter,
    blas_line,
    environment,
    fmt_seconds,
    limit_threads,
    load_data,
    log,
    publish_chart,
    quiet_budget_left,
    set_wait_budget,
    summarize,
    wait_quiet,
    warn_coretype,
    write_json,
)

SPECS = {
    "W1": {"sizes": [784, 10, 10], "opt": "gd", "lr": 0.1, "batch": None, "unit": "iteration"},
    "W2": {"sizes": [784, 512, 256, 10], "opt": "adam", "lr": 1e-3, "batch": 128,
           "unit": "epoch"},
    "W3": {"sizes": [784, 512, 256, 10], "opt": "momentum", "lr": 0.01, "batch": 1024,
           "unit": "epoch"},
}
SPECS["W2f64"] = dict(SPECS["W2"])
TARGET_FLOOR = {"W1": 1.10, "W3": 1.15}  # W2: against its peers (PEER_TARGETS)
WARMUP_ROWS = 4096


def _batches(n: int, bs: int | None) -> list[tuple[int, int]]:
    bs = n if bs is None else min(bs, n)
    return [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]


def _he(rng, a: int, b: int, dtype) -> np.ndarray:
    return (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(dtype)


# ===================================================================== implementations
class GemmFloor:
    """Only the GEMMs: forward X@W per layer, dW = A.T@dZ per layer, dX = dZ@W.T except
    for the first layer; preallocated arrays, ``out=``; one call per step of the epoch."""

    name = "floor"

    def __init__(self, sizes, X, batch, dtype, *, iters=1, forward_only=False):
        rng = np.random.default_rng(1)
        self.sizes, self.iters, self.forward_only = sizes, iters, forward_only
        self.W = [_he(rng, a, b, dtype) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.gW = [np.empty_like(w) for w in self.W]
        self.steps = [hi - lo for lo, hi in _batches(X.shape[0], batch)]
        self.bufs = {}
        for m in set(self.steps):
            xb = X[:m]  # a contiguous view: the floor pays no gather
            Z = [np.empty((m, b), dtype) for b in sizes[1:]]
            dZ = [(rng.standard_normal((m, b)) * 0.01).astype(dtype) for b in sizes[1:]]
            dA = [None] + [np.empty((m, a), dtype) for a in sizes[1:-1]]
            self.bufs[m] = (xb, Z, dZ, dA)
        self.loss = None

    def _step(self, m):
        xb, Z, dZ, dA = self.bufs[m]
        W, gW, mm = self.W, self.gW, np.matmul
        h = xb
        for i in range(len(W)):
            mm(h, W[i], out=Z[i])
            h = Z[i]
        if self.forward_only:
            return
        for i in range(len(W) - 1, -1, -1):
            a = xb if i == 0 else Z[i - 1]
            mm(a.T, dZ[i], out=gW[i])
            if i > 0:
                mm(dZ[i], W[i].T, out=dA[i])

    def warmup(self):
        for m in sorted(set(self.steps)):
            self._step(m)

    def run(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.iters):
            for m in self.steps:
                self._step(m)
        return (time.perf_counter() - t0) / self.iters


class _EpochLoop:
    """Shared by the hand-written loops: ``_epoch(X, y)`` trains one epoch and returns
    its mean loss; the warm-up is one epoch on the first rows, a sample ``iters`` epochs."""

    X: Any
    y: Any
    iters: int
    loss: Any

    def _epoch(self, X, y) -> float:
        raise NotImplementedError

    def warmup(self):
        k = min(WARMUP_ROWS, self.X.shape[0])
        self._epoch(self.X[:k], self.y[:k])

    def run(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.iters):
            self.loss = self._epoch(self.X, self.y)
        return (time.perf_counter() - t0) / self.iters


class NumpyLoop(_EpochLoop):
    """A clean, idiomatic NumPy MLP: ReLU, fused softmax cross-entropy, in-place
    optimizer updates, ``X[idx]`` batches from one permutation per epoch."""

    name = "numpy"

    def __init__(self, sizes, X, y, batch, opt, lr, dtype, *, iters=1, seed=0):
        rng = np.random.default_rng(seed)
        self.X, self.y, self.batch, self.iters = X, y, batch, iters
        self.opt, self.lr = opt, lr
        self.W = [_he(rng, a, b, dtype) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.b = [np.zeros(b, dtype) for b in sizes[1:]]
        self.params = self.W + self.b
        self.gW = [np.empty_like(w) for w in self.W]
        self.gb = [np.empty_like(b) for b in self.b]
        self.grads = self.gW + self.gb
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params] if opt == "adam" else None
        self.t = 0
        self.rng = np.random.default_rng(seed + 1)
        self.loss = None

    def _step(self, xb, yb) -> float:
        W, L = self.W, len(self.W)
        acts = [xb]
        h = xb
        for i in range(L):
            z = h @ W[i]
            z += self.b[i]
            if i < L - 1:
                np.maximum(z, 0, out=z)
            acts.append(z)
            h = z
        z = acts[-1]                         # logits -> softmax in place
        n = z.shape[0]
        rows = np.arange(n)
        z -= z.max(axis=1, keepdims=True)
        picked = z[rows, yb]
        np.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - picked))
        z /= s
        z[rows, yb] -= 1.0
        z *= 1.0 / n
        dz = z
        for i in range(L - 1, -1, -1):
            np.matmul(acts[i].T, dz, out=self.gW[i])
            np.sum(dz, axis=0, out=self.gb[i])
            if i > 0:
                dh = dz @ W[i].T
                dh *= acts[i] > 0
                dz = dh
        self._update()
        return loss

    def _update(self):
        lr = self.lr
        self.t += 1
        if self.opt == "gd":
            for p, g in zip(self.params, self.grads, strict=True):
                p -= lr * g
        elif self.opt == "momentum":
            for p, g, buf in zip(self.params, self.grads, self.m, strict=True):
                buf *= 0.9
                buf += g
                p -= lr * buf
        else:  # adam, torch.optim.Adam's formula
            b1, b2, eps = 0.9, 0.999, 1e-8
            step = lr / (1.0 - b1 ** self.t)
            sq = math.sqrt(1.0 - b2 ** self.t)
            for p, g, m, v in zip(self.params, self.grads, self.m, self.v, strict=True):
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                denom = np.sqrt(v)
                denom /= sq
                denom += eps
                p -= step * (m / denom)

    def _epoch(self, X, y):
        n = X.shape[0]
        total = 0.0
        if self.batch is None or self.batch >= n:
            total = self._step(X, y) * n      # full batch: order does not matter
        else:
            perm = self.rng.permutation(n)
            for lo, hi in _batches(n, self.batch):
                idx = perm[lo:hi]
                total += self._step(X[idx], y[idx]) * (hi - lo)
        return total / n



class XpnetRunner:
    """``model.fit`` on the numpy backend; returns the mean of history["seconds"]."""

    def __init__(self, sizes, X, y, batch, opt, lr, dtype, *, iters=1, jit=False):
        import xpnet as xn

        self.name = "xpnet_jit" if jit else "xpnet"
        self.jit = jit

        self.xn = xn
        self.X, self.y, self.batch, self.iters = X, y, batch, iters
        self.model = xn.MLP(sizes, backend="numpy", dtype=dtype, seed=0)
        if opt == "adam":
            self.opt = xn.Adam(lr=lr)
        elif opt == "momentum":
            self.opt = xn.SGD(lr=lr, momentum=0.9)
        else:
            self.opt = xn.SGD(lr=lr)
        self.fit_wall: list[float] = []
        self.loss = None

    def _fit(self, X, y, epochs):
        old = os.environ.get("XPNET_JIT")
        os.environ["XPNET_JIT"] = "1" if self.jit else "0"  # read at every update
        try:
            return self.model.fit(X, y, epochs=epochs, batch_size=self.batch,
                                  optimizer=self.opt, verbose=0, shuffle=True)
        finally:
            if old is None:
                del os.environ["XPNET_JIT"]
            else:
                os.environ["XPNET_JIT"] = old

    def warmup(self):
        if self.jit:
            import numba  # noqa: F401  (the import is not part of any epoch; fit then
            # uses the compiled update whatever the size of the fit)
        k = min(WARMUP_ROWS, self.X.shape[0])
        self._fit(self.X[:k], self.y[:k], 1)

    def run(self) -> float:
        t0 = time.perf_counter()
        h = self._fit(self.X, self.y, self.iters)
        self.fit_wall.append((time.perf_counter() - t0) / self.iters)
        secs = h.history["seconds"]
        self.loss = h.history["loss"][-1]
        return sum(secs) / len(secs)

    def extra(self):
        return {"fit_wall": summarize(self.fit_wall) if self.fit_wall else None}


class TorchRunner(_EpochLoop):
    """PyTorch CPU eager: nn.Sequential, F.cross_entropy, torch.optim."""

    def __init__(self, sizes, X, y, batch, opt, lr, dtype, *, iters=1, loader=False,
                 threads=2):
        import torch
        import torch.nn.functional as F
        from torch import nn

        self.torch, self.F = torch, F
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        layers: list = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        tdtype = torch.float64 if dtype == "float64" else torch.float32
        self.net = nn.Sequential(*layers).to(tdtype)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        if opt == "adam":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        elif opt == "momentum":
            self.opt = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        else:
            self.opt = torch.optim.SGD(self.net.parameters(), lr=lr)
        self.batch, self.iters, self.loader = batch, iters, loader
        self.gen = torch.Generator().manual_seed(0)
        self.name = "torch_dl" if loader else "torch"
        self.loss = None

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        return loss.item()

    def _epoch(self, X, y):
        torch = self.torch
        n = X.shape[0]
        total = 0.0
        if self.batch is None or self.batch >= n:
            total = self._step(X, y) * n
        elif self.loader:
            dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y),
                                             batch_size=self.batch, shuffle=True,
                                             generator=self.gen)
            for xb, yb in dl:
                total += self._step(xb, yb) * xb.shape[0]
        else:
            perm = torch.randperm(n, generator=self.gen)
            Xp, yp = X[perm], y[perm]
            for lo, hi in _batches(n, self.batch):
                total += self._step(Xp[lo:hi], yp[lo:hi]) * (hi - lo)
        return total / n



class JaxRunner(_EpochLoop):
    """JAX on the CPU with optax: one jitted step per batch, or the whole epoch (the
    batch gather and a ``lax.scan`` over the full batches, then the short last batch)
    as one jitted call; parameters and optimizer state donated."""

    def __init__(self, sizes, X, y, batch, opt, lr, dtype, *, iters=1, scan=False):
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp = jax, jnp
        rng = np.random.default_rng(0)
        self.params = [(jnp.asarray(_he(rng, a, b, dtype)), jnp.zeros((b,), dtype))
                       for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        tx = (optax.adam(lr) if opt == "adam" else
              optax.sgd(lr, momentum=0.9) if opt == "momentum" else optax.sgd(lr))
        self.state = tx.init(self.params)
        self.X, self.y = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
        self.batch, self.iters, self.scan = batch, iters, scan
        self.name = "jax_scan" if scan else "jax_step"
        self.rng = np.random.default_rng(1)
        self.loss = None

        def loss_fn(params, xb, yb):
            h = xb
            for i, (W, b) in enumerate(params):
                h = h @ W + b
                if i < len(params) - 1:
                    h = jax.nn.relu(h)
            return optax.softmax_cross_entropy_with_integer_labels(h, yb).mean()

        def step(params, state, xb, yb):
            loss, g = jax.value_and_grad(loss_fn)(params, xb, yb)
            updates, state = tx.update(g, state, params)
            return optax.apply_updates(params, updates), state, loss

        def epoch(params, state, X, y, perm):
            n, bs = X.shape[0], self._bs(X.shape[0])
            full = n // bs
            Xp, yp = jnp.take(X, perm, axis=0), jnp.take(y, perm, axis=0)

            def body(carry, b):
                p, s, l = step(*carry, *b)
                return (p, s), l

            (params, state), losses = jax.lax.scan(
                body, (params, state), (Xp[:full * bs].reshape(full, bs, -1),
                                        yp[:full * bs].reshape(full, bs)))
            total = losses.sum() * bs
            if n > full * bs:
                params, state, last = step(params, state, Xp[full * bs:], yp[full * bs:])
                total = total + last * (n - full * bs)
            return params, state, total / n

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._epoch_fn = jax.jit(epoch, donate_argnums=(0, 1))

    def _bs(self, n):
        return n if self.batch is None else min(self.batch, n)

    def _epoch(self, X, y):
        n = X.shape[0]
        perm = self.jnp.asarray(self.rng.permutation(n).astype(np.int32))
        if self.scan:
            self.params, self.state, loss = self._epoch_fn(self.params, self.state, X, y,
                                                           perm)
            return float(loss)
        losses = []
        Xp, yp = self.jnp.take(X, perm, axis=0), self.jnp.take(y, perm, axis=0)
        for lo, hi in _batches(n, self._bs(n)):
            self.params, self.state, loss = self._step(self.params, self.state, Xp[lo:hi],
                                                       yp[lo:hi])
            losses.append((loss, hi - lo))  # read at the end: no sync per step
        return sum(float(v) * w for v, w in losses) / n


class SklearnRunner:
    """scikit-learn MLPClassifier, alpha=0, no early stopping, same hyper-parameters."""

    name = "sklearn"

    def __init__(self, sizes, X, y, batch, opt, lr, *, iters=1):
        from sklearn.neural_network import MLPClassifier

        n = X.shape[0]
        self.X, self.y, self.iters = X, y, iters
        self.full_batch = batch is None
        kw = dict(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", alpha=0.0,
                  batch_size=n if batch is None else batch, learning_rate_init=lr,
                  shuffle=True, random_state=0, tol=0.0, n_iter_no_change=10**9,
                  early_stopping=False)
        if opt == "adam":
            kw.update(solver="adam")
        else:
            kw.update(solver="sgd", learning_rate="constant",
                      momentum=0.9 if opt == "momentum" else 0.0, nesterovs_momentum=False)
        if self.full_batch:  # one fit call = `iters` full-batch iterations
            kw.update(warm_start=True, max_iter=iters)
        self.clf = MLPClassifier(**kw)
        self.classes = np.arange(sizes[-1])
        self.loss = None

    def warmup(self):
        k = min(WARMUP_ROWS, self.X.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.full_batch:
                self.clf.fit(self.X[:k], self.y[:k])
            else:
                self.clf.partial_fit(self.X[:k], self.y[:k], classes=self.classes)

    def run(self) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if self.full_batch:
                self.clf.fit(self.X, self.y)
                dt = (time.perf_counter() - t0) / self.iters
            else:
                self.clf.partial_fit(self.X, self.y)
                dt = time.perf_counter() - t0
        self.loss = float(self.clf.loss_)
        return dt

    def extra(self):
        return {"coef_dtype": str(self.clf.coefs_[0].dtype)}


# ----------------------------------------------------------------------------- inference
class InferRunner:
    """Predict labels for all rows with the W2 net (one call per sample)."""

    def __init__(self, name, X, sizes, threads):
        self.name, self.X = name, X
        self.loss = None
        if name == "floor":
            self.impl = GemmFloor(sizes, X, None, X.dtype, forward_only=True)
            self.fn = lambda: self.impl._step(X.shape[0])
        elif name == "numpy":
            rng = np.random.default_rng(0)
            W = [_he(rng, a, b, X.dtype) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
            b = [np.zeros(k, X.dtype) for k in sizes[1:]]

            def fwd():
                h = X
                for i in range(len(W)):
                    h = h @ W[i]
                    h += b[i]
                    if i < len(W) - 1:
                        np.maximum(h, 0, out=h)
                return h.argmax(axis=1)

            self.fn = fwd
        elif name == "xpnet":
            import xpnet as xn

            model = xn.MLP(sizes, backend="numpy", dtype=str(X.dtype), seed=0)
            self.fn = lambda: model.predict(X)
        elif name == "torch":
            import torch
            from torch import nn

            torch.set_num_threads(threads)
            layers: list = []
            for i, (a, b_) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                layers.append(nn.Linear(a, b_))
                if i < len(sizes) - 2:
                    layers.append(nn.ReLU())
            net = nn.Sequential(*layers).eval()
            Xt = torch.from_numpy(X)

            def fwd():
                with torch.inference_mode():
                    return net(Xt).argmax(dim=1)

            self.fn = fwd
        elif name == "sklearn":
            from sklearn.neural_network import MLPClassifier

            clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), solver="adam",
                                batch_size=256, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.partial_fit(X[:2048], np.arange(2048) % sizes[-1],
                                classes=np.arange(sizes[-1]))
            self.fn = lambda: clf.predict(X)
        else:
            raise ValueError(name)

    def warmup(self):
        self.fn()

    def run(self) -> float:
        t0 = time.perf_counter()
        self.fn()
        return time.perf_counter() - t0


# ===================================================================== driver
def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def make_runners(workload, X, y, args):
    spec = SPECS[workload]
    sizes, batch, opt, lr = spec["sizes"], spec["batch"], spec["opt"], spec["lr"]
    dtype = "float64" if workload == "W2f64" else "float32"
    iters = args.w1_iters if workload == "W1" else 1
    runners = []
    skipped = {}
    for name in args.impls:
        if workload == "W2f64" and name not in ("floor", "numpy", "xpnet", "xpnet_jit"):
            continue
        if name == "floor":
            runners.append(GemmFloor(sizes, X, batch, X.dtype, iters=iters))
        elif name == "numpy":
            runners.append(NumpyLoop(sizes, X, y, batch, opt, lr, X.dtype, iters=iters))
        elif name == "xpnet":
            runners.append(XpnetRunner(sizes, X, y, batch, opt, lr, dtype, iters=iters))
        elif name == "xpnet_jit":
            if not have("numba"):
                skipped[name] = "numba is not installed (pip install 'xpnet[jit]')"
                continue
            runners.append(XpnetRunner(sizes, X, y, batch, opt, lr, dtype, iters=iters,
                                       jit=True))
        elif name in ("torch", "torch_dl"):
            if not have("torch"):
                skipped[name] = "torch is not installed"
                continue
            if name == "torch_dl" and batch is None:
                continue  # a DataLoader has nothing to do for one full batch
            runners.append(TorchRunner(sizes, X, y, batch, opt, lr, dtype, iters=iters,
                                       loader=name == "torch_dl", threads=args.threads))
        elif name in ("jax_scan", "jax_step"):
            if not (have("jax") and have("optax")):
                skipped[name] = "jax and optax are not installed (pip install jax optax)"
                continue
            runners.append(JaxRunner(sizes, X, y, batch, opt, lr, dtype, iters=iters,
                                     scan=name == "jax_scan"))
        elif name == "sklearn":
            if not have("sklearn"):
                skipped[name] = "scikit-learn is not installed"
                continue
            runners.append(SklearnRunner(sizes, X, y, batch, opt, lr, iters=iters))
    return runners, skipped


def interleave(workload: str, runners: list, args) -> tuple[dict, dict]:
    """Run every runner once per repeat, rotating the order.

    Before each sample, wait (up to ``--max-wait`` s) until other processes use
    less than ``--max-background`` cores; a sample during which they used more
    is run again (up to ``--retries`` times). Returns (samples, foreign load)
    per implementation name.
    """
    quiet = args.max_background > 0
    for r in runners:
        t0 = time.perf_counter()
        r.warmup()
        log(f"[{workload}] warm-up {r.name:<8} {fmt_seconds(time.perf_counter() - t0)}")
    samples: dict[str, list[float]] = {r.name: [] for r in runners}
    foreign: dict[str, list] = {r.name: [] for r in runners}
    waited: dict[str, list] = {r.name: [] for r in runners}
    k = len(runners)
    for rep in range(args.repeats):
        order = runners[rep % k:] + runners[:rep % k]
        for r in order:
            for _attempt in range(args.retries + 1):
                if quiet:
                    wait_quiet(args.max_background, args.max_wait)
                with LoadMeter() as m:
                    dt = r.run()
                busy = m.foreign
                if not quiet or busy is None or busy <= args.max_background \
                        or not quiet_budget_left():
                    break
                log(f"[{workload} {rep + 1}/{args.repeats}] {r.name:<8} {fmt_seconds(dt)} "
                    f"discarded: other processes used {busy:.2f} cores")
            samples[r.name].append(dt)
            foreign[r.name].append(busy)
            waited[r.name].append(m.waited)
            note = "" if busy is None else f"  (others: {busy:.2f} cores)"
            log(f"[{workload} {rep + 1}/{args.repeats}] {r.name:<8} {fmt_seconds(dt)}{note}")
    return samples, {"foreign": foreign, "waited": waited}


def analyse(samples: dict[str, list[float]], unit: str, runners: list,
            foreign: dict | None = None) -> dict:
    floor = samples.get("floor")
    xp = samples.get("xpnet")
    out = {}
    for r in runners:
        s = samples[r.name]
        entry = {"label": IMPL_LABELS[r.name], "unit": unit, **summarize(s)}
        if floor:
            paired = [a / b for a, b in zip(s, floor, strict=True)]
            entry["x_floor"] = statistics.median(paired)
            entry["x_floor_min"], entry["x_floor_max"] = min(paired), max(paired)
            if len(paired) >= 2:
                q = statistics.quantiles(paired, n=4, method="inclusive")
                entry["x_floor_q1"], entry["x_floor_q3"] = q[0], q[2]
            else:
                entry["x_floor_q1"] = entry["x_floor_q3"] = paired[0]
            entry["x_floor_of_medians"] = entry["median"] / statistics.median(floor)
        if xp:
            paired = [a / b for a, b in zip(xp, s, strict=True)]
            entry["xpnet_over_this"] = statistics.median(paired)
        if foreign:
            entry["foreign_cores"] = foreign["foreign"].get(r.name)
            entry["runqueue_wait"] = foreign["waited"].get(r.name)
        if r.loss is not None:
            entry["last_train_loss"] = float(r.loss)
        if hasattr(r, "extra"):
            entry.update(r.extra())
        out[r.name] = entry
    return out


# ----------------------------------------------------------------------------- memory
def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory_child(name: str, args) -> None:
    """Run in a fresh process: baseline RSS with the data loaded, then one W2 epoch."""
    import gc
    import json
    import resource

    if name.startswith("torch"):
        import torch  # noqa: F401  (import cost belongs to the baseline)
    elif name == "xpnet":
        import xpnet

        # the one-off cost of importing the NumPy namespace (array_api_compat.numpy
        # clones numpy and so imports numpy.f2py, numpy.testing, ...: about 10 MiB)
        # belongs to the baseline, like torch's import does
        xpnet.get_backend("numpy")
        import xpnet.ops._numpy  # noqa: F401
    X, y, _ = load_data(args.n, "float32", verbose=False)
    gc.collect()
    base_rss = _rss_kb("VmRSS")
    base_ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = False
    try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    spec = SPECS["W2"]
    sizes, batch, opt, lr = spec["sizes"], spec["batch"], spec["opt"], spec["lr"]
    if name == "xpnet":
        r = XpnetRunner(sizes, X, y, batch, opt, lr, "float32")
    elif name == "numpy":
        r = NumpyLoop(sizes, X, y, batch, opt, lr, X.dtype)
    else:
        r = TorchRunner(sizes, X, y, batch, opt, lr, "float32", loader=name == "torch_dl",
                        threads=args.threads)
    dt = r.run()
    peak_hwm = _rss_kb("VmHWM")
    peak_ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"name": name, "baseline_rss_kb": base_rss, "baseline_ru_maxrss_kb": base_ru,
                      "peak_vmhwm_kb": peak_hwm, "peak_ru_maxrss_kb": peak_ru,
                      "hwm_reset": reset, "epoch_seconds": dt}))


def run_memory(args) -> dict:
    names = [n for n in ("numpy", "xpnet", "torch", "torch_dl") if n in args.impls]
    names = [n for n in names if not n.startswith("torch") or have("torch")]
    out = {}
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", name,
               "--n", str(args.n), "--threads", str(args.threads)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if res.returncode != 0:
            log(f"[memory] {name} failed:\n{res.stderr[-2000:]}")
            out[name] = {"error": res.stderr[-2000:]}
            continue
        import json

        rec = json.loads(res.stdout.strip().splitlines()[-1])
        base = rec["baseline_rss_kb"]
        rec["label"] = IMPL_LABELS[name]
        rec["peak_above_baseline_mib"] = (rec["peak_vmhwm_kb"] - base) / 1024
        rec["ru_maxrss_above_baseline_mib"] = (rec["peak_ru_maxrss_kb"] - base) / 1024
        rec["baseline_mib"] = base / 1024
        out[name] = rec
        log(f"[memory] {name:<8} +{rec['peak_above_baseline_mib']:.1f} MiB above "
            f"{rec['baseline_mib']:.0f} MiB baseline ({time.perf_counter() - t0:.1f} s)")
    return out


# ----------------------------------------------------------------------------- report
def _paired(x: dict, p: dict) -> float:
    """The median of the per-repeat time ratios x / p (samples paired by repeat)."""
    return statistics.median(a / b for a, b in zip(x["samples"], p["samples"], strict=True))


# W2's targets against its peers, measured in the same run (guard on): (xpnet variant,
# peer, the largest ratio of times that meets the target)
PEER_TARGETS = (("xpnet_jit", "jax_scan", 1.05), ("xpnet", "torch", 1.0),
                ("xpnet", "numpy", 1.05))


def targets(results: dict) -> list[dict]:
    rows = []
    wl = results["workloads"]
    w2 = wl.get("W2", {}).get("impls", {})
    for name, peer, lim in PEER_TARGETS:
        if w2.get(name) and w2.get(peer):
            ratio = _paired(w2[name], w2[peer])
            rows.append({"target": f"W2: {IMPL_LABELS[name]} <= {lim:.2f}x {IMPL_LABELS[peer]}",
                         "value": f"{ratio:.2f}x", "met": ratio <= lim})
    for w, lim in TARGET_FLOOR.items():
        for name in ("xpnet", "xpnet_jit"):
            x = wl.get(w, {}).get("impls", {}).get(name)
            if x and "x_floor" in x:
                rows.append({"target": f"{w}: {IMPL_LABELS[name]} <= {lim:.2f}x GEMM floor",
                             "value": f"{x['x_floor']:.2f}x", "met": x["x_floor"] <= lim})
    for w in ("W1", "W2", "W3"):
        impls = wl.get(w, {}).get("impls", {})
        for name in ("xpnet", "xpnet_jit"):
            x = impls.get(name)
            if not x:
                continue
            for peer in ("torch", "torch_dl", "sklearn"):
                p = impls.get(peer)
                if not p:
                    continue
                # median of the per-repeat ratios (the samples are paired by repeat)
                ratio = statistics.median(a / b for a, b in zip(x["samples"], p["samples"],
                                                                  strict=True))
                rows.append({"target": f"{w}: {IMPL_LABELS[name]} faster than "
                                       f"{IMPL_LABELS[peer]}",
                             "value": f"{name}/peer = {ratio:.2f}", "met": ratio < 1.0})
    inf = wl.get("infer", {}).get("impls", {})
    if inf.get("xpnet") and inf.get("torch"):
        ratio = inf["torch"]["xpnet_over_this"]
        rows.append({"target": "infer: xpnet throughput >= PyTorch CPU",
                     "value": f"xpnet/torch time = {ratio:.2f}", "met": ratio <= 1.0})
    mem = results.get("memory", {})
    if "peak_above_baseline_mib" in mem.get("xpnet", {}) and \
            "peak_above_baseline_mib" in mem.get("numpy", {}):
        a, b = mem["xpnet"]["peak_above_baseline_mib"], mem["numpy"]["peak_above_baseline_mib"]
        rows.append({"target": "memory: xpnet W2 training peak <= clean NumPy loop",
                     "value": f"{a:.1f} vs {b:.1f} MiB", "met": a <= b})
    return rows


def print_tables(results: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        Console = None
    rows = []
    for w, wd in results["workloads"].items():
        for _name, e in wd["impls"].items():
            fc = [f for f in e.get("foreign_cores") or [] if f is not None]
            rows.append([w, e["label"], fmt_seconds(e["median"]),
                         f"{fmt_seconds(e['min'])} – {fmt_seconds(e['max'])}",
                         f"{e['x_floor']:.2f}x" if "x_floor" in e else "-",
                         f"{e['xpnet_over_this']:.2f}" if "xpnet_over_this" in e else "-",
                         f"{statistics.median(fc):.2f}" if fc else "-"])
    head = ["workload", "implementation", "median", "min – max", "× floor", "xpnet ÷ this",
            "others (cores)"]
    mem = results.get("memory", {})
    tg = results.get("targets", [])
    if Console is not None:
        c = Console(stderr=False, width=max(Console().width, 112))
        t = Table(title=f"xpnet CPU benchmark ({results['config']['n']} rows, "
                        f"{results['config']['threads']} threads, "
                        f"median of {results['config']['repeats']})")
        for h in head:
            t.add_column(h, justify="left" if h in ("workload", "implementation") else "right")
        last = None
        for r in rows:
            if last is not None and r[0] != last:
                t.add_section()
            last = r[0]
            t.add_row(*r)
        c.print(t)
        if mem:
            m = Table(title="Peak RSS above baseline while training one W2 epoch")
            for h in ("implementation", "peak above baseline", "baseline"):
                m.add_column(h, justify="right")
            for e in mem.values():
                if "peak_above_baseline_mib" in e:
                    m.add_row(e["label"], f"{e['peak_above_baseline_mib']:.1f} MiB",
                              f"{e['baseline_mib']:.0f} MiB")
            c.print(m)
        if tg:
            tt = Table(title="Targets")
            for h in ("target", "value", "met"):
                tt.add_column(h)
            for r in tg:
                tt.add_row(r["target"], r["value"], "yes" if r["met"] else "NO")
            c.print(tt)
        c.print(f"BLAS: {results['env']['blas']}")
        return
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(r))
    for e in mem.values():
        if "peak_above_baseline_mib" in e:
            print(f"memory {e['label']}: +{e['peak_above_baseline_mib']:.1f} MiB")
    for r in tg:
        print(f"{r['target']}: {r['value']} -> {'met' if r['met'] else 'NOT met'}")


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed; no chart")
        return
    wl = [w for w in results["workloads"] if results["workloads"][w]["impls"]]
    names = [n for n in IMPL_LABELS if n != "floor"
             and any(n in results["workloads"][w]["impls"] for w in wl)]
    colors = {"numpy": "#7f7f7f", "xpnet": "#d62728", "xpnet_jit": "#8c1a1a",
              "torch": "#1f77b4",
              "torch_dl": "#6baed6", "sklearn": "#ff7f0e"}
    fig, ax = plt.subplots(figsize=(8.5, 4.2), dpi=120)
    width = 0.8 / max(len(names), 1)
    top = 1.0
    for j, name in enumerate(names):
        xs, ys, lo, hi = [], [], [], []
        for i, w in enumerate(wl):
            e = results["workloads"][w]["impls"].get(name)
            if not e or "x_floor" not in e:
                continue
            xs.append(i + (j - (len(names) - 1) / 2) * width)
            ys.append(e["x_floor"])
            q1, q3 = e.get("x_floor_q1", e["x_floor"]), e.get("x_floor_q3", e["x_floor"])
            lo.append(max(0.0, e["x_floor"] - q1))
            hi.append(max(0.0, q3 - e["x_floor"]))
            top = max(top, q3)
        ax.bar(xs, ys, width * 0.95, yerr=[lo, hi], capsize=2, label=IMPL_LABELS[name],
               color=colors.get(name), error_kw={"elinewidth": 0.7, "alpha": 0.7})
        for x_, y_, h_ in zip(xs, ys, hi, strict=True):
            ax.text(x_, y_ + h_ + 0.03 * top, f"{y_:.2f}", ha="center", va="bottom",
                    fontsize=5.5, rotation=90)
    for i, w in enumerate(wl):
        if w in TARGET_FLOOR:
            ax.hlines(TARGET_FLOOR[w], i - 0.45, i + 0.45, colors="#d62728",
                      linestyles="dotted", linewidth=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(wl)))
    ax.set_xticklabels([f"{w}\n(per {results['workloads'][w]['unit']})" for w in wl])
    ax.set_ylabel("time ÷ GEMM floor (same run)")
    if top > 8:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, top * 1.25)
    ax.set_title(f"xpnet CPU benchmark: time relative to the GEMM floor "
                 f"({results['config']['threads']} threads)\n"
                 "median of paired ratios, bars = interquartile range; black line = floor; "
                 "dotted red = xpnet target", fontsize=8.5)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(args) -> int:
    if args.memory_child:
        memory_child(args.memory_child, args)
        return 0
    warn_coretype()
    set_wait_budget(args.wait_budget)
    ctl = limit_threads(args.threads)  # noqa: F841  (keep the limits alive)
    out_dir = Path(args.out) if args.out else REPO / "benchmarks" / "results"
    env = environment(args.threads)
    env["blas"] = blas_line(env)
    for mod in ("torch", "sklearn"):
        if have(mod):
            env[mod] = __import__(mod).__version__
    log(f"BLAS: {env['blas']}")
    t_start = time.perf_counter()
    X, y, source = load_data(args.n, "float32")
    results = {"env": env, "config": {"n": args.n, "repeats": args.repeats,
                                      "threads": args.threads, "w1_iters": args.w1_iters,
                                      "quick": args.quick, "data": source,
                                      "workloads": args.workloads, "impls": args.impls,
                                      "max_background": args.max_background,
                                      "max_wait": args.max_wait, "retries": args.retries,
                                      "wait_budget": args.wait_budget},
               "workloads": {}, "skipped": {}}
    for w in args.workloads:
        if w == "memory":
            continue
        t0 = time.perf_counter()
        if w == "infer":
            sizes = SPECS["W2"]["sizes"]
            runners = [InferRunner(nm, X, sizes, args.threads) for nm in args.impls
                       if nm in ("floor", "numpy", "xpnet", "torch", "sklearn")
                       and (nm not in ("torch", "sklearn") or have(nm))]
            samples, foreign = interleave(w, runners, args)
            results["workloads"][w] = {"unit": "call", "rows": args.n,
                                       "impls": analyse(samples, "call", runners, foreign)}
            for e in results["workloads"][w]["impls"].values():
                e["rows_per_second"] = args.n / e["median"]
        else:
            Xw = X.astype(np.float64) if w == "W2f64" else X
            runners, skipped = make_runners(w, Xw, y, args)
            results["skipped"].update({f"{w}:{k}": v for k, v in skipped.items()})
            samples, foreign = interleave(w, runners, args)
            spec = SPECS[w]
            results["workloads"][w] = {
                "unit": spec["unit"], "sizes": spec["sizes"], "optimizer": spec["opt"],
                "lr": spec["lr"], "batch": spec["batch"] or args.n,
                "dtype": "float64" if w == "W2f64" else "float32",
                "impls": analyse(samples, spec["unit"], runners, foreign)}
            del runners, Xw
        results["workloads"][w]["wall_seconds"] = time.perf_counter() - t0
    if "memory" in args.workloads:
        results["memory"] = run_memory(args)
    if args.merge and (out_dir / "cpu.json").exists():
        import json

        old = json.loads((out_dir / "cpu.json").read_text())
        kept = [w for w in old.get("workloads", {}) if w not in results["workloads"]]
        merged = {w: old["workloads"][w] for w in kept}
        merged.update(results["workloads"])
        results["workloads"] = {w: merged[w] for w in WORKLOADS if w in merged}
        if "memory" not in results and "memory" in old:
            results["memory"] = old["memory"]
            kept.append("memory")
        results["merged"] = {"kept_from_previous_run": kept,
                             "previous_date": old.get("env", {}).get("date")}
    results["targets"] = targets(results)
    env["loadavg_end"] = os.getloadavg()
    env["total_seconds"] = time.perf_counter() - t_start
    env["seconds_waiting_for_quiet"] = WAIT_BUDGET["spent"]
    write_json(out_dir / "cpu.json", results)
    print_tables(results)
    if not args.no_plot and results["workloads"]:
        png = out_dir / "cpu.png"
        plot(results, png)
        publish_chart(png, "bench_cpu.png", quick=args.quick, custom_out=args.out is not None)
    log(f"results: {out_dir / 'cpu.json'}  ({env['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
