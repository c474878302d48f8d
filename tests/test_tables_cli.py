"""Tables through the command: broken files, train / evaluate / predict / export on CSV
files, and the quality of the defaults against scikit-learn on real tables."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet.cli import main
from xpnet.datasets import TableEncoder, read_table

REPO = Path(__file__).resolve().parents[1]
HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("ndonnx", "onnx", "onnxruntime"))


def table_text(n=80, seed=0, colors=("red", "green", "blue"), target="label"):
    """A learnable table: two numbers on very different scales, a text column, a class."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(0, 1000, n)
    ratio = rng.uniform(0, 0.01, n)
    color = rng.choice(colors, n)
    label = np.where(size / 1000 + ratio * 50 + (color == "red") * 0.4 > 0.95, "big", "small")
    lines = [f"size,ratio,color,{target}"]
    lines += [f"{s:.2f},{r:.5f},{c},{v}" for s, r, c, v in zip(size, ratio, color, label,
                                                                 strict=True)]
    return "\n".join(lines) + "\n"


def run(capsys, *argv):
    """main() in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, want_code, *parts):
    assert code == want_code, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xpnet: error: ")
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], lines[0]


# ----------------------------------------------------------------------------- broken tables
BROKEN = {
    "ragged": ("size,ratio,color,label\n1,0.1,red,big\n2,0.2,red\n",
               ["line 3", "column 'label' is missing"]),
    "text in a number column": ("size,ratio,color,label\n1,0.1,red,big\n2,0.2,red,small\n"
                                "three,0.3,red,big\n",
                                ["line 4", "column 'size'", "'three' is not a number"]),
    "empty": ("", ["the file is empty"]),
    "header only": ("size,ratio,color,label\n", ["has a header (size, ratio, color, label) "
                                                 "but no rows"]),
    "missing values": ("size,ratio,color,label\n1,0.1,red,big\n,0.2,red,small\n"
                       "NA,0.3,blue,big\n",
                       ["line 3", "column 'size'", "2 missing value(s)", "--impute"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_table_one_line_exit_3_nothing_written(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    text, parts = BROKEN[case]
    (tmp_path / "t.csv").write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    for out_flags in ([], ["--out", tmp_path / "run"]):
        code, out, err = run(capsys, "train", "--dataset", tmp_path / "t.csv", "--target",
                             "label", "--quiet", *out_flags)
        assert_one_line_error(code, out, err, 3, str(tmp_path / "t.csv"), *parts)
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_target_column_lists_the_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(table_text(10))
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "t.csv", "--target",
                         "price", "--quiet")
    assert_one_line_error(code, out, err, 3, "no column 'price' to use as the target; the "
                          "columns are: size, ratio, color, label")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_table_needs_target_and_target_needs_table(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(table_text(10))
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "t.csv", "--quiet")
    assert_one_line_error(code, out, err, 2, "pass --target COLUMN", "the columns are: size, "
                          "ratio, color, label")
    code, out, err = run(capsys, "train", "--target", "label", "--quiet")
    assert_one_line_error(code, out, err, 2, "--target applies to table files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_unknown_format_lists_the_accepted_ones(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.npy").write_bytes(b"\x93NUMPY")
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "data.npy", "--quiet")
    assert_one_line_error(code, out, err, 3, "unknown format '.npy'", ".csv", ".tsv",
                          ".parquet", "with X and y (a table)",
                          ", .csv CSV (comma-separated, header row), .tsv TSV")
    assert "((" not in err and "))" not in err


def test_too_many_categories_refused_and_flag_raises_the_limit(tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    colors = tuple(f"c{i}" for i in range(12))
    (tmp_path / "t.csv").write_text(table_text(60, colors=colors))
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "t.csv", "--target",
                         "label", "--max-categories", "10", "--quiet", "--no-save")
    assert_one_line_error(code, out, err, 3, "column 'color': 12 categories, more than "
                          "--max-categories 10")
    code, out, err = run(capsys, "train", "--dataset", tmp_path / "t.csv", "--target",
                         "label", "--max-categories", "12", "--epochs", "2", "--quiet",
                         "--no-save")
    assert code == 0, err


# ----------------------------------------------------------------------------- round trip
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained by the real command on a CSV, with a held-out file."""
    d = tmp_path_factory.mktemp("tables")
    (d / "train.csv").write_text(table_text(200, seed=0))
    held = table_text(60, seed=1)
    (d / "test.csv").write_text(held)
    # the same rows without the target, columns in another order, an extra column
    rows = list(csv.reader(held.splitlines()))
    with open(d / "new.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["note", "color", "ratio", "size"])
        for r in rows[1:]:
            w.writerow(["x", r[2], r[1], r[0]])
    proc = subprocess.run([sys.executable, "-m", "xpnet", "train", "--dataset", "train.csv",
                           "--target", "label", "--out", "run", "--json", "--quiet"],
                          cwd=d, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return d, json.loads(proc.stdout)


def cli(d, *argv):
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, argv)], cwd=d,
                          capture_output=True, text=True, timeout=300)


