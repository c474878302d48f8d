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
    """Choose the training and validation rows of ``n`` samples.

    Parameters
    ----------
    n : int
        Number of rows.
    fraction : float
        Share held out for validation, in ``[0, 1)``; 0 holds out nothing.
    policy : {"last", "random", "stratified"}
        Which rows (see the module docstring for who uses which, and why).
    seed : int, numpy.random.RandomState or None
        ``"random"``: the seed of ``numpy.random.default_rng`` (an int, required).
        ``"stratified"``: scikit-learn's ``random_state``. Not used by ``"last"``.
    labels : array-like of shape (n,), optional
        ``"stratified"`` only: host class labels to stratify on.
    name : str
        The caller's name for ``fraction``, used in error messages.

    Returns
    -------
    train, val : slice or numpy.ndarray
        Row selectors for `take_rows`; ``val`` is None when ``fraction`` is 0.

    Raises
    ------
    ValueError
        For an unknown policy, a fraction outside ``[0, 1)``, or a split that leaves
        either part empty (or that scikit-learn refuses, e.g. fewer validation rows
        than classes).

    Examples
    --------
    >>> from xpnet._split import split_rows
    >>> split_rows(10, 0.2, policy="last")
    (slice(0, 8, None), slice(8, 10, None))
    >>> train, val = split_rows(10, 0.2, policy="random", seed=0)
    >>> len(train), len(val), sorted([*train, *val]) == list(range(10))
    (8, 2, True)
    >>> split_rows(10, 0.01, policy="last")
    Traceback (most recent call last):
    ...
    ValueError: validation_split=0.01 leaves 0 validation and 10 training rows; both must be >= 1
    """
    policy = _checks.check_choice("policy", policy, POLICIES)
    n = _checks.check_int("n", n)
    fraction = _checks.check_float(name, fraction, low=0.0, high=1.0)
    if labels is not None and policy != "stratified":
        raise ValueError(f"labels are used by the 'stratified' policy only, not {policy!r}")
    if fraction == 0:
        return (slice(0, n) if policy == "last" else np.arange(n)), None
    if policy == "stratified":
        return _stratified(n, fraction, seed, labels, name)
    n_val = int(math.floor(n * fraction))
    if not 1 <= n_val < n:
        raise ValueError(f"{name}={fraction} leaves {n_val} validation and {n - n_val} "
                         "training rows; both must be >= 1")
    if policy == "last":
        return slice(0, n - n_val), slice(n - n_val, n)
    perm = np.random.default_rng(_checks.check_int("seed", seed, minimum=0)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _stratified(n: int, fraction: float, seed: Any, labels: Any,
                name: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``train_test_split`` of ``range(n)``, its refusals named by ``name``."""
    from sklearn.model_selection import train_test_split

    try:
        train, val = train_test_split(np.arange(n), test_size=fraction, random_state=seed,
                                      stratify=labels)
    except ValueError as exc:
        raise ValueError(f"{name}={fraction}: cannot split off a validation set: {exc}") \
            from exc
    return train, val


def take_rows(a: Any, rows: Rows) -> Any:
    """The rows ``rows`` (from `split_rows`) of ``a``, on ``a``'s namespace and device.

    A slice is a view; host indices are moved to ``a``'s device once and taken there.

    Parameters
    ----------
    a : array
        Any array of the Array API (NumPy, CuPy, torch, array_api_strict...), rows first.
    rows : slice or numpy.ndarray

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet._split import take_rows
    >>> a = np.arange(12).reshape(6, 2)
    >>> take_rows(a, slice(4, 6)).tolist(), take_rows(a, np.array([0, 5])).tolist()
    ([[8, 9], [10, 11]], [[0, 1], [10, 11]])
    """
    if isinstance(rows, slice) or isinstance(a, np.ndarray):
        return a[rows, ...]
    xp = array_api_compat.array_namespace(a)
    return xp.take(a, xp.asarray(rows, device=array_api_compat.device(a)), axis=0)
