"""Layers that hold layers (xpnet/blocks.py): Block and Residual, their nested parameter
keys, gradients, training on every backend, freezing, decay masks and parameter groups
that address nested keys, save/load by config and ONNX export."""

import importlib.util
import json
import logging

import numpy as np
import pytest
from test_research_round3 import KeepDimsBias

import xpnet as xn
from xpnet.training import _jit

HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))


def _data(n=96, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = ((X[:, 0] > 0).astype("int64") + (X[:, 1] > 0.5)).astype("int64")
    return X, y


def _model(backend, *, dtype="float32", seed=0, drop=0.0, norm=False):
    """``[Dense(8), ReLU, Residual(Block([Dense(8), ReLU|Dropout, Dense(8)])), Dense(3)]``."""
    inner = [xn.Dense(8), xn.Dropout(drop) if drop else xn.ReLU(), xn.Dense(8)]
    if norm:
        inner.insert(0, xn.LayerNorm())
    return xn.Sequential([xn.Dense(8), xn.ReLU(), xn.Residual(xn.Block(inner)), xn.Dense(3)],
                         in_features=4, backend=backend, dtype=dtype, seed=seed)


def _host(m):
    return {k: xn.to_numpy(v).copy() for k, v in m.params.items()}


# -- keys ------------------------------------------------------------------------------------
def test_parameter_keys_nest_and_plain_layers_keep_flat_keys(backend):
    m = _model(backend)
    assert list(m.params) == ["0.W", "0.b", "2.0.W", "2.0.b", "2.2.W", "2.2.b", "3.W", "3.b"]
    assert {k: tuple(v.shape) for k, v in m.params.items()}["2.2.W"] == (8, 8)
    assert sorted(m.layer_params(2)) == ["0.W", "0.b", "2.W", "2.b"]
    # a residual adds no level: its keys are its block's
    r = xn.Sequential([xn.Residual(xn.Dense(4))], in_features=4, backend=backend)
    assert list(r.params) == ["0.W", "0.b"]
    # blocks nest: the block at 1 holds a block at 0
    deep = xn.Sequential([xn.Dense(4), xn.Block([xn.Block([xn.Dense(2)]), xn.ReLU()])],
                         in_features=3, backend=backend)
    assert list(deep.params) == ["0.W", "0.b", "1.0.0.W", "1.0.0.b"]
    assert m.num_params == 4 * 8 + 8 + 2 * (8 * 8 + 8) + 8 * 3 + 3


def test_layer_params_and_buffers_take_an_index_as_the_layers_list_does():
    m = _model("numpy")
    assert list(m.layer_params(-1)) == list(m.layer_params(3)) == ["W", "b"]
    assert m.layer_params(-3) == m.layer_params(1) == {} == m.layer_buffers(-1)
    for f in (m.layer_params, m.layer_buffers):
        with pytest.raises(IndexError, match="layer index 4 is out of range for 4 layers"):
            f(4)
        with pytest.raises(TypeError, match="layer index must be an int"):
            f(1.0)


def test_summary_lists_held_layers_under_their_addresses():
    lines = _model("numpy").summary().splitlines()
    assert lines[3].split() == ["2", "Residual(Block)", "8", "144"]
    assert lines[4].split()[:2] == ["2.0", "Dense(units=8,"] and lines[4].split()[-1] == "72"
    assert lines[5].split() == ["2.1", "ReLU()", "8", "0"]
    assert lines[-1].startswith(f"total params: {_model('numpy').num_params:,}")


def test_residual_adds_its_input(backend):
    m = xn.Sequential([xn.Residual(xn.Block([xn.Dense(3), xn.Tanh()]))], in_features=3,
                      loss="mse", backend=backend, dtype="float64")
    X = np.random.default_rng(1).normal(size=(5, 3))
    W, b = xn.to_numpy(m.params["0.0.W"]), xn.to_numpy(m.params["0.0.b"])
    np.testing.assert_allclose(xn.to_numpy(m.forward(X)), X + np.tanh(X @ W + b),
                               rtol=1e-12, atol=1e-12)


# -- gradients -------------------------------------------------------------------------------
def test_layer_gradients_match_finite_differences(backend):
    x = np.random.default_rng(0).normal(size=(6, 3))
    layer = xn.Residual(xn.Block([xn.LayerNorm(), xn.Dense(5), xn.Tanh(), xn.Dense(3)]))
    report = xn.testing.check_gradients(layer, x, backend=backend)
    assert sorted(report) == ["0.beta", "0.gamma", "1.W", "1.b", "3.W", "3.b", "x"]
    assert max(report.values()) < 1e-5


def test_model_gradients_match_finite_differences(backend):
    X, y = _data(n=12)
    m = _model(backend, dtype="float64", norm=True)
    # biases off zero: a row that the first ReLU zeroes would sit on the next ReLU's kink
    rng = np.random.default_rng(3)
    m.set_params({k: xn.to_numpy(v) + (rng.normal(size=v.shape) if v.ndim == 1 else 0.0)
                  for k, v in m.params.items()})
    report = xn.testing.check_gradients(m, X.astype("float64"), y)
    assert {"2.0.gamma", "2.1.W", "2.3.b", "0.W", "3.b"} <= set(report)
    assert max(report.values()) < 1e-5


def test_input_gradient_passes_the_skip_connection(backend):
    """d loss / d X through y = x + block(x) is the skip path plus the block's."""
    m = xn.Sequential([xn.Residual(xn.Dense(3))], in_features=3, loss="mse",
                      backend=backend, dtype="float64")
    X = np.random.default_rng(2).normal(size=(4, 3))
    y = np.zeros((4, 3))
    *_, dX = m.loss_and_grads(X, y, input_grad=True)
    W, b = xn.to_numpy(m.params["0.W"]), xn.to_numpy(m.params["0.b"])
    out = X + X @ W + b
    dout = 2 * out / out.size  # mse: the mean of squares
    np.testing.assert_allclose(xn.to_numpy(dX), dout + dout @ W.T, rtol=1e-10, atol=1e-12)


# -- training --------------------------------------------------------------------------------
def test_fit_reduces_the_loss_on_every_backend(backend, caplog):
    X, y = _data()
    m = _model(backend, norm=True)
    with caplog.at_level(logging.DEBUG, logger="xpnet"):
        h = m.fit(X, y, epochs=30, batch_size=32, optimizer=xn.Adam(lr=0.02), verbose=0)
    loss = h.history["loss"]
    assert loss[-1] < 0.5 * loss[0], loss
    assert m.evaluate(X, y)["accuracy"] > 0.85
    # on JAX the compiled step traces the blocks (no fall-back to the eager step)
    assert "compiled JAX step is not used" not in caplog.text


@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_compiled_jax_step_matches_the_eager_step(monkeypatch, drop):
    pytest.importorskip("jax")
    import jax.numpy as jnp

    X, y = _data()
    runs = []
    for compiled in (True, False):
        monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
        ran = []
        real = _jit.JitStep.step

        def counting(self, k, perm, ran=ran, real=real):
            ran.append(1)
            return real(self, k, perm)

        monkeypatch.setattr(_jit.JitStep, "step", counting)
        m = _model("jax", drop=drop)
        h = m.fit(jnp.asarray(X), jnp.asarray(y), epochs=3, batch_size=32, verbose=0,
                  optimizer=xn.Adam(lr=0.01))
        monkeypatch.setattr(_jit.JitStep, "step", real)
        runs.append((m, h, len(ran)))
    (jm, jh, jran), (em, eh, eran) = runs
    assert jran == 9 and eran == 0  # 3 epochs of 3 batches, all compiled
    np.testing.assert_allclose(jh.history["loss"], eh.history["loss"], rtol=2e-5)
    for k in jm.params:
        np.testing.assert_allclose(np.asarray(jm.params[k]), np.asarray(em.params[k]),
                                   rtol=2e-5, atol=2e-5, err_msg=k)


def test_dropout_inside_a_block_gets_the_generator(backend):
    m = _model(backend, drop=0.5)
    assert m.layers[2].stochastic and m.layers[2].block.stochastic
    assert not _model(backend).layers[2].stochastic
    X, y = _data(n=16)
    a = xn.to_numpy(m.forward(X, train=True))
    b = xn.to_numpy(m.forward(X, train=True))
    assert not np.array_equal(a, b)  # a fresh mask per pass
    np.testing.assert_array_equal(xn.to_numpy(m.forward(X)), xn.to_numpy(m.forward(X)))
    la, _ = m.loss_and_grads(X, y, rng=xn.RNG(5))
    lb, _ = m.loss_and_grads(X, y, rng=xn.RNG(5))
    assert float(la) == float(lb)
    with pytest.raises(ValueError, match="needs rng="):
        m.layers[2].forward(m.layer_params(2), m.xp.asarray(np.ones((2, 8), "float32")),
                            train=True)


# -- freezing, decay masks, parameter groups -------------------------------------------------
def test_freeze_addresses_a_nested_layer(backend):
    X, y = _data()
    m = _model(backend)
    assert m.freeze("2.0") is m
    assert m.trainable_keys == ["0.W", "0.b", "2.2.W", "2.2.b", "3.W", "3.b"]
    _, grads = m.loss_and_grads(X, y)
    assert sorted(grads) == sorted(m.trainable_keys)
    before = _host(m)
    opt = xn.Adam(lr=0.05)
    m.fit(X, y, epochs=2, batch_size=32, optimizer=opt, verbose=0)
    after = _host(m)
    for k in m.params:
        same = before[k].tobytes() == after[k].tobytes()
        assert same == k.startswith("2.0."), k
    assert "2.0.W" not in opt.state["exp_avg"] and "2.2.W" in opt.state["exp_avg"]
    # unfreezing the residual unfreezes everything it holds
    m.unfreeze(2)
    assert m.trainable_keys == list(m.params)
    m.freeze([0, "2.2"])
    assert m.trainable_keys == ["2.0.W", "2.0.b", "3.W", "3.b"]


def test_freeze_a_whole_block_and_lower_layers_are_not_run(backend):
    """A frozen layer at the bottom of a block: the gradients above are those of the
    unfrozen model, bit for bit."""
    X, y = _data(n=16)
    m = xn.Sequential([xn.Block([xn.Dense(6), xn.ReLU(), xn.Dense(5)]), xn.Dense(3)],
                      in_features=4, backend=backend, dtype="float64")
    _, full = m.loss_and_grads(X, y)
    _, part = m.freeze("0.0").loss_and_grads(X, y)
    assert sorted(part) == ["0.2.W", "0.2.b", "1.W", "1.b"]
    for k in part:
        assert xn.to_numpy(part[k]).tobytes() == xn.to_numpy(full[k]).tobytes(), k
    _, head = m.freeze(0).loss_and_grads(X, y)
    assert sorted(head) == ["1.W", "1.b"]


def test_freeze_refuses_bad_addresses():
    m = _model("numpy")
    with pytest.raises(IndexError, match=r"'2.5'.*Block holds no layer '5'.*\['0', '1', '2'\]"):
        m.freeze("2.5")
    with pytest.raises(IndexError, match=r"'1.0'.*ReLU holds no layer"):
        m.freeze("1.0")
    with pytest.raises(ValueError, match="indices joined by '.'"):
        m.freeze("head")
    with pytest.raises(IndexError, match="out of range"):
        m.freeze("9.0")
    assert m.trainable_keys == list(m.params)  # nothing changed


@pytest.mark.parametrize("mask", [["2.0.W"], ["2.0."]], ids=["key", "prefix"])
def test_decay_mask_names_nested_keys(backend, mask):
    """One full-batch SGD step: the masked nested key is decayed (exactly lr * wd * W
    more), every other parameter moves bit for bit as without decay (the prefix also
    names the bias "2.0.b", which starts at zero: its decay adds nothing)."""
    X, y = _data()
    lr, wd = 0.1, 0.5
    runs = {}
    for name, opt in [("masked", xn.SGD(lr=lr, weight_decay=wd, decay=mask)),
                      ("plain", xn.SGD(lr=lr))]:
        m = _model(backend, dtype="float64")
        start = _host(m)
        m.fit(X, y, epochs=1, batch_size=None, optimizer=opt, verbose=0)
        runs[name] = _host(m)
    for k in start:
        if k == "2.0.W":
            np.testing.assert_allclose(runs["masked"][k] - runs["plain"][k],
                                       -lr * wd * start[k], rtol=1e-9, atol=1e-12)
        else:
            assert runs["masked"][k].tobytes() == runs["plain"][k].tobytes(), k
    with pytest.raises(ValueError, match="2.0.w"):  # a mask naming no parameter
        _model(backend).fit(X, y, epochs=1, verbose=0,
                            optimizer=xn.SGD(weight_decay=0.1, decay=["2.0.w"]))
    with pytest.raises(ValueError, match=r"\['2.7.'\], which are not parameters"):
        _model(backend).fit(X, y, epochs=1, verbose=0,
                            optimizer=xn.SGD(weight_decay=0.1, decay=["2.7."]))


def test_decay_mask_takes_a_nested_layer_prefix():
    opt = xn.AdamW(weight_decay=0.25, decay=["2.0.", "3.W"])
    m = _model("numpy")
    decayed = [k for k, v in m.params.items() if opt.weight_decay_for(k, v) == 0.25]
    assert decayed == ["2.0.W", "2.0.b", "3.W"]
    assert all(opt.weight_decay_for(k, v) == 0.0 for k, v in m.params.items()
               if k not in decayed)
    X, y = _data()
    m.fit(X, y, epochs=1, verbose=0, optimizer=opt)  # accepted: the prefix names keys


@pytest.mark.parametrize("prefix", ["2.", "2.0."])
def test_parameter_groups_address_nested_prefixes(backend, prefix):
    X, y = _data()
    m = _model(backend)
    before = _host(m)
    opt = xn.SGD(lr=0.1, groups=[{"params": [prefix], "lr_scale": 0.0}])
    m.fit(X, y, epochs=1, batch_size=None, optimizer=opt, verbose=0)
    after = _host(m)
    for k in m.params:
        assert (before[k].tobytes() == after[k].tobytes()) == k.startswith(prefix), k
    with pytest.raises(ValueError, match=r"\['2.9.'\], which are not parameters"):
        _model(backend).fit(X, y, epochs=1, verbose=0,
                            optimizer=xn.SGD(groups=[{"params": ["2.9."], "lr_scale": 0.0}]))


# -- save / load -----------------------------------------------------------------------------
def test_save_load_round_trip_bit_for_bit(backend, tmp_path):
    X, y = _data()
    m = _model(backend, drop=0.2, norm=True)
    m.freeze("2.1")
    opt = xn.AdamW(lr=0.01, weight_decay=0.01, groups=[{"params": ["2."], "lr_scale": 0.5}])
    m.fit(X, y, epochs=2, batch_size=32, optimizer=opt, verbose=0)
    path = xn.save(m, tmp_path / "res.safetensors", optimizer=opt)
    ck = xn.load_checkpoint(path, backend=backend)
    back = ck.model
    assert back.get_config() == m.get_config()
    assert back.trainable_keys == m.trainable_keys
    assert not back.layers[2].block.layers[1].trainable
    for k, v in m.params.items():
        assert xn.to_numpy(back.params[k]).tobytes() == xn.to_numpy(v).tobytes(), k
    np.testing.assert_array_equal(xn.to_numpy(back.predict_proba(X)),
                                  xn.to_numpy(m.predict_proba(X)))
    state = ck.optimizer.state
    assert sorted(state["exp_avg"]) == sorted(opt.state["exp_avg"]) == sorted(back.trainable_keys)
    for k in back.trainable_keys:
        assert xn.to_numpy(state["exp_avg"][k]).tobytes() == \
            xn.to_numpy(opt.state["exp_avg"][k]).tobytes(), k


def test_config_round_trip_rebuilds_the_same_model():
    m = _model("numpy", drop=0.1, norm=True)
    m.freeze("2.0")
    twin = xn.Sequential.from_config(json.loads(json.dumps(m.get_config())), backend="numpy")
    assert repr(twin.layers) == repr(m.layers)
    assert twin.trainable_keys == m.trainable_keys
    for k, v in m.params.items():  # same seed: the same initial parameters
        assert twin.params[k].tobytes() == v.tobytes()
    layer = xn.layers.layer_from_config(xn.blocks.layer_config(m.layers[2]))
    assert isinstance(layer, xn.Residual) and isinstance(layer.block, xn.Block)


def test_an_unregistered_layer_in_a_block_is_named_before_saving(tmp_path):
    # a name no other test registers (the registry is global to the process)
    class Doubled(xn.Layer):
        def forward(self, params, x, *, train=False):
            return 2 * x, None

        def backward(self, params, cache, dy):
            return 2 * dy, {}

    m = xn.Sequential([xn.Dense(4), xn.Residual(xn.Block([xn.Dense(4), Doubled()]))],
                      in_features=3, backend="numpy")
    with pytest.raises(ValueError, match=r"layer 1.1 \(Doubled\) cannot be rebuilt.*"
                                         r"register_layer\(Doubled\)"):
        xn.save(m, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_block_of_many_layers_loads_with_its_optimizer(tmp_path):
    """The loader's bound on tensors per file counts a block's layers one by one: 600
    Dense layers in one block, with Adam's two slots each, are 3,606 tensors (the bound
    was 1,024 per top-level layer, plus 1,024: 3,072 here)."""
    X, y = _data(n=8)
    m = xn.Sequential([xn.Block([xn.Dense(2) for _ in range(600)]), xn.Dense(3)],
                      in_features=4, backend="numpy")
    opt = xn.Adam(lr=1e-3)
    m.fit(X, y, epochs=1, verbose=0, optimizer=opt)
    ck = xn.load_checkpoint(xn.save(m, tmp_path / "deep.safetensors", optimizer=opt))
    assert len(ck.model.params) == 1202 and len(ck.optimizer.state["exp_avg"]) == 1202
    assert ck.model.params["0.599.W"].tobytes() == m.params["0.599.W"].tobytes()


def _rewrite(path, tmp_path, change):
    """A copy of the checkpoint at ``path`` whose model config ``change`` edited."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    cfg = json.loads(meta["model"])
    change(cfg)
    out = tmp_path / "edited.safetensors"
    save_file(load_file(path), out, metadata=dict(meta, model=json.dumps(cfg)))
    return out


def _inner(cfg):
    """The block config inside the residual at index 2."""
    return cfg["layers"][2]["config"]["block"]["config"]


def _set(cfg, *path_value):
    *path, value = path_value
    node = _inner(cfg)
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _nest(depth):
    c = {"class": "ReLU", "config": {}}
    for _ in range(depth):
        c = {"class": "Block", "config": {"layers": [c]}}
    return c


@pytest.mark.parametrize("edit, match", [
    (lambda c: _set(c, "layers", 0, "config", "bias", "no"), r"'bias' must be bool"),
    (lambda c: _set(c, "layers", 0, "config", "units", 8.0), r"'units' must be int"),
    (lambda c: _set(c, "layers", 1, "class", "os.system"), r"unknown layer class 'os.system'"),
    (lambda c: _set(c, "layers", 1, "class", "Sequential"), r"unknown layer class"),
    (lambda c: _set(c, "layers", 0, "trainable", "yes"), r"'trainable' must be true or false"),
    (lambda c: _set(c, "layers", 0, "config", {"units": 8, "evil": 1}), r"bad config"),
    (lambda c: _set(c, "layers", 2, "config", "units", 9), r"maps 8 features to 9"),
    (lambda c: _set(c, "layers", [1, 2]), r"Block layers\[0\] is int"),
    (lambda c: _set(c, "layers", []), r"non-empty list of layers"),
    (lambda c: c["layers"].__setitem__(1, _nest(40)), r"nest more than 32 levels"),
], ids=["bool", "int", "foreign-class", "model-class", "trainable", "unknown-arg",
        "residual-width", "not-a-config", "empty", "too-deep"])
def test_load_refuses_bad_nested_configs(tmp_path, edit, match):
    path = xn.save(_model("numpy"), tmp_path / "m.safetensors")
    bad = _rewrite(path, tmp_path, edit)
    with pytest.raises(xn.CheckpointError, match=match):
        xn.load(bad, backend="numpy")


def test_building_refuses_a_residual_that_changes_the_width():
    with pytest.raises(ValueError, match=r"Residual: its block maps 4 features to 5.*"
                                         r"Dense\(4\)"):
        xn.Sequential([xn.Residual(xn.Block([xn.Dense(8), xn.ReLU(), xn.Dense(5)]))],
                      in_features=4, backend="numpy")
    with pytest.raises(ValueError, match="non-empty list"):
        xn.Block([])
    with pytest.raises(TypeError, match=r"Block layers\[1\] is str"):
        xn.Block([xn.Dense(2), "relu"])
    with pytest.raises(ValueError, match=r"Residual block: unknown layer class 'Nope'"):
        xn.Residual({"class": "Nope", "config": {}})


def test_a_block_owns_copies_of_its_layers():
    dense = xn.Dense(3)
    block = xn.Block([dense, dense])
    block.layers[0].trainable = False
    assert dense.trainable and block.layers[1].trainable
    a = xn.Sequential([block], in_features=3, backend="numpy")
    b = xn.Sequential([block], in_features=3, backend="numpy")
    a.freeze("0.1")
    assert b.trainable_keys == ["0.1.W", "0.1.b"]


def test_a_wrong_gradient_of_a_held_layer_is_named_by_its_address(backend):
    X, y = _data(n=16)
    m = xn.Sequential([xn.Dense(4), xn.Residual(xn.Block([xn.Dense(4), KeepDimsBias()])),
                       xn.Dense(3)], in_features=4, backend=backend)
    with pytest.raises(ValueError, match=r"layer 1.1 \(KeepDimsBias\): the gradient of "
                                         r"'b' has shape \(1, 4\), the parameter has "
                                         r"shape \(4,\)"):
        m.fit(X, y, epochs=1, verbose=0)


# -- a held layer without backward -----------------------------------------------------------
class _Swish(xn.Layer):
    """x * sigmoid(beta * x), beta learned: forward only (autodiff on torch and JAX)."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"beta": backend.xp.ones((in_features,), dtype=dtype, device=backend.device)}

    def forward(self, params, x, *, train=False):
        xp = xn.backends.backend_of(x).xp
        return x / (1.0 + xp.exp(-params["beta"] * x)), None


def test_a_held_layer_without_backward_runs_its_block_under_autodiff(backend):
    X, y = _data(n=16)
    m = xn.Sequential([xn.Dense(6), xn.Residual(xn.Block([xn.Dense(6), _Swish()])),
                       xn.Dense(3)], in_features=4, backend=backend, dtype="float64")
    if backend not in ("torch", "jax"):
        with pytest.raises(NotImplementedError, match=r"layer 1.1 \(_Swish\) has no "
                                                      r"backward\(\)"):
            m.loss_and_grads(X, y)
        return
    report = xn.testing.check_gradients(m, X.astype("float64"), y)
    assert {"1.0.W", "1.1.beta", "0.W"} <= set(report) and max(report.values()) < 1e-5
    _, grads = m.freeze("1.0").loss_and_grads(X, y)  # a frozen layer of that block
    assert sorted(grads) == ["0.W", "0.b", "1.1.beta", "2.W", "2.b"]


# -- buffers ---------------------------------------------------------------------------------
def test_batchnorm_in_a_block_keeps_nested_buffers(backend, tmp_path):
    X, y = _data()
    block = xn.Block([xn.BatchNorm(momentum=0.5), xn.Dense(8), xn.ReLU(), xn.Dense(8)])
    m = xn.Sequential([xn.Dense(8), xn.ReLU(), xn.Residual(block), xn.Dense(3)],
                      in_features=4, backend=backend)
    assert list(m.buffers) == ["2.0.running_mean", "2.0.running_var"]
    assert "2.0.gamma" in m.params and "2.0.running_mean" not in m.params
    h = m.fit(X, y, epochs=10, batch_size=32, optimizer=xn.Adam(lr=0.02), verbose=0)
    assert h.history["loss"][-1] < 0.6 * h.history["loss"][0]
    # the running mean follows the block's input (the first ReLU's output), not zero
    hidden = xn.to_numpy(m.forward(X, return_intermediates=True)[1])
    np.testing.assert_allclose(xn.to_numpy(m.buffers["2.0.running_mean"]),
                               hidden.mean(axis=0), rtol=0, atol=0.25)
    assert float(np.abs(xn.to_numpy(m.buffers["2.0.running_mean"])).max()) > 0.05
    back = xn.load(xn.save(m, tmp_path / "bn.safetensors"), backend=backend)
    for k, v in m.buffers.items():
        assert xn.to_numpy(back.buffers[k]).tobytes() == xn.to_numpy(v).tobytes(), k
    np.testing.assert_array_equal(xn.to_numpy(back.predict_proba(X)),
                                  xn.to_numpy(m.predict_proba(X)))
    if HAVE_ONNX:
        import onnxruntime as ort

        path = xn.export_onnx(m, tmp_path / "bn.onnx", outputs="proba")
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"input": X})[0]
        np.testing.assert_allclose(got, xn.to_numpy(m.predict_proba(X)), rtol=1e-5,
                                   atol=1e-6)