def test_train_records_the_encoding(trained):
    d, summary = trained
    assert summary["status"] in ("completed", "stopped_early")
    assert summary["test"] is None and summary["validation"]["accuracy"] > 0.8
    record = json.loads((d / "run" / "run.json").read_text())
    spec = record["dataset"]["table"]
    assert spec["target"] == "label" and spec["classes"] == ["big", "small"]
    assert [c["name"] for c in spec["columns"]] == ["size", "ratio", "color"]
    assert record["settings"]["target"] == "label"
    ckpt = xn.load_checkpoint(d / "run" / "model.safetensors", backend="numpy")
    assert ckpt.metadata["user"]["dataset"]["table"] == spec
    assert type(ckpt.model.layers[0]).__name__ == "Normalization"


def test_evaluate_on_the_held_out_file(trained):
    d, _ = trained
    proc = cli(d, "evaluate", "run", "test.csv", "--json", "--plot-path", "cm.png")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["plot"] == str((d / "cm.png").resolve())
    assert (d / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["samples"] == 60 and result["task"] == "classification"
    assert result["accuracy"] > 0.8
    assert sum(row["support"] for row in result["per_class"]) == 60


def test_predict_matches_the_model_on_encoded_raw_rows(trained):
    d, _ = trained
    proc = cli(d, "predict", "run", "new.csv", "--output", "preds.csv", "--proba")
    assert proc.returncode == 0, proc.stderr
    assert "ignored column(s) the model was not trained on: note" in proc.stderr
    with open(d / "preds.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["label", "probability", "p(big)", "p(small)"]
    assert len(rows) == 61
    ckpt = xn.load_checkpoint(d / "run" / "model.safetensors", backend="numpy")
    enc = TableEncoder.from_dict(ckpt.metadata["user"]["dataset"]["table"])
    X, _ = enc.transform(read_table(d / "test.csv"))  # the same rows, with the target
    proba = xn.to_numpy(ckpt.model.predict_proba(X))
    want = enc.decode(np.argmax(proba, axis=1))
    assert [r[0] for r in rows[1:]] == want.tolist()
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], dtype=float), proba,
                               rtol=1e-6, atol=1e-7)
    js = json.loads(cli(d, "predict", "run", "new.csv", "--json").stdout)
    assert [p["prediction"] for p in js["predictions"]] == want.tolist()
    assert [p["line"] for p in js["predictions"]] == list(range(2, 62))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_predictions_to_a_full_stdout_are_one_clean_error(trained):
    """The CSV went to sys.stdout directly: a full disk ended in a traceback."""
    d, _ = trained
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "xpnet", "predict", "run", "new.csv"],
                              cwd=d, stdout=full, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        "xpnet: error: cannot write to standard output: No space left on device"


def test_predict_never_writes_over_its_input(trained):
    d, _ = trained
    before = (d / "new.csv").read_bytes()
    proc = cli(d, "predict", "run", "new.csv", "--output", "new.csv")
    assert proc.returncode == 2 and "is an input of this command" in proc.stderr
    assert (d / "new.csv").read_bytes() == before
    for name, hint in (("preds.json", "the file .csv; for JSON: --json > preds.json"),
                       ("preds.tsv", "the file .csv")):
        proc = cli(d, "predict", "run", "new.csv", "--output", name)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"--output {name}: the predictions are written as CSV (commas); name {hint}" \
            in proc.stderr
        assert not (d / name).exists()


