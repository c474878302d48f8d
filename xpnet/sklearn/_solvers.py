"""The two ways the estimators train: scikit-learn's epoch loop, and L-BFGS through SciPy.

Both compute the loss and its gradients with the model's public
[`xpnet.Sequential.loss_and_grads`][xpnet.model.Sequential.loss_and_grads] and scikit-learn's losses
(`xpnet.sklearn._losses`), plus the L2 penalty on the weight matrices.

The epoch loop is scikit-learn's ``_fit_stochastic`` step by step: the batch order from
`sklearn.utils.shuffle` with the estimator's ``RandomState``, the loss summed over
batches (weighted by their rows) on the device and read once per epoch, the ``tol`` /
``n_iter_no_change`` rule (`xpnet.callbacks._BestWeights`, rule ``"sklearn"``), the
learning-rate schedule at the end of each epoch, and, with ``early_stopping``, the best
epoch's weights put back at the end (a diverging run keeps going, and ends with them).

L-BFGS runs `scipy.optimize.minimize` (``method="L-BFGS-B"``) on the flat
parameter vector, which lives on the host; each evaluation copies it to the model's
device, computes the full-batch loss and gradients there, and copies the gradient back
(one round trip of ``num_params`` floats per evaluation).

With ``sample_weight`` every loss is the weighted mean over the batch (the model's
``loss_and_grads(sample_weight=)``) and the L2 term is divided by the sum of the
batch's weights instead of its rows, as in scikit-learn's ``_backprop``; the sums come
from the host copy of the weights (`xpnet.sklearn._data.Weights`), so no step
reads the device. ``loss_`` stays the row-weighted mean of the batch losses, as
scikit-learn reports it.

NumPy is used on the host for index arrays, the weights' sums and the L-BFGS vector.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import shuffle as sk_shuffle
from sklearn.utils.optimize import _check_optimize_result  # scikit-learn's own helper

from .._split import split_rows
from ..backends import _namespace_of, to_numpy  # the package's cached namespace lookup
from ..callbacks import _BestWeights as BestWeights
from ..ops import ops_for
from ._data import Samples, batches, device_index, take_on_device
from ._losses import layer_keys

__all__ = ["fit_stochastic", "fit_lbfgs", "loss_and_grads"]


def loss_and_grads(est: Any, Xb: Any, yb: Any, *, weight: Any = None, total: float | None = None,
                   decay: bool = True) -> tuple[Any, dict]:
    """The batch's loss with the L2 term and gradients, as scikit-learn's ``_backprop``."""
    value, grads = est.model_.loss_and_grads(Xb, yb, loss=est._sk_loss(), train=True,
                                             check_values=False, sample_weight=weight)
    if not decay:
        return value, grads
    return _with_l2(est, value, grads, float(Xb.shape[0]) if total is None else total)


def _with_l2(est: Any, value: Any, grads: dict, n: float) -> tuple[Any, dict]:
    """scikit-learn's L2 term with divisor `n` added to `value` and `grads` (none for adamw)."""
    alpha, params = float(est.alpha), est.model_.params
    if alpha == 0 or est.solver == "adamw":
        return value, grads
    # alpha / (2 n) * sum(W**2) over the weight matrices, the sum from 0 as scikit-learn's;
    # gradient alpha / n * W
    total: Any = 0.0
    for k in layer_keys(params, ".W"):
        xp = _namespace_of(params[k])
        w = xp.reshape(params[k], (-1,))
        total = total + xp.vecdot(w, w)
        grads[k] = grads[k] + params[k] * (alpha / n)
    return value + (0.5 * alpha) * total / float(n), grads


# ---------------------------------------------------------------------------
# stochastic solvers
# ---------------------------------------------------------------------------
def _split(est: Any, data: Samples, strata: Any) -> tuple[Samples, Samples | None]:
    """The early-stopping hold-out, weights with their rows (all-zero held-out weights refused)."""
    if not est.early_stopping:
        return data, None
    train_rows, val_rows = split_rows(data.rows.n, est.validation_fraction,
                                      policy="stratified", seed=est._random_state,
                                      labels=strata, name="validation_fraction")
    train, val = np.asarray(train_rows), np.asarray(val_rows)
    if len(val) < 2:
        raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                         "or the size of your dataset.")
    val_data = data.subset(val)
    if val_data.weights is not None:
        _check_validation_weights(val_data.weights.host)
    return data.subset(train), val_data


