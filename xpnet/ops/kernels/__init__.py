"""Optimizer kernels, one module per update rule, keyed by the exact optimizer class.

Each rule's reference is the optimizer's ``_update_one`` ([`xpnet.optimizers`][]). A
module here restates it for the fast paths as ``KERNELS``, a
[`RuleKernels`][xpnet.ops.kernels.RuleKernels]:

* ``loop_to``: the rule as a loop over 1-D arrays (compiled by numba), returning True
  when a value it wrote is not finite;
* ``flat``: runs ``compiled_loop`` (the compiled ``loop_to``) over every piece of the
  model's flat buffers ([`xpnet.store`][]), with ``prange`` where that pays;
* ``ufunc_to``: the rule as NumPy ufuncs with ``out=`` over cache-sized chunks, for
  NumPy without numba (an Adam update of W2's 535,818 parameters: 1.45 ms, against
  2.27 ms for the reference rule over the same chunks);
* ``cuda``: the body of a ``cupy.ElementwiseKernel`` (``xpnet/ops/_cupy.py``).

Host kernels read ``p``, the gradient ``g`` and the slots and write the new values into
the spare buffers ``p2``, ``arrays2`` (swapped in when every value is finite); none
writes ``g``, and a ufunc kernel forms a decayed gradient in ``p2``, written last::

    ufunc_to(p, g, *arrays, p2, *arrays2, *hyper, tmp)  # tmp: a scratch chunk
    loop_to(p, g, *arrays, p2, *arrays2, *hyper) -> bool  # True: a non-finite value
    flat(p, gs, arrays, p2, arrays2, pieces, hyper_table, bad)
    cuda kernel(p, g, *arrays, keep, *hyper) -> (p2, *arrays2)   # pure

``arrays`` are the slots ``RuleKernels.arrays(opt)`` names (``CudaKernel.arrays`` for
CUDA); a ``None`` there is a slot this configuration lacks, passed as the parameter and
never written. ``hyper`` is ``RuleKernels.hyper(opt, lr, t, wd)`` for the parameter's
update number ``t`` and weight decay ``wd``, floats cast to the arrays' dtype. In
``flat``, ``pieces`` rows are ``(segment, start, stop, segment start)``, ``gs`` holds
each segment's 1-D gradient, ``hyper_table`` one row per segment (flags as 0 or 1) and
``bad[j]`` the flag of piece ``j``.

Kernels repeat the reference rule one rounding at a time (no fused multiply-add) and
give its bits (``tests/test_optimizers.py``, ``test_nonfinite_update.py``,
``test_cupy_kernel_source.py``). They are found by ``"module.QualName"`` of the class,
so a subclass of [`xpnet.Adam`][] runs its own reference rule; every module here is
loaded on the first look-up, and [`register`][xpnet.ops.kernels.register] adds kernels
for a class defined elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CudaKernel", "RuleKernels", "class_key", "kernels_for", "register"]

prange = range
"""``flat`` kernels loop over their pieces with this: ``numba.prange`` once compiled."""


def l2_to(p: Any, g: Any, wd: Any, p2: Any) -> Any:
    """A ufunc kernel's L2-decayed gradient ``g + wd p``, formed in ``p2`` (written last)."""
    np.multiply(p, wd, out=p2)
    p2 += g
    return p2


def compiled_loop(*args: Any) -> bool:
    """What a ``flat`` kernel calls: its rule's ``loop_to``, compiled, once compiled."""
    raise RuntimeError("a flat kernel runs only when compiled (xpnet/ops/_numba.py)")


@dataclass(frozen=True)
class CudaKernel:
    """A ``cupy.ElementwiseKernel`` that applies one update rule to one parameter.

    Parameters
    ----------
    name : str
        Kernel name (unique per variant; CuPy caches the compiled kernel by it).
    arrays : tuple of (str or None)
        The state slots it reads after ``p, g`` (``None``: the parameter in its place).
    in_params, out_params : str
        CuPy parameter lists: ``"T p, T g, <arrays>, bool keep, <hyper>"`` and
        ``"T p2, <one output per array>"``.
    body : str
        The C++ body; it must leave the inputs' values in the outputs where
        ``keep`` is false.
    """

    name: str
    arrays: tuple[str | None, ...]
    in_params: str
    out_params: str
    body: str


