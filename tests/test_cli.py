"""The ``xpnet`` command, run for real: ``python -m xpnet ...`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import xpnet as xn

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODEL_FILE = "model.safetensors"


def _env(cwd: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XPNET_DATA_DIR=str(cwd / "cache"), NO_COLOR="1", COLUMNS="120",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def xpnet(*args, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run the real command; never raises on a non-zero exit."""
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], cwd=cwd,
                          env=_env(cwd, **env), capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def one_json(proc: subprocess.CompletedProcess) -> dict:
    """stdout must hold exactly one JSON object and nothing else."""
    ok(proc)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1024


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> SimpleNamespace:
    """One short digits run shared by the evaluate/predict tests."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = xpnet("train", "--backend", "numpy", "--epochs", "3", "--out", "run", "--plot",
                 "--json", cwd=cwd)
    summary = one_json(proc)
    return SimpleNamespace(cwd=cwd, out=cwd / "run", summary=summary, proc=proc)


# ------------------------------------------------------------------------------ train
def test_train_writes_model_record_and_plot(trained):
    s, out = trained.summary, trained.out
    assert s["status"] == "completed"
    assert s["epochs"] == 3 and s["dataset"] == "digits" and s["backend"] == "numpy"
    assert 0.5 < s["test"]["accuracy"] <= 1.0 and s["test"]["loss"] > 0
    assert s["history"]["epoch"] == [1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert len(s["history"][key]) == 3
    assert Path(s["model"]) == (out / "model.safetensors").resolve()
    assert Path(s["run_json"]) == (out / "run.json").resolve()
    assert Path(s["curves"]) == (out / "curves.png").resolve()
    assert_png(out / "curves.png")
    # human output went to stderr
    assert "test accuracy" in trained.proc.stderr and "backend numpy" in trained.proc.stderr
    assert "epoch 3/3" in trained.proc.stderr

    run = json.loads((out / "run.json").read_text())
    assert run["schema"] == 1 and run["status"] == "completed"
    assert run["command"].startswith("xpnet train")
    assert run["seed"] == 0 and run["settings"]["epochs"] == 3
    assert run["settings"]["hidden"] == [512, 256] and run["settings"]["optimizer"] == "adam"
    assert run["versions"]["xpnet"] == xn.__version__ and "numpy" in run["versions"]
    assert run["backend"] == {"name": "numpy", "device": "cpu"}
    ds = run["dataset"]
    assert ds["name"] == "digits" and ds["source"] == "bundled"
    assert len(ds["sha256"]["digits.npz"]) == 64
    assert ds["n_train"] + ds["n_val"] == 1437 and ds["n_test"] == 360
    assert run["history"] == s["history"]
    assert run["test"] == s["test"] and run["epochs_done"] == 3
    assert run["files"] == {"model": "model.safetensors", "run": "run.json",
                            "curves": "curves.png"}

    ckpt = xn.load_checkpoint(out / "model.safetensors", backend="numpy")
    user = ckpt.metadata["user"]
    assert user["dataset"]["image_shape"] == [8, 8]
    assert user["dataset"]["class_names"] == [str(i) for i in range(10)]
    assert ckpt.training["epoch"] == 3 and ckpt.optimizer is not None
    assert ckpt.model.in_features == 64 and ckpt.model.out_features == 10
    assert [tuple(v.shape) for k, v in ckpt.model.params.items() if k.endswith("W")] == [
        (64, 512), (512, 256), (256, 10)]


def test_the_docs_run_json_dataset_row_lists_its_keys_in_order(trained):
    """docs/cli.md's run.json `dataset` row names an image run's keys in run.json's order."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    row = re.search(r"^\| `dataset` \| ([^;|]*);", page, re.M).group(1)
    run = json.loads((trained.out / "run.json").read_text())
    assert re.findall(r"`(\w+)`", row) == list(run["dataset"])


def test_default_train_reaches_95_percent(tmp_path):
    """The user's first run: `xpnet train` with nothing else."""
    s = one_json(xpnet("train", "--json", cwd=tmp_path))
    assert s["test"]["accuracy"] >= 0.95, s["test"]
    assert s["dataset"] == "digits" and s["status"] == "completed"
    runs = [p for p in (tmp_path / "runs").iterdir() if p.name != "latest"]
    assert len(runs) == 1 and runs[0].name.startswith("digits-")
    assert (runs[0] / "model.safetensors").is_file() and (runs[0] / "run.json").is_file()
    assert Path(s["out"]) == runs[0].resolve()
    if (tmp_path / "runs" / "latest").is_symlink():  # not where symlinks are not allowed
        assert (tmp_path / "runs" / "latest").resolve() == runs[0].resolve()
        e = one_json(xpnet("evaluate", "runs/latest", "--json", cwd=tmp_path))
        assert e["accuracy"] == pytest.approx(s["test"]["accuracy"])


