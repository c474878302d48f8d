"""Reliability of the model's own checks: inputs in the model's dtype, finite outputs,
no state change before every check has passed, masked arrays refused."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn


def _data(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)), rng.integers(0, 2, n)


def test_float64_input_beyond_float32_range_is_refused():
    m = xn.MLP([3, 2], backend="numpy")
    X, y = _data()
    X[3, 1] = 1e39  # finite in float64, inf once cast to the model's float32
    for call in (lambda: m.predict(X), lambda: m.predict_proba(X),
                 lambda: m.evaluate(X, y), lambda: m.fit(X, y, verbose=0)):
        with pytest.raises(ValueError, match=r"values up to 1e\+39, beyond float32's range"):
            call()
    # the same data trains in float64
    xn.MLP([3, 2], backend="numpy", dtype="float64").fit(X, y, epochs=1, verbose=0)


def test_nonfinite_outputs_name_the_weights(backend):
    m = xn.MLP([3, 2], backend=backend)
    b = xn.to_numpy(m.params["0.b"]).copy()
    b[0] = np.nan
    m.params["0.b"] = m.backend.asarray(b)  # set_params would refuse it
    X, y = _data()
    for call in (lambda: m.predict(X), lambda: m.predict_proba(X), lambda: m.evaluate(X, y)):
        with pytest.raises(FloatingPointError,
                           match=r"not finite for 16 of 16 rows: the parameters \['0.b'\]"):
            call()


def test_overflowing_forward_pass_names_the_inputs():
    m = xn.MLP([3, 2], backend="numpy")
    m.set_params({"0.W": np.full((3, 2), 1e30, "float32"), "0.b": np.zeros(2, "float32")})
    X = np.zeros((4, 3), "float32")
    X[1] = 1e10  # 3e40 overflows float32
    with pytest.raises(FloatingPointError, match=r"for 1 of 4 rows: the inputs are too large"):
        m.predict(X)


def test_masked_arrays_are_refused_before_any_state_changes():
    X, y = _data()
    m = xn.MLP([3, 2], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    opt, state_step = m.optimizer, m.optimizer.state["step"]
    W = m.params["0.W"].copy()
    Xm = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    with pytest.raises(TypeError, match="X is a masked array"):
        m.fit(Xm, y, optimizer=xn.SGD(lr=0.1), verbose=0)
    with pytest.raises(TypeError, match="y is a masked array"):
        m.fit(X, np.ma.masked_array(y), optimizer=xn.SGD(lr=0.1), verbose=0)
    assert m.optimizer is opt and m.optimizer.state["step"] == state_step
    np.testing.assert_array_equal(m.params["0.W"], W)


def test_fit_changes_no_state_when_a_late_check_fails():
    X, y = _data()
    m = xn.MLP([3, 2], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, verbose=0)
    opt, state = m.optimizer, m.optimizer.state
    new_opt = xn.SGD(lr=0.1)
    with pytest.raises(ValueError, match="validation X has 4 features"):
        m.fit(X, y, optimizer=new_opt, validation_data=(np.zeros((2, 4)), y[:2]), verbose=0)
    assert m.optimizer is opt and m.optimizer.state is state and new_opt.state is None


def _saved_with_slot(tmp_path, slot, value):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    X, y = _data()
    m = xn.MLP([3, 2], backend="numpy", seed=0)
    m.fit(X, y, epochs=1, optimizer=xn.Adam(), verbose=0)
    path = xn.save(m, tmp_path / "m.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    tensors[f"optimizer/{slot}/0.W"][0, 0] = value
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("slot,value,match", [
    ("exp_avg", np.inf, r"'optimizer/exp_avg/0.W' contains NaN or inf"),
    ("exp_avg_sq", np.nan, r"'optimizer/exp_avg_sq/0.W' contains NaN or inf"),
    ("exp_avg_sq", -1.0, r"'optimizer/exp_avg_sq/0.W' holds negative values"),
])
def test_loader_refuses_bad_optimizer_slots(tmp_path, slot, value, match):
    path = _saved_with_slot(tmp_path, slot, value)
    with pytest.raises(xn.CheckpointError, match=match):
        xn.load_checkpoint(path, backend="numpy")


def test_negative_first_moment_is_fine(tmp_path):
    path = _saved_with_slot(tmp_path, "exp_avg", -1.0)
    assert xn.load_checkpoint(path, backend="numpy").optimizer.state["step"] == 1


# ----------------------------------------------------------------------------- manifests
def _edit_meta(path, key, edit):
    """Rewrite one metadata entry of a saved checkpoint (a hand-edited file)."""
    import json
    import struct

    blob = path.read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header["__metadata__"]
    meta[key] = edit(meta[key])
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n:])


def _json_edit(change):
    import json

    def edit(text):
        value = json.loads(text)
        change(value)
        return json.dumps(value)
    return edit


@pytest.mark.parametrize("key, change, match", [
    ("model", lambda m: m["layers"][0]["config"].update(bias="no"),
     "layer Dense: 'bias' must be bool, got str 'no'"),
    ("model", lambda m: m["layers"][0]["config"].update(units=8.0),
     "layer Dense: 'units' must be int, got float 8.0"),
    ("model", lambda m: m["layers"][1].update({"class": "LeakyReLU",
                                               "config": {"negative_slope": "0.1"}}),
     "layer LeakyReLU: 'negative_slope' must be float, got str '0.1'"),
    ("optimizer", lambda o: o["config"].update(nesterov="yes"),
     "optimizer SGD: 'nesterov' must be bool, got str 'yes'"),
    ("optimizer", lambda o: o["config"].update(momentum=True),
     "optimizer SGD: 'momentum' must be float, got bool True"),
], ids=["bias-no", "units-float", "slope-str", "nesterov-yes", "momentum-bool"])
def test_manifest_values_are_type_checked_when_loading(tmp_path, key, change, match):
    """``bias: "no"`` and ``nesterov: "yes"`` loaded (as true)."""
    m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    m.fit(*_data(), epochs=1, verbose=0, optimizer=xn.SGD(momentum=0.9, nesterov=True))
    path = xn.save(m, tmp_path / "m.safetensors")
    _edit_meta(path, key, _json_edit(change))
    with pytest.raises(xn.checkpoint.CheckpointError, match=match):
        xn.load_checkpoint(path, backend="numpy")


@pytest.mark.parametrize("version", [" 1", "1 ", "\u0661", "+1", "01", "1.0"])
def test_format_version_must_be_exactly_what_save_writes(tmp_path, version):
    """``" 1"`` and Arabic-Indic digits were taken as version 1."""
    path = xn.save(xn.MLP([4, 3], backend="numpy"), tmp_path / "m.safetensors")
    _edit_meta(path, "format_version", lambda v: version)
    with pytest.raises(xn.checkpoint.CheckpointError, match="format version"):
        xn.load_checkpoint(path, backend="numpy")


@pytest.mark.parametrize("shape", [[-8, -8], [0, 64], [1, 1, 1, 1, 64], []])
def test_a_dataset_image_shape_must_be_positive(tmp_path, shape):
    """An .npz ``image_shape`` of [-8, -8] trained, then every later command called the
    run damaged."""
    from xpnet.datasets import DatasetError

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((6, 64)), y_train=np.arange(6) % 2,
             x_test=rng.random((2, 64)), y_test=np.arange(2), image_shape=np.array(shape,
                                                                                   int))
    with pytest.raises(DatasetError, match="image_shape must be 1 to 4 positive integers"):
        xn.datasets.load(tmp_path / "d.npz")


def test_class_names_are_bounded_in_size(tmp_path):
    """Three class names of 40 MB each were accepted and rewritten into run.json every
    epoch until the first save failed."""
    from xpnet.datasets import DatasetError

    rng = np.random.default_rng(0)
    data = dict(x_train=rng.random((6, 4)), y_train=np.arange(6) % 3, x_test=rng.random((3, 4)),
                y_test=np.arange(3))
    with pytest.raises(DatasetError, match="class name 1 has 257 characters"):
        xn.datasets.Dataset.from_arrays("d", **data, class_names=["a", "b" * 257, "c"])
    np.savez(tmp_path / "big.npz", **data, class_names=np.array(["a", "b", "c" * 6_000_000]))
    with pytest.raises(DatasetError, match=r"class_names takes 72,000,\d+ bytes; at most "):
        xn.datasets.load(tmp_path / "big.npz")
    names = ["cat", "dog", "x" * 256]  # 256 characters are fine
    assert xn.datasets.Dataset.from_arrays("d", **data, class_names=names).class_names[2] \
        == "x" * 256


def test_a_hostile_manifest_gives_a_short_message(tmp_path):
    """A hostile config yielded a 4-20 MB one-line error message."""
    path = xn.save(xn.MLP([3, 2], backend="numpy"), tmp_path / "m.safetensors")
    _edit_meta(path, "model", _json_edit(
        lambda m: m["layers"][0]["config"].update(junk="x" * 4_000_000)))
    with pytest.raises(xn.checkpoint.CheckpointError) as info:
        xn.load_checkpoint(path, backend="numpy")
    message = str(info.value)
    assert "bad model architecture in metadata" in message and len(message) < 600
    assert "characters)" in message


def test_scikit_learn_is_pinned_to_the_tested_range():
    """xpnet.sklearn imports scikit-learn's private helpers, with no upper bound on the
    version: each requirement has one, and the installed (tested) release is inside it."""
    import re
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    Requirement = pytest.importorskip("packaging.requirements").Requirement
    sklearn = pytest.importorskip("sklearn")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    found = [Requirement(r) for extra in pyproject["project"]["optional-dependencies"].values()
             for r in extra if re.match(r"scikit-learn\b", r)]
    assert found
    for req in found:
        assert any(spec.operator in ("<", "<=", "~=", "==") for spec in req.specifier), req
        assert req.specifier.contains(sklearn.__version__), (req, sklearn.__version__)


def test_a_checkpoint_with_thousands_of_unused_tensors_is_refused_unread(tmp_path):
    """A 19 MB checkpoint with 300k unused empty tensors cost +248 MB to load."""
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = xn.save(xn.MLP([3, 2], backend="numpy"), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    layers = len(json.loads(meta["model"])["layers"])
    empty = np.zeros(0, np.float32)
    tensors.update({f"params/0.extra{i}": empty for i in range(1024 * (layers + 1))})
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(xn.checkpoint.CheckpointError,
                       match=rf"holds {len(tensors):,} tensors; the model and optimizer it "
                             rf"describes can use at most {1024 * (layers + 1):,}"):
        xn.load_checkpoint(path, backend="numpy")


def test_a_checkpoint_with_too_many_tensors_is_refused_before_its_header_is_parsed(tmp_path):
    """Refused from a count in the raw header, whatever the manifest says (parsing the
    header of 300k tensors alone cost 275 MB)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = xn.save(xn.MLP([3, 2], backend="numpy"), tmp_path / "m.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    empty = np.zeros(0, np.float32)
    tensors.update({f"params/0.extra{i}": empty for i in range(70_000)})
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(xn.checkpoint.CheckpointError,
                       match=rf"holds {len(tensors):,} tensors; an xpnet checkpoint holds at "
                             r"most 65,536"):
        xn.load_checkpoint(path, backend="numpy")
