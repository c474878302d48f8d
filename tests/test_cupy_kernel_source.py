"""The fused CuPy kernels' arithmetic, checked on the CPU.

The bodies of :mod:`xpnet._cupy_fused`'s ``ElementwiseKernel`` s are plain C++
over scalars. Here each body is compiled with the host C++ compiler (as the
GPU compiles it: IEEE ``sqrt`` and division, no fused multiply-add), wrapped in
a loop over NumPy buffers, and compared bit for bit with the generic
:meth:`xpnet.Optimizer.update`, ``keep=False`` steps included. What this cannot
check is CuPy itself (argument binding, broadcasting of the 0-d ``keep``): that
is ``test_cupy_fused_update_is_bitwise_equal_to_the_generic_one`` on a GPU.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

import xpnet as xn
from xpnet import _cupy_fused

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler on this machine")

_WRAPPER = r"""
#include <cmath>
using std::sqrt;

template <typename T>
static void adam_t(long n, const T* P, const T* G, const T* M, const T* V, bool keep,
                   T b1, T b2, T c1, T c2, T step_size, T eps_scaled, T wd, T decay,
                   bool has_wd, bool decoupled, T* P2, T* M2, T* V2) {
    for (long i = 0; i < n; ++i) {
        const T p = P[i], g = G[i], m = M[i], v = V[i];
        T &p2 = P2[i], &m2 = M2[i], &v2 = V2[i];
        ADAM_BODY
    }
}

template <typename T>
static void sgd_t(long n, const T* P, const T* G, const T* BUF, bool keep, T lr, T wd, T mom,
                  bool has_wd, bool has_mom, bool nesterov, bool first, T* P2, T* BUF2) {
    for (long i = 0; i < n; ++i) {
        const T p = P[i], g = G[i], buf = BUF[i];
        T &p2 = P2[i], &buf2 = BUF2[i];
        SGD_BODY
    }
}

#define EXPORT(T, S)                                                                         \
extern "C" void adam_##S(long n, const T* P, const T* G, const T* M, const T* V, bool keep, \
        T b1, T b2, T c1, T c2, T st, T ep, T wd, T dc, bool hw, bool dcp,                   \
        T* P2, T* M2, T* V2) {                                                               \
    adam_t<T>(n, P, G, M, V, keep, b1, b2, c1, c2, st, ep, wd, dc, hw, dcp, P2, M2, V2); }   \
extern "C" void sgd_##S(long n, const T* P, const T* G, const T* B, bool keep, T lr, T wd,  \
        T mom, bool hw, bool hm, bool nes, bool first, T* P2, T* B2) {                       \
    sgd_t<T>(n, P, G, B, keep, lr, wd, mom, hw, hm, nes, first, P2, B2); }
