#!/usr/bin/env python
"""How xpnet's training-step time grows with batch size, width and depth (CPU, numpy).

Three sweeps on 784-input nets (float32, Adam lr 1e-3, MNIST-shaped rows):

  batch  784-512-256-10, batch 32 ... 4096
  width  784-w-w-10 at batch 128, w = 64 ... 2048
  depth  784-(512 x d)-10 at batch 128, d = 1 ... 4 hidden layers

Each point times one ``model.fit(..., epochs=1)`` over ``steps * batch`` rows
(``history["seconds"] / steps``) beside the GEMM floor for the same shapes (the
matrix products forward + backward need, NumPy BLAS, preallocated outputs),
interleaved, median of ``--repeats``. Writes ``results/scaling.json`` and
``results/scaling.png`` (copied to ``docs/img/bench_scaling.png``).
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="xpnet step time vs batch size, width and depth.")
    p.add_argument("--sweeps", default="batch,width,depth",
                   help="comma-separated subset of batch,width,depth")
    p.add_argument("--repeats", type=int, default=3, help="samples per point (median)")
    p.add_argument("--target-seconds", type=float, default=0.4,
                   help="aim for samples of about this length (default 0.4 s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="fewer points, 1 repeat")
    p.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    p.add_argument("--max-background", type=float, default=0.3,
                   help="wait for / rerun samples while other processes use more cores than "
                        "this (0 disables)")
    p.add_argument("--max-wait", type=float, default=30.0)
    p.add_argument("--wait-budget", type=float, default=600.0,
                   help="total seconds to spend waiting for a quiet machine (default 600)")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    a.sweeps = [s.strip() for s in a.sweeps.split(",") if s.strip()]
    for s in a.sweeps:
        if s not in ("batch", "width", "depth"):
            p.error(f"unknown sweep {s!r}")
    if a.quick:
        a.repeats = 1
    return a


ARGS = parse_args() if __name__ == "__main__" else None
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if ARGS is not None:
    from _common import pin_threads_env

    pin_threads_env(ARGS.threads)

import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import (  # noqa: E402
    REPO,
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
    wait_quiet,
    write_json,
)
from bench_cpu import GemmFloor  # noqa: E402

BATCHES = [32, 64, 128, 256, 512, 1024, 2048, 4096]
WIDTHS = [64, 128, 256, 512, 1024, 2048]
DEPTHS = [1, 2, 3, 4]


def points(sweep: str, quick: bool):
    if sweep == "batch":
        vals = BATCHES[::2] + [BATCHES[-1]] if quick else BATCHES
        return [(b, [784, 512, 256, 10], b) for b in vals]
    if sweep == "width":
        vals = WIDTHS[::2] if quick else WIDTHS
        return [(w, [784, w, w, 10], 128) for w in vals]
    vals = DEPTHS[::2] if quick else DEPTHS
    return [(d, [784] + [512] * d + [10], 128) for d in vals]


def measure_point(sizes, batch, X, y, args):
    import xpnet as xn

    model = xn.MLP(sizes, backend="numpy", dtype="float32", seed=0)
    opt = xn.Adam(lr=1e-3)

    def fit(rows):
        h = model.fit(X[:rows], y[:rows], epochs=1, batch_size=batch, optimizer=opt,
                      verbose=0, shuffle=True)
        return h.history["seconds"][0]

    # calibrate: a few steps, then enough steps for ~target seconds (<= all rows)
    fit(batch * 3)
    est = fit(batch * 5) / 5
    steps = int(max(5, min(X.shape[0] // batch, args.target_seconds / max(est, 1e-6))))
    rows = steps * batch
    floor = GemmFloor(sizes, X[:rows], batch, X.dtype)
    floor.warmup()
    xs, fs, foreign = [], [], []
    for _ in range(args.repeats):
        for which in ("floor", "xpnet"):
            for _attempt in range(3):
                if args.max_background > 0:
                    wait_quiet(args.max_background, args.max_wait)
                with LoadMeter() as m:
                    dt = floor.run() if which == "floor" else fit(rows)
                if args.max_background <= 0 or m.foreign is None or \
                        m.foreign <= args.max_background or not quiet_budget_left():
                    break
            (fs if which == "floor" else xs).append(dt / steps)
            foreign.append(m.foreign)
    xm, fm = statistics.median(xs), statistics.median(fs)
    ratio = statistics.median([a / b for a, b in zip(xs, fs, strict=True)])
    return {"sizes": sizes, "batch": batch, "steps": steps, "xpnet_step": xm,
            "floor_step": fm, "ratio": ratio,
            "xpnet_samples": xs, "floor_samples": fs,
            "params": int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))),
            "foreign_cores": foreign}


def plot(res, path: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed; no plot")
        return
    sweeps = [s for s in ("batch", "width", "depth") if s in res["sweeps"]]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(3.4 * len(sweeps), 3.0), dpi=120,
                             squeeze=False)
    titles = {"batch": "batch size (784-512-256-10)", "width": "width w (784-w-w-10, b=128)",
              "depth": "hidden layers d (784-512×d-10, b=128)"}
    for ax, s in zip(axes[0], sweeps, strict=True):
        pts = res["sweeps"][s]
        xv = [p["x"] for p in pts]
        ax.plot(xv, [p["xpnet_step"] * 1e3 for p in pts], "o-", color="#d62728",
                label="xpnet step", ms=3)
        ax.plot(xv, [p["floor_step"] * 1e3 for p in pts], "s--", color="black",
                label="GEMM floor", ms=3)
        for p in pts:
            ax.annotate(f"{p['ratio']:.1f}x", (p["x"], p["xpnet_step"] * 1e3),
                        textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
        if s != "depth":
            ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(titles[s], fontsize=8)
        ax.set_xticks(xv)
        ax.set_xticklabels([str(v) for v in xv], fontsize=6.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("ms per training step", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"xpnet (numpy, float32, Adam, {res['config']['threads']} threads): step time "
                 "and ratio to the GEMM floor", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(args) -> int:
    ctl = limit_threads(args.threads)  # noqa: F841
    set_wait_budget(args.wait_budget)
    out_dir = Path(args.out) if args.out else REPO / "benchmarks" / "results"
    env = environment(args.threads)
    env["blas"] = blas_line(env)
    log(f"BLAS: {env['blas']}")
    X, y, source = load_data(60000, "float32")
    res = {"env": env, "config": {"threads": args.threads, "repeats": args.repeats,
                                  "target_seconds": args.target_seconds, "data": source,
                                  "optimizer": "Adam(lr=1e-3)", "dtype": "float32"},
           "sweeps": {}}
    t_all = time.perf_counter()
    for s in args.sweeps:
        res["sweeps"][s] = []
        for x, sizes, batch in points(s, args.quick):
            r = measure_point(sizes, batch, X, y, args)
            r["x"] = x
            res["sweeps"][s].append(r)
            log(f"[{s}={x}] xpnet {fmt_seconds(r['xpnet_step'])}/step  floor "
                f"{fmt_seconds(r['floor_step'])}/step  ratio {r['ratio']:.2f}x "
                f"({r['steps']} steps)")
    env["loadavg_end"] = os.getloadavg()
    env["total_seconds"] = time.perf_counter() - t_all
    write_json(out_dir / "scaling.json", res)
    print(f"{'sweep':<6} {'x':>6} {'sizes':<28} {'batch':>6} {'xpnet/step':>11} "
          f"{'floor/step':>11} {'ratio':>6}")
    for s, pts in res["sweeps"].items():
        for p in pts:
            print(f"{s:<6} {p['x']:>6} {'-'.join(map(str, p['sizes'])):<28} {p['batch']:>6} "
                  f"{fmt_seconds(p['xpnet_step']):>11} {fmt_seconds(p['floor_step']):>11} "
                  f"{p['ratio']:>5.2f}x")
    if not args.no_plot:
        png = out_dir / "scaling.png"
        plot(res, png)
        publish_chart(png, "bench_scaling.png", quick=args.quick, custom_out=args.out is not None)
    log(f"results: {out_dir / 'scaling.json'} ({env['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