def _check_validation_weights(w: np.ndarray) -> None:
    """The errors scikit-learn's weighted accuracy and R^2 raise for these weights."""
    where = (f"the sample weights of the {len(w)} rows held out for early stopping "
             "(validation_fraction)")
    if not w.any():
        raise ValueError(f"Sample weights must contain at least one non-zero number: {where} "
                         "are all zero, so the validation score is not defined")
    if float(w.sum()) == 0.0:
        raise ZeroDivisionError(f"Weights sum to zero, can't be normalized: {where} sum to "
                                "zero, so the validation score is not defined")


def _batch_size(est: Any, n: int) -> int:
    if isinstance(est.batch_size, str):
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                      "to be clipped", stacklevel=4)
    return int(min(max(est.batch_size, 1), n))


def _epoch(est: Any, data: Samples, bs: int, order: np.ndarray | None) -> float:
    """One pass over the rows; returns the mean loss (one read from the device)."""
    model, opt = est.model_, est._optimizer
    rows, w, b = data.rows, data.weights, data.rows.backend
    y_order: Any = None if order is None else device_index(b, order)
    x_order: Any = order if rows.sparse else y_order
    sums = None if w is None else w.batch_sums(order, bs)  # every batch checked before a step
    total: Any = 0.0
    for i, sl in enumerate(batches(rows.n, bs)):
        x_idx, y_idx = (sl, sl) if order is None else (x_order[sl], y_order[sl])
        size = sl.stop - sl.start
        value, grads = loss_and_grads(est, rows.take(x_idx), take_on_device(b, data.Y, y_idx),
                                      weight=None if w is None else w.take(y_idx),
                                      total=float(size if sums is None else sums[i]))
        total = total + value * size  # scikit-learn weighs each batch by its rows
        opt.update(model.params, grads)
    return float(total) / rows.n


def _start_progress(est: Any) -> None:
    """Progress that suits ``early_stopping`` (scikit-learn's ``_initialize``); tol read anew."""
    stopping = bool(est.early_stopping)
    if getattr(est, "_best", None) is None or est._best.mode != ("max" if stopping else "min"):
        est.loss_curve_ = []
        est._no_improvement_count = 0
        # As in scikit-learn, which of these is None depends on early_stopping.
        est.validation_scores_ = [] if stopping else None
        est.best_validation_score_ = -math.inf if stopping else None
        est.best_loss_ = None if stopping else math.inf
        est._best = BestWeights("max" if stopping else "min", rule="sklearn")
        xp = est.model_.xp  # the initial weights are the fallback "best" (scikit-learn's)
        est._best.params = {k: xp.asarray(v, copy=True) for k, v in est.model_.params.items()}
    # read anew on every fit, as scikit-learn does (set_params between warm starts)
    est._best.min_delta, est._best.patience = float(est.tol), est.n_iter_no_change


def _end_of_epoch(est: Any, val: Samples | None) -> bool:
    """scikit-learn's ``tol`` rule and schedule after an epoch; True when training should stop."""
    if val is not None:  # the held-out score, weighted by their sample weights, if any
        score = est._score_outputs(est._outputs(val.rows), val.Y,
                                   None if val.weights is None else val.weights.device)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        est._best.update(score, est.model_.params)  # keeps the best epoch's weights
        est.best_validation_score_ = est._best.best
    else:
        est._best.update(est.loss_curve_[-1])
        est.best_loss_ = est._best.best
    est._no_improvement_count = est._best.wait
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