def test_layer_gradients_with_a_batchnorm_inside(backend):
    x = np.random.default_rng(4).normal(size=(6, 3))
    layer = xn.Residual(xn.Block([xn.BatchNorm(), xn.Dense(3), xn.Tanh()]))
    report = xn.testing.check_gradients(layer, x, backend=backend)
    assert sorted(report) == ["0.beta", "0.gamma", "1.W", "1.b", "x"]


# -- ONNX ------------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_ONNX, reason="ndonnx, onnx and onnxruntime are not installed "
                                          "(pip install ndonnx onnx onnxruntime)")
def test_onnx_export_agrees_with_predict(backend, tmp_path):
    import onnxruntime as ort

    X, y = _data()
    m = _model(backend, drop=0.2, norm=True)
    m.fit(X, y, epochs=3, batch_size=32, optimizer=xn.Adam(lr=0.01), verbose=0)
    path = xn.export_onnx(m, tmp_path / "res.onnx", outputs=["proba", "labels"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    proba, labels = session.run(None, {"input": X})
    np.testing.assert_allclose(proba, xn.to_numpy(m.predict_proba(X)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, xn.to_numpy(m.predict(X)))


def test_check_gradients_of_a_block_leaves_out_its_frozen_layer():
    """A block whose first layer is frozen gives no gradient for it: check_gradients checks
    the trained keys (before: a GradientCheckError naming the frozen layer's keys missing)."""
    block = xn.Block([xn.Dense(4), xn.ReLU(), xn.Dense(3)])
    block.layers[0].trainable = False
    x = np.random.default_rng(0).normal(size=(5, 3))
    errors = xn.testing.check_gradients(block, x, backend="numpy")
    assert sorted(errors) == ["2.W", "2.b", "x"] and max(errors.values()) < 1e-6
