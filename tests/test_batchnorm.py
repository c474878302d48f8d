"""BatchNorm and layer buffers: state that is not trained, kept beside the parameters.

Checked on every installed backend: the training-mode gradients, PyTorch's
``BatchNorm1d`` numbers (forward, gradients, running statistics after N steps), evaluation
with the running statistics, a skipped step leaving them unchanged (host and device
guards), checkpoints (bit for bit, resume), ONNX export, and the refusals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet.distributed import SingleProcess
from xpnet.distributed._parallel import _broadcast_arrays


def _data(n=100, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, d)) * np.array([1.0, 0.1, 5.0, 1.0])[:d]
    y = (X[:, 0] > 3.0).astype("int64")
    return X, y


def _bn_model(backend, dtype="float64", **bn):
    return xn.Sequential([xn.BatchNorm(**bn), xn.Dense(8), xn.BatchNorm(**bn), xn.ReLU(),
                          xn.Dense(2)], in_features=4, backend=backend, dtype=dtype, seed=0)


def _host(d):
    return {k: xn.to_numpy(v).copy() for k, v in d.items()}


# -- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("affine", [True, False])
def test_gradients_in_train_and_eval_mode(backend, affine):
    X = _data(12)[0]
    for train in (True, False):
        report = xn.testing.check_gradients(xn.BatchNorm(affine=affine), X, backend=backend,
                                            train=train)
        assert sorted(report) == (["beta", "gamma", "x"] if affine else ["x"])


def test_model_gradients_in_train_mode_leave_the_buffers(backend):
    X, y = _data(16)
    m = _bn_model(backend)
    before = _host(m.buffers)
    report = xn.testing.check_gradients(m, X, y, train=True)
    assert sorted(report) == sorted(m.params)
    for k, v in _host(m.buffers).items():
        np.testing.assert_array_equal(v, before[k])


# -- PyTorch's numbers ------------------------------------------------------------------

def test_forward_and_gradients_match_torch_batchnorm1d(backend):
    torch = pytest.importorskip("torch")
    X = _data(10)[0]
    R = np.random.default_rng(1).normal(size=X.shape)
    be = xn.get_backend(backend)
    bn = xn.BatchNorm(momentum=0.3, eps=1e-3)
    params = {"gamma": np.array([1.5, -0.5, 2.0, 1.0]), "beta": np.array([0.1, 0.2, -0.3, 0.0])}
    dev = {k: be.asarray(v, dtype=be.xp.float64) for k, v in params.items()}
    bufs = bn.init_buffers(4, backend=be, dtype=be.xp.float64)
    y, cache = bn.forward(dev, be.asarray(X, dtype=be.xp.float64), train=True, buffers=bufs)
    dx, grads = bn.backward(dev, cache, be.asarray(R, dtype=be.xp.float64))
    new = bn.update_buffers(bufs, cache)

    ref = torch.nn.BatchNorm1d(4, momentum=0.3, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(params["gamma"]))
        ref.bias.copy_(torch.tensor(params["beta"]))
    xt = torch.tensor(X, requires_grad=True)
    yt = ref.train()(xt)
    (yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(xn.to_numpy(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xn.to_numpy(dx), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xn.to_numpy(grads["gamma"]), ref.weight.grad.numpy(),
                               rtol=1e-10)
    np.testing.assert_allclose(xn.to_numpy(grads["beta"]), ref.bias.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(xn.to_numpy(new["running_mean"]), ref.running_mean.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(xn.to_numpy(new["running_var"]), ref.running_var.numpy(),
                               rtol=1e-12)
    # evaluation: torch's eval output with those running statistics
    y_eval, _ = bn.forward(dev, be.asarray(X, dtype=be.xp.float64), train=False, buffers=new)
    np.testing.assert_allclose(xn.to_numpy(y_eval), ref.eval()(torch.tensor(X)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_running_statistics_after_a_fit_match_torch(backend):
    """BatchNorm first: its input is X, so its statistics after fit are torch's after the
    same batches (shuffle=False; 100 rows in batches of 32: the last one has 4)."""
    torch = pytest.importorskip("torch")
    X, y = _data(100)
    m = xn.Sequential([xn.BatchNorm(momentum=0.2), xn.Dense(2)], in_features=4,
                      backend=backend, dtype="float64", seed=0)
    m.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    ref = torch.nn.BatchNorm1d(4, momentum=0.2, dtype=torch.float64).train()
    for _ in range(3):
        for lo in range(0, 100, 32):
            ref(torch.tensor(X[lo:lo + 32]))
    np.testing.assert_allclose(xn.to_numpy(m.buffers["0.running_mean"]),
                               ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(xn.to_numpy(m.buffers["0.running_var"]),
                               ref.running_var.numpy(), rtol=1e-12)
    # a custom loop's loss_and_grads assigns them too, as a torch forward in train mode does
    m.loss_and_grads(X[:32], y[:32])
    ref(torch.tensor(X[:32]))
    np.testing.assert_allclose(xn.to_numpy(m.buffers["0.running_var"]),
                               ref.running_var.numpy(), rtol=1e-12)


# -- train / eval -----------------------------------------------------------------------

def test_evaluation_uses_the_running_statistics(backend):
    X, y = _data(64)
    m = xn.Sequential([xn.BatchNorm(eps=0.5)], in_features=4, loss="mse", backend=backend,
                      dtype="float64")
    xp = m.xp
    mean, var = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 1.0, 2.0, 4.0])
    m.buffers = {"0.running_mean": m.backend.asarray(mean, dtype=xp.float64),
                 "0.running_var": m.backend.asarray(var, dtype=xp.float64)}
    m.params["0.gamma"] = m.backend.asarray(np.array([2.0, 1.0, 1.0, 1.0]), dtype=xp.float64)
    want = (X - mean) / np.sqrt(var + 0.5) * np.array([2.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(xn.to_numpy(m.predict(X)), want, rtol=1e-12)
    # a row's prediction does not depend on its batch
    np.testing.assert_allclose(xn.to_numpy(m.predict(X[:1])), want[:1], rtol=1e-12)
    # training normalises with the batch's own statistics instead
    out = xn.to_numpy(m.forward(X, train=True))
    np.testing.assert_allclose(out.mean(axis=0) / np.array([2.0, 1.0, 1.0, 1.0]), 0.0,
                               atol=1e-12)
    # and neither predict nor forward(train=True) moves the running statistics
    np.testing.assert_array_equal(xn.to_numpy(m.buffers["0.running_mean"]), mean)


def test_return_buffers_leaves_the_assignment_to_the_caller(backend):
    X, y = _data(32)
    m = _bn_model(backend)
    before = _host(m.buffers)
    loss, grads, new = m.loss_and_grads(X, y, return_buffers=True)
    assert sorted(new) == sorted(m.buffers) and "1.running_mean" not in grads
    for k, v in _host(m.buffers).items():
        np.testing.assert_array_equal(v, before[k])
    m.buffers.update(new)
    np.testing.assert_allclose(xn.to_numpy(m.buffers["0.running_mean"]),
                               0.9 * before["0.running_mean"] + 0.1 * X.mean(axis=0),
                               rtol=1e-12)
    assert m.loss_and_grads(X, y, train=False, return_buffers=True)[2] == {}


# -- a step the guard skips ---------------------------------------------------------------

class _Every(xn.Callback):
    """Parameters and buffers after every step (display_interval=0)."""

    def __init__(self):
        self.steps = []

    def on_batch_end(self, batch, logs=None):
        self.steps.append((_host(self.model.params), _host(self.model.buffers)))


@pytest.mark.parametrize("device_path", [False, True], ids=["host", "device"])
def test_a_skipped_step_leaves_the_running_statistics(backend, device_path, monkeypatch):
    """Step 1's gradients are made NaN: its update is skipped, and so is its change to the
    statistics (which were finite): they stay those of step 0, bit for bit."""
    if device_path:
        monkeypatch.setattr(xn.backends.Backend, "is_host", property(lambda self: False))
    X, y = _data(96)
    m = _bn_model(backend)
    opt = xn.Adam(lr=1e-2)
    opt.state = opt.init(m.params)

    def poison(grads, trainer):
        if trainer.step_done == 1:  # the second step of the epoch
            return {k: g * float("nan") for k, g in grads.items()}
        return grads

    seen = _Every()
    Xd, yd = m.backend.asarray(X, dtype=m.dtype), m.backend.asarray(y)
    t = xn.training.Trainer(m, Xd, yd, optimizer=opt, epochs=1, batch_size=32, shuffle=False,
                            on_nonfinite="skip", callbacks=[seen], display_interval=0.0,
                            grad_hooks=[poison], state=xn.training.TrainState(seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = t.run()
    assert h.history["skipped_steps"] == [1.0]
    (p0, b0), (p1, b1), (p2, b2) = seen.steps
    for k in b0:
        np.testing.assert_array_equal(b1[k], b0[k])
        assert not np.array_equal(b2[k], b1[k]), k
    for k in p0:
        np.testing.assert_array_equal(p1[k], p0[k])
    # the statistics are those of steps 0 and 2 (the first layer sees X itself)
    rm = 0.0
    for lo in (0, 64):
        rm = 0.9 * rm + 0.1 * X[lo:lo + 32].mean(axis=0)
    np.testing.assert_allclose(b2["0.running_mean"], rm, rtol=1e-12)


def test_a_one_row_training_batch_is_refused_by_name(backend):
    X, y = _data(33)
    m = _bn_model(backend)
    before = _host(m.params)
    with pytest.raises(ValueError, match=r"layer 0 \(BatchNorm\) needs at least 2 rows per "
                                         r"batch in training, but 33 rows in batches of 32 "
                                         r"give a batch of 1 row"):
        m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    for k, v in _host(m.params).items():  # refused before the first step
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match=r"BatchNorm in training needs at least 2 rows per "
                                         r"batch, got 1.*rows % batch_size == 1"):
        m.loss_and_grads(X[:1], y[:1])


class _TwoRanks(SingleProcess):
    rank, size = 0, 2

    def allgather(self, obj):  # pragma: no cover - the check comes first
        raise AssertionError("no collective before the batch check")


def test_a_rank_share_of_one_row_is_refused_before_any_collective():
    """66 rows in global batches of 32 over 2 ranks: the last batch gives each rank 1 row;
    every rank refuses it alike at the start (no rank waits in an allreduce)."""
    X, y = _data(66)
    m = _bn_model("numpy")
    opt = xn.SGD(lr=0.1)
    opt.state = opt.init(m.params)
    with pytest.raises(ValueError, match=r"needs at least 2 rows per batch on each of the 2 "
                                         r"ranks in training.*or fewer ranks"):
        xn.training.Trainer(m, X, y, optimizer=opt, epochs=1, batch_size=32,
                            distributed=_TwoRanks())


# -- checkpoints --------------------------------------------------------------------------

def test_save_load_round_trip_is_bit_for_bit(backend, tmp_path):
    X, y = _data(100)
    m = _bn_model(backend, dtype="float32")
    m.fit(X, y, epochs=2, batch_size=32, verbose=0, optimizer=xn.Adam(1e-2))
    path = xn.save(m, tmp_path / "bn.safetensors")
    for target in (backend, "numpy"):
        back = xn.load(path, backend=target)
        assert sorted(back.buffers) == ["0.running_mean", "0.running_var",
                                        "2.running_mean", "2.running_var"]
        for k, v in m.buffers.items():
            assert xn.to_numpy(back.buffers[k]).tobytes() == xn.to_numpy(v).tobytes(), k
        for k, v in m.params.items():
            assert xn.to_numpy(back.params[k]).tobytes() == xn.to_numpy(v).tobytes(), k
        if target == backend:
            np.testing.assert_array_equal(xn.to_numpy(back.predict_proba(X)),
                                          xn.to_numpy(m.predict_proba(X)))


def test_resume_continues_identically(backend, tmp_path):
    X, y = _data(100)
    kw = dict(batch_size=32, seed=3, verbose=0)
    straight = _bn_model(backend)
    straight.fit(X, y, epochs=4, optimizer=xn.Adam(1e-2), **kw)
    first = _bn_model(backend)
    ck = xn.ModelCheckpoint(tmp_path / "last.safetensors")
    first.fit(X, y, epochs=2, optimizer=xn.Adam(1e-2), callbacks=[ck], **kw)
    c = xn.load_checkpoint(tmp_path / "last.safetensors", backend=backend)
    c.model.fit(X, y, epochs=4, optimizer=c.optimizer, resume=c.training, **kw)
    for got, want in ((c.model.params, straight.params), (c.model.buffers, straight.buffers)):
        for k in want:
            assert xn.to_numpy(got[k]).tobytes() == xn.to_numpy(want[k]).tobytes(), k


def test_a_file_with_wrong_buffers_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    m = _bn_model("numpy", dtype="float32")
    path = xn.save(m, tmp_path / "bn.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors["buffers/0.running_var"] = np.ones(5, "float32")
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(xn.CheckpointError, match=r"'buffers/0.running_var' has shape \(5,\), "
                                                 r"layer 0 \(BatchNorm\) needs \(4,\)"):
        xn.load(tmp_path / "bad.safetensors", backend="numpy")
    del tensors["buffers/0.running_var"]
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(xn.CheckpointError, match=r"missing \['buffers/0.running_var'\]"):
        xn.load(tmp_path / "bad.safetensors", backend="numpy")


def test_model_to_and_copies_carry_the_buffers(backend):
    X, y = _data(64)
    m = _bn_model("numpy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    want = _host(m.buffers)
    twin = __import__("copy").deepcopy(m).to(backend)
    assert twin.backend.name == backend
    for k, v in twin.buffers.items():
        assert xn.backends.backend_of(v).name == backend
        np.testing.assert_array_equal(xn.to_numpy(v), want[k])


# -- ONNX ---------------------------------------------------------------------------------

def test_onnx_export_uses_the_running_statistics(tmp_path):
    pytest.importorskip("ndonnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = _data(100)
    m = _bn_model("numpy", dtype="float32")
    m.fit(X, y, epochs=3, batch_size=32, verbose=0, optimizer=xn.Adam(1e-2))
    assert float(np.abs(m.buffers["0.running_mean"]).max()) > 0.5  # not the initial zeros
    path = xn.export_onnx(m, tmp_path / "bn.onnx", outputs=["logits"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for rows in (X[:1], X):  # one row alone: the running statistics, not its own
        got = session.run(["logits"], {"input": rows.astype("float32")})[0]
        np.testing.assert_allclose(got, m.forward(rows), rtol=1e-5, atol=1e-5)


# -- data-parallel start ----------------------------------------------------------------

class _RankOne(SingleProcess):
    """Rank 1 of 2, whose broadcast receives rank 0's arrays (all 0.25 here)."""

    rank, size = 1, 2

    def bcast_array(self, values, root=0):
        values[:] = 0.25
        return values


