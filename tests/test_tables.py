"""Tables in Python: read_table, TableEncoder, the regression metrics, and a model on
encoded raw rows saved, reloaded and exported to ONNX."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest

import xpnet as xn
from xpnet.datasets import (
    TableEncoder,
    TableError,
    TableWarning,
    is_table_file,
    read_table,
)

HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))

CSV = """age,income,color,bought
23,1200.5,red,no
35,3400.0,blue,yes
41,,green,yes
29,2100.25,red,no
52,5100.0,blue,yes
"""


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------- reading
def test_types_are_inferred_per_column(tmp_path):
    t = read_table(write(tmp_path, CSV))
    assert t.columns == ("age", "income", "color", "bought")
    assert t.kinds == {"age": "int", "income": "float", "color": "string",
                       "bought": "string"}
    assert t.values["age"].tolist() == [23, 35, 41, 29, 52]
    assert t.missing["income"].tolist() == [False, False, True, False, False]
    assert t.lines.tolist() == [2, 3, 4, 5, 6]


def test_tsv_quoted_fields_and_missing_markers(tmp_path):
    text = 'a\tb\n1\t"x, with\ttab"\nNA\tnull\n'
    t = read_table(write(tmp_path, text, "t.tsv"))
    assert t.values["b"].tolist() == ["x, with\ttab", ""]
    assert t.missing["a"].tolist() == [False, True]
    assert t.missing["b"].tolist() == [False, True]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("a,b\n", "has a header (a, b) but no rows"),
    ("a,b\n1,2\n3\n", "line 3: 1 field where the header has 2; column 'b' is missing"),
    ("a,b\n1,2\n3,4,5\n", "line 3: 3 fields where the header has 2; the row goes on past "
                          "the last column 'b'"),
    ("a,b\n1,2\n3,4\nfive,6\n", "line 4, column 'a': 'five' is not a number (the "
                                "column's other 2 values are numbers)"),
    ("a,a\n1,2\n", "line 1, column 'a': the name appears twice"),
    ("a,\n1,2\n", "line 1: column 2 has no name; the first line must name every column "
                  "(it ends with a separator; remove it, and the one ending each row if any)"),
    ("a,,b\n1,2,3\n", "line 1: column 2 has no name; the first line must name every "
                      "column"),
    (",a,y\n0,1,2\n", "line 1: column 1 has no name; the first line must name every column "
                      "(pandas writes its index there: df.to_csv(path, index=False))"),
    ("a,b\n1,inf\n", "line 2, column 'b': 'inf' is not a finite number"),
    ("a;b;y\n1;2;x\n", "line 1: the header is one column 'a;b;y', separated by ';'; a "
                       ".csv file is read with commas between fields: save it with commas"),
    ('a;b;y\n1;"2,5";x\n', "line 1: the header is one column 'a;b;y', separated by ';'"),
    ("a\tb\ty\n1\t2\tx\n", "separated by tabs; a .csv file is read with commas between "
                            "fields: name it .tsv"),
])
def test_broken_files_name_file_line_and_column(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(TableError) as info:
        read_table(p)
    assert str(info.value).startswith(str(p))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,b\n1,2\n3,\xff\n")
    with pytest.raises(TableError, match=r"line 3: not UTF-8"):
        read_table(p)


def test_unknown_suffix_lists_the_formats(tmp_path):
    p = write(tmp_path, "a\n1\n", "t.xlsx")
    with pytest.raises(TableError, match=r"unknown table format '.xlsx'; accepted: .csv"):
        read_table(p)


def test_kinds_of_a_trained_model_refuse_text_in_a_numeric_column(tmp_path):
    p = write(tmp_path, "a,b\nx,1\n")
    assert read_table(p).kinds["a"] == "string"
    with pytest.raises(TableError, match=r"line 2, column 'a': 'x' is not a number \(the "
                                         r"model was trained on numbers there\)"):
        read_table(p, kinds={"a": "float"})


def test_npz_of_X_and_y_is_a_table(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.array([[1.0, 2.0], [3.0, np.nan]]), y=np.array([0.5, 1.5]))
    assert is_table_file(p)
    t = read_table(p)
    assert t.columns == ("x0", "x1", "y") and t.kinds["y"] == "float"
    assert t.missing["x1"].tolist() == [False, True]
    np.savez(tmp_path / "img.npz", x_train=np.zeros((2, 4)), y_train=[0, 1],
             x_test=np.zeros((1, 4)), y_test=[0])
    assert not is_table_file(tmp_path / "img.npz")


def test_npz_table_header_claims_are_checked_before_reading(tmp_path):
    """Before: numpy allocated the 8 GiB an X header claimed in a 300-byte file, then
    failed on the missing data; now the claim is refused from the header."""
    import io
    import tracemalloc
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1)))
    header["shape"] = (2**16, 2**14)
    claim = io.BytesIO()
    np.lib.format.write_array_header_1_0(claim, header)
    y = io.BytesIO()
    np.save(y, np.zeros(2**16))
    p = tmp_path / "lie.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", claim.getvalue() + bytes(64))
        zf.writestr("y.npy", y.getvalue())
    tracemalloc.start()
    try:
        with pytest.raises(TableError, match=r"array 'X' claims shape \(65536, 16384\) of "
                           r"float64 \(8589934592 bytes\) but the archive member holds at most"):
            read_table(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_parquet_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install "
                                               "pyarrow): Parquet is not tested")
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": [1, 2, None], "f": [0.5, 1.5, 2.5],
                             "s": ["a", None, "b"]}), p)
    t = read_table(p)
    assert t.kinds == {"n": "int", "f": "float", "s": "string"}
    assert t.missing["n"].tolist() == [False, False, True]
    assert t.missing["s"].tolist() == [False, True, False]
    assert t.where(2, "n") == f"{p}, row 3, column 'n'"


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    p = tmp_path / "t.parquet"
    p.write_bytes(b"PAR1")
    with pytest.raises(TableError, match=r"reading Parquet needs pyarrow: pip install "
                                         r"pyarrow"):
        read_table(p)


# ----------------------------------------------------------------------------- encoding
def test_encoder_one_hot_classes_and_json_round_trip(tmp_path):
    t = read_table(write(tmp_path, CSV))
    enc = TableEncoder("bought", impute=True).fit(t)
    assert enc.task == "classification" and enc.classes == ["no", "yes"]
    assert enc.feature_names == ["age", "income", "color=blue", "color=green", "color=red"]
    assert enc.numeric_features == [0, 1]
    X, y = enc.transform(t)
    assert X.dtype == np.float32 and y.tolist() == [0, 1, 1, 0, 1]
    # the missing income is filled with the training median of the others
    assert X[2, 1] == pytest.approx(np.median([1200.5, 3400.0, 2100.25, 5100.0]))
    assert X[:, 2:].tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    again = TableEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    X2, y2 = again.transform(t)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_missing_values_refused_with_count_and_first_line(tmp_path):
    t = read_table(write(tmp_path, CSV + "30,,red,no\n"))
    with pytest.raises(TableError, match=r"line 4, column 'income': 2 missing value\(s\) "
                                         r"in this column \(this is the first\).*--impute"):
        TableEncoder("bought").fit(t)


def test_missing_target_column_lists_the_columns(tmp_path):
    t = read_table(write(tmp_path, CSV))
    with pytest.raises(TableError, match=r"no column 'price' to use as the target; the "
                                         r"columns are: age, income, color, bought"):
        TableEncoder("price").fit(t)


def test_regression_target_standardized_and_decoded(tmp_path):
    t = read_table(write(tmp_path, "x,price\n1,10.0\n2,20.0\n3,30.0\n4,40.5\n"))
    enc = TableEncoder("price").fit(t)
    assert enc.task == "regression" and enc.n_outputs == 1
    _, y = enc.transform(t)
    assert float(np.mean(y)) == pytest.approx(0.0, abs=1e-6)
    assert float(np.std(y)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(enc.decode(y), [10.0, 20.0, 30.0, 40.5], rtol=1e-6)


def test_integer_target_is_classification_unless_told(tmp_path):
    t = read_table(write(tmp_path, "x,k\n1,3\n2,1\n3,3\n"))
    assert TableEncoder("k").fit(t).classes == ["1", "3"]
    assert TableEncoder("k", task="regression").fit(t).task == "regression"
    t = read_table(write(tmp_path, "x,k\n1,0.5\n2,1\n"))
    with pytest.raises(TableError, match="non-integer numbers; use --task regression"):
        TableEncoder("k", task="classification").fit(t)


@pytest.mark.parametrize("rows, where", [("1,yes\n2,yes\n3,yes\n", "all 3 rows"),
                                         ("1,yes\n", "its only row")])
def test_a_target_of_one_class_is_refused(tmp_path, rows, where):
    t = read_table(write(tmp_path, "x,label\n" + rows))
    with pytest.raises(TableError, match=rf"column 'label': the target holds one class "
                                         rf"\('yes'\) in {where}; a classifier needs at "
                                         r"least 2 classes"):
        TableEncoder("label").fit(t)
    assert TableEncoder("label", task="regression").fit(
        read_table(write(tmp_path, "x,label\n" + rows.replace("yes", "1")))).task == "regression"


def test_an_integer_target_of_many_classes_gets_a_note(tmp_path):
    # whole numbers written without '.0' (pandas' to_csv of an int column): a quantity?
    rows = "".join(f"{i % 7},{100 + 3 * i}\n" for i in range(60))
    t = read_table(write(tmp_path, "x,price\n" + rows))
    with pytest.warns(TableWarning, match=r"column 'price': the target holds 60 different "
                                          r"integers in 60 rows, so it is trained as 60 "
                                          r"classes; for a quantity to predict, use --task "
                                          r"regression"):
        assert TableEncoder("price").fit(t).task == "classification"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TableEncoder("price", task="classification").fit(t)   # asked for: no note
        labels = "".join(f"{i % 9},{i % 21}\n" for i in range(21 * 5))  # 21 classes, 5 rows each
        TableEncoder("k").fit(read_table(write(tmp_path, "x,k\n" + labels)))


def test_numbers_with_separators_or_signs_read_as_text_get_a_note(tmp_path):
    rows = "".join(f'"{1000 + 7 * i:,}",{i}%,${i}.50,{i % 2}\n' for i in range(30))
    t = read_table(write(tmp_path, "income,rate,price,y\n" + rows))
    assert t.kinds["income"] == t.kinds["rate"] == t.kinds["price"] == "string"
    with pytest.warns(TableWarning) as caught:
        TableEncoder("y").fit(t)
    notes = [str(w.message) for w in caught]
    assert len(notes) == 3, notes
    assert notes[0].endswith("column 'income': read as text, 30 categories, but its values "
                             "are numbers written with separators or signs ('1,000'); remove "
                             "the ',', '%' or currency signs from the file to use them as "
                             "numbers")
    assert "column 'rate'" in notes[1] and "('0%')" in notes[1]
    assert "column 'price'" in notes[2] and "('$0.50')" in notes[2]
    with warnings.catch_warnings():  # words, and decimal commas, are no such numbers
        warnings.simplefilter("error")
        TableEncoder("y").fit(read_table(write(tmp_path, 'c,d,y\nred,"1,5",0\nblue,"2,25",1\n')))


def test_an_identifier_column_gets_a_note(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.permutation(np.arange(1000, 1030))
    rows = "".join(f"{i},{k},{k},{v:.3f},{k % 2}\n"
                   for i, k, v in zip(ids, range(30), rng.normal(size=30), strict=True))
    t = read_table(write(tmp_path, "Customer ID,row,count,x,y\n" + rows))
    with pytest.warns(TableWarning) as caught:
        TableEncoder("y").fit(t)
    notes = [str(w.message) for w in caught]
    assert [n.split(": ")[0].split(", ")[1] for n in notes] == \
        ["column 'Customer ID'", "column 'row'", "column 'count'"]   # by name, counting up
    assert notes[0].endswith("column 'Customer ID': a different integer in every row (an "
                             "identifier or a row number?) is a feature a model can only "
                             "memorise; remove the column from the file if it is one")
    with warnings.catch_warnings():  # repeated integers, or too few rows: no note
        warnings.simplefilter("error")
        TableEncoder("y").fit(read_table(write(tmp_path, "id,y\n" + "".join(
            f"{i % 25},{i % 2}\n" for i in range(50)))))
        TableEncoder("y").fit(read_table(write(tmp_path, "id,y\n" + "".join(
            f"{i},{i % 2}\n" for i in range(19)))))


def test_a_float_target_of_few_whole_numbers_gets_a_note(tmp_path):
    rows = "".join(f"{i % 5},{float(i % 2)}\n" for i in range(30))   # 0.0 / 1.0 labels
    t = read_table(write(tmp_path, "x,sick\n" + rows))
    with pytest.warns(TableWarning, match=r"column 'sick': the target holds only the whole "
                                          r"numbers 0, 1, written with decimals, so it is "
                                          r"trained as a number to predict \(regression\); "
                                          r"for classes, use --task classification"):
        assert TableEncoder("sick").fit(t).task == "regression"
    assert TableEncoder("sick", task="classification").fit(t).classes == ["0", "1"]
    with warnings.catch_warnings():   # a real quantity, or a task asked for: no note
        warnings.simplefilter("error")
        TableEncoder("sick", task="regression").fit(t)
        TableEncoder("k").fit(read_table(write(tmp_path, "x,k\n" + "".join(
            f"{i % 5},{i * 1.5}\n" for i in range(30)))))


def test_a_comma_file_named_tsv_is_named_as_one(tmp_path):
    with pytest.raises(TableError, match=r"separated by ','; a .tsv file is read with tabs "
                                         r"between fields: name it .csv"):
        read_table(write(tmp_path, "a,b,y\n1,2,x\n", "t.tsv"))


def test_too_many_categories_refused_with_the_count(tmp_path):
    rows = "\n".join(f"{i},c{i},{i % 2}" for i in range(12))
    t = read_table(write(tmp_path, "x,c,y\n" + rows + "\n"))
    with pytest.raises(TableError, match=r"column 'c': 12 categories, more than "
                                         r"--max-categories 10"):
        TableEncoder("y", max_categories=10).fit(t)
    assert TableEncoder("y", max_categories=12).fit(t).n_features == 13


def test_new_rows_matched_by_name_unseen_category_zero_or_refused(tmp_path):
    enc = TableEncoder("bought", impute=True).fit(read_table(write(tmp_path, CSV)))
    new = read_table(write(tmp_path, "extra,color,income,age\n1,purple,10,20\n2,red,11,21\n",
                           "new.csv"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        X, y = enc.transform(new, target=False)
    notes = [str(w.message) for w in caught if w.category is TableWarning]
    assert any("ignored column(s) the model was not trained on: extra" in n for n in notes)
    assert any("line 2, column 'color': 1 row(s) hold categories never seen in training "
               "(first: 'purple'); encoded as all zeros" in n for n in notes)
    assert y is None
    assert X.tolist() == [[20, 10, 0, 0, 0], [21, 11, 0, 0, 1]]
    with pytest.raises(TableError, match=r"line 2, column 'color': category 'purple' was "
                                         r"never seen in training"), \
            pytest.warns(TableWarning, match="ignored column"):
        enc.transform(new, target=False, strict=True)
    gone = read_table(write(tmp_path, "age,color\n1,red\n", "gone.csv"))
    with pytest.raises(TableError, match=r"column 'income' the model was trained with is "
                                         r"missing; the file has: age, color"):
        enc.transform(gone, target=False)


def test_damaged_spec_refused():
    with pytest.raises(TableError, match="columns must be"):
        TableEncoder.from_dict({"target": "y", "task": "regression", "columns": [{"x": 1}],
                                "target_mean": 0.0, "target_std": 1.0})


# ----------------------------------------------------------------------------- metrics
def test_regression_metrics_match_scikit_learn(backend):
    sk = pytest.importorskip("sklearn.metrics")
    be = xn.backends.get_backend(backend)
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.0, size=200)
    p = y + rng.normal(0.0, 1.0, size=200)
    rel = 1e-12 if be.wide_float == be.xp.float64 else 1e-5

    def dev(a):
        return be.asarray(a, dtype=be.wide_float)

    yd, pd_ = dev(y), dev(p)
    assert float(xn.metrics.mean_absolute_error(yd, pd_)) == pytest.approx(
        sk.mean_absolute_error(y, p), rel=rel)
    assert float(xn.metrics.root_mean_squared_error(yd, pd_)) == pytest.approx(
        np.sqrt(sk.mean_squared_error(y, p)), rel=rel)
    assert float(xn.metrics.r2_score(yd, pd_)) == pytest.approx(sk.r2_score(y, p), rel=rel)
    two = np.stack([y, 2 * y], axis=1)
    two_p = np.stack([p, 2 * y + 1], axis=1)
    assert float(xn.metrics.r2_score(dev(two), dev(two_p))) == pytest.approx(
        sk.r2_score(two, two_p), rel=rel)


def test_r2_of_a_constant_target_and_mismatched_shapes():
    ones = np.ones(4)
    assert float(xn.metrics.r2_score(ones, ones)) == 1.0
    assert float(xn.metrics.r2_score(ones, ones * 2)) == 0.0
    with pytest.raises(ValueError, match=r"y_true has shape \(4,\), y_pred \(3,\)"):
        xn.metrics.mean_absolute_error(ones, np.ones(3))


# ----------------------------------------------------------------------------- the model
def _trained(tmp_path, regression):
    from xpnet.cli._tables import scaled_model

    rng = np.random.default_rng(1)
    n = 120
    area = rng.uniform(200, 2000, n)
    rooms = rng.integers(1, 6, n)
    town = rng.choice(["north", "south", "east"], n)
    price = area * 0.3 + rooms * 50 + (town == "south") * 120 + rng.normal(0, 20, n)
    label = np.where(price > np.median(price), "dear", "cheap")
    target = price if regression else label
    lines = ["area,rooms,town,target"] + [
        f"{a:.1f},{r},{t},{v:.2f}" if regression else f"{a:.1f},{r},{t},{v}"
        for a, r, t, v in zip(area, rooms, town, target, strict=True)]
    table = read_table(write(tmp_path, "\n".join(lines) + "\n"))
    enc = TableEncoder("target").fit(table)
    X, y = enc.transform(table)
    model = scaled_model([enc.n_features, 16, enc.n_outputs], enc.numeric_features, X,
                         regression=regression, backend="numpy", seed=0)
    model.fit(X, y, epochs=30, batch_size=16, optimizer=xn.Adam(lr=5e-3), verbose=0)
    return model, enc, X


@pytest.mark.parametrize("regression", [False, True])
def test_model_takes_raw_rows_saved_and_reloaded(tmp_path, regression):
    model, enc, X = _trained(tmp_path, regression)
    assert float(np.abs(X[:, 0]).max()) > 100  # raw areas go in: the model scales them
    if regression:
        pred = enc.decode(xn.to_numpy(model.predict(X)))
        true = enc.decode(enc.transform(read_table(tmp_path / "t.csv"))[1])
        assert float(xn.metrics.r2_score(true, pred)) > 0.9
    else:
        assert float(np.mean(xn.to_numpy(model.predict(X)) ==
                             enc.transform(read_table(tmp_path / "t.csv"))[1])) > 0.85
    xn.save(model, tmp_path / "m.safetensors", metadata={"table": enc.to_dict()})
    ckpt = xn.load_checkpoint(tmp_path / "m.safetensors", backend="numpy")
    np.testing.assert_array_equal(xn.to_numpy(ckpt.model.forward(X)),
                                  xn.to_numpy(model.forward(X)))
    again = TableEncoder.from_dict(ckpt.metadata["user"]["table"])
    np.testing.assert_array_equal(again.transform(read_table(tmp_path / "t.csv"))[0], X)


@pytest.mark.skipif(not HAVE_ONNX, reason="ndonnx, onnx and onnxruntime are not installed "
                                          "(pip install ndonnx onnx onnxruntime)")
@pytest.mark.parametrize("regression", [False, True])
def test_onnx_export_of_a_table_model_matches(tmp_path, regression):
    import onnxruntime as ort

    model, enc, X = _trained(tmp_path, regression)
    path = xn.export_onnx(model, tmp_path / "m.onnx", outputs=["logits"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": X})[0]
    want = xn.to_numpy(model.forward(X))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4 * max(1.0, np.abs(want).max()))
    if regression:
        np.testing.assert_allclose(enc.decode(got), enc.decode(want), rtol=1e-5)
    else:
        np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))


def test_text_column_of_a_model_stays_text_and_nan_cells_are_missing(tmp_path):
    p = write(tmp_path, "a,b\n1,0.5\n2,nan\nx,NaN\n3,1.5\n")
    with pytest.raises(TableError, match="'x' is not a number"):
        read_table(p)  # mostly numbers: a typo, refused
    t = read_table(p, kinds={"a": "string"})  # a model trained on text there
    assert t.kinds["a"] == "string" and t.values["a"].tolist() == ["1", "2", "x", "3"]
    assert t.kinds["b"] == "float"
    assert t.missing["b"].tolist() == [False, True, True, False]
