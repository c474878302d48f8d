#!/usr/bin/env python
"""Inference throughput of the W2 net exported to ONNX, beside xpnet and PyTorch (CPU).

The W2 net (784-512-256-10 ReLU, float32) predicts labels for batches of 1 and 1,000
rows of MNIST-shaped data with four implementations holding the same weights:

  xpnet   ``model.predict(X)`` on the NumPy backend
  onnx    onnxruntime (CPU provider) running ``xn.export_onnx(model, ..., outputs="labels")``
  plain   onnxruntime running a hand-built MatMul/Add/Relu/ArgMax graph of the same
          weights: what the traced graph's extra nodes (ndonnx's empty-input guard around
          each product) cost
  torch   PyTorch CPU eager ``nn.Sequential`` under ``torch.inference_mode()``, argmax

A sample is a loop of calls lasting at least ``--sample-seconds``; rows/s is rows per
call times calls divided by the loop's time. Samples are interleaved: each repeat runs
each implementation once per batch size, the order rotating every repeat. The median over
repeats is reported with min-max. Before a sample the script waits until other processes
use fewer than ``--max-background`` cores and reruns a sample they disturbed (as
bench_cpu.py does). The labels of all four are checked to agree on the 1,000 rows.

    python benchmarks/bench_onnx.py                 # 2 threads, 7 repeats (~2 min)
    python benchmarks/bench_onnx.py --quick         # smoke run

Writes ``results/onnx.json`` and prints the Markdown table of docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="onnxruntime vs xpnet vs PyTorch inference "
                                            "throughput for the W2 net (rows/s).")
    p.add_argument("--repeats", type=int, default=7, help="samples per implementation and "
                   "batch size (default 7; the median is reported)")
    p.add_argument("--batches", default="1,1000", help="batch sizes (default 1,1000)")
    p.add_argument("--threads", type=int, default=2, help="threads for BLAS, onnxruntime "
                   "and PyTorch (default 2)")
    p.add_argument("--sample-seconds", type=float, default=0.5,
                   help="minimum length of one sample's loop of calls (default 0.5)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 0.1 s samples")
    p.add_argument("--out", default=None, help="folder for onnx.json (default "
                   "benchmarks/results)")
    p.add_argument("--max-background", type=float, default=0.3,
                   help="wait before each sample until other processes use fewer cores than "
                        "this, and rerun a sample during which they used more (0 disables)")
    p.add_argument("--max-wait", type=float, default=30.0, help="longest wait before a "
                   "sample (s, default 30)")
    p.add_argument("--wait-budget", type=float, default=600.0,
                   help="total seconds the run may wait for a quiet machine (default 600)")
    p.add_argument("--retries", type=int, default=2, help="reruns of a disturbed sample")
    a = p.parse_args(argv)
    a.batches = [int(b) for b in a.batches.split(",") if b.strip()]
    if a.repeats < 1 or not a.batches or min(a.batches) < 1:
        p.error("--repeats and every batch size must be >= 1")
    if a.quick:
        a.repeats, a.sample_seconds = min(a.repeats, 2), 0.1
    return a


ARGS = parse_args() if __name__ == "__main__" else None
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if ARGS is not None:
    from _common import pin_threads_env

    pin_threads_env(ARGS.threads)

import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    HERE,
    LoadMeter,
    environment,
    limit_threads,
    load_data,
    log,
    quiet_budget_left,
    set_wait_budget,
    summarize,
    wait_quiet,
    write_json,
)

SIZES = [784, 512, 256, 10]
LABELS = {"xpnet": "xpnet `predict`", "onnx": "onnxruntime (exported graph)",
          "plain": "onnxruntime (hand-built graph)", "torch": "PyTorch CPU eager"}


def plain_graph(params: dict) -> bytes:
    """The W2 net as the minimal ONNX graph: MatMul, Add, Relu per layer, then ArgMax."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights, prev = [], [], "input"
    for i in range(len(SIZES) - 1):
        weights += [numpy_helper.from_array(params[f"{2 * i}.W"], f"W{i}"),
                    numpy_helper.from_array(params[f"{2 * i}.b"], f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        prev = f"a{i}"
        if i < len(SIZES) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes.append(helper.make_node("ArgMax", [prev], ["labels"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, "w2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 784])],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, ["batch"])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def make_impls(threads: int, folder: Path) -> tuple[dict, dict]:
    """The predict functions (X -> labels) with the same weights, and facts about them."""
    import onnxruntime as ort
    import torch
    from torch import nn

    import xpnet as xn

    model = xn.MLP(SIZES, backend="numpy", dtype="float32", seed=0)
    t0 = time.perf_counter()
    path = xn.export_onnx(model, folder / "w2.onnx", outputs="labels")
    export_s = time.perf_counter() - t0
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(plain_graph(model.params), options,
                                 providers=["CPUExecutionProvider"])

    torch.set_num_threads(threads)
    layers: list = []
    for i in range(len(SIZES) - 1):
        lin = nn.Linear(SIZES[i], SIZES[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(model.params[f"{2 * i}.W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(model.params[f"{2 * i}.b"]))
        layers += [lin, nn.ReLU()] if i < len(SIZES) - 2 else [lin]
    net = nn.Sequential(*layers).eval()

    def torch_predict(X):
        with torch.inference_mode():
            return net(torch.from_numpy(X)).argmax(dim=1).numpy()

    impls = {"xpnet": model.predict,
             "onnx": lambda X: session.run(None, {"input": X})[0],
             "plain": lambda X: plain.run(None, {"input": X})[0],
             "torch": torch_predict}
    facts = {"export_seconds": export_s, "onnx_bytes": path.stat().st_size,
             "versions": {"onnxruntime": ort.__version__, "torch": torch.__version__,
                          "ndonnx": __import__("ndonnx").__version__}}
    return impls, facts


def sample(fn, X, seconds: float) -> tuple[float, int, float]:
    """Calls of ``fn(X)`` for at least ``seconds``: (rows/s, calls, wall seconds)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        fn(X)
        calls += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return X.shape[0] * calls / dt, calls, dt


def measure(impls: dict, X: np.ndarray, args) -> dict:
    """Interleaved samples per batch size and implementation (rows/s)."""
    names = list(impls)
    out = {b: {n: {"rows_per_second": [], "calls": [], "foreign_cores": []} for n in names}
           for b in args.batches}
    for rep in range(args.repeats):
        for b in args.batches:
            Xb = np.ascontiguousarray(X[:b])
            for n in names[rep % len(names):] + names[:rep % len(names)]:
                for _ in range(args.retries + 1):
                    if args.max_background > 0:
                        wait_quiet(args.max_background, args.max_wait)
                    with LoadMeter() as m:
                        rate, calls, _dt = sample(impls[n], Xb, args.sample_seconds)
                    if args.max_background <= 0 or m.foreign is None or \
                            m.foreign <= args.max_background or not quiet_budget_left():
                        break
                    log(f"[{rep + 1}] batch {b} {n}: discarded (others used "
                        f"{m.foreign:.2f} cores)")
                rec = out[b][n]
                rec["rows_per_second"].append(rate)
                rec["calls"].append(calls)
                rec["foreign_cores"].append(m.foreign)
                log(f"[{rep + 1}/{args.repeats}] batch {b:>5} {n:<6} {rate:>12,.0f} rows/s")
    return out


def table(results: dict) -> str:
    lines = ["| batch | implementation | rows/s (median) | min – max | time per call | "
             "rows/s ÷ xpnet's |", "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for b, per in results["batches"].items():
        base = per["xpnet"]["median"]
        for n, e in per.items():
            per_call = int(b) / e["median"]
            call = f"{per_call * 1e6:.0f} µs" if per_call < 1e-3 else f"{per_call * 1e3:.2f} ms"
            label = f"**{LABELS[n]}**" if n == "onnx" else LABELS[n]
            lines.append(f"| {int(b):,} | {label} | {e['median']:,.0f} | {e['min']:,.0f} – "
                         f"{e['max']:,.0f} | {call} | {e['median'] / base:.2f} |")
    return "\n".join(lines)


def main() -> None:
    args = ARGS
    set_wait_budget(args.wait_budget)
    limit_threads(args.threads)
    X, _, source = load_data(max(args.batches), "float32")
    with tempfile.TemporaryDirectory() as d:
        impls, facts = make_impls(args.threads, Path(d))
        labels = {n: np.asarray(f(X)) for n, f in impls.items()}
        agree = {n: bool(np.array_equal(v, labels["xpnet"])) for n, v in labels.items()}
        for f in impls.values():  # warm-up
            f(X[:1].copy())
        raw = measure(impls, X, args)
    results = {
        "environment": environment(args.threads), "data": source, "sizes": SIZES,
        "repeats": args.repeats, "sample_seconds": args.sample_seconds, **facts,
        "labels_agree_with_xpnet": agree,
        "batches": {str(b): {n: {**summarize(r["rows_per_second"]), "calls": r["calls"],
                                 "foreign_cores": r["foreign_cores"]}
                             for n, r in per.items()} for b, per in raw.items()},
    }
    out = Path(args.out) if args.out else HERE / "results"
    write_json(out / "onnx.json", results)
    log(f"wrote {out / 'onnx.json'}; labels agree with xpnet: {agree}; export took "
        f"{facts['export_seconds']:.1f} s")
    print(table(results))
    fc = [c for per in results["batches"].values() for e in per.values()
          for c in e["foreign_cores"] if c is not None]
    if fc:
        print(f"\nother processes: median {statistics.median(fc):.2f} cores, max {max(fc):.2f}")


if __name__ == "__main__":
    main()
