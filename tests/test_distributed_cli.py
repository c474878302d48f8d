"""``xpnet train --distributed`` under ``mpiexec -n 2``: one run folder, one progress
output, one JSON summary, and the result of one process training with the global batch.
Skipped, with the reason, where mpi4py or ``mpiexec`` is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed import REPO, mpi_command, mpi_env, pytestmark  # noqa: F401

from xpnet.cli import main

# float64 and no dropout: two ranks of 64 rows give the parameters of one process of 128
FLAGS = ["train", "--dataset", "digits", "--hidden", "16", "--dropout", "0", "--dtype",
         "float64", "--schedule", "constant", "--quiet"]


def xpnet_on_two_ranks(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*mpi_command(2), sys.executable, "-m", "xpnet", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env=mpi_env())


def one_process(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_on_two_ranks_is_one_run_with_the_global_batch(tmp_path, capsys):
    argv = [f for f in FLAGS if f != "--quiet"] + ["--epochs", "2", "--batch-size", "64"]
    proc = xpnet_on_two_ranks(*argv, "--distributed", "--out", "run", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one JSON object on stdout, one header and one line per epoch on stderr
    summary = json.loads(proc.stdout)
    assert proc.stderr.count("xpnet 0.") == 1 and proc.stderr.count("epoch 1/2") == 1
    assert "batch 128 (64 x 2 ranks)" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.safetensors",
                                                                   "run.json"]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["ranks"] == 2 and record["batch_size"] == 128
    assert record["settings"]["batch_size"] == 64 and record["status"] == "completed"

    single = one_process(capsys, *FLAGS, "--epochs", "2", "--batch-size", "128", "--no-save")
    assert summary["test"]["accuracy"] == single["test"]["accuracy"]
    assert summary["test"]["loss"] == pytest.approx(single["test"]["loss"], rel=1e-9)
    assert summary["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-9)


def test_a_two_rank_run_resumes_on_two_ranks_then_one_with_the_same_global_batch(tmp_path,
                                                                               capsys):
    proc = xpnet_on_two_ranks(*FLAGS, "--epochs", "1", "--batch-size", "32", "--distributed",
                              "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # ranks other than 0 never read --out: they get the settings and weights from rank 0
    proc = xpnet_on_two_ranks("train", "--out", "run", "--resume", "--epochs", "2",
                              "--distributed", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["epochs_done"] == 2
    resumed = one_process(capsys, "train", "--out", str(tmp_path / "run"), "--resume",
                          "--epochs", "3", "--quiet")
    assert resumed["settings"]["batch_size"] == 64  # 32 per rank x 2 ranks, now on one
    straight = one_process(capsys, *FLAGS, "--epochs", "3", "--batch-size", "64", "--no-save")
    assert resumed["test"]["accuracy"] == straight["test"]["accuracy"]
    assert resumed["history"]["loss"] == pytest.approx(straight["history"]["loss"], rel=1e-9)


def test_the_example_script_runs_on_two_ranks(tmp_path):
    proc = subprocess.run([*mpi_command(2), sys.executable, "examples/distributed_digits.py",
                           "--fast", "--save", str(tmp_path / "m.safetensors")],
                          cwd=REPO, capture_output=True, text=True, timeout=180,
                          env=mpi_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy:") == 1 and "global batch: 64" in proc.stdout
    assert float(proc.stdout.rsplit("test accuracy:", 1)[1]) > 0.85
    assert (tmp_path / "m.safetensors").is_file()


def test_a_usage_error_is_reported_once_and_ends_every_rank(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.safetensors").write_bytes(b"x")
    proc = xpnet_on_two_ranks("train", "--distributed", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("already holds a run") == 1


def test_a_table_file_trains_on_two_ranks_as_on_one_process_with_the_global_batch(tmp_path,
                                                                                  capsys):
    """``--dataset file.csv --distributed``: every rank reads and encodes the table (before:
    ranks other than 0 read it as an IDX/npz dataset and the job failed)."""
    from test_tables_cli import table_text

    (tmp_path / "t.csv").write_text(table_text(n=200))
    flags = ["train", "--dataset", str(tmp_path / "t.csv"), "--target", "label",
             "--hidden", "8", "--dropout", "0", "--dtype", "float64", "--schedule",
             "constant", "--epochs", "2", "--quiet"]
    proc = xpnet_on_two_ranks(*flags, "--batch-size", "16", "--distributed", "--out", "run",
                              "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["ranks"] == 2 and record["status"] == "completed"
    single = one_process(capsys, *flags, "--batch-size", "32", "--no-save")
    assert summary["history"]["loss"] == pytest.approx(single["history"]["loss"], rel=1e-9)
    assert summary["validation"]["accuracy"] == single["validation"]["accuracy"]
