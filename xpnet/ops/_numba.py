"""Optional compiled optimizer updates for NumPy arrays (with numba installed).

The ufunc update (`xpnet.ops._chunked`) makes about a dozen passes over
every parameter. Inside a training loop the parameters, gradients and moments
no longer sit in the CPU cache when the update starts, so each pass costs
memory traffic: on the benchmark machine the Adam update of the
784-512-256-10 net took about 1.9 ms of a 4.5 ms step. The rule's numba loop
(``RuleKernels.loop`` in [`xpnet.ops.kernels`][]) reads each element once and
does the whole rule in registers: about 0.85 ms in the same loop.

The loops repeat the reference rule's arithmetic operation for operation, in
the arrays' own precision (every scalar is cast to the array dtype first, as
NumPy does with Python floats), without fused multiply-adds, so both give
bitwise-identical results (tested). Loops are compiled on first use and cached
on disk by numba.

``pip install "xpnet[jit]"`` installs numba; ``XPNET_JIT=0`` turns the
compiled path off.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._chunked import flat_arrays, flat_arrays_to

_failed = False
_COMPILED: dict[Callable[..., Any], Any] = {}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Importing numba takes about 0.5 s and a first compile about 1 s more; the compiled Adam
# update saves about 2 ns per parameter per step (W2: 1.6 ms -> 0.49 ms for 535,818
# parameters). Below this many parameter-steps a fit would lose more than it gains.
WORTH_IT = 2.5e8
# per thread / per asyncio task, so a small fit in one thread does not switch the
# compiled update off for a large fit running in another
_suspended: contextvars.ContextVar[int] = contextvars.ContextVar("xpnet_jit_suspended",
                                                                 default=0)


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


def worth_it(n_params: int, steps: int) -> bool:
    """Whether a fit of ``steps`` updates of ``n_params`` parameters should use numba.

    True when numba is already imported (nothing left to pay) or when the work is
    large enough to repay the import (`WORTH_IT` parameter-steps).
    """
    return "numba" in sys.modules or n_params * steps >= WORTH_IT


@contextlib.contextmanager
def suspended(flag: bool = True) -> Iterator[None]:
    """Within the block (in this thread or task), `enabled` is False if ``flag``."""
    token = _suspended.set(_suspended.get() + int(flag))
    try:
        yield
    finally:
        _suspended.reset(token)


def _fail(exc: BaseException) -> None:  # pragma: no cover - depends on the numba install
    global _failed
    import warnings

    _failed = True
    warnings.warn(f"xpnet: the compiled optimizer update failed ({exc!r}); "
                  "using the NumPy update", RuntimeWarning, stacklevel=4)


def compiled(loop: Callable[..., Any]) -> Any:
    """``loop`` compiled by numba (once per process; numba caches it on disk)."""
    k = _COMPILED.get(loop)
    if k is None:
        import numba

        # nogil: the update may run beside other threads; cache: compiled once per
        # machine; error_model="numpy": no ZeroDivisionError checks (they block
        # vectorisation); fastmath=False: no reassociation and no multiply-add
        # contraction (bitwise equality with the reference rule)
        k = numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)(loop)
        _COMPILED[loop] = k
    return k


def _kernel_for(loop: Callable[..., Any], params: dict) -> Any:
    """The compiled ``loop`` when the compiled path is on and every parameter is
    float32/float64, else None (a failure to compile turns the path off, with a warning)."""
    if not enabled() or any(p.dtype not in _DTYPES for p in params.values()):
        return None
    try:
        return compiled(loop)
    except Exception as exc:  # pragma: no cover - a broken numba install
        _fail(exc)
        return None


def _run(kernel: Any, calls: list[tuple[Any, ...]]) -> bool:
    """Run ``kernel(*args)`` for each call; the first call compiles (or loads the cache).

    A failure there (numba unable to compile on this platform) changes nothing,
    turns the compiled path off for the process with a warning, and returns False.
    """
    if not calls:
        return True
    try:
        kernel(*calls[0])
    except Exception as exc:  # pragma: no cover - depends on the numba install
        _fail(exc)
        return False
    for args in calls[1:]:
        kernel(*args)
    return True


def update_(loop: Callable[..., None], hyper: dict[str, tuple[Any, ...]], params: dict,
            grads: dict, state: dict, names: tuple[str | None, ...]) -> bool:
    """Run the compiled ``loop(p, g, *slot arrays, *hyper[key])`` on every parameter in place.

    ``hyper`` holds each parameter's scalars, already cast to the arrays' dtype.
    False (nothing changed) when the compiled path is off, the dtype is not
    float32/float64, or numba fails.
    """
    kernel = _kernel_for(loop, params)
    if kernel is None:
        return False
    calls = [(*flat_arrays(params, grads, state, k, names), *hyper[k]) for k in params]
    return _run(kernel, calls)


def update_to(loop_to: Callable[..., bool], hyper: dict[str, tuple[Any, ...]], params: dict,
              grads: dict,
              state: dict, names: tuple[str | None, ...], out: dict) -> bool | None:
    """Run the compiled ``loop_to`` on every parameter: the new parameters over the
    gradients, the new slots into ``out``.

    Returns True when every written value is finite, False when one is not
    (the loops return as soon as a parameter's result holds one), and None
    when the compiled path is off or fails (then nothing was written).
    """
    kernel = _kernel_for(loop_to, params)
    if kernel is None:
        return None
    calls = [(*flat_arrays_to(params, grads, state, out, k, names), *hyper[k])
             for k in params]
    try:
        bad = bool(kernel(*calls[0]))
    except Exception as exc:  # pragma: no cover - depends on the numba install
        _fail(exc)
        return None
    for args in calls[1:]:
        if bad:
            return False
        bad = bool(kernel(*args))
    return not bad
