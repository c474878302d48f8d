"""Optional compiled optimizer updates for NumPy arrays (with numba installed).

The ufunc update (`xpnet.ops._chunked`) makes about a dozen passes over
every parameter. Inside a training loop the parameters, gradients and moments
no longer sit in the CPU cache when the update starts, so each pass costs
memory traffic: on the benchmark machine the Adam update of the
784-512-256-10 net took about 1.9 ms of a 4.5 ms step. The rule's numba loop
(``RuleKernels.loop_to`` in [`xpnet.ops.kernels`][]) reads each element once and
does the whole rule in registers: about 0.85 ms in the same loop.

The in-place update runs the same loop with its outputs aliased to its inputs
(``loop_to(p, g, *slots, p, *slots, *hyper)``; each loop reads an element
before it writes it). Called with aliased arrays as they are, LLVM cannot
vectorise the loop: its run-time test that the outputs do not overlap the
inputs fails, and the scalar fallback runs (7 times slower on W2's Adam).
So `compiled_aliased` compiles, once per rule, a small entry
``f(p, g, *slots, *hyper)`` that makes that call with the same variables,
with the loop inlined into it: the compiler then sees that each output is
its input, vectorises as for a loop written in place, and drops the unused
non-finite flag. The guarded update, which writes the new parameter over the
gradient (``p2`` is ``g``), gets such an entry too.

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
import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._chunked import flat_arrays, new_slots

_failed = False
_COMPILED: dict[Any, Any] = {}
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


def _jit(fn: Callable[..., Any], *, inline: bool = False) -> Any:
    """``fn`` compiled by numba, lazily, with what every loop needs: nogil (the update
    may run beside other threads), error_model="numpy" (no ZeroDivisionError checks:
    they block vectorisation), fastmath=False (no reassociation and no multiply-add
    contraction: bitwise equality with the reference rule), and cache (compiled once
    per machine), or ``inline`` (inlined into the function that calls it instead)."""
    import numba

    if inline:
        return numba.njit(fn, nogil=True, error_model="numpy", fastmath=False, inline="always")
    return numba.njit(fn, nogil=True, error_model="numpy", fastmath=False, cache=True)


def compiled(loop: Callable[..., Any]) -> Any:
    """``loop`` compiled by numba (once per process; numba caches it on disk)."""
    k = _COMPILED.get(loop)
    if k is None:
        k = _COMPILED[loop] = _jit(loop)
    return k


def compiled_aliased(loop_to: Callable[..., Any], n_slots: int, n_hyper: int,
                     into_grads: bool = False) -> Any:
    """``loop_to`` called with its outputs aliased, the loop inlined, compiled by numba
    (see the module docstring for why).

    In place: ``f(p, g, *slots, *hyper)`` runs ``loop_to(p, g, *slots, p, *slots,
    *hyper)`` and returns None (so the compiler drops the unused flag). With
    ``into_grads`` (the guarded update): ``f(p, g, *slots, *new slots, *hyper)``
    returns ``loop_to(p, g, *slots, g, *new slots, *hyper)``.

    numba inlines only calls with a fixed number of arguments, so the entry's source
    is written for the rule's ``n_slots`` and ``n_hyper``. It is compiled as if it
    stood in the loop's file, at the loop's line, so numba's disk cache keeps it
    beside the loop's and recompiles it when that file changes.
    """
    key = (loop_to, n_slots, n_hyper, into_grads)
    k = _COMPILED.get(key)
    if k is None:
        slots = "".join(f"s{i}, " for i in range(n_slots))
        new = "".join(f"n{i}, " for i in range(n_slots)) if into_grads else ""
        hyper = "".join(f"h{i}, " for i in range(n_hyper))
        name = f"{loop_to.__name__}_{'into_grads' if into_grads else 'in_place'}"
        call = f"loop_to(p, g, {slots}{f'g, {new}' if into_grads else f'p, {slots}'}{hyper})"
        src = f"def {name}(p, g, {slots}{new}{hyper}):\n"
        src += f"    return {call}\n" if into_grads else f"    {call}\n"  # in place: no flag
        scope = {"__name__": loop_to.__module__, "loop_to": _jit(loop_to, inline=True)}
        exec(compile(src, inspect.getfile(loop_to), "exec"), scope)
        entry = scope[name]
        entry.__code__ = entry.__code__.replace(co_firstlineno=loop_to.__code__.co_firstlineno)
        # the source's hash in the name: numba's disk cache tells entries apart by name
        # and the loop file's stamp, so a changed template here gets a new cache entry
        tag = hashlib.sha256(src.encode()).hexdigest()[:8]
        entry.__qualname__ = f"{loop_to.__qualname__}{name[len(loop_to.__name__):]}_{tag}"
        k = _COMPILED[key] = _jit(entry)
    return k


def _kernel_for(params: dict, compile_: Callable[..., Any], *args: Any) -> Any:
    """``compile_(*args)`` (a compiled loop) when the compiled path is on and every
    parameter is float32/float64, else None (a failure to compile turns the path off,
    with a warning)."""
    if not enabled() or any(p.dtype not in _DTYPES for p in params.values()):
        return None
    try:
        return compile_(*args)
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


def update_(kernels: Any, hyper: dict[str, tuple[Any, ...]], params: dict, grads: dict,
            state: dict, names: tuple[str | None, ...]) -> bool:
    """Run the rule's compiled loop on every parameter in place: ``loop_to`` with its
    outputs aliased to its inputs (`compiled_aliased`), or a registered rule's in-place
    ``loop(p, g, *slot arrays, *hyper[key])``.

    ``hyper`` holds each parameter's scalars, already cast to the arrays' dtype.
    False (nothing changed) when the rule has no loop, the compiled path is off,
    the dtype is not float32/float64, or numba fails.
    """
    if kernels.loop_to is not None:
        kernel = _kernel_for(params, compiled_aliased, kernels.loop_to, len(names),
                             len(next(iter(hyper.values()), ())))
    elif kernels.loop is not None:
        kernel = _kernel_for(params, compiled, kernels.loop)
    else:
        return False
    if kernel is None:
        return False
    calls = [(*flat_arrays(params, grads, state, k, names), *hyper[k]) for k in params]
    return _run(kernel, calls)


def update_to(loop_to: Callable[..., bool], hyper: dict[str, tuple[Any, ...]], params: dict,
              grads: dict, state: dict, names: tuple[str | None, ...],
              out: dict) -> bool | None:
    """Run the compiled ``loop_to(p, g, *slots, p2, *new slots, *hyper)`` on every
    parameter with ``p2`` the gradient (`compiled_aliased` with ``into_grads``): the new
    parameters over the gradients, the new slots into ``out``.

    Returns True when every written value is finite, False when one is not
    (the loops return as soon as a parameter's result holds one), and None
    when the compiled path is off or fails (then nothing was written).
    """
    kernel = _kernel_for(params, compiled_aliased, loop_to, len(names),
                         len(next(iter(hyper.values()), ())), True)
    if kernel is None:
        return None
    calls = []
    for k in params:  # the arguments but p2 (the entry passes g)
        ins = flat_arrays(params, grads, state, k, names)
        calls.append((*ins, *new_slots(ins[0], out, k, names), *hyper[k]))
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
