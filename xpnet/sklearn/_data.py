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

__all__ = ["Rows", "Samples", "Weights", "device_index", "is_sparse", "take_on_device"]

#: Rows per chunk of a full pass (prediction, L-BFGS on sparse input, validation).
CHUNK = 8192


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array.

    Examples
    --------
    >>> import numpy as np, scipy.sparse
    >>> from xpnet.sklearn._data import is_sparse
    >>> is_sparse(scipy.sparse.csr_matrix(np.eye(2))), is_sparse(np.eye(2))
    (True, False)
    """
    return scipy.sparse.issparse(X)


class Rows:
    """The samples of one fit or prediction, as the model consumes them.

    Parameters
    ----------
    X : array or scipy.sparse matrix
        Validated features (float32/float64; CSR when sparse).
    backend : Backend
        Where the model lives.
    dtype : str
        The model's dtype name.
    n_features : int
        Columns the model expects.

    Examples
    --------
    >>> import numpy as np, scipy.sparse, xpnet as xn
    >>> from xpnet.sklearn._data import Rows
    >>> X = np.arange(6.0).reshape(3, 2)
    >>> dense = Rows(X, xn.get_backend("numpy"), "float32", 2)
    >>> sparse = Rows(scipy.sparse.csr_matrix(X), xn.get_backend("numpy"), "float32", 2)
    >>> idx = np.array([2, 0])
    >>> dense.take(idx).tolist() == sparse.take(idx).tolist() == [[4.0, 5.0], [0.0, 1.0]]
    True
    """

    def __init__(self, X: Any, backend: Backend, dtype: str, n_features: int):
        self.backend, self.dtype = backend, dtype
        self.sparse = is_sparse(X)
        self.n = int(X.shape[0])
        if self.sparse:
            self.X = X.tocsr()
        else:
            self.X = _checks.check_X(X, backend, dtype, n_features)

    def _dense(self, block: Any) -> Any:
        """A densified host block, on the device in the model's dtype."""
        return self.backend.asarray(block.toarray().astype(self.dtype, copy=False),
                                    dtype=self.backend.dtype(self.dtype))

    def index(self, idx: np.ndarray) -> Any:
        """Host row indices in the form `take` wants (on the device for dense rows)."""
        if self.sparse or self.backend.name == "numpy":
            return idx
        return self.backend.asarray(idx, dtype=self.backend.xp.int64)

    def take(self, idx: Any) -> Any:
        """The rows ``idx`` (a slice, or indices from `index`), dense on the device."""
        if self.sparse:
            return self._dense(self.X[idx])
        if isinstance(idx, slice):
            return self.X[idx, ...]
        return self.backend.xp.take(self.X, idx, axis=0)

    def subset(self, idx: np.ndarray) -> Rows:
        """The rows ``idx`` (host indices) as a new `Rows` (a copy)."""
        new = object.__new__(Rows)
        new.backend, new.dtype, new.sparse = self.backend, self.dtype, self.sparse
        new.n = len(idx)
        new.X = self.X[idx] if self.sparse else self.take(self.index(idx))
        return new

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[slice, Any]]:
        """``(rows, dense block)`` pairs covering every row in order; dense input is one block."""
        if not self.sparse:
            yield slice(0, self.n), self.X
            return
        for lo in range(0, self.n, size):
            sl = slice(lo, min(lo + size, self.n))
            yield sl, self._dense(self.X[sl])


def device_index(backend: Backend, idx: Any) -> Any:
    """Host indices (or a slice) in the form ``xp.take`` of a device array wants.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.sklearn._data import device_index
    >>> device_index(xn.get_backend("numpy"), np.array([2, 0])).tolist()
    [2, 0]
    """
    if isinstance(idx, slice) or backend.name == "numpy":
        return idx
    return backend.asarray(idx, dtype=backend.xp.int64)