def test_resume_continues_bitwise(tmp_path):
    # constant schedule: a cosine schedule spans the epochs asked for, so 2+2 != 4 by design
    common = ["--backend", "numpy", "--dropout", "0.2", "--schedule", "constant", "--quiet"]
    ok(xpnet("train", *common, "--epochs", "4", "--out", "straight", cwd=tmp_path))
    ok(xpnet("train", *common, "--epochs", "2", "--out", "split", cwd=tmp_path))
    s = one_json(xpnet("train", "--out", "split", "--resume", "--epochs", "4", "--json",
                       "--quiet", cwd=tmp_path))
    assert s["epochs"] == 4 and s["history"]["epoch"] == [1, 2, 3, 4]
    a = json.loads((tmp_path / "straight" / "run.json").read_text())
    b = json.loads((tmp_path / "split" / "run.json").read_text())
    assert b["history"]["loss"] == a["history"]["loss"]  # bitwise on NumPy
    assert b["test"] == a["test"]
    assert b["resumes"][0]["from_epoch"] == 2
    pa = xn.load(tmp_path / "straight" / "model.safetensors", backend="numpy").params
    pb = xn.load(tmp_path / "split" / "model.safetensors", backend="numpy").params
    for k in pa:
        xn.testing.assert_close(pb[k], pa[k], rtol=0, atol=0)


def test_resume_refuses_a_different_experiment(trained):
    proc = xpnet("train", "--out", "run", "--resume", "--hidden", "32", cwd=trained.cwd)
    assert proc.returncode == 2 and "--hidden 32 differs" in proc.stderr
    proc = xpnet("train", "--out", "run", "--resume", cwd=trained.cwd)
    assert proc.returncode == 2 and "already done 3 epochs" in proc.stderr


def test_existing_run_is_not_overwritten_unless_asked(tmp_path):
    ok(xpnet("train", "--epochs", "1", "--out", "r", "--quiet", cwd=tmp_path))
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    proc = xpnet("train", "--epochs", "1", "--out", "r", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before
    ok(xpnet("train", "--epochs", "1", "--out", "r", "--overwrite", "--seed", "1", "--quiet",
             cwd=tmp_path))
    assert (tmp_path / "r" / "model.safetensors").read_bytes() != before


def test_no_save_writes_nothing(tmp_path):
    s = one_json(xpnet("train", "--epochs", "1", "--no-save", "--json", cwd=tmp_path))
    assert s["out"] is None and s["model"] is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == []


@pytest.mark.parametrize("flags", [
    ["--optimizer", "sgd", "--schedule", "cosine", "--warmup-epochs", "1", "--threads", "1"],
    ["--optimizer", "adamw", "--schedule", "step", "--hidden", "none", "--lr", "0.05"],
    ["--optimizer", "rmsprop", "--schedule", "exponential", "--activation", "tanh",
     "--dtype", "float64", "--val-split", "0", "--batch-size", "500"],
    ["--early-stopping", "1", "--epochs", "8", "--backend", "array_api_strict"],
])
def test_train_options(tmp_path, flags):
    s = one_json(xpnet("train", "--epochs", "3", *flags, "--out", "r", "--json", "--quiet",
                       cwd=tmp_path))
    assert s["test"]["accuracy"] > 0.3
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    for flag, value in zip(flags, flags[1:], strict=False):
        if flag == "--optimizer":
            assert run["settings"]["optimizer"] == value
        if flag == "--schedule":
            assert run["settings"]["schedule"] == value
    if "--schedule" in flags:  # the learning rate changed over the run
        lrs = s["history"]["lr"]
        assert lrs[-1] < max(lrs)
        # the optimizer is recorded as readable text, not a config dump
        assert "{" not in run["optimizer"] and "config" not in run["optimizer"]
    if "cosine" in flags:
        assert run["optimizer"].startswith("SGD(lr=warmup(")
        assert " then cosine(0.05 -> 0, 42 steps), momentum=0.9)" in run["optimizer"]
    if "--val-split" in flags:
        assert "val_loss" not in s["history"]
    # the saved model is the one whose test metrics were reported (with early stopping:
    # the best epoch's weights)
    ds = xn.datasets.load("digits")
    model = xn.load(tmp_path / "r" / "model.safetensors", backend="numpy")
    assert model.evaluate(ds.x_test, ds.y_test)["accuracy"] == pytest.approx(
        s["test"]["accuracy"])


def test_divergence_exits_1(tmp_path):
    proc = xpnet("train", "--optimizer", "sgd", "--lr", "1e4", "--epochs", "3", "--out", "d",
                 "--quiet", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("xpnet: error: training diverged") and "--lr" in proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert json.loads((tmp_path / "d" / "run.json").read_text())["status"] == "failed"


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_keeps_last_epoch_and_resumes(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--epochs", "10000",
         "--out", "run"], cwd=tmp_path, env=_env(tmp_path, COLUMNS="60"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # a child started from a background job may inherit an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "model.safetensors").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "xpnet train --out run --resume" in err
    assert not _too_wide(err, 60), err   # the message breaks between words to fit
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    done = run["epochs_done"]
    assert run["status"] == "interrupted" and 1 <= done < 10000
    ckpt = xn.load_checkpoint(tmp_path / "run" / "model.safetensors", backend="numpy")
    assert ckpt.training["epoch"] >= done
    target = ckpt.training["epoch"] + 1
    proc = xpnet("train", "--out", "run", "--resume", "--epochs", target, "--json",
                 cwd=tmp_path)
    s = one_json(proc)
    assert s["epochs"] == target and s["history"]["epoch"] == list(range(1, target + 1))
    # the resumed run names the point the interrupted one said it saved
    saved = re.search(r"; (epoch \d+(?:, step \d+)?)(?:/\d+)? is saved",
                      " ".join(err.split())).group(1)
    assert f"resuming run after {saved}" in " ".join(proc.stderr.split()), proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"real MNIST files not in {MNIST_DIR}")
def test_train_on_an_mnist_idx_folder(tmp_path):
    from xpnet.datasets import read_idx, write_idx

    images = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    folder = tmp_path / "mnist-part"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:8000])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:8000])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[8000:])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[8000:])
    s = one_json(xpnet("train", "--dataset", folder, "--epochs", "1", "--backend", "numpy",
                       "--out", "m", "--json", cwd=tmp_path))
    assert s["epochs"] == 1 and s["test"]["accuracy"] > 0.85
    run = json.loads((tmp_path / "m" / "run.json").read_text())
    assert run["dataset"]["n_train"] + run["dataset"]["n_val"] == 8000
    assert run["dataset"]["n_test"] == 2000 and run["dataset"]["image_shape"] == [28, 28]
    assert set(run["dataset"]["sha256"]) == {"train-images-idx3-ubyte.gz",
                                             "train-labels-idx1-ubyte.gz",
                                             "t10k-images-idx3-ubyte.gz",
                                             "t10k-labels-idx1-ubyte.gz"}
    # evaluate finds the folder from the model file
    e = one_json(xpnet("evaluate", tmp_path / "m", "--backend", "numpy", "--json",
                       cwd=tmp_path))
    assert e["samples"] == 2000 and e["accuracy"] == pytest.approx(s["test"]["accuracy"])


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_text(trained):
    proc = ok(xpnet("evaluate", "run", "--backend", "numpy", cwd=trained.cwd))
    out = proc.stdout
    assert "accuracy" in out and "per class" in out and "confusion matrix" in out
    acc = trained.summary["test"]["accuracy"]
    assert f"{acc:.4f}" in out


