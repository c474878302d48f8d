"""The two ways the estimators train: scikit-learn's epoch loop, and L-BFGS through SciPy.

Both compute the loss and its gradients with the model's public
[`xpnet.Sequential.loss_and_grads`][xpnet.model.Sequential.loss_and_grads] and scikit-learn's losses
(`xpnet.sklearn._losses`), plus the L2 penalty on the weight matrices.

The epoch loop is scikit-learn's ``_fit_stochastic`` step by step: the batch order from
`sklearn.utils.shuffle` with the estimator's ``RandomState``, the loss summed over
batches (weighted by their rows) on the device and read once per epoch, the ``tol`` /
``n_iter_no_change`` rule (`xpnet._best.BestWeights`, rule ``"sklearn"``), the
learning-rate schedule at the end of each epoch, and, with ``early_stopping``, the best
epoch's weights put back at the end (a diverging run keeps going, and ends with them).

L-BFGS runs `scipy.optimize.minimize` (``method="L-BFGS-B"``) on the flat
parameter vector, which lives on the host; each evaluation copies it to the model's
device, computes the full-batch loss and gradients there, and copies the gradient back
(one round trip of ``num_params`` floats per evaluation).

NumPy is used on the host for index arrays and for the L-BFGS vector.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.optimize import _check_optimize_result  # scikit-learn's own helper

from .._split import split_rows
from ..backends import to_numpy
from ..ops import ops_for
from ._data import Rows
from ._losses import add_l2_penalty, weight_keys

__all__ = ["fit_stochastic", "fit_lbfgs", "loss_and_grads"]


def loss_and_grads(est: Any, Xb: Any, yb: Any, *, decay: bool = True) -> tuple[Any, dict]:
    """The batch's loss (penalty included) and gradients, as scikit-learn's ``_backprop``."""
    model = est.model_
    value, grads = model.loss_and_grads(Xb, yb, loss=est._sk_loss(), train=True,
                                        check_values=False)
    alpha = float(est.alpha)
    if decay and alpha > 0 and est.solver != "adamw":
        value = add_l2_penalty(value, grads, model.params, weight_keys(model.params), alpha,
                               int(Xb.shape[0]))
    return value, grads


# ---------------------------------------------------------------------------
# stochastic solvers
# ---------------------------------------------------------------------------
def _split(est: Any, rows: Rows, Y: Any, strata: Any) -> tuple[Rows, Any, tuple | None]:
    """scikit-learn's early-stopping hold-out (``train_test_split``), or everything."""
    if not est.early_stopping:
        return rows, Y, None
    train_rows, val_rows = split_rows(rows.n, est.validation_fraction, policy="stratified",
                                      seed=est._random_state, labels=strata,
                                      name="validation_fraction")
    train, val = np.asarray(train_rows), np.asarray(val_rows)
    if len(val) < 2:
        raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                         "or the size of your dataset.")
    xp = est.model_.xp
    return (rows.subset(train), xp.take(Y, take_y(rows, train), axis=0),
            (rows.subset(val), xp.take(Y, take_y(rows, val), axis=0)))


def take_y(rows: Rows, idx: np.ndarray) -> Any:
    """Host indices ``idx`` on the targets' device (the targets are always dense)."""
    b = rows.backend
    return idx if b.name == "numpy" else b.asarray(idx, dtype=b.xp.int64)


def _batch_size(est: Any, n: int) -> int:
    if isinstance(est.batch_size, str):
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                      "to be clipped", stacklevel=4)
    return int(min(max(est.batch_size, 1), n))


def _epoch(est: Any, rows: Rows, Y: Any, bs: int, order: np.ndarray | None) -> float:
    """One pass over the rows; returns the mean loss (one read from the device)."""
    model, opt = est.model_, est._optimizer
    dev_order: Any = None if order is None else rows.index(order)
    y_order: Any = None if order is None else take_y(rows, order)
    xp = model.xp
    total: Any = 0.0
    for lo in range(0, rows.n, bs):
        sl = slice(lo, min(lo + bs, rows.n))
        if order is None:
            Xb, yb = rows.take(sl), Y[sl, ...]
        else:
            Xb, yb = rows.take(dev_order[sl]), xp.take(Y, y_order[sl], axis=0)
        value, grads = loss_and_grads(est, Xb, yb)
        total = total + value * (sl.stop - sl.start)
        opt.update(model.params, grads)
    return float(total) / rows.n


def _end_of_epoch(est: Any, val: tuple | None) -> bool:
    """scikit-learn's bookkeeping after an epoch; True when training should stop."""
    est._update_no_improvement_count(val)
    est._optimizer.iteration_ends(est.t_)
    if est._no_improvement_count <= est.n_iter_no_change:
        return False
    what = ("Validation score did not improve" if val is not None
            else "Training loss did not improve")
    msg = (f"{what} more than tol={est.tol:f} for {est.n_iter_no_change} "
           "consecutive epochs.")
    if est._optimizer.trigger_stopping(msg, est.verbose):
        return True
    est._best.wait = est._no_improvement_count = 0
    return False


