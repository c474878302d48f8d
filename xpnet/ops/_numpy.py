"""NumPy ops: faster routes to the generic results, the flat optimizer update, malloc
tuning and the numba gate.

NumPy reduces a short axis slowly (``a.max(axis=1)`` on a ``(60000, 10)`` array makes
one small inner loop per row). The math helpers give the same results (up to float
rounding, for the sums) through faster routes:

* sums over a short axis go through BLAS as a product with a vector of ones;
* a row-wise max over a few columns is a running ``np.maximum`` over them;
* the ReLU gradient multiplies by the boolean mask ``y > 0`` (NumPy casts it
  in the loop), which the Array API does not allow across kinds;
* softmax cross-entropy with integer labels forms the exponentials in the
  shifted logits' memory and corrects the label column through a flat index.

Measured on the benchmark machine (2-core EPYC, OpenBLAS): at ``(60000, 10)``
row max 2.9 ms -> 0.7 ms, row sum 1.5 ms -> 0.16 ms, column sum 1.5 ms ->
0.16 ms; ReLU backward at ``(1024, 512)`` 0.57 ms -> 0.23 ms. Arrays other
than plain ``np.ndarray`` s, and shapes where the plain reduction is as fast,
take the generic call. NaN and inf propagate as in the plain reduction.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _malloc, _numba
from ._base import Ops, cast_hyper, store_of
from .kernels import BY_TYPE, kernels_for

CHUNK = 1 << 16  # elements per piece (measured: smaller chunks lose more to call overhead)
_SHORT = 32  # axes up to this long count as short (measured crossover: 64-256)


def _is_np_float2d(a: Any) -> bool:
    return type(a) is np.ndarray and a.ndim == 2 and a.dtype.kind == "f"


def _check_labels(y: np.ndarray, n: int, k: int) -> None:
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match {n} outputs, "
                         f"got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= k):
        raise ValueError(f"labels must be in [0, {k - 1}] for {k} outputs, "
                         f"got labels in [{int(y.min())}, {int(y.max())}]")


class NumpyOps(Ops):
    """Ops for NumPy arrays (see the module docstring for what each one gains).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops import ops_of
    >>> ops = ops_of(np.zeros(1))
    >>> ops.name, ops.row_max(np, np.array([[1.0, 5.0], [7.0, -1.0]])).tolist()
    ('numpy', [[5.0], [7.0]])
    """

    name = "numpy"

    def sum_rows(self, xp: Any, a: Any) -> Any:
        """Column sums; a short row goes through BLAS as ``ones @ a``."""
        if _is_np_float2d(a) and a.shape[1] <= _SHORT and a.shape[0] >= 64:
            return _const(1.0, a.dtype, a.shape[0])[:a.shape[0]] @ a
        return super().sum_rows(xp, a)

    def row_sums(self, xp: Any, a: Any) -> Any:
        """Row sums through BLAS as ``a @ ones``."""
        if _is_np_float2d(a) and a.shape[0] >= 64:
            return a @ _const(1.0, a.dtype, a.shape[1])[:a.shape[1], None]
        return super().row_sums(xp, a)

    def row_max(self, xp: Any, a: Any) -> Any:
        """Row max over a few columns as a running ``np.maximum``."""
        if _is_np_float2d(a) and 1 < a.shape[1] <= _SHORT and a.shape[0] >= 512:
            m = a[:, 0].copy()
            for j in range(1, a.shape[1]):
                np.maximum(m, a[:, j], out=m)
            return m.reshape(-1, 1)
        return super().row_max(xp, a)

    def relu_grad(self, xp: Any, dy: Any, y: Any) -> Any:
        """``dy * (y > 0)``: NumPy casts the mask inside the multiply."""
        if type(dy) is np.ndarray and type(y) is np.ndarray:
            return dy * (y > 0)
        return super().relu_grad(xp, dy, y)

    def softmax_ce_labels(self, z: Any, y: Any,
                          need_grad: bool) -> tuple[Any, Any] | None:
        """Softmax cross-entropy with labels in as few passes as possible (the generic
        loss's arithmetic; the labels' shape, dtype and range checked first).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import NumpyOps
        >>> loss, grad = NumpyOps().softmax_ce_labels(np.zeros((1, 2)), np.array([0]), True)
        >>> round(float(loss), 4), grad.tolist()
        (0.6931, [[-0.5, 0.5]])
        """
        if not (_is_np_float2d(z) and type(y) is np.ndarray):
            return None
        n, k = z.shape
        _check_labels(y, n, k)
        s = z - self.row_max(np, z)
        flat = np.arange(n) * k
        flat += y.astype(np.intp, copy=False)
        picked = s.reshape(-1).take(flat)
        np.exp(s, out=s)
        sum_e = self.row_sums(np, s)
        loss = np.mean(np.log(sum_e[:, 0]) - picked)
        if not need_grad:
            return loss, None
        sum_e *= n
        np.divide(1.0, sum_e, out=sum_e)  # one divide per row, then a multiply per element
        s *= sum_e
        p = s.reshape(-1)
        p[flat] -= 1.0 / n
        return loss, s

    @contextlib.contextmanager
    def training(self, *, num_params: int, n_updates: int) -> Iterator[None]:
        """For a fit: keep freed memory in the process (``xpnet/ops/_malloc.py``) and
        decide once whether the compiled update pays (``xpnet/ops/_numba.py``).

        Examples
        --------
        >>> from xpnet.ops import NumpyOps
        >>> with NumpyOps().training(num_params=10, n_updates=5):
        ...     pass
        """
        tuned = _malloc.keep_freed_memory()
        try:
            with _numba.deciding(num_params, n_updates):
                yield
        finally:
            if tuned:
                _malloc.release()

    def arrays_finite(self, arrays: Iterable[Any]) -> bool:
        """As [`Ops.arrays_finite`][xpnet.ops.Ops.arrays_finite], by BLAS products with zeros
        (NaN exactly where a value is not finite; half the time of a sum)."""
        return all_finite(arrays)

    def update_store(self, opt: Any, params: Any, grads: dict, state: dict, lr: float,
                     check: bool) -> bool | None:
        """The step's update over the model's flat buffers (see [`xpnet.store`][]).

        The rule's numba ``flat`` kernel where compiling pays, else its ufunc kernel
        chunk by chunk, writes the new values into the store's spare buffers, checking
        each as it writes it; the store swaps them in when all are finite (or ``check``
        is False). Frozen parameters are copied, their slots zeroed. Returns True
        (applied), False (nothing changed) or None (not a store's parameters and slots,
        a gradient of another kind, or no host kernel: the caller runs the reference rule).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([2, 2], backend="numpy")
        >>> opt = xn.SGD(lr=1e38)
        >>> state = opt.init(m.params)
        >>> grads = {"0.W": np.full((2, 2), -3e38, "float32"), "0.b": np.zeros(2, "float32")}
        >>> NumpyOps().update_store(opt, m.params, grads, state, 1e38, True)
        False
        """
        store = store_of(params, opt, state)
        return None if store is None else self._update_flat(store, opt, grads, state, lr, check)

    def _update_flat(self, store: Any, opt: Any, grads: dict, state: dict, lr: float,
                     check: bool) -> bool | None:
        """`update_store` on NumPy buffers (or NumPy views of CPU tensors)."""
        kernels = BY_TYPE[type(opt)] if type(opt) in BY_TYPE else kernels_for(opt)
        if kernels is None or kernels.ufunc_to is None:
            return None
        gs, trained = [], []
        for i, k in enumerate(store.keys):
            g = grads.get(k)
            if g is None:
                gs.append(store.flat[:1])  # frozen: never read
                continue
            if type(g) is not np.ndarray or g.dtype != store.dtype \
                    or g.shape != store.shapes[k]:
                return None
            gs.append(g.reshape(-1))
            trained.append(i)
        plan = _plan(store, opt, kernels, tuple(trained))
        p2, spare_slots = store.spares()
        slots = [store.flat if r is None else store.slots[r] for r in plan.rows]
        slots2 = [p2 if r is None else spare_slots[r] for r in plan.rows]
        if len(trained) < len(store.keys):
            _copy_frozen(store, trained, p2, spare_slots)
        hyper = _hyper(store, opt, kernels, plan, lr, state["steps"])
        table = plan.table
        if plan.one_piece and len(set(map(id, hyper))) == 1:  # one step count too
            gs, table, hyper = _one_piece(store, gs, hyper)
        ok = None
        if kernels.flat is not None and _numba.DECIDED.get() is not False \
                and _numba.use(store.total, int(state["step"]) + 1):  # a fit decides once
            ok = _numba.run_flat(kernels, _chunked_threads(store.total), store.flat,
                                 tuple(gs), tuple(slots), p2, tuple(slots2), table,
                                 _table(hyper, store.dtype), np.zeros(len(table), np.bool_))
        if ok is None:
            ok = _run_chunks(kernels.ufunc_to, table, hyper, store.flat, gs, slots, p2,
                             slots2, spare_slots)
        if ok or not check:
            store.swap()
            return True
        return False

    def speedups(self) -> dict[str, dict[str, Any]]:
        """Whether the compiled optimizer update and the malloc tuning apply here, and why.

        Examples
        --------
        >>> from xpnet.ops import NumpyOps
        >>> sorted(NumpyOps().speedups())
        ['compiled optimizer', 'malloc tuning']
        """
        if not _numba.installed():
            jit_on, jit_why = False, 'numba not installed (pip install numba)'
        elif _numba.switched_off():
            jit_on, jit_why = False, "numba installed, switched off by XPNET_JIT"
        elif _numba.failed():
            jit_on, jit_why = False, "numba installed but failed to compile here"
        else:
            jit_on, jit_why = True, (
                f"numba: compiled optimizer updates in fits of at least {_numba.WORTH_IT:.1e} "
                "parameter-updates (XPNET_JIT=0 turns them off)")
        mal_on = _malloc.enabled()
        if mal_on:
            mal_why = ("glibc: freed memory kept between steps during fit "
                       "(XPNET_MALLOC_TUNING=0 turns it off)")
        elif _malloc.user_configured():
            mal_why = "malloc configured by MALLOC_*_ / GLIBC_TUNABLES: left alone"
        elif _malloc.available() and not os.environ.get("XPNET_MALLOC_TUNING", "").strip():
            mal_why = ("glibc: freed memory kept between steps in xpnet train; a library "
                       "fit leaves it alone unless XPNET_MALLOC_TUNING=1")
        else:
            mal_why = "not glibc, or switched off by XPNET_MALLOC_TUNING"
        return {"compiled optimizer": {"on": jit_on, "why": jit_why},
                "malloc tuning": {"on": mal_on, "why": mal_why}}


def _copy_frozen(store: Any, trained: list[int], p2: np.ndarray, slots2: Any) -> None:
    """The spare buffers' frozen segments: the parameter as it is, zero slots."""
    keep = set(trained)
    for i, k in enumerate(store.keys):
        if i not in keep:
            lo, hi = store.offsets[k], store.offsets[k] + store.sizes[k]
            p2[lo:hi] = store.flat[lo:hi]
            if slots2 is not None:
                slots2[:, lo:hi] = 0


