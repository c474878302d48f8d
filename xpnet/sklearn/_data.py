"""Rows of ``X`` on the model's backend: a dense array moved once, or a sparse matrix by batches.

Dense ``X`` is checked and moved to the model's device in its dtype once per fit
(`xpnet._checks.check_X`); a batch is ``xp.take`` of it. A SciPy sparse matrix
(CSR; scikit-learn's ``validate_data`` converts the other formats) stays on the host and
each batch, or each chunk of a full pass, is densified on its own and moved to the
device, so the dense matrix never exists whole. The arithmetic then is the dense
arithmetic on the same rows, so sparse and dense input give the same results.

NumPy is used on the host for index arrays and to densify sparse batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse

from .. import _checks
from ..backends import Backend

__all__ = ["Rows", "is_sparse"]

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
