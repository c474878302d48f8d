"""``xpnet train --distributed`` on slow storage: rank 0's checkpoint save at an epoch's end
is announced, so the other ranks wait for it up to ``XPNET_DISTRIBUTED_SAVE_TIMEOUT``
instead of ``XPNET_DISTRIBUTED_TIMEOUT``, while a rank that hangs anywhere else is still
caught after ``XPNET_DISTRIBUTED_TIMEOUT``. Under ``mpiexec -n 2``; skipped, with the
reason, where mpi4py or ``mpiexec`` is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_distributed import mpi_command, mpi_env, pytestmark  # noqa: F401

import xpnet as xn
from xpnet.distributed import DistributedError, init

# rank 0's checkpoint save at the end of epoch 2 sleeps SLOW seconds (storage made slow on
# purpose); or (FAULT=hang) rank 0 sleeps in a callback of every rank, outside any save
SLOW = textwrap.dedent("""
    import os, sys, time
    import xpnet.callbacks

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
    real_save, real_end = xpnet.callbacks.save, xpnet.callbacks.EarlyStopping.on_epoch_end

    def slow_save(model, path, **kw):
        if kw.get("training", {}).get("epoch") == 2 and os.environ.get("FAULT") == "slow":
            time.sleep(float(os.environ["SLOW"]))
        return real_save(model, path, **kw)

    def hang(self, epoch, logs):  # EarlyStopping runs on every rank: not a save
        if rank == 0 and epoch == 1 and os.environ.get("FAULT") == "hang":
            time.sleep(float(os.environ["SLOW"]))
        return real_end(self, epoch, logs)

    xpnet.callbacks.save = slow_save
    xpnet.callbacks.EarlyStopping.on_epoch_end = hang
    from xpnet.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    argv = ["train", "--dataset", "digits", "--hidden", "8", "--epochs", "3", "--quiet",
            "--distributed", "--out", "run", "--json", "--early-stopping", "50"]
    return subprocess.run([*mpi_command(2), sys.executable, str(script), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240, env=mpi_env(**env))


def _one_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_a_save_slower_than_the_timeout_does_not_end_a_healthy_job(tmp_path):
    """Rank 1 waited XPNET_DISTRIBUTED_TIMEOUT (3 s) for rank 0's 8-second save and
    ended the job with exit 124; the save is announced, so it waits up to 60 s."""
    proc = _run(tmp_path, FAULT="slow", SLOW="8", XPNET_DISTRIBUTED_TIMEOUT="3",
                XPNET_DISTRIBUTED_SAVE_TIMEOUT="60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _one_json(proc.stdout)["status"] == "completed"
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "completed" and record["epochs_done"] == 3
    assert record["history"]["epoch"] == [1, 2, 3] and record["ranks"] == 2
    resume = xn.load_checkpoint(tmp_path / "run" / "last.safetensors", backend="numpy")
    assert resume.training["epoch"] == 3


def test_a_save_longer_than_the_save_timeout_ends_the_job_naming_the_save(tmp_path):
    proc = _run(tmp_path, FAULT="slow", SLOW="120", XPNET_DISTRIBUTED_TIMEOUT="2",
                XPNET_DISTRIBUTED_SAVE_TIMEOUT="4")
    text = proc.stdout + proc.stderr
    assert proc.returncode == xn.distributed.EXIT_TIMEOUT, text
    message = ("rank 1 waited more than 4 s (XPNET_DISTRIBUTED_SAVE_TIMEOUT) for rank 0 to "
               "finish ModelCheckpoint at the end of epoch 2")
    assert message in text
    # rank 0 is stuck in its save: rank 1 leaves the record and the one JSON error
    error = _one_json(proc.stdout)
    assert error["exit_code"] == xn.distributed.EXIT_TIMEOUT
    assert error["message"].startswith(message)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == error["message"]
    assert record["epochs_done"] == 1


def test_a_rank_hanging_outside_a_save_is_still_caught_by_the_timeout(tmp_path):
    """A long save timeout does not slow down catching a rank that hangs elsewhere: rank 0
    sleeps 120 s in a callback of every rank (not a save) and rank 1 ends the job after
    XPNET_DISTRIBUTED_TIMEOUT (3 s), not XPNET_DISTRIBUTED_SAVE_TIMEOUT (1 hour)."""
    proc = _run(tmp_path, FAULT="hang", SLOW="120", XPNET_DISTRIBUTED_TIMEOUT="3",
                XPNET_DISTRIBUTED_SAVE_TIMEOUT="3600")
    text = proc.stdout + proc.stderr
    assert proc.returncode == xn.distributed.EXIT_TIMEOUT, text
    assert "rank 1 waited more than 3 s in the stop decision" in text
    # rank 0 is stuck: rank 1 leaves the record and the one JSON error (both stayed silent)
    error = _one_json(proc.stdout)
    assert error["exit_code"] == xn.distributed.EXIT_TIMEOUT
    assert error["message"].startswith("rank 1 waited more than 3 s in the stop decision")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == error["message"]
    assert record["epochs_done"] == 1


@pytest.mark.parametrize("value", ["nan", "-1", "soon"])
def test_a_bad_save_timeout_is_refused_like_the_timeout(monkeypatch, value):
    monkeypatch.setenv("XPNET_DISTRIBUTED_SAVE_TIMEOUT", value)
    with pytest.raises(DistributedError, match="XPNET_DISTRIBUTED_SAVE_TIMEOUT"):
        init()
    monkeypatch.delenv("XPNET_DISTRIBUTED_SAVE_TIMEOUT")
    with pytest.raises(DistributedError, match="save_timeout must be >= 0"):
        init(save_timeout=float(value) if value != "soon" else -5.0)