class _Plan(NamedTuple):
    """What an update of the same trained segments under the same settings reuses."""

    table: np.ndarray  # the trained segments' pieces: (segment, start, stop, segment start)
    segments: list[tuple[int, float, float]]  # (segment, weight decay, lr scale)
    rows: list[int | None]  # the kernel's arrays: a slot row, or None for the parameters
    one_piece: bool  # every segment, one setting, one chunk: one kernel call


def _plan(store: Any, opt: Any, kernels: Any, trained: tuple[int, ...]) -> _Plan:
    """The update's plan for ``trained``, cached in the store while the settings hold."""
    key, settings = ("plan", opt, trained), (opt.weight_decay, opt.decay)
    plan = store.cache.get(key)  # one plan per trained set: a changed setting replaces it
    if plan is not None and plan[0] is opt._groups and plan[1] == settings:
        return plan[2]
    offsets = [store.offsets[k] for k in store.keys]
    sizes = [store.sizes[k] for k in store.keys]
    table = np.asarray([(s, offsets[s] + lo, offsets[s] + min(sizes[s], lo + CHUNK), offsets[s])
                        for s in trained for lo in range(0, sizes[s], CHUNK)],
                       dtype=np.int64).reshape(-1, 4)
    segments = [(i, opt.weight_decay_for(store.keys[i], store.params[store.keys[i]]),
                 opt.lr_scale_for(store.keys[i], store.params[store.keys[i]])) for i in trained]
    rows = [None if a is None else store.slot_names.index(a) for a in kernels.arrays(opt)]
    one = len(trained) == len(store.keys) and store.total <= CHUNK \
        and len({(wd, scale) for _, wd, scale in segments}) == 1
    plan = _Plan(table, segments, rows, one)
    store.cache[key] = (opt._groups, settings, plan)
    return plan