def test_evaluate_json_and_plot(trained, tmp_path):
    plot = tmp_path / "cm.png"
    e = one_json(xpnet("evaluate", trained.out / "model.safetensors", "--backend", "numpy",
                       "--json", "--plot-path", plot, cwd=trained.cwd))
    assert e["accuracy"] == pytest.approx(trained.summary["test"]["accuracy"])
    assert e["loss"] == pytest.approx(trained.summary["test"]["loss"], rel=1e-5)
    cm = np.array(e["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 360 == e["samples"]
    assert np.trace(cm) / cm.sum() == pytest.approx(e["accuracy"])
    assert [row["support"] for row in e["per_class"]] == cm.sum(axis=1).tolist()
    assert e["plot"] == str(plot.resolve())
    assert_png(plot)
    e2 = one_json(xpnet("evaluate", "run", "--split", "train", "--plot", "--json",
                        "--backend", "numpy", cwd=trained.cwd))
    assert e2["samples"] == 1437
    assert_png(trained.out / "confusion.png")


# ------------------------------------------------------------------------------ predict
def _reference(trained, X: np.ndarray) -> np.ndarray:
    model = xn.load(trained.out / "model.safetensors", backend="numpy")
    return np.asarray(model.predict(X))


def test_predict_npy_rows_and_uint8_images(trained, tmp_path):
    ds = xn.datasets.load("digits")
    rows = ds.x_test[:5]
    np.save(tmp_path / "rows.npy", rows)
    images = np.round(ds.x_test[5:9] * 255).astype(np.uint8).reshape(4, 8, 8)
    np.save(tmp_path / "images.npy", images)
    p = one_json(xpnet("predict", "run", tmp_path / "rows.npy", tmp_path / "images.npy",
                       "--backend", "numpy", "--json", cwd=trained.cwd))
    preds = p["predictions"]
    assert len(preds) == 9
    expected = np.concatenate([_reference(trained, rows),
                               _reference(trained, images.reshape(4, 64) / np.float32(255))])
    assert [q["label"] for q in preds] == expected.tolist()
    for q in preds:
        assert q["class"] == str(q["label"]) and 0 < q["probability"] <= 1
        assert len(q["top_k"]) == 3 and q["top_k"][0]["label"] == q["label"]
        probs = [t["probability"] for t in q["top_k"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert preds[0]["input"].endswith("rows.npy[0]")
    text = ok(xpnet("predict", "run", tmp_path / "rows.npy", "--top-k", "1",
                    "--backend", "numpy", cwd=trained.cwd)).stdout
    assert "rows.npy[4]" in text


def test_predict_png_and_inverted_png(trained, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    ds = xn.datasets.load("digits")
    img = np.round(ds.x_test[0].reshape(8, 8) * 255).astype(np.uint8)
    # 4x nearest upsampling; the 4x4 box filter used to shrink it back is exact
    Image.fromarray(img).resize((32, 32), Image.NEAREST).save(tmp_path / "digit.png")
    Image.fromarray(255 - img).resize((32, 32), Image.NEAREST).convert("RGB").save(
        tmp_path / "dark-on-light.png")
    p = one_json(xpnet("predict", "run", tmp_path / "digit.png",
                       tmp_path / "dark-on-light.png", "--backend", "numpy", "--json",
                       cwd=trained.cwd))
    expected = int(_reference(trained, img.reshape(1, 64) / np.float32(255))[0])
    first, second = p["predictions"]
    assert first["label"] == expected and first["inverted"] is False
    assert second["label"] == expected and second["inverted"] is True
    assert second["probability"] == pytest.approx(first["probability"], rel=1e-5)


def test_predict_idx(trained, tmp_path):
    ds = xn.datasets.load("digits")
    images = np.round(ds.x_test[:6] * 255).astype(np.uint8).reshape(6, 8, 8)
    xn.datasets.write_idx(tmp_path / "few-images-idx3-ubyte.gz", images)
    p = one_json(xpnet("predict", "run", tmp_path / "few-images-idx3-ubyte.gz", "--top-k",
                       "20", "--backend", "numpy", "--json", cwd=trained.cwd))
    assert [q["label"] for q in p["predictions"]] == _reference(
        trained, images.reshape(6, 64) / np.float32(255)).tolist()
    assert all(len(q["top_k"]) == 10 for q in p["predictions"])  # clipped to the classes


# ------------------------------------------------------------------------------ 80 columns
def _too_wide(text: str, width: int) -> list[str]:
    return [f"{len(line)}: {line}" for line in text.splitlines() if len(line) > width]


def test_train_output_fits_80_columns(tmp_path):
    """Under an 80-column terminal no line of ``xpnet train`` wraps."""
    proc = ok(xpnet("train", "--epochs", "1", cwd=tmp_path, COLUMNS="80"))
    assert not _too_wide(proc.stderr + proc.stdout, 80), proc.stderr
    lines = proc.stderr.splitlines()
    data = next(line for line in lines if line.startswith("data "))
    assert "8x8 images (64 features), 10 classes" in data
    epoch = next(line for line in lines if line.startswith("epoch "))
    assert "loss " in epoch and "val_acc " in epoch  # what is dropped is whole fields
    assert "test accuracy" in proc.stderr


def test_evaluate_output_fits_80_columns(trained):
    """``xpnet evaluate``'s model and data lines break between words at 80 columns."""
    proc = ok(xpnet("evaluate", "run", cwd=trained.cwd, COLUMNS="80"))
    assert not _too_wide(proc.stdout, 80), proc.stdout
    assert "(source: bundled); evaluating the test split" in " ".join(proc.stdout.split())


def test_the_result_table_folds_a_long_path_at_80_columns(tmp_path):
    """A long --out folds inside the result table: the table fits, the path is whole."""
    out = "runs/" + "a-rather-long-folder-name/" * 3 + "run"
    proc = ok(xpnet("train", "--epochs", "1", "--out", out, cwd=tmp_path, COLUMNS="80"))
    table = [line for line in proc.stderr.splitlines() if line[:1] in "┌│└"]
    assert table and not _too_wide("\n".join(table), 80), proc.stderr
    cells = "".join(line.split("│")[2].strip() for line in proc.stderr.splitlines()
                    if line.count("│") == 3)   # the value column, row after row
    assert f"{out}/model.safetensors" in cells and "…" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("width", [120, 88, 80, 60, 40])
def test_epoch_lines_drop_whole_fields_to_fit(width):
    from xpnet.cli._progress import epoch_line

    logs = {"loss": 12.1370, "accuracy": 0.6437, "val_loss": 10.4203, "val_accuracy": 0.8951,
            "seconds": 123.06}
    for epoch, epochs in ((0, 5), (99, 1000)):
        line = epoch_line(epoch, epochs, logs, 60_000, 469, width)
        assert len(line) <= width, line
        prefix = f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  "
        assert line.startswith(prefix + "loss 12.1370"), line
        for field in line[len(prefix):].split("  "):  # every field whole: name and number
            assert field in ("123.06s", "262ms/step", "488 samples/s") or \
                field.split(" ")[0] in ("loss", "accuracy", "acc", "val_loss",
                                        "val_accuracy", "val_acc"), line
    assert "samples/s" in epoch_line(0, 5, logs, 60_000, 469, 120)


def test_epoch_lines_show_the_time_per_step_where_it_fits():
    """As Keras does: ``3ms/step`` after the epoch's seconds, when the line has room."""
    from xpnet.cli._progress import epoch_line

    logs = {"loss": 1.137, "accuracy": 0.6437, "val_loss": 0.4203, "val_accuracy": 0.8951,
            "seconds": 0.06}
    assert epoch_line(0, 20, logs, 1294, 21, 88) == (
        "epoch  1/20  loss 1.1370  acc 0.6437  val_loss 0.4203  val_acc 0.8951  0.06s  3ms/step")
    assert "  0.06s  3ms/step  21,567 samples/s" in epoch_line(0, 20, logs, 1294, 21, 120)
    assert "ms/step" not in epoch_line(0, 20, logs, 1294, 21, 80)
    assert epoch_line(0, 2, {"loss": 1.0, "seconds": 9.0}, 1000, 3, 120).endswith(
        "9.00s  3s/step  111 samples/s")
    assert epoch_line(0, 2, {"loss": 1.0, "seconds": 0.005}, 1000, 20, 120).endswith(
        "0.01s  250us/step  200,000 samples/s")


@pytest.mark.parametrize("width", [120, 80, 50])
def test_the_live_bar_fits_the_terminal(width):
    import io

    from rich.console import Console

    from xpnet.cli._progress import TrainProgress

    bar = TrainProgress(Console(file=io.StringIO(), width=width, force_terminal=True))
    bar.on_train_begin({"epochs": 300, "steps_per_epoch": 4690, "samples": 600_000})
    bar.on_epoch_begin(122, {})
    bar.on_batch_end(99, {"loss": 12.137, "accuracy": 0.6437, "samples_seen": 12_800})
    shown = Console(file=io.StringIO(), width=width, record=True)
    shown.print(bar._progress.get_renderable())
    text = shown.export_text()
    bar.on_epoch_end(122, {"loss": 12.137, "accuracy": 0.6437, "seconds": 1.5})
    assert len(text.splitlines()) == 1 and not _too_wide(text, width), text
    assert "epoch 123/300" in text and "100/4690" in text
    assert re.search(r"eta (-:--:--|\d+:\d\d:\d\d)", text), text  # rich's TimeRemainingColumn
    if width >= 80:  # elapsed (TimeElapsedColumn) before the ETA, and the running loss
        assert re.search(r"\d+:\d\d:\d\d eta ", text) and "loss 12.1370" in text, text


def test_info_fits_80_columns(monkeypatch, capsys):
    from xpnet.cli import info

    monkeypatch.setenv("COLUMNS", "80")
    why = "cupy is not installed (pip install 'xpnet[cuda12]' (or cuda13)); " * 2
    info._show({
        "versions": {"xpnet": xn.__version__, "numpy": np.__version__},
        "platform": "Linux-6.18.44-fc-v1300-x86_64-with-glibc2.36-and-a-long-suffix",
        "cpus": {"count": 128, "usable": 64}, "auto_backend": "numpy",
        "backends": {"numpy": {"available": True, "reason": None, "devices": ["cpu"]},
                     "cupy": {"available": False, "reason": why, "devices": []}},
        "blas": [{"library": "openblas", "api": "blas", "threads": 2, "version": "0.3"}],
        "cpu_speedups": {"compiled optimizer": {"on": True, "why": "numba: " + why}},
        "data_cache": {"dir": "/home/someone/.cache/xpnet", "env": "XPNET_DATA_DIR",
                       "datasets": {"mnist": {"folder": "x", "files": []}}}})
    out = capsys.readouterr().out
    assert not _too_wide(out, 80), out
    assert "64 of 128 CPUs usable" in " ".join(out.split())
    assert "compiled optimizer    on   numba: cupy is not installed" in out


# ------------------------------------------------------------------------------ info etc.
@pytest.mark.slow  # probing the backends imports torch
def test_info(tmp_path):
    text = ok(xpnet("info", cwd=tmp_path)).stdout
    assert xn.__version__ in text and "numpy" in text and "BLAS" in text
    assert str(tmp_path / "cache") in text
    info = one_json(xpnet("info", "--json", cwd=tmp_path))
    assert info["versions"]["xpnet"] == xn.__version__
    assert info["backends"]["numpy"]["available"] is True
    assert info["backends"]["numpy"]["devices"] == ["cpu"]
    for row in info["backends"].values():
        assert row["available"] or row["reason"]
    assert info["data_cache"]["dir"] == str(tmp_path / "cache")
    from xpnet.ops import _malloc, _numba

    assert info["cpu_speedups"]["compiled optimizer"]["on"] is _numba.enabled()
    assert info["cpu_speedups"]["malloc tuning"]["on"] is _malloc.enabled()
    assert "compiled optimizer" in text and "malloc tuning" in text


def test_help_and_version(tmp_path):
    top = ok(xpnet("--help", cwd=tmp_path)).stdout
    for word in ("train", "evaluate", "predict", "info", "download", "exit status", "130"):
        assert word in top
    train = ok(xpnet("train", "--help", cwd=tmp_path)).stdout
    for flag in ("--dataset", "--resume", "--plot", "--json", "--early-stopping", "--threads"):
        assert flag in train
    assert ok(xpnet("--version", cwd=tmp_path)).stdout.strip() == f"xpnet {xn.__version__}"
    proc = xpnet(cwd=tmp_path)
    assert proc.returncode == 2 and "usage" in proc.stderr


def _help_texts(monkeypatch, columns: int) -> dict[str, str]:
    """``xpnet --help`` ("") and every ``xpnet COMMAND --help``, at `columns` columns."""
    import argparse

    from xpnet.cli import build_parser

    monkeypatch.setenv("COLUMNS", str(columns))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser.format_help(), **{n: p.format_help() for n, p in sub.choices.items()}}


def test_each_help_lists_only_the_exit_codes_of_its_command(monkeypatch):
    from xpnet.cli._args import EXIT_CODES

    helps = _help_texts(monkeypatch, 200)
    codes = {name: [int(c) for c in re.findall(r"^  (\d+) ", text.split("exit status:")[1],
                                                re.M)]
             for name, text in helps.items()}
    assert codes[""] == codes["train"] == list(EXIT_CODES)
    assert codes["evaluate"] == codes["predict"] == [0, 1, 2, 3, 4, 130]
    assert codes["export"] == codes["download"] == [0, 1, 2, 3, 130]
    assert codes["info"] == [0, 1, 2, 130]
    assert "diverged" not in helps["export"] and "SIGTERM" not in helps["export"]
    assert "diverged" in helps["train"] and "143  terminated (SIGTERM)" in helps["train"]


def test_help_fits_80_columns(monkeypatch):
    for name, text in _help_texts(monkeypatch, 80).items():
        assert not _too_wide(text, 80), name
    assert "  2    usage error: bad flag or value, missing optional dependency, output\n" \
           "       folder in use by another run" in _help_texts(monkeypatch, 80)["train"]


def test_console_script(tmp_path):
    exe = shutil.which("xpnet", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the xpnet console script is not installed next to this Python")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and xn.__version__ in proc.stdout


def test_main_returns_exit_code(capsys):
    from xpnet.cli import main

    assert main(["train", "--epochs", "0"]) == 2
    assert main(["--version"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: argument --epochs")


@pytest.mark.parametrize("argv,text", [
    (["train", "--learning-rate", "0.1"],
     "unrecognized arguments: --learning-rate 0.1; did you mean --lr?"),
    (["train", "--epoch", "1"], "unrecognized arguments: --epoch 1; did you mean --epochs?"),
    (["train", "--epoch=1"], "did you mean --epochs?"),
    (["train", "--val", "0.2"], "did you mean --val-split?"),
    (["train", "--weight_decay", "0.1"], "did you mean --weight-decay?"),
    (["train", "--patience", "3"], "did you mean --early-stopping?"),
    (["train", "--learning-rate", "0.1", "--batchsize", "8"],
     "--learning-rate: did you mean --lr?; --batchsize: did you mean --batch-size?"),
    (["evaluate", "m.safetensors", "--epochs", "3"], "--epochs is a flag of xpnet train"),
    (["export", "m.safetensors", "m.onnx", "--output", "proba"], "did you mean --outputs?"),
    (["trian"], "invalid choice: 'trian'; did you mean 'train'?"),
    (["evalute", "run"], "did you mean 'evaluate'?"),
    (["train", "--optimizer", "adma"], "invalid choice: 'adma'; did you mean 'adam'"),
    (["download", "mnsit"], "did you mean 'mnist'?"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_unknown_flags_and_commands_get_a_suggestion(capsys, argv, text):
    from xpnet.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xpnet: error: ") and err.count("\n") == 1, err
    assert text in err


def test_flags_are_never_abbreviated(capsys):
    """``--epoch 1`` is an error, not ``--epochs 1``, on every parser."""
    import argparse

    from xpnet.cli import build_parser, main

    assert main(["train", "--epoch", "1", "--no-save"]) == 2
    assert main(["predict", "m.safetensors", "x.npy", "--top", "2"]) == 2
    capsys.readouterr()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert not parser.allow_abbrev
    assert not [name for name, p in sub.choices.items() if p.allow_abbrev]


def test_an_unknown_flag_with_json_prints_the_error_object(capsys):
    from xpnet.cli import main

    assert main(["train", "--learning-rate", "0.1", "--json"]) == 2
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "status": "error", "exit_code": 2,
        "message": "unrecognized arguments: --learning-rate 0.1; did you mean --lr? "
                   "(see 'xpnet train --help')"}


# ------------------------------------------------------------------------------ errors
def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG header claiming width x height grey pixels, with no pixel data: a
    decompression bomb as far as the header goes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _npy_claiming(path: Path, shape: tuple[int, ...]) -> Path:
    """A .npy header claiming `shape` of float32, followed by 16 bytes."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(bytes(16))
    return path


def _with_metadata(src: Path, dst: Path, **changes: dict) -> Path:
    """A copy of a checkpoint with parts of its run metadata replaced."""
    ckpt = xn.load_checkpoint(src, backend="numpy")
    meta = json.loads(json.dumps(ckpt.metadata["user"]))
    for section, values in changes.items():
        meta[section].update(values)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return xn.save(ckpt.model, dst, optimizer=ckpt.optimizer, training=ckpt.training,
                   metadata=meta)


def _idx_dataset(folder: Path, train_labels: list[int]) -> Path:
    from xpnet.datasets import write_idx

    folder.mkdir(exist_ok=True)
    n = len(train_labels)
    write_idx(folder / "train-images-idx3-ubyte", np.zeros((n, 8, 8), np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte", np.array(train_labels, np.int32))
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((1, 8, 8), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(1, np.int32))
    return folder


def _corrupt_files(cwd: Path, model: Path) -> dict[str, Path]:
    bad_model = cwd / "garbage.safetensors"
    bad_model.write_bytes(os.urandom(3000))
    truncated = cwd / "truncated.safetensors"
    truncated.write_bytes(model.read_bytes()[:5000])
    bad_data = cwd / "bad-idx"
    bad_data.mkdir(exist_ok=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (bad_data / name).write_bytes(b"\x00\x00\x08\x03" + os.urandom(40))
    bad_npy = cwd / "wrong-shape.npy"
    np.save(bad_npy, np.zeros((3, 5), np.float32))
    nan_npy = cwd / "nan.npy"
    np.save(nan_npy, np.full((1, 64), np.nan, np.float32))
    regressor = cwd / "regressor.safetensors"
    xn.save(xn.MLP([64, 10], loss="mse", backend="numpy"), regressor,
            metadata={"dataset": {"spec": "digits", "image_shape": [8, 8]}})
    return {"bad_model": bad_model, "truncated": truncated, "bad_data": bad_data,
            "bad_npy": bad_npy, "nan_npy": nan_npy,
            "bomb_png": _png_claiming(cwd / "bomb.png", 20_000, 20_000),
            "lying_npy": _npy_claiming(cwd / "lying.npy", (10**12, 64)),
            "bad_shape_model": _with_metadata(model, cwd / "bad-shape.safetensors",
                                              dataset={"image_shape": ["x", "y"]}),
            "bad_spec_model": _with_metadata(model, cwd / "bad-spec.safetensors",
                                             dataset={"spec": 5}),
            "bad_settings_run": _with_metadata(model, cwd / "bad-settings" / MODEL_FILE,
                                               settings={"hidden": "512,256"}).parent,
            "regressor": regressor,
            "huge_label": _idx_dataset(cwd / "huge-label", [70_000, 0]),
            "many_classes": _idx_dataset(cwd / "many-classes", [300, 0])}


ERRORS = [
    # (id, args, exit code, text in the message)
    ("negative-lr", ["train", "--lr", "-1"], 2, "--lr: must be > 0"),
    ("nan-lr", ["train", "--lr", "nan"], 2, "--lr: must be a finite number"),
    ("zero-hidden", ["train", "--hidden", "0,5"], 2, "layer sizes must be positive"),
    ("zero-epochs", ["train", "--epochs", "0"], 2, "--epochs: must be an integer >= 1"),
    ("dropout", ["train", "--dropout", "1.5"], 2, "--dropout: must be >= 0 and < 1"),
    ("val-split", ["train", "--val-split", "1"], 2, "--val-split"),
    ("batch", ["train", "--batch-size", "x"], 2, "--batch-size: expected an integer"),
    ("warmup", ["train", "--warmup-epochs", "5", "--epochs", "5"], 2, "--warmup-epochs 5"),
    ("momentum-adam", ["train", "--momentum", "0.9"], 2, "--momentum applies to sgd"),
    ("unknown-backend", ["train", "--backend", "tpu"], 2, "unknown backend 'tpu'"),
    ("unknown-dataset", ["train", "--dataset", "imagenet"], 2, "unknown dataset 'imagenet'"),
    ("unknown-command", ["fit"], 2, "invalid choice: 'fit'"),
    ("unknown-flag", ["train", "--colour"], 2, "unrecognized arguments: --colour"),
    ("resume-without-out", ["train", "--resume"], 2, "--resume needs --out"),
    ("no-save-plot", ["train", "--no-save", "--plot"], 2, "--no-save cannot be combined"),
    ("missing-dataset", ["train", "--dataset", "./no/such/folder"], 3, "no such file"),
    ("corrupt-dataset", ["train", "--dataset", "{bad_data}"], 3, "bad-idx"),
    ("nothing-to-resume", ["train", "--out", "empty", "--resume"], 3, "nothing to resume"),
    ("no-gpu", ["train", "--backend", "cupy"], 4, "backend 'cupy' is not available"),
    ("missing-model", ["evaluate", "nope.safetensors"], 3, "does not exist"),
    ("garbage-model", ["evaluate", "{bad_model}"], 3, "not an xpnet checkpoint"),
    ("truncated-model", ["evaluate", "{truncated}"], 3, "truncated.safetensors"),
    ("model-folder-empty", ["evaluate", "empty"], 3, "without a model.safetensors"),
    ("eval-wrong-data", ["evaluate", "run", "--dataset", "{bad_data}"], 3, "bad-idx"),
    ("missing-input", ["predict", "run", "nope.npy"], 3, "input nope.npy does not exist"),
    ("wrong-shape-input", ["predict", "run", "{bad_npy}"], 3, "has shape (3, 5)"),
    ("nan-input", ["predict", "run", "{nan_npy}"], 3, "NaN"),
    ("not-an-input", ["predict", "run", "{bad_model}"], 3, "not a .npy, IDX or image"),
    ("top-k", ["predict", "run", "{nan_npy}", "--top-k", "0"], 2, "--top-k"),
    ("bomb-image", ["predict", "run", "{bomb_png}"], 3,
     "refused as a possible decompression bomb"),
    ("lying-npy", ["predict", "run", "{lying_npy}"], 3,
     "the .npy header claims shape (1000000000000, 64) of float32 (256000000000000 bytes) "
     "but the file holds 16 bytes of data: truncated or corrupt"),
    ("meta-image-shape", ["predict", "{bad_shape_model}", "{nan_npy}"], 3,
     "damaged metadata: dataset.image_shape must be a list of 1 to 4 positive integers, "
     "got list ['x', 'y']"),
    ("meta-spec", ["evaluate", "{bad_spec_model}"], 3,
     "damaged metadata: dataset.spec must be a string, got int 5"),
    ("meta-settings", ["train", "--out", "{bad_settings_run}", "--resume", "--epochs", "9"],
     3, "damaged metadata: settings.hidden must be a list of integers, got str '512,256'"),
    ("evaluate-regressor", ["evaluate", "{regressor}", "--dataset", "digits"], 3,
     "is not a classifier (its loss is mse)"),
    ("label-too-large", ["train", "--dataset", "{huge_label}", "--epochs", "1"], 3,
     "y_train has label 70000 at index 0; labels must be < 65536"),
    ("classes-beyond-data", ["train", "--dataset", "{many_classes}", "--epochs", "1"], 3,
     "labels up to 300 give 301 classes but the data has only 3 labelled samples"),
    ("download-name", ["download", "cifar"], 2, "invalid choice: 'cifar'"),
]


@pytest.mark.parametrize("args,code,text", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_are_one_line_with_exit_code(trained, args, code, text):
    cwd = trained.cwd
    (cwd / "empty").mkdir(exist_ok=True)
    files = _corrupt_files(cwd, trained.out / "model.safetensors")
    argv = [a.format(**files) for a in args]
    proc = xpnet(*argv, cwd=cwd, XPNET_DISABLE_CUPY="1")
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), proc.stderr
    assert text in lines[0]
    assert proc.stdout == ""
    assert "lower --batch-size" not in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    proc = xpnet("evaluate", "nope.safetensors", "--debug", cwd=tmp_path)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("xpnet: error: ")


def test_plot_without_matplotlib_fails_before_training(tmp_path):
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('matplotlib hidden by the test')\n")
    pythonpath = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    proc = xpnet("train", "--plot", "--out", "r", cwd=tmp_path, PYTHONPATH=pythonpath)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("xpnet: error: --plot needs matplotlib: "
                                   "pip install matplotlib")
    assert not (tmp_path / "r").exists()


def _loaded_runs(monkeypatch, tmp_path, *flags):
    """``xpnet train`` on a small .npz in this process; the dataset as loaded, the
    run as `_load` leaves it and the (X, y) that fit trains on."""
    import numpy as np

    from xpnet.cli import main
    from xpnet.cli import train as train_mod

    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.random((50, 4), dtype=np.float32),
             y_train=rng.integers(0, 3, 50), x_test=rng.random((10, 4), dtype=np.float32),
             y_test=rng.integers(0, 3, 10))
    seen: dict = {}
    real_load, real_dataset, real_fit = train_mod._load, train_mod.load_dataset, train_mod.fit

    def load(*args):
        plan, seen["run"] = real_load(*args)
        return plan, seen["run"]

    def dataset(*a, **k):
        seen["loaded"] = real_dataset(*a, **k)
        return seen["loaded"]

    def fit(model, X, y, **kwargs):
        seen["X"], seen["y"] = X, y
        return real_fit(model, X, y, **kwargs)

    monkeypatch.setattr(train_mod, "_load", load)
    monkeypatch.setattr(train_mod, "load_dataset", dataset)
    monkeypatch.setattr(train_mod, "fit", fit)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", str(path), "--epochs", "1", "--hidden", "4",
                 "--no-save", "--quiet", *flags]) == 0
    return seen["loaded"], seen["run"], (seen["X"], seen["y"])


def test_train_keeps_one_float_copy_of_the_training_rows(monkeypatch, tmp_path):
    """With a validation split the run keeps the dataset with its training rows only
    (the full array is not held twice); without one it trains on the loaded array."""
    loaded, run, (X, y) = _loaded_runs(monkeypatch, tmp_path, "--val-split", "0.2")
    assert X.shape[0] == run.n_train == 40 and run.val[0].shape[0] == 10
    assert run.ds.x_train is X and run.ds.y_train is y
    assert run.ds.x_test is loaded.x_test and run.ds.name == loaded.name
    rows = {r.tobytes() for r in loaded.x_train}
    assert {r.tobytes() for r in X} | {r.tobytes() for r in run.val[0]} == rows
    loaded, run, (X, y) = _loaded_runs(monkeypatch, tmp_path, "--val-split", "0")
    assert X is loaded.x_train and y is loaded.y_train and run.val is None
