"""The data of a fit on the model's backend: rows of ``X``, targets and sample weights.

``X``: a dense array moved once, or a sparse matrix by batches.

Dense ``X`` is checked and moved to the model's device in its dtype once per fit
(`xpnet._checks.check_X`); a batch is ``xp.take`` of it. A SciPy sparse matrix
(CSR; scikit-learn's ``validate_data`` converts the other formats) stays on the host and
each batch, or each chunk of a full pass, is densified on its own and moved to the
device, so the dense matrix never exists whole. The arithmetic then is the dense
arithmetic on the same rows, so sparse and dense input give the same results.

Sample weights (`Weights`) are moved to the device once too, and a host copy
is kept: the sum of a batch's weights divides scikit-learn's L2 term, and it is taken
there, as scikit-learn takes it, before the batch's step (a Python float, no read
from the device).

NumPy is used on the host for index arrays, to densify sparse batches and for the
host copy of the sample weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from .. import _checks
from ..backends import Backend, to_numpy

__all__ = ["Rows", "Samples", "Weights", "device_index", "is_sparse", "on_device",
           "take_on_device"]

#: Rows per chunk of a full pass (prediction, L-BFGS on sparse input, validation).
CHUNK = 8192


def is_sparse(X: Any) -> bool:
    return scipy.sparse.issparse(X)


class Rows:
    """The rows of one fit or prediction: dense on the device, or CSR on the host."""

    def __init__(self, X: Any, backend: Backend, dtype: str, n_features: int | None):
        """``n_features=None``: dense `X` is already checked and on the device."""
        self.backend, self.dtype = backend, dtype
        self.sparse = is_sparse(X)
        self.n = int(X.shape[0])
        self.X = X.tocsr() if self.sparse else X
        if n_features is not None and not self.sparse:
            self.X = _checks.check_X(X, backend, dtype, n_features)

    def _dense(self, block: Any) -> Any:
        """A densified host block, on the device in the model's dtype."""
        return self.backend.asarray(block.toarray().astype(self.dtype, copy=False),
                                    dtype=self.backend.dtype(self.dtype))

    def take(self, idx: Any) -> Any:
        """The rows ``idx`` (a slice; host indices when sparse, else from `device_index`)."""
        if self.sparse:
            return self._dense(self.X[idx])
        return take_on_device(self.backend, self.X, idx)

    def chunks(self, split: bool = False) -> Iterator[tuple[slice, Any]]:
        """``(rows, dense block)`` pairs of `CHUNK` rows in order (dense: whole unless `split`)."""
        for sl in batches(self.n, CHUNK if self.sparse or split else self.n):
            yield sl, self._dense(self.X[sl]) if self.sparse else self.X[sl, ...]


def batches(n: int, size: int) -> Iterator[slice]:
    """scikit-learn's ``gen_batches(n, size)`` without its per-call parameter validation
    (about 43 us, a third of a one-row ``predict``)."""
    for lo in range(0, n, max(size, 1)):
        yield slice(lo, min(lo + size, n))


def device_index(backend: Backend, idx: Any) -> Any:
    """Host indices (or a slice) as ``xp.take`` of a device array wants them."""
    if isinstance(idx, slice) or backend.name == "numpy":
        return idx
    return backend.asarray(idx, dtype=backend.xp.int64)


def on_device(backend: Backend, a: Any, dtype: Any) -> Any:
    """`a` as `dtype` (a `backend` dtype) on its device: cast there, or sent from the host."""
    if backend.owns(a):
        return backend.xp.astype(a, dtype, copy=False)
    return backend.asarray(to_numpy(a), dtype=dtype)


def take_on_device(backend: Backend, a: Any, idx: Any) -> Any:
    """Rows `idx` (a slice, or from `device_index`) of device array `a`."""
    return a[idx, ...] if isinstance(idx, slice) else backend.xp.take(a, idx, axis=0)


class Weights:
    """Sample weights of one fit: ``device`` (model's dtype) and ``host`` (their sums)."""

    def __init__(self, w: Any, backend: Backend, dtype: str):
        self.backend, self.dtype = backend, dtype
        #: In the checked dtype: batch sums are scikit-learn's to the bit.
        self.host = w if isinstance(w, np.ndarray) else to_numpy(w)
        self.device = on_device(backend, w, backend.dtype(dtype))

    def take(self, idx: Any) -> Any:
        """The device weights of rows ``idx`` (from `device_index`, or a slice)."""
        return take_on_device(self.backend, self.device, idx)

    def batch_sums(self, order: np.ndarray | None, batch_size: int) -> list[float]:
        """Each batch's weight sum, as scikit-learn's; ZeroDivisionError naming a zero batch."""
        host = self.host if order is None else self.host[order]
        sums = [float(host[lo:lo + batch_size].sum()) for lo in range(0, len(host), batch_size)]
        if 0.0 in sums:
            lo = sums.index(0.0) * batch_size
            raise ZeroDivisionError(
                f"Weights sum to zero, can't be normalized: the sample weights of batch "
                f"{lo // batch_size} (rows {lo} to {min(lo + batch_size, len(host)) - 1} of the "
                "epoch's order) sum to zero; give every batch a non-zero weight, e.g. a "
                "larger batch_size or shuffle=True")
        return sums


@dataclass
class Samples:
    """The rows, device targets and optional sample weights of a fit."""

    rows: Rows
    Y: Any
    weights: Weights | None = None

    def subset(self, idx: np.ndarray) -> Samples:
        """The samples ``idx`` (host indices), a copy."""
        rows, w = self.rows, self.weights
        dev_idx = device_index(rows.backend, idx)
        X = rows.X[idx] if rows.sparse else rows.take(dev_idx)
        return Samples(Rows(X, rows.backend, rows.dtype, None),
                       take_on_device(rows.backend, self.Y, dev_idx),
                       None if w is None else Weights(w.host[idx], w.backend, w.dtype))
