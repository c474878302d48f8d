"""Research API: frozen layers and weight-decay masks, sample and class weights,
intermediate outputs, and the smaller conveniences (to_numpy of dicts, metrics across
libraries, .to() with the optimizer state)."""

import numpy as np
import pytest

import xpnet as xn


def _data(n=90, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(scale=0.5, size=(n, d)), y.astype(np.int64)


def _host(params):
    return {k: xn.to_numpy(v).copy() for k, v in params.items()}


# -- frozen layers ---------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda: xn.SGD(lr=0.1, momentum=0.9, weight_decay=0.1),
    "adam": lambda: xn.Adam(lr=1e-2, weight_decay=0.1),
    "adamw": lambda: xn.AdamW(lr=1e-2, weight_decay=0.5),
    "rmsprop": lambda: xn.RMSprop(lr=1e-2, momentum=0.5, centered=True, weight_decay=0.1),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_frozen_layers_never_change_and_hold_no_moments(backend, name):
    X, y = _data()
    m = xn.MLP([4, 8, 8, 3], backend=backend, seed=0)
    m.freeze(0)
    m.layers[2].trainable = False  # the attribute works as well as the method
    assert m.trainable_keys == ["4.W", "4.b"]
    before = _host(m.params)
    opt = OPTIMIZERS[name]()
    m.fit(X, y, epochs=3, batch_size=32, optimizer=opt, verbose=0)
    after = _host(m.params)
    for k in ("0.W", "0.b", "2.W", "2.b"):  # not even decayed
        assert after[k].tobytes() == before[k].tobytes(), k
    for k in ("4.W", "4.b"):
        assert not np.array_equal(after[k], before[k]), k
    for slot in opt.slots:
        assert sorted(opt.state[slot]) == ["4.W", "4.b"]
    assert opt.state["step"] == 9


def test_loss_and_grads_skips_frozen_layers_and_gives_the_same_trainable_gradients(backend):
    X, y = _data(n=20)
    full = xn.MLP([4, 8, 8, 3], backend=backend, seed=0, dtype="float64")
    _, g_full = full.loss_and_grads(X, y)
    m = xn.MLP([4, 8, 8, 3], backend=backend, seed=0, dtype="float64").freeze([0, 4])
    calls = []
    for i, layer in enumerate(m.layers):
        real = layer.backward

        def spy(params, cache, dy, *, _real=real, _i=i, **kw):
            calls.append((_i, kw))
            return _real(params, cache, dy, **kw)

        layer.backward = spy
    _, grads = m.loss_and_grads(X, y)
    assert sorted(grads) == ["2.W", "2.b"]
    for k in grads:
        xn.testing.assert_close(grads[k], g_full[k])
    # nothing below the lowest trainable layer runs; the frozen head skips its own gradients
    assert [i for i, _ in calls] == [4, 3, 2]
    assert calls[0][1] == {"need_input_grad": True, "need_param_grads": False}
    assert calls[2][1] == {"need_input_grad": False}
    # the gradient check covers the trainable parameters of a partly frozen model
    assert sorted(xn.testing.check_gradients(m, X[:5], y[:5])) == ["2.W", "2.b"]


def test_everything_frozen_is_refused_before_training():
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy").freeze()
    with pytest.raises(ValueError, match="every layer of the model is frozen.*unfreeze"):
        m.fit(X, y, verbose=0)
    with pytest.raises(IndexError, match="layer index 5 is out of range for 3 layers"):
        m.unfreeze(5)
    with pytest.raises(TypeError, match="layer index must be an int"):
        m.freeze(0.5)  # a str is the address of a layer ("0", "2.0": see Block)


def test_optimizer_drops_moments_of_newly_frozen_params_and_restarts_unfrozen_ones(backend):
    be = xn.get_backend(backend)
    f64 = be.dtype("float64")
    params = {"w": be.asarray(np.ones((2, 2)), dtype=f64), "b": be.asarray(np.ones(2),
                                                                          dtype=f64)}
    grads = {k: v * 0.5 for k, v in params.items()}
    opt = xn.Adam(lr=0.1)
    params, state = opt.update(params, grads, opt.init(params))
    frozen_b = xn.to_numpy(params["b"]).copy()
    params, state = opt.update(params, {"w": grads["w"]}, state)  # b frozen
    assert sorted(state["exp_avg"]) == ["w"]
    assert xn.to_numpy(params["b"]).tobytes() == frozen_b.tobytes()
    params, state = opt.update(params, grads, state)  # b trained again: moments from zero
    assert float(be.xp.max(state["exp_avg"]["b"])) == pytest.approx(0.1 * 0.5)
    with pytest.raises(ValueError, match=r"grads has keys that are not parameters: \['z'\]"):
        opt.update(params, {"z": grads["w"]}, state)


def test_checkpoints_record_trainability_and_the_trained_slots(tmp_path, backend):
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend=backend, seed=0).freeze(0)
    m.fit(X, y, epochs=2, optimizer=xn.AdamW(lr=1e-2), verbose=0)
    ck = xn.load_checkpoint(xn.save(m, tmp_path / "m.safetensors"), backend="numpy")
    assert [layer.trainable for layer in ck.model.layers] == [False, True, True]
    assert sorted(ck.optimizer.state["exp_avg"]) == ["2.W", "2.b"]
    assert m.get_config()["layers"][0]["trainable"] is False
    # training the reloaded model goes on with the layer still frozen
    before = ck.model.params["0.W"].copy()
    ck.model.fit(X, y, epochs=1, verbose=0)
    assert ck.model.params["0.W"].tobytes() == before.tobytes()
    assert ck.model.optimizer is ck.optimizer and ck.optimizer.state["step"] == 2 + 1


