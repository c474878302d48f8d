"""Research API, third round: wrong results refused with a clear message, and the features
researchers reach for (each test fails on the code before its fix)."""

import numpy as np
import pytest

import xpnet as xn


def _data(n=32, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    return X, (X[:, 0] > 0).astype("int64") % k


class KeepDimsBias(xn.Layer):
    """A bias layer whose gradient keeps the summed dimension: shape (1, d), not (d,)."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"b": backend.xp.zeros((in_features,), dtype=dtype, device=backend.device)}

    def forward(self, params, x, *, train=False):
        return x + params["b"], None

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        return dy, {"b": xp.sum(dy, axis=0, keepdims=True)}


class TypoBias(KeepDimsBias):
    """A gradient key typo: 'B' for 'b'."""

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        return dy, {"B": xp.sum(dy, axis=0)}


# -- item 1: gradient shapes and keys ------------------------------------------------------
def test_fit_refuses_a_gradient_of_the_wrong_shape(backend):
    X, y = _data()
    m = xn.Sequential([xn.Dense(4), KeepDimsBias(), xn.Dense(2)], in_features=3,
                      backend=backend)
    before = {k: xn.to_numpy(v).copy() for k, v in m.params.items()}
    with pytest.raises(ValueError, match=r"layer 1 \(KeepDimsBias\).*'b'.*\(1, 4\).*\(4,\)"):
        m.fit(X, y, epochs=1, verbose=0)
    assert {k: tuple(v.shape) for k, v in m.params.items()}["1.b"] == (4,)
    for k, v in m.params.items():
        np.testing.assert_array_equal(xn.to_numpy(v), before[k])


def test_fit_refuses_a_gradient_key_typo(backend):
    X, y = _data()
    m = xn.Sequential([xn.Dense(4), TypoBias(), xn.Dense(2)], in_features=3, backend=backend)
    with pytest.raises(ValueError, match=r"layer 1 \(TypoBias\).*missing \['b'\].*"
                                         r"unexpected \['B'\]"):
        m.fit(X, y, epochs=1, verbose=0)


def test_loss_and_grads_checks_gradient_shapes(backend):
    X, y = _data()
    m = xn.Sequential([xn.Dense(4), KeepDimsBias(), xn.Dense(2)], in_features=3,
                      backend=backend)
    with pytest.raises(ValueError, match="has shape"):
        m.loss_and_grads(X, y)
    # a loop that opts out of the check (fit after its first step) still runs
    _, grads = m.loss_and_grads(X, y, check_grads=False)
    assert tuple(grads["1.b"].shape) == (1, 4)


def test_check_gradients_refuses_a_broadcasting_gradient(backend):
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(xn.testing.GradientCheckError,
                       match=r"KeepDimsBias.*'b'.*\(1, 3\).*\(3,\)"):
        xn.testing.check_gradients(KeepDimsBias(), x, backend=backend)


def test_check_gradients_refuses_a_key_typo(backend):
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(xn.testing.GradientCheckError, match=r"TypoBias.*missing \['b'\].*"
                                                             r"unexpected \['B'\]"):
        xn.testing.check_gradients(TypoBias(), x, backend=backend)


class ColumnMSE(xn.MeanSquaredError):
    """A custom loss whose per_sample keeps a column: shape (n, 1)."""

    name = "column_mse"

    def per_sample(self, output, target):
        xp = xn.backends.backend_of(output).xp
        d = output - target
        return xp.sum(d * d, axis=1, keepdims=True) / output.shape[1]


def test_per_sample_of_shape_n_by_1_is_refused(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    m = xn.MLP([3, 1], loss=ColumnMSE(), backend=backend)
    with pytest.raises(ValueError, match=r"ColumnMSE.per_sample returned shape \(32, 1\)"):
        m.loss_and_grads(X, y, sample_weight=np.ones(32, "float32"))


# -- item 3: save refuses what load could not load ----------------------------------------
def test_save_refuses_nan_parameters_before_writing(backend, tmp_path):
    m = xn.MLP([3, 2], backend=backend)
    xp = m.xp
    m.params = {**m.params, "0.W": xp.full((3, 2), float("nan"), dtype=xp.float32)}
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"cannot save: parameter '0.W' contains NaN"):
        xn.save(m, path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_save_refuses_parameters_the_architecture_does_not_describe(tmp_path):
    # values written into the params dict past its item check (dict.__setitem__, as code
    # holding a plain dict of the parameters would)
    m = xn.MLP([3, 2], backend="array_api_strict")
    xp = m.xp
    dict.__setitem__(m.params, "0.b", xp.zeros((1, 2), dtype=xp.float32))
    with pytest.raises(ValueError, match=r"parameter '0.b' has shape \(1, 2\), the "
                                         r"architecture needs \(2,\)"):
        xn.save(m, tmp_path / "a.safetensors")
    m = xn.MLP([3, 2], backend="array_api_strict")
    dict.__setitem__(m.params, "0.b", xp.zeros((2,), dtype=xp.float64))
    with pytest.raises(ValueError, match=r"parameter '0.b' has dtype float64, the model's "
                                         r"is float32"):
        xn.save(m, tmp_path / "b.safetensors")
    assert not list(tmp_path.iterdir())
    # a custom layer that does not declare its shapes is compared with a built twin
    m = xn.Sequential([xn.Dense(4), _RegisteredBias()], in_features=3, backend="numpy")
    xn.save(m, tmp_path / "c.safetensors")
    assert xn.load(tmp_path / "c.safetensors", backend="numpy").params.keys() == m.params.keys()


@xn.register_layer
class _RegisteredBias(KeepDimsBias):
    pass


# -- item 5: a layer that holds a layer is saved -------------------------------------------
@xn.register_layer
class HeldResidual(xn.Layer):
    """``x + block(x)``: holds another layer, stored in its config as that layer's config."""

    def __init__(self, block):
        self.block = block if isinstance(block, xn.Layer) else \
            xn.layers.layer_from_config(block)

    def init(self, in_features, rng, *, backend, dtype):
        return self.block.init(in_features, rng, backend=backend, dtype=dtype)

    def forward(self, params, x, *, train=False):
        y, cache = self.block.forward(params, x, train=train)
        return x + y, cache

    def backward(self, params, cache, dy):
        dx, grads = self.block.backward(params, cache, dy)
        return dy + dx, grads

    def get_config(self):
        return {"block": {"class": type(self.block).__name__,
                          "config": self.block.get_config()}}


@xn.register_layer
class LyingResidual(HeldResidual):
    """Reports a block of 5 units whatever it holds."""

    def get_config(self):
        return {"block": {"class": "Dense", "config": {"units": 5, "init": "he_normal",
                                                       "bias": True}}}


def test_a_layer_holding_a_layer_is_saved_and_loaded(backend, tmp_path):
    X, y = _data()
    m = xn.Sequential([xn.Dense(4), HeldResidual(xn.Dense(4)), xn.ReLU(), xn.Dense(2)],
                      in_features=3, backend=backend)
    m.fit(X, y, epochs=2, verbose=0)
    path = xn.save(m, tmp_path / "res.safetensors")
    back = xn.load(path, backend=backend)
    assert type(back.layers[1].block) is xn.Dense and back.layers[1].block.units == 4
    xn.testing.assert_close(back.predict_proba(X), m.predict_proba(X))


def test_a_held_layer_that_differs_is_named_by_its_path(tmp_path):
    m = xn.Sequential([xn.Dense(5), LyingResidual(xn.Dense(5, bias=False))], in_features=3,
                      backend="numpy")
    with pytest.raises(ValueError, match=r"block\.bias=True, this object block\.bias=False"):
        xn.save(m, tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())


@xn.register_layer
class RawHeld(HeldResidual):
    def get_config(self):
        return {"block": self.block}


def test_a_held_layer_in_a_config_as_an_object_gets_advice(tmp_path):
    m = xn.Sequential([RawHeld(xn.Dense(3))], in_features=3, backend="numpy")
    with pytest.raises(ValueError, match=r"JSON-serialisable.*a held layer goes in as "
                                         r"\{'class'.*layer_from_config"):
        xn.save(m, tmp_path / "x.safetensors")


# -- item 6: freezing is per model -----------------------------------------------------------
def test_two_models_from_one_layer_list_do_not_share_freezing(backend):
    layers = [xn.Dense(4), xn.ReLU(), xn.Dense(2)]
    a = xn.Sequential(layers, in_features=3, backend=backend, seed=0)
    b = xn.Sequential(layers, in_features=3, backend=backend, seed=1)
    a.freeze(0)
    assert a.trainable_keys == ["2.W", "2.b"]
    assert b.trainable_keys == ["0.W", "0.b", "2.W", "2.b"]
    assert layers[0].trainable  # the list given is left alone
    X, y = _data()
    before = xn.to_numpy(b.params["0.W"]).copy()
    b.fit(X, y, epochs=1, verbose=0)
    assert not np.array_equal(xn.to_numpy(b.params["0.W"]), before)
    # a layer frozen before the build stays frozen in the model built from it
    layers[0].trainable = False
    assert xn.Sequential(layers, in_features=3, backend=backend).trainable_keys == ["2.W",
                                                                                     "2.b"]


# -- item 7: a reused EarlyStopping / ModelCheckpoint chooses again at each fit -------------
def test_reused_early_stopping_monitors_what_this_fit_offers():
    X, y = _data(64)
    m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    stop = xn.EarlyStopping(patience=50, restore_best_weights=False)  # val_loss
    m.fit(X, y, epochs=2, callbacks=[stop], verbose=0)  # no validation: watches loss
    assert stop.monitor == "loss"
    h = m.fit(X, y, epochs=3, callbacks=[stop], validation_split=0.25, verbose=0)
    assert stop.monitor == "val_loss"
    assert stop.best == min(h.history["val_loss"])


def test_reused_model_checkpoint_monitors_and_starts_a_new_best(tmp_path):
    X, y = _data(64)
    m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    ckpt = xn.ModelCheckpoint(tmp_path / "best-{epoch}.safetensors", save_best_only=True)
    m.fit(X, y, epochs=3, callbacks=[ckpt], optimizer=xn.Adam(lr=0.05), verbose=0)
    assert ckpt.monitor == "loss"
    first = len(ckpt.saved)
    # new data, a harder problem: its losses are all above the first fit's best
    Xn, yn = _data(64, seed=1)
    yn = np.random.default_rng(2).integers(0, 2, size=64)
    h = m.fit(Xn, yn, epochs=2, callbacks=[ckpt], validation_split=0.25, verbose=0)
    assert ckpt.monitor == "val_loss"
    assert ckpt.best == min(h.history["val_loss"])
    assert len(ckpt.saved) > first


# -- item 8: check_gradients ---------------------------------------------------------------
class WithRunningMean(xn.Layer):
    """A layer that keeps a statistic its backward gives no gradient for."""

    def init(self, in_features, rng, *, backend, dtype):
        xp = backend.xp
        return {"s": xp.ones((in_features,), dtype=dtype, device=backend.device),
                "running_mean": xp.zeros((in_features,), dtype=dtype, device=backend.device)}

    def forward(self, params, x, *, train=False):
        return x * params["s"], x

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        return dy * params["s"], {"s": xp.sum(dy * cache, axis=0)}


def test_check_gradients_names_a_parameter_without_gradient(backend):
    x = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(xn.testing.GradientCheckError,
                       match=r"WithRunningMean: backward returned gradients for \['s'\].*"
                             r"missing \['running_mean'\]"):
        xn.testing.check_gradients(WithRunningMean(), x, backend=backend)


class RecordsBackend(xn.Layer):
    seen: list = []

    def forward(self, params, x, *, train=False):
        RecordsBackend.seen.append(xn.backends.backend_of(x).name)
        return x, None

    def backward(self, params, cache, dy):
        return dy, {}


def test_check_gradients_of_a_model_runs_on_the_backend_asked(backend):
    m = xn.Sequential([xn.Dense(3), RecordsBackend(), xn.Tanh(), xn.Dense(2)], in_features=4,
                      backend="numpy", dtype="float64")
    X, y = np.random.default_rng(0).normal(size=(6, 4)), np.array([0, 1, 0, 1, 1, 0])
    before = {k: xn.to_numpy(v).copy() for k, v in m.params.items()}
    RecordsBackend.seen = []
    report = xn.testing.check_gradients(m, X, y, backend=backend)
    assert set(RecordsBackend.seen) == {backend}
    assert sorted(report) == ["0.W", "0.b", "3.W", "3.b"]
    assert m.backend.name == "numpy"  # the model itself is left where it is
    for k, v in m.params.items():
        np.testing.assert_array_equal(xn.to_numpy(v), before[k])


class HalfPerSample(xn.MeanSquaredError):
    """per_sample half of what value_and_grad's mean says."""

    name = "half_per_sample_mse"

    def per_sample(self, output, target):
        return 0.5 * super().per_sample(output, target)


def test_check_gradients_compares_per_sample_with_value_and_grad(backend):
    rng = np.random.default_rng(0)
    out, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    report = xn.testing.check_gradients(xn.MeanSquaredError(), out, y, backend=backend)
    assert sorted(report) == ["output", "per_sample"] and report["per_sample"] < 1e-12
    with pytest.raises(xn.testing.GradientCheckError,
                       match=r"HalfPerSample: the mean of per_sample.*value_and_grad"):
        xn.testing.check_gradients(HalfPerSample(), out, y, backend=backend)
    with pytest.raises(xn.testing.GradientCheckError,
                       match=r"ColumnMSE: per_sample returned shape \(6, 1\), not \(6,\)"):
        xn.testing.check_gradients(ColumnMSE(), out[:, :1], y[:, :1], backend=backend)


# -- item 9: seed=None -----------------------------------------------------------------------
def test_seed_none_draws_a_recorded_seed_that_repeats_the_run(backend, tmp_path):
    X, y = _data(64)
    a = xn.MLP([3, 8, 2], dropout=0.2, backend=backend, seed=None)
    b = xn.MLP([3, 8, 2], dropout=0.2, backend=backend, seed=None)
    assert isinstance(a.seed, int) and a.seed != b.seed  # fresh entropy each time
    assert a.get_config()["seed"] == a.seed
    h = a.fit(X, y, epochs=2, batch_size=16, verbose=0, seed=None)
    run_seed = h.params["seed"]
    assert isinstance(run_seed, int) and h.params["model_seed"] == a.seed
    path = xn.save(a, tmp_path / "a.safetensors",
                   training={"seed": run_seed, "epoch": 2, "step": 0})
    ck = xn.load_checkpoint(path, backend=backend)
    assert ck.model.seed == a.seed and ck.training["seed"] == run_seed
    # the recorded seeds repeat the run exactly
    again = xn.MLP([3, 8, 2], dropout=0.2, backend=backend, seed=ck.model.seed)
    h2 = again.fit(X, y, epochs=2, batch_size=16, verbose=0, seed=ck.training["seed"])
    assert h2.history["loss"] == h.history["loss"]
    for k, v in a.params.items():
        xn.testing.assert_close(again.params[k], v, rtol=0)


def test_rng_none_records_the_seed_it_drew():
    rng = xn.RNG(None)
    assert isinstance(rng.seed, int)
    assert xn.RNG(rng.seed).spawn_seed() == rng.spawn_seed()


def test_the_default_seed_stays_zero():
    assert xn.MLP([3, 2], backend="numpy").seed == 0
    assert xn.Sequential([xn.Dense(2)], in_features=3, backend="numpy").seed == 0


# -- item 10: messages -----------------------------------------------------------------------
def _other(backend):
    """A backend other than ``backend`` (both installed in the test environment)."""
    return "torch" if backend != "torch" else "numpy"


def test_opt_update_with_gradients_of_another_backend_is_named(backend):
    pytest.importorskip("torch")
    m = xn.MLP([3, 4, 2], backend=backend)
    other = xn.get_backend(_other(backend))
    grads = {k: other.asarray(np.array(xn.to_numpy(v))) for k, v in m.params.items()}
    opt = xn.Adam()
    state = opt.init(m.params)
    with pytest.raises(TypeError, match=rf"grads\['0.W'\] is a {other.name} array, the "
                                        rf"parameter a {backend} one"):
        opt.update(m.params, grads, state)


def test_loss_of_arrays_of_two_backends_is_named(backend):
    pytest.importorskip("torch")
    other = xn.get_backend(_other(backend))
    be = xn.get_backend(backend)
    out = be.asarray(np.zeros((4, 2), "float32"))
    y = other.asarray(np.zeros(4, "int64"))
    with pytest.raises(TypeError, match=rf"the output is a {backend} array, the target a "
                                        rf"{other.name} one"):
        xn.MLP([3, 2], backend=backend).loss(out, y)


def test_forward_under_jax_jit_says_what_to_do():
    jax = pytest.importorskip("jax")
    m = xn.MLP([3, 4, 2], backend="jax")
    with pytest.raises(TypeError, match=r"cannot run inside jax.jit.*tracer"):
        jax.jit(lambda x: m.forward(x))(jax.numpy.ones((2, 3), dtype=jax.numpy.float32))


def test_integer_labels_in_a_column_are_told_to_ravel(backend):
    X, y = _data()
    m = xn.MLP([3, 2], backend=backend)
    with pytest.raises(ValueError, match=r"y has shape \(32, 1\).*shape \(32,\).*y\[:, 0\]"):
        m.fit(X, y.reshape(-1, 1), epochs=1, verbose=0)


def test_integer_torch_inputs_get_torch_advice():
    torch = pytest.importorskip("torch")
    m = xn.MLP([3, 2], backend="torch")
    with pytest.raises(TypeError, match=r"X has dtype int64.*X.to\(torch.float32\)"):
        m.predict(torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"y has dtype float32.*y.to\(torch.int64\)"):
        m.fit(torch.zeros(4, 3), torch.zeros(4), epochs=1, verbose=0)


class Widen(xn.Layer):
    """Outputs 5 features but does not say so (no out_features)."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"W": rng.normal((in_features, 5), 0.1, backend, dtype)}

    def forward(self, params, x, *, train=False):
        return x @ params["W"], x

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        return dy @ xp.matrix_transpose(params["W"]), {"W": xp.matrix_transpose(cache) @ dy}


def test_a_layer_without_out_features_is_named(backend):
    X, y = _data()
    m = xn.Sequential([Widen(), xn.Dense(2)], in_features=3, backend=backend)
    with pytest.raises(ValueError, match=r"layer 0 \(Widen\) returned 5 features, but its "
                                         r"out_features\(3\) says 3.*override out_features"):
        m.fit(X, y, epochs=1, verbose=0)


def test_dense_takes_numpy_integers_as_mlp_does():
    assert xn.Dense(np.int64(3)).units == 3 and type(xn.Dense(np.int64(3)).units) is int
    assert xn.Dense(np.int64(3)).get_config() == {"units": 3, "init": "he_normal",
                                                  "bias": True}
    with pytest.raises(ValueError):
        xn.Dense(True)


def test_optimizer_hyper_parameters_are_checked_when_assigned():
    opt = xn.AdamW()
    for name, bad in [("weight_decay", float("nan")), ("weight_decay", -1.0),
                      ("eps", 0.0), ("clip_norm", float("inf"))]:
        with pytest.raises(ValueError, match=name):
            setattr(opt, name, bad)
    with pytest.raises(ValueError, match="momentum"):
        xn.SGD(lr=0.1).momentum = 2.0
    with pytest.raises(ValueError, match=r"betas"):
        opt.betas = (0.9, float("nan"))
    opt.weight_decay = 0.5
    assert opt.weight_decay == 0.5
    opt.clip_norm = None
    assert opt.clip_norm is None


def test_to_numpy_of_a_torch_bfloat16_tensor():
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.5, -2.0, 3.0e38], dtype=torch.bfloat16)
    out = xn.to_numpy(t)
    assert out.astype("float32").tolist() == t.float().tolist()
    assert out.dtype.name in ("bfloat16", "float32")


# -- features: ReduceLROnPlateau -------------------------------------------------------------
def test_reduce_lr_on_plateau_reduces_the_rate_the_steps_use(backend, tmp_path):
    X, y = _data(64)
    m = xn.MLP([3, 8, 2], backend=backend, seed=0)
    plateau = xn.ReduceLROnPlateau("loss", factor=0.5, patience=2, min_delta=10.0,
                                   cooldown=1, min_lr=0.02)
    opt = xn.SGD(lr=0.1)
    h = m.fit(X, y, epochs=8, optimizer=opt, callbacks=[plateau], verbose=0)
    # Keras' rule: epoch 0 improves; 1-2 wait, reduced at 2; 3 cools down (the wait
    # counts again from there); reduced at 4 (0.025) and 6 (0.0125, held at min_lr)
    assert plateau.reductions == [(2, 0.05), (4, 0.025), (6, 0.02)]
    assert h.history["lr"] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02]
    assert m.optimizer.learning_rate(0) == 0.02
    # saved with the reduced rate
    back = xn.load_checkpoint(xn.save(m, tmp_path / "m.safetensors"), backend=backend)
    assert back.optimizer.learning_rate(0) == 0.02


def test_reduce_lr_on_plateau_refuses_a_schedule():
    X, y = _data()
    m = xn.MLP([3, 2], backend="numpy")
    with pytest.raises(ValueError, match="ReduceLROnPlateau changes a constant learning rate"):
        m.fit(X, y, epochs=1, verbose=0, optimizer=xn.SGD(lr=xn.CosineDecay(0.1, 10)),
              callbacks=[xn.ReduceLROnPlateau()])
    with pytest.raises(ValueError, match="factor"):
        xn.ReduceLROnPlateau(factor=1.0)


# -- features: LayerNorm ---------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_gradients(backend, affine):
    x = np.random.default_rng(0).normal(size=(6, 5)) * 3 + 1
    params = None
    if affine:
        rng = np.random.default_rng(1)
        params = {"gamma": rng.normal(size=5), "beta": rng.normal(size=5)}
    report = xn.testing.check_gradients(xn.LayerNorm(affine=affine), x, params=params,
                                        backend=backend)
    # check_gradients itself holds every entry to rtol=1e-5 (+ atol=1e-8); the largest
    # relative error comes from entries near zero (each row of dx sums to zero)
    assert sorted(report) == (["beta", "gamma", "x"] if affine else ["x"])
    assert max(report.values()) < 1e-4


def test_layernorm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, g, b = rng.normal(size=(4, 6)), rng.normal(size=6), rng.normal(size=6)
    y, _ = xn.LayerNorm(1e-3).forward({"gamma": g, "beta": b}, x)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (6,), torch.tensor(g),
                                         torch.tensor(b), eps=1e-3)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.slow_on_jax
def test_layernorm_trains_saves_and_loads(backend, blobs, tmp_path):
    X, y = blobs
    X = X.astype("float32") * 50.0  # unscaled features: the normalization copes
    m = xn.Sequential([xn.Dense(16), xn.LayerNorm(), xn.ReLU(), xn.Dense(3)], in_features=4,
                      backend=backend, seed=0)
    h = m.fit(X, y, epochs=10, batch_size=32, optimizer=xn.Adam(lr=1e-2), verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    assert sorted(m.params) == ["0.W", "0.b", "1.beta", "1.gamma", "3.W", "3.b"]
    back = xn.load(xn.save(m, tmp_path / "ln.safetensors"), backend=backend)
    assert back.layers[1].get_config() == {"eps": 1e-5, "affine": True}
    xn.testing.assert_close(back.predict_proba(X), m.predict_proba(X))


def test_layernorm_exports_to_onnx(tmp_path):
    pytest.importorskip("ndonnx")
    ort = pytest.importorskip("onnxruntime")
    X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32") * 10
    m = xn.Sequential([xn.Dense(8), xn.LayerNorm(), xn.Tanh(), xn.Dense(3)], in_features=4,
                      backend="numpy", seed=0)
    path = xn.export_onnx(m, tmp_path / "ln.onnx", outputs=["logits"])
    sess = ort.InferenceSession(str(path))
    (got,) = sess.run(None, {sess.get_inputs()[0].name: X})
    np.testing.assert_allclose(got, xn.to_numpy(m.forward(X)), rtol=1e-5, atol=1e-5)


# -- features: input gradients ---------------------------------------------------------------
def _numeric_input_grad(m, X, y, eps=1e-6):
    g = np.zeros_like(X)
    for idx in np.ndindex(*X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += eps
        Xm[idx] -= eps
        g[idx] = (m.evaluate(Xp, y)["loss"] - m.evaluate(Xm, y)["loss"]) / (2 * eps)
    return g


@pytest.mark.parametrize("frozen", [None, [0], "all"])
def test_input_gradient_matches_finite_differences(backend, frozen):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)), np.array([0, 1, 2, 1, 0])
    m = xn.Sequential([xn.Dense(6), xn.LayerNorm(), xn.Tanh(), xn.Dense(3)], in_features=4,
                      backend=backend, dtype="float64", seed=0)
    if frozen == "all":
        m.freeze()
    elif frozen:
        m.freeze(frozen)
    loss, grads, dX = m.loss_and_grads(X, y, train=False, input_grad=True)
    assert sorted(grads) == sorted(m.trainable_keys)
    assert xn.backends.backend_of(dX).name == backend and tuple(dX.shape) == (5, 4)
    np.testing.assert_allclose(xn.to_numpy(dX), _numeric_input_grad(m, X, y), rtol=1e-6,
                               atol=1e-9)
    # the other results are those of the call without it
    loss2, grads2 = m.loss_and_grads(X, y, train=False)
    assert float(loss) == float(loss2)
    for k in grads2:
        xn.testing.assert_close(grads[k], grads2[k], rtol=0)
    # with return_output, the input gradient comes last
    assert len(m.loss_and_grads(X, y, return_output=True, input_grad=True)) == 4


def test_input_gradient_makes_an_adversarial_example(backend, blobs):
    X, y = blobs
    X = X.astype("float32")
    m = xn.MLP([4, 16, 3], backend=backend, seed=0)
    m.fit(X, y, epochs=5, optimizer=xn.Adam(lr=1e-2), verbose=0)
    _, _, dX = m.loss_and_grads(X, y, train=False, input_grad=True)
    xp = m.xp
    adversarial = m.backend.asarray(X) + 0.5 * xp.sign(dX)  # the fast gradient sign method
    assert m.evaluate(adversarial, y)["loss"] > 2 * m.evaluate(X, y)["loss"]


# -- features: fit(metrics=[...]) ------------------------------------------------------------
def test_fit_metrics_for_a_regressor(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 3)).astype("float32")
    y = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1).astype("float32")
    m = xn.MLP([3, 16, 1], loss="mse", backend=backend, seed=0)

    def max_error(y_true, y_pred):
        xp = xn.backends.backend_of(y_pred).xp
        return xp.max(xp.abs(y_true - y_pred))

    h = m.fit(X, y, epochs=3, validation_split=0.25, optimizer=xn.Adam(lr=1e-2), verbose=0,
              metrics=["mae", "r2", max_error])
    for key in ("mae", "r2", "max_error", "val_mae", "val_r2", "val_max_error"):
        assert len(h.history[key]) == 3, key
    # the last epoch's values are those of the final model on each part of the data
    Xt, yt, Xv, yv = X[:72], y[:72], X[72:], y[72:]
    pred_t, pred_v = m.predict(Xt), m.predict(Xv)
    be = m.backend
    assert h.history["r2"][-1] == pytest.approx(
        float(xn.metrics.r2_score(be.asarray(yt), pred_t)), rel=1e-6)
    assert h.history["val_mae"][-1] == pytest.approx(
        float(xn.metrics.mean_absolute_error(be.asarray(yv), pred_v)), rel=1e-6)
    assert h.history["r2"][-1] > h.history["r2"][0]


def test_fit_metrics_for_a_classifier(backend, blobs):
    X, y = blobs
    m = xn.MLP([4, 8, 3], backend=backend, seed=0)
    h = m.fit(X.astype("float32"), y, epochs=2, verbose=0,
              metrics=["accuracy", "top_2_accuracy", ("half", lambda t, p: 0.5)])
    assert sorted(h.history) == ["accuracy", "half", "loss", "lr", "seconds",
                                 "top_2_accuracy"]
    assert h.history["half"] == [0.5, 0.5]
    assert h.history["top_2_accuracy"][-1] >= h.history["accuracy"][-1] - 0.05


def test_fit_metrics_are_checked_before_training():
    X, y = _data()
    m = xn.MLP([3, 2], backend="numpy")
    before = xn.to_numpy(m.params["0.W"]).copy()
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        m.fit(X, y, epochs=1, verbose=0, metrics=["f1"])
    with pytest.raises(ValueError, match="metric 'mae' compares float targets"):
        m.fit(X, y, epochs=1, verbose=0, metrics=["mae"])
    with pytest.raises(ValueError, match="taken by fit's own logs"):
        m.fit(X, y, epochs=1, verbose=0, metrics=[("loss", lambda t, p: 0.0)])
    with pytest.raises(ValueError, match="no usable name"):
        m.fit(X, y, epochs=1, verbose=0, metrics=[lambda t, p: 0.0])

    def broken(y_true, y_pred):
        return y_true @ y_pred

    with pytest.raises(ValueError, match=r"metric 'broken' failed on the first 8 rows of X "
                                         r"\(y_true of shape \(8,\), y_pred of shape \(8, 2\)\)"):
        m.fit(X, y, epochs=1, verbose=0, metrics=[broken])
    np.testing.assert_array_equal(xn.to_numpy(m.params["0.W"]), before)
    assert m.optimizer is None


def test_an_item_assigned_on_an_immutable_backend_is_checked():
    for name in ("array_api_strict", "jax"):
        if xn.backends.backend_status()[name] is not None:
            continue
        m = xn.MLP([3, 2], backend=name)
        xp = m.xp
        with pytest.raises(ValueError, match=r"parameter '0.b' has shape \(1, 2\)"):
            m.params["0.b"] = xp.zeros((1, 2), dtype=xp.float32)
        with pytest.raises(TypeError, match=r"parameter '0.b' is a NumPy ndarray"):
            m.params["0.b"] = np.zeros(2, "float32")
        with pytest.raises(KeyError, match="'0.c' is not a parameter"):
            m.params["0.c"] = xp.zeros((2,), dtype=xp.float32)
        m.params["0.b"] = xp.ones((2,), dtype=xp.float32)
        assert xn.to_numpy(m.params["0.b"]).tolist() == [1.0, 1.0]
        twin = __import__("copy").deepcopy(m)  # a copy keeps the check
        with pytest.raises(ValueError):
            twin.params["0.b"] = xp.zeros((1, 2), dtype=xp.float32)


# -- on_batch_end after every step, its values read lazily -----------------------------


def test_on_batch_end_runs_every_step_and_reads_the_device_only_when_asked(backend,
                                                                          monkeypatch):
    """``on_batch_end`` ran at display intervals only (0.25 s: once or twice an epoch on a
    small fit); it now runs after every step, and its running means are read (a sync)
    only when a callback reads them, equal to the epoch's mean at the last step."""
    from xpnet.training.trainer import Trainer

    reads = []
    running = Trainer._running_logs
    monkeypatch.setattr(Trainer, "_running_logs",
                        lambda self, k: reads.append(k) or running(self, k))

    class Count(xn.Callback):
        def __init__(self):
            self.steps, self.keys = [], None

        def on_batch_end(self, step, logs):
            self.steps.append((step, logs["samples_seen"]))
            self.keys = sorted(logs)

    X, y = _data(n=40)
    m = xn.MLP([3, 4, 2], backend=backend, seed=0)
    count = Count()
    m.fit(X, y, epochs=2, batch_size=16, callbacks=[count], verbose=0)
    assert count.steps == [(0, 16), (1, 32), (2, 40)] * 2
    assert count.keys == ["accuracy", "loss", "samples_seen"] and reads == []

    class Last(xn.Callback):
        def on_batch_end(self, step, logs):
            if step == 2:
                self.loss, self.accuracy = logs["loss"], logs["accuracy"]

    last = Last()
    h = m.fit(X, y, epochs=1, batch_size=16, callbacks=[last], verbose=0, shuffle=False)
    assert reads == [2]
    assert last.loss == pytest.approx(h.history["loss"][0], rel=1e-6)
    assert last.accuracy == pytest.approx(h.history["accuracy"][0])
