"""The flat parameter store and the one guard semantics: the device path, run here on CPU
backends (``XPNET_DEVICE_GUARD=1``), against the host path as its oracle; each defect
found in the step machinery before the store has a test that failed on the old code."""

from __future__ import annotations

import copy
import json
import pickle
import warnings

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

import xpnet as xn

STORE_BACKENDS = ["numpy", "torch"]


def _backend(name):
    if name == "torch":
        pytest.importorskip("torch")
    return name


def _data(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = rng.integers(0, k, n).astype("int64")
    return X, y


def _run(backend, device, monkeypatch, *, policy="raise", freeze=None, bad_rows=None,
         opt=None, epochs=2):
    """Two fits (the second after (un)freezing ``freeze``) with the host or the device
    guard; returns the model, the optimizer and the last History."""
    monkeypatch.setenv("XPNET_DEVICE_GUARD", "1" if device else "0")
    X, y = _data()
    if bad_rows is not None:
        X[bad_rows] = 3e38  # finite inputs whose logits overflow: a non-finite loss
    m = xn.MLP([6, 16, 8, 3], backend=backend, seed=1)
    opt = opt or xn.Adam(lr=1e-2, weight_decay=0.1, decay="weights")
    kw = dict(batch_size=16, verbose=0, optimizer=opt, on_nonfinite=policy, shuffle=False)
    if freeze is not None:
        m.layers[freeze].trainable = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m.fit(X[:32], y[:32], epochs=1, **kw)
        if freeze is not None:
            m.layers[freeze].trainable = True
        h = m.fit(X, y, epochs=epochs, **kw)
    return m, opt, h


def _same(a, oa, b, ob):
    for k in a.params:
        np.testing.assert_array_equal(xn.to_numpy(a.params[k]), xn.to_numpy(b.params[k]),
                                      err_msg=k)
    for s in oa.slots:
        assert sorted(oa.state[s]) == sorted(ob.state[s])
        for k in oa.state[s]:
            np.testing.assert_array_equal(xn.to_numpy(oa.state[s][k]),
                                          xn.to_numpy(ob.state[s][k]), err_msg=(s, k))
    assert oa.state["step"] == ob.state["step"] and oa.state["steps"] == ob.state["steps"]


@pytest.mark.parametrize("backend", STORE_BACKENDS)
@pytest.mark.parametrize("freeze", [None, 0])
def test_the_device_path_gives_the_host_paths_bits(backend, freeze, monkeypatch):
    """Same seed, same data: the device guard ends with the host guard's parameters,
    slots and counts; with a layer frozen for the first fit too (before: ``KeyError``
    on the device path, which read slots for every parameter)."""
    _backend(backend)
    host = _run(backend, False, monkeypatch, freeze=freeze)
    dev = _run(backend, True, monkeypatch, freeze=freeze)
    assert isinstance(dev[0], xn.Sequential)
    _same(host[0], host[1], dev[0], dev[1])
    assert host[1].state["steps"]["0.W"] == (12 if freeze == 0 else 14)


@pytest.mark.parametrize("backend", STORE_BACKENDS)
def test_a_skipped_step_changes_no_count_on_either_path(backend, monkeypatch):
    """The last batch of the epoch overflows and is skipped: both guards end with the
    same parameters, slots and counts (before: the device guard counted the skipped step,
    so the next epoch's Adam steps differed from the host's)."""
    _backend(backend)
    bad = slice(80, 96)  # the sixth and last batch of 16
    host = _run(backend, False, monkeypatch, policy="skip", bad_rows=bad)
    dev = _run(backend, True, monkeypatch, policy="skip", bad_rows=bad)
    assert host[2].history["skipped_steps"] == dev[2].history["skipped_steps"] == [1.0, 1.0]
    assert host[1].state["step"] == 2 + 5 * 2
    _same(host[0], host[1], dev[0], dev[1])


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
def test_raise_leaves_the_state_of_the_last_kept_step(device, monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE_GUARD", "1" if device else "0")
    X, y = _data()
    X[48:64] = 3e38  # the fourth batch
    m = xn.MLP([6, 16, 3], backend="numpy", seed=1)
    opt = xn.Adam(lr=1e-2)
    with warnings.catch_warnings(), pytest.raises(xn.NonFiniteLossError, match="step 4"):
        warnings.simplefilter("ignore", RuntimeWarning)
        m.fit(X, y, epochs=1, batch_size=16, optimizer=opt, verbose=0, shuffle=False,
              display_interval=0.0, callbacks=[xn.Callback()])
    assert opt.state["step"] == 3 and set(opt.state["steps"].values()) == {3}


def test_a_grad_hooks_dict_keeps_its_gradients(monkeypatch):
    """What a hook returned is not rewritten by the update (before: after the guarded
    NumPy update the dict held the old parameters)."""
    X, y = _data()
    m = xn.MLP([6, 16, 3], backend="numpy", seed=0)
    seen = []

    def hook(grads, trainer):
        seen.append((grads, {k: g.copy() for k, g in grads.items()}))
        return grads

    opt = xn.Adam(lr=1e-2)
    opt.state = opt.init(m.params)
    xn.training.Trainer(m, X, y, optimizer=opt, epochs=1, batch_size=32, grad_hooks=[hook],
                        state=xn.training.TrainState(seed=0)).run()
    assert len(seen) == 3
    for given, copied in seen:
        for k in given:
            assert given[k].tobytes() == copied[k].tobytes(), k
            assert not np.shares_memory(given[k], m.store.data)


def test_the_generic_finite_check_does_not_overflow():
    """100 float32 values of 1e37 are finite (before: summed in float32, inf on torch)."""
    torch = pytest.importorskip("torch")
    from xpnet.ops import Ops

    g = {"w": torch.full((100,), 1e37, dtype=torch.float32)}
    assert Ops().all_finite(torch.tensor(1.0), g) is True
    assert bool(Ops().finite_flag(torch.tensor(1.0), g)) is True
    g["w"][7] = float("inf")
    assert Ops().all_finite(torch.tensor(1.0), g) is False
    assert bool(Ops().finite_flag(torch.tensor(1.0), g)) is False


@pytest.mark.parametrize("backend", STORE_BACKENDS)
def test_unfreezing_a_layer_gives_a_first_adam_step_of_lr(backend):
    """torch.optim's per-parameter step: the unfrozen layer's first step is lr in every
    coordinate (Adam's normalised step), however many steps the others made."""
    _backend(backend)
    X, y = _data()
    m = xn.MLP([6, 16, 3], backend=backend, seed=0)
    opt = xn.Adam(lr=1e-3)
    m.layers[0].trainable = False
    m.fit(X, y, epochs=3, batch_size=16, optimizer=opt, verbose=0)
    assert "0.W" not in opt.state["steps"] and opt.state["step"] == 18
    m.layers[0].trainable = True
    before = xn.to_numpy(m.params["0.W"]).copy()
    m.fit(X[:16], y[:16], epochs=1, batch_size=16, optimizer=opt, verbose=0)
    step = np.abs(xn.to_numpy(m.params["0.W"]) - before)
    moved = step[step > 0]
    np.testing.assert_allclose(moved, 1e-3, rtol=1e-3)
    assert opt.state["steps"]["0.W"] == 1 and opt.state["steps"]["2.W"] == 19


def test_a_store_assignment_is_refused_by_library_first_with_the_library_named():
    # the store and the immutable backends' dicts share one check: the kind comes first
    # and names the library, a non-array is refused as such (not as "shape ()")
    torch = pytest.importorskip("torch")
    m = xn.MLP([3, 2], backend="torch", seed=0)
    before = xn.to_numpy(m.params["0.b"]).tolist()
    with pytest.raises(TypeError, match=r"^parameter '0.b' is a NumPy ndarray, the model's "
                                        r"arrays are torch Tensor$"):
        m.params["0.b"] = np.zeros(3, "float32")
    with pytest.raises(TypeError, match=r"^parameter '0.b' is a list, the model's arrays "
                                        r"are torch Tensor$"):
        m.params = {**m.params, "0.b": [1.0, 1.0]}
    assert xn.to_numpy(m.params["0.b"]).tolist() == before
    m.params["0.b"] = torch.nn.Parameter(torch.ones(2))  # any torch array is copied in
    assert xn.to_numpy(m.params["0.b"]).tolist() == [1.0, 1.0]
    # its values only: the store stays out of autograd (before, the whole buffer required
    # grad and every later step went on recording a graph)
    assert not m.store.data.requires_grad and m.params["0.b"].grad_fn is None
    m.fit(np.ones((8, 3), "float32"), np.zeros(8, "int64"), epochs=1, verbose=0)
    assert not any(v.requires_grad for v in m.params.values())


def test_params_are_views_of_one_buffer_and_assignments_are_checked():
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    params = m.params
    assert all(np.shares_memory(v, m.store.data) for v in params.values())
    with pytest.raises(TypeError, match="dtype float64, the model's is float32"):
        m.params = {k: np.asarray(v, dtype="float64") for k, v in params.items()}
    with pytest.raises(ValueError, match=r"shape \(8,\), expected \(3,\)"):
        m.params["2.b"] = np.zeros(8, "float32")
    with pytest.raises(ValueError, match="parameter names differ"):
        m.params = {"0.W": params["0.W"]}
    m.params["2.b"] = np.ones(3, "float32")
    assert m.params is params and params["2.b"].tolist() == [1.0, 1.0, 1.0]
    X, y = _data(d=4)
    m.fit(X, y, epochs=1, verbose=0)
    assert m.params is params  # the same dict after training, views of the live buffer
    assert all(np.shares_memory(v, m.store.data) for v in params.values())


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copied_model_gets_its_own_store(how):
    X, y = _data(d=4)
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    twin = pickle.loads(pickle.dumps(m)) if how == "pickle" else copy.deepcopy(m)
    assert twin.store is not m.store and twin.params is twin.store.params
    for k in m.params:
        assert twin.params[k].tobytes() == m.params[k].tobytes()
    twin.fit(X, y, epochs=1, verbose=0)  # trains its own buffer, not the original's
    assert any(twin.params[k].tobytes() != m.params[k].tobytes() for k in m.params)


def test_checkpoints_keep_the_counts_and_older_files_load(tmp_path):
    X, y = _data(d=4)
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    opt = xn.Adam(lr=1e-2)
    m.layers[0].trainable = False
    m.fit(X, y, epochs=1, batch_size=32, optimizer=opt, verbose=0)
    m.layers[0].trainable = True
    m.fit(X, y, epochs=1, batch_size=32, optimizer=opt, verbose=0)
    xn.save(m, tmp_path / "m.safetensors")
    c = xn.load_checkpoint(tmp_path / "m.safetensors", backend="numpy")
    assert c.optimizer.state["steps"] == {"0.W": 3, "0.b": 3, "2.W": 6, "2.b": 6}
    assert c.optimizer.state["step"] == 6
    # a file without per-parameter counts (earlier versions): each at the saved step
    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        meta = dict(f.metadata())
    om = json.loads(meta["optimizer"])
    del om["steps"]
    meta["optimizer"] = json.dumps(om)
    save_file(load_file(str(tmp_path / "m.safetensors")), str(tmp_path / "old.safetensors"),
              metadata=meta)
    old = xn.load_checkpoint(tmp_path / "old.safetensors", backend="numpy")
    assert old.optimizer.state["steps"] == dict.fromkeys(m.params, 6)
    # a resumed fit adopts the loaded state into the new model's store
    old.model.fit(X, y, epochs=1, batch_size=32, optimizer=old.optimizer, verbose=0)
    assert old.optimizer.state["exp_avg"] is old.model.store.slot_dicts["exp_avg"]


def test_deprecated_update_arguments_warn_and_still_work():
    m = xn.MLP([4, 3], backend="numpy", seed=0)
    opt = xn.SGD(lr=0.1)
    state = opt.init(m.params)
    _, grads = m.loss_and_grads(*_data(d=4))
    with pytest.warns(DeprecationWarning, match="grads_finite, spare no longer do anything"):
        assert opt.update_(m.params, grads, state, check_finite=True, spare={},
                           grads_finite=True)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        opt.update_(m.params, grads, state, sparse=True)


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adam", "adam-l2", "adamw",
                                  "rmsprop-centered-momentum", "adamw-mask"])
