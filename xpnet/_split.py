"""The validation split: one function, three documented policies.

NumPy is used on the host here for index arithmetic only; the rows themselves are taken
on the data's own namespace and device by `take_rows`.

Which rows are held out is a choice each caller makes on purpose (see "Validation
splits" in ``docs/design.md``):

``"last"``, used by [`xpnet.fit`][] (``validation_split=``)
    The last ``floor(n * fraction)`` rows, as Keras does. Nothing random, nothing
    copied: the split is two slices of the device arrays, so a user who ordered the
    data (say, by time) knows exactly which rows are held out.
``"random"``, used by ``xpnet train`` (``--val-split``)
    ``floor(n * fraction)`` rows drawn with ``numpy.random.default_rng(seed)``, both
    parts in data order. The CLI trains on dataset files that are often sorted by
    label, where the last rows would be one class.
``"stratified"``, used by the ``xpnet.sklearn`` estimators (``early_stopping``)
    `sklearn.model_selection.train_test_split` with ``test_size=fraction``
    (``ceil``), ``random_state=seed`` and ``stratify=labels`` (a plain shuffled split
    when ``labels`` is None, as for regressors): the split scikit-learn's own MLP
    estimators make, so results match theirs. scikit-learn is imported only here.

`split_rows` refuses (``ValueError`` naming the caller's argument) a fraction outside
``[0, 1)`` and a split that leaves either part empty or that scikit-learn refuses.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from . import _checks

__all__ = ["POLICIES", "split_rows", "take_rows"]

POLICIES = ("last", "random", "stratified")

#: Rows of one part: a slice ("last"), or host int64 indices, sorted ("random") or in
#: scikit-learn's shuffled order ("stratified").
Rows = slice | np.ndarray


def split_rows(n: int, fraction: float, *, policy: str, seed: Any = None, labels: Any = None,
               name: str = "validation_split") -> tuple[Rows, Rows | None]:
    """(train, val) row selectors for `take_rows` (val None when `fraction` is 0)."""
    policy = _checks.check_choice("policy", policy, POLICIES)
    n = _checks.check_int("n", n)
    fraction = _checks.check_float(name, fraction, low=0.0, high=1.0)
    if labels is not None and policy != "stratified":
        raise ValueError(f"labels are used by the 'stratified' policy only, not {policy!r}")
    if fraction == 0:
        return (slice(0, n) if policy == "last" else np.arange(n)), None
    if policy == "stratified":  # scikit-learn's own split, its refusals named by `name`
        from sklearn.model_selection import train_test_split

        try:
            train, val = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                          stratify=labels)
        except ValueError as exc:
            raise ValueError(f"{name}={fraction}: cannot split off a validation set: {exc}") \
                from exc
        return train, val
    n_val = int(math.floor(n * fraction))
    if not 1 <= n_val < n:
        raise ValueError(f"{name}={fraction} leaves {n_val} validation and {n - n_val} "
                         "training rows; both must be >= 1")
    if policy == "last":
        return slice(0, n - n_val), slice(n - n_val, n)
    perm = np.random.default_rng(_checks.check_int("seed", seed, minimum=0)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def take_rows(a: Any, rows: Rows) -> Any:
    """`rows` of `a` on its own namespace and device (a slice is a view)."""
    if isinstance(rows, slice) or isinstance(a, np.ndarray):
        return a[rows, ...]
    xp = array_api_compat.array_namespace(a)
    return xp.take(a, xp.asarray(rows, device=array_api_compat.device(a)), axis=0)