# -- weight-decay masks ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [xn.SGD, xn.Adam, xn.AdamW, xn.RMSprop])
@pytest.mark.parametrize("decay", ["weights", ("0.W", "2.W"), "callable"])
def test_decay_mask_excludes_biases(backend, cls, decay):
    """Masked parameters update exactly as without decay, the others exactly as with it."""
    if decay == "callable":
        decay = lambda key: key.endswith(".W")  # noqa: E731
    m = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    m.set_params({k: xn.to_numpy(v) + 0.5 for k, v in m.params.items()})  # biases not zero
    X, y = _data(n=16)
    _, grads = m.loss_and_grads(X, y)
    p_mask, _ = cls(lr=0.1, weight_decay=0.3, decay=decay).update(
        m.params, grads, cls().init(m.params))
    p_all, _ = cls(lr=0.1, weight_decay=0.3).update(m.params, grads, cls().init(m.params))
    p_none, _ = cls(lr=0.1, weight_decay=0.0).update(m.params, grads, cls().init(m.params))
    for k in m.params:
        want = p_all[k] if k.endswith(".W") else p_none[k]
        assert xn.to_numpy(p_mask[k]).tobytes() == xn.to_numpy(want).tobytes(), k
    assert not np.array_equal(xn.to_numpy(p_all["0.b"]), xn.to_numpy(p_none["0.b"]))


def test_decay_mask_in_fit_and_its_default_and_config(tmp_path):
    X, y = _data()
    masked = xn.MLP([4, 8, 3], backend="numpy", seed=0, dtype="float64")
    masked.set_params({k: v + 0.5 for k, v in masked.params.items()})
    start = {k: v.copy() for k, v in masked.params.items()}
    plain = xn.MLP([4, 8, 3], backend="numpy", seed=0, dtype="float64")
    plain.set_params({k: v.copy() for k, v in start.items()})  # fit updates in place
    lr, wd = 1e-3, 10.0
    masked.fit(X, y, epochs=1, batch_size=None, verbose=0,
               optimizer=xn.AdamW(lr=lr, weight_decay=wd, decay="weights"))
    plain.fit(X, y, epochs=1, batch_size=None, verbose=0,
              optimizer=xn.AdamW(lr=lr, weight_decay=0.0))
    for k in ("0.b", "2.b"):  # biases: not decayed
        assert masked.params[k].tobytes() == plain.params[k].tobytes()
    for k in ("0.W", "2.W"):  # weights: decoupled decay, p * (1 - lr * wd) before the step
        np.testing.assert_allclose(masked.params[k] - plain.params[k], -lr * wd * start[k],
                                   rtol=1e-10, atol=1e-15)
    m2 = masked
    assert xn.AdamW().decay == "all"  # torch's default: decay everything
    back = xn.load_checkpoint(xn.save(m2, tmp_path / "m.safetensors")).optimizer
    assert back.decay == "weights"
    listed = xn.SGD(weight_decay=0.1, decay=["0.W"])
    assert listed.get_config()["decay"] == ["0.W"]
    with pytest.raises(ValueError, match="decay mask .* is a function, which cannot be saved"):
        xn.SGD(weight_decay=0.1, decay=lambda k: True).get_config()
    with pytest.raises(ValueError, match="decay must be 'all', 'weights'"):
        xn.SGD(decay="biases")


