"""Unit checks of the CLI's private helpers (what their docstring examples asserted)."""

from __future__ import annotations

import numpy as np
import pytest


def test_console_prints_brackets_as_given(capsys):
    from xpnet.cli._output import console

    console(stderr=False).print("model [1] saved")
    assert capsys.readouterr().out == "model [1] saved\n"


def test_safe_text_escapes_terminal_controls():
    from xpnet.cli._output import safe_text

    assert safe_text("cat\x1b[2J\rdog\x9b\t\n\u202e") == "cat\\x1b[2J\\x0ddog\\x9b\t\n\\u202e"


def test_fit_breaks_at_spaces_and_indents_later_lines(capsys):
    from rich.console import Console

    from xpnet.cli._output import fit, print_fitted, styled

    lines = fit("data     digits: 1437 train / 360 test images", 30, 9)
    assert [t.plain for t in lines] == ["data     digits: 1437 train /",
                                        "         360 test images"]
    print_fitted(Console(width=20), "model    64 → 512 → 256 → 10", indent=9)
    assert capsys.readouterr().out == "model    64 → 512 →\n         256 → 10\n"
    assert styled("backend ", ("numpy", "bold")).plain == "backend numpy"


def test_jsonable_and_json_rows(capsys):
    from xpnet.cli._output import jsonable, print_json, print_json_rows

    assert jsonable({1: (np.int64(2), float("nan"))}) == {"1": [2, None]}
    rows = ({"label": i} for i in range(3))
    print_json_rows({"model": "m"}, "predictions", rows, chunk=2)
    print_json({"model": "m", "predictions": [{"label": i} for i in range(3)]})
    first, second = capsys.readouterr().out.splitlines()
    assert first == second == ('{"model": "m", "predictions": '
                               '[{"label": 0}, {"label": 1}, {"label": 2}]}')


def test_fmt_secs_and_same_decimals():
    from xpnet.cli._output import fmt_secs, same_decimals

    assert (fmt_secs(4.21), fmt_secs(125.0)) == ("4.2 s", "2 min 5 s")
    assert same_decimals([0.0012, 0.00034]) == ["0.001200", "0.000340"]
    assert same_decimals([123456.7, 98.1]) == ["123457", "98"]


def test_dataset_spec_model_path_and_check_output(tmp_path):
    from xpnet.cli._args import CLIError
    from xpnet.cli._io import check_output, dataset_inputs, dataset_spec, model_path

    assert dataset_spec("Fashion_MNIST") == ("name", "fashion-mnist")
    assert dataset_inputs(str(tmp_path / "x.npz"), None) == [tmp_path / "x.npz"]
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    assert model_path(str(tmp_path)) == model
    check_output(tmp_path / "cm.png", "--plot-path", [model])  # a new file: fine
    with pytest.raises(CLIError) as err:
        check_output(model, "--plot-path", [model])
    assert err.value.code == 2
    assert str(err.value) == (f"--plot-path {model} is an input of this command ({model}); "
                              "xpnet never writes over its inputs: choose another name")


def test_run_meta_and_model_checks():
    from types import SimpleNamespace

    import xpnet as xn
    from xpnet.cli._args import CLIError
    from xpnet.cli._io import class_names, image_shape, require_classifier, run_meta

    meta = run_meta(SimpleNamespace(metadata={"user": {"settings": {"seed": 0}}}))
    assert meta == {"settings": {"seed": 0}}
    damaged = SimpleNamespace(metadata={"user": {"dataset": {"image_shape": "28x28"}}})
    with pytest.raises(CLIError, match="m.safetensors: damaged metadata: dataset.image_shape "
                       "must be a list of 1 to 4 positive integers, got str '28x28'") as err:
        run_meta(damaged, "m.safetensors")
    assert err.value.code == 3
    with pytest.raises(CLIError, match=r"m.safetensors is not a classifier \(its loss is mse\)"):
        require_classifier(xn.MLP([4, 2], loss="mse", backend="numpy"), "m.safetensors",
                           "evaluate")
    assert class_names({}, 3) == ["0", "1", "2"]
    assert (image_shape({}, 784), image_shape({}, 10)) == ((28, 28), None)


