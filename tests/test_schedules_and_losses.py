"""Research API: learning rates as any callable, custom losses and layers as first-class
citizens of checkpoints (registries, checks before writing), per-sample losses."""

import json

import numpy as np
import pytest

import xpnet as xn


def _data(n=96, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(scale=0.5, size=(n, d)), y.astype(np.int64)


# -- schedules -----------------------------------------------------------------------------
def test_a_plain_function_lr_trains_prints_and_appears_in_history(backend):
    X, y = _data()

    def halving(step):
        return 0.02 / 2 ** (step // 3)

    m = xn.MLP([4, 8, 3], backend=backend, seed=0)
    h = m.fit(X, y, epochs=3, batch_size=32, optimizer=xn.Adam(lr=halving), verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    # the lr of each epoch is the function at that epoch's last step (3 steps per epoch)
    assert h.history["lr"] == [halving(2), halving(5), halving(8)]
    assert h.params["optimizer"] == "Adam(lr=halving(step), betas=(0.9, 0.999), eps=1e-08)"
    opt = xn.SGD(lr=lambda step: 0.1, momentum=0.9)
    assert repr(opt) == "SGD(lr=lambda(step), momentum=0.9)"


def test_optimizer_text_is_readable_for_every_schedule():
    cos = xn.CosineDecay(0.002, total_steps=420)
    assert repr(xn.Adam(lr=cos)) == \
        "Adam(lr=cosine(0.002 -> 0, 420 steps), betas=(0.9, 0.999), eps=1e-08)"
    assert repr(xn.SGD(lr=xn.StepDecay(0.1, step_size=10, gamma=0.5))) == \
        "SGD(lr=step(0.1 x0.5 every 10 steps))"
    assert repr(xn.RMSprop(lr=xn.ExponentialDecay(0.01, gamma=0.99))).startswith(
        "RMSprop(lr=exponential(0.01 x0.99 per step), alpha=0.99")
    warm = xn.LinearWarmup(cos, warmup_steps=20)
    assert repr(xn.AdamW(lr=warm, weight_decay=0.01, decay="weights")) == (
        "AdamW(lr=warmup(20 steps) then cosine(0.002 -> 0, 420 steps), betas=(0.9, 0.999), "
        "eps=1e-08, weight_decay=0.01, decay='weights')")
    assert repr(xn.Adam(lr=3e-4)) == "Adam(lr=0.0003, betas=(0.9, 0.999), eps=1e-08)"


def test_saving_a_function_schedule_is_refused_before_writing_and_optimizer_false_saves(
        tmp_path):
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, optimizer=xn.Adam(lr=lambda step: 1e-3), verbose=0)
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"the optimizer Adam\(lr=lambda\(step\).*cannot be "
                                         r"saved.*function.*optimizer=False"):
        xn.save(m, path)
    assert not path.exists()
    xn.save(m, path, optimizer=False)
    ck = xn.load_checkpoint(path, backend="numpy")
    assert ck.optimizer is None
    for k in m.params:
        assert ck.model.params[k].tobytes() == m.params[k].tobytes()
    # a built-in schedule still saves with its state
    m.optimizer.lr = xn.CosineDecay(1e-3, total_steps=10)
    xn.save(m, path)
    assert isinstance(xn.load_checkpoint(path, backend="numpy").optimizer.lr, xn.CosineDecay)


def test_model_checkpoint_refuses_an_unsaveable_optimizer_before_training(tmp_path):
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    before = {k: v.copy() for k, v in m.params.items()}
    ck = xn.ModelCheckpoint(str(tmp_path / "e{epoch}.safetensors"))
    with pytest.raises(ValueError, match="optimizer=False"):
        m.fit(X, y, epochs=2, optimizer=xn.SGD(lr=lambda s: 0.1), callbacks=[ck], verbose=0)
    assert all(m.params[k].tobytes() == before[k].tobytes() for k in before)
    assert not list(tmp_path.iterdir())
    ck = xn.ModelCheckpoint(str(tmp_path / "e{epoch}.safetensors"), save_optimizer=False)
    m.fit(X, y, epochs=2, optimizer=xn.SGD(lr=lambda s: 0.1), callbacks=[ck], verbose=0)
    assert len(ck.saved) == 2 and xn.load_checkpoint(ck.saved[-1]).optimizer is None


def test_assigning_lr_is_checked_like_the_constructor(backend):
    X, y = _data()
    opt = xn.Adam(lr=1e-2)
    opt.lr = 5e-4
    assert opt.learning_rate(7) == 5e-4 and isinstance(opt.lr, xn.Constant)
    m = xn.MLP([4, 8, 3], backend=backend, seed=0)
    m.fit(X, y, epochs=1, optimizer=opt, verbose=0)
    assert m.optimizer.state["step"] == 1
    for bad, match in [("0.1", "lr must be a positive float or a schedule"),
                       (-1.0, r"lr must be in \(0.0, inf\)"), (True, "positive float"),
                       (lambda s: float("nan"), "gave nan at step 0"),
                       (lambda s: "fast", "gave 'fast' at step 0"),
                       (lambda: 0.1, "failed at step 0")]:
        with pytest.raises(ValueError, match=match):
            opt.lr = bad
        with pytest.raises(ValueError, match=match):
            xn.SGD(lr=bad)
    assert opt.learning_rate(0) == 5e-4  # a refused assignment leaves the rate alone


def test_a_schedule_that_goes_bad_later_names_the_step():
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    with pytest.raises(ValueError, match=r"lambda\(step\) gave -0.1 at step 2"):
        m.fit(X, y, epochs=1, batch_size=16, verbose=0,
              optimizer=xn.SGD(lr=lambda s: 0.1 if s < 2 else -0.1))


def test_registered_schedule_saves_and_reloads(tmp_path):
    @xn.schedules.register_schedule
    class Inverse(xn.schedules.Schedule):
        def __init__(self, lr, k=1.0):
            self.lr, self.k = lr, k

        def __call__(self, step):
            return self.lr / (1.0 + self.k * step)

        def get_config(self):
            return {"lr": self.lr, "k": self.k}

    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, optimizer=xn.SGD(lr=Inverse(0.1, k=0.5)), verbose=0)
    back = xn.load_checkpoint(xn.save(m, tmp_path / "m.safetensors")).optimizer
    assert isinstance(back.lr, Inverse) and back.learning_rate(4) == 0.1 / 3.0


