"""Weight initializers, drawn on the host so every backend starts identical."""

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

    Parameters
    ----------
    shape : (fan_in, fan_out)
    rng : RNG
    backend : Backend
    dtype : dtype of the backend

    Returns
    -------
    array

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

    Parameters
    ----------
    shape : (fan_in, fan_out)
    rng : RNG
    backend : Backend
    dtype : dtype of the backend

    Returns
    -------
    array

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

    The default for tanh and sigmoid nets.

    Parameters
    ----------
    shape : (fan_in, fan_out)
    rng : RNG
    backend : Backend
    dtype : dtype of the backend

    Returns
    -------
    array

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

    Parameters
    ----------
    shape : tuple of int
    rng : RNG
    backend : Backend
    dtype : dtype of the backend
    low, high : float

    Returns
    -------
    array

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

    Parameters
    ----------
    shape : tuple of int
    rng : RNG
        Unused; present so every initializer has one signature.
    backend : Backend
    dtype : dtype of the backend

    Returns
    -------
    array

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> xn.initializers.zeros((3,), xn.RNG(0), b, b.xp.float32).tolist()
    [0.0, 0.0, 0.0]
    """
    return backend.xp.zeros(shape, dtype=dtype, device=backend.device)


INITIALIZERS = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot_uniform": glorot_uniform,
    "uniform": uniform,
    "zeros": zeros,
}
"""Initializer names accepted by [`xpnet.Dense`][] and [`xpnet.MLP`][]."""


def get_initializer(name: str | Callable[..., Any]) -> Callable[..., Any]:
    """Look up an initializer by name.

    Parameters
    ----------
    name : str or callable
        One of ``he_normal``, ``he_uniform``, ``glorot_uniform``, ``uniform``,
        ``zeros``; a callable ``(shape, rng, backend, dtype) -> array`` is
        returned as is.

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
