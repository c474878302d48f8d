"""The fused CuPy updates, run on the CPU through an ``ElementwiseKernel`` emulator.

:mod:`xpnet.ops._cupy` builds ``cupy.ElementwiseKernel`` s from the parameter lists
and C++ bodies in :mod:`xpnet.ops.kernels`. Here a stand-in ``cupy`` module
implements ``ElementwiseKernel`` the way CuPy documents it: it parses the
parameter lists, generates a C++ loop in which every input is a ``const`` value
and every output a reference, compiles it with the host compiler (IEEE ``sqrt``
and division, no fused multiply-add, as ``--fmad=false`` asks of nvrtc), and on
a call casts scalars to the type ``T`` of the arrays and broadcasts 0-d arrays.
``_cupy.fused_update`` then runs unchanged for every rule, so the argument
order, the parameter lists and the bodies are all checked, bit for bit against
the reference :meth:`xpnet.Optimizer.update`, ``keep=False`` steps included.

What remains for a GPU is CuPy and nvrtc themselves:
``test_cupy_fused_update_is_bitwise_equal_to_the_generic_one`` in
``tests/test_optimizers.py``.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

import xpnet as xn
from xpnet.ops import _cupy
from xpnet.ops.kernels import kernels_for

CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler on this machine")


def _params(spec: str) -> list[tuple[str, str]]:
    out = []
    for item in spec.split(","):
        typ, name = item.split()
        out.append((typ, name))
    return out


class _Kernel:
    """``ElementwiseKernel(in_params, out_params, operation, name, options=...)`` on the CPU."""

    def __init__(self, build_dir, in_params, out_params, operation, name, options=()):
        assert "--fmad=false" in options, "the fused kernels must not contract a*b+c"
        self.ins, self.outs, self.name = _params(in_params), _params(out_params), name
        src = ["#include <cmath>", "#include <cstdint>", "using std::sqrt;"]
        for ctype, suffix in (("float", "f32"), ("double", "f64")):
            args = ", ".join(f"const {'uint8_t' if t == 'bool' else 'T'}* {n}_ptr"
                             for t, n in self.ins)
            args += ", " + ", ".join(f"T* {n}_ptr" for _, n in self.outs)
            loads = "".join(f"const {'bool' if t == 'bool' else 'T'} {n} = {n}_ptr[i]; "
                            for t, n in self.ins)
            refs = "".join(f"T& {n} = {n}_ptr[i]; " for _, n in self.outs)
            src.append(f'extern "C" void {name}_{suffix}(long n, {args.replace("T", ctype)}) '
                       f'{{ typedef {ctype} T; for (long i = 0; i < n; ++i) {{ {loads}{refs}'
                       f"\n{operation}\n}} }}")
        code = "\n".join(src)
        tag = hashlib.sha256(code.encode()).hexdigest()[:16]
        cpp, lib = build_dir / f"{name}_{tag}.cpp", build_dir / f"{name}_{tag}.so"
        cpp.write_text(code)
        subprocess.run([CXX, "-O2", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                        "-o", str(lib), str(cpp)], check=True, capture_output=True)
        self.lib = ctypes.CDLL(str(lib))

    def __call__(self, *args):
        assert len(args) == len(self.ins), (self.name, len(args), len(self.ins))
        arrays = [a for (t, _), a in zip(self.ins, args, strict=True)
                  if t == "T" and isinstance(a, np.ndarray) and a.ndim > 0]
        dtype = arrays[0].dtype
        assert all(a.dtype == dtype for a in arrays), "T must be one dtype"
        shape = arrays[0].shape
        bufs = []
        for (t, _), a in zip(self.ins, args, strict=True):
            want = np.uint8 if t == "bool" else dtype
            if isinstance(a, np.ndarray) and a.ndim > 0:
                assert a.shape == shape
            bufs.append(np.ascontiguousarray(np.broadcast_to(np.asarray(a).astype(want), shape)))
        outs = [np.empty(shape, dtype) for _ in self.outs]
        fn = getattr(self.lib, f"{self.name}_{'f32' if dtype == np.float32 else 'f64'}")
        fn(ctypes.c_long(int(np.prod(shape))),
           *[b.ctypes.data_as(ctypes.c_void_p) for b in bufs + outs])
        return outs[0] if len(outs) == 1 else tuple(outs)


@pytest.fixture
def fake_cupy(tmp_path_factory, monkeypatch):
    build = tmp_path_factory.mktemp("kernels")
    mod = types.ModuleType("cupy")
    mod.ElementwiseKernel = lambda *a, **k: _Kernel(build, *a, **k)
    mod.ones = np.ones
    mod.bool_ = np.bool_
    monkeypatch.setitem(sys.modules, "cupy", mod)
    monkeypatch.setattr(_cupy, "_KERNELS", {})
    return mod


CASES = {
    "sgd": lambda: xn.SGD(lr=0.1),
    "sgd-wd": lambda: xn.SGD(lr=0.1, weight_decay=0.01),
    "momentum": lambda: xn.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: xn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: xn.Adam(lr=1e-2),
    "adam-l2": lambda: xn.Adam(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda: xn.AdamW(lr=1e-2, weight_decay=0.05),
    "rmsprop": lambda: xn.RMSprop(lr=1e-2),
    "rmsprop-momentum-wd": lambda: xn.RMSprop(lr=1e-3, momentum=0.5, weight_decay=0.01),
    "rmsprop-centered": lambda: xn.RMSprop(lr=1e-3, alpha=0.9, centered=True),
    "rmsprop-centered-momentum": lambda: xn.RMSprop(lr=1e-3, alpha=0.9, momentum=0.5,
                                                    centered=True, weight_decay=0.01),
    # weight-decay masks: each parameter gets its own decay (none for the 1-D "b")
    "sgd-mask": lambda: xn.SGD(lr=0.05, momentum=0.9, weight_decay=0.01, decay="weights"),
    "adamw-mask": lambda: xn.AdamW(lr=1e-2, weight_decay=0.05, decay=lambda k: k != "b"),
    "rmsprop-mask": lambda: xn.RMSprop(lr=1e-3, momentum=0.5, weight_decay=0.01,
                                       decay=["a", "c"]),
}


@pytest.mark.parametrize("keep_kind", ["array", "none"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_updates_give_the_generic_update_bit_for_bit(fake_cupy, name, dtype, keep_kind):
    rng = np.random.default_rng(0)
    shapes = {"a": (300, 70), "b": (70,), "c": (5, 3)}
    params = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
    opt_ref, opt_k = CASES[name](), CASES[name]()
    p_ref, s_ref = dict(params), opt_ref.init(params)
    p_k, s_k = dict(params), opt_k.init(params)
    for step in range(6):
        grads = {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}
        # one step discarded on the device, as fit does for a non-finite loss
        keep = np.asarray(step != 3) if keep_kind == "array" else None
        p_ref, s_ref = opt_ref.update(p_ref, grads, s_ref, keep=keep)
        t = int(s_k["step"]) + 1
        ts = {k: s_k["steps"][k] + 1 for k in shapes}
        fused = _cupy.fused_update(kernels_for(opt_k), opt_k, p_k, grads, s_k,
                                   opt_k.learning_rate(t - 1), ts, keep)
        p_k, s_k = fused[0], {"step": t, "steps": ts, **fused[1]}
        for k in shapes:
            assert p_k[k].tobytes() == p_ref[k].tobytes(), (step, k)
            for slot in opt_ref.slots:
                assert s_k[slot][k].tobytes() == s_ref[slot][k].tobytes(), (step, slot, k)
    assert set(s_k) == set(s_ref)
    assert s_ref["step"] == s_k["step"] == 6


def test_the_emulator_sees_a_contracted_multiply_add(fake_cupy):
    """The bitwise comparison can fail: the same body with a fused multiply-add gives
    different bits for the first moment on some elements."""
    k_two = fake_cupy.ElementwiseKernel("T m, T g, T b1, T c1", "T out", "out = m * b1 + g * c1;",
                                        "two_roundings", options=("--fmad=false",))
    k_fma = fake_cupy.ElementwiseKernel("T m, T g, T b1, T c1", "T out",
                                        "out = std::fma(m, b1, g * c1);", "one_rounding",
                                        options=("--fmad=false",))
    rng = np.random.default_rng(1)
    m, g = rng.normal(size=4096).astype("float32"), rng.normal(size=4096).astype("float32")
    two, fma = k_two(m, g, 0.9, 0.1), k_fma(m, g, 0.9, 0.1)
    assert two.tobytes() == (m * np.float32(0.9) + g * np.float32(0.1)).tobytes()
    assert two.tobytes() != fma.tobytes()
