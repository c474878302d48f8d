"""fit(): batching, validation, history, callbacks, continuation, non-finite guard."""

import csv

import numpy as np
import pytest

import xpnet as xn


def test_fit_learns_and_reports_history(backend, blobs):
    X, y = blobs
    m = xn.MLP([4, 16, 3], backend=backend, seed=0)
    h = m.fit(X, y, epochs=8, batch_size=32, validation_split=0.2, verbose=0, seed=0,
              optimizer=xn.Adam(lr=1e-2))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert len(h.history[key]) == 8, key
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.9
    assert h.params["steps_per_epoch"] == 8  # 240 rows / 32
    assert h.history["lr"] == [1e-2] * 8


def test_full_batch_and_oversized_batch(blobs):
    X, y = blobs
    h1 = xn.MLP([4, 3], backend="numpy", seed=0).fit(X, y, epochs=2, batch_size=None, verbose=0)
    h2 = xn.MLP([4, 3], backend="numpy", seed=0).fit(X, y, epochs=2, batch_size=10_000,
                                                     verbose=0)
    assert h1.params["steps_per_epoch"] == h2.params["steps_per_epoch"] == 1
    assert h1.params["batch_size"] == h2.params["batch_size"] == 300
    # full batch: the shuffled order does not change the mean gradient
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)


def test_fit_again_continues_and_reuses_optimizer_state(blobs):
    X, y = blobs
    opt = xn.Adam(lr=1e-2)
    a = xn.MLP([4, 8, 3], backend="numpy", dtype="float64", seed=0)
    a.fit(X, y, epochs=2, batch_size=50, optimizer=opt, seed=1, verbose=0)
    assert opt.state["step"] == 12
    a.fit(X, y, epochs=2, batch_size=50, optimizer=opt, seed=2, verbose=0)
    assert opt.state["step"] == 24
    # the same as one loop over both seeds' batches with one optimizer state
    b = xn.MLP([4, 8, 3], backend="numpy", dtype="float64", seed=0)
    opt_b = xn.Adam(lr=1e-2)
    state = opt_b.init(b.params)
    for seed in (1, 2):
        rng = xn.RNG(seed)
        for _ in range(2):
            perm = rng.host_permutation(300)
            for i in range(0, 300, 50):
                _, g = b.loss_and_grads(X[perm[i:i + 50]], y[perm[i:i + 50]])
                b.params, state = opt_b.update(b.params, g, state)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-12)
    # and with no optimizer argument, fit continues the model's optimizer
    a.fit(X, y, epochs=1, batch_size=50, verbose=0)
    assert a.optimizer is opt and opt.state["step"] == 30


def test_same_seed_same_run(blobs):
    X, y = blobs
    runs = []
    for _ in range(2):
        m = xn.MLP([4, 8, 3], backend="numpy", seed=0, dropout=0.2)
        runs.append(m.fit(X, y, epochs=3, batch_size=32, seed=5, verbose=0).history["loss"])
    assert runs[0] == runs[1]


def test_early_stopping_restores_best(blobs):
    X, y = blobs
    m = xn.MLP([4, 32, 3], backend="numpy", seed=0)
    es = xn.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    h = m.fit(X, y, epochs=200, batch_size=16, validation_split=0.3, callbacks=[es],
              optimizer=xn.Adam(lr=0.05), verbose=0, seed=0)
    assert h.stopped_early and len(h.epoch) < 200
    assert es.best == min(h.history["val_loss"])
    assert es.best_epoch == int(np.argmin(h.history["val_loss"]))
    val = m.evaluate(X[-90:], y[-90:])["loss"]
    assert abs(val - es.best) < 1e-5


