# NumPy is used here on the host for the statistics only: each chunk's column means and
# sums of squares (computed in the data's own namespace) are merged in float64 on the host.
"""Preprocessing layers: scaling that is part of the model.

[`Normalization`][xpnet.preprocessing.Normalization] standardizes numeric input columns
with a mean and a scale computed from the training data by
[`adapt`][xpnet.preprocessing.Normalization.adapt]. The two vectors are parameters of the
model (in its store, its checkpoints and its ONNX export) that training never changes,
so a saved or exported model takes raw features.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from . import _checks
from .backends import Backend, backend_of, to_numpy
from .backends import _namespace_of as _xp
from .layers import _REGISTRY, Layer, Params
from .random import RNG

__all__ = ["Normalization"]

_CHUNK_ROWS = 65536


class Normalization(Layer):
    """Standardize input columns: ``y = (x - mean) / scale``, as Keras' ``Normalization``.

    ``mean`` and ``scale`` (the population standard deviation) come from
    [`adapt`][xpnet.preprocessing.Normalization.adapt], called on the training features
    *before* the model is built: the model's ``init`` then takes them as the layer's
    parameters ``"<i>.mean"`` and ``"<i>.scale"``. They are saved in checkpoints, moved by
    ``model.to``, pickled with the model and written into the ONNX export, but never
    trained: the layer is always frozen (``trainable`` is False, and
    [`unfreeze`][xpnet.model.Sequential.unfreeze] leaves it so), so no optimizer, weight
    decay or gradient touches them. A layer that was never adapted is the identity
    (mean 0, scale 1), as is a layer rebuilt from a config before its checkpoint's
    values are loaded.

    Parameters
    ----------
    columns : None, sequence of int, or sequence of bool
        The columns to standardize: None (all), their indices, or a boolean mask with
        one entry per input column. The others (one-hot 0/1 columns, say) pass
        through unchanged (mean 0, scale 1).

    Attributes
    ----------
    mean_, scale_ : numpy.ndarray of float64, or None
        The statistics of the last ``adapt`` (None before): one value per input
        column, 0 and 1 for the columns passed through. A column with no spread
        (constant) gets scale 1, so it becomes 0 instead of a division by zero.
    n_samples_ : int
        Rows the last ``adapt`` saw.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> X = np.array([[1.0, 200.0, 0.0], [3.0, 400.0, 1.0], [5.0, 600.0, 1.0]])
    >>> norm = xn.Normalization(columns=[0, 1]).adapt(X)   # column 2 is one-hot: kept
    >>> np.round(norm.mean_, 3).tolist(), np.round(norm.scale_, 3).tolist()
    ([3.0, 400.0, 0.0], [1.633, 163.299, 1.0])
    >>> m = xn.Sequential([norm, xn.Dense(8), xn.ReLU(), xn.Dense(2)], in_features=3,
    ...                   backend="numpy", dtype="float64", seed=0)
    >>> np.round(m.forward(X, return_intermediates=True)[0], 3).tolist()
    [[-1.225, -1.225, 0.0], [0.0, 0.0, 1.0], [1.225, 1.225, 1.0]]
    >>> m.trainable_keys          # mean and scale are never trained
    ['1.W', '1.b', '3.W', '3.b']
    """

    def __init__(self, columns: Any = None):
        self.columns, self._mask_len = _check_columns(columns)
        # the adapted statistics: state, not configuration (get_config leaves them out)
        self._stats: tuple[np.ndarray, np.ndarray, int] | None = None

    @property
    def mean_(self) -> np.ndarray | None:
        """The adapted column means (0 for the columns passed through), or None."""
        return None if self._stats is None else self._stats[0]

    @property
    def scale_(self) -> np.ndarray | None:
        """The adapted column scales (1 for the columns passed through), or None."""
        return None if self._stats is None else self._stats[1]

    @property
    def n_samples_(self) -> int:
        """Rows the last ``adapt`` saw (0 before)."""
        return 0 if self._stats is None else self._stats[2]

    @property  # type: ignore[override]
    def trainable(self) -> bool:
        """Always False: the statistics are never trained (setting True is ignored).

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.Sequential([xn.Normalization(), xn.Dense(2)], in_features=3,
        ...                   backend="numpy").unfreeze()
        >>> m.layers[0].trainable, m.trainable_keys
        (False, ['1.W', '1.b'])
        """
        return False

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Ignored: the layer stays frozen (``model.unfreeze()`` unfreezes the others)."""

    # -- statistics -------------------------------------------------------------
    def adapt(self, data: Any, *, batch_size: int = _CHUNK_ROWS) -> Normalization:
        """Compute ``mean_`` and ``scale_`` from ``data``; returns ``self``.

        The rows are read ``batch_size`` at a time and the statistics accumulated in
        float64 (Chan's pairwise update), so a memory-mapped array is never loaded
        whole and an array on a GPU stays there (only the per-chunk column sums
        come back).

        Parameters
        ----------
        data : array of shape (n, n_features)
            Numeric features: a NumPy array (a ``numpy.memmap`` included), a list of
            rows, a pandas DataFrame of numeric columns, anything with ``__array__``
            or ``__dlpack__``, or an array of a backend (CuPy, PyTorch, JAX...).
        batch_size : int
            Rows per chunk.

        Returns
        -------
        Normalization
            ``self``, so that ``Normalization().adapt(X)`` can go straight into a
            layer list.

        Raises
        ------
        ValueError, TypeError
            For data that is not a non-empty 2-D numeric array, holds NaN or inf, or
            has fewer columns than ``columns`` names.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> norm = xn.Normalization().adapt(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> norm.mean_.tolist(), norm.scale_.tolist()   # a constant column: scale 1
        ([1.0, 5.0], [1.0, 1.0])
        """
        batch_size = _checks.check_int("batch_size", batch_size)
        data = _checks.as_array("adapt data", data)
        if not _checks._is_array(data):
            raise TypeError(f"adapt data must be a 2-D array of numbers, got "
                            f"{type(data).__name__}")
        if data.ndim != 2 or data.shape[0] == 0:
            raise ValueError(f"adapt data must be a non-empty 2-D array (n_samples, "
                             f"n_features), got shape {tuple(data.shape)}")
        _checks._check_numeric("adapt data", _checks.dtype_name(data.dtype))
        d = int(data.shape[1])
        cols = self._column_indices(d)
        n, mean, m2 = 0, np.zeros(len(cols)), np.zeros(len(cols))
        rows = int(data.shape[0])
        for lo in range(0, rows, batch_size):
            k, cm, cm2 = _chunk_moments(data[lo:min(lo + batch_size, rows), ...], cols, lo)
            delta, total = cm - mean, n + k
            mean = mean + delta * (k / total)
            m2 = m2 + cm2 + delta * delta * (n * k / total)
            n = total
        std = np.sqrt(m2 / n)
        flat = ~(std > 1e-10 * np.abs(mean))  # constant up to round-off (or exactly)
        full_mean, full_scale = np.zeros(d), np.ones(d)
        full_mean[cols] = mean
        full_scale[cols] = np.where(flat, 1.0, std)
        self._stats = (full_mean, full_scale, n)
        return self

    def _column_indices(self, d: int) -> np.ndarray:
        """The standardized columns' indices for ``d`` input columns, checked."""
        if self.columns is None:
            return np.arange(d)
        mask_len = getattr(self, "_mask_len", None)  # absent from older pickles
        if mask_len is not None and mask_len != d:
            raise ValueError(f"Normalization columns is a boolean mask of {mask_len} "
                             f"entries for {d} input columns; give one entry per column")
        bad = [c for c in self.columns if c >= d]
        if bad:
            raise ValueError(f"Normalization columns {bad} are out of range for {d} input "
                             f"columns")
        return np.asarray(self.columns, dtype=np.int64)

    # -- the layer contract -------------------------------------------------------
    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """``mean`` and ``scale`` of shape ``(in_features,)``: the adapted statistics, or
        0 and 1 (the identity) before ``adapt``."""
        self._column_indices(in_features)
        mean, scale = self.mean_, self.scale_
        if mean is None or scale is None:
            mean, scale = np.zeros(in_features), np.ones(in_features)
        elif mean.shape[0] != in_features:
            raise ValueError(f"Normalization was adapted on {mean.shape[0]} columns, but the "
                             f"model gives it {in_features} input features")
        return {"mean": backend.asarray(mean, dtype=dtype),
                "scale": backend.asarray(scale, dtype=dtype)}

    def forward(self, params: Params, x: Any, *, train: bool = False) -> tuple[Any, Any]:
        """``(x - mean) / scale``; the cache is the output."""
        y = (x - params["mean"]) / params["scale"]
        return y, y

    def backward(self, params: Params, cache: Any, dy: Any, *,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """``dx = dy / scale``.

        The parameter gradients (returned for gradient checks; the model never asks
        for them, since the layer is frozen) are ``-sum(dy) / scale`` for ``mean`` and
        ``-sum(dy * y) / scale`` for ``scale``.
        """
        dx = dy / params["scale"]
        if not need_param_grads:
            return dx, {}
        xp = _xp(dy)
        return dx, {"mean": -xp.sum(dx, axis=0), "scale": -xp.sum(dx * cache, axis=0)}

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]]:
        """``mean`` and ``scale``: ``(in_features,)`` each."""
        return {"mean": (in_features,), "scale": (in_features,)}

    def get_config(self) -> dict:
        """Constructor arguments: ``columns`` (a list of indices, or None)."""
        return {"columns": None if self.columns is None else list(self.columns)}

    def __repr__(self) -> str:
        return "Normalization()" if self.columns is None else \
            f"Normalization(columns={list(self.columns)})"


