"""The chunked (optionally threaded) optimizer update for NumPy arrays.

Every parameter, gradient and slot is cut into chunks small enough to stay in
the CPU cache; each chunk goes through the whole update rule (the rule's
``ufunc_to`` kernel: a handful of NumPy ufunc calls with ``out=``, see
[`xpnet.ops.kernels`][]) before the next one is touched, and the chunks are
optionally shared among threads (NumPy ufuncs release the GIL; see
`num_threads`). The arithmetic is the same, operation for operation, as
the reference rule, so both give bitwise-identical results.

One chunk loop serves both updates: `run` (in place: the kernel's outputs are
its inputs, ``p2`` the parameter and the new slots the live slots, which an
elementwise ufunc with ``out=`` its own input allows) and `run_to` (the
guarded update: new values into the gradient and a second set of slots,
checked through the floating-point status, see there).
"""

from __future__ import annotations

import math
import operator
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def grads_eligible(params: dict, grads: dict) -> bool:
    """`eligible` for the gradients alone, when the parameters and slots are known
    to be (they are the arrays the last guarded update left, see
    `state_known_finite`): same shape and dtype as the parameter, C-contiguous,
    writeable NumPy arrays."""
    for k, p in params.items():
        g = grads.get(k)
        if type(g) is not np.ndarray or g.shape != p.shape or g.dtype != p.dtype \
                or not g.flags.c_contiguous or not g.flags.writeable:
            return False
    return True


def flat_arrays(params: dict, grads: dict, state: dict, key: str,
                names: Sequence[str | None]) -> list[np.ndarray]:
    """``p, g, *slot arrays`` of one parameter as 1-D views (the parameter for ``None``)."""
    p = params[key].reshape(-1)
    return [p, grads[key].reshape(-1)] + [p if s is None else state[s][key].reshape(-1)
                                          for s in names]


def flat_arrays_to(params: dict, grads: dict, state: dict, out: dict | None, key: str,
                   names: Sequence[str | None], *, into_grads: bool = True) -> list[np.ndarray]:
    """``p, g, *slots, p2, *new slots`` of one parameter as 1-D views.

    ``p2`` is the gradient (``into_grads``) or ``out["params"]``'s array, the new
    slots ``out``'s; with ``out`` None every output is its input itself (``p2`` is
    ``p``, the new slots are the slots: the in-place update). An absent slot
    (``None``) is ``p`` in both places: it is neither read nor written.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import flat_arrays_to
    >>> p, g, m = {"w": np.ones(2)}, {"w": np.zeros(2)}, {"w": np.zeros(2)}
    >>> a = flat_arrays_to(p, g, {"m": m}, None, "w", ("m", None))
    >>> [[x is y for y in a].index(True) for x in a]  # p, g, m, absent; p2 = p, m, absent
    [0, 1, 2, 0, 0, 2, 0]
    """
    ins = flat_arrays(params, grads, state, key, names)
    if out is None:
        return ins + [ins[0]] + ins[2:]
    p2 = ins[1] if into_grads else out["params"][key].reshape(-1)
    return ins + [p2] + new_slots(ins[0], out, key, names)


def new_slots(p: np.ndarray, out: dict, key: str, names: Sequence[str | None]) -> list[np.ndarray]:
    """The arrays of ``out`` the new slots of one parameter go into, as 1-D views (``p``,
    the parameter's 1-D view, for an absent slot)."""
    return [p if s is None else out[s][key].reshape(-1) for s in names]


def in_place_as_to(ufunc: Callable[..., None], n_slots: int) -> Callable[..., None]:
    """A rule's in-place ufunc kernel ``ufunc(p, g, *slots, *hyper, tmp)`` (one a
    registered rule may give instead of ``ufunc_to``) in the out-of-place form
    ``(p, g, *slots, p2, *new slots, *hyper, tmp)``: each input whose output is another
    array is copied there first, then ``ufunc`` updates the outputs in place (in the
    in-place update, where the outputs are the inputs, nothing is copied).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import in_place_as_to
    >>> def halve(p, g, tmp):
    ...     p -= g
    >>> p, g, p2 = np.ones(2), np.ones(2) / 2, np.zeros(2)
    >>> in_place_as_to(halve, 0)(p, g, p2, None), p.tolist(), p2.tolist()
    (None, [1.0, 1.0], [0.5, 0.5])
    """
    def kernel(p: np.ndarray, g: np.ndarray, *rest: Any) -> None:
        slots, p2 = rest[:n_slots], rest[n_slots]
        outs = rest[n_slots + 1:2 * n_slots + 1]
        for a, b in zip((p, *slots), (p2, *outs), strict=True):
            if b is not a:
                np.copyto(b, a)
        ufunc(p2, g, *outs, *rest[2 * n_slots + 1:])

    return kernel