def test_run_folders_and_records(tmp_path):
    import xpnet as xn
    from xpnet.cli._records import (
        RunRecorder,
        default_out,
        file_identity,
        make_output_folder,
        new_record,
        recorder_callback,
    )

    first, second = default_out("fashion mnist", tmp_path), default_out("x", tmp_path)
    assert first.name.startswith("fashion-mnist-") and first.is_dir() and second.is_dir()
    make_output_folder(tmp_path / "runs" / "a", latest=True, overwrite=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["a", "latest"]
    assert file_identity(tmp_path / "no-such-file") is None
    model = xn.MLP([4, 3], backend="numpy")
    rec = new_record(command="xpnet train", settings={"seed": 0, "epochs": 2}, previous=None,
                     resume=None, resuming=False, backend=model.backend,
                     dataset={"name": "toy"}, model=model, optimizer=xn.Adam(),
                     steps_per_epoch=1, batch_size=8, saving=False)
    assert (rec["status"], rec["epochs"], rec["files"]["model"]) == ("running", 2, None)
    recorder = RunRecorder(None, {}, {"loss": [0.9]})
    recorder_callback(recorder).on_epoch_end(1, {"loss": 0.5})
    assert recorder.record["history"] == {"epoch": [1, 2], "loss": [0.9, 0.5]}
    assert recorder.record["epochs_done"] == 2


def test_settings_resolve_and_refusals():
    from xpnet.cli import build_parser
    from xpnet.cli._args import CLIError
    from xpnet.cli._settings import (
        check_settings,
        limit_threads,
        make_optimizer,
        resolve,
        resume_conflicts,
        split,
    )

    args = build_parser().parse_args(["train", "--optimizer", "sgd"])
    s, explicit = resolve(args, "digits", None)
    assert (s["batch_size"], s["lr"], s["momentum"], explicit) == (64, 0.05, 0.9, {"optimizer"})
    # a table's weight decay (1e-4) goes with its default optimizer, Adam; another optimizer
    # takes its own default (adamw 0.01, sgd 0), as --weight-decay's help says
    for flags, want in (([], 1e-4), (["--optimizer", "adamw"], 0.01),
                        (["--optimizer", "sgd"], 0.0), (["--weight-decay", "0.5"], 0.5)):
        s, _ = resolve(build_parser().parse_args(["train", *flags]), "table", None)
        assert s["weight_decay"] == want, flags
    with pytest.raises(CLIError, match="^--warmup-epochs 5 must be smaller than --epochs 5$"):
        check_settings({"warmup_epochs": 5, "epochs": 5})
    with pytest.raises(CLIError) as err:
        resume_conflicts({"seed": 1}, {"seed": 0}, {"seed"})
    assert err.value.code == 2 and str(err.value) == (
        "--seed 1 differs from the run being resumed (0); drop --seed to resume, or start a "
        "new run in another --out folder")
    s = {"optimizer": "sgd", "lr": 0.1, "schedule": "constant", "warmup_epochs": 0,
         "epochs": 3, "weight_decay": 0.0, "momentum": 0.9}
    assert type(make_optimizer(s, 10)).__name__ == "SGD"
    train, val = split(10, 0.2, seed=0)
    assert (len(train), len(val)) == (8, 2)
    assert sorted([*train.tolist(), *val.tolist()]) == list(range(10))
    from types import SimpleNamespace

    assert limit_threads("auto", SimpleNamespace(is_host=False), 0, False) == (None, "device")


def test_distributed_helpers_on_one_process():
    from xpnet.cli._distributed import AgreedError, global_steps, per_rank_batch, together
    from xpnet.distributed import SingleProcess

    def broken():
        raise FileNotFoundError(2, "No such file", "data.npz")

    with pytest.raises(AgreedError) as err:
        together(SingleProcess(), broken)
    assert (err.value.code, str(err.value)) == (3, "data.npz: No such file")
    assert per_rank_batch({"batch_size": 64}, {"batch_size": 64, "ranks": 2}, set(), 1) == 128
    assert per_rank_batch({"batch_size": 32}, {"batch_size": 64, "ranks": 2},
                          {"batch_size"}, 1) == 32
    assert global_steps(1000, 64, 4) == (256, 4)


def test_table_helpers(tmp_path):
    import argparse

    from xpnet.cli._args import CLIError
    from xpnet.cli._tables import TableData, check_dataset_file, check_table_flags, is_table
    from xpnet.datasets import TableEncoder

    enc = TableEncoder("y", task="regression")
    enc.columns = [{"name": "a", "kind": "float"}]
    data = TableData("t", np.zeros((3, 1), np.float32), np.zeros(3, np.float32), enc,
                     "t.csv", 3)
    assert data.summary() == ("t: 3 rows of 1 column (1 features: 1 numeric, 0 one-hot); "
                              "target y, regression (source: t.csv)")
    assert (is_table("name", "digits"), is_table("path", "/data/houses.csv")) == (False, True)
    (tmp_path / "x.npy").touch()
    with pytest.raises(CLIError, match=r"x.npy: unknown format '.npy'; accepted: a fold") as err:
        check_dataset_file("path", str(tmp_path / "x.npy"))
    assert err.value.code == 3
    args = argparse.Namespace(target="y", task=None, max_categories=None, impute=False,
                              dataset="digits")
    with pytest.raises(CLIError) as err:
        check_table_flags(args, False, False)
    assert err.value.code == 2 and str(err.value) == (
        "--target applies to table files (.csv, .tsv, .parquet, .npz of X and y), not to digits")


def test_train_progress_prints_one_line_per_epoch_off_a_terminal():
    import io

    from rich.console import Console

    from xpnet.cli._progress import TrainProgress

    bar = TrainProgress(Console(file=io.StringIO(), width=80))
    bar.on_train_begin({"epochs": 20, "steps_per_epoch": 21, "samples": 1294})
    bar.on_epoch_begin(0, {})
    bar.on_epoch_end(0, {"loss": 1.137, "accuracy": 0.6437, "seconds": 0.06})
    assert bar.console.file.getvalue() == (
        "epoch  1/20  loss 1.1370  accuracy 0.6437  0.06s  3ms/step  21,567 samples/s\n")


def test_parsers_take_the_flags_they_document():
    import argparse

    from xpnet.cli import build_parser
    from xpnet.cli._args import add_command

    args = build_parser().parse_args(["train", "--hidden", "64,32", "--epochs", "5"])
    assert (args.command, args.hidden, args.epochs, args.lr) == ("train", (64, 32), 5, None)
    args = build_parser().parse_args(["export", "m.safetensors", "m.onnx", "--outputs",
                                      "proba,labels", "--batch", "1"])
    assert (args.command, args.outputs, args.batch, args.opset) == (
        "export", ["proba", "labels"], 1, None)
    sub = argparse.ArgumentParser(prog="x").add_subparsers(dest="command")
    p = add_command(sub, "hello", help="say hello", description="Say hello.")
    assert p.parse_args(["--debug"]).debug is True


def test_read_inputs_names_each_row_of_a_stack(tmp_path):
    from xpnet.cli._inputs import read_inputs

    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), np.uint8))
    X, items = read_inputs([str(tmp_path / "x.npy")], 64, (8, 8), "auto")
    assert (X.shape, X.dtype) == ((2, 64), np.float32)
    assert [item["input"][-6:] for item in items] == ["npy[0]", "npy[1]"]


