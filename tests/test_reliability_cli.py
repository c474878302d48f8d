"""Reliability of the ``xpnet`` command: what it writes, reads, prints and refuses.

Each test holds one promise of docs/reliability.md ("What is promised"): output paths are
checked before any work, the user's files and the command's inputs are never written
over, metadata never chooses paths, non-regular inputs are refused instead of blocking,
and bad values end in one clean line with a documented exit status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet.cli import main

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)


def _train(out: Path, *extra: str) -> int:
    return main(["train", "--epochs", "1", "--hidden", "8", "--backend", "numpy", "--quiet",
                 "--out", str(out), *extra])


@pytest.fixture
def run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert _train(out) == 0
    return out


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ----------------------------------------------------------------------------- outputs
@posix_only
@pytest.mark.parametrize("target", ["model", "run.json", "link", "fifo", "folder"])
def test_evaluate_refuses_a_plot_path_it_must_not_write_before_any_work(
        run, tmp_path, capsys, monkeypatch, target):
    """--plot-path RUN/model.safetensors overwrote the model with a PNG (exit 0); a link
    or a FIFO was refused only after the evaluation (exit 3)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = {"model": run / "model.safetensors", "run.json": run / "run.json",
            "link": tmp_path / "cm.png", "fifo": tmp_path / "cm.png",
            "folder": tmp_path / "cm.png"}[target]
    if target == "link":
        path.symlink_to(victim)
    elif target == "fifo":
        os.mkfifo(path)
    elif target == "folder":
        path.mkdir()
    before = _bytes(run)
    loaded = []
    monkeypatch.setattr("xpnet.cli.evaluate.load_dataset",
                        lambda *a, **k: loaded.append(a))  # any work reaches this
    code = main(["evaluate", str(run), "--plot-path", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--plot-path {path} " in err
    assert {"model": "is an input of this command", "run.json": "is an input of this command",
            "link": "is a symbolic link", "fifo": "is a FIFO",
            "folder": "is a folder"}[target] in err
    assert loaded == []
    assert _bytes(run) == before
    assert victim.read_text() == "keep me"


@posix_only
def test_evaluate_refuses_a_plot_path_that_is_the_dataset_file(run, tmp_path, capsys):
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x_train=rng.random((20, 64)), y_train=np.arange(20) % 10,
             x_test=rng.random((10, 64)), y_test=np.arange(10) % 10)
    before = data.read_bytes()
    code = main(["evaluate", str(run), "--dataset", str(data), "--plot-path", str(data)])
    assert code == 2
    assert "is an input of this command" in capsys.readouterr().err
    assert data.read_bytes() == before


@posix_only
@pytest.mark.parametrize("target", ["model", "run.json", "link"])
def test_export_refuses_an_output_it_must_not_write(run, tmp_path, capsys, target):
    victim = tmp_path / "victim.onnx"
    victim.write_text("keep me")
    path = {"model": run / "model.safetensors", "run.json": run / "run.json",
            "link": tmp_path / "m.onnx"}[target]
    if target == "link":
        path.symlink_to(victim)
    before = _bytes(run)
    code = main(["export", str(run), str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"OUTPUT {path} " in err
    assert _bytes(run) == before and victim.read_text() == "keep me"


@posix_only
@pytest.mark.parametrize("name", ["run.json", "model.safetensors", "curves.png"])
def test_train_refuses_a_link_in_its_output_folder_before_training(tmp_path, capsys, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "fresh"
    out.mkdir()
    (out / name).symlink_to(victim)
    extra = ["--overwrite"] if name == "model.safetensors" else []
    code = _train(out, "--json", *extra)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert f"--out {out / name} is a symbolic link" in captured.err
    assert json.loads(captured.out)["exit_code"] == 2
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == [name]  # no run.json, no model


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_saved(run, capsys):
    """--overwrite deleted the earlier model before the new run saved anything: a run that
    diverged in its first epoch left no model at all."""
    before = _bytes(run)
    code = _train(run, "--overwrite", "--epochs", "3", "--lr", "1e30")
    err = capsys.readouterr().err
    assert code == 1
    assert "training diverged" in err
    assert f"the earlier run in {run} is kept as it was" in err
    assert _bytes(run) == before  # model.safetensors and run.json, byte for byte
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    # a new run that saves replaces the earlier one: model, record and curves
    (run / "curves.png").write_bytes(b"old curves")
    assert _train(run, "--overwrite", "--epochs", "2", "--seed", "5") == 0
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert record["settings"]["seed"] == 5
    assert not (run / "curves.png").exists()
    ckpt = xn.load_checkpoint(run / "model.safetensors", backend="numpy")
    assert ckpt.training["epoch"] == 2


# ----------------------------------------------------------------------------- metadata
def test_a_model_file_never_chooses_where_evaluate_reads_or_downloads(tmp_path, capsys,
                                                                       monkeypatch):
    """The checkpoint's metadata ``data_dir`` made evaluate create that folder and download
    into it."""
    from xpnet.cli._args import EXIT_DATA, CLIError

    elsewhere = tmp_path / "chosen-by-the-file"
    model = xn.MLP([784, 10], backend="numpy")
    xn.save(model, tmp_path / "m.safetensors", metadata={"dataset": {
        "name": "mnist", "spec": "mnist", "data_dir": str(elsewhere)}})
    asked = []

    def load(spec, data_dir, *, progress):
        asked.append((spec, data_dir))
        raise CLIError("stop here", EXIT_DATA)

    monkeypatch.setattr("xpnet.cli.evaluate.load_dataset", load)
    assert main(["evaluate", str(tmp_path / "m.safetensors")]) == 3
    assert main(["evaluate", str(tmp_path / "m.safetensors"), "--data-dir", "mine"]) == 3
    assert asked == [("mnist", None), ("mnist", "mine")]
    assert not elsewhere.exists()


def test_resume_reads_the_data_folder_the_user_gives_not_the_saved_one(tmp_path,
                                                                       monkeypatch):
    from xpnet.cli import train as train_cmd
    from xpnet.cli._args import EXIT_DATA, CLIError

    assert _train(tmp_path / "run", "--data-dir", str(tmp_path / "old")) == 0
    asked = []

    def load(spec, data_dir, *, progress):
        asked.append(data_dir)
        raise CLIError("stop here", EXIT_DATA)

    monkeypatch.setattr(train_cmd, "load_dataset", load)
    assert _train(tmp_path / "run", "--resume", "--epochs", "2") == 3
    assert asked == [None]


# ----------------------------------------------------------------------------- inputs
@posix_only
@pytest.mark.parametrize("name", ["x.npy", "x.png", "t10k-images-idx3-ubyte", "folder"])
def test_predict_refuses_an_input_that_is_not_a_regular_file(run, tmp_path, capsys, name):
    """A FIFO given to predict blocked forever (it is never opened now)."""
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    code = main(["predict", str(run), str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    what = "a folder" if name == "folder" else "a FIFO"
    assert f"input {path} is {what}, not a regular file" in captured.err
    assert json.loads(captured.out)["exit_code"] == 3


@posix_only
def test_a_dataset_that_is_a_fifo_is_named_as_one(tmp_path, capsys):
    os.mkfifo(tmp_path / "data.npz")
    assert main(["train", "--dataset", str(tmp_path / "data.npz"), "--no-save"]) == 3
    assert f"--dataset {tmp_path / 'data.npz'} is a FIFO, not a regular file" in \
        capsys.readouterr().err


@posix_only
def test_the_idx_reader_refuses_a_fifo_instead_of_blocking(tmp_path):
    from xpnet.datasets.idx import IDXError, read_idx

    os.mkfifo(tmp_path / "labels-idx1-ubyte")
    with pytest.raises(IDXError, match="is a FIFO, not a regular file"):
        read_idx(tmp_path / "labels-idx1-ubyte")


# ----------------------------------------------------------------------------- clean refusals
@pytest.mark.parametrize("argv, flag", [
    (["--hidden", "9" * 40], "--hidden: a layer size must be at most 2147483647, got "
                             "999999999999...999999999999 (40 characters)"),
    (["--hidden", "64," + "9" * 5000], "--hidden: expected comma-separated layer sizes"),
    (["--threads", "9" * 40], "--threads: must be an integer <= 65536, got "
                              "999999999999...999999999999 (40 characters)"),
    (["--threads", "9" * 5000], "--threads: expected an integer, got "
                                "'999999999999...999999999999 (5000 characters)'"),
], ids=["hidden", "hidden-5000-digits", "threads", "threads-5000-digits"])
def test_huge_integers_are_refused_with_one_line(tmp_path, capsys, argv, flag):
    """--hidden 9999...9 ended in 'ValueError: Maximum allowed dimension exceeded' and
    --threads 9999...9 in 'OverflowError' (exit 1)."""
    code = main(["train", "--no-save", "--quiet", "--json", *argv])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert flag in captured.err and len(captured.err) < 400
    assert json.loads(captured.out)["exit_code"] == 2


@pytest.mark.parametrize("value", [5, "x", None, [1, "x"], {"at": 1}])
def test_a_hand_edited_resumes_field_does_not_break_resume(run, capsys, value):
    """``"resumes": 5`` in run.json: TypeError traceback and a run marked failed."""
    record = json.loads((run / "run.json").read_text())
    record["resumes"], record["started_at"] = value, value
    (run / "run.json").write_text(json.dumps(record))
    assert _train(run, "--resume", "--epochs", "2") == 0, capsys.readouterr().err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "completed"
    assert [r["from_epoch"] for r in record["resumes"]] == [1]
    assert isinstance(record["started_at"], str) and record["started_at"] != "x" or \
        value == "x"


def test_export_refuses_another_suffix_before_writing(run, tmp_path, capsys):
    """``xpnet export RUN m.json`` wrote m.json, then failed."""
    code = main(["export", str(run), str(tmp_path / "m.json")])
    assert code == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


@posix_only
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["info", "--json"], ["evaluate", "nope", "--json"]])
def test_json_on_a_full_disk_is_one_clean_error(tmp_path, argv):
    """Standard output on a full disk: a double traceback."""
    import subprocess

    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "xpnet", *argv], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env=dict(os.environ, XPNET_DATA_DIR=str(tmp_path)))
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "xpnet: error: cannot write to standard output: No space left on " \
                        "device"
    assert len(lines) == (1 if argv[0] == "info" else 2)


# ----------------------------------------------------------------------------- terminal
def _hostile_run(tmp_path: Path) -> Path:
    """A run trained on an .npz whose class names hold terminal escapes."""
    rng = np.random.default_rng(0)
    names = np.array(["cat\x1b[2J", "dog\x1b]0;owned\x07", "bird\r\x9b31m"])
    np.savez(tmp_path / "evil.npz", x_train=rng.random((30, 4)), y_train=np.arange(30) % 3,
             x_test=rng.random((9, 4)), y_test=np.arange(9) % 3, class_names=names)
    out = tmp_path / "evil-run"
    assert main(["train", "--dataset", str(tmp_path / "evil.npz"), "--epochs", "1",
                 "--hidden", "4", "--backend", "numpy", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_class_names_never_reach_the_terminal_raw(tmp_path, capsys, command):
    """A class name holding ``\\x1b[2J`` cleared the screen of whoever evaluated the model."""
    run = _hostile_run(tmp_path)
    capsys.readouterr()
    argv = [command, str(run)]
    if command == "predict":
        np.save(tmp_path / "rows.npy", np.random.default_rng(1).random((3, 4)))
        argv.append(str(tmp_path / "rows.npy"))
    assert main(argv) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert not any(ch in text for ch in "\x1b\x07\r\x9b"), repr(text)
    assert "cat\\x1b[2J" in text or "cat\\x1b" in text


def test_error_messages_escape_control_characters(tmp_path, capsys):
    path = tmp_path / "x\x1b[2J.safetensors"
    assert main(["evaluate", str(path)]) == 3
    err = capsys.readouterr().err
    assert "\x1b" not in err and "x\\x1b[2J.safetensors" in err


# ----------------------------------------------------------------------------- resume
def _interrupted_mid_epoch(out: Path, monkeypatch) -> int:
    """A run saved in the middle of its second epoch, as Ctrl-C leaves it."""
    from xpnet.callbacks import Callback
    from xpnet.cli import train as train_cmd

    class CtrlC(Callback):
        def __init__(self):
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs):
            self.epoch = epoch

        def on_batch_end(self, step, logs):  # every step, as patched below
            if self.epoch == 1 and step == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: saved at the next step

    with monkeypatch.context() as m:
        m.setattr(train_cmd, "TrainProgress", CtrlC)
        m.setattr("xpnet.training.trainer.Trainer._display_due", lambda self, k: True)
        assert main(["train", "--epochs", "3", "--hidden", "8", "--backend", "numpy",
                     "--batch-size", "64", "--out", str(out)]) == 130
    step = xn.load_checkpoint(out / "model.safetensors", backend="numpy").training["step"]
    assert step > 0
    return step


@pytest.mark.parametrize("batch", ["32", "100"])
def test_resume_mid_epoch_with_another_batch_size_is_refused(tmp_path, capsys, monkeypatch,
                                                             batch):
    """A smaller batch trained 48 rows twice without a word, a larger one failed with a
    traceback and marked the run failed."""
    out = tmp_path / "run"
    step = _interrupted_mid_epoch(out, monkeypatch)
    before = _bytes(out)
    capsys.readouterr()
    code = _train(out, "--resume", "--epochs", "3", "--batch-size", batch)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--batch-size {batch} differs from the run being resumed (64), which was saved " \
           f"in the middle of epoch 2 (step {step})" in err
    assert _bytes(out) == before  # run.json still says interrupted
    assert _train(out, "--resume", "--epochs", "3") == 0  # its own batch size resumes


def test_resume_refuses_settings_that_misstate_the_saved_model(run, capsys):
    """A hand-edited settings.hidden was taken silently; run.json then misstated the model."""
    ckpt = xn.load_checkpoint(run / "model.safetensors", backend="numpy")
    meta = ckpt.metadata["user"]
    meta["settings"]["hidden"] = [32, 16]
    xn.save(ckpt.model, run / "model.safetensors", training=ckpt.training, metadata=meta)
    code = main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "its settings say hidden 32,16 but the saved model has hidden layers 8" in err


def test_early_stopping_saves_the_best_epoch_and_resumes_from_the_last(tmp_path, capsys):
    """The run's model held the best epoch's weights with the last epoch's optimizer moments
    and position, and --resume continued from that mix."""
    out = tmp_path / "es"
    argv = ["--epochs", "30", "--hidden", "16", "--early-stopping", "2", "--optimizer", "sgd",
            "--lr", "0.3"]
    assert _train(out, *argv) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "stopped_early"
    best, last = record["best_epoch"], record["epochs_done"]
    assert best < last
    model = xn.load_checkpoint(out / "model.safetensors", backend="numpy")
    state = xn.load_checkpoint(out / "last.safetensors", backend="numpy")
    assert model.training["epoch"] == best and state.training["epoch"] == last
    assert model.training["history"]["val_loss"] == record["history"]["val_loss"][:best]
    assert min(record["history"]["val_loss"]) == record["history"]["val_loss"][best - 1]
    # the saved model is the best epoch's: its test score is the one reported
    assert model.model.evaluate(*_digits_test())["loss"] == pytest.approx(
        record["test"]["loss"], rel=1e-6)
    assert main(["train", "--out", str(out), "--resume", "--epochs", str(last + 1),
                 "--quiet"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["resumes"][-1]["from_epoch"] == last
    assert record["epochs_done"] == last + 1
    assert xn.load_checkpoint(out / "last.safetensors",
                              backend="numpy").training["epoch"] == last + 1


def test_a_resume_whose_newer_checkpoint_has_damaged_tensors_stops_naming_it(tmp_path,
                                                                            capsys):
    """The newer file is chosen from its header; its tensors are read when the model is
    built, and a damaged one ends the resume with exit status 3 before run.json changes."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    out = tmp_path / "r"
    assert _train(out, "--epochs", "3", "--hidden", "16", "--early-stopping", "2") == 0
    last = out / "last.safetensors"
    with safe_open(last, "np") as f:
        meta = f.metadata()
    tensors = load_file(last)
    key = next(k for k in tensors if k.endswith("W"))
    tensors[key] = tensors[key][:1]  # the wrong shape; the header's records stay sound
    save_file(tensors, last, metadata=meta)
    record = (out / "run.json").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4", "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "last.safetensors" in err and key.split("/")[-1] in err
    assert (out / "run.json").read_bytes() == record


def _digits_test():
    ds = xn.datasets.load("digits")
    return ds.x_test, ds.y_test


# ----------------------------------------------------------------------------- memory
def test_a_model_larger_than_memory_is_refused_before_allocating(tmp_path, capsys,
                                                                 monkeypatch):
    """--hidden 100000,100000 was refused only by the allocator, after a float64 temporary."""
    from xpnet.cli import train as train_cmd

    monkeypatch.setattr(train_cmd, "_available_memory", lambda: 2**30)  # 1 GiB free
    built = []
    monkeypatch.setattr("xpnet.model.MLP.__init__",
                        lambda self, *a, **k: built.append(a) or 1 / 0)
    code = main(["train", "--hidden", "12000,12000", "--no-save", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    n = 64 * 12000 + 12000 + 12000 * 12000 + 12000 + 12000 * 10 + 10
    assert f"the model has {n:,} parameters; training needs at least " \
           f"{(8 * n + 8 * 12000 * 12000) / 2**30:,.1f} GiB" in err
    assert "but 1.0 GiB of memory is available; lower --hidden" in err
    assert built == []


# ----------------------------------------------------------------------------- process state
def test_the_command_silences_only_floating_point_warnings(monkeypatch):
    """The CLI silenced every RuntimeWarning, numba's fallback warning included."""
    import warnings

    import xpnet.cli as cli

    def handler(args):
        warnings.warn("numba fell back to object mode", RuntimeWarning, stacklevel=1)
        with np.errstate(over="warn"):
            np.float32(3e38) * np.float32(10)  # a diverging run's overflow: silenced
        return 0

    monkeypatch.setitem(cli._COMMANDS, "info", handler)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["info"]) == 0
        warnings.warn("after the command", RuntimeWarning, stacklevel=1)
    messages = [str(w.message) for w in seen]
    assert messages == ["numba fell back to object mode", "after the command"]


@posix_only
def test_a_lock_linked_to_dev_zero_is_refused_unread(tmp_path, capsys):
    """A lock symlinked to /dev/zero was read until memory ran out."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".xpnet.lock").symlink_to("/dev/zero")
    assert _train(out) == 2
    assert "is a symbolic link" in capsys.readouterr().err


def test_a_library_fit_leaves_glibc_malloc_alone_xpnet_train_tunes_it(tmp_path, monkeypatch):
    """glibc malloc thresholds set by a library fit stayed changed after it returned
    (glibc cannot switch its dynamic thresholds back on): only the command tunes them."""
    from xpnet.ops import _malloc

    if not _malloc.available():
        pytest.skip("the malloc tuning needs glibc on Linux")
    for var in ("XPNET_MALLOC_TUNING", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES"):
        monkeypatch.delenv(var, raising=False)
    calls = []
    monkeypatch.setattr(_malloc._libc, "mallopt", lambda k, v: calls.append((k, v)) or 1)
    monkeypatch.setattr(_malloc._libc, "malloc_trim", lambda pad: calls.append(("trim", pad)))
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 5), dtype=np.float32), rng.integers(0, 2, 64)
    xn.MLP([5, 4, 2], backend="numpy", seed=0).fit(X, y, epochs=1, verbose=0)
    assert calls == []
    assert _train(tmp_path / "run") == 0
    assert calls[:2] == [(-3, _malloc.MMAP_THRESHOLD), (-1, _malloc.TRIM_THRESHOLD)]
    calls.clear()
    xn.MLP([5, 4, 2], backend="numpy", seed=0).fit(X, y, epochs=1, verbose=0)
    assert calls == []  # the command's setting ended with it


# ----------------------------------------------------------------------------- MPI
@pytest.mark.parametrize("value", ["nan", "-1"])
def test_a_nan_distributed_timeout_is_refused(monkeypatch, value):
    """XPNET_DISTRIBUTED_TIMEOUT=nan silently disabled the watchdog."""
    monkeypatch.setenv("XPNET_DISTRIBUTED_TIMEOUT", value)
    with pytest.raises(xn.distributed.DistributedError,
                       match=r"timeout must be >= 0 seconds \(0: no limit\), got (nan|-1)"):
        xn.distributed.init()


def test_an_infinite_distributed_timeout_means_no_limit(monkeypatch):
    from xpnet.distributed._comm import _timeout_setting

    monkeypatch.setenv("XPNET_DISTRIBUTED_TIMEOUT", "inf")
    assert _timeout_setting(None) is None
    monkeypatch.setenv("XPNET_DISTRIBUTED_TIMEOUT", "0")
    assert _timeout_setting(None) is None
    assert _timeout_setting(2.5) == 2.5
