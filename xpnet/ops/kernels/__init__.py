"""Optimizer kernels, one module per update rule, keyed by the exact optimizer class.

The reference for every rule is the optimizer's own per-parameter method
(``_update_one`` in [`xpnet.optimizers`][]). A module here restates that rule
for the fast paths and exposes it as ``KERNELS``, a [`RuleKernels`][xpnet.ops.kernels.RuleKernels]:

* ``ufunc_to``: NumPy ufunc calls with ``out=`` on 1-D chunks (run by the NumPy
  ops, chunk by chunk, see ``xpnet/ops/_chunked.py``);
* ``loop_to``: the same rule as a plain loop over 1-D arrays, compiled by numba
  when it is installed (see ``xpnet/ops/_numba.py``); it returns True when a
  value it wrote is not finite;
* ``cuda``: the body of a ``cupy.ElementwiseKernel`` (see ``xpnet/ops/_cupy.py``).

The two host kernels are written once, out of place: they read the parameter
``p``, the gradient ``g`` and the slots, and write the new parameter into ``p2``
and the new slots into ``arrays2``. The NumPy ops run them two ways:

* the in-place update (``update_``) passes the inputs themselves as the
  outputs: ``p2`` is ``p``, ``arrays2`` are ``arrays``;
* the guarded update (``update_(check_finite=True)``, what ``fit`` runs) passes
  ``g`` as ``p2`` (the update consumes it) and a second set of slot arrays as
  ``arrays2``, checks the result and swaps the arrays in only when it is finite.

So a kernel must give the same values either way: it works element by element,
reads every input element before it writes that element of an output, and
reads ``g`` no more once it has written ``p2``. A ufunc call with ``out=`` one
of its inputs is elementwise, so ``np.multiply(m, b1, out=m2)`` is ``m *= b1``
when ``m2`` is ``m``.

All take their arrays and hyper-parameters in one order::

    ufunc_to(p, g, *arrays, p2, *arrays2, *hyper, tmp)  # tmp: a scratch chunk
    loop_to(p, g, *arrays, p2, *arrays2, *hyper) -> bool  # True: a non-finite value
    cuda kernel(p, g, *arrays, keep, *hyper) -> (p2, *arrays2)   # pure

A rule registered from outside may give in-place host kernels instead (the
form of earlier versions), ``ufunc(p, g, *arrays, *hyper, tmp)`` and
``loop(p, g, *arrays, *hyper)``: the in-place update runs them as they are,
and the guarded update runs ``ufunc`` on copies of each chunk (a pass more;
``loop`` is not used there). ``ufunc_to`` and ``loop_to`` take precedence.

``arrays`` are the state slots named by ``RuleKernels.arrays(opt)`` (for the
CUDA kernel, by ``CudaKernel.arrays``); a ``None`` there is a slot the
optimizer's configuration does not have, and the parameter is passed in its
place (the kernel ignores it; in ``arrays2`` too, and must not write it). ``g`` may
be overwritten by every kernel. ``hyper`` is ``RuleKernels.hyper(opt, lr, t, wd)``
with every float cast to the arrays' dtype first, as NumPy and CuPy do with
Python floats, and every bool left as it is; ``wd`` is the parameter's own
weight decay (``opt.weight_decay_for(key, p)``: 0 where the optimizer's
``decay`` mask excludes it), so the ops compute it once per distinct value
(`xpnet.ops._base.hypers`) and pass each parameter its own.

Each kernel repeats the reference rule one rounding at a time (no fused
multiply-add, no reassociation), so that it gives the reference rule's bits;
``tests/test_optimizers.py``, ``tests/test_nonfinite_update.py`` and
``tests/test_cupy_kernel_source.py`` check this for every optimizer variant,
in place and guarded.

Kernels are found by ``f"{cls.__module__}.{cls.__qualname__}"`` of the
optimizer's class, so a user subclass of [`xpnet.Adam`][] runs its own
reference rule and never Adam's kernels. Adding an optimizer with kernels means
adding its class to ``optimizers.py`` and one module here: every module in
this package is loaded on the first look-up. [`register`][xpnet.ops.kernels.register]
adds kernels for a class defined elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CudaKernel", "RuleKernels", "class_key", "kernels_for", "register"]


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
    ufunc, loop : callable, optional
        In-place host kernels (the form of earlier versions; the built-in rules give
        ``ufunc_to`` and ``loop_to`` instead), used where those are missing: the
        in-place update runs them as they are, the guarded update runs ``ufunc`` on
        copies of each chunk (a pass more).
    cuda : callable, optional
        ``cuda(opt) -> CudaKernel``: the CUDA variant for the optimizer's settings.
    ufunc_to, loop_to : callable, optional
        The out-of-place NumPy ufunc kernel and numba loop (plain Python, compiled
        lazily), which serve both the in-place update (outputs aliased to the
        inputs) and the guarded one.

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
    ufunc: Callable[..., None] | None = None
    loop: Callable[..., None] | None = None
    cuda: Callable[[Any], CudaKernel] | None = None
    ufunc_to: Callable[..., None] | None = None
    loop_to: Callable[..., bool] | None = None


_REGISTRY: dict[str, RuleKernels] = {}
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
    return _REGISTRY.get(f"{cls.__module__}.{cls.__qualname__}")
