#!/usr/bin/env python
"""``xpnet.sklearn`` against ``sklearn.neural_network``: the same estimator calls, timed.

Every workload runs all implementations in one process, interleaved: repeat r fits
each implementation once, the order rotating every repeat, so a change in machine
load hits all of them alike. Reported: the median wall time of ``fit`` with min-max,
the time relative to scikit-learn's on the same input dtype (the median of the
per-repeat ratios, paired within a repeat), the final ``loss_`` (equal to
scikit-learn's when the training is the same), the test accuracy, and the median
number of cores other processes used during the samples.

Workloads (CPU)

  digits-adam   xpnet's bundled digits (1,437 train / 360 test, pixels / 16),
                hidden (256,), Adam lr 1e-3, batch 128, 30 epochs
  digits-lbfgs  the same data and net, L-BFGS, 100 iterations
  w2-adam       60,000 x 784 synthetic rows, 10 classes (make_classification),
                hidden (512, 256), Adam lr 1e-3, batch 128, 2 epochs

Implementations: scikit-learn and xpnet.sklearn, each on float64 input and on the same
data cast to float32 (both then train in float32).

Run ``python benchmarks/bench_sklearn.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="digits-adam,digits-lbfgs,w2-adam")
    p.add_argument("--repeats", type=int, default=5, help="fits per implementation (default 5)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--n", type=int, default=60000, help="rows of the w2 workload")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the w2 workload")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import pin_threads_env

    pin_threads_env(ARGS.threads)

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import LoadMeter, blas_line, environment, limit_threads  # noqa: E402


def _digits():
    from xpnet.datasets import load

    ds = load("digits")
    return (ds.x_train.astype(np.float64), ds.y_train, ds.x_test.astype(np.float64),
            ds.y_test)


def _w2(n: int):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n + 10000, n_features=784, n_informative=40,
                               n_redundant=0, n_classes=10, n_clusters_per_class=1,
                               random_state=0)
    X /= np.abs(X).max()
    return X[:n], y[:n], X[n:], y[n:]


WORKLOADS = {
    "digits-adam": (_digits, dict(hidden_layer_sizes=(256,), batch_size=128, max_iter=30,
                                  n_iter_no_change=10**6)),
    "digits-lbfgs": (_digits, dict(hidden_layer_sizes=(256,), solver="lbfgs", max_iter=100)),
    "w2-adam": (None, dict(hidden_layer_sizes=(512, 256), batch_size=128,
                           n_iter_no_change=10**6)),
}


def _impls():
    from sklearn.neural_network import MLPClassifier as Sk

    from xpnet.sklearn import MLPClassifier as Xn

    return [("scikit-learn, float64", Sk, np.float64),
            ("xpnet.sklearn, float64", Xn, np.float64),
            ("scikit-learn, float32", Sk, np.float32),
            ("xpnet.sklearn, float32", Xn, np.float32)]


def run(name: str, repeats: int, n: int, epochs: int) -> list[str]:
    loader, params = WORKLOADS[name]
    if loader is None:
        Xtr, ytr, Xte, yte = _w2(n)
        params = {**params, "max_iter": epochs}
    else:
        Xtr, ytr, Xte, yte = loader()
    impls = _impls()
    data = {dt: (Xtr.astype(dt), Xte.astype(dt)) for dt in (np.float64, np.float32)}
    times: dict[str, list[float]] = {label: [] for label, *_ in impls}
    foreign: dict[str, list[float]] = {label: [] for label, *_ in impls}
    result: dict[str, tuple[float, float]] = {}
    for r in range(repeats):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for label, cls, dt in order:
            X, Xt = data[dt]
            est = cls(random_state=r, **params)
            with warnings.catch_warnings(), LoadMeter() as meter:
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                est.fit(X, ytr)
                times[label].append(time.perf_counter() - t)
            foreign[label].append(meter.foreign or 0.0)
            if r == 0:
                result[label] = (float(est.loss_), float(est.score(Xt, yte)))
            print(f"  {name} r{r} {label}: {times[label][-1]:.2f} s", file=sys.stderr)
    rows = []
    for label, _, dt in impls:
        s = times[label]
        ref = times[next(lb for lb, c, d in impls if d == dt)]  # scikit-learn, same dtype
        loss, acc = result[label]
        ratio = statistics.median(a / b for a, b in zip(s, ref, strict=True))
        rows.append(f"| {name} | {label} | {statistics.median(s):.2f} ({min(s):.2f}-{max(s):.2f}) "
                    f"| {ratio:.2f} | {loss:.10g} | {acc:.4f} "
                    f"| {statistics.median(foreign[label]):.1f} |")
    return rows


def main() -> None:
    args = ARGS or parse_args()
    limit_threads(args.threads)
    env = environment(args.threads)
    print(f"{env.get('cpu', '?')}, {os.cpu_count()} CPUs, {blas_line(env)}, "
          f"load {os.getloadavg()[0]:.1f}")
    import sklearn

    print(f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}; "
          f"{args.repeats} interleaved repeats, {args.threads} BLAS thread(s)\n")
    print("| workload | implementation | fit seconds, median (min-max) | time / scikit-learn's "
          "(same dtype) "
          "| loss_ (repeat 0) | test accuracy (repeat 0) | other processes' cores |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.workloads.split(","):
        for row in run(name.strip(), args.repeats, args.n, args.epochs):
            print(row, flush=True)


if __name__ == "__main__":
    main()
