"""The NumPy update without numba: the rule's ufunc kernel over cache-sized chunks.

Every piece of the model's flat buffers (a segment cut into chunks of `CHUNK`
elements) goes through the whole update rule (the rule's ``ufunc_to``: a handful of
NumPy ufunc calls with ``out=``, see [`xpnet.ops.kernels`][]) and has its new values
checked while they are still in the cache, before the next piece is touched. The
arithmetic is the same, operation for operation, as the reference rule, so both give
bitwise-identical results.

The check is a BLAS dot product of each new chunk with zeros: NaN exactly when the
chunk holds an inf or a NaN, 0 otherwise however large the values (no sum that
could overflow). Every input of the rule flows into one of its outputs, so checking
the outputs covers a NaN gradient, an inf slot written by a callback and an
overflow alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

CHUNK = 1 << 16  # elements per piece (measured: smaller chunks lose more to call overhead)


def pieces(offsets: Sequence[int], sizes: Sequence[int], segments: Sequence[int]) -> np.ndarray:
    """Rows ``(segment, start, stop, segment start)`` cutting `segments` into `CHUNK` pieces."""
    rows = [(s, offsets[s] + lo, offsets[s] + min(sizes[s], lo + CHUNK), offsets[s])
            for s in segments for lo in range(0, sizes[s], CHUNK)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def run(kernel: Any, table: np.ndarray, hyper: Sequence[tuple[Any, ...]], p: np.ndarray,
        grads: Sequence[np.ndarray], slots: Sequence[np.ndarray], p2: np.ndarray,
        slots2: Sequence[np.ndarray], out: np.ndarray) -> bool:
    """A rule's ``ufunc_to`` over `table` into `p2`, `slots2`; False at a non-finite piece."""
    tmp = np.empty(CHUNK, dtype=p.dtype)
    zeros = _zeros(p.dtype)
    rows = list(out)
    with np.errstate(all="ignore"):
        for seg, lo, hi, go in table.tolist():
            n = hi - lo
            kernel(p[lo:hi], grads[seg][lo - go:hi - go], *(a[lo:hi] for a in slots), p2[lo:hi],
                   *(a[lo:hi] for a in slots2), *hyper[seg], tmp[:n])
            if not _finite([r[lo:hi] for r in rows], zeros):
                return False
    return True


def _finite(arrays: Sequence[np.ndarray], zeros: np.ndarray) -> bool:
    """Whether every element is finite (one dot product with zeros per array)."""
    return all(math.isfinite(float(np.dot(a, zeros[: a.shape[0]]))) for a in arrays)


_ZEROS: dict[str, np.ndarray] = {}
_MAX_ZEROS = 1 << 20  # elements: a long array is checked in pieces of at most this many


def _zeros(dtype: np.dtype, n: int = CHUNK) -> np.ndarray:
    """A cached read-only zero vector of `dtype`, `CHUNK` to ``_MAX_ZEROS`` long."""
    z = _ZEROS.get(dtype.str)
    n = max(min(n, _MAX_ZEROS), CHUNK)
    if z is None or z.shape[0] < n:
        z = np.zeros(n, dtype=dtype)
        z.setflags(write=False)
        _ZEROS[dtype.str] = z
    return z


def all_finite(arrays: Iterable[np.ndarray]) -> bool:
    """Whether every element is finite: float arrays by the dot with zeros, others by isfinite."""
    dot, isfinite = np.dot, math.isfinite
    with np.errstate(invalid="ignore"):
        for a in arrays:
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.dtype.char not in "fd" or not a.flags.c_contiguous:
                if not np.isfinite(a).all():
                    return False
                continue
            flat = a.reshape(-1)
            n = flat.shape[0]
            zeros = _zeros(a.dtype, n)
            step = zeros.shape[0]
            if not all(isfinite(dot(flat[lo:lo + step], zeros[:min(step, n - lo)]))
                       for lo in range(0, n, step)):
                return False
    return True