# -- custom losses: first class ------------------------------------------------------------
@xn.register_loss
class SmoothedCE(xn.SoftmaxCrossEntropy):
    """Cross-entropy against labels smoothed towards the uniform distribution."""

    name = "smoothed_ce"

    def __init__(self, smoothing=0.1):
        self.smoothing = float(smoothing)

    def get_config(self):
        return {"smoothing": self.smoothing}

    def _soft(self, output, target):
        xp = xn.backends.backend_of(output).xp
        k = output.shape[1]
        onehot = xp.astype(xp.reshape(target, (-1, 1)) == xp.arange(
            k, dtype=target.dtype, device=xn.backends.backend_of(target).device), output.dtype)
        return onehot * (1.0 - self.smoothing) + self.smoothing / k

    def value_and_grad(self, output, target, *, need_grad=True):
        if target.ndim == 1:
            target = self._soft(output, target)
        return super().value_and_grad(output, target, need_grad=need_grad)

    def per_sample(self, output, target):
        return super().per_sample(output, self._soft(output, target)
                                  if target.ndim == 1 else target)


def test_label_smoothing_subclass_trains_saves_and_reloads_as_itself(backend, tmp_path):
    X, y = _data()
    m = xn.MLP([4, 16, 3], loss=SmoothedCE(0.2), backend=backend, seed=0, dtype="float64")
    h = m.fit(X, y, epochs=15, batch_size=32, optimizer=xn.Adam(lr=1e-2), verbose=0)
    assert h.history["accuracy"][-1] > 0.9  # integer labels, accuracy reported
    assert m.evaluate(X, y)["accuracy"] > 0.9
    cfg = m.get_config()["loss"]
    assert cfg == {"name": "smoothed_ce", "config": {"smoothing": 0.2}}
    back = xn.load(xn.save(m, tmp_path / "m.safetensors"), backend=backend)
    assert type(back.loss) is SmoothedCE and back.loss.smoothing == 0.2
    assert back.evaluate(X, y)["loss"] == pytest.approx(m.evaluate(X, y)["loss"], rel=1e-12)
    # smoothing is really in the loss: the plain cross-entropy of the same outputs is lower
    plain = xn.SoftmaxCrossEntropy()(m.forward(X), m.backend.asarray(y))
    assert float(plain) < m.evaluate(X, y)["loss"]
    # its gradient (and its weighted form, built on per_sample) pass the finite-difference check
    out = np.random.default_rng(1).normal(size=(6, 3))
    labels = np.array([0, 1, 2, 0, 1, 2])
    xn.testing.check_gradients(SmoothedCE(0.2), out, labels, backend=backend)