def test_every_rank_starts_from_rank_zeros_buffers():
    m = _bn_model("numpy")
    opt = xn.SGD(lr=0.1)
    opt.state = opt.init(m.params)
    _broadcast_arrays(_RankOne(), m, opt)
    for v in list(m.buffers.values()) + list(m.params.values()):
        np.testing.assert_array_equal(v, np.full(v.shape, 0.25))


# -- refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"momentum": 1.5}, r"momentum must be a float in \[0, 1\], got 1.5"),
    ({"momentum": True}, r"momentum must be a float in \[0, 1\], got True"),
    ({"momentum": "0.1"}, r"momentum must be a float in \[0, 1\], got '0.1'"),
    ({"eps": 0.0}, r"eps must be a finite float > 0, got 0.0"),
    ({"eps": float("nan")}, r"eps must be a finite float > 0, got nan"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match="BatchNorm " + match):
        xn.BatchNorm(**kwargs)
    with pytest.raises(TypeError, match="BatchNorm affine must be True or False, got 'yes'"):
        xn.BatchNorm(affine="yes")


def test_bad_buffer_assignments_are_refused(backend):
    m = _bn_model(backend)
    xp = m.xp
    with pytest.raises(ValueError, match=r"buffer '0.running_mean' has shape \(3,\), "
                                         r"expected \(4,\)"):
        m.buffers["0.running_mean"] = xp.zeros((3,), dtype=xp.float64)
    with pytest.raises(TypeError, match=r"buffer '0.running_mean' has dtype float32"):
        m.buffers["0.running_mean"] = xp.zeros((4,), dtype=xp.float32)
    with pytest.raises(KeyError, match="'0.count' is not a buffer"):
        m.buffers["0.count"] = xp.zeros((4,), dtype=xp.float64)
    with pytest.raises(ValueError, match=r"buffer names differ"):
        m.buffers = {}
    assert xn.MLP([3, 2], backend=backend).buffers == {}


