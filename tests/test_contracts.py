"""The contracts the trainer and the loader rely on instead of name checks.

* a loss with ``classification = True`` takes integer labels, predicts labels
  and counts correct ones, so any such loss reports accuracy in ``fit`` and
  ``evaluate``;
* a layer declares its parameter shapes, and the checkpoint loader checks
  every layer through them;
* ``TrainState`` is the one schema of the resume record;
* callbacks read the run's position from the trainer.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import xpnet as xn
from xpnet.training import TrainState


class HingeLoss(xn.Loss):
    """Multiclass hinge loss written from scratch: not a SoftmaxCrossEntropy subclass."""

    name = "test_multiclass_hinge"
    classification = True

    def value_and_grad(self, output, target, *, need_grad=True):
        xp = xn.backends.backend_of(output).xp
        n, k = output.shape
        onehot = xp.astype(xp.reshape(target, (n, 1)) == xp.arange(k, device=xn.backends.
                                                                     backend_of(output).device),
                           output.dtype)
        picked = xp.sum(output * onehot, axis=1, keepdims=True)
        margins = xp.maximum(output - picked + 1.0, 0.0) * (1.0 - onehot)
        loss = xp.sum(margins) / float(n)
        if not need_grad:
            return loss, None
        active = xp.astype(margins > 0, output.dtype)
        grad = active - onehot * xp.sum(active, axis=1, keepdims=True)
        return loss, grad / float(n)


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    X = (centers[y] + rng.normal(size=(n, 2))).astype("float32")
    return X, y.astype("int64")


@pytest.mark.slow_on_jax
def test_custom_classification_loss_trains_on_integer_labels(backend):
    X, y = _blobs()
    m = xn.MLP([2, 16, 3], loss=HingeLoss(), backend=backend, seed=0)
    h = m.fit(X, y, epochs=15, batch_size=32, optimizer=xn.Adam(lr=0.02),
              validation_data=(X[:30], y[:30]), verbose=0)
    assert {"accuracy", "val_accuracy"} <= set(h.history)
    assert h.history["accuracy"][-1] > 0.9
    result = m.evaluate(X, y)
    # accuracy as the loss counts it equals accuracy of predict()
    pred = xn.to_numpy(m.predict(X))
    assert result["accuracy"] == pytest.approx(float(np.mean(pred == y)))
    assert result["accuracy"] > 0.9


def test_custom_classification_loss_checks_its_labels():
    m = xn.MLP([2, 3], loss=HingeLoss(), backend="numpy")
    X, _ = _blobs(6)
    with pytest.raises(ValueError, match=r"labels in \[0, 3\] but the model has 3 classes"):
        m.fit(X, np.array([0, 1, 2, 3, 0, 1]), verbose=0)
    with pytest.raises(TypeError, match="class labels must be integers"):
        m.fit(X, np.zeros(6), verbose=0)


def test_regression_loss_has_no_accuracy():
    X, _ = _blobs(40)
    m = xn.MLP([2, 4, 1], loss="mse", backend="numpy")
    h = m.fit(X, X[:, :1] * 2.0, epochs=2, verbose=0)
    assert "accuracy" not in h.history and "accuracy" not in m.evaluate(X, X[:, :1])
    assert xn.MeanSquaredError().count_correct(np.zeros((2, 1)), np.zeros(2)) is None


def test_binary_cross_entropy_labels_and_count():
    bce = xn.BinaryCrossEntropy()
    out = np.array([[2.0, -1.0], [-3.0, 0.5]])
    assert bce.predict_labels(out).tolist() == [[1, 0], [0, 1]]
    # 3 of 4 outputs right, each output counts 1/2
    assert float(bce.count_correct(out, np.array([[1.0, 0.0], [1.0, 1.0]]))) == 1.5


# -- layers declare their parameter shapes -------------------------------------------------
@xn.register_layer
class Bilinear(xn.Layer):
    """y = x * (x @ U): one parameter whose shape depends on the input width."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"U": xn.initializers.get_initializer("glorot_uniform")(
            (in_features, in_features), rng, backend, dtype)}

    def param_shapes(self, in_features):
        return {"U": (in_features, in_features)}

    def forward(self, params, x, *, train=False):
        return x * (x @ params["U"]), x

    def backward(self, params, cache, dy):
        x = cache
        xp = xn.backends.backend_of(dy).xp
        xu = x @ params["U"]
        dx = dy * xu + (dy * x) @ xp.matrix_transpose(params["U"])
        return dx, {"U": xp.matrix_transpose(x) @ (dy * x)}


def _edit_model(path, edit):
    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    cfg = json.loads(header["__metadata__"]["model"])
    edit(cfg)
    header["__metadata__"]["model"] = json.dumps(cfg)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n:])