def _hyper(store: Any, opt: Any, kernels: Any, plan: _Plan, lr: float,
           steps: dict) -> list[tuple[Any, ...]]:
    """Each segment's hyper-parameters for this step (its step count, decay and lr; cast)."""
    hyper: list[tuple[Any, ...]] = [()] * len(store.keys)
    dtype_type, keys = store.dtype.type, store.keys
    memo: dict[tuple[int, float, float], tuple[Any, ...]] = {}
    for i, wd, scale in plan.segments:
        t = steps[keys[i]] + 1
        h = memo.get((t, wd, scale))
        if h is None:
            h = memo[t, wd, scale] = cast_hyper(
                kernels.hyper(opt, lr if scale == 1.0 else lr * scale, t, wd), dtype_type)
        hyper[i] = h
    return hyper


def _one_piece(store: Any, gs: list[np.ndarray],
               hyper: list[tuple[Any, ...]]) -> tuple[list[np.ndarray], np.ndarray, list]:
    """Segments sharing hyper-parameters as one piece (gaps zero): one kernel call, not one each."""
    g = store.cache.get("flat grad")
    if g is None:
        g = store.cache["flat grad"] = np.zeros(store.total, dtype=store.dtype)
        store.cache["one piece"] = np.asarray([[0, 0, store.total, 0]], np.int64)
    for k, gk in zip(store.keys, gs, strict=True):
        g[store.offsets[k]:store.offsets[k] + store.sizes[k]] = gk
    return [g], store.cache["one piece"], [hyper[0]]


