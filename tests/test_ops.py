"""The ops layer: one object per library, generic code with no device syncs, the guards.

The generic ops are what CuPy runs wherever it has no kernel of its own. There,
a boolean-mask write (``a[mask] = v``) makes CuPy count the mask on the host,
which waits for the GPU; array-api-compat's CuPy ``sign`` (``out[isnan(x)] =
nan``) and ``clip`` (``out[x < lo] = lo``) are written that way. The guard
below fails on any of these in ``array_api_strict``, and the generic path (the
ops, clipping, metrics, a whole ``fit``) runs under it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet.ops import CupyOps, NumpyOps, Ops, TorchOps, ops_for, ops_of
from xpnet.ops.kernels import (
    RuleKernels,
    class_key,
    compiled_loop,
    kernels_for,
    prange,
    register,
)
from xpnet.store import ParamStore

strict = pytest.importorskip("array_api_strict")
StrictArray = type(strict.asarray(0.0))


def _is_bool_key(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(getattr(k, "dtype", None) in (strict.bool, np.bool_) for k in keys)


@pytest.fixture
def no_sync_patterns(monkeypatch):
    """``array_api_strict`` with ``sign``, ``clip`` and boolean-mask writes refused."""
    used: list[str] = []

    def refuse(name):
        def f(*args, **kwargs):
            used.append(name)
            raise AssertionError(f"the generic path called {name}")
        return f

    monkeypatch.setattr(strict, "sign", refuse("sign"))
    monkeypatch.setattr(strict, "clip", refuse("clip"))
    real_setitem = StrictArray.__setitem__

    def setitem(self, key, value):
        if _is_bool_key(key):
            used.append("boolean-mask write")
            raise AssertionError("the generic path wrote through a boolean mask")
        return real_setitem(self, key, value)

    monkeypatch.setattr(StrictArray, "__setitem__", setitem)
    return used


def test_the_guard_catches_each_pattern(no_sync_patterns):
    """The guard can fail: the old ReLU gradient, and array-api-compat's clip (the one
    the CuPy namespace uses) run under it, are refused."""
    from array_api_compat.common import _aliases

    y = strict.asarray([0.0, 2.0, 3.0])
    with pytest.raises(AssertionError, match="sign"):
        y * strict.sign(y)
    with pytest.raises(AssertionError, match="boolean mask"):
        _aliases.clip(strict.asarray(3.0), 0.5, 2.5, xp=strict)
    with pytest.raises(AssertionError, match="boolean mask"):
        y[y > 1.0] = 0.0
    assert no_sync_patterns == ["sign", "boolean-mask write", "boolean-mask write"]


def test_generic_relu_grad_and_clipping_use_no_masks(no_sync_patterns):
    y = strict.asarray([[0.0, 0.5], [2.0, float("nan")]])
    dy = strict.asarray([[1.0, -2.0], [3.0, 4.0]])
    g = Ops().relu_grad(strict, dy, y)
    assert xn.to_numpy(g).tolist() == [[0.0, -2.0], [3.0, 0.0]]  # 0 where y is NaN, too
    grads = {"w": strict.asarray([-3.0, 0.25, 2.0, float("nan")])}
    clipped = xn.optimizers.clip_by_value(grads, 1.0)["w"]
    np.testing.assert_array_equal(xn.to_numpy(clipped), [-1.0, 0.25, 1.0, np.nan])
    opt = xn.SGD(lr=1.0, clip_value=1.0, clip_norm=1.0)
    p = {"w": strict.asarray([0.0, 0.0, 0.0])}
    new, _ = opt.update(p, {"w": strict.asarray([-3.0, 0.25, 2.0])}, opt.init(p))
    # clipped to [-1, 0.25, 1], then scaled to norm 1 / (1 + 1e-6) of the clipped norm
    norm = math.sqrt(1.0 + 0.0625 + 1.0)
    np.testing.assert_allclose(xn.to_numpy(new["w"]), [1 / norm, -0.25 / norm, -1 / norm],
                               rtol=1e-5)
    proba = strict.asarray([[1.0, 0.0], [0.5, 0.5]])
    loss = xn.metrics.log_loss(strict.asarray([1, 0]), proba, eps=1e-12)
    assert math.isclose(float(loss), (-math.log(1e-12) - math.log(0.5)) / 2, rel_tol=1e-9)
    assert no_sync_patterns == []


def test_a_whole_generic_fit_uses_no_masks(no_sync_patterns, blobs):
    """ReLU, dropout, clipping, the loss, the optimizer and the guards of one fit."""
    X, y = blobs
    model = xn.MLP([4, 16, 3], dropout=0.2, backend="array_api_strict", seed=0)
    h = model.fit(X, y, epochs=5, batch_size=64, verbose=0,
                  optimizer=xn.Adam(lr=0.02, clip_value=1.0, clip_norm=5.0))
    assert no_sync_patterns == []
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert xn.to_numpy(model.evaluate(X, y)["accuracy"]) > 0.8


def test_ops_for_chooses_once_per_backend(backend):
    b = xn.get_backend(backend)
    expected = {"numpy": NumpyOps, "cupy": CupyOps, "torch": TorchOps}.get(backend, Ops)
    assert type(ops_for(b)) is expected
    assert ops_for(b) is ops_for(xn.get_backend(backend))
    assert ops_of(b.xp.zeros(3, dtype=b.xp.float32, device=b.device)) is ops_for(b)


def test_host_and_device_guards_agree(backend):
    """``all_finite`` and ``finite_flag`` give the same answer on every backend, for the
    generic ops and for the backend's own."""
    b = xn.get_backend(backend)

    def arr(v):
        return b.asarray(np.asarray(v, dtype=np.float32), dtype=b.xp.float32)

    huge = 3e38  # each sum finite in float32, their total is not: totalled in float64
    cases = [
        (arr(1.0), {"a": arr([1.0, 2.0]), "b": arr([3.0])}, True),
        (arr(np.nan), {"a": arr([1.0])}, False),
        (arr(1.0), {"a": arr([1.0, np.inf])}, False),
        (arr(1.0), {"a": arr([np.nan]), "b": arr([1.0])}, False),
        (arr(1.0), {"a": arr([huge]), "b": arr([huge])}, True),
        (arr(1.0), {}, True),
    ]
    for ops in {type(ops_for(b)): ops_for(b), Ops: Ops()}.values():
        for value, grads, ok in cases:
            assert ops.all_finite(value, grads) is ok, (ops, grads)
            flag = ops.finite_flag(value, grads)
            assert flag.shape == () and bool(flag) is ok, (ops, grads)


