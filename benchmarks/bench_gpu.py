#!/usr/bin/env python
"""GPU benchmark: xpnet on CuPy against PyTorch CUDA, plus a no-sync proof.

Needs CuPy and a CUDA GPU (PyTorch with CUDA for the peers); exits with status
2 and a one-line reason where they are missing.

Workloads (float32, 60,000 MNIST-shaped rows, resident on the GPU)

  W1     784-10-10 ReLU, full batch, plain gradient descent lr 0.1 (per iteration)
  W2     784-512-256-10 ReLU, Adam lr 1e-3, batch 128, shuffled      (per epoch)
  W3     the same net, SGD momentum 0.9 lr 0.01, batch 1024          (per epoch)
  large  784-4096-4096-10 ReLU, Adam lr 1e-3, batch 4096, shuffled   (per epoch)

Implementations

  floor        the GEMMs forward + backward need (cupy.matmul, preallocated ``out=``)
  xpnet        xpnet's own training step on CuPy: ``Trainer.begin_epoch`` then
               ``Trainer.step`` for every batch (gather, forward, loss, backward, the
               non-finite guard, the update, the running sums), the loop ``fit`` runs,
               without fit's one-off checks and epoch-end work; ``XPNET_CUPY_FUSED=0``
  xpnet_fused  the same with ``XPNET_CUPY_FUSED=1``: one ElementwiseKernel per parameter
               for the optimizer update
  torch        PyTorch CUDA eager, the same bare loop (default optimizer: ``foreach``)
  torch_fused  the same with ``torch.optim.Adam/SGD(fused=True)``

Every sample is timed with CUDA events (start recorded before the host loop,
end recorded after it, then synchronised), after one warm-up run of each
implementation; implementations are interleaved and the order rotates every
repeat. The loss of the PyTorch loops is accumulated on the device (no
``.item()`` per step), as xpnet does.

No-sync check (``--sync-check``, on by default): the same ``Trainer.step`` of
W2 and of the large net, with the default update (``XPNET_CUPY_FUSED=0``) and
then with the fused one, runs a few steps (1) inside
``cupyx.allow_synchronize(False)`` and (2) behind a ~1 s queue of GPU work: if
no step waited for the device, the event recorded after that queue is still
pending when the steps return.

Results go to ``<out>/gpu.json`` (``--out``, default ``benchmarks/results``) with the
GPU, driver, CUDA, CuPy and PyTorch versions and the date.
"""

from __future__ import annotations

import argparse
import os
import sys

WORKLOADS = ("W1", "W2", "W3", "large")
IMPLS = ("floor", "xpnet", "xpnet_fused", "torch", "torch_fused")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="xpnet GPU benchmark: CuPy backend vs PyTorch CUDA (eager and fused "
                    "optimizers) and the cuBLAS GEMM floor; checks that xpnet's training "
                    "step never synchronises with the host.")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)")
    p.add_argument("--impls", default=",".join(IMPLS),
                   help=f"comma-separated subset of {','.join(IMPLS)} (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed samples (median reported)")
    p.add_argument("--n", type=int, default=60000, help="rows (default 60,000)")
    p.add_argument("--w1-iters", type=int, default=20, help="W1 iterations per sample")
    p.add_argument("--quick", action="store_true", help="6,000 rows, 2 repeats")
    p.add_argument("--sync-check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the no-host-sync check of xpnet's training step (default on)")
    p.add_argument("--sync-steps", type=int, default=5, help="steps in the sync check")
    p.add_argument("--device", type=int, default=0, help="CUDA device index")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    a = p.parse_args(argv)
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    a.impls = [w.strip() for w in a.impls.split(",") if w.strip()]
    for w in a.workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    for i in a.impls:
        if i not in IMPLS:
            p.error(f"unknown implementation {i!r}; choose from {', '.join(IMPLS)}")
    if a.quick:
        a.n, a.repeats, a.w1_iters = min(a.n, 6000), min(a.repeats, 2), min(a.w1_iters, 5)
    return a