def fit_stochastic(est: Any, data: Samples, strata: Any, incremental: bool) -> None:
    """scikit-learn's ``_fit_stochastic``: epochs of mini-batch steps on ``data``."""
    if not incremental or getattr(est, "_optimizer", None) is None:
        est._optimizer = est._make_optimizer()
    _start_progress(est)
    data, val = _split(est, data, strata)
    bs = _batch_size(est, data.rows.n)
    sample_idx = np.arange(data.rows.n, dtype=int)
    model = est.model_
    est.n_iter_ = 0
    # the package's per-fit memory setup (the Trainer's): freed step memory is reused
    with ops_for(model.backend).training(num_params=model.num_params,
                                         n_updates=est.max_iter * -(-data.rows.n // bs)):
        try:
            for _ in range(int(est.max_iter)):
                if est.shuffle:
                    sample_idx = sk_shuffle(sample_idx, random_state=est._random_state)
                est.loss_ = _epoch(est, data, bs, sample_idx if est.shuffle else None)
                est.n_iter_ += 1
                est.t_ += data.rows.n
                est.loss_curve_.append(est.loss_)
                if est.verbose:
                    print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
                if _end_of_epoch(est, val) or incremental:
                    break
                if est.n_iter_ == est.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) "
                                  "reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
    best = est._best.params  # the best epoch's weights (a run that never improved keeps its own)
    if est.early_stopping and best is not None:
        est.model_.params = {k: best[k] for k in model.params}
        est._best.params = None


# ---------------------------------------------------------------------------
# L-BFGS
# ---------------------------------------------------------------------------
def _layout(params: dict) -> list[tuple[str, int, int, tuple]]:
    """``(key, start, stop, shape)`` per parameter, packed as scikit-learn: weights, then biases."""
    keys = layer_keys(params, ".W") + layer_keys(params, ".b")
    sizes = [math.prod(params[k].shape) for k in keys]
    ends = list(itertools.accumulate(sizes))
    return [(k, end - size, end, tuple(params[k].shape))
            for k, size, end in zip(keys, sizes, ends, strict=True)]


def _full_loss_grad(est: Any, data: Samples) -> tuple[Any, dict]:
    """Loss and gradients over every row: each chunk's, weighted by its share of the rows."""
    rows, w = data.rows, data.weights
    whole = float(rows.n) if w is None else float(w.host.sum())
    total: Any = None
    acc: Any = None
    for sl, block in rows.chunks():  # dense rows: one chunk, its share exactly 1
        value, grads = loss_and_grads(est, block, data.Y[sl, ...],
                                      weight=None if w is None else w.take(sl), decay=False)
        share = (sl.stop - sl.start if w is None else float(w.host[sl].sum())) / whole
        if share != 1.0:
            value, grads = value * share, {k: g * share for k, g in grads.items()}
        total = value if total is None else total + value
        acc = grads if acc is None else {k: acc[k] + g for k, g in grads.items()}
    return _with_l2(est, total, acc, whole)


def fit_lbfgs(est: Any, data: Samples) -> None:
    """scikit-learn's ``_fit_lbfgs``: L-BFGS-B on the flat parameter vector."""
    model = est.model_
    layout = _layout(model.params)
    backend, dtype = model.backend, model.dtype

    def unpack(theta: np.ndarray) -> None:
        for k, lo, hi, shape in layout:
            model.params[k] = backend.asarray(theta[lo:hi].reshape(shape), dtype=dtype)

    def flat(arrays: dict) -> np.ndarray:
        parts = [to_numpy(arrays[k]).ravel() for k, *_ in layout]
        return np.concatenate(parts).astype(np.float64, copy=False)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        unpack(theta)
        value, grads = _full_loss_grad(est, data)
        return float(value), flat(grads)

    seen = itertools.count(1)

    def progress(intermediate_result: Any) -> None:
        print(f"Iteration {next(seen)}, loss = {intermediate_result.fun:.8f}")

    with ops_for(backend).training(num_params=model.num_params, n_updates=int(est.max_fun)):
        res = scipy.optimize.minimize(
            fun, flat(model.params), method="L-BFGS-B", jac=True,
            callback=progress if est.verbose else None,
            options={"maxfun": int(est.max_fun), "maxiter": int(est.max_iter),
                     "gtol": est.tol})
    est.n_iter_ = _check_optimize_result("lbfgs", res, est.max_iter)
    est.loss_ = float(res.fun)
    unpack(np.array(res.x, dtype=np.float64, copy=True))