# -- sample and class weights ----------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [lambda: xn.SGD(lr=0.05, momentum=0.9),
                                      lambda: xn.Adam(lr=1e-2)], ids=["sgd", "adam"])
def test_integer_weights_train_like_repeated_rows(backend, make_opt):
    X, y = _data(n=40)
    w = np.random.default_rng(3).integers(0, 4, size=40)
    w[0] = 2  # not all zero
    weighted = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    repeated = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    hw = weighted.fit(X, y, sample_weight=w, epochs=5, batch_size=None, optimizer=make_opt(),
                      verbose=0)
    hr = repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w), epochs=5, batch_size=None,
                      optimizer=make_opt(), verbose=0)
    for k in weighted.params:
        xn.testing.assert_close(weighted.params[k], repeated.params[k], rtol=1e-10, atol=0)
    np.testing.assert_allclose(hw.history["loss"], hr.history["loss"], rtol=1e-10)


def test_weighted_loss_is_the_weighted_mean_of_per_sample_losses(backend):
    X, y = _data(n=30)
    w = np.random.default_rng(1).uniform(0, 2, size=30)
    m = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    per = xn.to_numpy(m.loss.per_sample(m.forward(X), m.backend.asarray(y)))
    value, grads = m.loss_and_grads(X, y, sample_weight=w, train=False)
    assert float(value) == pytest.approx(float(np.sum(w * per) / np.sum(w)), rel=1e-12)
    ev = m.evaluate(X, y, sample_weight=w)
    assert ev["loss"] == pytest.approx(float(value), rel=1e-12)
    assert ev["accuracy"] == m.evaluate(X, y)["accuracy"]  # plain fraction, as in Keras
    # zero weights drop rows: the same loss and gradients as without them
    w0 = np.where(np.arange(30) < 10, 0.0, w)
    v0, g0 = m.loss_and_grads(X, y, sample_weight=w0, train=False)
    v1, g1 = m.loss_and_grads(X[10:], y[10:], sample_weight=w[10:], train=False)
    assert float(v0) == pytest.approx(float(v1), rel=1e-12)
    for k in g0:
        xn.testing.assert_close(g0[k], g1[k], rtol=1e-10, atol=1e-14)
    # the model's gradient check holds with weights too (through a weighted loss)
    report = xn.testing.check_gradients(m, X[:6], y[:6])
    assert max(report.values()) < 1e-5


def test_weights_of_one_give_the_unweighted_training_bit_for_bit():
    X, y = _data()
    a = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    b = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    a.fit(X, y, epochs=3, batch_size=16, seed=5, verbose=0)
    b.fit(X, y, epochs=3, batch_size=16, seed=5, verbose=0, sample_weight=np.ones(len(y)))
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes(), k


@pytest.mark.slow_on_jax
def test_minibatches_take_their_weight_rows(backend):
    """Weighting one class by zero in shuffled minibatches: that class is never learned."""
    X, y = _data(n=120)
    w = (y != 2).astype(float)
    m = xn.MLP([4, 16, 3], backend=backend, seed=0)
    m.fit(X, y, sample_weight=w, epochs=20, batch_size=16, optimizer=xn.Adam(lr=1e-2),
          verbose=0)
    pred = xn.to_numpy(m.predict(X))
    assert np.mean(pred[y != 2] == y[y != 2]) > 0.9
    assert np.mean(pred == 2) < 0.05