def ufunc_kernel(kernels: Any, n_slots: int) -> Callable[..., None] | None:
    """The rule's out-of-place ufunc kernel: ``kernels.ufunc_to``, else `in_place_as_to`
    of a registered rule's in-place ``ufunc``, else None."""
    if kernels.ufunc_to is not None:
        return kernels.ufunc_to
    if kernels.ufunc is not None:
        return in_place_as_to(kernels.ufunc, n_slots)
    return None


def _cuts(arrays: list[np.ndarray], n: int) -> Iterator[tuple[np.ndarray, ...]]:
    """``a[lo:hi]`` of each array for every chunk ``lo:hi`` of ``n`` elements, sliced
    once per distinct array (an output that is its input stays the same object as it:
    see `in_place_as_to`)."""
    at: dict[int, int] = {}
    distinct: list[np.ndarray] = []
    for a in arrays:
        if id(a) not in at:
            at[id(a)] = len(distinct)
            distinct.append(a)
    pick = operator.itemgetter(*(at[id(a)] for a in arrays))
    for lo in range(0, n, CHUNK):
        s = slice(lo, min(lo + CHUNK, n))
        yield pick([a[s] for a in distinct])


def _chunks(kernel: Callable[..., None], hyper: dict[str, tuple[Any, ...]], params: dict,
            flat: Callable[[str], list[np.ndarray]],
            check: Callable[[tuple[Any, ...]], list[np.ndarray]] | None) -> bool:
    """The chunk loop: ``kernel(*flat(key)[lo:hi], *hyper[key], tmp)`` for every chunk of
    every parameter, on `num_threads` threads. ``check``: None (the in-place update),
    or the arrays of a chunk (from its arguments) to check finite before the kernel runs
    on it (the guarded update, see `run_to`); then False when a value is not finite."""
    tasks: list[tuple[Any, ...]] = []  # each chunk's arguments but tmp
    total = 0
    for k in params:
        arrays = flat(k)
        n = arrays[0].shape[0]
        total += n
        if n <= CHUNK:
            tasks.append((*arrays, *hyper[k]))
        else:
            tasks.extend((*cut, *hyper[k]) for cut in _cuts(arrays, n))
    if not tasks:
        return True
    dtype = tasks[0][0].dtype
    threads = num_threads() if total >= _MIN_PARALLEL else 1

    def work(part: list[tuple[Any, ...]]) -> bool:
        tmp = np.empty(CHUNK, dtype=dtype)
        if check is not None:
            return _checked(kernel, part, tmp, check)
        for args in part:
            kernel(*args, tmp[: args[0].shape[0]])
        return True

    if threads == 1 or len(tasks) == 1:
        return work(tasks)
    pool = _get_pool(threads)
    parts = [tasks[i::threads] for i in range(threads)]
    return all([f.result() for f in [pool.submit(work, part) for part in parts if part]])


def run(kernel: Callable[..., None], hyper: dict[str, tuple[Any, ...]], params: dict,
        grads: dict, state: dict, names: Sequence[str | None]) -> None:
    """The in-place update: ``kernel(p, g, *slots, p, *slots, *hyper[key], tmp)`` (a
    rule's ``ufunc_to``, its outputs the inputs themselves) on every chunk of every
    parameter (``hyper``: each parameter's scalars, by key)."""
    _chunks(kernel, hyper, params,
            lambda k: flat_arrays_to(params, grads, state, None, k, names), None)


# -- the guarded update: new values into the gradient and spare slots, checked, swapped in

def _refs_of_a_lone_value() -> int:
    """``sys.getrefcount`` of an array referenced by nothing but a dict, as `own_grads`
    sees it (measured, since interpreters count borrowed references differently)."""
    box = {"x": np.empty(1)}
    for _, a in box.items():
        return sys.getrefcount(a)
    return 0  # pragma: no cover


