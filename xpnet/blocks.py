"""Layers that hold layers: [`Block`][xpnet.blocks.Block] (a stack used as one layer) and
[`Residual`][xpnet.blocks.Residual] (``y = x + block(x)``).

Parameter keys nest. A model names its parameters ``"<layer index>.<name>"``; a layer
that holds layers names the parameters of each held layer ``"<its index>.<name>"`` in
turn, so in ``Sequential([Dense(8), ReLU(), Residual(Block([Dense(8), ReLU(),
Dense(8)]))])`` the block's first ``Dense`` holds ``"2.0.W"`` and ``"2.0.b"`` and its
last ``"2.2.W"`` and ``"2.2.b"``. A ``Residual`` adds no level of its own: its keys are
those of the layer it wraps (``Residual(Dense(8))`` at index 2 holds ``"2.W"``). Plain
layers keep their flat keys (``"0.W"``).

Everything that takes keys takes nested ones: optimizer decay masks (``"2.0.W"``),
parameter groups (the prefix ``"2."`` names every parameter of the block, ``"2.0."``
those of its first layer) and [`freeze`][xpnet.model.Sequential.freeze] (``"2.0"``
freezes the block's first layer). Buffers nest the same way (a ``BatchNorm`` first in
that block keeps ``"2.0.running_mean"`` in ``model.buffers``). A held layer's
``trainable`` and the held layers themselves are saved in its config (``{"class",
"config", "trainable"}``, rebuilt only through the layer registry) and exported to ONNX
through their own ``forward``.

A layer of your own that holds layers does the same through one method,
``sublayers()``, returning ``(key prefix, layer)`` pairs (see
[`sublayers`][xpnet.blocks.sublayers]).
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

from .backends import Backend
from .layers import _REGISTRY, Layer, layer_from_config
from .random import RNG

__all__ = ["Block", "Residual", "sublayers", "layer_config", "key_trainable"]

Params = dict[str, Any]


def layer_config(layer: Layer) -> dict:
    """A layer as a model config lists it: ``{"class", "config", "trainable"}``.

    [`xpnet.layers.layer_from_config`][] rebuilds it.

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    dict

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.blocks.layer_config(xn.Dense(3))
    {'class': 'Dense', 'config': {'units': 3, 'init': 'he_normal', 'bias': True}, 'trainable': True}
    """
    return {"class": type(layer).__name__, "config": layer.get_config(),
            "trainable": bool(layer.trainable)}


def sublayers(layer: Layer) -> list[tuple[str, Layer]]:
    """The layers ``layer`` holds, each with the prefix of its parameter keys.

    A layer holds layers when it has a ``sublayers()`` method; the prefix of a held
    layer's keys within the holder's is ``"<index>."`` in a [`Block`][xpnet.blocks.Block]
    and ``""`` in a [`Residual`][xpnet.blocks.Residual] (its keys are its block's).

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    list of (str, Layer)
        Empty for a layer that holds none.

    Examples
    --------
    >>> import xpnet as xn
    >>> block = xn.Block([xn.Dense(4), xn.ReLU()])
    >>> [(prefix, type(sub).__name__) for prefix, sub in xn.blocks.sublayers(block)]
    [('0.', 'Dense'), ('1.', 'ReLU')]
    >>> xn.blocks.sublayers(xn.Dense(4))
    []
    """
    method = getattr(layer, "sublayers", None)
    return list(method()) if callable(method) else []


def key_trainable(layer: Layer, name: str) -> bool:
    """Whether parameter ``name`` of ``layer`` is trained (all layers on its way trainable).

    The layer and every held layer on the way to the parameter must be ``trainable``.

    Parameters
    ----------
    layer : Layer
    name : str
        The parameter's key within the layer (``"0.W"`` in a block).

    Returns
    -------
    bool

    Examples
    --------
    >>> import xpnet as xn
    >>> block = xn.Block([xn.Dense(4), xn.Dense(2)])
    >>> block.layers[0].trainable = False
    >>> xn.blocks.key_trainable(block, "0.W"), xn.blocks.key_trainable(block, "1.W")
    (False, True)
    """
    return not name.startswith(_frozen_prefixes(layer))


def _widths(layers: list[Layer], n: int) -> list[int]:
    """Each layer's input width along a stack of layers, then the stack's output width."""
    return list(itertools.accumulate(layers, lambda w, layer: layer.out_features(w), initial=n))


def _frozen_prefixes(layer: Layer, prefix: str = "") -> tuple[str, ...]:
    """The key prefixes of the frozen layers at or below ``layer`` (``""``: all its keys)."""
    if not layer.trainable:
        return (prefix,)
    return tuple(f for p, sub in sublayers(layer) for f in _frozen_prefixes(sub, prefix + p))


def _walk(layer: Layer, path: str, root: bool = False) -> Iterator[tuple[str, Layer]]:
    """``(address, layer)``: ``layer`` with ``root``, those below (a residual's block: its own)."""
    if root:
        yield path, layer
    for prefix, sub in sublayers(layer):
        sub_path = f"{path}.{prefix[:-1]}" if prefix else path
        yield sub_path, sub
        yield from _walk(sub, sub_path)


def _find(layer: Layer, parts: list[str], address: str) -> Layer:
    """The layer held below ``layer`` at ``parts`` (``["0"]``: a block's first), or KeyError."""
    for part in parts:
        subs = sublayers(layer)
        while len(subs) == 1 and subs[0][0] == "":  # a residual: its block's layers
            layer = subs[0][1]
            subs = sublayers(layer)
        match = [sub for prefix, sub in subs if prefix == f"{part}."]
        if not match:
            raise KeyError(f"layer address {address!r}: {type(layer).__name__} holds no layer "
                           f"{part!r} (it holds {[p[:-1] for p, _ in subs if p] or 'none'})")
        layer = match[0]
    return layer


_MAX_DEPTH = 32  # how deep layer configs may nest (a checkpoint's manifest: refused beyond)


def _summary_rows(layer: Layer, address: str, n: int,
                  depth: int = 0) -> list[tuple[str, str, int, int]]:
    """``(address, label, out width, depth)`` of a layer and the layers it holds."""
    subs = sublayers(layer)
    rows = [(address, _label(layer) if subs else repr(layer), layer.out_features(n), depth)]
    for prefix, sub in subs:
        if prefix:
            rows += _summary_rows(sub, f"{address}.{prefix[:-1]}", n, depth + 1)
            n = sub.out_features(n)
        else:  # a residual's block: its layers are addressed as the residual's
            rows += _summary_rows(sub, address, n, depth)[1:]
    return rows


def _label(layer: Layer) -> str:
    """A holder's name in a summary: ``Residual(Block)``."""
    inner = [_label(sub) for prefix, sub in sublayers(layer) if not prefix]
    return type(layer).__name__ + "".join(f"({name})" for name in inner)


def _held_configs(config: Any, depth: int = 0) -> Iterator[tuple[type, dict]]:
    """``(class, config)`` of a registered layer config and of those held in it, any depth."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"layer configs nest more than {_MAX_DEPTH} levels deep")
    name = config.get("class") if isinstance(config, dict) else None
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        return
    inner = config.get("config", {})
    yield cls, inner
    if not hasattr(cls, "sublayers") or not isinstance(inner, dict):
        return
    for value in inner.values():
        for item in value if isinstance(value, list) else [value]:
            yield from _held_configs(item, depth + 1)


def _own(layer: Any, what: str) -> Layer:
    """A held layer: a copy of a Layer, or a config dict rebuilt through the registry."""
    if isinstance(layer, Layer):
        return copy.deepcopy(layer)
    if isinstance(layer, dict):
        try:
            return layer_from_config(layer)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    raise TypeError(f"{what} is {type(layer).__name__}, not an xpnet Layer (or a layer config "
                    "{'class': ..., 'config': ...})")


@functools.lru_cache(maxsize=512)
def _keywords(backward: Any) -> frozenset[str]:
    """The optional keywords (``need_input_grad``, ``need_param_grads``) a backward takes."""
    try:
        names = inspect.signature(backward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return frozenset()
    return frozenset(n for n in ("need_input_grad", "need_param_grads") if n in names)


def _backward(layer: Layer, params: Params, cache: Any, dy: Any, need_input_grad: bool,
              need_param_grads: bool) -> tuple[Any, Params]:
    """``layer.backward``, passing the optional keywords it takes."""
    takes = _keywords(type(layer).backward)
    kw = {}
    if "need_input_grad" in takes:
        kw["need_input_grad"] = need_input_grad
    if "need_param_grads" in takes and not need_param_grads:
        kw["need_param_grads"] = False
    return layer.backward(params, cache, dy, **kw)


def _forward(layer: Layer, params: Params, x: Any, train: bool, rng: RNG | None,
             buffers: Params | None) -> Any:
    """``layer.forward``, with the generator for a stochastic layer in training and the
    buffers of a layer that has them."""
    kw: dict[str, Any] = {"buffers": buffers} if buffers else {}
    if train and layer.stochastic:
        kw["rng"] = rng
    return layer.forward(params, x, train=train, **kw)


class Block(Layer):
    """Layers applied in turn, used as one layer.

    The parameters of layer ``j`` of the block are keyed ``"<j>.<name>"`` among the
    block's, so at index 2 of a model they are ``"2.<j>.<name>"`` (see
    [`xpnet.blocks`][]). The block is stochastic when one of its layers is (a
    ``Dropout`` inside it gets the model's generator in training), and trains the
    layers whose ``trainable`` is True (address one with
    ``model.freeze("<index>.<j>")``).

    Parameters
    ----------
    layers : list of Layer
        Copied (``copy.deepcopy``, each on its own): the block's layers are
        `layers`. A config dict ``{"class": ..., "config": ..., "trainable": ...}``
        stands for a layer and is rebuilt through the layer registry
        ([`xpnet.layers.layer_from_config`][]), as a checkpoint does.

    Examples
    --------
    >>> import xpnet as xn
    >>> block = xn.Block([xn.Dense(8), xn.ReLU(), xn.Dense(8)])
    >>> m = xn.Sequential([xn.Dense(8), xn.ReLU(), xn.Residual(block), xn.Dense(3)],
    ...                   in_features=4, backend="numpy")
    >>> sorted(m.params)
    ['0.W', '0.b', '2.0.W', '2.0.b', '2.2.W', '2.2.b', '3.W', '3.b']
    >>> block.out_features(5), block.param_shapes(5)["2.W"]
    (8, (8, 8))
    """

    def __init__(self, layers: list[Layer]):
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError(f"Block needs a non-empty list of layers, got {layers!r}")
        self.layers = [_own(layer, f"Block layers[{j}]") for j, layer in enumerate(layers)]

    def sublayers(self) -> list[tuple[str, Layer]]:
        """``("<j>.", layer j)`` for each of the block's layers.

        Examples
        --------
        >>> import xpnet as xn
        >>> [p for p, _ in xn.Block([xn.Dense(2), xn.ReLU()]).sublayers()]
        ['0.', '1.']
        """
        return [(f"{j}.", layer) for j, layer in enumerate(self.layers)]

    @property  # type: ignore[override]
    def stochastic(self) -> bool:  # type: ignore[override]
        """True when one of the block's layers is stochastic (needs ``rng=`` in training)."""
        return any(layer.stochastic for layer in self.layers)

    def _split(self, params: Params | None) -> list[Params]:
        """Each layer's parameters (or buffers) under their short names."""
        parts: list[Params] = [{} for _ in self.layers]
        for key, value in (params or {}).items():
            head, _, name = key.partition(".")
            parts[int(head)][name] = value
        return parts

    def _per_layer(self, in_features: int, get: Any) -> dict[str, Any] | None:
        """``get(layer, its in_features)`` of each layer, keyed ``"<j>.<name>"``; None
        when one returns None."""
        out: dict[str, Any] = {}
        widths = _widths(self.layers, in_features)
        for j, layer in enumerate(self.layers):
            part = get(layer, widths[j])
            if part is None:
                return None
            out.update({f"{j}.{k}": v for k, v in part.items()})
        return out

    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """Each layer's parameters in turn, keyed ``"<j>.<name>"``."""
        return self._per_layer(in_features, lambda layer, n: layer.init(
            n, rng, backend=backend, dtype=dtype)) or {}

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """Each layer's shapes, keyed ``"<j>.<name>"``; None when one does not declare
        them."""
        return self._per_layer(in_features, lambda layer, n: _shapes(layer.param_shapes(n)))

    def out_features(self, in_features: int) -> int:
        """The last layer's output width."""
        return _widths(self.layers, in_features)[-1]

    def init_buffers(self, in_features: int, *, backend: Backend, dtype: Any) -> Params:
        """Each layer's buffers (``BatchNorm``'s running statistics), keyed
        ``"<j>.<name>"``."""
        return self._per_layer(in_features, lambda layer, n: layer.init_buffers(
            n, backend=backend, dtype=dtype)) or {}

    def buffer_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """Each layer's buffer shapes, keyed ``"<j>.<name>"``; None when one does not
        declare them."""
        return self._per_layer(in_features, lambda layer, n: _shapes(layer.buffer_shapes(n)))

    def forward(self, params: Params, x: Any, *, train: bool = False,
                rng: RNG | None = None, buffers: Params | None = None) -> tuple[Any, Any]:
        """Each layer's forward in turn (``rng`` to its stochastic layers in training,
        ``buffers`` split among those that have them); the cache is the list of theirs."""
        caches = []
        for layer, p, b in zip(self.layers, self._split(params), self._split(buffers),
                               strict=True):
            x, c = _forward(layer, p, x, train, rng, b)
            caches.append(c)
        return x, caches

    def update_buffers(self, buffers: Params, cache: Any) -> Params:
        """Each layer's new buffers after the training forward whose cache is ``cache``."""
        new: Params = {}
        for j, (layer, b) in enumerate(zip(self.layers, self._split(buffers), strict=True)):
            if b:
                new.update({f"{j}.{k}": v for k, v in layer.update_buffers(b, cache[j]).items()})
        return new

    def backward(self, params: Params, cache: Any, dy: Any, *, need_input_grad: bool = True,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """Each layer's backward in reverse; gradients of the trainable layers only.

        Layers below the lowest trainable one are not run when ``need_input_grad`` is
        False (then ``dx`` is None); ``need_param_grads=False`` (a frozen block) returns
        no gradient.
        """
        parts = self._split(params)
        trains = [need_param_grads and layer.trainable and bool(p)
                  for layer, p in zip(self.layers, parts, strict=True)]
        lowest = 0 if need_input_grad else next((j for j, t in enumerate(trains) if t), None)
        grads: Params = {}
        if lowest is None:
            return None, grads
        for j in range(len(self.layers) - 1, lowest - 1, -1):
            dy, g = _backward(self.layers[j], parts[j], cache[j], dy,
                              need_input_grad or j > lowest, trains[j])
            if trains[j]:
                grads.update({f"{j}.{k}": v for k, v in g.items()})
        return dy, grads

    def get_config(self) -> dict:
        """``{"layers": [{"class", "config", "trainable"}, ...]}``."""
        return {"layers": [layer_config(layer) for layer in self.layers]}

    def __repr__(self) -> str:
        return f"Block([{', '.join(map(repr, self.layers))}])"


class Residual(Layer):
    """A residual connection around a layer: ``y = x + block(x)``.

    The block (often a [`Block`][xpnet.blocks.Block]) must give as many features as it
    takes; a model built with one that does not is refused, naming both widths. The
    residual's parameter keys are its block's (no level of their own): at index 2,
    ``Residual(Block([Dense(8), ...]))`` holds ``"2.0.W"``.

    Parameters
    ----------
    block : Layer
        Copied (``copy.deepcopy``); a config dict stands for a layer as in
        [`Block`][xpnet.blocks.Block].

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> res = xn.Residual(xn.Block([xn.Dense(3), xn.Tanh()]))
    >>> b = xn.get_backend("numpy")
    >>> params = res.init(3, xn.RNG(0), backend=b, dtype=np.float64)
    >>> x = np.ones((2, 3))
    >>> y, _ = res.forward(params, x)
    >>> bool(np.allclose(y - x, res.block.forward(params, x)[0]))
    True
    >>> try:
    ...     res.out_features(5)
    ... except ValueError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    Residual: its block maps 5 features to 3; y = x + block(x) needs ...
    """

    def __init__(self, block: Layer):
        self.block = _own(block, "Residual block")

    def sublayers(self) -> list[tuple[str, Layer]]:
        """``[("", block)]``: the block's keys are the residual's.

        Examples
        --------
        >>> import xpnet as xn
        >>> [(p, type(b).__name__) for p, b in xn.Residual(xn.Dense(2)).sublayers()]
        [('', 'Dense')]
        """
        return [("", self.block)]

    @property  # type: ignore[override]
    def stochastic(self) -> bool:  # type: ignore[override]
        """The block's ``stochastic``."""
        return bool(self.block.stochastic)

    def out_features(self, in_features: int) -> int:
        """``in_features``, after checking that the block keeps that width."""
        out = self.block.out_features(in_features)
        if out != in_features:
            raise ValueError(
                f"Residual: its block maps {in_features} features to {out}; y = x + block(x) "
                f"needs the block's out_features equal to its in_features ({in_features}): "
                f"end the block with Dense({in_features}), or put a Dense({out}) before the "
                "residual")
        return out

    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """The block's parameters (its width checked first)."""
        self.out_features(in_features)
        return self.block.init(in_features, rng, backend=backend, dtype=dtype)

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """The block's shapes (its width checked first)."""
        self.out_features(in_features)
        return self.block.param_shapes(in_features)

    def init_buffers(self, in_features: int, *, backend: Backend, dtype: Any) -> Params:
        """The block's buffers."""
        return self.block.init_buffers(in_features, backend=backend, dtype=dtype)

    def buffer_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """The block's buffer shapes."""
        return self.block.buffer_shapes(in_features)

    def forward(self, params: Params, x: Any, *, train: bool = False,
                rng: RNG | None = None, buffers: Params | None = None) -> tuple[Any, Any]:
        """``x + block(x)``; the cache is the block's."""
        y, cache = _forward(self.block, params, x, train, rng, buffers)
        return x + y, cache

    def update_buffers(self, buffers: Params, cache: Any) -> Params:
        """The block's new buffers."""
        return self.block.update_buffers(buffers, cache)

    def backward(self, params: Params, cache: Any, dy: Any, *, need_input_grad: bool = True,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """``dx = dy + the block's dx``; the block's gradients."""
        dx, grads = _backward(self.block, params, cache, dy, need_input_grad,
                              need_param_grads and self.block.trainable)
        if not (need_param_grads and self.block.trainable):
            grads = {}
        return (dy + dx if need_input_grad else None), grads

    def get_config(self) -> dict:
        """``{"block": {"class", "config", "trainable"}}``."""
        return {"block": layer_config(self.block)}

    def __repr__(self) -> str:
        return f"Residual({self.block!r})"


for _cls in (Block, Residual):
    _REGISTRY.add(_cls.__name__, _cls, builtin=True)


def _shapes(need: dict | None) -> dict[str, tuple[int, ...]] | None:
    return None if need is None else {k: tuple(v) for k, v in need.items()}
