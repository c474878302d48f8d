"""The guard covers the update: an update that would make a parameter or an optimizer
slot non-finite is never applied, under every policy, on the host and on the device.

On NumPy ``update_(check_finite=True)`` writes the update into a second set of
arrays (the rule's out-of-place numba loop or ufunc kernel), checks each chunk,
and swaps the arrays in only when every value is finite; a late chunk that
overflows after earlier chunks were computed leaves everything as it was. Other
host backends check the pure update before rebinding it; the device guard keeps
the old values under one flag. A finite update gives the reference rule's bits
on every path.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from test_optimizers import CASES

import xpnet as xn
from xpnet.ops import _chunked, _numba
from xpnet.ops.kernels import RuleKernels, class_key, register

SHAPES = {"a": (700, 300), "b": (300,), "c": (5, 3)}  # "a" spans several chunks


def _paths(path, monkeypatch):
    """Force the numba loop, the ufunc kernel, or neither (the pure fallback)."""
    monkeypatch.setenv("XPNET_NUM_THREADS", "3")
    if path == "jit":
        if not _numba.installed():
            pytest.skip("numba is not installed (pip install 'xpnet[jit]')")
        monkeypatch.setenv("XPNET_JIT", "1")
    else:
        monkeypatch.setenv("XPNET_JIT", "0")


def _copy(d):
    return {k: v.copy() for k, v in d.items()}


def _snapshot(params, state, slots):
    return ({k: v.tobytes() for k, v in params.items()},
            {s: {k: v.tobytes() for k, v in state[s].items()} for s in slots}, state["step"])


@pytest.mark.parametrize("path", ["jit", "ufunc"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_guarded_inplace_update_gives_the_reference_bits(name, dtype, path, monkeypatch):
    _paths(path, monkeypatch)
    calls = []

    def spy(real, name):
        def f(*a, **k):
            out = real(*a, **k)
            if out is not None:  # None: the compiled path is off, nothing ran
                calls.append(name)
            return out
        return f

    for mod, fn in ((_numba, "update_to"), (_chunked, "run_to")):
        monkeypatch.setattr(mod, fn, spy(getattr(mod, fn), fn))
    make, _ = CASES[name]
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    opt_ref, opt = make(), make()
    ref, s_ref = _copy(params), opt_ref.init(params)
    live, s, spare = _copy(params), opt.init(params), {}
    for _ in range(4):
        grads = {k: rng.normal(size=sh).astype(dtype) for k, sh in SHAPES.items()}
        ref, s_ref = opt_ref.update(ref, grads, s_ref)
        given, old = _copy(grads), dict(live)
        assert opt.update_(live, given, s, check_finite=True, spare=spare) is True
        # no copy: the gradient arrays now hold the parameters, the old parameter arrays
        # take their place, and the slots swap with a second set kept in spare
        assert all(live[k] is not old[k] and given[k] is old[k] for k in SHAPES)
    assert s["step"] == s_ref["step"] == 4
    assert calls and set(calls) == {"update_to" if path == "jit" else "run_to"}
    for k in SHAPES:
        assert live[k].tobytes() == ref[k].tobytes(), k
        for slot in opt.slots:
            assert s[slot][k].tobytes() == s_ref[slot][k].tobytes(), (slot, k)
            assert s[slot][k] is not spare[slot][k]


def test_a_gradient_that_shares_memory_is_copied_first():
    """The new parameters go over the gradients, so a gradient that is a view, the same
    array for two parameters, or one held elsewhere is copied first; the result is still
    the reference rule's."""
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(6, 4)).astype("float32")
    buf = rng.normal(size=60).astype("float32")
    params = {"a": rng.normal(size=(6, 4)).astype("float32"),
              "b": rng.normal(size=(6, 4)).astype("float32"),
              "c": rng.normal(size=(12,)).astype("float32")}
    opt = xn.Adam(lr=0.1)
    ref, _ = opt.update(params, {"a": shared, "b": shared, "c": buf[5:17]}, opt.init(params))
    live, state = _copy(params), opt.init(params)
    grads = {"a": shared, "b": shared, "c": buf[5:17]}
    before = (shared.copy(), buf.copy())
    assert opt.update_(live, grads, state, check_finite=True) is True
    for k in params:
        assert live[k].tobytes() == ref[k].tobytes(), k
    # an array someone else holds (here the caller; a layer's cache or a gradient hook's
    # buffer, refilled every step) is never written, nor made a parameter
    assert shared.tobytes() == before[0].tobytes() and buf.tobytes() == before[1].tobytes()
    assert all(live[k] is not a for k in live for a in (shared, buf))