def test_uniform_draws_the_host_numbers_everywhere_but_cupy(backend):
    b = xn.get_backend(backend)
    u = ops_for(b).uniform(xn.RNG(3), (4, 5), b.xp.float32, b)
    assert tuple(u.shape) == (4, 5) and b.owns(u)
    if backend != "cupy":
        ref = np.random.Generator(np.random.PCG64(3)).random((4, 5), dtype=np.float32)
        np.testing.assert_array_equal(xn.to_numpy(u), ref)


def test_kernels_are_keyed_by_the_exact_class():
    assert class_key(xn.AdamW) == "xpnet.optimizers.AdamW"
    for opt in (xn.SGD(), xn.SGD(momentum=0.9), xn.Adam(), xn.AdamW(), xn.RMSprop(),
                xn.RMSprop(momentum=0.5, centered=True)):
        k = kernels_for(opt)
        assert k is not None and k.ufunc_to and k.loop_to and k.cuda
        # every kernel reads exactly the optimizer's slots (None: not in this setting)
        assert {s for s in k.arrays(opt) if s} == set(opt.slots)
        assert {s for s in k.cuda(opt).arrays if s} == set(opt.slots)

    class MyAdam(xn.Adam):
        pass

    assert kernels_for(MyAdam()) is None
    with pytest.raises(TypeError, match="must be a RuleKernels"):
        register("adam")


def test_registered_kernels_serve_a_new_optimizer(monkeypatch):
    """A rule defined outside the package runs through the ops once registered: update_
    over a store on NumPy takes its ufunc kernel and gives the reference rule's bits."""
    monkeypatch.setenv("XPNET_JIT", "0")

    class HalfStep(xn.Optimizer):
        def _update_one(self, p, g, slots, lr, t):
            return p - (lr * 0.5) * g, {}

    def ufunc_to(p, g, unused, p2, unused2, half_lr, tmp):
        np.multiply(g, half_lr, out=tmp)
        np.subtract(p, tmp, out=p2)

    calls = []
    register(RuleKernels((class_key(HalfStep),), lambda opt: (None,),
                         lambda opt, lr, t, wd: (lr * 0.5,),
                         ufunc_to=lambda *a: calls.append(1) or ufunc_to(*a)))
    opt = HalfStep(lr=0.3)
    rng = np.random.default_rng(0)
    p0 = {"w": rng.normal(size=(50, 7)).astype("float32")}
    g = {"w": rng.normal(size=(50, 7)).astype("float32")}
    ref, _ = opt.update(p0, g, opt.init(p0))
    p = ParamStore(p0, np).params
    state = opt.init(p)
    opt.update_(p, {"w": g["w"].copy()}, state)
    assert calls and state["step"] == 1
    assert p["w"].tobytes() == ref["w"].tobytes()


