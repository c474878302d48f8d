"""Seeded randomness that is identical on every backend.

Everything that must match across backends (initial weights, batch order) is
drawn on the host from one NumPy PCG64 generator, cast to the target dtype on
the host, then moved to the device once.  Dropout masks may use a backend's own
sampler (CuPy), because they need not match: a counter-based stream whose key
is drawn once from the host generator and whose counter advances by one per
draw. Key and counter are part of [`RNG.get_state`][xpnet.random.RNG.get_state], so a resumed run
draws the same masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import Backend, dtype_name
from .ops import ops_for

__all__ = ["RNG"]


def _fresh_seed() -> int:
    """A seed drawn from the operating system's entropy (63 bits), for ``seed=None``."""
    return int(np.random.SeedSequence().entropy) >> 65  # type: ignore[arg-type]


class RNG:
    """A seeded random number generator whose draws are backend independent.

    Parameters
    ----------
    seed : int or None
        Seed for NumPy's PCG64 bit generator. ``None`` draws a fresh seed from the
        operating system's entropy and records it in ``seed``, so that
        ``RNG(rng.seed)`` repeats the draws.

    Attributes
    ----------
    seed : int
        The seed given, or the one drawn for ``None``.

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.backends.get_backend("numpy")
    >>> a = xn.RNG(0).normal((2, 2), 1.0, b, b.xp.float32)
    >>> c = xn.RNG(0).normal((2, 2), 1.0, b, b.xp.float32)
    >>> bool(b.xp.all(a == c))
    True
    """

    def __init__(self, seed: int | None = 0):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = _fresh_seed() if seed is None else int(seed)
        self.generator = np.random.Generator(np.random.PCG64(self.seed))
        self._stream: list[int] | None = None  # [key, counter] of the device sampler

    # -- state ---------------------------------------------------------------
    def get_state(self) -> dict:
        """The generator state as a JSON-serialisable dict (for checkpoints).

        Examples
        --------
        >>> import json, xpnet as xn
        >>> rng = xn.RNG(0)
        >>> state = json.loads(json.dumps(rng.get_state()))
        >>> first = rng.spawn_seed()
        >>> rng.set_state(state)
        >>> rng.spawn_seed() == first
        True
        """
        st = self.generator.bit_generator.state
        out = {**st, "state": {k: int(v) for k, v in st["state"].items()},
               "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}
        if self._stream is not None:
            out["device_stream"] = list(self._stream)
        return out

    def set_state(self, state: dict) -> None:
        """Restore a state produced by [`get_state`][xpnet.random.RNG.get_state].

        Parameters
        ----------
        state : dict

        Raises
        ------
        ValueError
            When ``state`` is not a PCG64 state dict.

        Examples
        --------
        >>> import xpnet as xn
        >>> a, b = xn.RNG(1), xn.RNG(2)
        >>> b.set_state(a.get_state())
        >>> a.host_permutation(6).tolist() == b.host_permutation(6).tolist()
        True
        """
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError("RNG state must be a PCG64 state dict from RNG.get_state()")
        stream = state.get("device_stream")
        if stream is not None and not (
                isinstance(stream, list) and len(stream) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64
                        for v in stream)):
            raise ValueError(f"RNG state 'device_stream' must be [key, counter], two ints in "
                             f"[0, 2**64), got {stream!r}")
        self.generator.bit_generator.state = {k: v for k, v in state.items()
                                              if k != "device_stream"}
        self._stream = None if stream is None else [int(v) for v in stream]

    def spawn_seed(self) -> int:
        """Draw a 63-bit integer seed, e.g. for a device-side sampler.

        Examples
        --------
        >>> import xpnet as xn
        >>> 0 <= xn.RNG(0).spawn_seed() < 2**63
        True
        """
        return int(self.generator.integers(0, 2**63 - 1))

    def device_stream(self) -> tuple[int, int]:
        """The ``(key, counter)`` of the next draw of a counter-based device sampler.

        The key is drawn from this generator on first use
        ([`spawn_seed`][xpnet.random.RNG.spawn_seed]), the counter starts at 0 and
        advances by one per call. Both are part of
        [`get_state`][xpnet.random.RNG.get_state], so a generator restored from a state
        continues the same stream: a resumed run draws the same dropout masks on CuPy.

        Returns
        -------
        (int, int)
            The key (below 2**63) and this draw's counter (below 2**64).

        Examples
        --------
        >>> import xpnet as xn
        >>> rng = xn.RNG(0)
        >>> key, c0 = rng.device_stream()
        >>> state = rng.get_state()
        >>> rng.device_stream() == (key, 1), c0
        (True, 0)
        >>> rng.set_state(state)
        >>> rng.device_stream() == (key, 1)
        True
        """
        if self._stream is None:
            self._stream = [self.spawn_seed(), 0]
        key, counter = self._stream
        self._stream[1] = (counter + 1) % 2**64
        return key, counter

    # -- draws ---------------------------------------------------------------
    def _host(self, values: np.ndarray, backend: Backend, dtype: Any) -> Any:
        return backend.asarray(values.astype(dtype_name(dtype), copy=False), dtype=dtype)

    def normal(self, shape: tuple[int, ...], std: float, backend: Backend, dtype: Any) -> Any:
        """Normal(0, std) draws on the host, moved to ``backend`` as ``dtype``.

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> w = xn.RNG(0).normal((2, 3), 0.1, b, b.xp.float32)
        >>> w.shape, str(w.dtype)
        ((2, 3), 'float32')
        """
        return self._host(self.generator.standard_normal(shape) * std, backend, dtype)

    def uniform(self, shape: tuple[int, ...], low: float, high: float, backend: Backend,
                dtype: Any) -> Any:
        """Uniform[low, high) draws on the host, moved to ``backend`` as ``dtype``.

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> u = xn.RNG(0).uniform((1000,), -1.0, 1.0, b, b.xp.float64)
        >>> bool(b.xp.all((u >= -1.0) & (u < 1.0)))
        True
        """
        return self._host(self.generator.uniform(low, high, size=shape), backend, dtype)

    def permutation(self, n: int, backend: Backend) -> Any:
        """A random permutation of ``range(n)`` as an int64 index array on the device.

        The same seed gives the same permutation on every backend.

        Examples
        --------
        >>> import xpnet as xn
        >>> p = xn.RNG(0).permutation(5, xn.get_backend("numpy"))
        >>> sorted(p.tolist()), str(p.dtype)
        ([0, 1, 2, 3, 4], 'int64')
        """
        return backend.asarray(self.generator.permutation(n), dtype=backend.index_dtype)

    def host_permutation(self, n: int) -> np.ndarray:
        """A random permutation of ``range(n)`` as a host NumPy array.

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> xn.RNG(0).host_permutation(5).tolist() == xn.RNG(0).permutation(5, b).tolist()
        True
        """
        return self.generator.permutation(n)

    def keep_mask(self, shape: tuple[int, ...], keep: float, backend: Backend, dtype: Any) -> Any:
        """A dropout mask: ``1/keep`` with probability ``keep``, else 0.

        The uniform draws come from the backend's ops
        ([`xpnet.ops.Ops.uniform`][]): on CuPy from CuPy's generator (seeded
        once from this one), so no host-to-device copy happens per step;
        elsewhere from this generator on the host, which keeps
        NumPy/PyTorch/array_api_strict runs identical.

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> mask = xn.RNG(0).keep_mask((2, 4), 0.5, b, b.xp.float32)
        >>> sorted(set(mask.ravel().tolist()))
        [0.0, 2.0]
        """
        xp = backend.xp
        u = ops_for(backend).uniform(self, shape, dtype, backend)
        scale = xp.asarray(1.0 / keep, dtype=dtype, device=backend.device)
        zero = xp.asarray(0.0, dtype=dtype, device=backend.device)
        return xp.where(u < keep, scale, zero)
