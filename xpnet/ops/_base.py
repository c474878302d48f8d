"""The generic ops: plain Array API code for every namespace, what the others fall back to.

Nothing here reads a value back to the host (but the host checks, by design), writes
through a boolean mask or calls what array-api-compat implements with one (``sign``,
``clip`` on CuPy): each would wait for a GPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ..backends import _namespace_of, dtype_name


def cast_hyper(hyper: Iterable[Any], dtype_type: Any) -> tuple[Any, ...]:
    """Floats cast to the arrays' scalar type (as NumPy and CuPy cast Python floats); bools kept."""
    out = []
    for v in hyper:
        out.append(v if isinstance(v, bool) else dtype_type(v))
    return tuple(out)


def hypers(kernels: Any, opt: Any, lr: float, ts: dict[str, int], params: dict) -> dict[str, tuple]:
    """Each parameter's ``kernels.hyper`` (its step, decay and group lr), cast; memoised."""
    if not params:
        return {}
    dtype_type = next(iter(params.values())).dtype.type
    memo: dict[tuple[int, float, float], tuple] = {}
    out = {}
    for k, p in params.items():
        key = (ts[k], opt.weight_decay_for(k, p), opt._lr_for(k, p, lr))
        h = memo.get(key)
        if h is None:
            t, wd, lr_k = key
            h = memo[key] = cast_hyper(kernels.hyper(opt, lr_k, t, wd), dtype_type)
        out[k] = h
    return out


def store_of(params: Any, opt: Any, state: dict) -> Any:
    """The store whose buffers hold ``params`` and ``state``'s slots, or None."""
    store = getattr(params, "store", None)
    if store is None or store.params is not params or store.slot_names != tuple(opt.slots):
        return None
    for s in opt.slots:
        if state[s] is not store.slot_dicts[s]:
            return None
    return store


