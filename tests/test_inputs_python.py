"""What fit, predict, predict_proba and evaluate take in Python: pandas frames, objects with
__array__ or __dlpack__, memory maps of any real dtype (streamed), and the scaling warning."""

from __future__ import annotations

import logging
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import xpnet as xn

pd = pytest.importorskip("pandas")


def table(n=240, seed=0):
    """A frame of float, int and bool columns, its array, and labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "count": rng.integers(0, 4, size=n),
                          "flag": rng.random(n) > 0.5})
    y = ((frame["x"] > 0) ^ frame["flag"]).astype("int64")
    X = np.column_stack([frame["x"], frame["count"], frame["flag"]]).astype(np.float64)
    return frame, X, y


def model(backend="numpy", d=3, dtype="float64", first=()):
    return xn.Sequential([*first, xn.Dense(8), xn.ReLU(), xn.Dense(2)], in_features=d,
                         backend=backend, dtype=dtype, seed=0)


# ------------------------------------------------------------------------------ frames
def test_frames_and_series_give_what_arrays_give(backend):
    frame, X, y = table()
    a, b = model(backend), model(backend)
    a.fit(X, y.to_numpy().copy(), epochs=3, batch_size=32, verbose=0, seed=1)
    b.fit(frame, y, epochs=3, batch_size=32, verbose=0, seed=1,
          validation_data=(frame.iloc[:40], y.iloc[:40]))
    for k in a.params:
        np.testing.assert_array_equal(xn.to_numpy(b.params[k]), xn.to_numpy(a.params[k]))
    assert b.evaluate(frame, y) == a.evaluate(X, y.to_numpy().copy())
    np.testing.assert_array_equal(xn.to_numpy(b.predict(frame)), xn.to_numpy(a.predict(X)))
    np.testing.assert_array_equal(xn.to_numpy(b.predict_proba(frame)),
                                  xn.to_numpy(a.predict_proba(X)))


def test_a_float32_frame_stays_float32():
    frame, _, _ = table()
    frame = frame.astype("float32")
    assert xn._checks.as_array("X", frame).dtype == np.float32


@pytest.mark.parametrize("column, values, what", [
    ("city", ["Oslo", "Rome"] * 120, "text"),
    ("city", pd.Categorical(["Oslo", "Rome"] * 120), "categories"),
])
@pytest.mark.parametrize("call", ["fit", "predict", "predict_proba", "evaluate"])
def test_text_columns_are_refused_with_how_to_encode_them(column, values, what, call):
    frame, _, y = table()
    frame[column] = values
    m = model(d=4)
    args = (frame, y) if call in ("fit", "evaluate") else (frame,)
    with pytest.raises(TypeError) as info:
        getattr(m, call)(*args)
    msg = str(info.value)
    assert f"X: column 'city' holds {what}" in msg
    assert "pandas.get_dummies(df)" in msg and "xpnet train --dataset FILE.csv" in msg


def test_date_columns_are_refused_with_a_fix():
    frame, _, y = table()
    frame["when"] = pd.date_range("2024-01-01", periods=len(frame))
    with pytest.raises(TypeError, match=r"column 'when' holds dates or times .*convert it to "
                                        r"numbers first"):
        model(d=4).fit(frame, y, verbose=0)


def test_text_labels_are_refused_with_factorize():
    frame, _, y = table()
    with pytest.raises(TypeError, match=r"y \(Series\) holds text .*pandas\.factorize\(y\)"):
        model().fit(frame, y.map({0: "no", 1: "yes"}), verbose=0)


def test_missing_values_in_a_frame_are_counted():
    frame, _, y = table()
    frame.loc[[3, 7], "x"] = np.nan
    with pytest.raises(ValueError, match="X contains 2 NaN or infinite values"):
        model().fit(frame, y, verbose=0)


class OtherDtype:
    """A dtype of another data-frame library: a name, no NumPy ``kind``."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return self.name


class OtherFrame:
    """A data frame of another library (Polars-like): columns, dtypes, to_numpy()."""

    def __init__(self, data: dict, dtypes: list):
        self.columns, self.dtypes, self._data = list(data), dtypes, data

    def to_numpy(self):
        return np.column_stack(list(self._data.values()))