def test_class_weight_matches_the_equivalent_sample_weight(backend):
    X, y = _data(n=60)
    counts = np.bincount(y, minlength=3)
    balanced = len(y) / (3 * counts)
    cases = [("balanced", balanced[y]), ({0: 2.0, 2: 0.5}, np.array([2.0, 1.0, 0.5])[y])]
    for class_weight, w in cases:
        a = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
        b = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
        a.fit(X, y, class_weight=class_weight, epochs=2, batch_size=20, seed=1, verbose=0)
        b.fit(X, y, sample_weight=w, epochs=2, batch_size=20, seed=1, verbose=0)
        for k in a.params:
            xn.testing.assert_close(a.params[k], b.params[k], rtol=1e-12, atol=1e-15)
    # both together multiply
    sw = np.random.default_rng(0).uniform(0.5, 1.5, size=len(y))
    a = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    b = xn.MLP([4, 8, 3], backend=backend, seed=0, dtype="float64")
    a.fit(X, y, class_weight="balanced", sample_weight=sw, epochs=1, seed=1, verbose=0)
    b.fit(X, y, sample_weight=sw * balanced[y], epochs=1, seed=1, verbose=0)
    for k in a.params:
        xn.testing.assert_close(a.params[k], b.params[k], rtol=1e-12, atol=1e-15)


def test_class_weight_on_binary_cross_entropy_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0.5).astype(float)
    a = xn.MLP([3, 1], loss="bce", backend="numpy", dtype="float64", seed=0)
    b = xn.MLP([3, 1], loss="bce", backend="numpy", dtype="float64", seed=0)
    a.fit(X, y, class_weight={1: 3.0}, epochs=2, verbose=0, seed=0)
    b.fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0), epochs=2, verbose=0, seed=0)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-12)


def test_validation_split_drops_the_held_out_weights():
    X, y = _data(n=50)
    w = np.random.default_rng(2).uniform(0.1, 2.0, size=50)
    a = xn.MLP([4, 8, 3], backend="numpy", seed=0, dtype="float64")
    b = xn.MLP([4, 8, 3], backend="numpy", seed=0, dtype="float64")
    ha = a.fit(X, y, sample_weight=w, validation_split=0.2, epochs=2, seed=3, verbose=0)
    b.fit(X[:40], y[:40], sample_weight=w[:40], validation_data=(X[40:], y[40:]), epochs=2,
          seed=3, verbose=0)
    for k in a.params:
        assert a.params[k].tobytes() == b.params[k].tobytes()
    assert "val_loss" in ha.history


@pytest.mark.parametrize("bad,exc,match", [
    (np.ones(5), ValueError, r"sample_weight has shape \(5,\); expected \(30,\), one weight "
                             "per row of X"),
    (np.ones((30, 1)), ValueError, r"has shape \(30, 1\)"),
    (np.r_[np.ones(29), np.nan], ValueError, "sample_weight contains NaN or infinite values"),
    (np.r_[np.ones(29), -1.0], ValueError, r"negative values \(down to -1\); weights must "
                                           "be >= 0"),
    (np.zeros(30), ValueError, "sample_weight is all zero"),
    ("heavy", TypeError, "sample_weight must be a 1-D array of weights, got str"),
    (np.full(30, 1 + 1j), TypeError, "complex"),
])
def test_bad_weights_are_refused_before_any_change(bad, exc, match):
    X, y = _data(n=30)
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    before = _host(m.params)
    for call in (lambda: m.fit(X, y, sample_weight=bad, verbose=0),
                 lambda: m.loss_and_grads(X, y, sample_weight=bad),
                 lambda: m.evaluate(X, y, sample_weight=bad)):
        with pytest.raises(exc, match=match):
            call()
    assert m.optimizer is None
    assert all(m.params[k].tobytes() == before[k].tobytes() for k in before)