def _overflowing_grads(params, dtype, where):
    """Finite gradients whose update overflows only in the last chunk of "a" (after the
    earlier chunks were computed), or only in the last parameter "c"."""
    rng = np.random.default_rng(5)
    grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in params.items()}
    big = np.finfo(dtype).max / 4
    if where == "late-chunk":
        grads["a"].reshape(-1)[-1] = big
    else:
        grads["c"][-1, -1] = -big
    return grads


@pytest.mark.parametrize("path", ["jit", "ufunc", "pure"])
@pytest.mark.parametrize("where", ["late-chunk", "last-param"])
@pytest.mark.parametrize("name", ["sgd", "nesterov", "adam", "adamw", "rmsprop-centered-momentum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_overflowing_update_changes_nothing(name, dtype, where, path, monkeypatch):
    """With the in-place kernels, the chunks before the one that overflows would already
    have been written; double buffering leaves every parameter, slot and the step count
    bit for bit as they were."""
    _paths("ufunc" if path == "pure" else path, monkeypatch)
    make, _ = CASES[name]
    opt = make()
    if path == "pure":  # a subclass has no kernels: the pure update, checked, not rebound
        opt.__class__ = type("Mine", (type(opt),), {})
    opt.lr = xn.schedules.get_schedule(1e30)  # every update is huge
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
    state = opt.init(params)
    warm = {k: rng.normal(size=s).astype(dtype) * 1e-32 for k, s in SHAPES.items()}
    assert opt.update_(params, warm, state, check_finite=True) is True  # slots now nonzero
    before = _snapshot(params, state, opt.slots)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        applied = opt.update_(params, _overflowing_grads(params, dtype, where), state,
                              check_finite=True, spare={})
    assert applied is False
    assert _snapshot(params, state, opt.slots) == before
    assert all(np.isfinite(v).all() for v in params.values())


def test_a_registered_inplace_kernel_is_guarded_through_copies(monkeypatch):
    """A rule registered with only an in-place ufunc kernel is run on copies of each chunk:
    the same bits when finite, nothing changed when not."""
    monkeypatch.setenv("XPNET_JIT", "0")

    class Half(xn.Optimizer):
        def _update_one(self, p, g, slots, lr, t):
            return p - (lr * 0.5) * g, {}

    def ufunc(p, g, half_lr, tmp):
        np.multiply(g, half_lr, out=tmp)
        p -= tmp

    register(RuleKernels((class_key(Half),), lambda opt: (), lambda opt, lr, t, wd: (lr * 0.5,),
                         ufunc=ufunc))
    rng = np.random.default_rng(0)
    p0 = {"w": rng.normal(size=(400, 300)).astype("float32")}
    g = {"w": rng.normal(size=(400, 300)).astype("float32")}
    opt = Half(lr=0.3)
    ref, _ = opt.update(p0, g, opt.init(p0))
    p, state, spare = _copy(p0), opt.init(p0), {}
    assert opt.update_(p, _copy(g), state, check_finite=True, spare=spare) is True
    assert p["w"].tobytes() == ref["w"].tobytes() and spare["params"]["w"] is not p["w"]
    assert "params" in spare  # an in-place kernel computes on copies of the parameters
    before = p["w"].tobytes()
    g["w"][-1, -1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert opt.update_(p, g, state, check_finite=True, spare=spare) is False
    assert p["w"].tobytes() == before and state["step"] == 1


@pytest.mark.parametrize("backend_name", ["array_api_strict", "torch"])
def test_other_host_backends_check_the_pure_update_before_rebinding(backend_name):
    pytest.importorskip(backend_name)
    b = xn.get_backend(backend_name)
    p = {"w": b.asarray(np.array([1.0, 3e38], "float32"), dtype=b.xp.float32)}
    opt = xn.SGD(lr=1e38)
    state = opt.init(p)
    before = p["w"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert opt.update_(p, {"w": b.asarray(np.array([0.0, -10.0], "float32"))}, state,
                           check_finite=True) is False
    assert p["w"] is before and state["step"] == 0
    g = {"w": b.asarray(np.array([1e-38, 0.0], "float32"))}
    ref, _ = opt.update(p, g, state)
    assert opt.update_(p, g, state, check_finite=True) is True
    assert state["step"] == 1
    np.testing.assert_array_equal(xn.to_numpy(p["w"]), xn.to_numpy(ref["w"]))


# -- fit: SGD with lr 1e37 ------------------------------------------------------------------

class _Snapshots(xn.Callback):
    """The parameters after every applied step (display_interval=0: every step)."""

    def __init__(self):
        self.last = None

    def on_train_begin(self, logs=None):
        self.last = {k: xn.to_numpy(v).copy() for k, v in self.model.params.items()}

    def on_batch_end(self, batch, logs=None):
        self.last = {k: xn.to_numpy(v).copy() for k, v in self.model.params.items()}


def _huge_lr_fit(backend, policy, device_path, tmp_path, monkeypatch):
    if device_path:
        monkeypatch.setattr(xn.backends.Backend, "is_host", property(lambda self: False))
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0, 0.0, 1.0], [-2.0, 1.0, 0.0, 0.0], [0.0, -2.0, 1.5, 0.0]])
    y = rng.integers(0, 3, size=200)
    X = (centers[y] + rng.normal(scale=0.7, size=(200, 4))) * 100.0
    m = xn.MLP([4, 16, 3], backend=backend, seed=0)
    snaps = _Snapshots()
    ckpt = xn.ModelCheckpoint(tmp_path / "m.safetensors")
    kwargs = dict(epochs=3, batch_size=50, verbose=0, on_nonfinite=policy, display_interval=0.0,
                  optimizer=xn.SGD(lr=1e37), callbacks=[snaps, ckpt])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if policy == "raise":
            with pytest.raises(xn.NonFiniteLossError) as info:
                m.fit(X, y.astype(np.int64), **kwargs)
            return m, None, snaps, info.value
        return m, m.fit(X, y.astype(np.int64), **kwargs), snaps, None


@pytest.mark.parametrize("device_path", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("policy", ["raise", "stop", "skip"])
def test_sgd_with_lr_1e37_leaves_finite_weights(policy, device_path, backend, tmp_path,
                                                monkeypatch):
    """Before: the first update overflowed the weights to inf under every policy, "raise"
    said they "were left as they were", and ModelCheckpoint wrote a file load refused."""
    m, history, snaps, exc = _huge_lr_fit(backend, policy, device_path, tmp_path, monkeypatch)
    params = {k: xn.to_numpy(v) for k, v in m.params.items()}
    assert all(np.isfinite(v).all() for v in params.values())
    for slot in m.optimizer.slots:
        assert all(np.isfinite(xn.to_numpy(v)).all() for v in m.optimizer.state[slot].values())
    if policy == "raise":
        assert "non-finite" in str(exc) and "were left as they were" in str(exc)
    if policy in ("raise", "stop"):
        # truthful: the parameters are those after the last applied step
        for k, v in params.items():
            np.testing.assert_array_equal(v, snaps.last[k])
    if policy == "stop":
        assert history.stopped_early and len(history.epoch) == 0  # the first update overflows
    if policy == "skip":
        assert len(history.epoch) == 3 and sum(history.history["skipped_steps"]) >= 1
        c = xn.load_checkpoint(tmp_path / "m.safetensors", backend="numpy")
        for k, v in params.items():
            np.testing.assert_array_equal(xn.to_numpy(c.model.params[k]), v)


def test_the_host_guard_names_an_overflowing_update(tmp_path, monkeypatch):
    """Finite loss and gradients whose update overflows: the step is refused as an update."""
    m, _, snaps, exc = _huge_lr_fit("numpy", "raise", False, tmp_path, monkeypatch)
    assert "non-finite update (a parameter or optimizer slot would become inf or NaN) at " \
           "epoch 1, step 1" in str(exc)
    for k, v in m.params.items():
        np.testing.assert_array_equal(v, snaps.last[k])
    assert m.optimizer.state["step"] == 0 and not os.path.exists(tmp_path / "m.safetensors")


def test_a_gradient_hook_that_refills_its_buffers_keeps_them(blobs):
    """A hook that returns the same preallocated arrays every step (as an allreduce into
    fixed buffers does) gets them back untouched: they never become the parameters."""
    X, y = blobs
    m = xn.MLP([4, 16, 3], backend="numpy", seed=0)
    buffers: dict = {}

    def hook(grads, trainer):
        for k, g in grads.items():
            b = buffers.setdefault(k, np.empty_like(g))
            np.copyto(b, g)
        return dict(buffers)

    ref = xn.MLP([4, 16, 3], backend="numpy", seed=0)
    ref.fit(X, y, epochs=2, batch_size=32, verbose=0, seed=1, optimizer=xn.Adam(lr=1e-2))
    opt = xn.Adam(lr=1e-2)
    opt.state = opt.init(m.params)
    X32 = X.astype("float32")
    t = xn.training.Trainer(m, X32, y, optimizer=opt, epochs=2, batch_size=32,
                            grad_hooks=[hook], state=xn.training.TrainState(seed=1))
    t.run()
    for k, v in ref.params.items():
        assert m.params[k].tobytes() == v.tobytes(), k
        assert all(m.params[k] is not b for b in buffers.values())


@pytest.mark.parametrize("grads_finite", [False, True])
def test_gradients_the_caller_checked_are_not_checked_again(grads_finite, monkeypatch):
    """``grads_finite=True`` (what fit's guard passes after checking them) drops the
    gradients from the ufunc update's input checks; the parameters and slots are checked
    on the first call and then known, so a trusted step checks nothing twice."""
    _paths("ufunc", monkeypatch)
    seen: list[int] = []
    real = _chunked._finite
    monkeypatch.setattr(_chunked, "_finite",
                        lambda arrays, zeros: seen.append(len(arrays)) or real(arrays, zeros))
    opt = xn.Adam(lr=1e-3)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s).astype("float32") for k, s in SHAPES.items()}
    state, spare = opt.init(params), {}
    for step in range(2):
        grads = {k: rng.normal(size=s).astype("float32") for k, s in SHAPES.items()}
        seen.clear()
        assert opt.update_(params, grads, state, check_finite=True, spare=spare,
                           grads_finite=grads_finite) is True
        chunks = sum(-(-int(np.prod(s)) // _chunked.CHUNK) for s in SHAPES.values())
        # first call: p, m, v (+ g); then only g, or nothing at all
        per_chunk = (3 if step == 0 else 0) + (0 if grads_finite else 1)
        assert sum(seen) == chunks * per_chunk


def test_a_clip_grads_override_keeps_its_gradients_checked(monkeypatch):
    """A rule whose ``clip_grads`` is its own may turn finite gradients into NaN: the
    update checks them whatever ``grads_finite`` says, and refuses the step."""
    _paths("ufunc", monkeypatch)

    class NaNClip(xn.SGD):
        def clip_grads(self, grads):
            return {k: g * np.float32("nan") for k, g in grads.items()}

    sgd = xn.ops.kernels.kernels_for(xn.SGD())
    register(RuleKernels((class_key(NaNClip),), sgd.arrays, sgd.hyper, ufunc_to=sgd.ufunc_to))
    opt = NaNClip(lr=0.1)
    params = {"w": np.ones(5, "float32")}
    state = opt.init(params)
    assert opt.update_(params, {"w": np.ones(5, "float32")}, state, check_finite=True,
                       spare={}, grads_finite=True) is False
    assert params["w"].tolist() == [1.0] * 5 and state["step"] == 0


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_the_host_gradient_check_is_exact(dtype):
    """fit's host check of the gradients: any inf or NaN anywhere is caught, and finite
    values however large are not mistaken for one (no sum that could overflow)."""
    ops = xn.ops.NumpyOps()
    big = np.finfo(dtype).max
    g = np.full((300, 500), big, dtype)
    assert ops.all_finite(np.float32(1.0), {"a": g, "b": -g[:, ::7]})
    for bad in (np.inf, -np.inf, np.nan):
        for at in (0, 149_999, 70_000):
            h = g.copy()
            h.reshape(-1)[at] = bad
            assert not ops.all_finite(np.float32(1.0), {"a": g, "b": h}), (bad, at)
            in_view = (at % 500) % 3 == 0  # a strided view holds it or not
            assert ops.all_finite(np.float32(1.0), {"b": h[:, ::3]}) is not in_view, (bad, at)
    assert not ops.all_finite(np.float32("nan"), {"a": g})