class _HalfMomentum(xn.Optimizer):
    """``buf = 0.5 buf + g; p -= lr buf``: a rule defined outside the package."""

    slots = ("buf",)

    def _update_one(self, p, g, slots, lr, t):
        buf = 0.5 * slots["buf"] + g
        return p - lr * buf, {"buf": buf}


def _half_momentum_ufunc_to(p, g, buf, p2, buf2, half, lr, tmp):
    np.multiply(buf, half, out=buf2)
    buf2 += g
    np.multiply(buf2, lr, out=tmp)
    np.subtract(p, tmp, out=p2)


def _half_momentum_loop_to(p, g, buf, p2, buf2, half, lr):  # pragma: no cover - numba
    bad = False
    for i in range(p.shape[0]):
        b = buf[i] * half + g[i]
        pn = p[i] - b * lr
        buf2[i] = b
        p2[i] = pn
        bad |= (b - b != 0) | (pn - pn != 0)
    return bad


def _half_momentum_flat(p, gs, s, p2, s2, pieces, h, bad):  # pragma: no cover - numba
    for j in prange(pieces.shape[0]):
        k, lo, hi, go = pieces[j, 0], pieces[j, 1], pieces[j, 2], pieces[j, 3]
        g, r = gs[k], h[k]
        bad[j] = compiled_loop(p[lo:hi], g[lo - go:hi - go], s[0][lo:hi], p2[lo:hi],
                               s2[0][lo:hi], r[0], r[1])


@pytest.mark.parametrize("path", ["jit", "ufunc"])
def test_a_registered_rule_serves_the_store_update(path, monkeypatch):
    """A rule registered from outside with its ufunc kernel, its numba loop and its flat
    kernel runs over a store on either path (the new values into the spare buffers,
    swapped in) and gives the reference bits; its ``None``-free slot list is used as is."""
    from test_optimizers import store_paths

    calls = store_paths("numpy" if path == "ufunc" else path, monkeypatch)
    register(RuleKernels((class_key(_HalfMomentum),), lambda opt: ("buf",),
                         lambda opt, lr, t, wd: (0.5, lr), ufunc_to=_half_momentum_ufunc_to,
                         loop_to=_half_momentum_loop_to, flat=_half_momentum_flat))
    rng = np.random.default_rng(0)
    shapes = {"w": (400, 300), "b": (300,)}  # "w" spans several chunks
    p0 = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    opt = _HalfMomentum(lr=0.1)
    ref, s_ref = dict(p0), opt.init(p0)
    live = ParamStore(p0, np).params
    s_live = opt.init(live)
    for _ in range(3):
        g = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
        ref, s_ref = opt.update(ref, g, s_ref)
        assert opt.update_(live, {k: v.copy() for k, v in g.items()}, s_live,
                           check_finite=True) is True
    assert len(calls) == 3
    for k in shapes:
        assert live[k].tobytes() == ref[k].tobytes(), k
        assert s_live["buf"][k].tobytes() == s_ref["buf"][k].tobytes(), k


@pytest.mark.parametrize("value, jit_off, fused", [
    (None, False, False), ("", False, False), ("0", True, False), (" Off ", True, False),
    ("no", True, False), ("FALSE", True, False), ("1", False, True), ("Yes", False, True),
    ("on", False, True), ("true", False, True), ("2", False, False)])
def test_on_off_flags_keep_their_defaults_and_spellings(monkeypatch, value, jit_off, fused):
    """XPNET_JIT is on unless 0/false/no/off; XPNET_CUPY_FUSED is off unless 1/true/yes/on
    (case and spaces ignored); anything else is the flag's default."""
    from xpnet.ops import _cupy, _numba

    for name in ("XPNET_JIT", "XPNET_CUPY_FUSED"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert (_numba.switched_off(), _cupy.fused_enabled()) == (jit_off, fused)
