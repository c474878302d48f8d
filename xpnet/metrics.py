"""Metrics on any Array API namespace; results are arrays on the inputs' device."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import array_api_compat

from .ops import ops_of

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix", "log_loss"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _xp(*a):
    return array_api_compat.array_namespace(*a)


def _on_device(f: _F) -> _F:
    """Run ``f`` with its first array's device current (CuPy creates ``arange`` and kernel
    outputs on the current GPU)."""
    @functools.wraps(f)
    def wrapper(a: Any, *args: Any, **kwargs: Any) -> Any:
        with ops_of(a).scope(a):
            return f(a, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


@_on_device
def accuracy(y_true: Any, y_pred: Any) -> Any:
    """Fraction of equal labels.

    Parameters
    ----------
    y_true, y_pred : 1-D integer arrays of the same length

    Returns
    -------
    0-d float array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.metrics.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])))
    0.6666666666666666
    """
    xp = _xp(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {tuple(y_true.shape)}, y_pred {tuple(y_pred.shape)}")
    return xp.mean(xp.astype(y_true == y_pred, xp.float64))


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
    xp = _xp(y_true, scores)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0]:
        raise ValueError("scores must have shape (n, n_classes) matching y_true")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}], got {k}")
    classes = xp.arange(scores.shape[1], device=array_api_compat.device(scores))
    true_score = xp.sum(xp.where(xp.reshape(y_true, (-1, 1)) == classes, scores, 0.0),
                        axis=1, keepdims=True)
    higher = xp.sum(xp.astype(scores > true_score, xp.int64), axis=1)
    return xp.mean(xp.astype(higher < k, xp.float64))


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
    xp = _xp(y_true, y_pred)
    classes = xp.arange(num_classes, device=array_api_compat.device(y_true))
    # float matmul (exact for counts below 2**53): integer matmul is not supported everywhere
    t = xp.astype(xp.reshape(y_true, (-1, 1)) == classes, xp.float64)
    p = xp.astype(xp.reshape(y_pred, (-1, 1)) == classes, xp.float64)
    return xp.astype(xp.round(xp.matrix_transpose(t) @ p), xp.int64)


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
    xp = _xp(y_true, proba)
    classes = xp.arange(proba.shape[1], device=array_api_compat.device(proba))
    hit = xp.reshape(y_true, (-1, 1)) == classes
    p = xp.sum(xp.where(hit, proba, 0.0), axis=1)
    # minimum/maximum, not clip: array-api-compat's CuPy clip writes through boolean
    # masks, each a device sync
    return -xp.mean(xp.log(xp.minimum(xp.maximum(p, eps), 1.0)))