def test_loss_registry_refuses_taken_names_and_save_refuses_unloadable_losses(tmp_path):
    class KeepsName(xn.SoftmaxCrossEntropy):  # the name of the built-in
        pass

    with pytest.raises(ValueError, match="loss name 'cross_entropy' is taken by "
                                         "xpnet.losses.SoftmaxCrossEntropy"):
        xn.register_loss(KeepsName)

    class Alias(xn.Loss):
        name = "bce"

    class NoName(xn.Loss):
        pass

    with pytest.raises(ValueError, match="alias of the built-in 'binary_cross_entropy'"):
        xn.register_loss(Alias)
    with pytest.raises(ValueError, match="needs a name of its own"):
        xn.register_loss(NoName)
    with pytest.raises(TypeError, match="expects a Loss subclass"):
        xn.register_loss(int)

    class Other(xn.SoftmaxCrossEntropy):
        name = "smoothed_ce"  # taken by SmoothedCE above

    with pytest.raises(ValueError, match="taken by .*SmoothedCE"):
        xn.register_loss(Other)

    X, y = _data()
    for loss, match in [(KeepsName(), "stored as 'cross_entropy', the name of "
                                      "xpnet.losses.SoftmaxCrossEntropy"),
                        (Other(), "stored as 'smoothed_ce'"),
                        (NoName(), "NoName is not registered.*register_loss")]:
        m = xn.MLP([4, 3], loss=loss, backend="numpy")
        with pytest.raises(ValueError, match=match):
            xn.save(m, tmp_path / "m.safetensors")
        assert not (tmp_path / "m.safetensors").exists()
    # a registered name works wherever a loss name does
    assert isinstance(xn.MLP([4, 3], loss="smoothed_ce", backend="numpy").loss, SmoothedCE)


def test_layer_registry_refuses_a_taken_name_and_allows_a_redefinition():
    class Dense(xn.Layer):  # defined in this test module, not xpnet.layers
        pass

    with pytest.raises(ValueError, match="layer name 'Dense' is taken by xpnet.layers.Dense"):
        xn.register_layer(Dense)
    assert xn.layers.layer_from_config({"class": "Dense", "config": {"units": 2}}).units == 2

    def make():
        class Shift(xn.Layer):
            def forward(self, params, x, *, train=False):
                return x + 1.0, None

            def backward(self, params, cache, dy):
                return dy, {}
        return Shift

    first, second = make(), make()  # the same module and name: a re-run definition
    xn.register_layer(first)
    xn.register_layer(second)
    assert xn.layers.layer_from_config({"class": "Shift", "config": {}}).__class__ is second


class _Scale(xn.Layer):
    """A layer with a constructor argument."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def forward(self, params, x, *, train=False):
        return x * self.factor, None

    def backward(self, params, cache, dy):
        return dy * self.factor, {}


def test_save_refuses_layers_whose_config_would_not_rebuild_them(tmp_path):
    class NoConfig(_Scale):
        pass

    class WrongConfig(_Scale):
        def get_config(self):
            return {"factor": 1.0}

    class NotJson(_Scale):
        def get_config(self):
            return {"factor": np.float32(self.factor)}

    class Good(_Scale):
        def get_config(self):
            return {"factor": self.factor}

    for cls in (NoConfig, WrongConfig, NotJson, Good):
        xn.register_layer(cls)
    cases = [(NoConfig, r"NoConfig\(\) takes 'factor', which NoConfig.get_config\(\) does not "
                        "return"),
             (WrongConfig, r"WrongConfig\(\*\*get_config\(\)\) has factor=1.0, this "
                           r"object factor=3.0"),
             (NotJson, "JSON-serialisable")]
    path = tmp_path / "m.safetensors"
    for cls, match in cases:
        m = xn.Sequential([xn.Dense(3), cls(3.0)], in_features=2, backend="numpy")
        with pytest.raises(ValueError, match=match):
            xn.save(m, path)
        assert not path.exists()
    m = xn.Sequential([xn.Dense(3), Good(3.0)], in_features=2, backend="numpy")
    assert xn.load(xn.save(m, path)).layers[1].factor == 3.0


# -- per-sample losses ---------------------------------------------------------------------
def _loss_cases(rng):
    n, k = 7, 3
    out = rng.normal(size=(n, k))
    probs = rng.dirichlet(np.ones(k), size=n)
    return [
        (xn.SoftmaxCrossEntropy(), out, rng.integers(0, k, size=n)),
        (xn.SoftmaxCrossEntropy(), out, probs),
        (xn.MeanSquaredError(), out, rng.normal(size=(n, k))),
        (xn.MeanSquaredError(), out[:, :1], rng.normal(size=n)),
        (xn.BinaryCrossEntropy(), out, rng.integers(0, 2, size=(n, k)).astype(float)),
        (xn.BinaryCrossEntropy(), out[:, :1], rng.integers(0, 2, size=n).astype(float)),
    ]


class _Weighted(xn.Loss):
    """A loss whose value is another loss's weighted mean (for the gradient check)."""

    def __init__(self, base, weight):
        self.base, self.weight = base, weight

    def value_and_grad(self, output, target, *, need_grad=True):
        w = xn.backends.backend_of(output).asarray(self.weight, dtype=output.dtype)
        return self.base.weighted_value_and_grad(output, target, w, need_grad=need_grad)


