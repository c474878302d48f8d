"""The parameter store: one contiguous buffer per role, and the parameters as views of it.

On a backend whose arrays can be written in place (NumPy, CuPy, PyTorch) a model keeps
its parameters in one flat buffer; ``model.params`` is a [`ParamDict`][xpnet.store.ParamDict]
of views into it, so the public API and checkpoints see the usual dict of arrays. The
optimizer state of the model's ``fit`` lives in the same store: one 2-D buffer holding
every slot (one row per slot name), and the spare set the checked update writes into
before it is swapped in. An update is then a handful of kernels over whole buffers,
whatever the number of parameters (see [`xpnet.ops`][]).

On backends whose arrays are immutable (JAX, ``array_api_strict``) there is no store:
``model.params`` is a plain dict that every update rebinds.

What a caller may rely on:

* ``model.params`` (and ``opt.state[slot]``) is the same dict object for the life of
  the model; assigning an array to one of its keys copies the values into the store
  and refuses an array of another library, shape or dtype.
* The update of ``fit`` writes the spare buffer and swaps it in (NumPy, and PyTorch
  when every parameter shares its update number and weight decay), so
  ``model.params[k]`` is a different array after a step: hold the dict, not the array.
  Where the reference rule runs parameter by parameter (a decay mask on PyTorch, a
  rule without kernels) the new values are copied into the views instead.
* Gradients are never written by an update: a gradient hook may keep the arrays it
  returns, and may change them only before the update reads them (in the hook).

Examples
--------
>>> import numpy as np, xpnet as xn
>>> m = xn.MLP([3, 4, 2], backend="numpy", seed=0)
>>> store = m.store
>>> store.keys, store.offsets  # each segment starts on a 64-byte boundary
(['0.W', '0.b', '2.W', '2.b'], {'0.W': 0, '0.b': 16, '2.W': 32, '2.b': 48})
>>> bool(np.shares_memory(m.params["0.W"], store.flat))
True
"""

from __future__ import annotations

import math
from typing import Any

from ._checks import check_param_value

__all__ = ["ParamDict", "ParamStore"]


def _itemsize(a: Any) -> int:
    """Bytes per element of ``a`` (NumPy, CuPy and PyTorch spell it differently)."""
    size = getattr(a, "itemsize", None)
    return int(size) if size is not None else int(a.element_size())


