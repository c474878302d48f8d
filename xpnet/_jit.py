"""Optional compiled optimizer updates for NumPy arrays (with numba installed).

The NumPy update (:mod:`xpnet._inplace`) makes about a dozen passes over every
parameter. Inside a training loop the parameters, gradients and moments no
longer sit in the CPU cache when the update starts, so each pass costs memory
traffic: on the benchmark machine the Adam update of the 784-512-256-10 net
took about 1.9 ms of a 4.5 ms step. A numba kernel reads each element once and
does the whole rule in registers: about 0.85 ms in the same loop.

The kernels repeat the NumPy path's arithmetic operation for operation, in the
arrays' own precision (every scalar is cast to the array dtype first, as NumPy
does with Python floats), without fused multiply-adds, so both paths give
bitwise-identical results (tested). Kernels are compiled on first use and
cached on disk by numba.

``pip install "xpnet[jit]"`` installs numba; ``XPNET_JIT=0`` turns the
compiled path off.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

_kernels: Any = None
_failed = False


@functools.lru_cache(maxsize=1)
def installed() -> bool:
    """Whether numba can be imported (without importing it; looked up once)."""
    return importlib.util.find_spec("numba") is not None


def switched_off() -> bool:
    """Whether ``XPNET_JIT`` is ``0`` (or ``false``, ``no``, ``off``)."""
    return os.environ.get("XPNET_JIT", "1").strip().lower() in ("0", "false", "no", "off")


def failed() -> bool:
    """Whether numba failed to import or compile in this process (then it is not used)."""
    return _failed


def enabled() -> bool:
    """Whether the compiled update is used now: numba installed, not switched off, not
    failed, and not suspended by the running ``fit`` of this thread/context."""
    if _suspended.get() or switched_off():
        return False
    return not _failed and installed()


# Importing numba takes about 0.5 s and a first compile about 1 s more; the compiled Adam
# update saves about 2 ns per parameter per step (W2: 1.6 ms -> 0.49 ms for 535,818
# parameters). Below this many parameter-steps a fit would lose more than it gains.
WORTH_IT = 2.5e8
# per thread / per asyncio task, so a small fit in one thread does not switch the
# compiled update off for a large fit running in another
_suspended: contextvars.ContextVar[int] = contextvars.ContextVar("xpnet_jit_suspended",
                                                                 default=0)


def worth_it(n_params: int, steps: int) -> bool:
    """Whether a fit of ``steps`` updates of ``n_params`` parameters should use numba.

    True when numba is already imported (nothing left to pay) or when the work is
    large enough to repay the import (:data:`WORTH_IT` parameter-steps).
    """
    import sys

    return "numba" in sys.modules or n_params * steps >= WORTH_IT


@contextlib.contextmanager
def suspended(flag: bool = True) -> Iterator[None]:
    """Within the block (in this thread or task), :func:`enabled` is False if ``flag``."""
    token = _suspended.set(_suspended.get() + int(flag))
    try:
        yield
    finally:
        _suspended.reset(token)


def _get() -> Any:
    global _kernels, _failed
    if _kernels is None and not _failed:
        try:
            from . import _jit_kernels

            _kernels = _jit_kernels
        except Exception:  # pragma: no cover - a broken numba install: fall back quietly
            _failed = True
    return _kernels


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _run(kernel: Any, calls: list[tuple[Any, ...]]) -> bool:
    """Run ``kernel(*args)`` for each call; the first call compiles (or loads the cache).

    A failure there (numba unable to compile on this platform) changes nothing,
    turns the compiled path off for the process with a warning, and returns False.
    """
    global _failed
    if not calls:
        return True
    try:
        kernel(*calls[0])
    except Exception as exc:  # pragma: no cover - depends on the numba install
        import warnings

        _failed = True
        warnings.warn(f"xpnet: the compiled optimizer update failed ({exc!r}); "
                      "using the NumPy update", RuntimeWarning, stacklevel=3)
        return False
    for args in calls[1:]:
        kernel(*args)
    return True


def _kernels_for(params: dict) -> Any:
    """The kernel module, or None when numba is unusable or a dtype is not float32/64."""
    k = _get()
    if k is None or any(p.dtype not in _DTYPES for p in params.values()):
        return None
    return k


def sgd(params: dict, grads: dict, state: dict, lr: float, t: int, *, weight_decay: float,
        momentum: float, nesterov: bool) -> bool:
    """SGD (optionally with L2 decay, momentum, Nesterov) in place; False if not compiled."""
    k = _kernels_for(params)
    if k is None:
        return False
    calls = []
    for key, p in params.items():
        dt = p.dtype.type
        buf = state["momentum_buffer"][key] if momentum > 0 else p
        calls.append((_flat(p), _flat(grads[key]), _flat(buf), dt(lr), dt(weight_decay),
                      dt(momentum), weight_decay != 0.0, momentum > 0, nesterov, t == 1))
    return _run(k.sgd, calls)


def adam(params: dict, grads: dict, state: dict, *, b1: float, b2: float, c1: float,
         c2: float, step_size: float, eps_scaled: float, weight_decay: float, decay: float,
         decoupled: bool) -> bool:
    """Adam / AdamW in place with precomputed scalars; False if not compiled."""
    k = _kernels_for(params)
    if k is None:
        return False
    m_all, v_all = state["exp_avg"], state["exp_avg_sq"]
    calls = []
    for key, p in params.items():
        dt = p.dtype.type
        calls.append((_flat(p), _flat(grads[key]), _flat(m_all[key]), _flat(v_all[key]),
                      dt(b1), dt(b2), dt(c1), dt(c2), dt(step_size), dt(eps_scaled),
                      dt(weight_decay), dt(decay), weight_decay != 0.0, decoupled))
    return _run(k.adam, calls)


def rmsprop(params: dict, grads: dict, state: dict, lr: float, *, weight_decay: float,
            alpha: float, eps: float, momentum: float, centered: bool) -> bool:
    """RMSprop (optionally centered, with momentum, with L2 decay) in place."""
    k = _kernels_for(params)
    if k is None:
        return False
    calls = []
    for key, p in params.items():
        dt = p.dtype.type
        buf = state["momentum_buffer"][key] if momentum > 0 else p
        ga = state["grad_avg"][key] if centered else p
        calls.append((_flat(p), _flat(grads[key]), _flat(state["square_avg"][key]), _flat(buf),
                      _flat(ga), dt(lr), dt(weight_decay), dt(alpha), dt(1.0 - alpha), dt(eps),
                      dt(momentum), weight_decay != 0.0, momentum > 0, centered))
    return _run(k.rmsprop, calls)
