"""ONNX export: the graph traced from the layers' forward code, run in onnxruntime.

Every comparison is against the model itself: ``predict_proba`` (float32 within 1e-6,
float64 within 1e-12), ``predict`` (equal labels) and ``forward`` (the logits, within the
same tolerances scaled by their largest magnitude).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet.export import ExportError

HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason="ndonnx, onnx and onnxruntime are not installed (pip install "
                          "ndonnx onnx onnxruntime; ndonnx needs Python >= 3.11)")
ATOL = {"float32": 1e-6, "float64": 1e-12}
ROWS = (1, 7, 1000)


def session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(sess, X, names=None):
    return dict(zip(names or [o.name for o in sess.get_outputs()],
                    sess.run(names, {"input": X}), strict=True))


def inputs(rows, features, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, features)).astype(dtype)


def assert_matches_model(model, path, rows=ROWS):
    """proba, labels and logits of the graph equal the model's on random rows."""
    sess = session(path)
    atol = ATOL[model.dtype_name]
    for n in rows:
        X = inputs(n, model.in_features, model.dtype_name, seed=n)
        got = run(sess, X)
        logits = xn.to_numpy(model.forward(X))
        np.testing.assert_allclose(got["proba"], xn.to_numpy(model.predict_proba(X)),
                                   rtol=0, atol=atol, err_msg=f"proba, {n} rows")
        np.testing.assert_array_equal(got["labels"], xn.to_numpy(model.predict(X)),
                                      err_msg=f"labels, {n} rows")
        scale = max(1.0, float(np.abs(logits).max()))
        np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=atol * scale,
                                   err_msg=f"logits, {n} rows")
        assert got["proba"].dtype == np.dtype(model.dtype_name)
        assert got["labels"].dtype == np.int64


def all_layers():
    return [xn.Dense(16), xn.ReLU(), xn.Dense(16, init="glorot_uniform"), xn.LeakyReLU(0.2),
            xn.Dropout(0.3), xn.Dense(12), xn.Tanh(), xn.Dense(12, bias=False), xn.Sigmoid(),
            xn.Dense(8), xn.GELU(), xn.Dense(3)]


# one model per layer type (an activation alone is a valid model: softmax over its inputs;
# each traced matrix product costs ndonnx about half a second, so only Dense models have one)
LAYER_MODELS = {
    "Dense": lambda: [xn.Dense(3)],
    "Dense-no-bias": lambda: [xn.Dense(3, bias=False)],
    **{name: (lambda cls=cls: [cls()]) for name, cls in xn.layers.ACTIVATIONS.items()},
    "LeakyReLU-0.3": lambda: [xn.LeakyReLU(0.3)],
    "Dropout": lambda: [xn.Dropout(0.5)],
    "all": all_layers,
}


# ------------------------------------------------------------------------------ numbers
@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layers", list(LAYER_MODELS), ids=list(LAYER_MODELS))
def test_every_layer_matches_predict(tmp_path, layers, dtype):
    model = xn.Sequential(LAYER_MODELS[layers](), in_features=5, backend="numpy",
                          dtype=dtype, seed=3)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["proba", "labels", "logits"])
    assert_matches_model(model, path)


@needs_onnx
def test_model_on_any_backend_exports_the_same_graph(tmp_path, backend):
    model = xn.Sequential([xn.Dense(6), xn.GELU(), xn.Dense(3)], in_features=5,
                          backend=backend, dtype="float64", seed=1)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["proba", "labels", "logits"])
    assert_matches_model(model, path, rows=(7,))


@needs_onnx
@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mse"])
def test_other_losses_labels_are_what_predict_returns(tmp_path, loss):
    model = xn.MLP([4, 8, 2], loss=loss, activation="tanh", backend="numpy",
                   dtype="float64", seed=0)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["labels", "proba"])
    X = inputs(50, 4, "float64")
    got = run(session(path), X)
    if loss == "mse":  # predict returns the outputs themselves
        np.testing.assert_allclose(got["labels"], model.predict(X), rtol=0, atol=1e-12)
    else:
        np.testing.assert_array_equal(got["labels"], model.predict(X))
    np.testing.assert_allclose(got["proba"], model.predict_proba(X), rtol=0, atol=1e-12)
    assert got["labels"].dtype == (np.int64 if loss != "mse" else np.float64)


class _RenamedCrossEntropy(xn.SoftmaxCrossEntropy):
    name = "renamed_cross_entropy_onnx_test"


@needs_onnx
def test_a_custom_classification_loss_exports_the_labels_predict_returns(tmp_path):
    """The labels head is the loss's own predict_labels, whatever the loss is called."""
    model = xn.MLP([4, 8, 3], loss=_RenamedCrossEntropy(), backend="numpy", seed=0)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs="labels")
    X = inputs(50, 4, "float32")
    got = run(session(path), X)["labels"]
    np.testing.assert_array_equal(got, model.predict(X))
    assert got.dtype == np.int64 and len(set(got.tolist())) > 1


