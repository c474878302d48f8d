"""Normalization: adapted statistics, frozen parameters, every backend, checkpoints, ONNX."""

from __future__ import annotations

import importlib.util
import pickle
import tracemalloc

import numpy as np
import pytest

import xpnet as xn


def raw_blobs(n=400, seed=0):
    """Three classes in unscaled columns (scales 1e3, 1e-2, 50) plus a one-hot column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0, 0.0], [-2.0, 1.0, 0.0], [0.0, -2.0, 1.5]])
    X = centers[y] + rng.normal(scale=0.7, size=(n, 3))
    X = X * np.array([1e3, 1e-2, 50.0]) + np.array([5e4, 3.0, -200.0])
    onehot = (rng.random(n) > 0.5).astype(np.float64)
    return np.column_stack([X, onehot]), y.astype(np.int64)


def model_with(norm, backend="numpy", dtype="float64", seed=0):
    return xn.Sequential([norm, xn.Dense(16), xn.ReLU(), xn.Dense(3)], in_features=4,
                         backend=backend, dtype=dtype, seed=seed)


# ------------------------------------------------------------------------------ statistics
def test_adapt_gives_the_population_mean_and_std_in_chunks():
    X, _ = raw_blobs()
    norm = xn.Normalization().adapt(X, batch_size=37)   # 11 chunks, the last short
    np.testing.assert_allclose(norm.mean_, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(norm.scale_, X.std(axis=0), rtol=1e-12)
    assert norm.n_samples_ == 400


@pytest.mark.parametrize("columns", [[0, 1, 2], [True, True, True, False],
                                     np.array([2, 0, 1])])
def test_columns_not_named_pass_through(columns):
    X, _ = raw_blobs()
    norm = xn.Normalization(columns=columns).adapt(X)
    assert norm.get_config() == {"columns": [0, 1, 2]}
    assert norm.mean_[3] == 0.0 and norm.scale_[3] == 1.0
    m = model_with(norm)
    out = xn.to_numpy(m.forward(X, return_intermediates=True)[0])
    assert np.array_equal(out[:, 3], X[:, 3])       # the one-hot column, bit for bit
    np.testing.assert_allclose(out[:, :3].mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(out[:, :3].std(axis=0), 1.0, rtol=1e-10)


def test_constant_columns_get_scale_one():
    X = np.column_stack([np.full(50, 0.1), np.zeros(50), np.arange(50.0)])
    norm = xn.Normalization().adapt(X, batch_size=7)
    assert norm.scale_[:2].tolist() == [1.0, 1.0]
    y = xn.to_numpy(norm.forward({"mean": norm.mean_, "scale": norm.scale_}, X)[0])
    assert np.all(np.isfinite(y)) and np.abs(y[:, :2]).max() < 1e-12


def test_adapt_takes_lists_frames_and_backend_arrays(backend):
    X, _ = raw_blobs(60)
    ref = xn.Normalization().adapt(X)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).astype({"d": bool})
    be = xn.get_backend(backend)
    for data in (X.tolist(), frame, be.asarray(X, dtype=be.wide_float)):
        norm = xn.Normalization().adapt(data, batch_size=25)
        rtol = 1e-6 if be.wide_float == be.xp.float32 else 1e-12
        np.testing.assert_allclose(norm.mean_, ref.mean_, rtol=rtol)
        np.testing.assert_allclose(norm.scale_, ref.scale_, rtol=rtol)


def test_adapt_streams_a_memmap(tmp_path):
    n, d = 200_000, 20                       # 32 MB of float64
    path = tmp_path / "x.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    mm[:] = np.random.default_rng(0).normal(3.0, 2.0, size=(n, d))
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    tracemalloc.start()
    norm = xn.Normalization().adapt(X, batch_size=4096)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 4096 * d * 8, peak      # a few chunks, not the 32 MB array
    np.testing.assert_allclose(norm.mean_, np.asarray(X).mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("data, columns, exc, text", [
    (np.zeros((0, 3)), None, ValueError, "non-empty 2-D"),
    (np.zeros(3), None, ValueError, "non-empty 2-D"),
    (np.array([[1.0, np.nan], [2.0, 3.0]]), None, ValueError, "1 NaN or infinite values"),
    (np.array([[1.0, 2.0, 0.0], [2.0, 3.0, np.inf], [np.nan, 1.0, np.nan]]), [0, 2], ValueError,
     r"3 NaN or infinite values in rows 0..2, the first at row 1, column 2; clean"),
    (np.ones((4, 2)), [0, 5], ValueError, r"columns \[5\] are out of range for 2"),
    (np.ones((4, 3)), [True, False], ValueError, r"columns is a boolean mask of 2 entries "
                                                 r"for 3 input columns"),
    (np.ones((4, 3)), np.array([True, False, True, True]), ValueError, "mask of 4 entries"),
    (np.array([["a", "b"]]), None, TypeError, "unsupported dtype"),
])
def test_bad_adapt_data_is_refused(data, columns, exc, text):
    with pytest.raises(exc, match=text):
        xn.Normalization(columns=columns).adapt(data)


@pytest.mark.parametrize("columns, text", [
    ("abc", "columns must be None"), ([0, -1], "non-negative"), ([1, 1], "twice"),
    ([0.5], "non-negative column indices"),
])
def test_bad_columns_are_refused(columns, text):
    with pytest.raises((TypeError, ValueError), match=text):
        xn.Normalization(columns=columns)


def test_an_adapted_layer_refuses_another_width():
    norm = xn.Normalization().adapt(np.ones((3, 5)))
    with pytest.raises(ValueError, match="adapted on 5 columns, but the model gives it 4"):
        model_with(norm)


def test_unadapted_layer_is_the_identity():
    X, _ = raw_blobs(10)
    m = model_with(xn.Normalization())
    assert np.array_equal(xn.to_numpy(m.forward(X, return_intermediates=True)[0]), X)


# ------------------------------------------------------------------------------ math
def test_forward_and_backward_on_every_backend(backend):
    X, _ = raw_blobs(30)
    norm = xn.Normalization(columns=[0, 1, 2]).adapt(X)
    m = model_with(norm, backend=backend)
    be = m.backend
    xb = be.asarray(X, dtype=m.dtype)
    p = m.layer_params(0)
    y, cache = norm.forward(p, xb)
    assert be.owns(y)
    np.testing.assert_allclose(xn.to_numpy(y), (X - norm.mean_) / norm.scale_, rtol=1e-12)
    dy = np.random.default_rng(1).normal(size=X.shape)
    dx, grads = norm.backward(p, cache, be.asarray(dy, dtype=m.dtype), need_param_grads=False)
    assert grads == {}
    np.testing.assert_allclose(xn.to_numpy(dx), dy / norm.scale_, rtol=1e-12)
    Z = np.random.default_rng(2).normal(1.0, 3.0, size=(6, 4))
    report = xn.testing.check_gradients(xn.Normalization().adapt(Z), Z[:4], backend=backend)
    assert set(report) == {"x", "mean", "scale"}


# ------------------------------------------------------------------------------ frozen
def test_training_never_changes_the_statistics(backend):
    X, y = raw_blobs()
    norm = xn.Normalization(columns=[0, 1, 2]).adapt(X)
    m = model_with(norm, backend=backend, dtype="float32")
    assert m.layers[0].trainable is False
    m.unfreeze()                                   # leaves the Normalization frozen
    assert m.layers[0].trainable is False and "0.mean" not in m.trainable_keys
    before = {k: xn.to_numpy(m.params[k]).copy() for k in ("0.mean", "0.scale")}
    opt = xn.AdamW(lr=1e-2, weight_decay=0.5)
    h = m.fit(X, y, epochs=15, batch_size=64, optimizer=opt, verbose=0, seed=0)
    for k, v in before.items():
        assert xn.to_numpy(m.params[k]).tobytes() == v.tobytes(), k
    assert all("0.mean" not in opt.state[s] for s in opt.slots)
    assert h.history["accuracy"][-1] > 0.9        # raw columns, scaled inside the model


def test_without_normalization_the_raw_columns_do_not_train():
    X, y = raw_blobs()
    plain = xn.Sequential([xn.Dense(16), xn.ReLU(), xn.Dense(3)], in_features=4,
                          backend="numpy", dtype="float32", seed=0)
    plain.fit(X, y, epochs=15, batch_size=64, optimizer=xn.Adam(lr=1e-2), verbose=0, seed=0)
    normed = model_with(xn.Normalization().adapt(X), dtype="float32")
    normed.fit(X, y, epochs=15, batch_size=64, optimizer=xn.Adam(lr=1e-2), verbose=0, seed=0)
    assert normed.evaluate(X, y)["accuracy"] > plain.evaluate(X, y)["accuracy"] + 0.1


# ------------------------------------------------------------------------------ saving
def test_checkpoint_pickle_and_to_keep_the_statistics(tmp_path, backend):
    X, y = raw_blobs()
    m = model_with(xn.Normalization(columns=[0, 1, 2]).adapt(X), dtype="float32")
    m.fit(X, y, epochs=2, batch_size=64, verbose=0, seed=0)
    expect = xn.to_numpy(m.predict_proba(X))
    path = xn.save(m, tmp_path / "m.safetensors")
    loaded = xn.load(path, backend=backend)
    assert loaded.get_config() == m.get_config()
    assert loaded.get_config()["layers"][0] == {"class": "Normalization",
                                                "config": {"columns": [0, 1, 2]},
                                                "trainable": False}
    for k in m.params:
        assert xn.to_numpy(loaded.params[k]).tobytes() == xn.to_numpy(m.params[k]).tobytes()
    np.testing.assert_allclose(xn.to_numpy(loaded.predict_proba(X)), expect, atol=1e-5)
    again = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(xn.to_numpy(again.predict_proba(X)), expect)
    moved = m.to(backend)
    np.testing.assert_allclose(xn.to_numpy(moved.predict_proba(X)), expect, atol=1e-5)


HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))


@pytest.mark.skipif(not HAVE_ONNX, reason="ndonnx, onnx and onnxruntime are not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_export_takes_raw_rows(tmp_path, dtype):
    import onnxruntime as ort

    X, y = raw_blobs()
    m = model_with(xn.Normalization(columns=[0, 1, 2]).adapt(X), dtype=dtype)
    m.fit(X, y, epochs=3, batch_size=64, verbose=0, seed=0)
    path = xn.export_onnx(m, tmp_path / "m.onnx", outputs=["proba", "labels"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    proba, labels = sess.run(["proba", "labels"], {"input": X.astype(dtype)})
    np.testing.assert_allclose(proba, xn.to_numpy(m.predict_proba(X)), rtol=0,
                               atol={"float32": 1e-6, "float64": 1e-12}[dtype])
    np.testing.assert_array_equal(labels, xn.to_numpy(m.predict(X)))
    ck = xn.load(xn.save(m, tmp_path / "m.safetensors"), backend="numpy")
    np.testing.assert_array_equal(xn.to_numpy(ck.predict(X)), labels)
