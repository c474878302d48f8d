"""Sequential models: forward, loss_and_grads, predict, evaluate, to(backend)."""

from __future__ import annotations

import copy
import math
import numbers
import operator
from typing import TYPE_CHECKING, Any

from . import _autodiff, _checks
from .backends import Backend, get_backend, to_numpy
from .blocks import _find, _frozen_prefixes, _keywords, _summary_rows, _walk, _widths, sublayers
from .layers import ACTIVATIONS, Dense, Dropout, Layer, layer_from_config
from .losses import Loss, get_loss, loss_config, loss_from_config
from .random import RNG, _fresh_seed
from .store import ParamStore
from .training import History, fit
from .training.fitting import _on_model_device as _on_device

if TYPE_CHECKING:
    from .optimizers import Optimizer

__all__ = ["Sequential", "MLP"]

_TRAINABLE = operator.attrgetter("trainable")


def _check_names(attr: str, what: str, given: Any, have: dict) -> None:
    """Refuse a value for ``model.<attr>`` that is not a dict with exactly ``have``'s keys."""
    if not isinstance(given, dict):
        raise TypeError(f"{attr} must be a dict of arrays, got {type(given).__name__}")
    if set(given) != set(have):
        raise ValueError(f"{what} names differ: expected {sorted(have)}, got {sorted(given)}")


