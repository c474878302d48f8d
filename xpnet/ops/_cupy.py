"""CuPy ops: fused optimizer updates, the device-side dropout sampler and the device
scope of an array.

The reference update launches a dozen or more small kernels per parameter; the rule's
``cupy.ElementwiseKernel`` (``RuleKernels.cuda`` in [`xpnet.ops.kernels`][]) does the
whole rule, the ``keep`` mask included, in one launch per parameter, and returns new
arrays. Scalars are cast to the array dtype and the kernels compiled with
``--fmad=false`` (no contraction into a fused multiply-add), so they give the reference
rule's bits (``sqrt`` and division are IEEE-rounded by default).

Status: ``tests/test_cupy_kernel_source.py`` compiles the bodies with the host C++
compiler and checks those bits on the CPU; the CuPy side is tested only where a CUDA
GPU is present and has not run on one yet, so it is off unless ``XPNET_CUPY_FUSED=1``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..backends import env_flag
from . import _philox
from ._base import Ops, hypers
from .kernels import CudaKernel, RuleKernels, kernels_for

_KERNELS: dict[tuple[str, str, str, str], Any] = {}
_OPTIONS = ("--fmad=false",)
_UNIFORM: list[Any] = []


def fused_enabled() -> bool:
    """Whether ``XPNET_CUPY_FUSED=1`` asks for the fused CuPy updates."""
    return env_flag("XPNET_CUPY_FUSED", False)


def applicable(params: dict, grads: dict, state: dict) -> bool:
    """Whether all params, grads and slots are CuPy arrays of one float32/float64 dtype."""
    if not params:
        return False
    arrays = list(params.values()) + [grads.get(k) for k in params]
    for slot in state.values():
        if isinstance(slot, dict):
            arrays += [slot.get(k) for k in params]
    dtypes = set()
    for a in arrays:
        if a is None or not array_api_compat.is_cupy_array(a):
            return False
        dtypes.add(str(a.dtype))
    return len(dtypes) == 1 and dtypes <= {"float32", "float64"}


def _compiled(spec: CudaKernel) -> Any:
    key = (spec.name, spec.in_params, spec.out_params, spec.body)
    k = _KERNELS.get(key)
    if k is None:
        import cupy

        k = cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.body, spec.name,
                                   options=_OPTIONS)
        _KERNELS[key] = k
    return k


def fused_update(kernels: RuleKernels, opt: Any, params: dict, grads: dict, state: dict,
                 lr: float, ts: dict[str, int], keep: Any) -> tuple[dict, dict]:
    """``(new_params, new_slots)`` from the rule's CUDA kernel (the caller checked `applicable`)."""
    assert kernels.cuda is not None
    spec = kernels.cuda(opt)
    k = _compiled(spec)
    if keep is None:
        keep = True  # a scalar argument: no kernel to make a 0-d array
    hyper = hypers(kernels, opt, lr, ts, params)
    new_p: dict = {}
    slots: dict[str, dict] = {s: {} for s in spec.arrays if s is not None}
    for key, p in params.items():
        arrays = [p if s is None else state[s][key] for s in spec.arrays]
        out = k(p, grads[key], *arrays, keep, *hyper[key])
        out = out if isinstance(out, tuple) else (out,)
        new_p[key] = out[0]
        for s, a in zip(spec.arrays, out[1:], strict=True):
            if s is not None:
                slots[s][key] = a
    return new_p, slots


class CupyOps(Ops):
    """Ops for CuPy arrays: the generic ops, plus the fused optimizer update
    (``XPNET_CUPY_FUSED=1``) and a dropout sampler that draws on the device.

    Examples
    --------
    >>> from xpnet.ops import CupyOps
    >>> CupyOps().name
    'cupy'
    """

    name = "cupy"

    def update(self, opt: Any, params: dict, grads: dict, state: dict, lr: float,
               ts: dict[str, int], keep: Any) -> tuple[dict, dict] | None:
        """The fused update when enabled and a kernel applies; else None."""
        if not fused_enabled():
            return None
        kernels = kernels_for(opt)
        if kernels is None or kernels.cuda is None or not applicable(params, grads, state):
            return None
        return fused_update(kernels, opt, params, grads, state, lr, ts, keep)

    def uniform(self, rng: Any, shape: tuple[int, ...], dtype: Any,
                backend: Any) -> Any:  # pragma: no cover - needs a GPU
        """Uniform ``[0, 1)`` draws made on the device by a Philox4x32-10 kernel from
        ``rng``'s device stream ([`xpnet.RNG.device_stream`][xpnet.random.RNG.device_stream]):
        no copy per step, no state on the device (the numbers of ``_philox.uniform_host``).
        """
        import cupy

        if not _UNIFORM:
            _UNIFORM.append(cupy.ElementwiseKernel(
                _philox.IN_PARAMS, _philox.OUT_PARAMS, _philox.BODY, _philox.NAME,
                preamble=_philox.PREAMBLE))
        with backend.device_scope():
            out = cupy.empty(shape, dtype=dtype)
            words = (cupy.uint32(w) for w in _philox.split_key(*rng.device_stream()))
            return _UNIFORM[0](*words, out)

    def scope(self, a: Any) -> Any:  # pragma: no cover - needs a GPU
        """The GPU that ``a`` lives on, made current for the block."""
        import cupy

        return cupy.cuda.Device(a.device.id)

    def speedups(self) -> dict[str, dict[str, Any]]:
        """Whether the fused optimizer update is switched on."""
        on = fused_enabled()
        why = ("XPNET_CUPY_FUSED=1: one ElementwiseKernel per parameter" if on else
               "off by default (not yet run on a GPU); XPNET_CUPY_FUSED=1 turns it on")
        return {"fused optimizer": {"on": on, "why": why}}