class ParamDict(dict):
    """A dict of views into a [`ParamStore`][xpnet.store.ParamStore] role.

    Reading gives the views; assigning ``d[key] = array`` copies the array into the
    store (same shape and dtype, or a clear error) instead of rebinding the key, so the
    store stays the one place the values live. Keys cannot be added or removed.

    Parameters
    ----------
    store : ParamStore
    views : dict of str to array
        The views this dict starts with.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> m = xn.MLP([2, 2], backend="numpy")
    >>> m.params["0.b"] = np.ones(2, "float32")
    >>> m.store.flat[16:18].tolist()
    [1.0, 1.0]
    >>> try:
    ...     m.params["0.b"] = np.ones(3, "float32")
    ... except ValueError as exc:
    ...     print(exc)
    parameter '0.b' has shape (3,), expected (2,)
    """

    def __init__(self, store: ParamStore, views: dict[str, Any]):
        super().__init__(views)
        self.store = store

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            raise KeyError(f"{key!r} is not a parameter of this store "
                           f"(parameters: {sorted(self)})")
        view = dict.__getitem__(self, key)
        if value is view:
            return
        if type(value) is not type(view) or value.shape != view.shape \
                or value.dtype != view.dtype:  # the full check only where it can fail
            self.store.check_value(key, value)
        if getattr(value, "requires_grad", False):  # a torch Parameter: its values only,
            value = value.detach()  # or the store would join its autograd graph
        view[...] = value

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Assign each pair as ``d[key] = value`` does (checked, copied into the store)."""
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __delitem__(self, key: str) -> None:
        raise TypeError("parameters cannot be removed from a model's store")

    def __reduce__(self) -> Any:  # copy/pickle as a plain dict of arrays
        return (dict, (dict(self),))


class ParamStore:
    """One flat buffer per role for a model's parameters (see the module docstring).

    Parameters
    ----------
    params : dict of str to array
        The parameters, in order; their values are copied into the new buffer.
    xp : namespace
        The arrays' namespace (NumPy, CuPy or PyTorch through array-api-compat).

    Attributes
    ----------
    keys : list of str
        Parameter keys in buffer order (the segments).
    shapes, offsets, sizes : dict of str to tuple / int
        Each segment's shape, first index and length in the flat buffers.
    total : int
        Elements in one role's buffer (each segment starts on a 64-byte boundary;
        the gaps between segments hold zeros).
    data : 2-D array
        The live buffer: row 0 the parameters (`flat`), then one row per optimizer
        slot (`slots`).
    flat : 1-D array
        The live parameter buffer (row 0 of ``data``).
    slots : 2-D array or None
        The live slot buffer, one row per slot name (rows 1... of ``data``); None
        without slots.
    params : ParamDict
        Views of ``flat`` by key (the model's ``params``).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.store import ParamStore
    >>> s = ParamStore({"w": np.ones((2, 3)), "b": np.zeros(3)}, np)
    >>> s.offsets, s.flat.shape  # float64: 8 elements to 64 bytes
    ({'w': 0, 'b': 8}, (16,))
    """

    def __init__(self, params: dict[str, Any], xp: Any):
        self.xp = xp
        first = next(iter(params.values()))
        self.dtype, self.device = first.dtype, getattr(first, "device", None)
        self.keys = list(params)
        self.shapes = {k: tuple(v.shape) for k, v in params.items()}
        self.sizes = {k: math.prod(s) for k, s in self.shapes.items()}
        # each segment starts on a 64-byte boundary (as a fresh array would): BLAS takes
        # its aligned paths, the same as for separate arrays; the gaps stay zero
        align = max(1, 64 // _itemsize(first))
        self.offsets, n = {}, 0
        for k in self.keys:
            self.offsets[k] = n
            n += -(-self.sizes[k] // align) * align
        self.total = n
        self.slot_names: tuple[str, ...] = ()
        self.data = self._empty(1, self.total)  # row 0: the parameters; then the slots
        self.flat, self.slots = self.data[0, ...], None
        self._spare: Any = None
        self._views: list[tuple[Any, list[dict[str, Any]]]] = []
        self.params = ParamDict(self, self._row_views(self.data)[0])
        for k, v in params.items():
            self.params[k] = v
        self.slot_dicts: dict[str, ParamDict] = {}
        self.cache: dict[Any, Any] = {}  # the ops' per-store plans (pieces of the buffers)

    # -- buffers -------------------------------------------------------------
    def _empty(self, *shape: int) -> Any:
        return self.xp.zeros(shape, dtype=self.dtype, device=self.device)

    def views(self, flat: Any) -> dict[str, Any]:
        """Each segment of the 1-D buffer ``flat`` as a view of its parameter's shape."""
        xp = self.xp
        return {k: xp.reshape(flat[self.offsets[k]:self.offsets[k] + self.sizes[k]],
                              self.shapes[k]) for k in self.keys}

    def _row_views(self, data: Any) -> list[dict[str, Any]]:
        """`views` of every row of the 2-D buffer ``data``, kept for the two buffers in
        use (the live one and the spare one), so a swap makes no new views."""
        for buf, rows in self._views:
            if buf is data:
                return rows
        rows = [self.views(data[i, ...]) for i in range(data.shape[0])]
        self._views = [*self._views[-1:], (data, rows)]
        return rows

    def set_data(self, data: Any) -> None:
        """Make ``data`` (same shape) the live buffer and point every view dict at it."""
        self.data = data
        self.flat, self.slots = data[0, ...], (data[1:, ...] if self.slot_names else None)
        rows = self._row_views(data)
        dict.update(self.params, rows[0])  # the same keys, other views (not copied in)
        for d, views in zip(self.slot_dicts.values(), rows[1:], strict=True):
            dict.update(d, views if len(d) == len(views) else {k: views[k] for k in d})

    def layout(self, xp: Any) -> list[Any]:
        """The segments of one row in order: each key, and a zero array for each gap
        between segments (cached), for laying per-key arrays out as a row with one
        ``concat``."""
        pieces = self.cache.get("layout")
        if pieces is None:
            pieces, end = [], 0
            for k in self.keys:
                if self.offsets[k] > end:
                    pieces.append(self._empty(self.offsets[k] - end))
                pieces.append(k)
                end = self.offsets[k] + self.sizes[k]
            if self.total > end:
                pieces.append(self._empty(self.total - end))
            self.cache["layout"] = pieces
        return pieces

    def check_value(self, key: str, value: Any) -> None:
        """Refuse an array of the wrong library, shape or dtype for parameter ``key``."""
        check_param_value(key, value, dict.__getitem__(self.params, key), copied=True)

    # -- optimizer slots -----------------------------------------------------
    def new_slots(self, names: tuple[str, ...], keys: list[str]) -> dict[str, ParamDict]:
        """Fresh zero slots ``names`` for the parameters ``keys``: a new buffer holds the
        parameters (copied) and the slots, one row each.

        The store then holds these slots (an earlier optimizer state keeps its own
        arrays). Returns ``{name: ParamDict of the keys' views}``.
        """
        data = self._empty(1 + len(names), self.total)
        data[0, ...] = self.data[0, ...]
        self.slot_names, self._spare = tuple(names), None
        rows = self._row_views(data)
        self.slot_dicts = {s: ParamDict(self, {k: rows[1 + i][k] for k in keys})
                           for i, s in enumerate(names)}
        self.set_data(data)
        return self.slot_dicts

    def adopt(self, state: dict, names: tuple[str, ...]) -> None:
        """Move an optimizer state's slots ``names`` into this store (a state loaded
        from a checkpoint or made for another copy of the parameters), in place; a
        state whose slots are this store's already is left as it is."""
        if all(state.get(s) is self.slot_dicts.get(s) for s in names):
            return
        keys = list(state[names[0]]) if names else []
        values = {s: dict(state[s]) for s in names}
        state.update(self.new_slots(names, keys))
        for s in names:
            state[s].update(values[s])

    def slot_view(self, name: str, key: str) -> Any:
        """The live view of slot ``name`` for parameter ``key``."""
        return self._row_views(self.data)[1 + self.slot_names.index(name)][key]

    def align_slots(self, keys: list[str]) -> None:
        """Make the slot dicts cover exactly ``keys``: a key that leaves or joins has
        its moments zeroed (a frozen parameter keeps no state; an unfrozen one starts
        from zero)."""
        for name, d in self.slot_dicts.items():
            if list(d) == keys:
                continue
            for k in set(d) ^ set(keys):
                self.slot_view(name, k)[...] = 0
            dict.clear(d)
            dict.update(d, {k: self.slot_view(name, k) for k in keys})

    # -- the spare set and the swap -----------------------------------------------
    def spares(self) -> tuple[Any, Any]:
        """The spare parameter buffer and spare slot buffer (None without slots), made
        on first use: where a checked update writes its new values."""
        spare = self.spare
        return spare[0, ...], (spare[1:, ...] if self.slot_names else None)

    @property
    def spare(self) -> Any:
        """The spare buffer (the shape of `data`), made on first use."""
        if self._spare is None:
            self._spare = self._empty(*self.data.shape)
        return self._spare

    def swap(self) -> None:
        """Make the spare buffer live (after a checked update wrote it) and point every
        view dict at it; the old live buffer becomes the spare."""
        spare, self._spare = self._spare, self.data
        self.set_data(spare)

    def __repr__(self) -> str:
        return (f"ParamStore({len(self.keys)} parameters, {self.total} elements, "
                f"slots={list(self.slot_names)})")