def test_torch_updates_the_store_in_one_checked_pass(name):
    """On PyTorch (CPU) the NumPy kernels run over NumPy views of the store: the same
    bits as ``update`` per parameter, the spare buffers swapped in, a decay mask (one
    weight decay per segment) included."""
    torch = pytest.importorskip("torch")
    from test_optimizers import CASES

    from xpnet.store import ParamStore

    rng = np.random.default_rng(0)
    shapes = {"a": (70, 30), "b": (30,), "c": (5, 3)}
    host = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    params = {k: torch.from_numpy(v.copy()) for k, v in host.items()}
    store = ParamStore(params, xn.get_backend("torch").xp)
    opt_ref, opt = CASES[name][0](), CASES[name][0]()
    ref, s_ref = dict(params), opt_ref.init(params)
    state = opt.init(store.params)
    for _ in range(3):
        grads = {k: torch.from_numpy(rng.normal(size=s).astype("float32")) for k, s in
                 shapes.items()}
        ref, s_ref = opt_ref.update(ref, grads, s_ref)
        before = store.data
        assert opt.update_(store.params, grads, state, check_finite=True)
        assert store.data is not before  # written into the spare buffers, swapped
    for k in shapes:
        assert store.params[k].numpy().tobytes() == ref[k].numpy().tobytes(), k
        for s in opt.slots:
            assert state[s][k].numpy().tobytes() == s_ref[s][k].numpy().tobytes(), (s, k)


