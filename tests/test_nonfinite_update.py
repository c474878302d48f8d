"""The guard covers the update: an update that would make a parameter or an optimizer
slot non-finite is never applied, under every policy, on the host and on the device.

On NumPy ``update_(check_finite=True)`` over a model's store writes the update into
the spare buffers (the rule's numba flat kernel or its ufunc kernel), checks each new
value as it is written, and swaps the buffers in only when every value is finite; a
late chunk that overflows after earlier chunks were computed leaves everything as it
was. Other host backends check the reference update before assigning it; the device
guard keeps the old values under one flag. A finite update gives the reference rule's
bits on every path.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from test_optimizers import CASES, store_paths

import xpnet as xn
from xpnet.ops.kernels import RuleKernels, class_key, kernels_for, register
from xpnet.store import ParamStore

SHAPES = {"a": (700, 300), "b": (300,), "c": (5, 3)}  # "a" spans several chunks


def _snapshot(params, state, slots):
    return ({k: v.tobytes() for k, v in params.items()},
            {s: {k: v.tobytes() for k, v in state[s].items()} for s in slots},
            state["step"], dict(state["steps"]))


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


@pytest.mark.parametrize("path", ["jit", "numpy", "reference"])
@pytest.mark.parametrize("where", ["late-chunk", "last-param"])
@pytest.mark.parametrize("name", ["sgd", "nesterov", "adam", "adamw", "rmsprop-centered-momentum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_overflowing_update_changes_nothing(name, dtype, where, path, monkeypatch):
    """The chunks before the one that overflows were already computed; the spare buffers
    leave every parameter, slot and step count bit for bit as they were."""
    calls = store_paths("numpy" if path == "reference" else path, monkeypatch)
    make, _ = CASES[name]
    opt = make()
    if path == "reference":  # a subclass has no kernels: the reference rule, checked
        opt.__class__ = type("Mine", (type(opt),), {})
    opt.lr = xn.schedules.get_schedule(1e30)  # every update is huge
    rng = np.random.default_rng(0)
    params = ParamStore({k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()},
                        np).params
    state = opt.init(params)
    warm = {k: rng.normal(size=s).astype(dtype) * 1e-32 for k, s in SHAPES.items()}
    assert opt.update_(params, warm, state, check_finite=True) is True  # slots now nonzero
    before = _snapshot(params, state, opt.slots)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        applied = opt.update_(params, _overflowing_grads(params, dtype, where), state,
                              check_finite=True)
    assert applied is False
    assert _snapshot(params, state, opt.slots) == before
    assert all(np.isfinite(v).all() for v in params.values())
    assert len(calls) == (0 if path == "reference" else 2)


def test_a_frozen_parameter_is_left_alone_and_restarts_from_exactly_lr():
    """A parameter without a gradient keeps its values, holds no state and no count;
    trained again, its first Adam step is exactly lr (torch.optim's per-parameter step),
    whatever the optimizer's own count (before: 0.5-3x lr with the global count)."""
    rng = np.random.default_rng(0)
    params = ParamStore({k: rng.normal(size=s).astype("float64") for k, s in SHAPES.items()},
                        np).params
    opt = xn.Adam(lr=0.01)
    state = opt.init(params)
    frozen_c = params["c"].copy()
    for _ in range(5):
        grads = {k: rng.normal(size=s) for k, s in SHAPES.items() if k != "c"}
        assert opt.update_(params, grads, state, check_finite=True)
    assert params["c"].tobytes() == frozen_c.tobytes()
    assert sorted(state["exp_avg"]) == ["a", "b"] and state["steps"] == {"a": 5, "b": 5}
    before = params["c"].copy()
    opt.update_(params, {k: rng.normal(size=s) for k, s in SHAPES.items()}, state)
    assert state["steps"] == {"a": 6, "b": 6, "c": 1} and state["step"] == 6
    np.testing.assert_allclose(np.abs(params["c"] - before), 0.01, rtol=1e-6)


def test_a_slot_made_inf_in_place_is_noticed():
    """A callback that writes inf into an optimizer slot: the next update is refused
    (before: the store's "already checked" cache trusted the slot, and training went on)."""
    rng = np.random.default_rng(0)
    params = ParamStore({"w": rng.normal(size=(40, 30)).astype("float32")}, np).params
    opt = xn.Adam(lr=1e-3)
    state = opt.init(params)
    grads = {"w": rng.normal(size=(40, 30)).astype("float32")}
    assert opt.update_(params, grads, state, check_finite=True)
    state["exp_avg_sq"]["w"][3, 4] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert opt.update_(params, grads, state, check_finite=True) is False
    assert state["step"] == 1


@pytest.mark.parametrize("path", ["jit", "numpy"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("name", ["nesterov", "adamw", "rmsprop-centered-momentum"])
def test_a_non_finite_value_in_any_slot_or_piece_is_refused(name, value, path, monkeypatch):
    """Whichever new row (parameter or slot) and whichever piece the value lands in, the
    update is refused and nothing changes."""
    store_paths(path, monkeypatch)
    make, _ = CASES[name]
    rng = np.random.default_rng(1)
    for slot in make().slots:
        for flat_index in (0, 300 * 300 + 7, 700 * 300 - 1):  # first, a middle, last piece
            opt = make()
            params = ParamStore({k: rng.normal(size=s).astype("float32")
                                 for k, s in SHAPES.items()}, np).params
            state = opt.init(params)
            grads = {k: rng.normal(size=s).astype("float32") for k, s in SHAPES.items()}
            assert opt.update_(params, grads, state, check_finite=True)
            state[slot]["a"].reshape(-1)[flat_index] = value
            before = _snapshot(params, state, opt.slots)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                assert opt.update_(params, grads, state, check_finite=True) is False, slot
            assert _snapshot(params, state, opt.slots) == before


@pytest.mark.parametrize("path", ["jit", "numpy"])
@pytest.mark.parametrize("name", ["momentum", "adam", "rmsprop-momentum-wd"])
def test_finite_values_whose_products_overflow_are_applied(name, path, monkeypatch):
    """New parameters and slots near 1e18: finite, though a product of two such float32
    rows overflows; the update is applied."""
    calls = store_paths(path, monkeypatch)
    make, _ = CASES[name]
    opt = make()
    params = ParamStore({k: np.full(s, 1e18, "float32") for k, s in SHAPES.items()},
                        np).params
    state = opt.init(params)
    zeros = {k: np.zeros(s, "float32") for k, s in SHAPES.items()}
    assert opt.update_(params, zeros, state, check_finite=True)
    for slot in opt.slots:
        for v in state[slot].values():
            v[...] = 1e18
    with np.errstate(over="ignore"):
        product = np.dot(params["a"].reshape(-1), state[opt.slots[0]]["a"].reshape(-1))
    assert float(product) == np.inf
    assert opt.update_(params, zeros, state, check_finite=True) is True
    assert state["step"] == 2 and len(calls) == 2
    assert all(np.isfinite(v).all() for v in params.values())


def test_a_clip_grads_override_keeps_its_gradients_checked(monkeypatch):
    """A rule whose ``clip_grads`` is its own may turn finite gradients into NaN: the
    update's own check sees the NaN new values and refuses the step."""
    store_paths("numpy", monkeypatch)

    class NaNClip(xn.SGD):
        def clip_grads(self, grads):
            return {k: g * np.float32("nan") for k, g in grads.items()}

    sgd = kernels_for(xn.SGD())
    register(RuleKernels((class_key(NaNClip),), sgd.arrays, sgd.hyper, ufunc_to=sgd.ufunc_to))
    opt = NaNClip(lr=0.1)
    params = ParamStore({"w": np.ones(5, "float32")}, np).params
    state = opt.init(params)
    assert opt.update_(params, {"w": np.ones(5, "float32")}, state, check_finite=True) is False
    assert params["w"].tolist() == [1.0] * 5 and state["step"] == 0


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
