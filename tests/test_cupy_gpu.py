"""The CuPy path on a real GPU: placement, no host sync, dropout resume, pickling, the probe.

Every test here needs CuPy and a CUDA GPU (multi-device placement needs two) and
skips with the reason elsewhere. ``XPNET_TEST_BACKENDS=numpy,cupy python -m
pytest tests`` runs them with the rest of the suite (``nox -s gpu`` and
``benchmarks/gpu_session.sh`` do). What can be checked without a GPU is in
``tests/test_cupy_path.py``.
"""

from __future__ import annotations

import pickle
import signal
import warnings

import numpy as np
import pytest

import xpnet as xn

_WHY = xn.backends.backend_status()["cupy"]
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"backend cupy unavailable: {_WHY}")


@pytest.fixture
def cp():
    import cupy

    return cupy


def _gpus(cp):
    return cp.cuda.runtime.getDeviceCount()


def _data(n=512, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = X[:, :k].argmax(axis=1).astype("int64")
    return X, y


def _on(a, dev_id):
    return a.device.id == dev_id


def test_the_probe_passes_and_the_default_gpu_is_the_current_one(cp):
    assert xn.backends.backend_status()["cupy"] is None
    last = _gpus(cp) - 1
    with cp.cuda.Device(last):
        assert xn.get_backend("cupy").device.id == last
        assert xn.MLP([4, 3], backend="cupy").params["0.W"].device.id == last
    with pytest.raises(xn.backends.BackendError, match=f"there is no GPU {last + 1}"):
        xn.get_backend("cupy", last + 1)
    b = xn.get_backend("cupy")
    assert hash(b) == hash(xn.get_backend("cupy", b.device.id))


def test_everything_a_model_makes_lives_on_its_gpu_while_another_is_current(cp):
    """Weights, biases, slots, running sums, the batch indices, dropout masks, outputs."""
    if _gpus(cp) < 2:
        pytest.skip(f"needs 2 GPUs, this machine has {_gpus(cp)}")
    X, y = _data()
    with cp.cuda.Device(0):
        m = xn.MLP([20, 32, 16, 4], dropout=0.2, backend="cupy", device=1, seed=0)
        opt = xn.Adam(lr=1e-2, clip_norm=1.0)
        h = m.fit(X, y, epochs=3, batch_size=64, optimizer=opt, validation_split=0.2,
                  verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0]
        assert all(_on(v, 1) for v in m.params.values())
        assert all(_on(v, 1) for s in opt.slots for v in opt.state[s].values())
        assert _on(m.predict(X), 1) and _on(m.forward(X, train=True), 1)
        loss, grads = m.loss_and_grads(X, y)
        assert _on(loss, 1) and all(_on(g, 1) for g in grads.values())
        st = opt.init(m.params)
        assert all(_on(v, 1) for v in st["exp_avg"].values())
        assert cp.cuda.Device().id == 0  # nothing left GPU 1 current


@pytest.mark.parametrize("fused", ["0", "1"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_training_steps_never_wait_for_the_gpu(cp, fused, dropout, monkeypatch):
    """Steps of the Trainer itself (gather, forward, loss, backward, guard, update, sums)
    inside cupyx.allow_synchronize(False), with the default and the fused update."""
    import cupyx

    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("cupyx.allow_synchronize is not available in this CuPy")
    monkeypatch.setenv("XPNET_CUPY_FUSED", fused)
    X, y = _data(n=2048)
    b = xn.get_backend("cupy")
    m = xn.MLP([20, 64, 32, 4], dropout=dropout, backend="cupy", seed=0)
    opt = xn.Adam(lr=1e-3)
    opt.state = opt.init(m.params)
    t = xn.training.Trainer(m, b.asarray(X), b.asarray(y), optimizer=opt, epochs=1,
                            batch_size=128, state=xn.training.TrainState(seed=0))
    with b.device_scope():
        perm = t.begin_epoch(0)
        t.step(0, perm)
        t.step(1, perm)  # compile the kernels, build the guard's buffers
        cp.cuda.Device().synchronize()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # allow_synchronize is deprecated in CuPy 14
            with cupyx.allow_synchronize(False):
                for k in range(2, 10):
                    t.step(k, perm)
        assert t.guard.poll() is False
    assert all(bool(cp.isfinite(v).all()) for v in m.params.values())


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "rmsprop",
                                  "rmsprop-centered-momentum"])
def test_fused_and_generic_fits_give_the_same_bits(cp, name, monkeypatch):
    from test_optimizers import CASES

    X, y = _data()
    out = []
    for fused in ("0", "1"):
        monkeypatch.setenv("XPNET_CUPY_FUSED", fused)
        m = xn.MLP([20, 32, 4], backend="cupy", seed=0)
        m.fit(X, y, epochs=2, batch_size=64, optimizer=CASES[name][0](), verbose=0)
        out.append({k: xn.to_numpy(v) for k, v in m.params.items()})
    for k in out[0]:
        assert out[0][k].tobytes() == out[1][k].tobytes(), k


def test_an_overflowing_update_is_masked_on_the_gpu(cp):
    X, y = _data()
    for policy in ("raise", "stop", "skip"):
        m = xn.MLP([20, 32, 4], backend="cupy", seed=0)
        kw = dict(epochs=2, batch_size=64, verbose=0, optimizer=xn.SGD(lr=1e37),
                  on_nonfinite=policy)
        if policy == "raise":
            with pytest.raises(xn.NonFiniteLossError):
                m.fit(X * 100, y, **kw)
        else:
            m.fit(X * 100, y, **kw)
        assert all(bool(cp.isfinite(v).all()) for v in m.params.values()), policy


def test_a_resumed_dropout_run_gives_the_uninterrupted_bits(cp, tmp_path):
    """The Philox stream's key and counter are in the record: same masks, same batches."""
    X, y = _data()
    kw = dict(batch_size=64, seed=5, verbose=0)

    def model():
        return xn.MLP([20, 32, 4], dropout=0.5, backend="cupy", seed=0)

    full = model()
    full.fit(X, y, epochs=3, optimizer=xn.Adam(lr=1e-2), **kw)

    class StopAt(xn.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.optimizer.state["step"] == 11:
                self.trainer._interrupt.signum = signal.SIGINT

    part = model()
    with pytest.raises(xn.TrainingInterrupted):
        part.fit(X, y, epochs=3, optimizer=xn.Adam(lr=1e-2), display_interval=0.0,
                 callbacks=[StopAt(), xn.ModelCheckpoint(tmp_path / "m.safetensors")], **kw)
    c = xn.load_checkpoint(tmp_path / "m.safetensors", backend="cupy")
    c.model.fit(X, y, epochs=3, resume=c.training, optimizer=c.optimizer, **kw)
    for k, v in full.params.items():
        assert xn.to_numpy(c.model.params[k]).tobytes() == xn.to_numpy(v).tobytes(), k


def test_a_model_pickles_after_a_training_forward_on_the_gpu(cp):
    X, y = _data()
    m = xn.MLP([20, 32, 4], dropout=0.3, backend="cupy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    m.forward(X, train=True)
    twin = pickle.loads(pickle.dumps(m))
    assert xn.to_numpy(twin.predict(X)).tolist() == xn.to_numpy(m.predict(X)).tolist()


def test_the_dropout_kernel_draws_the_host_reference_numbers(cp):
    from xpnet.ops import _philox, ops_for

    b = xn.get_backend("cupy")
    for dtype in ("float32", "float64"):
        rng = xn.RNG(9)
        u = ops_for(b).uniform(rng, (300, 7), b.dtype(dtype), b)
        key = rng.get_state()["device_stream"][0]
        ref = _philox.uniform_host(key, 0, (300, 7), dtype)
        assert xn.to_numpy(u).tobytes() == ref.tobytes()