class Ops:
    """Array operations behind one object per array library; this base is generic.

    Layers, losses, optimizers and ``fit`` call these rather than pick a fast path;
    [`NumpyOps`][xpnet.ops.NumpyOps], [`CupyOps`][xpnet.ops.CupyOps] and
    [`TorchOps`][xpnet.ops.TorchOps] override what their library does faster. Get one
    with [`ops_for`][xpnet.ops.ops_for] (a backend) or [`ops_of`][xpnet.ops.ops_of]
    (an array).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.ops import ops_of
    >>> ops = ops_of(xp.ones(2))
    >>> ops.name
    'generic'
    >>> ops.relu_grad(xp, xp.asarray([1.0, 2.0]), xp.asarray([0.0, 3.0]))
    Array([0., 2.], dtype=array_api_strict.float64)
    """

    name = "generic"

    # -- math used by layers and losses ------------------------------------
    def sum_rows(self, xp: Any, a: Any) -> Any:
        """``xp.sum(a, axis=0)`` for a 2-D array: the sum over rows, shape ``(k,)``.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import ops_of
        >>> ops_of(np.ones(1)).sum_rows(np, np.ones((1000, 3), "float32")).tolist()
        [1000.0, 1000.0, 1000.0]
        """
        return xp.sum(a, axis=0)

    def row_sums(self, xp: Any, a: Any) -> Any:
        """``xp.sum(a, axis=1, keepdims=True)`` for a 2-D array: shape ``(n, 1)``.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import ops_of
        >>> ops_of(np.ones(1)).row_sums(np, np.arange(6.0).reshape(2, 3)).tolist()
        [[3.0], [12.0]]
        """
        return xp.sum(a, axis=1, keepdims=True)

    def row_max(self, xp: Any, a: Any) -> Any:
        """``xp.max(a, axis=1, keepdims=True)`` for a 2-D array: shape ``(n, 1)``.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import ops_of
        >>> a = np.array([[1.0, 5.0, 2.0], [7.0, -1.0, np.nan]])
        >>> ops_of(a).row_max(np, a).tolist()
        [[5.0], [nan]]
        """
        return xp.max(a, axis=1, keepdims=True)

    def relu_grad(self, xp: Any, dy: Any, y: Any) -> Any:
        """``dy`` where the ReLU output ``y`` is positive, else 0 (also where ``y`` is NaN).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import ops_of
        >>> dy, y = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.5, 2.0])
        >>> ops_of(dy).relu_grad(np, dy, y).tolist()
        [0.0, 2.0, 3.0]
        """
        # not dy * sign(y): array-api-compat's CuPy sign writes through a NaN mask (a sync)
        return dy * xp.astype(y > 0, dy.dtype)

    def softmax_ce_labels(self, z: Any, y: Any,
                          need_grad: bool) -> tuple[Any, Any] | None:
        """``(mean loss, gradient or None)`` of softmax cross-entropy with integer labels,
        or None where this library has no fast path (the loss then runs its own code).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import Ops
        >>> Ops().softmax_ce_labels(np.zeros((1, 2)), np.array([0]), True) is None
        True
        """
        return None

    # -- training support ---------------------------------------------------
    def training(self, *, num_params: int, n_updates: int) -> AbstractContextManager[None]:
        """A context for the whole of a fit (process-wide tuning; nothing here).

        Parameters
        ----------
        num_params : int
            Parameters the fit updates.
        n_updates : int
            Optimizer updates it will make.

        Examples
        --------
        >>> from xpnet.ops import Ops
        >>> with Ops().training(num_params=10, n_updates=5):
        ...     pass
        """
        return contextlib.nullcontext()

    def all_finite(self, value: Any, grads: dict[str, Any]) -> bool:
        """Host check: whether the loss and every gradient are finite (exactly: no sum).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import Ops
        >>> ops = Ops()
        >>> ops.all_finite(np.asarray(1.0), {"w": np.ones(3)})
        True
        >>> ops.all_finite(np.asarray(1.0), {"w": np.array([1.0, np.inf])})
        False
        """
        return math.isfinite(float(value)) and self.arrays_finite(grads.values())

    def arrays_finite(self, arrays: Iterable[Any]) -> bool:
        """Host check: whether every element of ``arrays`` is finite (one read, no sum,
        no float64, which JAX may not have).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import Ops
        >>> Ops().arrays_finite([np.full(3, 3e38, "float32"), np.zeros(2)])
        True
        >>> Ops().arrays_finite([np.ones(2), np.array([0.0, -np.inf])])
        False
        """
        ok = None
        for a in arrays:
            xp = _namespace_of(a)
            flag = xp.all(xp.isfinite(a))
            ok = flag if ok is None else ok & flag
        return True if ok is None else bool(ok)

    def scope(self, a: Any) -> AbstractContextManager[Any]:
        """A context under which new arrays land on ``a``'s device (a no-op here).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import Ops
        >>> with Ops().scope(np.zeros(1)):
        ...     pass
        """
        return contextlib.nullcontext()

    def finite_flag(self, value: Any, grads: dict[str, Any]) -> Any:
        """[`all_finite`][xpnet.ops.Ops.all_finite] as a 0-d bool array, with no host sync.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.ops import Ops
        >>> bool(Ops().finite_flag(np.asarray(1.0), {"w": np.array([np.nan])}))
        False
        """
        xp = _namespace_of(value)
        ok = xp.isfinite(value)
        for g in grads.values():
            ok = ok & xp.all(xp.isfinite(g))
        return ok

    def uniform(self, rng: Any, shape: tuple[int, ...], dtype: Any, backend: Any) -> Any:
        """Uniform ``[0, 1)`` draws (dropout), made on the host from ``rng`` (an
        [`xpnet.RNG`][]) and copied to ``backend``: the same numbers on every backend.

        Examples
        --------
        >>> import xpnet as xn
        >>> from xpnet.ops import Ops
        >>> b = xn.get_backend("numpy")
        >>> u = Ops().uniform(xn.RNG(0), (2, 3), b.xp.float32, b)
        >>> u.shape, str(u.dtype), bool((u >= 0).all() and (u < 1).all())
        ((2, 3), 'float32', True)
        """
        host = np.float32 if dtype_name(dtype) == "float32" else np.float64
        return backend.asarray(rng.generator.random(shape, dtype=host), dtype=dtype)

    # -- optimizer kernels ----------------------------------------------------
    def update(self, opt: Any, params: dict, grads: dict, state: dict, lr: float,
               ts: dict[str, int], keep: Any) -> tuple[dict, dict] | None:
        """A fused pure update ``(new_params, new_slots)``, or None (no kernel here).

        [`Optimizer.update`][xpnet.optimizers.Optimizer.update] calls it with clipped
        gradients, each parameter's 1-based update number ``ts`` and the optional mask.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> from xpnet.ops import Ops
        >>> p = {"w": np.ones(2)}
        >>> opt = xn.SGD(lr=0.1)
        >>> Ops().update(opt, p, p, opt.init(p), 0.1, {"w": 1}, None) is None
        True
        """
        return None

    def update_store(self, opt: Any, params: Any, grads: dict, state: dict, lr: float,
                     check: bool) -> bool | None:
        """The reference rule run once over a model's flat buffer, into the spare one,
        checked (if ``check``) by one float64 sum and swapped in: True, False (nothing
        changed) or None (not a store's parameters, or parameters at different update
        numbers, decays or rates: the optimizer then runs it per parameter).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> from xpnet.ops import Ops
        >>> m = xn.MLP([2, 2], backend="numpy")
        >>> opt = xn.SGD(lr=0.5)
        >>> state = opt.init(m.params)
        >>> grads = {k: np.ones_like(v) for k, v in m.params.items()}
        >>> before = m.params["0.b"].copy()
        >>> Ops().update_store(opt, m.params, grads, state, 0.5, True)
        True
        >>> (before - m.params["0.b"]).tolist()
        [0.5, 0.5]
        """
        store = store_of(params, opt, state)
        if store is None or len(grads) != len(store.keys):
            return None
        steps, first = state["steps"], store.keys[0]
        t = steps[first] + 1
        wd = opt.weight_decay_for(first, params[first])
        lr_k = opt._lr_for(first, params[first], lr)
        if any(steps[k] + 1 != t or opt.weight_decay_for(k, params[k]) != wd
               or opt._lr_for(k, params[k], lr) != lr_k for k in store.keys):
            return None
        xp = store.xp
        g = xp.concat([xp.reshape(grads[k], (-1,)) if isinstance(k, str) else k
                       for k in store.layout(xp)])
        slots = {s: store.data[1 + i, ...] for i, s in enumerate(store.slot_names)}
        p_in, g_in = opt._decayed(store.flat, g, lr_k, wd)
        p2, slots2 = opt._update_one(p_in, g_in, slots, lr_k, t)
        spare = store.spare
        spare[0, ...] = p2
        for i, s in enumerate(store.slot_names):
            spare[1 + i, ...] = slots2[s]
        if check and not bool(xp.isfinite(xp.sum(spare, dtype=xp.float64))):
            return False
        store.swap()
        return True

    def speedups(self) -> dict[str, dict[str, Any]]:
        """The optional speed-ups of this library: ``{name: {"on": bool, "why": str}}``.

        Examples
        --------
        >>> from xpnet.ops import Ops
        >>> Ops().speedups()
        {}
        """
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