def test_unseen_category_zero_by_default_refused_with_strict(trained):
    d, _ = trained
    (d / "odd.csv").write_text("size,ratio,color\n500,0.005,purple\n")
    proc = cli(d, "predict", "run", "odd.csv")
    assert proc.returncode == 0, proc.stderr
    assert "1 row(s) hold categories never seen in training (first: 'purple'); encoded as " \
           "all zeros" in proc.stderr
    assert proc.stdout.splitlines()[0] == "label,probability"
    proc = cli(d, "predict", "run", "odd.csv", "--strict")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "xpnet: error: odd.csv, line 2, column 'color': category 'purple' was never "
        "seen in training (1 row(s) hold unseen categories); known: 'blue', 'green', 'red'"]


def test_evaluate_names_a_missing_column(trained):
    d, _ = trained
    proc = cli(d, "evaluate", "run", "new.csv")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert "the target column 'label' the model was trained with is missing; the file " \
           "has: note, color, ratio, size; to predict rows without it: xpnet predict (in " \
           "Python: transform(table, target=False))" in proc.stderr


@pytest.mark.skipif(not HAVE_ONNX, reason="ndonnx, onnx and onnxruntime are not installed "
                                          "(pip install ndonnx onnx onnxruntime)")
def test_export_of_a_table_run_takes_raw_rows(trained):
    import onnxruntime as ort

    d, _ = trained
    proc = cli(d, "export", "run", "m.onnx", "--outputs", "proba")
    assert proc.returncode == 0, proc.stderr
    ckpt = xn.load_checkpoint(d / "run" / "model.safetensors", backend="numpy")
    enc = TableEncoder.from_dict(ckpt.metadata["user"]["dataset"]["table"])
    X, _ = enc.transform(read_table(d / "test.csv"))
    sess = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": X})[0]
    np.testing.assert_allclose(got, xn.to_numpy(ckpt.model.predict_proba(X)), rtol=1e-5,
                               atol=1e-6)


def test_train_notes_an_integer_target_of_many_classes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = "".join(f"{i % 7},{100 + 3 * i}\n" for i in range(60))
    (tmp_path / "t.csv").write_text("x,price\n" + rows)
    code, out, err = run(capsys, "train", "--dataset", "t.csv", "--target", "price",
                         "--epochs", "1", "--no-save")
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("xpnet: note: ") and first.endswith(
        "t.csv, column 'price': the target holds 60 different integers in 60 rows, so it is "
        "trained as 60 classes; for a quantity to predict, use --task regression"), err
    assert "Warning" not in err