def test_bad_class_weights_are_refused():
    X, y = _data(n=30)
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    for cw, exc, match in [("uniform", ValueError, "class_weight must be a dict or 'balanced'"),
                           ({3: 1.0}, ValueError, "labels are the integers 0..2"),
                           ({0: -1.0}, ValueError, r"class_weight\[0\]"),
                           ({0: 0.0, 1: 0.0, 2: 0.0}, ValueError, "every row a zero weight"),
                           ([1.0, 2.0], TypeError, "must be a dict or 'balanced', got list")]:
        with pytest.raises(exc, match=match):
            m.fit(X, y, class_weight=cw, verbose=0)
    r = xn.MLP([4, 2], loss="mse", backend="numpy")
    with pytest.raises(ValueError, match="class_weight needs class labels"):
        r.fit(X, np.zeros((30, 2)), class_weight="balanced", verbose=0)
    assert m.optimizer is None


# -- intermediates ---------------------------------------------------------------------------
def test_forward_returns_every_layers_output(backend):
    X, _ = _data(n=10)
    m = xn.MLP([4, 8, 6, 3], backend=backend, seed=0, dropout=0.5)
    outs = m.forward(X, return_intermediates=True)
    assert len(outs) == len(m.layers) == 7
    assert all(m.backend.owns(o) for o in outs)
    h = m.backend.asarray(X, dtype=m.dtype)
    for i, layer in enumerate(m.layers):
        h = layer.forward(m.layer_params(i), h)[0]
        xn.testing.assert_close(outs[i], h)
    xn.testing.assert_close(outs[-1], m.forward(X))
    assert xn.to_numpy(outs[1]).min() >= 0.0  # a ReLU's output
    train = m.forward(X, train=True, return_intermediates=True)  # dropout active
    zeros = [float(m.xp.sum(m.xp.astype(o[2] == 0.0, m.dtype))) for o in (train, outs)]
    assert zeros[0] > zeros[1]


# -- smaller -----------------------------------------------------------------------------------
def test_to_numpy_of_a_dict_converts_each_entry(backend):
    m = xn.MLP([4, 8, 3], backend=backend, seed=0)
    X, y = _data()
    m.fit(X, y, epochs=1, verbose=0)
    host = xn.to_numpy(m.params)
    assert sorted(host) == sorted(m.params)
    assert all(isinstance(v, np.ndarray) for v in host.values())
    state = xn.to_numpy(m.optimizer.state)
    assert state["step"] == 1 and isinstance(state["exp_avg"]["0.W"], np.ndarray)
    with pytest.raises(TypeError, match="to_numpy expects an array .*got object"):
        xn.to_numpy(object())


def test_metrics_refuse_mixed_libraries_like_the_model(backend):
    if backend == "numpy":
        pytest.skip("needs a second library")
    be = xn.get_backend(backend)
    y_np = np.array([0, 1, 1])
    y_be = be.asarray(y_np)
    kind = {"torch": "torch", "jax": "JAX", "array_api_strict": "array_api_strict",
            "cupy": "CuPy"}[backend]
    article = "an" if kind[0] in "aeiou" else "a"
    for call, name in [(lambda: xn.metrics.accuracy(y_np, y_be), "y_pred"),
                       (lambda: xn.metrics.confusion_matrix(y_np, y_be, 2), "y_pred"),
                       (lambda: xn.metrics.top_k_accuracy(y_np, be.asarray(np.eye(3)), 1),
                        "scores"),
                       (lambda: xn.metrics.log_loss(y_np, be.asarray(np.eye(3))), "proba")]:
        with pytest.raises(TypeError, match=f"{name} is {article} {kind} array but y_true is a "
                                            f"NumPy array; pass arrays of one library"):
            call()
    assert float(xn.metrics.accuracy(y_be, y_be)) == 1.0
    w = be.asarray(np.array([1.0, 0.0, 3.0]))
    assert float(xn.metrics.accuracy(y_be, be.asarray(np.array([0, 0, 1])), w)) == 1.0


def test_to_moves_the_optimizer_state_and_fit_continues(backend):
    X, y = _data()
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, batch_size=30, verbose=0)
    opt = m.optimizer
    moments = _host(opt.state["exp_avg"])
    m.to(backend)
    assert m.optimizer is opt and opt.state["step"] == 3
    for k, v in opt.state["exp_avg"].items():
        assert m.backend.owns(v) and xn.to_numpy(v).tobytes() == moments[k].tobytes()
    m.fit(X, y, epochs=1, batch_size=30, verbose=0)  # continues: no fresh Adam
    assert m.optimizer is opt and opt.state["step"] == 6