class _Checked(dict):
    """Parameters (immutable backends) or buffers: item assignment checked as the setter's."""

    what = "parameter"

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            raise KeyError(f"{key!r} is not a {self.what} of this model ({self.what}s: "
                           f"{list(self)})")
        _checks.check_param_value(key, value, dict.__getitem__(self, key), self.what)
        dict.__setitem__(self, key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Assign each pair as ``d[key] = value`` does (checked)."""
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __reduce__(self) -> Any:  # copy/pickle keep the check
        return (type(self), (dict(self),))

    @classmethod
    def replacing(cls, have: dict, given: Any, attr: str) -> Any:
        """A new dict of ``given``'s values after checking them against ``have``'s."""
        _check_names(attr, cls.what, given, have)
        for k, v in given.items():
            _checks.check_param_value(k, v, have[k], cls.what)
        return cls({k: given[k] for k in have})


class _CheckedBuffers(_Checked):
    what = "buffer"


def _per_layer(arrays: dict, n: int) -> list[list[tuple[str, str]]]:
    """Per layer ``i < n``, the ``(short name, key)`` pairs of the keys ``"<i>.<name>"``."""
    return [[(k[len(f"{i}."):], k) for k in arrays if k.startswith(f"{i}.")] for i in range(n)]


def _refuse_traced(X: Any, method: str) -> None:
    """Refuse a JAX tracer (``model.forward`` under ``jax.jit``) with what to do instead."""
    if any(c.__name__.endswith("Tracer") for c in type(X).__mro__):
        raise TypeError(
            f"model.{method} cannot run inside jax.jit, jax.grad or jax.vmap: X is a JAX "
            "tracer (an abstract value), and the model checks its inputs' shapes, values "
            "and device on the host. Call it on concrete arrays (fit compiles its own "
            "training step on JAX), or jit a function of your own over the layers' "
            "forward(params, x) with the parameters as an argument")


def _own_copy(layer: Layer) -> Layer:
    """A copy of ``layer`` for one model (a shallow one where a layer cannot be deep-copied)."""
    try:
        return copy.deepcopy(layer)
    except Exception:  # a layer holding something that cannot be copied deeply
        return copy.copy(layer)


def _check_layer_grads(what: str, params: dict[str, Any], grads: Any) -> None:
    """Refuse gradients whose keys or shapes are not those of the layer's parameters."""
    if not isinstance(grads, dict):
        raise TypeError(f"{what}: backward must return (dx, dict of gradients), got "
                        f"{type(grads).__name__} for the gradients")
    if set(grads) != set(params):
        raise ValueError(
            f"{what}: backward returned gradients for {sorted(grads)}, but the layer's "
            f"parameters are {sorted(params)} (missing {sorted(set(params) - set(grads))}, "
            f"unexpected {sorted(set(grads) - set(params))}); return one gradient per "
            "parameter, under the parameter's name")
    for k, g in grads.items():
        gshape, pshape = tuple(getattr(g, "shape", ())), tuple(params[k].shape)
        if gshape != pshape:
            raise ValueError(f"{what}: the gradient of {k!r} has shape {gshape}, the "
                             f"parameter has shape {pshape}; the update would change the "
                             "parameter's shape (a sum that kept a dimension?)")


class Sequential:
    """A stack of layers trained with one loss on one backend.

    Parameters
    ----------
    layers : list of Layer
        Copied at build (``copy.deepcopy``): the model's own layers are `layers`,
        so two models built from one list share no freezing, and a layer changed
        after the build changes no model. Change a model's layers through it
        (``model.layers[i]``, [`freeze`][xpnet.model.Sequential.freeze]).
    in_features : int
        Number of input features.
    loss : str or Loss
        ``"cross_entropy"`` (default), ``"mse"`` or ``"binary_cross_entropy"``.
    backend : str
        ``"auto"`` (CuPy when a GPU is usable, else NumPy), ``"numpy"``,
        ``"cupy"``, ``"torch"`` or ``"array_api_strict"``.
    device : optional
        Device on the backend (e.g. ``"cuda"`` for torch).
    dtype : {"float32", "float64"}
    seed : int or None
        Seed for the initial parameters. The same seed gives bitwise-identical
        initial parameters on every backend. ``None`` draws a fresh seed from the
        operating system's entropy (e.g. for an ensemble) and records it in
        `seed`, in [`get_config`][xpnet.model.Sequential.get_config] and so in
        checkpoints: ``Sequential(..., seed=model.seed)`` builds the same model.

    Attributes
    ----------
    params : dict of str to array
        The parameters, named ``"<layer index>.<name>"`` (e.g. ``"0.W"``).
    backend : Backend
    optimizer : Optimizer or None
        The optimizer of the last ``fit``; ``fit`` without ``optimizer=``
        continues with it.
    feature_names_in_ : list of str or None
        The column names of the data frame the model was last fitted on (None for
        arrays). ``fit``, ``predict``, ``predict_proba`` and ``evaluate`` refuse a data
        frame whose columns differ from them, in name or in order (the values are taken
        by position). Kept by pickling, not by checkpoints.

    Examples
    --------
    >>> import xpnet as xn
    >>> m = xn.Sequential([xn.Dense(4), xn.ReLU(), xn.Dense(2)], in_features=3,
    ...                   backend="numpy", seed=0)
    >>> sorted(m.params)
    ['0.W', '0.b', '2.W', '2.b']
    """

    def __init__(self, layers: list[Layer], *, in_features: int, loss: str | Loss = "cross_entropy",
                 backend: str | Backend = "auto", device: Any = None, dtype: str = "float32",
                 seed: int | None = 0):
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError("layers must be a non-empty list of Layer objects")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] is {type(layer).__name__}, not an xpnet Layer")
        self.in_features = _checks.check_int("in_features", in_features)
        self.loss = get_loss(loss)
        self.dtype_name = _checks.check_dtype(dtype)
        self.seed = _fresh_seed() if seed is None else _checks.check_int("seed", seed,
                                                                         minimum=0)
        self.layers = [_own_copy(layer) for layer in layers]
        self.backend = get_backend(backend, device)
        self.optimizer: Optimizer | None = None
        self.feature_names_in_: list[str] | None = None
        self.stop_training = False
        """Set to True (e.g. by a callback) to stop ``fit`` after the current epoch."""
        takes = [_keywords(type(layer).backward) for layer in self.layers]  # optional ones
        self._skip_kw = ["need_input_grad" in t for t in takes]
        self._param_kw = ["need_param_grads" in t for t in takes]
        self._autodiff = [_autodiff.needs(layer) for layer in self.layers]
        self.rng = RNG(self.seed)
        self.store: ParamStore | None = None
        self._params: dict[str, Any] = {}
        self._step_cache: dict[str, Any] = {}  # the step's per-layer keys and views
        with self.backend.device_scope():
            params, buffers = self._init_state()
            self._set_new_params(params)
            self._set_new_buffers(buffers)

    # -- construction --------------------------------------------------------
    def _init_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fresh parameters and buffers, keyed ``"<layer index>.<name>"``."""
        params: dict[str, Any] = {}
        buffers: dict[str, Any] = {}
        widths = _widths(self.layers, self.in_features)
        dtype = self.backend.dtype(self.dtype_name)
        for i, layer in enumerate(self.layers):
            params.update({f"{i}.{k}": v for k, v in layer.init(
                widths[i], self.rng, backend=self.backend, dtype=dtype).items()})
            buffers.update({f"{i}.{k}": v for k, v in layer.init_buffers(
                widths[i], backend=self.backend, dtype=dtype).items()})
        self.out_features = widths[-1]
        return params, buffers

    def _set_new_buffers(self, buffers: dict[str, Any]) -> None:
        """Take ``buffers`` as the model's buffers; per layer, their (short name, key)."""
        self._buffers = _CheckedBuffers(buffers)
        self._buffer_keys = _per_layer(buffers, len(self.layers))

    def _set_new_params(self, params: dict[str, Any]) -> None:
        """Take ``params`` as the model's parameters: a new store on a mutable backend."""
        if self.backend.mutable and params:
            self.store = ParamStore(params, self.backend.xp)
            self._params = self.store.params
        else:
            self.store, self._params = None, _Checked(params)

    def __getstate__(self) -> dict[str, Any]:
        # pickled (and deep-copied) as plain arrays: the store is rebuilt on loading
        state = dict(self.__dict__)
        state["_params"], state["store"] = dict(self._params), None
        state.pop("_step_cache", None)  # views of the store: rebuilt on first use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._step_cache = {}
        if self._params:
            self._set_new_params(self._params)
        self._set_new_buffers(state.get("_buffers", {}))  # a model pickled before buffers

    @property
    def params(self) -> dict[str, Any]:
        """The parameters, ``{"<layer index>.<name>": array}``.

        On NumPy, CuPy and PyTorch the arrays are views of the model's
        [`store`][xpnet.store.ParamStore] and the dict is always the same object;
        assigning a dict (or one key) copies the values in, after checking each
        array's shape and dtype against the parameter it replaces. See
        [`xpnet.store`][] for what a caller holding an array may rely on.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([2, 2], backend="numpy")
        >>> m.params = {"0.W": np.eye(2, dtype="float32"), "0.b": np.zeros(2, "float32")}
        >>> m.params["0.W"].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        >>> try:
        ...     m.params = {"0.W": np.eye(2), "0.b": np.zeros(2)}
        ... except TypeError as exc:
        ...     print(exc)
        parameter '0.W' has dtype float64, the model's is float32
        """
        return self._params

    @params.setter
    def params(self, params: dict[str, Any]) -> None:
        if self.store is None:
            self._params = _Checked.replacing(self._params, params, "params")
            return
        _check_names("params", "parameter", params, self._params)
        for k, v in params.items():
            self.store.check_value(k, v)
        self.store.params.update(params)

    @property
    def buffers(self) -> dict[str, Any]:
        """The layers' buffers: state that is not trained, ``{"<layer index>.<name>": array}``.

        [`BatchNorm`][xpnet.layers.BatchNorm]'s running statistics, for example
        (see [`xpnet.Layer.init_buffers`][xpnet.layers.Layer.init_buffers]). Saved in
        checkpoints and moved by [`to`][xpnet.model.Sequential.to]; optimizers, weight
        decay and gradient checks never see them. A training step
        ([`loss_and_grads`][xpnet.model.Sequential.loss_and_grads] with ``train=True``,
        ``fit``) assigns their new values; a step ``fit``'s non-finite guard skips leaves
        them as they were. Assigning a dict (or one key) checks each array's kind, shape
        and dtype. Empty for a model without such layers.

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.Sequential([xn.Dense(3), xn.BatchNorm()], in_features=2, backend="numpy")
        >>> {k: v.tolist() for k, v in m.buffers.items()}
        {'1.running_mean': [0.0, 0.0, 0.0], '1.running_var': [1.0, 1.0, 1.0]}
        """
        return self._buffers

    @buffers.setter
    def buffers(self, buffers: dict[str, Any]) -> None:
        self._buffers = _CheckedBuffers.replacing(self._buffers, buffers, "buffers")

    def layer_buffers(self, i: int) -> dict[str, Any]:
        """The buffers of layer ``i`` keyed by their short names (empty for most layers).

        Parameters
        ----------
        i : int
            Index into `layers`.

        Returns
        -------
        dict of str to array

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.Sequential([xn.Dense(3), xn.BatchNorm()], in_features=2, backend="numpy")
        >>> sorted(m.layer_buffers(1)), m.layer_buffers(0)
        (['running_mean', 'running_var'], {})
        """
        return {short: self._buffers[key]
                for short, key in self._buffer_keys[self._layer_index(i)]}

    @property
    def dtype(self) -> Any:
        """The parameters' dtype object in the backend namespace.

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([3, 2], backend="numpy", dtype="float64")
        >>> m.dtype == m.xp.float64
        True
        """
        return self.backend.dtype(self.dtype_name)

    @property
    def xp(self) -> Any:
        """The Array API namespace of the model's backend.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.MLP([3, 2], backend="numpy").xp.__name__
        'array_api_compat.numpy'
        """
        return self.backend.xp

    @property
    def num_params(self) -> int:
        """Total number of scalar parameters.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.MLP([3, 4, 2], backend="numpy").num_params  # (3*4 + 4) + (4*2 + 2)
        26
        """
        return sum(math.prod(v.shape) for v in self.params.values())

    def layer_params(self, i: int) -> dict[str, Any]:
        """The parameters of layer ``i`` keyed by their short names.

        Parameters
        ----------
        i : int
            Index into `layers`.

        Returns
        -------
        dict of str to array
            Empty for a layer without parameters.

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy")
        >>> {k: v.shape for k, v in m.layer_params(2).items()}
        {'W': (4, 2), 'b': (2,)}
        >>> m.layer_params(1)
        {}
        """
        return {short: self._params[key]
                for short, key in self._layer_keys()[self._layer_index(i)]}

    def _layer_index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"layer index must be an int or an address such as '2.0', got "
                            f"{i!r}")
        n, index = len(self.layers), int(i)
        if not -n <= index < n:
            raise IndexError(f"layer index {index} is out of range for {n} layers")
        return index % n

    def _addressed(self, i: Any) -> Layer:
        """The layer an index or an address (``"2.0"``: layer 0 of the block at 2) names."""
        if not isinstance(i, str):
            return self.layers[self._layer_index(i)]
        head, *rest = i.split(".")
        try:
            top = int(head)
        except ValueError:
            raise ValueError(f"layer address {i!r} must be indices joined by '.', as "
                             "'2' or '2.0'") from None
        try:
            return _find(self.layers[self._layer_index(top)], rest, i)
        except KeyError as exc:
            raise IndexError(exc.args[0]) from None

    def _set_trainable(self, layers: Any, flag: bool) -> Sequential:
        if layers is None:
            layers = range(len(self.layers))
        many = isinstance(layers, (list, tuple, range))
        chosen = [self._addressed(i) for i in (layers if many else [layers])]
        for layer in chosen:  # unfreezing a layer that holds layers unfreezes them all
            for _, sub in _walk(layer, "", root=True) if flag else [("", layer)]:
                sub.trainable = flag
        return self

    def freeze(self, layers: int | str | list[int | str] | None = None) -> Sequential:
        """Freeze layers: ``fit``, ``loss_and_grads`` and the optimizers leave their
        parameters alone (no gradient, no update, no decay, no optimizer state).

        Sets each layer's `trainable` to False; checkpoints
        record it. A layer held by another (in a [`xpnet.Block`][]) is addressed by
        the prefix of its parameter keys: ``"2.0"`` is layer 0 of the block at index 2,
        whose parameters are ``"2.0.W"`` and ``"2.0.b"``.

        Parameters
        ----------
        layers : int, str, list of them, or None
            Layer indices (negative ones count from the end) or addresses of held
            layers (``"2.0"``); None freezes all.

        Returns
        -------
        Sequential
            ``self``.

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([4, 8, 8, 3], backend="numpy")
        >>> m.freeze().unfreeze(-1).trainable_keys     # train the head only
        ['4.W', '4.b']
        >>> block = xn.Block([xn.Dense(4), xn.ReLU(), xn.Dense(4)])
        >>> m = xn.Sequential([xn.Dense(4), xn.Residual(block)], in_features=3,
        ...                   backend="numpy")
        >>> m.freeze("1.0").trainable_keys                # the block's first Dense
        ['0.W', '0.b', '1.2.W', '1.2.b']
        """
        return self._set_trainable(layers, False)

    def unfreeze(self, layers: int | str | list[int | str] | None = None) -> Sequential:
        """Make layers trainable again: the inverse of
        [`freeze`][xpnet.model.Sequential.freeze], with the same ``layers`` argument
        (None unfreezes all); returns ``self``. Unfreezing a layer that holds layers
        unfreezes them too.

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([4, 8, 3], backend="numpy").freeze(0)
        >>> m.trainable_keys, m.unfreeze(0).trainable_keys
        (['2.W', '2.b'], ['0.W', '0.b', '2.W', '2.b'])
        """
        return self._set_trainable(layers, True)

    @property
    def trainable_keys(self) -> list[str]:
        """Keys of the parameters that training updates (those of trainable layers).

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy")
        >>> m.layers[0].trainable = False
        >>> m.trainable_keys
        ['2.W', '2.b']
        """
        trained = {key for keys in self._train_plan()[0] for _, key in keys}
        return [k for k in self.params if k in trained]

    def _train_plan(self) -> tuple[list[list[tuple[str, str]]], list[bool], int | None]:
        """Per layer its trained (short, key) pairs, which layers train, the lowest (cached)."""
        per = self._layer_keys()
        flags = tuple(map(_TRAINABLE, self.layers))
        cache = self._step_cache
        plan = cache.get("train")
        if plan is not None and plan[0] is per and plan[1] == flags and not plan[2]:
            return plan[3]
        out = [[(short, key) for short, key in keys if not short.startswith(frozen)]
               for keys, frozen in zip(per, map(_frozen_prefixes, self.layers), strict=True)]
        trains = [bool(keys) for keys in out]
        result = (out, trains, next((i for i, t in enumerate(trains) if t), None))
        cache["train"] = (per, flags, any(map(sublayers, self.layers)), result)
        return result

    def _layer_params(self, per: list[list[tuple[str, str]]]) -> list[dict[str, Any]]:
        """Per layer, its parameters by short name; with a store, kept per live buffer."""
        store = self.store
        cache = self._step_cache
        if store is not None:
            for data, keys, out in cache.get("layer params", ()):
                if data is store.data and keys is per:
                    return out
        params = self._params
        out = [{short: params[key] for short, key in keys} for keys in per]
        if store is not None:  # the live buffer and the spare one alternate
            cache["layer params"] = [*cache.get("layer params", ())[-1:], (store.data, per, out)]
        return out

    def _layer_keys(self) -> list[list[tuple[str, str]]]:
        """`layer_params`' (short name, key) pairs of every layer; rebuilt when keys change."""
        keys = (len(self.layers), *self._params)
        cached = getattr(self, "_layer_keys_cache", None)
        if cached is None or cached[0] != keys:
            cached = self._layer_keys_cache = (keys, _per_layer(self._params, len(self.layers)))
        return cached[1]

    # -- math ------------------------------------------------------------------
    def _forward(self, X: Any, *, train: bool, rng: RNG | None = None,
                 outputs: list | None = None, new_buffers: dict | None = None,
                 tape: bool = False):
        """The outputs and the caches; a dict ``new_buffers`` (training) receives the
        buffers' new values (`Layer.update_buffers`), which are not assigned here;
        ``tape``: a backward pass follows (layers without one are recorded for autodiff)."""
        caches = []
        h = X
        bkeys = self._buffer_keys
        layer_params = self._layer_params(self._layer_keys())
        for i, layer in enumerate(self.layers):
            p = layer_params[i]
            kw: dict[str, Any] = {}
            if bkeys[i]:  # buffers= is the keyword of layers with buffers (init_buffers)
                kw["buffers"] = {short: self._buffers[key] for short, key in bkeys[i]}
            if train and layer.stochastic:
                # rng= is the optional keyword of stochastic layers (Layer.stochastic)
                kw["rng"] = rng if rng is not None else self.rng
            try:
                if tape and self._autodiff[i]:
                    h, c = _autodiff.forward(layer, p, h, train, kw)
                else:
                    h, c = layer.forward(p, h, train=train, **kw)
            except Exception as exc:
                err = self._width_error(X, i)
                if err is not None:
                    raise err from exc
                raise
            if train and bkeys[i] and new_buffers is not None:
                self._collect_buffers(i, layer, kw["buffers"],
                                      c.cache if isinstance(c, _autodiff.Tape) else c,
                                      new_buffers)
            caches.append(c)
            if outputs is not None:
                outputs.append(h)
        if len(getattr(h, "shape", ())) == 2 and h.shape[1] != self.out_features:
            err = self._width_error(X, len(self.layers))
            if err is not None:
                raise err
        return h, caches

    def _collect_buffers(self, i: int, layer: Layer, old: dict, cache: Any,
                         new_buffers: dict) -> None:
        """Layer ``i``'s new buffer values into ``new_buffers``, checked against the old."""
        new = layer.update_buffers(old, cache)
        what = f"layer {i} ({type(layer).__name__})"
        if not isinstance(new, dict) or set(new) != set(old):
            got = sorted(new) if isinstance(new, dict) else type(new).__name__
            raise ValueError(f"{what}: update_buffers returned {got}, but the layer's "
                             f"buffers are {sorted(old)}; return one new value per buffer")
        for short, v in new.items():
            if tuple(getattr(v, "shape", ())) != tuple(old[short].shape):
                raise ValueError(f"{what}: update_buffers returned shape "
                                 f"{tuple(getattr(v, 'shape', ()))} for {short!r}, the "
                                 f"buffer has shape {tuple(old[short].shape)}")
            new_buffers[f"{i}.{short}"] = v

    def _width_error(self, X: Any, upto: int) -> ValueError | None:
        """The error naming the first of layers ``0..upto-1`` whose output width is not
        what its ``out_features`` says (run again in eval mode), or None."""
        params, h, n = self._layer_params(self._layer_keys()), X, self.in_features
        try:
            for j in range(upto):
                layer, declared = self.layers[j], self.layers[j].out_features(n)
                kw = {"buffers": self.layer_buffers(j)} if self._buffer_keys[j] else {}
                h, _ = layer.forward(params[j], h, train=False, **kw)
                got = h.shape[-1] if len(h.shape) == 2 else None
                if got != declared:
                    return ValueError(
                        f"layer {j} ({type(layer).__name__}) returned {got} features, but "
                        f"its out_features({n}) says {declared}: a layer whose output width "
                        "differs from its input's must override out_features(in_features) "
                        "(the layers after it are built for that width)")
                n = declared
        except Exception:  # noqa: BLE001 - no diagnosis: the original error stands
            return None
        return None

    def _backward(self, caches: list, dout: Any, check: bool = False,
                  input_grad: list | None = None) -> dict[str, Any]:
        """Trained parameters' gradients, from the lowest trained layer up (``check``: their
        keys and shapes; a list ``input_grad``: every layer, and it gets the X gradient)."""
        layers, per = self.layers, self._layer_keys()
        trained, trains, first = self._train_plan()
        layer_params = self._layer_params(per)
        # the lowest layer back-propagated (every layer for input_grad; none when none trains)
        lowest = 0 if input_grad is not None else len(layers) if first is None else first
        layer_grads = []
        dy = dout
        for i in range(len(layers) - 1, lowest - 1, -1):
            p = layer_params[i]
            kw = {}
            if self._skip_kw[i]:  # the layer's backward takes the optional need_input_grad=
                kw["need_input_grad"] = i > lowest or input_grad is not None
            if not trains[i] and self._param_kw[i]:  # ... and need_param_grads=
                kw["need_param_grads"] = False
            if self._autodiff[i]:
                dy_in, g = _autodiff.backward(self._autodiff_name(i), layers[i], caches[i],
                                              dy)
                if len(trained[i]) != len(per[i]):  # a frozen layer in an autodiff block
                    g = {k: v for k, v in g.items() if k in {s for s, _ in trained[i]}}
            else:
                dy_in, g = layers[i].backward(p, caches[i], dy, **kw)
            if check and trains[i]:
                self._check_grads(i, {short: p[short] for short, _ in trained[i]}, g)
            if trains[i]:
                layer_grads.append((trained[i], g))
            dy = dy_in
        if input_grad is not None:
            input_grad.append(dy)
        grads: dict[str, Any] = {}  # in the parameters' order
        for keys, g in reversed(layer_grads):
            for short, key in keys:
                if short in g:
                    grads[key] = g[short]
        return grads

    def _check_grads(self, i: int, params: dict[str, Any], grads: Any) -> None:
        """`_check_layer_grads` for layer ``i``; a held layer's own first, under its
        address and short names (``layer 2.1 (Scale)``, ``'b'``)."""
        if isinstance(grads, dict):
            for address, held in _walk(self.layers[i], str(i)):
                if address == str(i) or sublayers(held):
                    continue
                pre = address[len(str(i)) + 1:] + "."
                _check_layer_grads(
                    f"layer {address} ({type(held).__name__})",
                    {k[len(pre):]: v for k, v in params.items() if k.startswith(pre)},
                    {k[len(pre):]: v for k, v in grads.items() if k.startswith(pre)})
        _check_layer_grads(f"layer {i} ({type(self.layers[i]).__name__})", params, grads)

    def _autodiff_name(self, i: int) -> str:
        """``layer 2.1 (Swish)``: the first layer at ``i`` (or held there) without backward."""
        for address, layer in _walk(self.layers[i], str(i), root=True):
            if type(layer).backward is Layer.backward:
                return f"layer {address} ({type(layer).__name__})"
        return f"layer {i} ({type(self.layers[i]).__name__})"  # pragma: no cover

    @_on_device
    def forward(self, X: Any, *, train: bool = False,
                return_intermediates: bool = False) -> Any:
        """Raw outputs (logits for classifiers) for ``X`` on the model's device.

        Parameters
        ----------
        X : array of shape (n, in_features)
        train : bool
            Training mode (dropout active).
        return_intermediates : bool
            Return every layer's output instead: a list with one array per
            layer (``outs[i]`` is layer ``i``'s output, ``outs[-1]`` the
            model's), on the model's device.

        Returns
        -------
        array of shape (n, out_features), or list of arrays

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy")
        >>> m.forward(np.ones((5, 3), "float32")).shape
        (5, 2)
        >>> outs = m.forward(np.ones((5, 3), "float32"), return_intermediates=True)
        >>> [type(layer).__name__ for layer in m.layers], [o.shape for o in outs]
        (['Dense', 'ReLU', 'Dense'], [(5, 4), (5, 4), (5, 2)])
        """
        _refuse_traced(X, "forward")
        X = _checks.check_X(X, self.backend, self.dtype_name, self.in_features)
        outputs: list | None = [] if return_intermediates else None
        out = self._forward(X, train=train, outputs=outputs)[0]
        return out if outputs is None else outputs

    def _loss_grads_out(self, X, y, loss: Loss, *, train: bool, rng: RNG | None = None,
                        weight: Any = None, check_grads: bool = False,
                        input_grad: list | None = None, new_buffers: dict | None = None):
        out, caches = self._forward(X, train=train, rng=rng, new_buffers=new_buffers,
                                    tape=True)
        value, dout = loss.value_and_grad(out, y) if weight is None else \
            loss.weighted_value_and_grad(out, y, weight)
        grads = self._backward(caches, dout, check=check_grads, input_grad=input_grad)
        return value, grads, out

    @_on_device
    def loss_and_grads(self, X: Any, y: Any, loss: str | Loss | None = None, *,
                       train: bool = True, check_values: bool = True, rng: RNG | None = None,
                       return_output: bool = False, sample_weight: Any = None,
                       check_grads: bool = True, input_grad: bool = False,
                       return_buffers: bool = False) -> tuple[Any, ...]:
        """Mean loss on ``(X, y)`` and its gradient w.r.t. every trainable parameter.

        The building block for custom training loops ([`xpnet.fit`][]'s step runs the
        same forward, loss and backward on checked data). The loss stays a 0-d array on the
        device (call ``float()`` on it when you want the number).

        Parameters
        ----------
        X : array of shape (n, in_features)
        y : array
            Targets as the loss takes them (see
            [`xpnet.Loss.check_target`][xpnet.losses.Loss.check_target]): integer labels
            for classification losses, float targets otherwise.
        loss : str or Loss, optional
            Defaults to the model's loss.
        train : bool
            Training mode (dropout active). Use ``False`` for gradient checks.
        check_values : bool
            Scan the values (NaN/inf, label range) of arrays already on the
            model's backend. On a GPU each scan reads a value back from the
            device (a sync); in a loop over data you already checked once,
            pass ``False``. Shapes and dtypes are always checked, and NumPy
            inputs bound for another backend are always scanned on the host.
        rng : RNG, optional
            The generator stochastic layers (dropout) draw from; default the
            model's own.
        return_output : bool
            Also return the raw outputs of the forward pass (e.g. to count
            correct predictions with [`xpnet.Loss.count_correct`][xpnet.losses.Loss.count_correct]).
        sample_weight : array of shape (n,), optional
            Non-negative weights, not all zero: the loss is then the weighted
            mean ``sum(w_i * l_i) / sum(w_i)`` (see
            [`xpnet.Loss.weighted_value_and_grad`][xpnet.losses.Loss.weighted_value_and_grad];
            the loss must define ``per_sample``). Checked like ``X``.
        check_grads : bool
            Compare the keys and shapes of the gradients each layer's ``backward``
            returns with its parameters' (a ``ValueError`` names the layer, the key and
            both shapes). No value is read from the device; [`xpnet.fit`][] checks on
            the first step of each fit and not afterwards.
        input_grad : bool
            Also return the gradient of the loss w.r.t. ``X`` (saliency maps,
            adversarial examples): every layer is back-propagated, frozen ones
            included, and frozen layers still get no parameter gradient.
        return_buffers : bool
            Return the new values of the layers' [`buffers`][xpnet.model.Sequential.buffers]
            (a dict, last; empty unless ``train``) instead of assigning them. By default
            a training call assigns them at once, as a PyTorch forward pass in training
            mode does; a loop that may skip a step (a non-finite loss) asks for them and
            assigns them (``model.buffers.update(new)``) only when it applies the update,
            as ``fit`` does.

        Returns
        -------
        loss : 0-d array
        grads : dict
            The keys of [`trainable_keys`][xpnet.model.Sequential.trainable_keys] (all
            of `params` unless layers are frozen); frozen layers get no gradient, and
            layers below the lowest trainable one are not back-propagated.
        output : array of shape (n, out_features)
            Only with ``return_output=True``.
        input_grad : array of shape (n, in_features)
            Only with ``input_grad=True`` (last): d loss / d X, in the model's dtype,
            on its device (also for NumPy ``X`` given to a GPU model).
        buffers : dict
            Only with ``return_buffers=True`` (last): the buffers' new values.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy", seed=0)
        >>> loss, grads = m.loss_and_grads(np.ones((5, 3), "float32"), np.array([0, 1, 0, 1, 0]))
        >>> sorted(grads) == sorted(m.params)
        True
        >>> _, _, out = m.loss_and_grads(np.ones((5, 3), "float32"), np.zeros(5, "int64"),
        ...                              return_output=True)
        >>> out.shape
        (5, 2)
        >>> _, _, dX = m.loss_and_grads(np.ones((5, 3), "float32"), np.zeros(5, "int64"),
        ...                             input_grad=True)
        >>> dX.shape
        (5, 3)
        """
        _refuse_traced(X, "loss_and_grads")
        loss_obj = self.loss if loss is None else get_loss(loss)
        Xd = _checks.check_X(X, self.backend, self.dtype_name, self.in_features,
                             values=check_values)
        yd = _checks.check_y(y, self.backend, self.dtype_name, Xd.shape[0], loss_obj,
                             self.out_features, values=check_values)
        wd = None if sample_weight is None else _checks.check_sample_weight(
            sample_weight, self.backend, self.dtype_name, Xd.shape[0], loss_obj,
            values=check_values)
        sink: list | None = [] if input_grad else None
        new_buffers: dict[str, Any] = {}
        value, grads, out = self._loss_grads_out(Xd, yd, loss_obj, train=train, rng=rng,
                                                 weight=wd, check_grads=check_grads,
                                                 input_grad=sink, new_buffers=new_buffers)
        result = ((value, grads, out) if return_output else (value, grads)) + tuple(sink or ())
        if return_buffers:
            return result + (new_buffers,)
        if new_buffers:
            dict.update(self._buffers, new_buffers)  # checked by _collect_buffers
        return result

    # -- inference -----------------------------------------------------------
    def _batched_outputs(self, X: Any, batch_size: int | None) -> Any:
        n = X.shape[0]
        bs, mapped = (n if batch_size is None else batch_size), isinstance(X, _checks.HostRows)
        if bs >= n and not mapped:
            out = self._forward(X, train=False)[0]
        else:  # in batches; a memory-mapped X is read and converted per batch
            take = X.batch_rows if mapped else lambda lo, hi: X[lo:hi, ...]
            parts = [self._forward(take(i, min(i + bs, n)), train=False)[0]
                     for i in range(0, n, bs)]
            out = parts[0] if len(parts) == 1 else self.xp.concat(parts, axis=0)
        self._check_outputs(out)
        return out

    def _checked_outputs(self, X: Any, batch_size: int | None) -> Any:
        """The outputs for ``X``, after checking ``batch_size`` and ``X`` (for the predicts)."""
        _checks.check_int("batch_size", batch_size, allow_none=True)
        _refuse_traced(X, "predict")
        _checks.check_columns(self, X)
        X = _checks.check_X(X, self.backend, self.dtype_name, self.in_features, stream=True)
        return self._batched_outputs(X, batch_size)

    def _check_outputs(self, out: Any) -> None:
        """Refuse non-finite outputs, naming the cause (the weights or the inputs' range)."""
        xp = self.xp
        if bool(xp.all(xp.isfinite(out))):  # one read from the device per call
            return
        bad = ~xp.all(xp.isfinite(out), axis=1)
        bad_rows = int(xp.sum(xp.astype(bad, self.backend.index_dtype)))
        bad_params = sorted(k for k, v in self.params.items() if not bool(xp.all(xp.isfinite(v))))
        bad_buffers = sorted(k for k, v in self.buffers.items()
                             if not bool(xp.all(xp.isfinite(v))))
        cause = (f"the parameters {bad_params} hold NaN or inf; reload a good checkpoint"
                 if bad_params else
                 f"the buffers {bad_buffers} (running statistics) hold NaN or inf; reload a "
                 "good checkpoint" if bad_buffers else
                 f"the inputs are too large for {self.dtype_name} arithmetic (an overflow in "
                 "the forward pass); scale the inputs or use dtype='float64'")
        raise FloatingPointError(f"the model's outputs are not finite for {bad_rows} of "
                                 f"{out.shape[0]} rows: {cause}")

    @_on_device
    def predict_proba(self, X: Any, *, batch_size: int | None = 8192) -> Any:
        """Class probabilities (softmax or sigmoid of the outputs).

        ``X`` and ``batch_size`` are as for [`predict`][xpnet.model.Sequential.predict].

        Returns
        -------
        array of shape (n, out_features), on the model's device

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy")
        >>> p = m.predict_proba(np.ones((5, 3), "float32"))
        >>> p.shape, bool(np.allclose(p.sum(axis=1), 1.0))
        ((5, 2), True)
        """
        return self.loss.output_transform(self._checked_outputs(X, batch_size))

    @_on_device
    def predict(self, X: Any, *, batch_size: int | None = 8192) -> Any:
        """Predicted class labels (int64) for classifiers, outputs for regressors.

        Parameters
        ----------
        X : array of shape (n, in_features)
        batch_size : int or None
            Rows per forward pass (bounds memory); None for one pass.

        Returns
        -------
        array on the model's device
            Shape ``(n,)`` for cross-entropy models, ``(n, out_features)``
            (0/1 labels or regression outputs) otherwise.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy")
        >>> labels = m.predict(np.ones((5, 3), "float32"))
        >>> labels.shape, str(labels.dtype)
        ((5,), 'int64')
        """
        return self.loss.predict_labels(self._checked_outputs(X, batch_size))

    @_on_device
    def evaluate(self, X: Any, y: Any, *, batch_size: int | None = 8192,
                 sample_weight: Any = None) -> dict[str, float]:
        """Mean loss (and accuracy for classifiers) on ``(X, y)`` as Python floats.

        ``X`` and ``batch_size`` are as for [`predict`][xpnet.model.Sequential.predict].

        Parameters
        ----------
        y : array
            Integer labels for cross-entropy, targets otherwise.
        sample_weight : array of shape (n,), optional
            Weights of the loss: ``loss`` is then ``sum(w_i * l_i) / sum(w_i)``.
            As in Keras' ``evaluate``, ``accuracy`` stays the plain fraction of
            correct rows (``xn.metrics.accuracy`` takes weights too).

        Returns
        -------
        dict
            ``{"loss": float, "accuracy": float}`` (no accuracy for ``mse``).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 2], backend="numpy")
        >>> sorted(m.evaluate(np.ones((4, 3), "float32"), np.array([0, 1, 0, 1])))
        ['accuracy', 'loss']
        """
        _checks.check_int("batch_size", batch_size, allow_none=True)
        _checks.check_columns(self, X)
        Xd = _checks.check_X(X, self.backend, self.dtype_name, self.in_features,
                             stream=True)
        yd = _checks.check_y(y, self.backend, self.dtype_name, Xd.shape[0], self.loss,
                             self.out_features)
        wd = None if sample_weight is None else _checks.check_sample_weight(
            sample_weight, self.backend, self.dtype_name, Xd.shape[0], self.loss)
        out = self._batched_outputs(Xd, batch_size)
        value = self.loss(out, yd) if wd is None else \
            self.loss.weighted_value_and_grad(out, yd, wd, need_grad=False)[0]
        result = {"loss": float(value)}
        correct = self.loss.count_correct(out, yd)
        if correct is not None:
            result["accuracy"] = float(correct) / Xd.shape[0]
        return result

    # -- training ------------------------------------------------------------
    def fit(self, X: Any, y: Any, **kwargs: Any) -> History:
        """Train the model; see [`xpnet.fit`][] for every argument.

        Returns
        -------
        History

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
        >>> y = (X[:, 0] > 0).astype("int64")
        >>> m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
        >>> h = m.fit(X, y, epochs=20, optimizer=xn.Adam(lr=0.05), verbose=0)
        >>> h.history["loss"][-1] < h.history["loss"][0]
        True
        """
        return fit(self, X, y, **kwargs)

    # -- devices ---------------------------------------------------------------
    def to(self, backend: str | Backend, device: Any = None) -> Sequential:
        """Move the parameters to another backend/device (same values); returns self.

        Parameters
        ----------
        backend : str or Backend
        device : optional

        Returns
        -------
        Sequential
            ``self``, now on the new backend. The state of ``optimizer`` (its
            moments) moves along, so the next ``fit`` continues it.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 2], backend="numpy")
        >>> h = m.fit(np.zeros((8, 3), "float32"), np.zeros(8, "int64"), epochs=1, verbose=0)
        >>> m.to("array_api_strict").backend.name
        'array_api_strict'
        >>> xn.backends.backend_of(m.optimizer.state["exp_avg"]["0.W"]).name
        'array_api_strict'
        >>> m.to("numpy").backend.name
        'numpy'
        """
        new = get_backend(backend, device)
        dtype = new.dtype(self.dtype_name)

        def move(v: Any) -> Any:
            return new.asarray(to_numpy(v), dtype=dtype)

        with new.device_scope():
            params = {k: move(v) for k, v in self.params.items()}
            buffers = {k: move(v) for k, v in self.buffers.items()}
            opt = self.optimizer
            if opt is not None and opt.state is not None:
                opt.state = {slot: values if slot in ("step", "steps") else
                             {k: move(v) for k, v in values.items()}
                             for slot, values in opt.state.items()}
            self.backend = new  # once everything moved
            self._set_new_params(params)
            self._set_new_buffers(buffers)
        return self

    @_on_device
    def set_params(self, params: dict[str, Any]) -> None:
        """Replace the parameters (same keys and shapes), moving NumPy arrays to the device.

        Every value is checked (an array, a real float dtype, the right shape,
        finite) before anything is replaced.

        Parameters
        ----------
        params : dict of str to array
            The same keys as `params`; arrays of the model's backend or
            NumPy arrays.

        Raises
        ------
        TypeError, ValueError
            For a non-array, a wrong dtype, key or shape, or NaN/inf values.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> m = xn.MLP([3, 2], backend="numpy")
        >>> m.set_params({"0.W": np.zeros((3, 2)), "0.b": np.ones(2)})
        >>> m.params["0.b"].tolist(), str(m.params["0.W"].dtype)
        ([1.0, 1.0], 'float32')
        """
        _check_names("params", "parameter", params, self.params)
        new = {}
        for k, v in params.items():
            if not _checks._is_array(v):
                raise TypeError(f"parameter {k!r} must be an array, got {type(v).__name__}")
            dname = _checks.dtype_name(v.dtype)
            if dname not in ("float16", "float32", "float64", "bfloat16"):
                raise TypeError(f"parameter {k!r} has dtype {dname}; expected float32 or float64")
            if tuple(v.shape) != tuple(self.params[k].shape):
                raise ValueError(
                    f"parameter {k!r} has shape {tuple(v.shape)}, expected "
                    f"{tuple(self.params[k].shape)}"
                )
            new[k] = _checks.to_backend(f"params[{k!r}]", v, self.backend, self.dtype_name)
            if not bool(self.xp.all(self.xp.isfinite(new[k]))):
                raise ValueError(f"parameter {k!r} contains NaN or infinite values")
        self.params = {k: new[k] for k in self.params}

    # -- config --------------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON (used by checkpoints).

        Returns
        -------
        dict
            ``class``, ``in_features``, ``loss`` (a name, or ``{"name": ...,
            "config": ...}`` for a loss with arguments), ``dtype``, ``seed`` and
            ``layers`` (each ``{"class": ..., "config": ..., "trainable": ...}``).

        Examples
        --------
        >>> import xpnet as xn
        >>> cfg = xn.MLP([3, 4, 2], backend="numpy").get_config()
        >>> [layer["class"] for layer in cfg["layers"]], cfg["loss"]
        (['Dense', 'ReLU', 'Dense'], 'cross_entropy')
        """
        return {
            "class": "Sequential",
            "in_features": self.in_features,
            "loss": loss_config(self.loss),
            "dtype": self.dtype_name,
            "seed": self.seed,
            "layers": [{"class": type(layer).__name__, "config": layer.get_config(),
                        "trainable": bool(layer.trainable)} for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict, *, backend: str | Backend = "auto",
                    device: Any = None) -> Sequential:
        """Build a model from [`get_config`][xpnet.model.Sequential.get_config] output
        (parameters freshly initialised).

        Parameters
        ----------
        config : dict
            The output of [`get_config`][xpnet.model.Sequential.get_config].
        backend : str or Backend
            Where to build the model (see [`Sequential`][xpnet.model.Sequential]).
        device : optional
            Device on the backend.

        Returns
        -------
        Sequential

        Examples
        --------
        >>> import xpnet as xn
        >>> m = xn.MLP([3, 4, 2], backend="numpy", seed=1)
        >>> twin = xn.Sequential.from_config(m.get_config(), backend="numpy")
        >>> all(bool((twin.params[k] == v).all()) for k, v in m.params.items())  # same seed
        True
        """
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("model config must be a dict with a 'layers' list")
        layers = [layer_from_config(c) for c in config["layers"]]
        return Sequential(layers, in_features=config["in_features"],
                          loss=loss_from_config(config["loss"]),
                          backend=backend, device=device, dtype=config["dtype"],
                          seed=config.get("seed", 0))

    def summary(self) -> str:
        """A short table of layers, output sizes and parameter counts.

        Examples
        --------
        >>> import xpnet as xn
        >>> print(xn.MLP([4, 8, 3], backend="numpy").summary())
        layer                            out      params
         0 Dense(units=8, init='he_normal', bias=True)       8          40
         1 ReLU()                          8           0
         2 Dense(units=3, init='he_normal', bias=True)       3          27
        total params: 67  backend: numpy (cpu)  dtype: float32
        """
        ins = _widths(self.layers, self.in_features)  # a block's layers below it, indented
        rows = [row for i, layer in enumerate(self.layers)
                for row in _summary_rows(layer, str(i), ins[i])]
        labels = ["  " * depth + label for _, label, _, depth in rows]
        at = max(2, *(len(address) for address, *_ in rows))
        width = max([5] + [len(label) for label in labels]) + 2
        lines = [f"{'   layer':<{width + at + 1}}{'out':>8}{'params':>12}"]
        for (address, _, out, _), label in zip(rows, labels, strict=True):
            count = sum(math.prod(v.shape) for k, v in self.params.items()
                        if k.startswith(f"{address}."))
            lines.append(f"{address:>{at}} {label:<{width}}{out:>8}{count:>12,}")
        lines.append(f"total params: {self.num_params:,}  backend: {self.backend.name} "
                     f"({self.backend.device_name})  dtype: {self.dtype_name}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(in_features={self.in_features}, layers={self.layers}, "
                f"loss={self.loss.name!r}, backend={self.backend.name!r}, "
                f"dtype={self.dtype_name!r})")


def MLP(sizes: list[int], *, activation: str = "relu", dropout: float = 0.0,
        loss: str | Loss = "cross_entropy", init: str | None = None,
        backend: str | Backend = "auto", device: Any = None, dtype: str = "float32",
        seed: int | None = 0) -> Sequential:
    """A multilayer perceptron: Dense -> activation (-> Dropout) ... -> Dense.

    Built as a [`Sequential`][xpnet.model.Sequential], to which ``backend``,
    ``device``, ``dtype`` and ``seed`` are passed on as they are (``seed=None``
    draws a fresh seed and records it in ``model.seed``).

    Parameters
    ----------
    sizes : list of int
        ``[in_features, hidden..., out_features]``, e.g. ``[784, 256, 10]``.
    activation : str
        ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"``, or
        ``"identity"`` (no activation layer: a linear model).
    dropout : float
        Dropout rate after each hidden activation, in ``[0, 1)``.
    loss : str or Loss
    init : str, optional
        Weight initializer; defaults to He normal for ReLU-family activations
        and Glorot uniform for tanh/sigmoid/identity.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> import xpnet as xn
    >>> m = xn.MLP([784, 256, 10], backend="numpy", seed=0)
    >>> m.num_params
    203530
    """
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise ValueError(f"sizes must list at least input and output sizes, got {sizes!r}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
            raise ValueError(f"sizes[{i}] must be a positive int, got {s!r}")
    if activation not in ACTIVATIONS and activation != "identity":
        raise ValueError(
            f"unknown activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}, identity"
        )
    dropout = _checks.check_float("dropout", dropout, low=0.0, high=1.0)
    if init is None:
        init = "glorot_uniform" if activation in ("tanh", "sigmoid", "identity") else "he_normal"
    layers: list[Layer] = []
    for h in sizes[1:-1]:
        layers.append(Dense(h, init=init))
        if activation != "identity":
            layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout))
    layers.append(Dense(sizes[-1], init=init))
    return Sequential(layers, in_features=sizes[0], loss=loss, backend=backend, device=device,
                      dtype=dtype, seed=seed)
