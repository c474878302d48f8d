"""The in-place, chunked (optionally threaded) optimizer update for NumPy arrays.

Every parameter, gradient and slot is cut into chunks small enough to stay in
the CPU cache; each chunk goes through the whole update rule (the rule's
``ufunc`` kernel: a handful of NumPy ufunc calls with ``out=``, see
:mod:`xpnet.ops.kernels`) before the next one is touched, and the chunks are
optionally shared among threads (NumPy ufuncs release the GIL; see
:func:`num_threads`). The arithmetic is the same, operation for operation, as
the reference rule, so both give bitwise-identical results.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

CHUNK = 1 << 16  # elements per chunk (measured: smaller chunks lose more to call overhead)
_MIN_PARALLEL = 1 << 18  # below this many elements, one thread is faster

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def num_threads() -> int:
    """Threads used for the update: ``XPNET_NUM_THREADS``, default 1.

    Measured on a 2-core machine with OpenBLAS: splitting the update over 2
    threads was no faster (BLAS worker threads keep spinning on the cores right
    after each matrix product), so the default is one thread; set
    ``XPNET_NUM_THREADS`` to try more on machines with more cores.

    Examples
    --------
    >>> from xpnet.ops._chunked import num_threads
    >>> num_threads() >= 1
    True
    """
    env = os.environ.get("XPNET_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return 1


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != n:
        _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="xpnet-update")
        _pool_size = n
    return _pool


def eligible(params: dict, grads: dict, state: dict, names: Sequence[str | None]) -> bool:
    """True when every parameter, gradient and named slot array is a C-contiguous,
    writeable NumPy float array of one dtype (``None`` names are skipped).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import eligible
    >>> p, g = {"w": np.ones(3)}, {"w": np.ones(3)}
    >>> eligible(p, g, {"m": {"w": np.zeros(3)}}, ("m", None))
    True
    >>> eligible(p, g, {"m": {"w": np.zeros(3, "float32")}}, ("m",))  # two dtypes
    False
    """
    dtype = None
    for k, p in params.items():
        g = grads.get(k)
        if type(g) is not np.ndarray or g.shape != p.shape:
            return False
        for a in [p, g] + [state[s][k] for s in names if s is not None]:
            if type(a) is not np.ndarray or not a.flags.c_contiguous \
                    or not a.flags.writeable or a.dtype.kind != "f":
                return False
            if dtype is None:
                dtype = a.dtype
            elif a.dtype != dtype:
                return False
    return True


def flat_arrays(params: dict, grads: dict, state: dict, key: str,
                names: Sequence[str | None]) -> list[np.ndarray]:
    """``p, g, *slot arrays`` of one parameter as 1-D views (the parameter for ``None``)."""
    p = params[key].reshape(-1)
    return [p, grads[key].reshape(-1)] + [p if s is None else state[s][key].reshape(-1)
                                          for s in names]


def run(kernel: Callable[..., None], hyper: tuple[Any, ...], params: dict, grads: dict,
        state: dict, names: Sequence[str | None]) -> None:
    """Apply ``kernel(p, g, *slot arrays, *hyper, tmp)`` to every chunk of every parameter."""
    tasks: list[tuple[Any, ...]] = []
    total = 0
    for k in params:
        flat = flat_arrays(params, grads, state, k, names)
        n = flat[0].shape[0]
        total += n
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            tasks.append(tuple(a[lo:hi] for a in flat))
    if not tasks:
        return
    dtype = tasks[0][0].dtype
    threads = num_threads() if total >= _MIN_PARALLEL else 1

    def work(part: list[tuple[Any, ...]]) -> None:
        tmp = np.empty(CHUNK, dtype=dtype)
        for arrays in part:
            kernel(*arrays, *hyper, tmp[: arrays[0].shape[0]])

    if threads == 1 or len(tasks) == 1:
        work(tasks)
        return
    pool = _get_pool(threads)
    parts = [tasks[i::threads] for i in range(threads)]
    for f in [pool.submit(work, part) for part in parts if part]:
        f.result()


# -- the guarded update: out of place into spare arrays, checked, swapped in --------------

def spares(params: dict, state: dict, names: Sequence[str | None], spare: dict) -> dict:
    """Arrays to write one update into: ``{"params": {k: a}, slot: {k: a}}``.

    Taken from ``spare`` (what the last guarded update left there) when their
    shape and dtype fit and they are not the live arrays, allocated otherwise;
    ``spare`` is filled in place.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import spares
    >>> p = {"w": np.ones(3)}
    >>> box = {}
    >>> out = spares(p, {"m": {"w": np.zeros(3)}}, ("m",), box)
    >>> sorted(out) == sorted(box) == ["m", "params"], out["params"]["w"] is p["w"]
    (True, False)
    """
    live = {"params": params, **{s: state[s] for s in names if s is not None}}
    for group, arrays in live.items():
        mine = spare.setdefault(group, {})
        for k, a in arrays.items():
            b = mine.get(k)
            if b is None or b is a or b.shape != a.shape or b.dtype != a.dtype \
                    or not b.flags.c_contiguous or not b.flags.writeable:
                mine[k] = np.empty_like(a, order="C")
    return spare


def swap(params: dict, state: dict, names: Sequence[str | None], out: dict) -> None:
    """Make the arrays in ``out`` the live ones, and the live ones the spares."""
    live = {"params": params, **{s: state[s] for s in names if s is not None}}
    for group, arrays in live.items():
        mine = out[group]
        for k in arrays:
            arrays[k], mine[k] = mine[k], arrays[k]


def flat_arrays_to(params: dict, grads: dict, state: dict, out: dict, key: str,
                   names: Sequence[str | None]) -> list[np.ndarray]:
    """``p, g, *slots, p2, *slots2`` of one parameter as 1-D views (``p``/``p2`` for ``None``)."""
    ins = flat_arrays(params, grads, state, key, names)
    p2 = out["params"][key].reshape(-1)
    return ins + [p2] + [p2 if s is None else out[s][key].reshape(-1) for s in names]


def _finite(arrays: Sequence[np.ndarray], zeros: np.ndarray) -> bool:
    """Whether every element is finite: a dot product with zeros is NaN exactly when one
    is inf or NaN (one BLAS pass per array, on a chunk still in the cache)."""
    with np.errstate(invalid="ignore"):
        return all(math.isfinite(float(np.dot(a, zeros[: a.shape[0]]))) for a in arrays)


def run_to(kernel: Callable[..., None], hyper: tuple[Any, ...], params: dict, grads: dict,
           state: dict, names: Sequence[str | None], out: dict, *,
           in_place: bool = False) -> bool:
    """Write one update into ``out``, chunk by chunk; True when every written value is finite.

    ``kernel`` is a rule's ``ufunc_to`` (``in_place=False``), or its in-place
    ``ufunc`` (``in_place=True``: each chunk is first copied into ``out``).
    Each chunk is checked right after it is computed, while it is in the cache.
    The live arrays are never written.
    """
    n_slots = len(names)
    distinct = [0] + [1 + j for j, s in enumerate(names) if s is not None]
    tasks: list[tuple[Any, ...]] = []
    total = 0
    for k in params:
        flat = flat_arrays_to(params, grads, state, out, k, names)
        n = flat[0].shape[0]
        total += n
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            tasks.append(tuple(a[lo:hi] for a in flat))
    if not tasks:
        return True
    dtype = tasks[0][0].dtype
    threads = num_threads() if total >= _MIN_PARALLEL else 1

    def work(part: list[tuple[Any, ...]]) -> bool:
        tmp = np.empty(CHUNK, dtype=dtype)
        zeros = np.zeros(CHUNK, dtype=dtype)
        for arrays in part:
            src, g, dst = arrays[:n_slots + 2], arrays[1], arrays[n_slots + 2:]
            if in_place:
                for j in distinct:
                    np.copyto(dst[j], src[0 if j == 0 else j + 1])
                kernel(dst[0], g, *dst[1:], *hyper, tmp[: g.shape[0]])
            else:
                kernel(*arrays, *hyper, tmp[: g.shape[0]])
            if not _finite([dst[j] for j in distinct], zeros):
                return False  # nothing is swapped in: the rest need not be computed
        return True

    if threads == 1 or len(tasks) == 1:
        return work(tasks)
    pool = _get_pool(threads)
    parts = [tasks[i::threads] for i in range(threads)]
    return all([f.result() for f in [pool.submit(work, part) for part in parts if part]])