class _CountRows(xn.Layer):
    """A custom layer with a buffer: how many training rows it has seen."""

    def init_buffers(self, in_features, *, backend, dtype):
        return {"rows": backend.xp.zeros((1,), dtype=dtype, device=backend.device)}

    def forward(self, params, x, *, train=False, buffers=None):
        return x, x.shape[0]

    def backward(self, params, cache, dy):
        return dy, {}

    def update_buffers(self, buffers, cache):
        return {"rows": buffers["rows"] + cache}


class _BadUpdate(_CountRows):
    def update_buffers(self, buffers, cache):
        return {"row": buffers["rows"]}


def test_a_custom_layer_with_a_buffer(backend, tmp_path):
    X, y = _data(40)
    m = xn.Sequential([_CountRows(), xn.Dense(2)], in_features=4, backend=backend, seed=0)
    m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert xn.to_numpy(m.buffers["0.rows"]).tolist() == [80.0]
    bad = xn.Sequential([_BadUpdate(), xn.Dense(2)], in_features=4, backend=backend)
    with pytest.raises(ValueError, match=r"layer 0 \(_BadUpdate\): update_buffers returned "
                                         r"\['row'\], but the layer's buffers are \['rows'\]"):
        bad.fit(X, y, epochs=1, verbose=0)


