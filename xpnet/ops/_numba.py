"""Optional compiled optimizer updates for NumPy arrays (with numba installed).

The ufunc update makes about a dozen passes over each chunk; the rule's numba loop
(``RuleKernels.loop_to`` in [`xpnet.ops.kernels`][]) reads each element once and checks
each new value as it writes it, and its ``flat`` kernel runs the loop over the model's
flat buffers in one call (over ``XPNET_NUM_THREADS`` threads where asked). The loops
repeat the reference rule's arithmetic in the arrays' precision, without fused
multiply-adds: the same bits (tested).

When compiling pays (one rule for ``fit`` and ``Optimizer.update_``): numba is
already imported, or the work ahead reaches `WORTH_IT` parameter-updates (for ``fit``,
its parameters times its planned updates; for ``update_``, the parameters times the
updates this optimizer has made). ``import xpnet`` never imports numba, and a single
small update never compiles.

Compiled kernels are cached on disk in a per-user folder (``NUMBA_CACHE_DIR`` when
set, else ``$XDG_CACHE_HOME/xpnet/numba`` or ``~/.cache/xpnet/numba``), never inside
the installed package.

``pip install ".[jit]"`` installs numba; ``XPNET_JIT=0`` turns the compiled path off.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import env_flag

_failed = False
_COMPILED: dict[Any, Any] = {}
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Importing numba takes about 0.5 s and a first compile about 1 s more; the compiled Adam
# update saves about 2 ns per parameter per step (W2: 1.6 ms -> 0.49 ms for 535,818
# parameters). Below this many parameter-steps a fit would lose more than it gains.
WORTH_IT = 2.5e8
# the running fit's decision (None outside a fit), per thread / per asyncio task, so a
# small fit in one thread does not switch the compiled update off for a large fit in another
DECIDED: contextvars.ContextVar[bool | None] = contextvars.ContextVar("xpnet_jit_decided",
                                                                       default=None)


@functools.lru_cache(maxsize=1)
def installed() -> bool:
    """Whether numba can be imported (without importing it; looked up once)."""
    return importlib.util.find_spec("numba") is not None


def switched_off() -> bool:
    """Whether ``XPNET_JIT`` is ``0`` (or ``false``, ``no``, ``off``)."""
    return not env_flag("XPNET_JIT", True)


def failed() -> bool:
    """Whether numba failed to import or compile in this process (then it is not used)."""
    return _failed


def enabled() -> bool:
    """Whether numba is installed, not switched off and has not failed in this process."""
    return not _failed and not switched_off() and installed()


def use(n_params: int, updates: int) -> bool:
    """Whether this update compiles: the running fit's decision (`deciding`, made once),
    else `worth_it`."""
    decided = DECIDED.get()
    if decided is not None:
        return decided and not _failed
    return enabled() and worth_it(n_params, updates)


def worth_it(n_params: int, steps: int) -> bool:
    """True when numba is imported already or ``n_params * steps >= WORTH_IT``."""
    return "numba" in sys.modules or n_params * steps >= WORTH_IT


@contextlib.contextmanager
def deciding(n_params: int, n_updates: int) -> Iterator[None]:
    """Within the block `use` answers `worth_it` for the fit's parameters and updates
    (and whether numba is `enabled`, read once)."""
    token = DECIDED.set(enabled() and worth_it(n_params, n_updates))
    try:
        yield
    finally:
        DECIDED.reset(token)


def _fail(exc: BaseException) -> None:  # pragma: no cover - depends on the numba install
    global _failed
    import warnings

    _failed = True
    warnings.warn(f"xpnet: the compiled optimizer update failed ({exc!r}); "
                  "using the NumPy update", RuntimeWarning, stacklevel=4)


def cache_dir() -> Path:
    """Where xpnet's compiled kernels are cached: ``NUMBA_CACHE_DIR`` when set, else a
    per-user folder (``$XDG_CACHE_HOME/xpnet/numba``, default ``~/.cache/xpnet/numba``)."""
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xpnet" / "numba"


def _jit(fn: Any, **flags: Any) -> Any:
    """`fn` under numba.njit: nogil, no fastmath (bitwise equal), cached in `cache_dir`."""
    import numba

    # numba reads CACHE_DIR when it wraps the function; error_model "numpy" drops the
    # ZeroDivisionError checks, which block vectorisation
    config: Any = numba.config
    old = config.CACHE_DIR
    config.CACHE_DIR = str(cache_dir())
    try:
        return numba.njit(fn, nogil=True, error_model="numpy", fastmath=False, cache=True,
                          **flags)
    finally:
        config.CACHE_DIR = old


def compiled_flat(kernels: Any, parallel: bool) -> Any:
    """The rule's ``flat`` kernel compiled with its ``loop_to`` (once per process and setting)."""
    key = (kernels.flat, parallel)
    k = _COMPILED.get(key)
    if k is None:
        import numba

        flat = kernels.flat
        scope = dict(flat.__globals__, compiled_loop=_jit(kernels.loop_to),
                     prange=numba.prange if parallel else range)
        fn = types.FunctionType(flat.__code__, scope, flat.__name__)
        fn.__qualname__ = f"{flat.__qualname__}_{'parallel' if parallel else 'serial'}"
        k = _COMPILED[key] = _jit(fn, parallel=parallel)
    return k


def run_flat(kernels: Any, threads: int, *args: Any) -> bool | None:
    """Run the compiled flat kernel: True when all new values are finite; None: use the ufuncs."""
    if kernels.flat is None or kernels.loop_to is None or args[0].dtype not in _DTYPES:
        return None
    try:
        kernel = compiled_flat(kernels, threads > 1)
        if threads > 1:
            import numba

            config: Any = numba.config
            numba.set_num_threads(min(threads, config.NUMBA_NUM_THREADS))
        bad = args[-1]
        kernel(*args)
    except Exception as exc:  # pragma: no cover - depends on the numba install
        _fail(exc)
        return None
    return not bad.any()