def test_an_optimizer_reused_on_another_model_starts_fresh(caplog):
    """The seed-sweep pattern: one optimizer object, a fresh model per seed. Each fit
    starts it fresh (before: the second model continued the first one's moments and
    step), says so once, and the same model keeps continuing its own state."""
    X, y = _data(d=4)
    opt = xn.Adam(lr=1e-2)
    a = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    a.fit(X, y, epochs=2, batch_size=32, optimizer=opt, verbose=0)
    assert opt.state["step"] == 6
    b = xn.MLP([4, 8, 3], backend="numpy", seed=1)
    with caplog.at_level("WARNING", logger="xpnet"):
        b.fit(X, y, epochs=1, batch_size=32, optimizer=opt, verbose=0)
    assert opt.state["step"] == 3
    assert [r.getMessage() for r in caplog.records] == [
        "fit: Adam was last used to train another model; starting it fresh (step 0, zero "
        "moments) for this one"]
    caplog.clear()
    b.fit(X, y, epochs=1, batch_size=32, optimizer=opt, verbose=0)  # its own: continues
    assert opt.state["step"] == 6 and not caplog.records
    twin = pickle.loads(pickle.dumps(b))  # the reference to the model is not pickled
    assert twin.optimizer.state["step"] == 6


def test_a_decay_mask_naming_no_parameter_is_refused():
    X, y = _data(d=4)
    m = xn.MLP([4, 3], backend="numpy", seed=0)
    with pytest.raises(ValueError, match=r"decay mask names \['0.w'\], which are not "
                                         r"parameters of this model"):
        m.fit(X, y, epochs=1, optimizer=xn.AdamW(decay=["0.w"]), verbose=0)
    assert m.optimizer is None  # refused before anything changed


