"""scikit-learn's Array API conventions for the estimators: "everything follows ``X``".

``check_same_namespace`` and ``move_to`` are scikit-learn's helpers (private module,
no public alias); releases that lack them get the fallbacks below, with the same
messages. NumPy is used on the host for NumPy outputs.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
from sklearn import get_config
from sklearn.utils._array_api import (  # scikit-learn's Array API helpers (no public alias)
    get_namespace,
    get_namespace_and_device,
)

from ..backends import to_numpy
from ._data import is_sparse

__all__ = ["as_output", "check_same_namespace", "float_dtypes", "get_namespace_and_device",
           "move_to"]


def _fallback_check_same_namespace(X, estimator, *, attribute, method):
    """scikit-learn's ``check_same_namespace`` for releases that lack it (same message)."""
    if not get_config()["array_api_dispatch"]:
        return
    a_xp, _, a_device = get_namespace_and_device(getattr(estimator, attribute))
    X_xp, _, X_device = get_namespace_and_device(X)
    if X_xp == a_xp and X_device == a_device:
        return
    if array_api_compat.is_numpy_namespace(a_xp) and array_api_compat.is_numpy_namespace(X_xp):
        return
    raise ValueError(
        f"Inputs passed to {type(estimator).__name__}.{method}() must use the same namespace "
        f"and the same device as those passed to fit(). Fit used {a_xp.__name__} on "
        f"{a_device}, {method} got {X_xp.__name__} on {X_device}."
    )


def _fallback_move_to(array, *, xp, device):
    """scikit-learn's ``move_to`` (one array) for releases that lack it."""
    if array_api_compat.array_namespace(array) == xp and array_api_compat.device(array) == device:
        return array
    return xp.asarray(to_numpy(array), device=device)


try:  # scikit-learn >= 1.8 or so; xpnet[sklearn] allows >= 1.6
    from sklearn.utils._array_api import check_same_namespace
except ImportError:  # pragma: no cover - older scikit-learn
    check_same_namespace = _fallback_check_same_namespace
try:
    from sklearn.utils._array_api import move_to
except ImportError:  # pragma: no cover - older scikit-learn
    move_to = _fallback_move_to


def as_output(a: Any, X: Any) -> Any:
    """Model output `a` as scikit-learn returns it for validated `X` (NumPy for NumPy or sparse)."""
    return to_numpy(a) if isinstance(X, np.ndarray) or is_sparse(X) else a


def float_dtypes(X: Any) -> tuple:
    """The float dtypes ``validate_data`` may keep, in `X`'s namespace."""
    xp, _ = get_namespace(X)
    return (xp.float64, xp.float32)
