"""Fused optimizer updates for CuPy: one elementwise kernel per parameter per step.

The generic :meth:`xpnet.Optimizer.update` on CuPy launches a dozen or more small
kernels per parameter (each arithmetic step of the rule, then ``where(keep,
...)`` for each output). These ``cupy.ElementwiseKernel`` s do the whole rule,
the ``keep`` mask included, in one launch per parameter, and still return new
arrays (``update`` stays pure).

They repeat the generic path's arithmetic one rounding at a time: scalars are
cast to the array dtype (as CuPy does with Python floats), and the kernels are
compiled with ``--fmad=false`` so that ``a * b + c`` is not contracted into a
fused multiply-add, which rounds once instead of twice. ``sqrt`` and division
are IEEE-rounded (nvrtc's defaults without ``--use_fast_math``).

Status: the kernel bodies are compiled with the host C++ compiler in
``tests/test_cupy_kernel_source.py`` and give the generic update's bits on the
CPU. The CuPy side (``ElementwiseKernel`` binding, the 0-d ``keep`` broadcast,
nvrtc) is tested only where a CUDA GPU is present (``tests/test_optimizers.py``)
and has not run on a GPU yet, so it is off unless ``XPNET_CUPY_FUSED=1``.
"""

from __future__ import annotations

import os
from typing import Any

_KERNELS: dict[str, Any] = {}
_OPTIONS = ("--fmad=false",)

_ADAM = """
T gi = g;
T pi = p;
if (has_wd) {
    if (decoupled) { pi = pi * decay; } else { gi = gi + pi * wd; }
}
T mi = m * b1 + gi * c1;
T vi = v * b2 + (gi * gi) * c2;
T d = sqrt(vi) + eps_scaled;
T pn = pi - (mi / d) * step_size;
if (keep) { p2 = pn; m2 = mi; v2 = vi; } else { p2 = p; m2 = m; v2 = v; }
"""

_SGD = """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T u = gi;
T b = buf;
if (has_mom) {
    b = first ? gi : buf * mom + gi;
    u = nesterov ? gi + b * mom : b;
}
T pn = p - u * lr;
if (keep) { p2 = pn; buf2 = b; } else { p2 = p; buf2 = buf; }
"""

_SGD_PLAIN = """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T pn = p - gi * lr;
p2 = keep ? pn : p;
"""


_RMSPROP = """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T s = sq * a + (gi * gi) * c;
T gav = ga;
T d;
if (centered) {
    gav = ga * a + gi * c;
    d = sqrt(s - gav * gav) + eps;
} else {
    d = sqrt(s) + eps;
}
T u = gi / d;
T b = buf;
T pn;
if (has_mom) { b = buf * mom + u; pn = p - b * lr; } else { pn = p - u * lr; }
if (keep) { p2 = pn; sq2 = s; buf2 = b; ga2 = gav; }
else { p2 = p; sq2 = sq; buf2 = buf; ga2 = ga; }
"""


def enabled() -> bool:
    """Whether ``XPNET_CUPY_FUSED=1`` asks for the fused CuPy updates."""
    return os.environ.get("XPNET_CUPY_FUSED", "0").strip().lower() in ("1", "true", "yes", "on")


def applicable(params: dict, grads: dict, state: dict) -> bool:
    """True when enabled and every parameter, gradient and slot is a CuPy array of the
    same float32/float64 dtype (anything else takes the generic, promoting path)."""
    if not enabled() or not params:
        return False
    import array_api_compat

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