def test_csv_logger_and_checkpoint(tmp_path, blobs):
    X, y = blobs
    m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
    ck = xn.ModelCheckpoint(tmp_path / "ep{epoch}.safetensors")
    log = xn.CSVLogger(tmp_path / "log.csv")
    h = m.fit(X, y, epochs=3, batch_size=64, callbacks=[ck, log], verbose=0,
              validation_data=(X[:50], y[:50]))
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(h.history["val_accuracy"][-1])
    assert [p.split("/")[-1] for p in ck.saved] == [f"ep{i}.safetensors" for i in (1, 2, 3)]
    m3 = xn.load(ck.saved[-1], backend="numpy")
    for k in m.params:
        np.testing.assert_array_equal(m3.params[k], m.params[k])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_progress_bar_output(capsys, blobs):
    X, y = blobs
    xn.MLP([4, 3], backend="numpy").fit(X, y, epochs=2, batch_size=100, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "samples/s" in err and "loss" in err


class _Explode(xn.Layer):
    """Multiplies by a huge number from a given call on, to force an overflow."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def forward(self, params, x, *, train=False):
        self.calls += 1
        return (x * 1e30 * 1e30 if train and self.calls == self.at else x), None

    def backward(self, params, cache, dy):
        return dy, {}


@pytest.mark.parametrize("policy", ["raise", "stop", "skip"])
def test_nonfinite_loss_policies(policy, backend, blobs):
    X, y = blobs
    m = xn.Sequential([xn.Dense(8), _Explode(at=5), xn.ReLU(), xn.Dense(3)], in_features=4,
                      backend=backend, seed=0)
    snapshots = []

    class Snap(xn.Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append({k: xn.to_numpy(v).copy() for k, v in self.model.params.items()})

    # 300 rows / 100 = 3 steps per epoch: the 5th call is epoch 2, step 2
    kwargs = dict(epochs=3, batch_size=100, verbose=0, on_nonfinite=policy,
                  optimizer=xn.SGD(lr=0.1), callbacks=[Snap()])
    if policy == "raise":
        with pytest.raises(xn.NonFiniteLossError, match="epoch 2, step 2"):
            m.fit(X, y, **kwargs)
    else:
        h = m.fit(X, y, **kwargs)
        if policy == "stop":
            assert h.stopped_early and len(h.epoch) == 1
        else:
            assert len(h.epoch) == 3 and h.history["skipped_steps"][0] == 1
    for v in m.params.values():
        assert np.all(np.isfinite(xn.to_numpy(v)))
    if policy in ("raise", "stop"):
        # parameters are those after epoch 1, step 1 of epoch 2 (not the bad step)
        assert m.optimizer.state["step"] == 4


@pytest.mark.parametrize("kwargs,match", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(epochs=1.5), "epochs must be an int"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(batch_size=-4), "batch_size must be >= 1"),
    (dict(validation_split=1.0), "validation_split must be < 1"),
    (dict(on_nonfinite="ignore"), "on_nonfinite must be one of"),
    (dict(optimizer="adagrad"), "unknown optimizer 'adagrad'"),
    (dict(validation_data=([1.0],)), "validation_data must be a pair"),
])
def test_bad_fit_arguments(kwargs, match, blobs):
    X, y = blobs
    m = xn.MLP([4, 3], backend="numpy")
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises((ValueError, TypeError), match=match):
        m.fit(X, y, verbose=0, **kwargs)
    for k in before:
        np.testing.assert_array_equal(m.params[k], before[k])


@pytest.mark.parametrize("X,y,match", [
    (np.ones((10, 4, 1)), np.zeros(10, int), "X must be 2-D"),
    (np.ones((10, 5)), np.zeros(10, int), "X has 5 features, the model expects 4"),
    (np.ones((0, 4)), np.zeros(0, int), "X is empty"),
    (np.ones((10, 4)), np.zeros(9, int), "X has 10 samples but y has 9"),
    (np.full((10, 4), np.nan), np.zeros(10, int), "NaN or infinite"),
    (np.ones((10, 4), np.uint8), np.zeros(10, int), r"dtype uint8.*astype\('float32'\) / 255"),
    (np.ones((10, 4), complex), np.zeros(10, int), "complex"),
    (np.ones((10, 4)), np.full(10, 3), r"labels in \[3, 3\].*3 classes"),
    (np.ones((10, 4)), np.full(10, -1), r"labels in \[-1, -1\]"),
    (np.ones((10, 4)), np.full(10, 0.5), "class labels must be integers"),
])
def test_bad_data_is_refused(X, y, match):
    m = xn.MLP([4, 3], backend="numpy")
    with pytest.raises((ValueError, TypeError), match=match):
        m.fit(X, y, verbose=0)


def test_model_construction_errors():
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive int, got 0"):
        xn.MLP([4, 0, 3])
    with pytest.raises(ValueError, match="unknown activation 'swish'.*relu"):
        xn.MLP([4, 3], activation="swish")
    with pytest.raises(ValueError, match="dropout must be < 1"):
        xn.MLP([4, 8, 3], dropout=1.0)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        xn.MLP([4, 3], loss="hinge")
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        xn.MLP([4, 3], dtype="int32")


@pytest.mark.slow_on_jax
def test_regression_and_binary(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    yr = (X @ np.array([1.0, -2.0, 0.5]))[:, None]
    m = xn.MLP([3, 16, 1], loss="mse", backend=backend, seed=0)
    m.fit(X, yr, epochs=30, batch_size=32, verbose=0, optimizer=xn.Adam(lr=1e-2))
    assert m.evaluate(X, yr)["loss"] < 0.05 * float(np.var(yr))
    yb = (X[:, 0] > 0).astype(np.float64)
    mb = xn.MLP([3, 8, 1], loss="binary_cross_entropy", backend=backend, seed=0)
    mb.fit(X, yb, epochs=20, batch_size=32, verbose=0, optimizer=xn.Adam(lr=1e-2))
    assert mb.evaluate(X, yb)["accuracy"] > 0.95
    proba = xn.to_numpy(mb.predict_proba(X))
    assert proba.shape == (400, 1) and np.all((proba >= 0) & (proba <= 1))


@pytest.mark.parametrize("policy", ["raise", "stop", "skip"])
def test_nonfinite_device_path_without_host_sync(policy, backend, blobs, monkeypatch):
    """The GPU code path (mask the update on the device, read the flag later), run on CPU."""
    monkeypatch.setattr(xn.backends.Backend, "is_host", property(lambda self: False))
    X, y = blobs
    m = xn.Sequential([xn.Dense(8), _Explode(at=5), xn.ReLU(), xn.Dense(3)], in_features=4,
                      backend=backend, seed=0)
    kwargs = dict(epochs=3, batch_size=100, verbose=0, on_nonfinite=policy,
                  optimizer=xn.SGD(lr=0.1))
    if policy == "raise":
        with pytest.raises(xn.NonFiniteLossError, match="epoch 2, step 2"):
            m.fit(X, y, **kwargs)
    else:
        h = m.fit(X, y, **kwargs)
        assert len(h.epoch) == (1 if policy == "stop" else 3)
    for v in m.params.values():
        assert np.all(np.isfinite(xn.to_numpy(v)))
    # compare with the host path: same parameters
    monkeypatch.undo()
    ref = xn.Sequential([xn.Dense(8), _Explode(at=5), xn.ReLU(), xn.Dense(3)], in_features=4,
                        backend=backend, seed=0)
    if policy == "raise":
        with pytest.raises(xn.NonFiniteLossError):
            ref.fit(X, y, **kwargs)
    else:
        ref.fit(X, y, **kwargs)
    if policy != "stop":  # device 'stop' finishes the epoch with updates masked
        for k in ref.params:
            np.testing.assert_allclose(xn.to_numpy(m.params[k]), xn.to_numpy(ref.params[k]),
                                       rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(display_interval=-1.0), "display_interval must be >= 0"),
    (dict(display_interval=float("nan")), "display_interval must be finite"),
    (dict(shuffle="yes"), "shuffle must be True or False"),
    (dict(resume="abc"), "resume must be the 'training' dict"),
    (dict(callbacks=42), "callbacks must be a list"),
])
def test_more_bad_fit_arguments(kwargs, match, blobs):
    X, y = blobs
    with pytest.raises((ValueError, TypeError), match=match):
        xn.MLP([4, 3], backend="numpy").fit(X, y, verbose=0, **kwargs)


def test_single_callback_is_accepted(tmp_path, blobs):
    X, y = blobs
    xn.MLP([4, 3], backend="numpy").fit(X, y, epochs=1, verbose=0,
                                        callbacks=xn.CSVLogger(tmp_path / "log.csv"))
    assert (tmp_path / "log.csv").exists()


def test_loss_and_grads_without_value_scans_has_no_host_reads(backend, blobs, monkeypatch):
    """check_values=False: no value is read back from device arrays (no sync on a GPU)."""
    X, y = blobs
    m = xn.MLP([4, 8, 3], backend=backend, seed=0)
    Xd, yd = m.backend.asarray(X, dtype=m.dtype), m.backend.asarray(y)
    ref_loss, ref_grads = m.loss_and_grads(Xd, yd)
    reads = []
    xp = m.backend.xp
    for name in ("all", "min"):  # (max is also used by the softmax itself)
        orig = getattr(xp, name)

        def counting(*a, _orig=orig, **k):
            reads.append(1)
            return _orig(*a, **k)

        monkeypatch.setattr(xp, name, counting)
    loss, grads = m.loss_and_grads(Xd, yd, check_values=False)
    if backend != "numpy":
        assert reads == []
    assert float(loss) == float(ref_loss)
    for k in grads:
        np.testing.assert_array_equal(xn.to_numpy(grads[k]), xn.to_numpy(ref_grads[k]))


@pytest.mark.parametrize("device_path", [False, True])
def test_finiteness_check_totals_gradient_sums_alike_on_host_and_device(device_path,
                                                                        monkeypatch):
    """Each gradient's sum is finite but their float32 total would overflow: both code
    paths total in float64 and train on (before, the host path did and the device path
    called the step non-finite)."""
    if device_path:
        monkeypatch.setattr(xn.backends.Backend, "is_host", property(lambda self: False))
    m = xn.MLP([2, 2, 2], backend="numpy", seed=0)
    real = m._loss_grads_out

    def huge_grads(*args, **kwargs):
        value, grads, out = real(*args, **kwargs)
        return value, {k: np.full_like(g, 1e38 / g.size) for k, g in grads.items()}, out

    monkeypatch.setattr(m, "_loss_grads_out", huge_grads)
    h = m.fit(np.ones((4, 2), "float32"), np.array([0, 1, 0, 1]), epochs=2, batch_size=4,
              verbose=0, optimizer=xn.SGD(lr=1e-40), on_nonfinite="raise")
    assert len(h.epoch) == 2 and "skipped_steps" not in h.history
    assert all(np.isfinite(xn.to_numpy(v)).all() for v in m.params.values())


def test_callback_list_says_whether_a_callback_reads_batches():
    class PerBatch(xn.Callback):
        def on_batch_end(self, batch, logs):
            pass

    quiet = xn.training.CallbackList([xn.EarlyStopping()], model=None)
    assert quiet.wants_batches is False
    assert xn.training.CallbackList([xn.EarlyStopping(), PerBatch()],
                                    model=None).wants_batches is True


def test_progress_bar_draws_on_a_rich_console_it_is_given():
    """A rich Console passed as the stream is drawn on as it is (the CLI's TrainProgress
    gives its console so)."""
    import io

    from rich.console import Console

    out = io.StringIO()
    X = np.zeros((8, 3), "float32")
    xn.MLP([3, 2], backend="numpy").fit(X, np.zeros(8, "int64"), epochs=2, verbose=0,
                                         callbacks=[xn.ProgressBar(Console(file=out))])
    assert "epoch 2/2  loss" in out.getvalue()