def fit_stochastic(est: Any, rows: Rows, Y: Any, strata: Any, incremental: bool) -> None:
    """scikit-learn's ``_fit_stochastic``: epochs of mini-batch steps on ``rows``/``Y``."""
    if not incremental or getattr(est, "_optimizer", None) is None:
        est._optimizer = est._make_optimizer()
    est._start_stochastic()
    rows, Y, val = _split(est, rows, Y, strata)
    bs = _batch_size(est, rows.n)
    sample_idx = np.arange(rows.n, dtype=int)
    model = est.model_
    # the package's per-fit memory setup (the Trainer's): freed step memory is reused
    with ops_for(model.backend).training(num_params=model.num_params,
                                         n_updates=est.max_iter * -(-rows.n // bs)):
        _epochs(est, rows, Y, bs, sample_idx, val, incremental)
    if est.early_stopping:
        est._restore_best()


def _epochs(est: Any, rows: Rows, Y: Any, bs: int, sample_idx: np.ndarray, val: tuple | None,
            incremental: bool) -> None:
    try:
        est.n_iter_ = 0
        for _ in range(int(est.max_iter)):
            order = None
            if est.shuffle:
                sample_idx = sk_shuffle(sample_idx, random_state=est._random_state)
                order = sample_idx
            est.loss_ = _epoch(est, rows, Y, bs, order)
            est.n_iter_ += 1
            est.t_ += rows.n
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
            if _end_of_epoch(est, val) or incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning, stacklevel=5)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.", stacklevel=5)


# ---------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------
def _layout(params: dict) -> list[tuple[str, int, int, tuple]]:
    """``(key, start, stop, shape)`` of each parameter in scikit-learn's packing order.

    scikit-learn packs every weight matrix first, then every bias vector.
    """
    keys = [k for k in params if k.endswith(".W")] + [k for k in params if k.endswith(".b")]
    out, start = [], 0
    for k in keys:
        shape = tuple(params[k].shape)
        size = math.prod(shape)
        out.append((k, start, start + size, shape))
        start += size
    return out


def _full_loss_grad(est: Any, rows: Rows, Y: Any) -> tuple[Any, dict]:
    """Loss and gradients over every row (sparse rows: a weighted sum over dense chunks)."""
    if not rows.sparse:
        return loss_and_grads(est, rows.X, Y)
    total: Any = None
    acc: Any = None
    for sl, block in rows.chunks():
        w = (sl.stop - sl.start) / rows.n
        value, grads = loss_and_grads(est, block, Y[sl, ...], decay=False)
        total = value * w if total is None else total + value * w
        acc = ({k: g * w for k, g in grads.items()} if acc is None
               else {k: acc[k] + g * w for k, g in grads.items()})
    model = est.model_
    if est.alpha > 0 and est.solver != "adamw":
        total = add_l2_penalty(total, acc, model.params, weight_keys(model.params),
                               float(est.alpha), rows.n)
    return total, acc


def fit_lbfgs(est: Any, rows: Rows, Y: Any) -> None:
    """scikit-learn's ``_fit_lbfgs``: L-BFGS-B on the flat parameter vector."""
    model = est.model_
    layout = _layout(model.params)
    backend, dtype = model.backend, model.dtype

    def unpack(theta: np.ndarray) -> None:
        for k, lo, hi, shape in layout:
            model.params[k] = backend.asarray(theta[lo:hi].reshape(shape), dtype=dtype)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        unpack(theta)
        value, grads = _full_loss_grad(est, rows, Y)
        grad = np.concatenate([to_numpy(grads[k]).ravel() for k, *_ in layout])
        return float(value), grad.astype(np.float64, copy=False)

    seen = [0]

    def progress(intermediate_result: Any) -> None:
        seen[0] += 1
        print(f"Iteration {seen[0]}, loss = {intermediate_result.fun:.8f}")

    x0 = np.concatenate([to_numpy(model.params[k]).ravel() for k, *_ in layout])
    with ops_for(backend).training(num_params=model.num_params, n_updates=int(est.max_fun)):
        res = scipy.optimize.minimize(
            fun, x0.astype(np.float64), method="L-BFGS-B", jac=True,
            callback=progress if est.verbose else None,
            options={"maxfun": int(est.max_fun), "maxiter": int(est.max_iter),
                     "gtol": est.tol})
    est.n_iter_ = _check_optimize_result("lbfgs", res, est.max_iter)
    est.loss_ = float(res.fun)
    unpack(np.array(res.x, dtype=np.float64, copy=True))