def test_regression_round_trip_in_target_units(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    area = rng.uniform(30, 300, 150)
    town = rng.choice(["north", "south"], 150)
    price = 2000 * area + 50000 * (town == "south") + rng.normal(0, 10000, 150)
    lines = ["area,town,price"] + [f"{a:.1f},{t},{p:.2f}" for a, t, p in
                                   zip(area, town, price, strict=True)]
    (tmp_path / "train.csv").write_text("\n".join(lines[:121]) + "\n")
    (tmp_path / "test.csv").write_text("\n".join([lines[0], *lines[121:]]) + "\n")
    code, out, err = run(capsys, "train", "--dataset", "train.csv", "--target", "price",
                         "--out", "run", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["validation"]["r2"] > 0.8
    code, out, err = run(capsys, "evaluate", "run", "test.csv", "--json")
    result = json.loads(out)
    assert result["task"] == "regression" and result["r2"] > 0.8
    assert 1000 < result["mae"] < 60000  # in the target's units, not standardized
    code, out, err = run(capsys, "predict", "run", "test.csv")
    assert code == 0, err
    values = [float(v) for v in out.splitlines()[1:]]
    assert len(values) == 30
    assert float(xn.metrics.r2_score(price[120:], np.array(values))) == \
        pytest.approx(result["r2"], abs=1e-9)
    code, out, err = run(capsys, "predict", "run", "test.csv", "--proba")
    assert_one_line_error(code, out, err, 2, "--proba applies to classifiers")
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = run(capsys, "train", "--dataset", "train.csv", "--target", "price",
                         "--epochs", "1", "--no-save")
    assert code == 0, err
    assert "data     train: 3 features; target price, regression" in err
    assert "classes" not in err
    if not HAVE_ONNX:
        return
    # the export says what its graph returns: the standardized target, and how to undo it
    code, out, err = run(capsys, "export", "run", "m.onnx")
    assert code == 0, err
    spec = TableEncoder.from_dict(json.loads((tmp_path / "run" / "run.json").read_text())
                                  ["dataset"]["table"])
    assert f"target  price, standardized: times {spec.target_std:.6g} plus " \
           f"{spec.target_mean:.6g} gives its units" in out
    assert "table   1 number, then 2 one-hot features" in out
    code, out, err = run(capsys, "export", "run", "m2.onnx", "--json")
    table = json.loads(out)["table"]
    assert table["features"] == ["area", "town=north", "town=south"]
    assert table["target_std"] == spec.target_std and table["target_mean"] == spec.target_mean
    import onnxruntime as ort

    X, _ = spec.transform(read_table(tmp_path / "test.csv"))
    got = ort.InferenceSession(str(tmp_path / "m2.onnx")).run(None, {"input": X})[0]
    np.testing.assert_allclose(got[:, 0] * table["target_std"] + table["target_mean"],
                               values, rtol=1e-4)


# ----------------------------------------------------------------------------- quality
def _bench():
    spec = importlib.util.spec_from_file_location("bench_tables",
                                                  REPO / "benchmarks" / "bench_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_table_is_the_recorded_benchmark():
    results = json.loads((REPO / "benchmarks" / "results" / "tables.json").read_text())
    table = (REPO / "docs" / "generated" / "bench-tables.md").read_text()
    assert table == _bench().render(results)


@pytest.mark.slow
def test_defaults_hold_up_against_scikit_learn_on_real_tables():
    """breast-cancer (raw features plus a text column) and diabetes (scaled=False, 331
    training rows): the median of 3 seeds of train/evaluate on a held-out file is no worse
    than scikit-learn's MLP behind a StandardScaler by more than 2 accuracy points or 0.05
    R², nor than RidgeCV by more than 0.05 R²."""
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas", reason="pandas is not installed (pip install pandas)")
    results = _bench().run([0, 1, 2])["tables"]
    bc, db = results["breast-cancer"]["median"], results["diabetes"]["median"]
    assert results["diabetes"]["rows"] == [331, 111]
    assert bc["xpnet"] >= bc["sklearn MLP"] - 0.02, bc
    assert db["xpnet"] >= db["sklearn MLP"] - 0.05, db
    assert db["xpnet"] >= db["RidgeCV"] - 0.05, db
    assert db["xpnet"] > 0.3 and bc["xpnet"] > 0.93


def test_resume_keeps_the_encoding_and_npz_tables_train(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.tsv").write_text(table_text(60).replace(",", "\t"))
    code, out, err = run(capsys, "train", "--dataset", "t.tsv", "--target", "label", "--out",
                         "run", "--epochs", "2", "--quiet")
    assert code == 0, err
    spec = json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]["table"]
    code, out, err = run(capsys, "train", "--out", "run", "--resume", "--epochs", "3",
                         "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 3
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"]["table"] == spec
    code, out, err = run(capsys, "train", "--out", "run", "--resume", "--epochs", "4",
                         "--target", "color", "--quiet")
    assert_one_line_error(code, out, err, 2, "--target cannot change when resuming: the run "
                          "keeps the encoding it was started with (label); drop --target")
    # the training command repeated with --resume: the same table flags are no change
    code, out, err = run(capsys, "train", "--dataset", "t.tsv", "--target", "label", "--out",
                         "run", "--resume", "--epochs", "4", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 4
    code, out, err = run(capsys, "train", "--out", "run", "--resume", "--epochs", "5",
                         "--task", "regression", "--quiet")
    assert_one_line_error(code, out, err, 2, "--task cannot change when resuming",
                          "(classification)")
    code, out, err = run(capsys, "evaluate", "run")
    assert_one_line_error(code, out, err, 2, "was trained on a table; give the file to "
                          "evaluate on")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3)) * [1.0, 100.0, 1000.0]
    np.savez(tmp_path / "xy.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    code, out, err = run(capsys, "train", "--dataset", "xy.npz", "--target", "y",
                         "--no-save", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["validation"]["accuracy"] > 0.8


@pytest.mark.slow  # trains on breast-cancer as the docs show it
def test_docs_table_session_is_current():
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(REPO / "docs"))
    try:
        generate = importlib.import_module("generate")
    finally:
        sys.path.remove(str(REPO / "docs"))
    problems = generate.check(("tables",))
    assert not problems, "\n\n".join(problems) + "\n\nIf intended: python docs/generate.py " \
                                                 "tables"


def test_a_table_given_to_an_image_model_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", "--epochs", "1", "--out", "digits", "--quiet")
    assert code == 0, err
    (tmp_path / "rows.csv").write_text(table_text(5))
    code, out, err = run(capsys, "predict", "digits", "rows.csv")
    assert_one_line_error(code, out, err, 3, "rows.csv is a table, but this model was "
                          "trained on images or arrays")
    code, out, err = run(capsys, "predict", "digits", "rows.csv", "--output", "p.csv")
    assert_one_line_error(code, out, err, 2, "--output applies to models trained on a table")
    code, out, err = run(capsys, "evaluate", "digits", "rows.csv")   # not 'not an .npz'
    assert_one_line_error(code, out, err, 3, "rows.csv is a table, but "
                          "digits/model.safetensors was trained on images or arrays, not on "
                          "a table; train one with xpnet train --dataset FILE --target COLUMN")


def test_parquet_trains_and_predicts(tmp_path, capsys, monkeypatch):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install "
                                               "pyarrow): Parquet is not tested")
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    rows = list(csv.reader(table_text(80).splitlines()))
    cols = list(zip(*rows[1:], strict=True))
    pq.write_table(pa.table({"size": [float(v) for v in cols[0]],
                             "ratio": [float(v) for v in cols[1]],
                             "color": list(cols[2]), "label": list(cols[3])}), "t.parquet")
    code, out, err = run(capsys, "train", "--dataset", "t.parquet", "--target", "label",
                         "--epochs", "3", "--out", "run", "--quiet")
    assert code == 0, err
    code, out, err = run(capsys, "predict", "run", "t.parquet")
    assert code == 0, err
    assert out.splitlines()[0] == "label,probability" and len(out.splitlines()) == 81


def test_resuming_a_table_run_reads_its_tensors_once_per_file(tmp_path, capsys, monkeypatch):
    """--resume of a table run: the settings, the table encoding and which file is further on
    come from the files' headers; the tensors of each file are read once (they were read five
    times: last.safetensors three times, model.safetensors twice)."""
    import xpnet.checkpoint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(table_text(60))
    code, out, err = run(capsys, "train", "--dataset", "t.csv", "--target", "label", "--out",
                         "run", "--epochs", "2", "--quiet")
    assert code == 0, err
    reads = []
    real = xpnet.checkpoint._read

    def spy(path, *args, **kwargs):
        tensors, meta = real(path, *args, **kwargs)
        reads.append((Path(path).name, bool(tensors)))  # True: the tensors were read
        return tensors, meta

    monkeypatch.setattr(xpnet.checkpoint, "_read", spy)
    code, out, err = run(capsys, "train", "--out", "run", "--resume", "--epochs", "3",
                         "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 3
    # headers: both files for the position, last.safetensors (further on) for the settings
    # and the encoding, model.safetensors for its epoch; tensors: last.safetensors onto the
    # training backend, model.safetensors for its best-epoch weights
    assert reads == [("last.safetensors", False), ("model.safetensors", False),
                     ("last.safetensors", False), ("last.safetensors", True),
                     ("model.safetensors", False), ("model.safetensors", True)]
