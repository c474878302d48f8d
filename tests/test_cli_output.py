"""What ``xpnet evaluate`` and ``xpnet predict`` print: metrics in one unit with the same
decimals, float32 predictions with the digits float32 carries, a ``predict --help`` true for
classifiers and regressions; and ``--early-stopping`` going on from the run's best on
``--resume``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from xpnet.cli import main
from xpnet.cli._output import carried, same_decimals


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    """A table regression run (price in thousands) and a held-out file."""
    d = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(3)
    area = rng.uniform(30, 300, 150)
    town = rng.choice(["north", "south"], 150)
    price = 2 * area + 50 * (town == "south") + rng.normal(0, 10, 150)
    lines = ["area,town,price"] + [f"{a:.1f},{t},{p:.3f}" for a, t, p in
                                   zip(area, town, price, strict=True)]
    (d / "train.csv").write_text("\n".join(lines[:121]) + "\n")
    (d / "test.csv").write_text("\n".join([lines[0], *lines[121:]]) + "\n")
    code = main(["train", "--dataset", str(d / "train.csv"), "--target", "price",
                 "--out", str(d / "run"), "--quiet", "--epochs", "20"])
    assert code == 0
    return d


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def test_evaluate_prints_mae_and_rmse_with_the_same_decimals(regression_run, capsys,
                                                              monkeypatch):
    """MAE and RMSE are in the target's units; .4g printed 46.6 beside 58.49."""
    monkeypatch.setenv("COLUMNS", "100")
    d = regression_run
    out, _ = _run(capsys, "evaluate", d / "run", d / "test.csv", "--json")
    scores = json.loads(out)
    out, _ = _run(capsys, "evaluate", d / "run", d / "test.csv")
    mae = re.search(r"MAE\s*│?\s*([-\d.]+)", out).group(1)
    rmse = re.search(r"RMSE\s*│?\s*([-\d.]+)", out).group(1)
    assert _decimals(mae) == _decimals(rmse) >= 1, out
    assert (mae, rmse) == tuple(same_decimals([scores["mae"], scores["rmse"]]))
    assert float(mae) == pytest.approx(scores["mae"], abs=0.5 * 10 ** -_decimals(mae))
    assert float(rmse) == pytest.approx(scores["rmse"], abs=0.5 * 10 ** -_decimals(rmse))


def test_the_issue_example_mae_46_6_beside_rmse_58_49(capsys, monkeypatch):
    """The evaluate table and the train summary: 46.60 beside 58.49 (was 46.6)."""
    from types import SimpleNamespace

    from xpnet.cli._tables import _print_table_scores
    from xpnet.cli.train import _score_rows

    monkeypatch.setenv("COLUMNS", "100")
    out = {"backend": "numpy", "device": "cpu", "source": "t.csv", "samples": 30,
           "target": "price", "task": "regression", "mae": 46.6, "rmse": 58.49, "r2": 0.9,
           "loss": 0.1}
    _print_table_scores(out, SimpleNamespace(num_params=10), "m.safetensors")
    text = capsys.readouterr().out
    assert re.search(r"MAE\s*│\s*46\.60 │", text) and re.search(r"RMSE\s*│\s*58\.49 │", text)
    rows = dict(_score_rows("validation", {"r2": 0.9, "mae": 46.6, "rmse": 58.49}))
    assert (rows["validation MAE"], rows["validation RMSE"]) == ("46.60", "58.49")


def test_same_decimals_gives_four_digits_to_the_largest():
    assert same_decimals([46.6, 58.49]) == ["46.60", "58.49"]
    assert same_decimals([8.123, 10.234]) == ["8.12", "10.23"]
    assert same_decimals([float("nan"), 0.5]) == ["nan", "0.5000"]


def test_predict_prints_float32_predictions_with_float32_digits(regression_run, capsys):
    """A float32 prediction printed as 0.12369685620069504 (the float64 repr of the
    float32 value); now as the shortest text that reads back as that float32."""
    d = regression_run
    out, _ = _run(capsys, "predict", d / "run", d / "test.csv")
    texts = out.splitlines()[1:]
    assert len(texts) == 30
    for text in texts:
        value = np.float32(text)
        assert text == str(value) or float(text) == float(str(value)), text
        assert len(text.replace("-", "").replace(".", "").lstrip("0")) <= 9, text
    out, _ = _run(capsys, "predict", d / "run", d / "test.csv", "--json")
    values = [p["prediction"] for p in json.loads(out)["predictions"]]
    assert [str(np.float32(v)) for v in values] == [str(np.float32(t)) for t in texts]
    assert all(repr(v) == repr(float(str(np.float32(v)))) for v in values)