_LONE = _refs_of_a_lone_value()


def _bases(arrays: Sequence[np.ndarray]) -> set[int]:
    """The ids of ``arrays`` and of the arrays they are views of."""
    return {id(a) for a in arrays} | {id(a.base) for a in arrays if a.base is not None}


def own_grads(params: dict, grads: dict, state: dict, names: Sequence[str | None],
              bases: set[int] | None = None) -> None:
    """Make every gradient an array the guarded update may write the new parameter into
    and hand over as the parameter: one that owns its memory and that nothing else holds
    (a fresh gradient from a backward pass); any other (a view, one used twice, one a
    layer or a gradient hook keeps and refills) is replaced by a copy in ``grads``.
    ``bases``: `_bases` of the live parameters and slots, when already known."""
    seen: set[int] = set()
    if bases is None:
        bases = _bases(_live(params, state, names))
    for k, g in grads.items():
        if not g.flags.owndata or id(g) in seen or id(g) in bases \
                or sys.getrefcount(g) > _LONE:
            g = grads[k] = np.array(g, order="C", copy=True)
        seen.add(id(g))


def spares(params: dict, state: dict, names: Sequence[str | None], spare: dict, *,
           with_params: bool = False, known: bool | None = None) -> dict:
    """Arrays to write the new slot values into (and the new parameters, with
    ``with_params``): ``{slot: {k: a}, "params": {k: a}}``.

    Taken from ``spare`` (what the last guarded update left there) when their
    shape and dtype fit and they are not the live arrays, allocated otherwise;
    ``spare`` is filled in place. ``known``: `state_known_finite`, when the
    caller has it.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import spares
    >>> p, m = {"w": np.ones(3)}, {"w": np.zeros(3)}
    >>> box = {}
    >>> out = spares(p, {"m": m}, ("m",), box)
    >>> sorted(out) == sorted(box) == ["m"], out["m"]["w"] is m["w"]
    (True, False)
    """
    live = {s: state[s] for s in names if s is not None}
    if with_params:
        live["params"] = params
    if known is None:
        known = state_known_finite(params, state, names, spare)
    for group, arrays in live.items():
        mine = spare.setdefault(group, {})
        if known and mine.keys() == arrays.keys():
            continue  # the arrays the last update swapped out: they fit
        for k, a in arrays.items():
            b = mine.get(k)
            if b is None or b is a or b.shape != a.shape or b.dtype != a.dtype \
                    or not b.flags.c_contiguous or not b.flags.writeable:
                mine[k] = np.empty_like(a, order="C")
    return spare


def swap(params: dict, grads: dict, state: dict, names: Sequence[str | None], out: dict, *,
         into_grads: bool = True) -> None:
    """Make the new values live: the gradients (holding the new parameters) become the
    parameters and the old parameters take their place in ``grads``, or, without
    ``into_grads``, the spare parameters swap with the live ones; the spare slots swap
    with the live slots."""
    if into_grads:
        for k in params:
            params[k], grads[k] = grads[k], params[k]
    live = {s: state[s] for s in names if s is not None}
    if not into_grads:
        live["params"] = params
    for group, arrays in live.items():
        mine = out[group]
        for k in arrays:
            arrays[k], mine[k] = mine[k], arrays[k]


def _finite(arrays: Sequence[np.ndarray], zeros: np.ndarray) -> bool:
    """Whether every element is finite: a dot product with zeros is NaN exactly when one
    is inf or NaN, and 0 otherwise however large the values (one BLAS pass per array, on
    a chunk still in the cache). Under ``np.errstate(invalid="raise")`` an inf raises
    ``FloatingPointError`` instead (``inf * 0``), which the caller takes as "not finite"."""
    return all(math.isfinite(float(np.dot(a, zeros[: a.shape[0]]))) for a in arrays)


_ZEROS: dict[str, np.ndarray] = {}
_MAX_ZEROS = 1 << 20  # elements: a gradient is checked in pieces of at most this many