def gpu_unavailable() -> str | None:
    """None when CuPy can run on a GPU here, else the reason."""
    try:
        import cupy
    except ImportError:
        return 'CuPy is not installed (pip install "xpnet[cuda12]" or "xpnet[cuda13]")'
    except Exception as exc:  # broken install
        return f"CuPy failed to import: {exc}"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA GPU found"
        float(cupy.arange(4, dtype=cupy.float32).sum())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"CuPy cannot use a GPU: {first}"
    return None


SPECS = {
    "W1": {"sizes": [784, 10, 10], "opt": "gd", "lr": 0.1, "batch": None, "unit": "iteration"},
    "W2": {"sizes": [784, 512, 256, 10], "opt": "adam", "lr": 1e-3, "batch": 128,
           "unit": "epoch"},
    "W3": {"sizes": [784, 512, 256, 10], "opt": "momentum", "lr": 0.01, "batch": 1024,
           "unit": "epoch"},
    "large": {"sizes": [784, 4096, 4096, 10], "opt": "adam", "lr": 1e-3, "batch": 4096,
              "unit": "epoch"},
}


def _batches(n, bs):
    bs = n if bs is None else min(bs, n)
    return [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]


# ============================================================================ runners
class CupyFloor:
    name = "floor"

    def __init__(self, cp, sizes, Xc, batch, iters):
        rng = cp.random.default_rng(1)
        self.cp, self.iters = cp, iters
        self.W = [rng.standard_normal((a, b), dtype=cp.float32) * (2.0 / a) ** 0.5
                  for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.gW = [cp.empty_like(w) for w in self.W]
        self.steps = [hi - lo for lo, hi in _batches(Xc.shape[0], batch)]
        self.bufs = {}
        for m in set(self.steps):
            Z = [cp.empty((m, b), cp.float32) for b in sizes[1:]]
            dZ = [rng.standard_normal((m, b), dtype=cp.float32) * 0.01 for b in sizes[1:]]
            dA = [None] + [cp.empty((m, a), cp.float32) for a in sizes[1:-1]]
            self.bufs[m] = (Xc[:m], Z, dZ, dA)

    def _step(self, m):
        xb, Z, dZ, dA = self.bufs[m]
        mm = self.cp.matmul
        h = xb
        for i, w in enumerate(self.W):
            mm(h, w, out=Z[i])
            h = Z[i]
        for i in range(len(self.W) - 1, -1, -1):
            a = xb if i == 0 else Z[i - 1]
            mm(a.T, dZ[i], out=self.gW[i])
            if i > 0:
                mm(dZ[i], self.W[i].T, out=dA[i])

    def run(self):
        for _ in range(self.iters):
            for m in self.steps:
                self._step(m)

    warmup = run


class XpnetGpu:
    """xpnet's training step, as ``fit`` runs it: the Trainer's own ``step``."""

    def __init__(self, xn, spec, Xc, yc, iters, device, fused=False, backend="cupy"):
        self.name = "xpnet_fused" if fused else "xpnet"
        self.fused = fused
        self.model = xn.MLP(spec["sizes"], backend=backend, device=device, dtype="float32",
                            seed=0)
        opt = {"adam": lambda: xn.Adam(lr=spec["lr"]),
               "momentum": lambda: xn.SGD(lr=spec["lr"], momentum=0.9),
               "gd": lambda: xn.SGD(lr=spec["lr"])}[spec["opt"]]()
        with self.model.backend.device_scope():
            opt.state = opt.init(self.model.params)
        n = Xc.shape[0]
        self.trainer = xn.training.Trainer(
            self.model, Xc, yc, optimizer=opt, epochs=1, shuffle=True,
            batch_size=n if spec["batch"] is None else spec["batch"],
            state=xn.training.TrainState(seed=0))
        self.iters = iters

    def set_path(self):
        os.environ["XPNET_CUPY_FUSED"] = "1" if self.fused else "0"  # read at every update

    def run(self):
        self.set_path()
        t = self.trainer
        with self.model.backend.device_scope():
            for _ in range(self.iters):
                perm = t.begin_epoch(0)
                for k in range(t.steps):
                    t.step(k, perm)

    def warmup(self):
        self.run()
        sums = self.trainer.guard.running()  # reads the device
        self.loss = sums["run_loss"] / max(sums["seen"], 1)
        if self.trainer.guard.poll():
            raise RuntimeError(f"{self.name}: a warm-up step was not finite")


class TorchGpu:
    def __init__(self, torch, spec, Xt, yt, iters, fused):
        import torch.nn.functional as F
        from torch import nn

        self.torch, self.F = torch, F
        torch.manual_seed(0)
        sizes = spec["sizes"]
        layers: list = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers).to(Xt.device)
        kw = {"fused": True} if fused else {}
        ps = self.net.parameters()
        if spec["opt"] == "adam":
            self.opt = torch.optim.Adam(ps, lr=spec["lr"], **kw)
        else:
            self.opt = torch.optim.SGD(ps, lr=spec["lr"],
                                       momentum=0.9 if spec["opt"] == "momentum" else 0.0, **kw)
        self.X, self.y, self.batch, self.iters = Xt, yt, spec["batch"], iters
        self.gen = torch.Generator(device=Xt.device).manual_seed(0)
        self.name = "torch_fused" if fused else "torch"

    def _step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def run(self):
        torch, n = self.torch, self.X.shape[0]
        for _ in range(self.iters):
            total = torch.zeros((), device=self.X.device)
            if self.batch is None or self.batch >= n:
                total += self._step(self.X, self.y) * n
            else:
                perm = torch.randperm(n, device=self.X.device, generator=self.gen)
                Xp, yp = self.X[perm], self.y[perm]
                for lo, hi in _batches(n, self.batch):
                    total += self._step(Xp[lo:hi], yp[lo:hi]) * (hi - lo)
            self._total = total
        self.loss = None

    warmup = run