def test_a_frame_of_another_library_is_read_by_its_dtype_names():
    _, X, y = table()
    other = OtherFrame({"x": X[:, 0], "count": X[:, 1].astype(np.int64), "flag": X[:, 2]},
                       [OtherDtype("Float64"), OtherDtype("Int64"), OtherDtype("Boolean")])
    a, b = model(), model()
    a.fit(X, y.to_numpy().copy(), epochs=2, verbose=0, seed=1)
    b.fit(other, y, epochs=2, verbose=0, seed=1)
    for k in a.params:
        np.testing.assert_array_equal(b.params[k], a.params[k])
    text = OtherFrame({"city": np.array(["Oslo"] * 240)}, [OtherDtype("String")])
    with pytest.raises(TypeError, match=r"column 'city' holds text \(String\); encode it"):
        model(d=1).predict(text)


# ------------------------------------------------------------------------------ protocols
class ArrayLike:
    """An object that only converts through __array__."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class DLPackOnly:
    """An object that only converts through DLPack."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("wrap", [ArrayLike, DLPackOnly])
def test_array_and_dlpack_objects_are_converted_once(wrap):
    _, X, y = table()
    a, b = model(), model()
    a.fit(X, y.to_numpy().copy(), epochs=2, verbose=0, seed=1)
    b.fit(wrap(X), wrap(y.to_numpy().copy()), epochs=2, verbose=0, seed=1)
    for k in a.params:
        np.testing.assert_array_equal(b.params[k], a.params[k])
    np.testing.assert_array_equal(b.predict(wrap(X)), a.predict(X))


def test_an_object_array_is_refused_by_what_it_is():
    with pytest.raises(TypeError, match=r"X \(ArrayLike\) converts to an array of Python "
                                        r"objects"):
        model().predict(ArrayLike(np.array([[object()] * 3])))


