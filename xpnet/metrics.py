"""Metrics on any Array API namespace; results are arrays on the inputs' device.

The inputs of one call must come from one library and one device; anything
else is refused with a message that says how to convert.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import array_api_compat

from ._checks import _a, _kind
from .backends import backend_of
from .ops import ops_of

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "log_loss", "mean_absolute_error",
           "root_mean_squared_error", "r2_score"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _xp(**arrays: Any) -> Any:
    """The backend of the named arrays; refuse non-arrays, mixed libraries or devices."""
    named = [(name, a) for name, a in arrays.items() if a is not None]
    (first_name, first), first_be = named[0], None
    for name, a in named:
        if not array_api_compat.is_array_api_obj(a):
            raise TypeError(f"{name} must be an array, got {type(a).__name__}")
        be = backend_of(a)
        first_be = first_be or be
        if be.name != first_be.name:
            kind, other = _kind(a), _kind(first)
            raise TypeError(f"{name} is {_a(kind)} {kind} array but {first_name} is "
                            f"{_a(other)} {other} array; "
                            f"pass arrays of one library (e.g. xn.to_numpy({name}) and "
                            f"xn.to_numpy({first_name}))")
        if str(be.device) != str(first_be.device):
            raise TypeError(f"{name} is on device {be.device} but {first_name} is on "
                            f"{first_be.device}; move them to one device first")
    return first_be


def _check_shapes(name: str, a: Any, other: str, b: Any) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name} has shape {tuple(a.shape)}, {other} {tuple(b.shape)}")


def _is_class(xp: Any, y: Any, k: int, like: Any) -> Any:
    """(n, k) booleans, row ``i`` True in column ``y[i]``, on ``like``'s device."""
    return xp.reshape(y, (-1, 1)) == xp.arange(k, device=array_api_compat.device(like))


def _on_device(f: _F) -> _F:
    """Run `f` with its first array's device current (CuPy makes arrays on the current GPU)."""
    @functools.wraps(f)
    def wrapper(a: Any, *args: Any, **kwargs: Any) -> Any:
        with ops_of(a).scope(a):
            return f(a, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


@_on_device
def accuracy(y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
    """Fraction of equal labels (weighted by ``sample_weight`` when given).

    Parameters
    ----------
    y_true, y_pred : 1-D integer arrays of the same length
    sample_weight : 1-D array of the same length, optional
        Non-negative weights: the result is ``sum(w * (y_true == y_pred)) / sum(w)``.

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.metrics.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])))
    0.6666666666666666
    >>> float(xn.metrics.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]),
    ...                           sample_weight=np.array([1.0, 1.0, 2.0])))
    0.5
    """
    be = _xp(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
    xp, f64 = be.xp, be.wide_float
    _check_shapes("y_true", y_true, "y_pred", y_pred)
    hits = xp.astype(y_true == y_pred, f64)
    if sample_weight is None:
        return xp.mean(hits)
    _check_shapes("sample_weight", sample_weight, "y_true", y_true)
    w = xp.astype(sample_weight, f64)
    return xp.sum(hits * w) / xp.sum(w)


@_on_device
def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> Any:
    """Fraction of rows whose true label is among the ``k`` highest scores.

    Parameters
    ----------
    y_true : 1-D integer array of length n
    scores : array of shape (n, n_classes)
    k : int

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> scores = np.array([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05]])
    >>> y = np.array([2, 1])  # each true class is second best
    >>> [float(xn.metrics.top_k_accuracy(y, scores, k=k)) for k in (1, 2)]
    [0.0, 1.0]
    """
    be = _xp(y_true=y_true, scores=scores)
    xp = be.xp
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0]:
        raise ValueError("scores must have shape (n, n_classes) matching y_true")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}], got {k}")
    true_score = xp.sum(xp.where(_is_class(xp, y_true, scores.shape[1], scores), scores, 0.0),
                        axis=1, keepdims=True)
    higher = xp.sum(xp.astype(scores > true_score, be.index_dtype), axis=1)
    return xp.mean(xp.astype(higher < k, be.wide_float))