@needs_onnx
def test_static_batch_and_opset(tmp_path):
    model = xn.MLP([6, 5, 4], backend="numpy", seed=0)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs="labels", batch=7, opset=20)
    sess = session(path)
    assert sess.get_inputs()[0].shape == [7, 6]
    assert sess.get_outputs()[0].shape == [7]
    X = inputs(7, 6, "float32")
    np.testing.assert_array_equal(run(sess, X)["labels"], model.predict(X))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        sess.run(None, {"input": X[:3]})
    import onnx

    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain == ""] == [20]


@needs_onnx
def test_dynamic_batch_is_named_and_metadata_is_stored(tmp_path):
    import onnx

    model = xn.MLP([6, 5, 4], backend="numpy", dtype="float64", seed=0)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["proba", "labels"],
                          class_names=["a", "b", "c", "d"])
    onnx.checker.check_model(str(path), full_check=True)
    sess = session(path)
    assert sess.get_inputs()[0].name == "input"
    assert sess.get_inputs()[0].shape == ["batch", 6]
    assert sess.get_inputs()[0].type == "tensor(double)"
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("proba", ["batch", 4]),
                                                               ("labels", ["batch"])]
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["xpnet_version"] == xn.__version__
    assert json.loads(meta["input"]) == {"name": "input", "dtype": "float64",
                                         "shape": ["batch", 6]}
    assert json.loads(meta["outputs"]) == [
        {"name": "proba", "dtype": "float64", "shape": ["batch", 4]},
        {"name": "labels", "dtype": "int64", "shape": ["batch"]}]
    assert json.loads(meta["class_names"]) == ["a", "b", "c", "d"]
    assert json.loads(meta["model"]) == model.get_config()
    assert meta["loss"] == "cross_entropy" and "dataset" not in meta
    assert sess.get_modelmeta().producer_name == "xpnet"


# ------------------------------------------------------------------------------ custom layers
class Scale(xn.Layer):
    """A learned per-feature scale followed by softplus, in standard Array API calls."""

    def init(self, in_features, rng, *, backend, dtype):
        xp = backend.xp
        return {"s": xp.linspace(0.5, 2.0, in_features, dtype=dtype, device=backend.device)}

    def forward(self, params, x, *, train=False):
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        z = x * params["s"]
        return xp.log1p(xp.exp(-xp.abs(z))) + xp.maximum(z, 0.0), z


class Erf(xn.Layer):
    """Calls ``erf``, which the Array API standard does not have."""

    def forward(self, params, x, *, train=False):
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        return xp.erf(x), x


class ToNumPy(xn.Layer):
    """Leaves the namespace: NumPy does the work."""

    def forward(self, params, x, *, train=False):
        return np.asarray(x), x


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_custom_array_api_layer_exports(tmp_path, dtype):
    model = xn.Sequential([xn.Dense(8), Scale(), xn.Dense(3)], in_features=4,
                          backend="numpy", dtype=dtype, seed=0)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["proba", "labels", "logits"])
    assert_matches_model(model, path)