def test_pandas_is_not_imported_for_numpy_inputs():
    code = ("import sys, numpy as np, xpnet as xn\n"
            "m = xn.MLP([3, 2], backend='numpy')\n"
            "m.fit(np.zeros((8, 3)), np.zeros(8, 'int64'), epochs=1, verbose=0)\n"
            "m.evaluate(np.zeros((8, 3)), np.zeros(8, 'int64'))\n"
            "print('pandas' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------ scaling
def test_unscaled_features_log_one_warning_naming_the_fix(caplog):
    _, X, y = table()
    X[:, 1] = X[:, 1] * 300 + 2000                  # column 1: mean ~2450, std ~340
    m = model()
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        m.fit(X, y, epochs=1, verbose=0)
        m.fit(X, y, epochs=1, verbose=0)            # once per model
    notes = [r for r in caplog.records if r.name == "xpnet" and "unscaled" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.WARNING
    msg = notes[0].getMessage()
    assert "column 1 has mean 24" in msg and "xn.Normalization().adapt(X)" in msg


def test_scaled_features_and_normalized_models_log_nothing(caplog):
    _, X, y = table()
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        model().fit(X, y, epochs=1, verbose=0)            # |mean|, std about 1
        raw = X * 1000
        model(first=[xn.Normalization().adapt(raw)]).fit(raw, y, epochs=1, verbose=0)
    assert not [r for r in caplog.records if "unscaled" in r.getMessage()]


def test_a_normalization_never_adapted_is_named_when_the_features_look_unscaled(caplog):
    _, X, y = table()
    raw = X * 1000
    norm = xn.Normalization()
    m = model(first=[norm])
    norm.adapt(raw)  # too late: the model holds its own copy of the layer
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        m.fit(raw, y, epochs=1, verbose=0)
    notes = [r.getMessage() for r in caplog.records if "unscaled" in r.getMessage()]
    assert len(notes) == 1 and "was never adapted" in notes[0]
    assert "adapting the original afterwards changes nothing" in notes[0]


def test_a_loaded_model_whose_normalization_was_adapted_logs_nothing(caplog, tmp_path):
    """Loading rebuilds the layer from its config: its statistics come back as the model's
    parameters, and a fit of the loaded model (a resumed run) no longer calls it never
    adapted."""
    _, X, y = table()
    raw = X * 1000
    m = model(first=[xn.Normalization().adapt(raw)])
    xn.save(m, tmp_path / "m.safetensors")
    loaded = xn.load(tmp_path / "m.safetensors")
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        loaded.fit(raw, y, epochs=1, verbose=0)
        xn.load(tmp_path / "m.safetensors").fit(raw * 2, y, epochs=1, verbose=0)
    assert not [r for r in caplog.records if "unscaled" in r.getMessage()]
    fresh = model(first=[xn.Normalization()])  # never adapted: still named
    xn.save(fresh, tmp_path / "fresh.safetensors")
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        xn.load(tmp_path / "fresh.safetensors").fit(raw, y, epochs=1, verbose=0)
    notes = [r.getMessage() for r in caplog.records if "unscaled" in r.getMessage()]
    assert len(notes) == 1 and "was never adapted" in notes[0]


def test_a_column_of_labels_in_a_data_frame_is_told_how_to_take_the_column():
    _, X, y = table()
    with pytest.raises(ValueError, match=r"y\.iloc\[:, 0\]"):
        model().fit(X, pd.DataFrame({"label": y}), epochs=1, verbose=0)


def test_a_frame_with_the_columns_in_another_order_is_refused():
    frame, X, y = table()
    m = model()
    m.fit(frame, y, epochs=1, verbose=0)
    assert m.feature_names_in_ == ["x", "count", "flag"]
    np.testing.assert_array_equal(m.predict(frame), m.predict(X))  # arrays: by position
    with pytest.raises(ValueError, match=r"X's columns are the model's in another order "
                                         r"\(column 0 is 'flag', at fit it was 'x'\).*"
                                         r"X\[model\.feature_names_in_\]"):
        m.predict(frame[["flag", "count", "x"]])
    with pytest.raises(ValueError, match=r"missing \['flag'\], not seen at fit \['flag2'\]"):
        m.evaluate(frame.rename(columns={"flag": "flag2"}), y)
    with pytest.raises(ValueError, match="validation X's columns"):
        m.fit(frame, y, epochs=1, verbose=0, validation_data=(frame[["count", "x", "flag"]], y))
    # reordered as the message says, the predictions are the model's
    np.testing.assert_array_equal(
        m.predict(frame[["flag", "count", "x"]][m.feature_names_in_]), m.predict(frame))


# ------------------------------------------------------------------------------ memory maps
def memmap(tmp_path, a, name="x.npy"):
    np.save(tmp_path / name, a)
    return np.load(tmp_path / name, mmap_mode="r")


def test_a_float64_memmap_trains_as_the_array_does(tmp_path, backend):
    _, X, y = table(600)
    mm = memmap(tmp_path, X)
    a, b = model(backend, dtype="float32"), model(backend, dtype="float32")
    ha = a.fit(X, y.to_numpy().copy(), epochs=2, batch_size=64, verbose=0, seed=2,
               validation_split=0.2)
    hb = b.fit(mm, y.to_numpy().copy(), epochs=2, batch_size=64, verbose=0, seed=2,
               validation_split=0.2)
    assert hb.history["val_loss"] == pytest.approx(ha.history["val_loss"], rel=1e-6)
    for k in a.params:
        np.testing.assert_allclose(xn.to_numpy(b.params[k]), xn.to_numpy(a.params[k]),
                                   rtol=1e-6, atol=1e-7)
    assert b.evaluate(mm, y.to_numpy().copy(), batch_size=100)["loss"] == pytest.approx(
        a.evaluate(X, y.to_numpy().copy())["loss"], rel=1e-6)
    np.testing.assert_array_equal(xn.to_numpy(b.predict(mm, batch_size=70)),
                                  xn.to_numpy(a.predict(X)))


def test_an_integer_memmap_is_converted_while_an_integer_array_is_refused(tmp_path):
    _, X, y = table()
    ints = np.rint(X * 3).astype(np.int16)
    mm = memmap(tmp_path, ints)
    a, b = model(), model()
    a.fit(ints.astype(np.float64), y, epochs=2, verbose=0, seed=1)
    b.fit(mm, y, epochs=2, verbose=0, seed=1, validation_data=(mm[:50], y[:50]))
    for k in a.params:
        np.testing.assert_array_equal(b.params[k], a.params[k])
    with pytest.raises(TypeError, match="X has dtype int16; convert it to floats first"):
        model().fit(ints, y, verbose=0)


def test_a_memmap_is_never_converted_whole(tmp_path):
    n, d = 200_000, 20                               # 32 MB of float64; float32 would be 16
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    rng = np.random.default_rng(0)
    for lo in range(0, n, 50_000):
        mm[lo:lo + 50_000] = rng.normal(size=(50_000, d))
    mm.flush()
    del mm
    X = np.load(path, mmap_mode="r")
    y = (np.asarray(X[:, 0]) > 0).astype(np.int64)
    m = model(d=d, dtype="float32")
    tracemalloc.start()
    m.fit(X, y, epochs=1, batch_size=2048, verbose=0, validation_split=0.1)
    m.evaluate(X, y)
    m.predict(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # y, the permutation and the predictions are n values each (1.6 MB); a whole copy of X
    # would add 16 MB
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"