def test_torch_tensors_numpy_cannot_view_take_the_generic_update():
    """The NumPy kernels see a tensor's memory only when it is a plain CPU tensor: one
    that needs autograd is left to torch's own operations (same rule, same values)."""
    torch = pytest.importorskip("torch")
    from xpnet.ops import TorchOps

    opt = xn.Adam(lr=0.1)
    params = {"w": torch.ones(3, requires_grad=True)}
    grads = {"w": torch.full((3,), 0.5)}
    state = opt.init({"w": torch.ones(3)})
    assert TorchOps().update(opt, params, grads, state, 0.1, {"w": 1}, None) is None
    with torch.no_grad():
        new, _ = opt.update(params, grads, state)
    np.testing.assert_allclose(new["w"].detach().numpy(), np.full(3, 0.9), rtol=1e-6)


@pytest.mark.parametrize("backend", STORE_BACKENDS)
def test_an_unchecked_update_that_overflows_is_applied_and_counted(backend):
    """Without check_finite an update is applied whatever its values: it returns True and
    the step counts advance (the store path returned False and left them behind)."""
    be = xn.get_backend(_backend(backend))
    m = xn.MLP([2, 2], backend=be, seed=0)
    opt = xn.SGD(lr=1e38)
    state = opt.init(m.params)
    grads = {k: be.asarray(np.full(tuple(v.shape), -3e38, dtype="float32"))
             for k, v in m.params.items()}
    assert opt.update_(m.params, grads, state) is True
    assert state["step"] == 1 and set(state["steps"].values()) == {1}
    assert np.isinf(xn.to_numpy(m.params["0.W"])).all()