@needs_onnx
@pytest.mark.parametrize("layer,text", [
    (Erf(), r"layer 1 \(Erf\) cannot be traced to ONNX: `return xp.erf\(x\), x` "
            r"\(test_onnx.py:\d+\) failed with AttributeError: .*erf"),
    (ToNumPy(), r"layer 1 \(ToNumPy\) cannot be traced to ONNX: its forward returned ndarray"),
], ids=["non-standard-function", "numpy"])
def test_untraceable_layer_names_layer_and_operation(tmp_path, layer, text):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    model = xn.Sequential([xn.Dense(8), layer, xn.Dense(3)], in_features=4, backend="numpy")
    with pytest.raises(ExportError, match=text):
        xn.export_onnx(model, target)
    assert target.read_bytes() == b"previous"  # nothing half-written, no temp file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,exc,text", [
    ({"outputs": "x"}, ValueError, "outputs must be one of 'proba', 'logits', 'labels'"),
    ({"outputs": []}, ValueError, "outputs must be one of"),
    ({"outputs": ["proba", "proba"]}, ValueError, "lists a name twice"),
    ({"batch": 0}, ValueError, "batch must be 'dynamic' or a positive int, got 0"),
    ({"batch": "fixed"}, ValueError, "batch must be 'dynamic'"),
    ({"batch": True}, ValueError, "batch must be"),
    ({"opset": 0}, ValueError, "opset must be None"),
    ({"class_names": ["a", "b"]}, ValueError, "2 class names .* 3 outputs"),
    ({"class_names": "abc"}, ValueError, "must be a list of str"),
], ids=["outputs", "no-outputs", "twice", "batch0", "batch-str", "batch-bool", "opset",
        "class-count", "class-str"])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, exc, text):
    model = xn.MLP([4, 3], backend="numpy")
    with pytest.raises(exc, match=text):
        xn.export_onnx(model, tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_non_model_and_bad_path_are_refused(tmp_path):
    with pytest.raises(TypeError, match="expects an xpnet model .* got dict"):
        xn.export_onnx({"0.W": np.ones((2, 2))}, tmp_path / "m.onnx")
    model = xn.MLP([4, 3], backend="numpy")
    with pytest.raises(FileNotFoundError, match="folder .*nowhere does not exist"):
        xn.export_onnx(model, tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        xn.export_onnx(model, tmp_path)
    with pytest.raises(TypeError, match="path must be a str"):
        xn.export_onnx(model, 3)
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_unconvertible_opset_is_an_export_error(tmp_path):
    model = xn.MLP([4, 3], backend="numpy")
    with pytest.raises(ExportError, match="cannot convert the graph from opset 21 .* to opset 13"):
        xn.export_onnx(model, tmp_path / "m.onnx", opset=13)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def without_ndonnx(monkeypatch):
    """Make ndonnx look uninstalled (it may really be missing)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ndonnx" else real(name, *a))


def test_missing_dependency_says_what_to_install(tmp_path, without_ndonnx):
    text = (r'needs ndonnx, onnx and onnxruntime \(ndonnx.* not installed\): '
            r"pip install ndonnx onnx onnxruntime")
    with pytest.raises(ImportError, match=text):
        xn.export_onnx(xn.MLP([4, 3], backend="numpy"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_dependency_is_a_usage_error(tmp_path, without_ndonnx, capsys):
    from xpnet.cli import main

    xn.save(xn.MLP([4, 3], backend="numpy"), tmp_path / "m.safetensors")
    assert main(["export", str(tmp_path / "m.safetensors"), str(tmp_path / "m.onnx")]) == 2
    assert "pip install ndonnx onnx onnxruntime" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------ the command
def xpnet(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, XPNET_DATA_DIR=str(cwd / "cache"), NO_COLOR="1", COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_onnx
def test_digits_exported_by_the_cli_classify_the_test_set_identically(tmp_path):
    train = xpnet("train", "--backend", "numpy", "--epochs", "3", "--out", "run", "--quiet",
                  cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    proc = xpnet("export", "run", "digits.onnx", "--outputs", "labels,proba", "--json",
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["outputs"][0] == {"name": "labels", "dtype": "int64", "shape": ["batch"]}
    assert info["input"]["shape"] == ["batch", 64]
    assert info["class_names"] == [str(i) for i in range(10)]
    ds = xn.datasets.load("digits")
    model = xn.load(tmp_path / "run" / "model.safetensors", backend="numpy")
    sess = session(tmp_path / "digits.onnx")
    got = run(sess, ds.x_test)
    np.testing.assert_array_equal(got["labels"], model.predict(ds.x_test))
    np.testing.assert_allclose(got["proba"], model.predict_proba(ds.x_test), rtol=0, atol=1e-6)
    accuracy = float(np.mean(got["labels"] == ds.y_test))
    assert accuracy == pytest.approx(model.evaluate(ds.x_test, ds.y_test)["accuracy"])
    assert accuracy > 0.85
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["dataset"])["name"] == "digits"
    assert json.loads(meta["dataset"])["image_shape"] == [8, 8]


@needs_onnx
def test_cli_text_output_and_errors(tmp_path, capsys, monkeypatch):
    from xpnet.cli import main

    monkeypatch.chdir(tmp_path)
    xn.save(xn.MLP([4, 3], backend="numpy"), tmp_path / "m.safetensors")
    assert main(["export", "m.safetensors", "m.onnx", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    assert "wrote m.onnx" in out and "input   input   float32  [5, 4]" in out
    assert "output  proba   float32  [5, 3]" in out
    for args, code, text in [
        (["new.onnx", "--outputs", "x"], 2, "--outputs: expected a comma-separated list"),
        (["new.onnx", "--outputs", "proba,proba"], 2, "listed twice"),
        (["new.onnx", "--batch", "0"], 2, "--batch: must be an integer >= 1"),
        (["new.onnx", "--opset", "13"], 1, "cannot convert the graph"),
        (["m.safetensors"], 2, "is the model file itself"),
        (["no/such/dir/new.onnx"], 3, "folder no/such/dir does not exist"),
    ]:
        assert main(["export", "m.safetensors", *args]) == code, args
        err = capsys.readouterr().err
        assert err.startswith("xpnet: error: ") and text in err, err
        assert "Traceback" not in err and not (tmp_path / "new.onnx").exists()
    assert main(["export", "nope.safetensors", "new.onnx"]) == 3
    assert "does not exist" in capsys.readouterr().err
