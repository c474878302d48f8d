"""``fit(metrics=[...])``: the metrics of each epoch, on the training and the validation data.

A metric is a function ``fn(y_true, y_pred) -> number`` of the targets and the model's
predictions (``model.predict_proba``: class probabilities for classifiers, the outputs
for regressors), or the name of a built-in one of [`xpnet.metrics`][]. Each is computed
at the end of every epoch over the whole training data and the validation data, with
the epoch's final parameters, in evaluation mode (exact for metrics that are not means,
such as R²; one more forward pass over the training data per epoch).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from .. import metrics as _m

Metric = tuple[str, Callable[[Any, Any], Any]]

_REGRESSION = {"mae": _m.mean_absolute_error, "mean_absolute_error": _m.mean_absolute_error,
               "rmse": _m.root_mean_squared_error,
               "root_mean_squared_error": _m.root_mean_squared_error,
               "r2": _m.r2_score, "r2_score": _m.r2_score}
_TOP_K = re.compile(r"top_(k|\d+)_accuracy")
_TAKEN = ("loss", "accuracy", "lr", "seconds", "skipped_steps", "samples_seen")


def resolve(metrics: Any, model: Any) -> list[Metric]:
    """The ``(log name, function)`` of each metric asked for, checked against the model."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, tuple)) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, list):
        raise TypeError(f"metrics must be a list of names or functions, got "
                        f"{type(metrics).__name__}")
    out: list[Metric] = []
    for m in metrics:
        item = _one(m, model)
        if item is None:
            continue
        if item[0] in (n for n, _ in out):
            raise ValueError(f"metrics names {item[0]!r} twice")
        out.append(item)
    return out


def _one(m: Any, model: Any) -> Metric | None:
    if isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str) and callable(m[1]):
        name, fn = m
    elif isinstance(m, str):
        return _builtin(m, model)
    elif callable(m):
        name = getattr(m, "__name__", "")
        if not name.isidentifier():
            raise ValueError(f"the metric {m!r} has no usable name ({name!r}); pass it as "
                             "('name', function)")
        fn = m
    else:
        raise TypeError(f"a metric is a name, a function (y_true, y_pred) -> number or a "
                        f"('name', function) pair, got {m!r}")
    if name in _TAKEN or name.startswith("val_"):
        raise ValueError(f"the metric name {name!r} is taken by fit's own logs "
                         f"({', '.join(_TAKEN)}, val_...); choose another")
    return name, fn


def _builtin(name: str, model: Any) -> Metric | None:
    classification = model.loss.classification and model.out_features > 1
    if name == "accuracy":
        if model.loss.classification:
            return None  # reported for every classifier already
        raise ValueError("metric 'accuracy' needs a classification loss; this model's loss "
                         f"is {model.loss.name!r} (try 'mae' or 'r2')")
    if name in _REGRESSION:
        if model.loss.classification:
            raise ValueError(f"metric {name!r} compares float targets with outputs; this "
                             f"model is a classifier ({model.loss.name!r})")
        return name, _REGRESSION[name]
    match = _TOP_K.fullmatch(name)
    if match:
        k = 5 if match.group(1) == "k" else int(match.group(1))
        if not classification or not 1 <= k <= model.out_features:
            raise ValueError(f"metric {name!r} needs a classifier with at least {k} classes; "
                             f"this model has {model.out_features} outputs and the loss "
                             f"{model.loss.name!r}")
        return name, partial(_m.top_k_accuracy, k=k)
    raise ValueError(f"unknown metric {name!r}; built-in: accuracy, mae, rmse, r2, "
                     "top_k_accuracy (k=5), top_<k>_accuracy, or pass a function "
                     "(y_true, y_pred) -> number")


def check(metrics: list[Metric], model: Any, X: Any, y: Any) -> None:
    """Run every metric once on a few rows, so that a failing one stops ``fit`` before
    any training."""
    if not metrics:
        return
    rows = min(8, X.shape[0])
    Xs = X.batch_rows(0, rows) if hasattr(X, "batch_rows") else X[:rows, ...]
    values(metrics, model, Xs, y[:rows, ...], "", what=f"on the first {rows} rows of X")


def values(metrics: list[Metric], model: Any, X: Any, y: Any, prefix: str,
           what: str = "") -> dict[str, float]:
    """Each metric of the model's predictions for ``X`` against ``y``, as floats."""
    if not metrics:
        return {}
    proba = model.predict_proba(X)
    out = {}
    for name, fn in metrics:
        try:
            out[prefix + name] = float(fn(y, proba))
        except Exception as exc:  # the user's function: name it and what it was given
            raise ValueError(f"metric {name!r} failed{' ' + what if what else ''} "
                             f"(y_true of shape {tuple(y.shape)}, y_pred of shape "
                             f"{tuple(proba.shape)}): {type(exc).__name__}: {exc}") from exc
    return out