def test_early_stopping_restores_the_best_epochs_running_statistics():
    X, y = _data(200)
    m = _bn_model("numpy")
    seen = {}

    class Keep(xn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (logs["val_loss"], _host(self.model.params),
                           _host(self.model.buffers))

    stop = xn.EarlyStopping(patience=20)
    m.fit(X, y, epochs=6, batch_size=16, verbose=0, validation_split=0.25,
          optimizer=xn.SGD(lr=0.5), callbacks=[Keep(), stop])
    best = min(seen, key=lambda e: seen[e][0])
    assert stop.best_epoch == best and best < 5  # a better epoch before the last
    _, params, buffers = seen[best]
    assert not np.array_equal(seen[5][2]["2.running_var"], buffers["2.running_var"])
    for k, v in buffers.items():
        np.testing.assert_array_equal(m.buffers[k], v)
    for k, v in params.items():
        np.testing.assert_array_equal(m.params[k], v)


def test_outputs_made_non_finite_by_a_buffer_name_it(backend, tmp_path):
    X, _ = _data(8)
    m = _bn_model(backend)
    xp = m.xp
    m.buffers["2.running_var"] = xp.full((8,), float("nan"), dtype=xp.float64)
    with pytest.raises(FloatingPointError, match=r"the buffers \['2.running_var'\] "
                                                 r"\(running statistics\) hold NaN or inf"):
        m.predict(X)
    with pytest.raises(ValueError, match="cannot save: buffer '2.running_var' contains NaN"):
        xn.save(m, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_the_compiled_jax_step_carries_the_running_statistics(monkeypatch):
    """On JAX the whole step is compiled with the buffers as inputs and outputs: the same
    weights and statistics as the eager step (its oracle), dropout included."""
    pytest.importorskip("jax")
    from xpnet.training import _jit

    X, y = _data(200)
    runs = {}
    for compiled in (True, False):
        monkeypatch.setenv("XPNET_JAX_JIT", "1" if compiled else "0")
        ran = []
        real = _jit.JitStep.step

        def counting(self, k, perm, _real=real, _ran=ran):
            out = _real(self, k, perm)
            _ran.append(out is not None)
            return out

        monkeypatch.setattr(_jit.JitStep, "step", counting)
        m = xn.Sequential([xn.Dense(8), xn.BatchNorm(), xn.ReLU(), xn.Dropout(0.2),
                           xn.Dense(2)], in_features=4, backend="jax", dtype="float64",
                          seed=0)
        m.fit(m.backend.asarray(X), m.backend.asarray(y), epochs=2, batch_size=32,
              verbose=0, optimizer=xn.Adam(1e-2))
        monkeypatch.setattr(_jit.JitStep, "step", real)
        runs[compiled] = (m, sum(ran))
    (jm, jsteps), (em, esteps) = runs[True], runs[False]
    assert jsteps == 14 and esteps == 0
    for got, want in ((jm.params, em.params), (jm.buffers, em.buffers)):
        for k in want:
            # a bias before BatchNorm has a zero gradient: its values are rounding noise
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-8,
                                       atol=1e-8, err_msg=k)
    assert float(np.abs(np.asarray(jm.buffers["1.running_mean"])).max()) > 0.1


def test_a_frozen_batchnorm_keeps_gamma_and_beta_but_follows_the_batches(backend):
    X, y = _data(64)
    m = _bn_model(backend).freeze(0)
    m.fit(X, y, epochs=1, batch_size=32, shuffle=False, verbose=0, optimizer=xn.Adam(1e-2))
    assert "0.gamma" not in m.trainable_keys
    np.testing.assert_array_equal(xn.to_numpy(m.params["0.gamma"]), np.ones(4))
    np.testing.assert_allclose(xn.to_numpy(m.buffers["0.running_mean"]),
                               0.9 * 0.1 * X[:32].mean(axis=0) + 0.1 * X[32:].mean(axis=0),
                               rtol=1e-12)