@dataclass(frozen=True)
class RuleKernels:
    """The fast-path kernels of one update rule (see the module docstring).

    Parameters
    ----------
    optimizers : tuple of str
        The classes they serve, as ``"module.QualName"`` (exact classes only).
    arrays : callable
        ``arrays(opt) -> tuple of (str or None)``: the state slots, in kernel order.
    hyper : callable
        ``hyper(opt, lr, t, wd) -> tuple of float/bool``: the rule's scalars for update
        ``t`` of a parameter with weight decay ``wd``.
    cuda : callable, optional
        ``cuda(opt) -> CudaKernel``: the CUDA variant for the optimizer's settings.
    ufunc_to : callable, optional
        The NumPy ufunc kernel over 1-D chunks (without it, NumPy runs the
        reference rule).
    loop_to, flat : callable, optional
        The numba loop over 1-D arrays and the flat kernel that runs it over a
        whole store (plain Python, compiled lazily; both or neither).

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.ops.kernels import kernels_for
    >>> k = kernels_for(xn.Adam())
    >>> k.arrays(xn.Adam()), len(k.hyper(xn.Adam(), 1e-3, 1, 0.0))
    (('exp_avg', 'exp_avg_sq'), 10)
    """

    optimizers: tuple[str, ...]
    arrays: Callable[[Any], tuple[str | None, ...]]
    hyper: Callable[[Any, float, int, float], tuple[Any, ...]]
    cuda: Callable[[Any], CudaKernel] | None = None
    ufunc_to: Callable[..., None] | None = None
    loop_to: Callable[..., bool] | None = None
    flat: Callable[..., None] | None = None


_REGISTRY: dict[str, RuleKernels] = {}
BY_TYPE: dict[type, RuleKernels | None] = {}  # kernels_for's answers (register clears it)
_loaded = False


def class_key(cls: type) -> str:
    """The registry key of a class: ``"module.QualName"``.

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.ops.kernels import class_key
    >>> class_key(xn.AdamW)
    'xpnet.optimizers.AdamW'
    """
    return f"{cls.__module__}.{cls.__qualname__}"


def register(kernels: RuleKernels) -> None:
    """Use ``kernels`` for the optimizer classes it names (replacing earlier ones).

    Parameters
    ----------
    kernels : RuleKernels

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.ops.kernels import RuleKernels, kernels_for, register
    >>> class Plain(xn.SGD):
    ...     pass
    >>> kernels_for(Plain()) is None  # a subclass runs its own reference rule
    True
    >>> register(RuleKernels((f"{__name__}.Plain",), lambda o: (), lambda o, lr, t, wd: (lr,)))
    >>> kernels_for(Plain()) is not None
    True
    """
    if not isinstance(kernels, RuleKernels):
        raise TypeError(f"kernels must be a RuleKernels, got {type(kernels).__name__}")
    _load()
    for name in kernels.optimizers:
        _REGISTRY[name] = kernels
    BY_TYPE.clear()


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        kernels = getattr(module, "KERNELS", None)
        if isinstance(kernels, RuleKernels):
            for name in kernels.optimizers:
                _REGISTRY.setdefault(name, kernels)
    _loaded = True


def kernels_for(opt: Any) -> RuleKernels | None:
    """The kernels registered for ``type(opt)`` exactly, or None.

    Parameters
    ----------
    opt : Optimizer

    Returns
    -------
    RuleKernels or None

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.ops.kernels import kernels_for
    >>> kernels_for(xn.SGD()) is not None, kernels_for(object()) is None
    (True, True)
    """
    if not _loaded:
        _load()
    cls = type(opt)
    kernels = BY_TYPE[cls] = _REGISTRY.get(f"{cls.__module__}.{cls.__qualname__}")
    return kernels