def _check_columns(columns: Any) -> tuple[tuple[int, ...] | None, int | None]:
    """(sorted unique indices or None, mask length or None) from indices or a boolean mask."""
    if columns is None:
        return None, None
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__iter__"):
        raise TypeError(f"columns must be None, a sequence of column indices or a boolean "
                        f"mask, got {columns!r}")
    items = list(columns.tolist() if hasattr(columns, "tolist") else columns)
    mask_len = None
    if items and all(isinstance(c, (bool, np.bool_)) for c in items):
        mask_len, items = len(items), [i for i, keep in enumerate(items) if keep]
    for c in items:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral) or c < 0:
            raise ValueError(f"columns must be non-negative column indices or a boolean "
                             f"mask, got {columns!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"columns names a column twice: {columns!r}")
    return tuple(sorted(int(c) for c in items)), mask_len


def _chunk_moments(chunk: Any, cols: np.ndarray, first_row: int
                   ) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, column means, sums of squared deviations) of a chunk, float64 on the host."""
    be = backend_of(chunk)
    xp = be.xp
    c = xp.astype(chunk, be.wide_float)
    if cols.shape[0] != c.shape[1]:
        c = xp.take(c, be.asarray(cols, dtype=be.index_dtype), axis=1)
    if not bool(xp.all(xp.isfinite(c))):
        mask = ~np.isfinite(to_numpy(c))
        row, col = (int(i[0]) for i in np.nonzero(mask))
        raise ValueError(f"adapt data contains {int(mask.sum())} NaN or infinite values in "
                         f"rows {first_row}..{first_row + c.shape[0] - 1}, the first at row "
                         f"{first_row + row}, column {int(cols[col])}; clean the data first")
    k = int(c.shape[0])
    mean = xp.mean(c, axis=0)
    dev = c - mean
    m2 = xp.sum(dev * dev, axis=0)
    return k, to_numpy(mean).astype(np.float64), to_numpy(m2).astype(np.float64)


_REGISTRY.add("Normalization", Normalization, builtin=True)
