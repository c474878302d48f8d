"""``xpnet train --distributed``: the run record and the JSON output stay true when one
rank fails alone or stops answering. Under ``mpiexec -n 2``; skipped, with the reason,
where mpi4py or ``mpiexec`` is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from test_distributed import mpi_command, mpi_env, pytestmark  # noqa: F401

import xpnet as xn

# rank 1 fails at the third step of the second epoch, once rank 0 has written run.json and
# a checkpoint: it raises, or stops answering (sleeps)
FAULTY = textwrap.dedent("""
    import os, sys, time
    from xpnet.training import trainer

    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
    real = trainer.Trainer._display_due

    def due(self, k):
        if rank == 1 and self.state.epoch >= 1 and k == 2:
            if os.environ["FAULT"] == "raise":
                raise RuntimeError("rank 1 hit a fault")
            time.sleep(600)
        return real(self, k)

    trainer.Trainer._display_due = due
    from xpnet.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _faulty_run(tmp_path: Path, fault: str, **env: str) -> subprocess.CompletedProcess:
    script = tmp_path / "faulty.py"
    script.write_text(FAULTY)
    argv = ["train", "--dataset", "digits", "--hidden", "8", "--epochs", "3", "--quiet",
            "--distributed", "--out", "run", "--json"]
    return subprocess.run([*mpi_command(2), sys.executable, str(script), *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180,
                          env=mpi_env(FAULT=fault, **env))


def _one_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip().startswith("{")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_a_rank_failing_alone_leaves_run_json_failed_and_one_json_error(tmp_path):
    """After a raising rank, run.json stayed "running" and --json printed nothing."""
    proc = _faulty_run(tmp_path, "raise")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = _one_json(proc.stdout)
    assert error["status"] == "error" and error["exit_code"] == 1
    assert error["message"].startswith("rank 1 of 2: RuntimeError: rank 1 hit a fault")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["finished_at"] is not None
    assert record["error"].startswith("rank 1 of 2: RuntimeError: rank 1 hit a fault")
    assert record["epochs_done"] == 1
    xn.load_checkpoint(tmp_path / "run" / "model.safetensors", backend="numpy")


def test_a_watchdog_abort_leaves_run_json_failed_and_one_json_error(tmp_path):
    """After a watchdog abort, run.json stayed "running" and --json printed nothing."""
    proc = _faulty_run(tmp_path, "hang", XPNET_DISTRIBUTED_TIMEOUT="3")
    assert proc.returncode == xn.distributed.EXIT_TIMEOUT, proc.stdout + proc.stderr
    error = _one_json(proc.stdout)
    assert error["status"] == "error" and error["exit_code"] == xn.distributed.EXIT_TIMEOUT
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == error["message"]
    assert "3" in record["error"] and record["epochs_done"] == 1