def take_on_device(backend: Backend, a: Any, idx: Any) -> Any:
    """Rows ``idx`` (a slice, or indices from `device_index`) of device array ``a``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.sklearn._data import take_on_device
    >>> b = xn.get_backend("numpy")
    >>> a = np.arange(4.0)
    >>> take_on_device(b, a, slice(1, 3)).tolist(), take_on_device(b, a, np.array([3, 0])).tolist()
    ([1.0, 2.0], [3.0, 0.0])
    """
    return a[idx, ...] if isinstance(idx, slice) else backend.xp.take(a, idx, axis=0)


class Weights:
    """The sample weights of one fit: on the model's device, and a host copy for their sums.

    Parameters
    ----------
    w : array of shape (n,)
        Weights checked by scikit-learn's ``_check_sample_weight`` (NumPy, or under
        array API dispatch an array on the model's backend).
    backend : Backend
        Where the model lives.
    dtype : str
        The model's dtype name (the device copy's dtype).

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.sklearn._data import Weights
    >>> w = Weights(np.array([1.0, 0.0, 2.0, 3.0]), xn.get_backend("numpy"), "float32")
    >>> w.device.dtype, w.batch_sums(np.array([3, 1, 0, 2]), 3)
    (dtype('float32'), [4.0, 2.0])
    """

    def __init__(self, w: Any, backend: Backend, dtype: str):
        self.backend = backend
        #: In the checked dtype: batch sums are scikit-learn's to the bit.
        self.host = w if isinstance(w, np.ndarray) else to_numpy(w)
        target = backend.dtype(dtype)
        if backend.owns(w):
            self.device = w if w.dtype == target else backend.xp.astype(w, target)
        else:
            self.device = backend.asarray(self.host.astype(dtype, copy=False), dtype=target)

    def subset(self, idx: np.ndarray) -> Weights:
        """The weights of rows ``idx`` (host indices) as a new `Weights`."""
        new = object.__new__(Weights)
        new.backend, new.host = self.backend, self.host[idx]
        new.device = take_on_device(self.backend, self.device, device_index(self.backend, idx))
        return new

    def take(self, idx: Any) -> Any:
        """The device weights of rows ``idx`` (from `device_index`, or a slice)."""
        return take_on_device(self.backend, self.device, idx)

    def batch_sums(self, order: np.ndarray | None, batch_size: int) -> list[float]:
        """The sum of each batch's weights, as scikit-learn sums them, as Python floats.

        ``order`` is the epoch's row order (None: the rows in order).

        Raises
        ------
        ZeroDivisionError
            A batch whose weights sum to zero (scikit-learn's ``np.average`` raises
            the same, in that batch's step).
        """
        host = self.host if order is None else self.host[order]
        sums = [float(host[lo:lo + batch_size].sum()) for lo in range(0, len(host), batch_size)]
        zero = [i for i, s in enumerate(sums) if s == 0.0]
        if zero:
            lo = zero[0] * batch_size
            raise ZeroDivisionError(
                f"Weights sum to zero, can't be normalized: the sample weights of batch "
                f"{zero[0]} (rows {lo} to {min(lo + batch_size, len(host)) - 1} of the "
                "epoch's order) sum to zero; give every batch a non-zero weight, e.g. a "
                "larger batch_size or shuffle=True")
        return sums


@dataclass
class Samples:
    """The rows, the targets (on the device) and the optional sample weights of a fit.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.sklearn._data import Rows, Samples, Weights
    >>> b = xn.get_backend("numpy")
    >>> data = Samples(Rows(np.eye(3), b, "float64", 3), np.arange(3.0),
    ...                Weights(np.array([1.0, 2.0, 3.0]), b, "float64"))
    >>> part = data.subset(np.array([2, 0]))
    >>> part.rows.n, part.Y.tolist(), part.weights.host.tolist()
    (2, [2.0, 0.0], [3.0, 1.0])
    """

    rows: Rows
    Y: Any
    weights: Weights | None = None

    def subset(self, idx: np.ndarray) -> Samples:
        """The samples ``idx`` (host indices), a copy."""
        b = self.rows.backend
        return Samples(self.rows.subset(idx), take_on_device(b, self.Y, device_index(b, idx)),
                       None if self.weights is None else self.weights.subset(idx))
