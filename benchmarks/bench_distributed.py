#!/usr/bin/env python
"""Data-parallel training: step time and allreduce time per step on 1..N ranks, and a model.

Measured (``mpiexec -n P`` for each P of ``--ranks``, 1 BLAS thread per rank, P x 1
threads on the cores; repeats interleaved, P rotating, median and min-max):

  W2  784-512-256-10, Adam lr 1e-3, batch 128 per rank
  W3  the same net, SGD momentum 0.9 lr 0.01, batch 1024 per rank

per step: the whole step (``history["seconds"] / steps``), the gradient hook (pack the
flat buffer, allreduce, unpack) and the allreduce alone (which includes waiting for the
slower rank); plus a bare MPI ``Allreduce`` of the same buffer in a loop, ranks in step
(the transport's own time). Per-rank batch fixed (weak scaling): ideal is the same step
time on every P, so P times the samples/s. A control runs P independent single-process
trainings side by side (no MPI traffic): how much the cores themselves slow down when P
processes share them (on a shared machine, the other users' load adds to it).

Modelled (clearly a MODEL, not a measurement): the scaling efficiency of N GPUs,
``t_compute / (t_compute + t_allreduce(N))``: the step's gradient allreduce runs after
the backward pass (no overlap), and takes ``2 (N-1)/N * bytes / bandwidth`` (a ring's
bandwidth term) ``+ 2 log2(N) * latency`` (a tree's latency term; NCCL picks between
ring and tree algorithms), for NVLink inside a node and 100 and 400 Gb/s networks
between nodes (one NIC per GPU), from an assumed GPU step time (``--gpu-step-ms``, or
FLOPs at ``--gpu-tflops`` plus ``--gpu-launch-us`` of per-step launch overhead). On a
machine with several GPUs and CuPy, ``--backend cupy`` measures instead (one GPU per
rank, NCCL).

Writes ``results/distributed.json`` and prints the tables of ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECS = {
    "W2": {"sizes": [784, 512, 256, 10], "opt": "adam", "lr": 1e-3, "batch": 128},
    "W3": {"sizes": [784, 512, 256, 10], "opt": "momentum", "lr": 0.01, "batch": 1024},
}
#: interconnects of the model: (achievable bandwidth in GB/s, one way; latency per
#: tree level in s). NVLink: NCCL bus bandwidth of recent 8-GPU nodes is 300-450 GB/s;
#: networks: 90% of the line rate.
LINKS = {
    "NVLink (one node)": (300.0, 3e-6),
    "400 Gb/s network": (50.0 * 0.9, 6e-6),
    "100 Gb/s network": (12.5 * 0.9, 6e-6),
}
MODEL_NS = (2, 4, 8, 16, 64)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", default="1,2", help="rank counts to measure (default 1,2)")
    p.add_argument("--no-control", action="store_true",
                   help="skip the independent-processes control")
    p.add_argument("--workloads", default="W2,W3")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps per sample (default: 100 for W2, 20 for W3)")
    p.add_argument("--backend", default="numpy", help="numpy, or cupy (one GPU per rank)")
    p.add_argument("--gpu-step-ms", default="",
                   help="model input: GPU compute per step, e.g. W2=0.15,W3=0.35 (ms); "
                        "default from FLOPs at --gpu-tflops plus --gpu-launch-us")
    p.add_argument("--gpu-tflops", type=float, default=20.0,
                   help="model input: sustained float32 TFLOP/s of one GPU (default 20)")
    p.add_argument("--gpu-launch-us", type=float, default=300.0,
                   help="model input: per-step overhead of launching a step's ~100 kernels "
                        "from Python (µs, default 300)")
    p.add_argument("--quick", action="store_true", help="1 repeat, fewer steps")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--independent", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.ranks = [int(r) for r in a.ranks.split(",")]
    a.workloads = [w.strip() for w in a.workloads.split(",")]
    if a.quick:
        a.repeats = 1
    return a


# ============================================================================ worker
def _steps(args, workload: str) -> int:
    if args.steps:
        return args.steps
    return (100 if workload == "W2" else 20) // (4 if args.quick else 1)


def _timed_hook(trainer, times: dict) -> None:
    """Wrap the trainer's gradient hook and its reducer with clocks.

    On a GPU the device is synchronised around each (NCCL only queues its work), which
    adds waits a real step does not have: the step time is then an upper bound.
    """
    from xpnet.backends import synchronize

    hook = trainer.grad_hooks[0]
    reducer = hook.reducer
    reduce = reducer.allreduce
    backend = hook.backend

    def timed_reduce(*a, **k):
        synchronize(backend)
        t = time.perf_counter()
        out = reduce(*a, **k)
        synchronize(backend)
        times["allreduce"] += time.perf_counter() - t
        return out

    def timed_hook(grads, tr):
        synchronize(backend)
        t = time.perf_counter()
        out = hook(grads, tr)
        synchronize(backend)
        times["hook"] += time.perf_counter() - t
        return out

    reducer.allreduce = timed_reduce
    trainer.grad_hooks[0] = timed_hook


def _measure(comm, args, workload: str, X, y) -> dict:
    import xpnet as xn

    spec = SPECS[workload]
    steps = _steps(args, workload)
    b = spec["batch"]
    opt = xn.Adam(lr=spec["lr"]) if spec["opt"] == "adam" else \
        xn.SGD(lr=spec["lr"], momentum=0.9)
    device = xn.distributed.local_device(comm, args.backend) if args.backend != "numpy" \
        else None
    model = xn.MLP(spec["sizes"], backend=args.backend, device=device, seed=0)
    times = {"hook": 0.0, "allreduce": 0.0}

    class Clock(xn.Callback):
        def on_train_begin(self, logs):
            if comm.size > 1:
                _timed_hook(self.trainer, times)

    n_warm = min(X.shape[0], 5 * b * comm.size)
    model.fit(X[:n_warm], y[:n_warm], epochs=1, batch_size=b, optimizer=opt, verbose=0,
              shuffle=False, distributed=comm, seed=1)
    n = steps * b * comm.size
    times.update(hook=0.0, allreduce=0.0)
    h = model.fit(X[:n], y[:n], epochs=1, batch_size=b, optimizer=opt, verbose=0,
                  callbacks=[Clock()], distributed=comm, seed=2)
    step = h.history["seconds"][-1] / steps
    return {"step": step, "hook": times["hook"] / steps,
            "allreduce": times["allreduce"] / steps,
            "samples_per_s": b * comm.size / step, "steps": steps,
            "params": model.num_params}


def _bare_allreduce(comm, n: int, repeats: int = 30) -> float | None:
    """Median seconds of an in-place MPI Allreduce of n float32 (None on one rank)."""
    import numpy as np

    if comm.size == 1:
        return None
    buf = np.ones(n, dtype=np.float32)
    samples = []
    for _ in range(repeats):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce(buf, guarded=False)
        samples.append(time.perf_counter() - t)
    return float(sorted(samples)[len(samples) // 2])


def worker(args) -> None:
    sys.path.insert(0, str(HERE))
    from _common import load_data

    import xpnet as xn
    from xpnet.cli._distributed import env_rank

    comm = xn.distributed.SingleProcess() if args.independent else xn.distributed.init()
    need = max(_steps(args, w) * SPECS[w]["batch"] * comm.size for w in args.workloads)
    X, y, source = load_data(need, verbose=False)
    out = {"ranks": comm.size, "data": source, "workloads": {}}
    for w in args.workloads:
        r = _measure(comm, args, w, X, y)
        r["bare_allreduce"] = _bare_allreduce(comm, r["params"] + 5)
        out["workloads"][w] = r
    if env_rank() == 0:
        Path(args.result).write_text(json.dumps(out))


# ============================================================================ driver
def _mpiexec() -> list[str]:
    exe = Path(sys.executable).parent / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    if exe is None:
        sys.exit("bench_distributed: no mpiexec (pip install 'xpnet[mpi]')")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return [exe, "--oversubscribe"] if "Open MPI" in version else [exe]


def _launch(args, ranks: int, independent: bool = False) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [*_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker",
               "--result", str(result), "--workloads", ",".join(args.workloads),
               "--backend", args.backend, "--steps", str(args.steps)]
        if args.quick:
            cmd.append("--quick")
        if independent:
            cmd.append("--independent")
        load0 = os.getloadavg()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            sys.exit(f"bench_distributed: {ranks} ranks failed:\n{proc.stderr[-3000:]}")
        out = json.loads(result.read_text())
    out["loadavg"] = [load0, os.getloadavg()[0]]
    return out


def _stats(values: list[float]) -> dict:
    s = sorted(values)
    return {"median": s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2,
            "min": s[0], "max": s[-1], "samples": values}


def _configs(args) -> list[tuple[str, int, bool]]:
    """(label, processes, independent) of every measured setup."""
    configs = [(f"{p} rank{'s' if p > 1 else ''}", p, False) for p in args.ranks]
    if not args.no_control:
        configs += [(f"{p} independent processes", p, True) for p in args.ranks if p > 1]
    return configs


def measure_all(args) -> dict:
    configs = _configs(args)
    samples: dict = {w: {c[0]: [] for c in configs} for w in args.workloads}
    loads = []
    for rep in range(args.repeats):
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        for label, p, independent in order:
            out = _launch(args, p, independent)
            loads.append(out["loadavg"])
            for w, r in out["workloads"].items():
                r["processes"] = p
                r["compute"] = r["step"] - r["hook"]
                r["samples_per_s"] *= p if independent else 1
                samples[w][label].append(r)
            print(f"repeat {rep + 1}/{args.repeats}, {label}: " + ", ".join(
                f"{w} {r['step'] * 1e3:.2f} ms/step" for w, r in out["workloads"].items()),
                file=sys.stderr, flush=True)
    table: dict = {}
    for w in args.workloads:
        table[w] = {}
        for label, _, _ in configs:
            rs = samples[w][label]
            table[w][label] = {k: _stats([r[k] for r in rs if r.get(k) is not None])
                               for k in ("step", "compute", "hook", "allreduce",
                                         "samples_per_s", "bare_allreduce")
                               if any(r.get(k) is not None for r in rs)}
            table[w][label]["params"] = rs[0]["params"]
            table[w][label]["processes"] = rs[0]["processes"]
    return {"measured": table, "loadavg": loads}


# ============================================================================ model
def allreduce_seconds(n: int, nbytes: float, bandwidth_gbs: float, latency: float) -> float:
    """Allreduce of ``nbytes`` over ``n`` ranks: 2(n-1)/n bytes/B + 2 log2(n) latency."""
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / (bandwidth_gbs * 1e9) + 2 * math.log2(n) * latency


def gpu_step_seconds(args, workload: str, params: int) -> float:
    """Model input: the GPU compute of one step (given, or 6 x params x batch FLOPs)."""
    given = dict(kv.split("=") for kv in args.gpu_step_ms.split(",") if "=" in kv)
    if workload in given:
        return float(given[workload]) * 1e-3
    flops = 6.0 * params * SPECS[workload]["batch"]
    return flops / (args.gpu_tflops * 1e12) + args.gpu_launch_us * 1e-6


def model_table(args, params: dict) -> dict:
    out: dict = {}
    for w in args.workloads:
        nbytes = 4.0 * (params[w] + 5)
        t_c = gpu_step_seconds(args, w, params[w])
        out[w] = {"gpu_step": t_c, "bytes": nbytes, "allreduce": {}, "links": {}}
        for link, (bw, lat) in LINKS.items():
            t_ar = {n: allreduce_seconds(n, nbytes, bw, lat) for n in MODEL_NS}
            out[w]["allreduce"][link] = t_ar
            out[w]["links"][link] = {n: t_c / (t_c + t_ar[n]) for n in MODEL_NS}
    return out


# ============================================================================ report
def _ms(s: dict | None) -> str:
    if not s:
        return "-"
    return f"{s['median'] * 1e3:.2f} ({s['min'] * 1e3:.2f}-{s['max'] * 1e3:.2f})"


def report(args, measured: dict, model: dict) -> None:
    """The tables of docs/distributed.md, split so that each fits the page."""
    print("Measured: per-rank batch fixed, 1 BLAS thread per rank; ms per step, median "
          "(min-max)\n")
    print("| workload | setup | step, ms | samples/s, all processes | vs 1 rank |")
    print("| --- | --- | ---: | ---: | ---: |")
    for w, by_setup in measured.items():
        base = next(iter(by_setup.values()))["samples_per_s"]["median"]
        for label, r in by_setup.items():
            sps = r["samples_per_s"]["median"]
            print(f"| {w} | {label} | {_ms(r['step'])} | {sps:,.0f} | {sps / base:.2f}x |")
    print("\nWhere the time of a step with a gradient hook goes, ms:\n")
    print("| workload | compute | hook (pack + allreduce + unpack) | "
          "allreduce (incl. waiting) | bare MPI Allreduce |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for w, by_setup in measured.items():
        for r in by_setup.values():
            if r.get("bare_allreduce"):
                print(f"| {w} | {_ms(r.get('compute'))} | {_ms(r.get('hook'))} | "
                      f"{_ms(r.get('allreduce'))} | {_ms(r.get('bare_allreduce'))} |")
    ns = MODEL_NS
    first = next(iter(model.values()))
    print(f"\nMODEL (not measured): allreduce of the {first['bytes'] / 1e6:.2f} MB gradient "
          "buffer per step, µs\n")
    print("| link | " + " | ".join(f"N={n}" for n in ns) + " |")
    print("| --- | " + " | ".join("---:" for _ in ns) + " |")
    for link, t_ar in first["allreduce"].items():
        print(f"| {link} | " + " | ".join(f"{t_ar[n] * 1e6:.0f}" for n in ns) + " |")
    print("\nMODEL (not measured): scaling efficiency of N GPUs = t_compute / (t_compute + "
          "allreduce), at an assumed GPU step time")
    for w, m in model.items():
        print(f"\n{w}, with a GPU step of {m['gpu_step'] * 1e3:.2f} ms (assumed):\n")
        print("| link | " + " | ".join(f"N={n}" for n in ns) + " |")
        print("| --- | " + " | ".join("---:" for _ in ns) + " |")
        for link, effs in m["links"].items():
            print(f"| {link} | " + " | ".join(f"{effs[n]:.0%}" for n in ns) + " |")


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    data = measure_all(args)
    params = {w: next(iter(data["measured"][w].values()))["params"] for w in args.workloads}
    data["model"] = model_table(args, params)
    data["model_inputs"] = {"links": {k: {"GB/s": v[0], "latency_s": v[1]}
                                      for k, v in LINKS.items()},
                            "gpu_step_ms": args.gpu_step_ms, "gpu_tflops": args.gpu_tflops,
                            "gpu_launch_us": args.gpu_launch_us}
    data["settings"] = {"ranks": args.ranks, "repeats": args.repeats,
                        "backend": args.backend, "cpus": os.cpu_count()}
    report(args, data["measured"], data["model"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "distributed.json" if not args.quick else "distributed-quick.json"
    (out / name).write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\nwrote {out / name}", file=sys.stderr)


if __name__ == "__main__":
    if "--worker" in sys.argv:  # one BLAS thread per rank, before NumPy is imported
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
    main()