def _zeros(dtype: np.dtype, n: int = CHUNK) -> np.ndarray:
    """A read-only array of at least ``min(n, _MAX_ZEROS)`` and at least `CHUNK` zeros
    of ``dtype`` (made once and grown when needed: the checks run every step)."""
    z = _ZEROS.get(dtype.str)
    n = max(min(n, _MAX_ZEROS), CHUNK)
    if z is None or z.shape[0] < n:
        z = np.zeros(n, dtype=dtype)
        z.setflags(write=False)
        _ZEROS[dtype.str] = z
    return z


def all_finite(arrays: Iterable[np.ndarray]) -> bool:
    """Whether every element of every array is finite: the flat view of each
    float32/float64 array times zeros, as in `_finite` (one BLAS pass, in pieces of
    at most ``_MAX_ZEROS`` elements: faster than a sum, and exact, since no sum of
    large finite values can overflow); other dtypes and layouts go through
    ``isfinite``. Raises no warning for the infs it finds.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops._chunked import all_finite
    >>> all_finite([np.full((300, 300), 3e38, "float32")]), all_finite([np.array([1, -np.inf])])
    (True, False)
    """
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
            if n <= step:
                if not isfinite(dot(flat, zeros[:n])):
                    return False
            elif not all(isfinite(dot(flat[lo:lo + step], zeros[:min(step, n - lo)]))
                         for lo in range(0, n, step)):
                return False
    return True


def _live(params: dict, state: dict, names: Sequence[str | None]) -> list[np.ndarray]:
    return list(params.values()) + [state[s][k] for s in names if s is not None
                                    for k in params]


def state_known_finite(params: dict, state: dict, names: Sequence[str | None],
                       spare: dict) -> bool:
    """Whether the live parameters and slots are the arrays the last guarded update left
    (checked finite then, so still finite: nothing else wrote them in place)."""
    known = spare.get("_checked")
    live = _live(params, state, names)
    return known is not None and len(known) == len(live) and all(
        a is b for a, b in zip(known, live, strict=True))


def mark_checked(params: dict, state: dict, names: Sequence[str | None], spare: dict) -> None:
    """Remember the live arrays as checked finite (see `state_known_finite`)."""
    live = spare["_checked"] = _live(params, state, names)
    spare["_bases"] = _bases(live)


def run_to(kernel: Callable[..., None], hyper: dict[str, tuple[Any, ...]], params: dict,
           grads: dict, state: dict, names: Sequence[str | None], out: dict, *,
           into_grads: bool = True, state_finite: bool = False,
           grads_finite: bool = False) -> bool:
    """Compute one update without touching the live parameters and slots, chunk by chunk;
    True when every new value is finite.

    ``kernel`` is a rule's ``ufunc_to`` (or `in_place_as_to` of its in-place
    ``ufunc``); the new parameter goes into the gradient (``into_grads``) or into
    ``out["params"]``, the new slots into ``out``.

    The check is the floating-point status: the kernel runs with overflow, invalid
    operations and division by zero raising, so a value that becomes inf or NaN inside
    it stops the update, at no cost per element. That covers every non-finite result
    when the inputs are finite, so the inputs are checked, chunk by chunk while in the
    cache: the gradient unless ``grads_finite`` (the caller checked it), the parameter
    and slots unless ``state_finite`` (they are what the last guarded update left, see
    `state_known_finite`).
    """
    distinct = [2 + j for j, s in enumerate(names) if s is not None]
    picked = ([] if state_finite else [0, *distinct]) + ([] if grads_finite else [1])

    def inputs(args: tuple[Any, ...]) -> list[np.ndarray]:
        return [args[j] for j in picked]

    return _chunks(kernel, hyper, params,
                   lambda k: flat_arrays_to(params, grads, state, out, k, names,
                                            into_grads=into_grads), inputs)


def _checked(kernel: Callable[..., None], part: list[tuple[Any, ...]], tmp: np.ndarray,
             inputs: Callable[[tuple[Any, ...]], list[np.ndarray]]) -> bool:
    """`run_to`'s work on one thread's chunks: the inputs checked, then the kernel run,
    with the floating-point errors raising; False at the first non-finite value."""
    zeros = _zeros(tmp.dtype)
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            for args in part:
                arrays = inputs(args)
                if arrays and not _finite(arrays, zeros):  # inf raises, NaN gives NaN
                    return False
                kernel(*args, tmp[: args[0].shape[0]])
    except FloatingPointError:
        return False  # nothing is swapped in: the rest need not be computed
    return True