def test_read_inputs_takes_bools_and_refuses_complex_values(tmp_path):
    from xpnet.cli._args import CLIError
    from xpnet.cli._inputs import read_inputs

    np.save(tmp_path / "b.npy", np.array([[True, False, True, True]]))
    np.save(tmp_path / "c.npy", np.ones((1, 4), np.complex64))
    assert read_inputs([str(tmp_path / "b.npy")], 4, None, "auto")[0].tolist() == [[1, 0, 1, 1]]
    with pytest.raises(CLIError, match="dtype complex64; expected uint8, integers or floats"):
        read_inputs([str(tmp_path / "c.npy")], 4, None, "auto")


def test_run_lock_refuses_a_second_holder_and_removes_the_folder_it_made(tmp_path):
    from xpnet.cli._args import CLIError
    from xpnet.cli._runlock import RunLock

    lock = RunLock(tmp_path / "run", "xpnet train --out run")
    with pytest.raises(CLIError) as err:
        RunLock(tmp_path / "run", "xpnet train --out run")
    assert err.value.code == 2
    lock.release()
    assert not (tmp_path / "run").exists()  # created by the lock, empty: removed again


def test_confusion_counts_and_failure_classes():
    from xpnet.cli._args import classify
    from xpnet.cli._confusion import confusion, per_class

    support, correct, confused, cm = confusion(np.array([0, 0, 1]), np.array([0, 1, 1]), 2)
    assert (support.tolist(), correct.tolist(), confused.tolist(), cm.tolist()) == (
        [2, 1], [1, 1], [1, -1], [[1, 1], [0, 1]])
    assert per_class(np.array([2]), np.array([1]), np.array([-1]), ["cat"])[0]["accuracy"] == 0.5
    assert classify(MemoryError("no room"), "train") == (
        1, "out of memory (no room); lower --batch-size or --hidden")


@pytest.mark.skipif(not hasattr(__import__("os"), "kill"), reason="POSIX signals")
def test_the_command_guard_and_fits_flag_share_one_signal_layer():
    """SIGTERM outside fit raises like Ctrl-C (exit 143), inside fit it reaches fit's flag;
    deferred ignores both; every handler is put back exactly."""
    import os
    import signal

    from xpnet.training import InterruptFlag
    from xpnet.training.interrupt import _exit_status, _SignalGuard, _Terminated

    assert (_exit_status(KeyboardInterrupt()), _exit_status(_Terminated(signal.SIGTERM))) \
        == (130, 143)
    assert _exit_status(KeyboardInterrupt(), signal.SIGTERM) == 143
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with _SignalGuard() as guard:
        with pytest.raises(_Terminated) as err:
            os.kill(os.getpid(), signal.SIGTERM)
        assert isinstance(err.value, KeyboardInterrupt) and guard.received == signal.SIGTERM
        with InterruptFlag() as flag:  # fit's handlers: the first signal is a flag
            guard._handler(signal.SIGTERM, None)  # passed on as SIGINT
            assert flag.signum == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):  # a second one stops at once
                os.kill(os.getpid(), signal.SIGTERM)
        with guard.deferred():
            assert all(signal.getsignal(s) is signal.SIG_IGN
                       for s in (signal.SIGINT, signal.SIGTERM))
            os.kill(os.getpid(), signal.SIGTERM)  # ignored
        assert signal.getsignal(signal.SIGTERM) == guard._handler
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before