# ============================================================================ timing
def timed(cp, torch, runner) -> float:
    """Seconds for one ``runner.run()`` measured with CUDA events of its own library."""
    if runner.name.startswith("torch"):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        runner.run()
        e.record()
        e.synchronize()
        return s.elapsed_time(e) / 1e3
    s, e = cp.cuda.Event(), cp.cuda.Event()
    s.record()
    runner.run()
    e.record()
    e.synchronize()
    return cp.cuda.get_elapsed_time(s, e) / 1e3


# ============================================================================ sync check
def trainer_steps(runner):
    """``step(i)``: the Trainer's own step on batch ``i`` of the current epoch's order."""
    t = runner.trainer
    perm = t.begin_epoch(0)

    def step(i):
        t.step(i % t.steps, perm)

    return step


def _detector_check(cupyx, step, steps: int) -> dict:
    """Run ``steps`` training steps inside ``cupyx.allow_synchronize(False)``."""
    import traceback
    import warnings

    if not hasattr(cupyx, "allow_synchronize"):
        return {"ok": None, "note": "cupyx.allow_synchronize is not available"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with cupyx.allow_synchronize(False):
                for i in range(2, 2 + steps):
                    step(i)
        except cupyx.DeviceSynchronized as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = [f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}" for f in tb[-6:]]
            return {"ok": False, "where": where}
    return {"ok": True, "steps": steps}


def _backlog_check(cp, step, steps: int) -> dict:
    """Queue about 1 s of GPU work, then run steps: they must return before it ends."""
    import time

    a = cp.ones((8192, 8192), cp.float32)
    b = cp.empty_like(a)
    t0, t1 = cp.cuda.Event(), cp.cuda.Event()
    t0.record()
    cp.matmul(a, a, out=b)
    t1.record()
    t1.synchronize()
    one = cp.cuda.get_elapsed_time(t0, t1)
    reps = max(1, int(1000.0 / max(one, 1e-3)))
    for _ in range(reps):
        cp.matmul(a, a, out=b)
    backlog_done = cp.cuda.Event()
    backlog_done.record()
    h0 = time.perf_counter()
    for i in range(100, 100 + steps):
        step(i)
    host_s = time.perf_counter() - h0
    pending = not backlog_done.query()
    cp.cuda.Device().synchronize()
    return {"ok": pending, "backlog_ms": one * reps, "host_ms_for_steps": host_s * 1e3,
            "steps": steps,
            "meaning": "backlog still pending when the steps returned" if pending else
                       "a step waited for the GPU (or the backlog was too short)"}


def _public_call_checks(cupyx, model, xb, yb) -> dict:
    """``loss_and_grads`` with its value checks (a sync by design) and without them."""
    import warnings

    rec: dict = {}
    if not hasattr(cupyx, "allow_synchronize"):
        return rec
    for label, kw in (("loss_and_grads", {}),
                      ("loss_and_grads(check_values=False)", {"check_values": False})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with cupyx.allow_synchronize(False):
                    model.loss_and_grads(xb, yb, **kw)
                rec[f"{label} syncs"] = False
            except cupyx.DeviceSynchronized:
                rec[f"{label} syncs"] = True
    return rec


def sync_check(cp, xn, Xc, yc, steps: int, device: int) -> dict:
    """The Trainer's step of W2 and the large net, default and fused update, proven sync-free."""
    import cupyx

    out: dict = {}
    for wname in ("W2", "large"):
        spec = SPECS[wname]
        for fused in (False, True):
            runner = XpnetGpu(xn, spec, Xc, yc, 1, device, fused=fused)
            runner.set_path()  # the path under test, whatever ran before
            rec: dict = {"XPNET_CUPY_FUSED": os.environ["XPNET_CUPY_FUSED"]}
            with runner.model.backend.device_scope():
                step = trainer_steps(runner)
                step(0)
                step(1)
                cp.cuda.Device().synchronize()
                rec["allow_synchronize"] = _detector_check(cupyx, step, steps)
                cp.cuda.Device().synchronize()
                rec["backlog"] = _backlog_check(cp, step, steps)
                if not fused:
                    rec.update(_public_call_checks(cupyx, runner.model, Xc[:spec["batch"]],
                                                   yc[:spec["batch"]]))
            out[f"{wname} {runner.name}"] = rec
            del runner
            cp.get_default_memory_pool().free_all_blocks()
    return out


# ============================================================================ main
def gpu_environment(cp, torch, device: int) -> dict:
    """Machine, GPU, driver, CUDA, CuPy and PyTorch versions, and the date."""
    import time

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import environment

    env = environment(os.cpu_count() or 1)
    props = cp.cuda.runtime.getDeviceProperties(device)
    env["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    env["gpu_memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
    env["cupy"] = cp.__version__
    env["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
    env["cuda_driver"] = cp.cuda.runtime.driverGetVersion()
    env["CUPY_TF32"] = os.environ.get("CUPY_TF32")
    env["date"] = time.strftime("%Y-%m-%d")
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["torch_allow_tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return env


def make_runners(cp, xn, torch, w, args, data) -> list:
    spec, (Xc, yc, Xt, yt) = SPECS[w], data
    iters = args.w1_iters if w == "W1" else 1
    runners: list = []
    for name in args.impls:
        if name == "floor":
            runners.append(CupyFloor(cp, spec["sizes"], Xc, spec["batch"], iters))
        elif name in ("xpnet", "xpnet_fused"):
            runners.append(XpnetGpu(xn, spec, Xc, yc, iters, args.device,
                                    name == "xpnet_fused"))
        elif torch is not None:
            try:
                runners.append(TorchGpu(torch, spec, Xt, yt, iters, name == "torch_fused"))
            except (RuntimeError, TypeError) as exc:
                print(f"[{w}] {name} skipped: {exc}", file=sys.stderr)
    for r in list(runners):
        try:
            r.warmup()
        except (RuntimeError, TypeError, ValueError) as exc:
            if not r.name.startswith("torch"):
                raise
            print(f"[{w}] {r.name} skipped: {exc}", file=sys.stderr)  # e.g. fused unsupported
            runners.remove(r)
    return runners


def measure(cp, torch, runners, iters: int, repeats: int, w: str) -> dict:
    """Interleaved, rotating samples; median, min, max, ratios to the floor and to xpnet."""
    import statistics

    from _common import fmt_seconds, log

    cp.cuda.Device().synchronize()
    samples: dict[str, list[float]] = {r.name: [] for r in runners}
    for rep in range(repeats):
        k = len(runners)
        for r in runners[rep % k:] + runners[:rep % k]:
            dt = timed(cp, torch, r) / iters
            samples[r.name].append(dt)
            log(f"[{w} {rep + 1}/{repeats}] {r.name:<11} {fmt_seconds(dt)}")
    floor = samples.get("floor")
    impls = {}
    for name, s in samples.items():
        e = {"median": statistics.median(s), "min": min(s), "max": max(s), "samples": s}
        if floor:
            e["x_floor"] = statistics.median([a / b for a, b in zip(s, floor, strict=True)])
        if "xpnet" in samples:
            e["xpnet_over_this"] = statistics.median(
                [a / b for a, b in zip(samples["xpnet"], s, strict=True)])
        impls[name] = e
    return impls


def report(res: dict) -> None:
    from _common import fmt_seconds

    env = res["env"]
    print(f"GPU: {env['gpu']}  driver {env['cuda_driver']}  CUDA runtime "
          f"{env['cuda_runtime']}  CuPy {env['cupy']}  torch {env.get('torch', '-')}  "
          f"{env['date']}")
    print(f"{'workload':<8} {'impl':<12} {'median':>10} {'min':>10} {'max':>10} "
          f"{'x floor':>8} {'xpnet/this':>10}")
    for w, wd in res["workloads"].items():
        for name, e in wd["impls"].items():
            print(f"{w:<8} {name:<12} {fmt_seconds(e['median']):>10} "
                  f"{fmt_seconds(e['min']):>10} {fmt_seconds(e['max']):>10} "
                  f"{e.get('x_floor', float('nan')):>7.2f}x "
                  f"{e.get('xpnet_over_this', float('nan')):>10.2f}")
    for w, rec in res.get("sync_check", {}).items():
        print(f"sync check {w}: {rec}")


def main(args) -> int:
    reason = gpu_unavailable()
    if reason is not None:
        print(f"bench_gpu: cannot run here: {reason}. Run it on a machine with a CUDA GPU and "
              "CuPy: python benchmarks/bench_gpu.py", file=sys.stderr)
        return 2
    from pathlib import Path

    import cupy as cp

    import xpnet as xn

    cp.cuda.Device(args.device).use()
    torch = None
    try:
        import torch as _torch

        if _torch.cuda.is_available():
            torch = _torch
            torch.cuda.set_device(args.device)  # its events record on the current device
    except ImportError:
        pass
    env = gpu_environment(cp, torch, args.device)
    from _common import REPO, load_data, log, write_json

    X, y, source = load_data(args.n, "float32")
    Xc, yc = cp.asarray(X), cp.asarray(y)
    Xt = yt = None
    if torch is not None:
        dev = f"cuda:{args.device}"
        Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    del X, y
    res = {"env": env, "config": {"n": args.n, "repeats": args.repeats, "data": source,
                                  "w1_iters": args.w1_iters}, "workloads": {}}
    for w in args.workloads:
        runners = make_runners(cp, xn, torch, w, args, (Xc, yc, Xt, yt))
        iters = args.w1_iters if w == "W1" else 1
        res["workloads"][w] = {**SPECS[w], "impls": measure(cp, torch, runners, iters,
                                                            args.repeats, w)}
        del runners
        cp.get_default_memory_pool().free_all_blocks()
        if torch is not None:
            torch.cuda.empty_cache()
    if args.sync_check:
        res["sync_check"] = sync_check(cp, xn, Xc, yc, args.sync_steps, args.device)
    out_dir = Path(args.out) if args.out else REPO / "benchmarks" / "results"
    write_json(out_dir / "gpu.json", res)
    report(res)
    log(f"results: {out_dir / 'gpu.json'}")
    ok = all(r.get("allow_synchronize", {}).get("ok") is not False
             and r.get("backlog", {}).get("ok") for r in res.get("sync_check", {}).values())
    return 0 if ok or not args.sync_check else 1


if __name__ == "__main__":
    _args = parse_args()
    sys.exit(main(_args))