def _kernel(name: str) -> Any:
    k = _KERNELS.get(name)
    if k is None:
        import cupy

        if name == "adam":
            k = cupy.ElementwiseKernel(
                "T p, T g, T m, T v, bool keep, T b1, T b2, T c1, T c2, T step_size, "
                "T eps_scaled, T wd, T decay, bool has_wd, bool decoupled",
                "T p2, T m2, T v2", _ADAM, "xpnet_fused_adam", options=_OPTIONS)
        elif name == "sgd":
            k = cupy.ElementwiseKernel(
                "T p, T g, T buf, bool keep, T lr, T wd, T mom, bool has_wd, bool has_mom, "
                "bool nesterov, bool first",
                "T p2, T buf2", _SGD, "xpnet_fused_sgd", options=_OPTIONS)
        elif name == "rmsprop":
            k = cupy.ElementwiseKernel(
                "T p, T g, T sq, T buf, T ga, bool keep, T lr, T wd, T a, T c, T eps, T mom, "
                "bool has_wd, bool has_mom, bool centered",
                "T p2, T sq2, T buf2, T ga2", _RMSPROP, "xpnet_fused_rmsprop",
                options=_OPTIONS)
        else:
            k = cupy.ElementwiseKernel(
                "T p, T g, bool keep, T lr, T wd, bool has_wd",
                "T p2", _SGD_PLAIN, "xpnet_fused_sgd_plain", options=_OPTIONS)
        _KERNELS[name] = k
    return k


def _keep(keep: Any) -> Any:
    if keep is None:
        import cupy

        return cupy.ones((), dtype=cupy.bool_)
    return keep


def adam(params: dict, grads: dict, state: dict, keep: Any, *, b1: float, b2: float,
         c1: float, c2: float, step_size: float, eps_scaled: float, weight_decay: float,
         decay: float, decoupled: bool) -> tuple[dict, dict]:
    """Adam / AdamW, fused; returns ``(new_params, {"exp_avg": ..., "exp_avg_sq": ...})``."""
    k, kp = _kernel("adam"), _keep(keep)
    new_p, new_m, new_v = {}, {}, {}
    for key, p in params.items():
        dt = p.dtype.type
        new_p[key], new_m[key], new_v[key] = k(
            p, grads[key], state["exp_avg"][key], state["exp_avg_sq"][key], kp,
            dt(b1), dt(b2), dt(c1), dt(c2), dt(step_size), dt(eps_scaled), dt(weight_decay),
            dt(decay), weight_decay != 0.0, decoupled)
    return new_p, {"exp_avg": new_m, "exp_avg_sq": new_v}


def sgd(params: dict, grads: dict, state: dict, keep: Any, *, lr: float, t: int,
        weight_decay: float, momentum: float, nesterov: bool) -> tuple[dict, dict]:
    """SGD (L2 decay, momentum, Nesterov), fused; returns ``(new_params, new_slots)``."""
    kp = _keep(keep)
    new_p, new_buf = {}, {}
    if momentum == 0:
        k = _kernel("sgd_plain")
        for key, p in params.items():
            dt = p.dtype.type
            new_p[key] = k(p, grads[key], kp, dt(lr), dt(weight_decay), weight_decay != 0.0)
        return new_p, {}
    k = _kernel("sgd")
    for key, p in params.items():
        dt = p.dtype.type
        new_p[key], new_buf[key] = k(p, grads[key], state["momentum_buffer"][key], kp, dt(lr),
                                     dt(weight_decay), dt(momentum), weight_decay != 0.0,
                                     True, nesterov, t == 1)
    return new_p, {"momentum_buffer": new_buf}


def rmsprop(params: dict, grads: dict, state: dict, keep: Any, *, lr: float,
            weight_decay: float, alpha: float, eps: float, momentum: float,
            centered: bool) -> tuple[dict, dict]:
    """RMSprop (centered, momentum, L2 decay), fused; returns ``(new_params, new_slots)``."""
    k, kp = _kernel("rmsprop"), _keep(keep)
    new_p: dict = {}
    slots: dict[str, dict] = {"square_avg": {}}
    if momentum > 0:
        slots["momentum_buffer"] = {}
    if centered:
        slots["grad_avg"] = {}
    for key, p in params.items():
        dt = p.dtype.type
        buf = state["momentum_buffer"][key] if momentum > 0 else p
        ga = state["grad_avg"][key] if centered else p
        new_p[key], sq2, buf2, ga2 = k(
            p, grads[key], state["square_avg"][key], buf, ga, kp, dt(lr), dt(weight_decay),
            dt(alpha), dt(1.0 - alpha), dt(eps), dt(momentum), weight_decay != 0.0,
            momentum > 0, centered)
        slots["square_avg"][key] = sq2
        if momentum > 0:
            slots["momentum_buffer"][key] = buf2
        if centered:
            slots["grad_avg"][key] = ga2
    return new_p, slots