def test_per_sample_losses_of_every_built_in_loss(backend):
    rng = np.random.default_rng(0)
    be = xn.get_backend(backend)
    for loss, out, target in _loss_cases(rng):
        o = be.asarray(out, dtype=be.dtype("float64"))
        t = be.asarray(target, dtype=be.index_dtype if target.dtype.kind == "i" else
                       be.dtype("float64"))
        per = loss.per_sample(o, t)
        assert tuple(per.shape) == (out.shape[0],) and be.owns(per)
        assert float(be.xp.mean(per)) == pytest.approx(float(loss(o, t)), rel=1e-12)
        # by hand on the host, row by row
        for i in range(out.shape[0]):
            row = loss(be.asarray(out[i:i + 1], dtype=o.dtype), t[i:i + 1, ...])
            assert float(per[i]) == pytest.approx(float(row), rel=1e-12)
        # the weighted mean and its gradient, against finite differences
        w = rng.uniform(0.0, 3.0, size=out.shape[0])
        value, _ = loss.weighted_value_and_grad(o, t, be.asarray(w, dtype=o.dtype))
        assert float(value) == pytest.approx(float(np.sum(w * xn.to_numpy(per)) / w.sum()),
                                             rel=1e-12)
        report = xn.testing.check_gradients(_Weighted(loss, w), out, target, backend=backend)
        assert report["output"] < 1e-5


def test_a_loss_without_per_sample_says_so():
    class L1(xn.Loss):
        name = "l1_test"

        def value_and_grad(self, output, target, *, need_grad=True):
            xp = xn.backends.backend_of(output).xp
            d = output - target
            return xp.mean(xp.abs(d)), xp.sign(d) / (d.shape[0] * d.shape[1])

    m = xn.MLP([2, 1], loss=L1(), backend="numpy")
    X, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    with pytest.raises(NotImplementedError, match="L1 does not define per_sample"):
        L1().per_sample(np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(TypeError, match="sample_weight needs the loss of each row, but L1 "
                                        "does not define per_sample"):
        m.fit(X, y, sample_weight=np.ones(4), verbose=0)
    m.fit(X, y, epochs=1, verbose=0)  # unweighted training needs no per_sample


def test_config_of_a_model_with_a_loss_argument_is_json(tmp_path):
    m = xn.MLP([4, 3], loss=SmoothedCE(0.3), backend="numpy")
    cfg = json.loads(json.dumps(m.get_config()))
    twin = xn.Sequential.from_config(cfg, backend="numpy")
    assert type(twin.loss) is SmoothedCE and twin.loss.smoothing == 0.3
    # the older form (the loss's name alone) still loads
    cfg["loss"] = "mse"
    assert xn.Sequential.from_config(cfg, backend="numpy").loss.name == "mse"


@pytest.mark.parametrize("call, message", [
    (lambda: xn.layers.layer_from_config({"class": "Nope"}),
     r"^unknown layer class 'Nope'; register custom layers with xpnet\.register_layer "
     r"\(known: Dense, "),
    (lambda: xn.layers.layer_from_config({"class": ["Dense"]}),
     r"^unknown layer class \['Dense'\]; register custom layers"),
    (lambda: xn.layers.layer_from_config({"class": "Dense", "config": {"units": 2, "u": 1}}),
     r"^layer Dense: bad config \{'units': 2, 'u': 1\}: .*'u'"),
    (lambda: xn.layers.layer_from_config({"class": "Dense", "trainable": 1}),
     r"^layer Dense: 'trainable' must be true or false, got 1$"),
    (lambda: xn.losses.loss_from_config({"name": "hinge"}),
     r"^unknown loss 'hinge'; register custom losses with xpnet\.register_loss "
     r"\(known: cross_entropy, "),
    (lambda: xn.losses.loss_from_config({"name": "mse", "config": {"scale": 2}}),
     r"^loss mse: bad config \{'scale': 2\}: MeanSquaredError\(\) takes no arguments"),
    (lambda: xn.losses.loss_from_config({"name": "mse", "config": [1]}),
     r"^loss mse: config must be a dict, got \[1\]$"),
])
def test_rebuilding_from_a_config_names_what_is_wrong(call, message):
    """An unknown class (with the names known and how to register one) and a config its
    constructor refuses are ValueErrors, for layers and losses alike."""
    with pytest.raises(ValueError, match=message):
        call()
