"""Layers without ``backward``: their gradients from the array library's own autodiff.

A layer that defines ``forward`` only (``type(layer).backward is Layer.backward``) trains
on PyTorch and JAX: when a backward pass will follow, `forward` runs the layer under the
library's autodiff (``torch.autograd`` on leaves that share the parameters' memory;
``jax.vjp``) and returns a `Tape` as the layer's cache; `backward` turns ``dy`` into
``(dx, grads)`` from it. NumPy, CuPy and other namespaces have no autodiff: `backward`
refuses with a message that names the layer and what to write.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .blocks import sublayers
from .layers import Layer


def needs(layer: Layer) -> bool:
    """Whether ``layer`` leaves its gradients to autodiff (it, or a layer it holds, has no
    ``backward``: then the whole holder runs under autodiff)."""
    return type(layer).backward is Layer.backward or \
        any(needs(sub) for _, sub in sublayers(layer))


class Tape:
    """A layer's forward pass recorded for its backward one; ``cache`` is the layer's."""

    def __init__(self, cache: Any, pullback: Any):
        self.cache, self.pullback = cache, pullback


def forward(layer: Layer, params: dict, x: Any, train: bool, kw: dict) -> tuple[Any, Any]:
    """``layer.forward`` recorded for autodiff: ``(y, Tape)`` on PyTorch and JAX, the
    plain ``(y, cache)`` elsewhere (its `backward` then refuses)."""
    if array_api_compat.is_torch_array(x):
        import torch

        with torch.enable_grad():
            xl = x.detach().requires_grad_(x.dtype.is_floating_point)
            pl = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            y, cache = layer.forward(pl, xl, train=train, **kw)
        leaves = [xl, *pl.values()]

        def pull(dy: Any) -> tuple[Any, dict]:
            # an input the layer does not use gets zeros (torch >= 2.1)
            grads = torch.autograd.grad(y, leaves, grad_outputs=dy, materialize_grads=True)
            return grads[0], dict(zip(pl, grads[1:], strict=True))

        return y.detach(), Tape(_detached(cache), pull)
    if array_api_compat.is_jax_array(x):
        import jax

        def f(p: dict, xx: Any) -> tuple[Any, Any]:
            return layer.forward(p, xx, train=train, **kw)

        y, vjp, cache = jax.vjp(f, dict(params), x, has_aux=True)

        def pull_jax(dy: Any) -> tuple[Any, dict]:
            dp, dx = vjp(dy)
            return dx, dict(dp)

        return y, Tape(cache, pull_jax)
    return layer.forward(params, x, train=train, **kw)


def _detached(cache: Any) -> Any:
    """The layer's cache with tensors detached (its ``update_buffers`` reads it)."""
    detach = getattr(cache, "detach", None)
    if callable(detach):
        return detach()
    if isinstance(cache, (tuple, list)):
        return type(cache)(_detached(c) for c in cache)
    if isinstance(cache, dict):
        return {k: _detached(v) for k, v in cache.items()}
    return cache


def backward(what: str, layer: Layer, cache: Any, dy: Any) -> tuple[Any, dict]:
    """``(dx, grads)`` from a `Tape`; refuses a layer that was not recorded (no autodiff)."""
    if isinstance(cache, Tape):
        return cache.pullback(dy)
    lib = type(dy).__module__.split(".")[0]
    raise NotImplementedError(
        f"{what} has no backward(), and {lib} has no automatic differentiation: define "
        f"backward(self, params, cache, dy) returning (dx, grads) (see the custom-layer "
        f"page), or train on backend='torch' or 'jax', which differentiate forward() "
        f"for you")