def test_custom_layer_shapes_round_trip_and_are_checked_at_load(tmp_path):
    m = xn.Sequential([Bilinear(), xn.Dense(2)], in_features=3, backend="numpy", seed=1)
    xn.testing.check_gradients(Bilinear(), np.random.default_rng(0).normal(size=(4, 3)),
                               backend="numpy")
    path = xn.save(m, tmp_path / "m.safetensors")
    back = xn.load(path, backend="numpy")
    np.testing.assert_array_equal(back.params["0.U"], m.params["0.U"])
    # a manifest that says 5 inputs: Bilinear needs a (5, 5) U, the file holds (3, 3)
    _edit_model(path, lambda cfg: cfg.update(in_features=5))
    with pytest.raises(xn.CheckpointError,
                       match=r"'params/0.U' has shape \(3, 3\), layer 0 \(Bilinear\) needs "
                             r"\(5, 5\)"):
        xn.load(path, backend="numpy")


def test_lying_custom_layer_manifest_is_refused_before_allocating(tmp_path):
    import tracemalloc

    m = xn.Sequential([Bilinear(), xn.Dense(2)], in_features=3, backend="numpy")
    path = xn.save(m, tmp_path / "m.safetensors")
    _edit_model(path, lambda cfg: cfg.update(in_features=10**6))  # U would be 4 TB
    tracemalloc.start()
    try:
        with pytest.raises(xn.CheckpointError, match=r"needs \(1000000, 1000000\)"):
            xn.load(path, backend="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_layer_without_parameters_declares_none_and_undeclared_is_none():
    assert xn.ReLU().param_shapes(7) == {} and xn.Dropout(0.5).param_shapes(7) == {}
    assert xn.Dense(4, bias=False).param_shapes(7) == {"W": (7, 4)}

    class Undeclared(xn.Layer):
        def init(self, in_features, rng, *, backend, dtype):
            return {}

    assert Undeclared().param_shapes(7) is None


# -- TrainState: the one schema of the resume record ----------------------------------------
BAD_RECORDS = [
    ({"epoch": -5}, r"'epoch' must be an int >= 0, got -5"),
    ({"epoch": "0"}, r"'epoch' must be an int >= 0, got '0'"),
    ({"epoch": True}, r"'epoch' must be an int >= 0, got True"),
    ({"step": 1}, r"has no 'epoch'"),
    ({"epoch": 1, "history": {"loss": 5}}, r"'history' entry 'loss' must be a list"),
    ({"epoch": 1, "history": [1]}, r"'history' must be a dict of lists"),
    ({"epoch": 1, "history": {"loss": [0.5, 0.4]}}, r"has 2 values for 1 epochs"),
    ({"epoch": 1, "history": {"loss": ["x"]}}, r"holds 'x', not a number"),
    ({"epoch": 1, "step": 2}, r"step 2 > 0 but no 'epoch_rng'"),
    ({"epoch": 1, "run_loss": float("nan")}, r"'run_loss' must be a finite number"),
    ({"epoch": 1, "run_correct": -1.0}, r"'run_correct' must be >= 0"),
    ({"epoch": 1, "rng": {"bit_generator": "PCG64"}}, r"'rng' is not a generator state"),
    # mid-epoch keys at an epoch boundary: to_record never writes them, so no round trip
    ({"epoch": 0, "step": 0, "seen": 1}, r"step 0 but 'seen' 1: the mid-epoch keys"),
    ({"epoch": 1, "run_loss": 2.5}, r"step 0 but 'run_loss' 2.5"),
    ({"epoch": 1, "step": 0, "run_correct": 3.0}, r"step 0 but 'run_correct' 3.0"),
]


@pytest.mark.parametrize("record,match", BAD_RECORDS, ids=[m for _, m in BAD_RECORDS])
def test_bad_resume_records_are_refused_by_fit_and_by_the_loader(record, match, tmp_path):
    X, y = _blobs(32)
    m = xn.MLP([2, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    params = {k: v.copy() for k, v in m.params.items()}
    state = {k: (v if k in ("step", "steps") else {p: a.copy() for p, a in v.items()})
             for k, v in m.optimizer.state.items()}
    with pytest.raises(ValueError, match=match):
        m.fit(X, y, epochs=3, resume=record, verbose=0)
    # refused before anything changed
    for k in params:
        np.testing.assert_array_equal(m.params[k], params[k])
    assert m.optimizer.state["step"] == state["step"]
    path = xn.save(m, tmp_path / "m.safetensors", training=record)
    with pytest.raises(xn.CheckpointError, match=match):
        xn.load_checkpoint(path, backend="numpy")


def test_train_state_round_trip_through_a_checkpoint(tmp_path):
    X, y = _blobs(64)
    m = xn.MLP([2, 8, 3], backend="numpy", seed=0)
    states = []

    class Grab(xn.Callback):
        def on_batch_end(self, step, logs):
            if step == 1 and not states:
                states.append(self.trainer.state)

    m.fit(X, y, epochs=1, batch_size=16, display_interval=0.0, callbacks=[Grab()],
          verbose=0)
    s = states[0]
    assert (s.epoch, s.step, s.seen) == (0, 2, 32) and s.epoch_rng is not None
    assert TrainState.from_record(json.loads(json.dumps(s.to_record()))) == s
    path = xn.save(m, tmp_path / "m.safetensors", training=s.to_record())
    assert TrainState.from_record(xn.load_checkpoint(path, backend="numpy").training) == s


def test_resume_state_object_equals_resume_record():
    X, y = _blobs(64)
    runs = []
    for resume in ("record", "state"):
        m = xn.MLP([2, 8, 3], backend="numpy", seed=0)
        m.fit(X, y, epochs=1, seed=5, verbose=0)
        s = TrainState(epoch=1, seed=5, rng=xn.RNG(9).get_state(),
                       history={"loss": [1.0]})
        m.fit(X, y, epochs=2, resume=s.to_record() if resume == "record" else s, verbose=0)
        runs.append(m.params["0.W"].copy())
    np.testing.assert_array_equal(runs[0], runs[1])


# -- callbacks read the trainer's state -----------------------------------------------------
def test_callbacks_read_trainer_state_and_checkpoints_match_it(tmp_path):
    X, y = _blobs(48)
    seen = []

    class Watch(xn.Callback):
        def on_epoch_end(self, epoch, logs):
            s = self.trainer.state
            seen.append((epoch, s.epoch, s.step, len(s.history["loss"]),
                         s.history["loss"][-1] == logs["loss"]))

    ckpt = xn.ModelCheckpoint(tmp_path / "e{epoch}.safetensors")
    m = xn.MLP([2, 4, 3], backend="numpy", seed=0)
    m.fit(X, y, epochs=2, batch_size=16, callbacks=[Watch(), ckpt], verbose=0)
    assert seen == [(0, 1, 0, 1, True), (1, 2, 0, 2, True)]
    rec = xn.load_checkpoint(ckpt.saved[-1], backend="numpy").training
    assert rec == ckpt.trainer.state.to_record() == ckpt.training_record()
    assert ckpt.training_record()["epoch"] == 2


def test_trainer_gradient_hook_runs_on_every_step():
    X, y = _blobs(40)
    m = xn.MLP([2, 4, 3], backend="numpy", seed=0)
    frozen = m.params["0.W"].copy()
    calls = []

    def freeze_first_layer(grads, trainer):
        calls.append(trainer.step_done)
        return {k: (g * 0.0 if k == "0.W" else g) for k, g in grads.items()}

    opt = xn.SGD(lr=0.1)
    opt.state = opt.init(m.params)
    t = xn.training.Trainer(m, X, y, optimizer=opt, epochs=2, batch_size=16,
                            state=TrainState(seed=0), grad_hooks=[freeze_first_layer])
    t.run()
    assert calls == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(m.params["0.W"], frozen)
    assert not np.array_equal(m.params["2.W"], xn.MLP([2, 4, 3], backend="numpy",
                                                       seed=0).params["2.W"])


def test_interrupt_on_the_last_step_of_an_epoch_resumes_exactly(tmp_path):
    """A record taken after the epoch's last step (step == steps) resumes into the epoch end."""
    X, y = _blobs(48)
    ref = xn.MLP([2, 4, 3], backend="numpy", seed=0)
    ref.fit(X, y, epochs=3, batch_size=16, seed=1, verbose=0)

    class StopAtEpochEnd(xn.Callback):
        def on_batch_end(self, step, logs):
            if self.trainer.epoch == 1 and step == 2:
                self.trainer._interrupt.signum = 2  # as the SIGINT handler would

    ckpt = xn.ModelCheckpoint(tmp_path / "m.safetensors")
    m = xn.MLP([2, 4, 3], backend="numpy", seed=0)
    with pytest.raises(xn.TrainingInterrupted) as info:
        m.fit(X, y, epochs=3, batch_size=16, seed=1, display_interval=0.0,
              callbacks=[StopAtEpochEnd(), ckpt], verbose=0)
    assert (info.value.epoch, info.value.step) == (2, 3)
    back = xn.load_checkpoint(info.value.checkpoint, backend="numpy")
    assert (back.training["epoch"], back.training["step"]) == (1, 3)
    h = back.model.fit(X, y, epochs=3, batch_size=16, resume=back.training, verbose=0)
    assert h.epoch == [0, 1, 2]
    for k in ref.params:
        np.testing.assert_array_equal(back.model.params[k], ref.params[k])