def _table(hyper: list[tuple[Any, ...]], dtype: np.dtype) -> np.ndarray:
    """The hyper-parameters as one row per segment (flags as 0 or 1) for the flat kernel."""
    width = max(len(h) for h in hyper)
    return np.asarray([h if h else (0,) * width for h in hyper], dtype=dtype)


def _chunked_threads(total: int) -> int:
    """Threads for the flat kernel: ``XPNET_NUM_THREADS`` (default 1), 1 below 2**18 elements."""
    if total < 1 << 18:
        return 1
    try:
        return max(1, int(os.environ.get("XPNET_NUM_THREADS", "1")))
    except ValueError:
        return 1


def _run_chunks(kernel: Any, table: np.ndarray, hyper: Sequence[tuple[Any, ...]], p: np.ndarray,
                grads: Sequence[np.ndarray], slots: Sequence[np.ndarray], p2: np.ndarray,
                slots2: Sequence[np.ndarray], spare_slots: np.ndarray | None) -> bool:
    """A rule's ``ufunc_to`` piece by piece, each checked while in the cache; False: not finite."""
    tmp = np.empty(CHUNK, dtype=p.dtype)
    zeros = _const(0.0, p.dtype, CHUNK)
    dot, isfinite = np.dot, math.isfinite
    with np.errstate(all="ignore"):
        for seg, lo, hi, go in table.tolist():
            n, args = hi - lo, [p[lo:hi], grads[seg][lo - go:hi - go]]
            for a in slots:
                args.append(a[lo:hi])
            args.append(p2[lo:hi])
            for a in slots2:
                args.append(a[lo:hi])
            kernel(*args, *hyper[seg], tmp[:n])
            z = zeros[:n]
            if not isfinite(dot(p2[lo:hi], z)):
                return False
            for row in () if spare_slots is None else spare_slots:  # one dot per row: a
                if not isfinite(dot(row[lo:hi], z)):  # product with the 2-D block is slower
                    return False
    return True


_CONST: dict[tuple[float, str], np.ndarray] = {}
_MAX_ZEROS = 1 << 20  # elements: a long array is checked in pieces of at most this many


def _const(value: float, dtype: np.dtype, n: int) -> np.ndarray:
    """A cached read-only vector of `value`, at least `n` long (callers slice it)."""
    v = _CONST.get((value, dtype.str))
    if v is None or v.shape[0] < n:
        v = _CONST[value, dtype.str] = np.full(n, value, dtype=dtype)
        v.setflags(write=False)
    return v


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
            zeros = _const(0.0, a.dtype, max(min(n, _MAX_ZEROS), CHUNK))
            step = zeros.shape[0]
            if not all(isfinite(dot(flat[lo:lo + step], zeros[:min(step, n - lo)]))
                       for lo in range(0, n, step)):
                return False
    return True
