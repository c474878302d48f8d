"""PyTorch ops: the NumPy optimizer kernels run on a CPU model's flat buffers, in place.

A CPU tensor and ``tensor.numpy()`` share memory, so the store's buffers and the
gradients go to [`NumpyOps.update_store`][xpnet.ops.NumpyOps.update_store] as NumPy
views: one pass writes and checks the new values (the bits of NumPy's update), where the
generic path allocates per operation and reads everything again to check it. Tensors on
another device, or that need autograd, take the generic path.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from . import _numba
from ._base import Ops, store_of
from ._numpy import NumpyOps

_NUMPY = NumpyOps()


class _HostView:
    """A CPU store seen through NumPy views (what ``NumpyOps._update_flat`` reads)."""

    def __init__(self, store: Any):
        self._store = store
        self.params = store.params
        self.keys, self.shapes, self.offsets = store.keys, store.shapes, store.offsets
        self.sizes, self.total, self.slot_names = store.sizes, store.total, store.slot_names
        self.cache = store.cache.setdefault("numpy view", {})
        self._data = store.data.numpy()
        self.dtype = self._data.dtype
        self.flat = self._data[0]
        self.slots = self._data[1:] if store.slot_names else None
        self.spare = store.spare.numpy()

    def spares(self) -> tuple[Any, Any]:
        return self.spare[0], (self.spare[1:] if self.slot_names else None)

    def swap(self) -> None:
        self._store.swap()


def _host(store: Any) -> bool:
    """Whether the store's buffers are plain CPU tensors NumPy can view."""
    data = store.data
    return data.device.type == "cpu" and not data.requires_grad \
        and data.dtype.is_floating_point and data.dtype.itemsize in (4, 8)


def _plain(a: Any) -> bool:
    """Whether ``a`` is a CPU tensor without autograd that NumPy can view."""
    return getattr(a, "device", None) is not None and a.device.type == "cpu" \
        and not a.requires_grad and hasattr(a, "numpy")


def _tensor(a: Any) -> Any:
    """A NumPy result as a tensor sharing its memory (a 0-d result made an array)."""
    import torch

    return torch.from_numpy(np.asarray(a))


class TorchOps(Ops):
    """PyTorch: the flat update of a CPU model through the NumPy kernels (see the module).

    Examples
    --------
    >>> import torch, xpnet as xn
    >>> from xpnet.ops import ops_for
    >>> m = xn.MLP([2, 2], backend="torch")
    >>> opt = xn.Adam(lr=0.1)
    >>> state = opt.init(m.params)
    >>> grads = {k: torch.ones_like(v) for k, v in m.params.items()}
    >>> before = m.params["0.b"].clone()
    >>> ops_for(xn.get_backend("torch")).update_store(opt, m.params, grads, state, 0.1, True)
    True
    >>> [round(v, 6) for v in (before - m.params["0.b"]).tolist()]  # Adam's first: lr
    [0.1, 0.1]
    """

    name = "torch"

    def relu_grad(self, xp: Any, dy: Any, y: Any) -> Any:
        """torch's ``threshold_backward`` (autograd's ReLU): one pass, 0 wherever ``y <= 0``
        (even where ``dy`` is not finite), ``dy`` where ``y`` is NaN."""
        import torch

        return torch.ops.aten.threshold_backward(dy, y, 0)

    def training(self, *, num_params: int, n_updates: int) -> AbstractContextManager[None]:
        """The fit's decision whether NumPy's compiled (numba) update pays, as on NumPy."""
        return _numba.deciding(num_params, n_updates)

    def update(self, opt: Any, params: dict, grads: dict, state: dict, lr: float,
               ts: dict[str, int], keep: Any) -> tuple[dict, dict] | None:
        """The reference rule on NumPy views of CPU tensors: `update_store`'s bits."""
        arrays = [*params.values(), *grads.values(),
                  *(a for s in opt.slots for a in state[s].values())]
        if keep is not None:
            arrays.append(keep)
        if not all(_plain(a) for a in arrays):
            return None
        views = {s: {k: v.numpy() for k, v in state[s].items()} for s in opt.slots}
        new_params, new_slots = opt._reference(
            {k: v.numpy() for k, v in params.items()},
            {k: v.numpy() for k, v in grads.items()}, views, lr, ts,
            None if keep is None else keep.numpy())
        return ({k: _tensor(v) for k, v in new_params.items()},
                {s: {k: _tensor(v) for k, v in d.items()} for s, d in new_slots.items()})

    def update_store(self, opt: Any, params: Any, grads: dict, state: dict, lr: float,
                     check: bool) -> bool | None:
        """[`NumpyOps.update_store`][xpnet.ops.NumpyOps.update_store] on NumPy views of a
        CPU store and its gradients; the generic flat update elsewhere."""
        store = store_of(params, opt, state)
        if store is None or not _host(store):
            return super().update_store(opt, params, grads, state, lr, check)
        host = {}
        for k, g in grads.items():
            if g.device.type != "cpu" or g.requires_grad or g.dtype != store.data.dtype:
                return super().update_store(opt, params, grads, state, lr, check)
            host[k] = g.numpy()
        done = _NUMPY._update_flat(_HostView(store), opt, host, state, lr, check)
        if done is None:
            return super().update_store(opt, params, grads, state, lr, check)
        return done