EXPORT(float, f32)
EXPORT(double, f64)
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    src = (_WRAPPER.replace("ADAM_BODY", _cupy_fused._ADAM.replace("\n", "\n        "))
           .replace("SGD_BODY", _cupy_fused._SGD.replace("\n", "\n        ")))
    (d / "k.cpp").write_text(src)
    out = d / "k.so"
    # like nvrtc without --use_fast_math: IEEE sqrt and division; --fmad=false ~ no contraction
    subprocess.run([CXX, "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                    "-o", str(out), str(d / "k.cpp")], check=True, capture_output=True)
    return ctypes.CDLL(str(out))


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _fused_on_cpu(lib, opt, params, grads, state, keep, lr, t):
    """What _cupy_fused.adam / sgd compute, run through the compiled kernel bodies."""
    s = "f32" if next(iter(params.values())).dtype == np.float32 else "f64"
    ct = ctypes.c_float if s == "f32" else ctypes.c_double
    new_p, slots = {}, {name: {} for name in opt.slots}
    for k, p in params.items():
        g = grads[k]
        p2 = np.empty_like(p)
        if isinstance(opt, xn.Adam):
            sc = opt._scalars(lr, t)
            m2, v2 = np.empty_like(p), np.empty_like(p)
            getattr(lib, f"adam_{s}")(
                ctypes.c_long(p.size), _ptr(p), _ptr(g), _ptr(state["exp_avg"][k]),
                _ptr(state["exp_avg_sq"][k]), ctypes.c_bool(keep),
                *[ct(sc[n]) for n in ("b1", "b2", "c1", "c2", "step_size", "eps_scaled",
                                      "weight_decay", "decay")],
                ctypes.c_bool(opt.weight_decay != 0.0), ctypes.c_bool(opt.decoupled),
                _ptr(p2), _ptr(m2), _ptr(v2))
            slots["exp_avg"][k], slots["exp_avg_sq"][k] = m2, v2
        else:
            buf = state["momentum_buffer"][k] if opt.momentum > 0 else p
            b2 = np.empty_like(p)
            getattr(lib, f"sgd_{s}")(
                ctypes.c_long(p.size), _ptr(p), _ptr(g), _ptr(buf), ctypes.c_bool(keep),
                ct(lr), ct(opt.weight_decay), ct(opt.momentum),
                ctypes.c_bool(opt.weight_decay != 0.0), ctypes.c_bool(opt.momentum > 0),
                ctypes.c_bool(opt.nesterov), ctypes.c_bool(t == 1), _ptr(p2), _ptr(b2))
            if opt.momentum > 0:
                slots["momentum_buffer"][k] = b2
        new_p[k] = p2
    return new_p, {"step": t, **slots}


CASES = {
    "sgd": lambda: xn.SGD(lr=0.1),
    "sgd-wd": lambda: xn.SGD(lr=0.1, weight_decay=0.01),
    "momentum": lambda: xn.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: xn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: xn.Adam(lr=1e-2),
    "adam-l2": lambda: xn.Adam(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda: xn.AdamW(lr=1e-2, weight_decay=0.05),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_kernel_bodies_give_the_generic_update_bit_for_bit(lib, name, dtype):
    rng = np.random.default_rng(0)
    shapes = {"a": (300, 70), "b": (70,), "c": (5, 3)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    opt_ref, opt_k = CASES[name](), CASES[name]()
    p_ref, s_ref = dict(params), opt_ref.init(params)
    p_k, s_k = dict(params), opt_k.init(params)
    for step in range(6):
        grads = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
        keep = step != 3  # one step discarded, as fit does on the device for a NaN
        t = int(s_k["step"]) + 1
        lr = opt_k.learning_rate(t - 1)
        p_ref, s_ref = opt_ref.update(p_ref, grads, s_ref, keep=np.asarray(keep))
        p_k, s_k = _fused_on_cpu(lib, opt_k, p_k, grads, s_k, keep, lr, t)
        for k in shapes:
            assert p_k[k].tobytes() == p_ref[k].tobytes(), (step, k)
            for slot in opt_ref.slots:
                assert s_k[slot][k].tobytes() == s_ref[slot][k].tobytes(), (step, slot, k)
    assert s_ref["step"] == s_k["step"] == 6


def test_a_changed_kernel_body_is_caught(lib, tmp_path):
    """The comparison above can fail: a body with a contracted multiply-add differs."""
    rng = np.random.default_rng(1)
    p, g = rng.normal(size=4096).astype("float32"), rng.normal(size=4096).astype("float32")
    m, v = rng.normal(size=4096).astype("float32"), rng.random(4096).astype("float32")
    ref_m = (m * np.float32(0.9) + g * np.float32(0.1)).astype("float32")
    fma_m = np.array([np.float32(np.float64(a) * np.float64(np.float32(0.9))
                                 + np.float64(np.float32(b * np.float32(0.1))))
                      for a, b in zip(m, g, strict=True)], dtype="float32")
    assert ref_m.tobytes() != fma_m.tobytes()  # single rounding differs somewhere
    opt = xn.Adam(lr=1e-2)
    out = _fused_on_cpu(lib, opt, {"w": p}, {"w": g}, {"step": 0, "exp_avg": {"w": m},
                        "exp_avg_sq": {"w": v}}, True, 1e-2, 1)
    assert out[1]["exp_avg"]["w"].tobytes() == ref_m.tobytes()
