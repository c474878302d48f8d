"""Weight initializers, drawn on the host so every backend starts identical.

Every initializer is called the same way, ``init(shape, rng, backend, dtype)``, and
returns a new array of that shape and dtype on the backend's device:

- ``shape``: a tuple of int; for a weight matrix ``(fan_in, fan_out)``, from which
  the He and Glorot initializers take their scale.
- ``rng``: the [`RNG`][xpnet.random.RNG] the values are drawn from, on the host, so
  that one seed gives the same weights on every backend.
- ``backend``: the [`Backend`][xpnet.backends.Backend] whose device holds the result.
- ``dtype``: a floating dtype of that backend's namespace, e.g. ``backend.xp.float32``.

[`get_initializer`][xpnet.initializers.get_initializer] looks one up by name, and
returns a function of this form of your own as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .backends import Backend
from .random import RNG

__all__ = ["glorot_uniform", "he_normal", "he_uniform", "uniform", "zeros", "get_initializer",
           "INITIALIZERS"]


def he_normal(shape: tuple[int, int], rng: RNG, backend: Backend, dtype: Any) -> Any:
    """He (Kaiming) normal: N(0, 2 / fan_in). The default for ReLU-family nets.

    ``shape`` is ``(fan_in, fan_out)``; the arguments, the same for every initializer,
    are described in [`xpnet.initializers`][].

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> w = xn.initializers.he_normal((800, 400), xn.RNG(0), b, b.xp.float64)
    >>> round(float(w.std()) ** 2 * 800, 1)  # variance * fan_in
    2.0
    """
    return rng.normal(shape, math.sqrt(2.0 / shape[0]), backend, dtype)


def he_uniform(shape: tuple[int, int], rng: RNG, backend: Backend, dtype: Any) -> Any:
    """He uniform: U(-a, a) with a = sqrt(6 / fan_in).

    The variance of [`he_normal`][xpnet.initializers.he_normal], within bounds.
    ``shape`` is ``(fan_in, fan_out)``; for the arguments see [`xpnet.initializers`][].

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> w = xn.initializers.he_uniform((6, 100), xn.RNG(0), b, b.xp.float64)
    >>> bool(abs(w).max() <= 1.0)  # a = sqrt(6 / 6)
    True
    """
    a = math.sqrt(6.0 / shape[0])
    return rng.uniform(shape, -a, a, backend, dtype)


def glorot_uniform(shape: tuple[int, int], rng: RNG, backend: Backend, dtype: Any) -> Any:
    """Glorot (Xavier) uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

    The default for tanh and sigmoid nets. ``shape`` is ``(fan_in, fan_out)``; the
    arguments are those of [every initializer][xpnet.initializers].

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> w = xn.initializers.glorot_uniform((4, 2), xn.RNG(0), b, b.xp.float32)
    >>> w.shape, bool(abs(w).max() <= 1.0)  # a = sqrt(6 / (4 + 2))
    ((4, 2), True)
    """
    a = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(shape, -a, a, backend, dtype)


def uniform(shape: tuple[int, ...], rng: RNG, backend: Backend, dtype: Any,
            low: float = -0.5, high: float = 0.5) -> Any:
    """Plain U[low, high), as the original notebook used for its weights.

    Takes the [arguments of every initializer][xpnet.initializers], of any shape, and
    two of its own.

    Parameters
    ----------
    low : float
        The lower bound, included; the default interval ``[-0.5, 0.5)`` is the
        notebook's, whatever the shape.
    high : float
        The upper bound, excluded.

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> w = xn.initializers.uniform((10, 784), xn.RNG(0), b, b.xp.float32)
    >>> bool((w >= -0.5).all() and (w < 0.5).all())
    True
    """
    return rng.uniform(shape, low, high, backend, dtype)


def zeros(shape: tuple[int, ...], rng: RNG, backend: Backend, dtype: Any) -> Any:
    """All zeros (biases).

    The arguments are those of [every initializer][xpnet.initializers], of any shape;
    ``rng`` is not used, and stays in the signature so that all have one.

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> xn.initializers.zeros((3,), xn.RNG(0), b, b.xp.float32).tolist()
    [0.0, 0.0, 0.0]
    """
    return backend.xp.zeros(shape, dtype=dtype, device=backend.device)


INITIALIZERS = {f.__name__: f for f in (he_normal, he_uniform, glorot_uniform, uniform, zeros)}
"""Initializer names accepted by [`xpnet.Dense`][] and [`xpnet.MLP`][]."""


def get_initializer(name: str | Callable[..., Any]) -> Callable[..., Any]:
    """Look up an initializer by name.

    Parameters
    ----------
    name : str or callable
        One of ``he_normal``, ``he_uniform``, ``glorot_uniform``, ``uniform``,
        ``zeros``; a callable ``(shape, rng, backend, dtype) -> array``, called
        as [every initializer][xpnet.initializers] is, is returned as is.

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.initializers.get_initializer("glorot_uniform") is xn.initializers.glorot_uniform
    True
    """
    if callable(name):
        return name
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown initializer {name!r}; choose one of: {', '.join(INITIALIZERS)}"
        ) from None