def test_predict_json_probabilities_carry_the_model_dtype(tmp_path, capsys):
    out, _ = _run(capsys, "train", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                  "--out", tmp_path / "run", "--quiet")
    from sklearn.datasets import load_digits

    np.save(tmp_path / "x.npy", (load_digits().data[:5] / 16).astype("float32"))
    out, _ = _run(capsys, "predict", tmp_path / "run", tmp_path / "x.npy", "--json",
                  "--top-k", "10")
    probs = [q["probability"] for p in json.loads(out)["predictions"] for q in p["top_k"]]
    assert len(probs) == 50
    for p in probs:  # the shortest repr of a float32: at most 9 significant digits
        assert repr(p) == str(np.float32(p)) or float(str(np.float32(p))) == p
        assert len(repr(p).split("e")[0].replace(".", "").lstrip("0")) <= 9, p


def test_carried_reads_back_as_the_same_float32_with_its_shortest_digits():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.random(2000), rng.normal(size=2000) * 10.0 **
                        rng.integers(-40, 38, 2000), [0.0, 1.0, 0.5, np.nan, np.inf]])
    a = a.astype(np.float32)
    got = carried(a)
    finite = np.isfinite(a)
    assert np.array_equal(got.astype(np.float32)[finite], a[finite])
    assert all(float(str(x)) == y for x, y in zip(a[finite], got[finite], strict=True))
    b = rng.random(10)
    assert carried(b).tolist() == b.tolist()  # float64 stays as it is


def test_predict_help_is_true_for_classifiers_and_regressions(capsys):
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Classify inputs" not in text
    assert "Predict with a saved model." in text
    assert "a classifier, or a regression" in text and "the number in the target's units" in text
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "classify images or arrays with a saved model" not in text


def test_early_stopping_on_resume_goes_on_from_the_runs_best(tmp_path, capsys):
    """The best so far was forgotten on --resume: the resumed run took its first epoch as
    the best, stopped at epoch 15 instead of 10 and restored epoch 12 instead of 7."""
    common = ["--dataset", "digits", "--hidden", "64", "--lr", "0.02", "--schedule",
              "constant", "--early-stopping", "2", "--quiet", "--json"]
    full = json.loads(_run(capsys, "train", *common, "--epochs", "30",
                           "--out", tmp_path / "full")[0])
    best = int(np.argmin(full["history"]["val_loss"])) + 1
    assert full["stopped_early"] and 2 <= best < full["epochs"] - 1  # the premise
    _run(capsys, "train", *common, "--epochs", str(best + 1), "--out", tmp_path / "part")
    part = json.loads(_run(capsys, "train", "--resume", "--out", tmp_path / "part",
                           "--epochs", "30", "--quiet", "--json")[0])
    assert part["epochs"] == full["epochs"] and part["stopped_early"]
    assert part["history"]["val_loss"] == full["history"]["val_loss"]
    assert part["test"] == full["test"]  # the best epoch's weights, restored
    for name in ("full", "part"):
        assert json.loads((tmp_path / name / "run.json").read_text())["best_epoch"] == best


def test_resuming_a_digits_run_reads_the_tensors_of_each_file_once(tmp_path, capsys,
                                                                    monkeypatch):
    """--resume compared last.safetensors and model.safetensors by loading both whole, loaded
    the winner again for its settings and once more onto the training backend: five full
    reads of a checkpoint; the headers answer all but the two whose tensors are used."""
    import xpnet.checkpoint

    _run(capsys, "train", "--dataset", "digits", "--hidden", "16", "--epochs", "2",
         "--early-stopping", "5", "--out", tmp_path / "run", "--quiet")
    reads = []
    real = xpnet.checkpoint._read

    def spy(path, *args, **kwargs):
        tensors, meta = real(path, *args, **kwargs)
        reads.append((path.name, len(tensors)))  # the number of tensors read
        return tensors, meta

    monkeypatch.setattr(xpnet.checkpoint, "_read", spy)
    out, _ = _run(capsys, "train", "--resume", "--out", tmp_path / "run", "--epochs", "3",
                  "--quiet", "--json")
    assert json.loads(out)["epochs"] == 3
    full = [name for name, n in reads if n]
    # last.safetensors onto the training backend (parameters and Adam's two slots, 2 layers);
    # model.safetensors for the best epoch's weights, which EarlyStopping restores
    assert full == ["last.safetensors", "model.safetensors"], reads
    assert [n for _, n in reads if n] == [12, 12]
    assert [name for name, n in reads if not n] == [
        "last.safetensors", "model.safetensors", "last.safetensors", "model.safetensors"]