@_on_device
def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> Any:
    """Counts ``C[i, j]`` of samples with true class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true, y_pred : 1-D integer arrays
    num_classes : int

    Returns
    -------
    int64 array of shape (num_classes, num_classes)

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.metrics.confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    be = _xp(y_true=y_true, y_pred=y_pred)
    xp, f64 = be.xp, be.wide_float
    # float matmul (exact for counts below 2**53): integer matmul is not supported everywhere
    t = xp.astype(_is_class(xp, y_true, num_classes, y_true), f64)
    p = xp.astype(_is_class(xp, y_pred, num_classes, y_true), f64)
    return xp.astype(xp.round(xp.matrix_transpose(t) @ p), be.index_dtype)


@_on_device
def log_loss(y_true: Any, proba: Any, eps: float = 1e-12) -> Any:
    """Mean negative log-likelihood of the true classes under ``proba``.

    Parameters
    ----------
    y_true : 1-D integer array of length n
    proba : array of shape (n, n_classes), rows summing to one
    eps : float
        Probabilities are clipped to ``[eps, 1]``.

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> proba = np.array([[0.5, 0.5], [0.0, 1.0]])
    >>> round(float(xn.metrics.log_loss(np.array([0, 1]), proba)), 4)  # (log 2 + 0) / 2
    0.3466
    """
    xp = _xp(y_true=y_true, proba=proba).xp
    p = xp.sum(xp.where(_is_class(xp, y_true, proba.shape[1], proba), proba, 0.0), axis=1)
    # minimum/maximum, not clip: array-api-compat's CuPy clip writes through boolean
    # masks, each a device sync
    return -xp.mean(xp.log(xp.minimum(xp.maximum(p, eps), 1.0)))


def _regression_pair(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
    """The namespace and both arrays as wide floats of one shape ((n, 1) and (n,) agree)."""
    be = _xp(y_true=y_true, y_pred=y_pred)
    xp, f64 = be.xp, be.wide_float
    if y_pred.ndim == 2 and y_pred.shape[1] == 1 and y_true.ndim == 1:
        y_pred = xp.reshape(y_pred, (-1,))
    if y_true.ndim == 2 and y_true.shape[1] == 1 and y_pred.ndim == 1:
        y_true = xp.reshape(y_true, (-1,))
    _check_shapes("y_true", y_true, "y_pred", y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty")
    return xp, xp.astype(y_true, f64), xp.astype(y_pred, f64)


@_on_device
def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    """Mean of ``|y_true - y_pred|`` over every element.

    Parameters
    ----------
    y_true, y_pred : arrays of the same shape
        Targets and predictions; a 1-D `y_true` and an ``(n, 1)`` `y_pred` are compared
        row by row.

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.metrics.mean_absolute_error(np.array([1.0, 2.0, 4.0]),
    ...                                      np.array([1.5, 2.0, 3.0])))
    0.5
    """
    xp, t, p = _regression_pair(y_true, y_pred)
    return xp.mean(xp.abs(t - p))


@_on_device
def root_mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    """Square root of the mean of ``(y_true - y_pred) ** 2`` over every element.

    Parameters
    ----------
    y_true, y_pred : arrays of the same shape
        Targets and predictions; a 1-D `y_true` and an ``(n, 1)`` `y_pred` are compared
        row by row.

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.metrics.root_mean_squared_error(np.array([0.0, 0.0]),
    ...                                          np.array([3.0, 4.0])))  # sqrt(12.5)
    3.5355339059327378
    """
    xp, t, p = _regression_pair(y_true, y_pred)
    d = t - p
    return xp.sqrt(xp.mean(d * d))


@_on_device
def r2_score(y_true: Any, y_pred: Any) -> Any:
    """Coefficient of determination, ``1 - sum((y - p)**2) / sum((y - mean(y))**2)``.

    1 is a perfect fit, 0 is what predicting the mean of `y_true` scores, and a model
    worse than that scores below 0. Several outputs (2-D arrays) are averaged, each
    column scored on its own, as scikit-learn's ``r2_score`` does by default. A
    constant `y_true` scores 1 when predicted exactly and 0 otherwise.

    Parameters
    ----------
    y_true, y_pred : arrays of the same shape
        Targets and predictions; a 1-D `y_true` and an ``(n, 1)`` `y_pred` are compared
        row by row.

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> y = np.array([1.0, 2.0, 3.0, 4.0])
    >>> float(xn.metrics.r2_score(y, y)), float(xn.metrics.r2_score(y, np.full(4, 2.5)))
    (1.0, 0.0)
    >>> round(float(xn.metrics.r2_score(y, np.array([1.0, 2.0, 3.0, 2.0]))), 6)
    0.2
    """
    xp, t, p = _regression_pair(y_true, y_pred)
    d = t - p
    c = t - xp.mean(t, axis=0)
    ss_res = xp.sum(d * d, axis=0)
    ss_tot = xp.sum(c * c, axis=0)
    constant = ss_tot == 0.0
    # a constant target: 1 when predicted exactly (1 - 0), else 0 (1 - 1)
    ratio = xp.where(constant, xp.astype(ss_res != 0.0, ss_res.dtype),
                     ss_res / xp.where(constant, 1.0, ss_tot))
    return xp.mean(1.0 - ratio)
