"""Data-parallel training under ``mpiexec -n 2``: the same model as one process, agreed
decisions, and a failing rank that ends the job.

Each test group starts ``tests/distributed_worker.py`` once on two ranks (about 2-5 s
each on two cores) and compares what the ranks wrote with single-process runs made
here. Skipped, with the reason, where mpi4py or ``mpiexec`` is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "distributed_worker.py"
sys.path.insert(0, str(REPO / "tests"))
import distributed_worker as worker  # noqa: E402


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _why_not() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'xpnet[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec on PATH or beside the Python executable"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


def mpi_command(n: int = 2) -> list[str]:
    """``mpiexec -n N`` with the flags this machine needs (Open MPI on few cores, as root)."""
    exe = _mpiexec()
    assert exe is not None
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    extra = ["--oversubscribe"] if ("Open MPI" in version or "OpenRTE" in version
                                    or "prte" in version.lower()) else []
    return [exe, "-n", str(n), *extra]


def mpi_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def run_worker(scenario: str, out: Path, timeout: float = 120,
               **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*mpi_command(2), sys.executable, str(WORKER), scenario, str(out)],
                          capture_output=True, text=True, timeout=timeout, env=mpi_env(**env))


def read(out: Path, name: str) -> list[dict]:
    return [json.loads((out / f"{name}-rank{r}.json").read_text()) for r in range(2)]


def one_process(name: str, n: int, epochs: int, **fit_kwargs) -> xn.Sequential:
    X, y = worker.data(n)
    model, opt = worker.model_and_optimizer(name)
    model.fit(X, y, epochs=epochs, batch_size=2 * worker.B, optimizer=opt, seed=11,
              verbose=0, **fit_kwargs)
    return model


def assert_params(model: xn.Sequential, path: Path) -> None:
    saved = np.load(path)
    assert sorted(saved.files) == sorted(model.params)
    for k in model.params:
        xn.testing.assert_close(model.params[k], saved[k], rtol=1e-12, atol=1e-15,
                                err_msg=f"{path.name} {k}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist-train")
    proc = run_worker("train", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.parametrize("name,n,epochs", worker.RUNS,
                         ids=[f"{a}-{n}rows" for a, n, _ in worker.RUNS])
def test_two_ranks_give_the_parameters_of_one_rank_with_twice_the_batch(trained, name, n,
                                                                        epochs):
    model = one_process(name, n, epochs)
    assert_params(model, trained / f"{name}-{n}.npz")
    assert read(trained, "train")[0][f"{name}-{n}"]["steps"] == -(-n // 16) * epochs


def test_reported_loss_is_the_global_batch_mean(trained):
    X, y = worker.data(320)
    model, opt = worker.model_and_optimizer("sgd")
    h = model.fit(X, y, epochs=1, batch_size=16, optimizer=opt, seed=11, verbose=0)
    for rank in read(trained, "train"):
        np.testing.assert_allclose(rank["sgd-320"]["loss"], h.history["loss"], rtol=1e-12)


def test_parameters_are_bitwise_identical_on_every_rank_after_every_epoch(trained):
    ranks = read(trained, "train")
    assert ranks[0] == ranks[1]  # both ranks gathered the same hashes and losses
    for key, entry in ranks[0].items():
        for epoch, digests in enumerate(entry["hashes"]):
            assert len(digests) == 2 and digests[0] == digests[1], (key, epoch)


def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(trained):
    ranks = read(trained, "interrupted")
    stops = [r["stopped"] for r in ranks]
    assert stops[0] is not None and stops[1] is not None
    assert (stops[0]["epoch"], stops[0]["step"]) == (stops[1]["epoch"], stops[1]["step"])
    assert stops[0]["epoch"] == 2 and stops[0]["signum"] == 15
    assert stops[0]["checkpoint"].endswith("ckpt-2.safetensors")
    assert stops[1]["checkpoint"] is None  # only rank 0 writes
    assert ranks[0]["digest"] == ranks[1]["digest"]


def test_a_checkpoint_of_two_ranks_resumes_on_one_as_the_uninterrupted_run(trained):
    ckpt = xn.load_checkpoint(trained / "ckpt-2.safetensors", backend="numpy")
    assert ckpt.training["step"] > 0  # written mid-epoch
    X, y = worker.data(313)
    model = ckpt.model
    model.fit(X, y, epochs=3, batch_size=2 * worker.B, optimizer=ckpt.optimizer, verbose=0,
              resume=ckpt.training)
    assert_params(model, trained / "uninterrupted.npz")


def test_nan_or_a_stop_on_one_rank_makes_every_rank_act_at_the_same_step(tmp_path):
    proc = run_worker("nonfinite", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r0, r1 = read(tmp_path, "nonfinite")
    assert r0 == r1  # the same outcome, parameters included, on both ranks
    for guard in ("host", "device"):
        r = r0[guard]
        assert r["raise"]["error"] == [2, 7]
        assert r["stop"] == {**r["stop"], "error": None, "epochs": 1, "stopped": True}
        assert r["skip"]["epochs"] == 3 and r["skip"]["skipped"] == [1.0]
        assert r["raise"]["digest"] == r["stop"]["digest"]  # the bad update never applied
    assert r0["early_stop"]["epochs"] == 2 and r0["early_stop"]["stopped"] is True
    host = r0["host"]
    assert host["raise"]["steps"] == host["stop"]["steps"] == 26
    assert host["skip"]["steps"] == 59  # 60 steps, one skipped
    assert r0["device"]["skip"]["digest"] == host["skip"]["digest"]


def test_a_rank_that_raises_ends_the_job_naming_the_rank(tmp_path):
    # the subprocess timeout is the bound: MPI_Abort ends every rank within seconds,
    # where without it rank 0 would wait in the next allreduce for ever
    proc = run_worker("raise", tmp_path, timeout=90)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "rank 1 of 2 failed" in text and "rank one broke on purpose" in text


def _gpus() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def _gpu_run(tmp_path: Path, **env: str) -> dict:
    proc = run_worker("gpu", tmp_path, timeout=300, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = read(tmp_path, "gpu")
    assert ranks[0]["digest"] == ranks[1]["digest"]
    model = one_process("adam", 313, 2)
    saved = np.load(tmp_path / "gpu.npz")
    for k in model.params:  # cuBLAS and OpenBLAS round differently: float64, 1e-9
        xn.testing.assert_close(model.params[k], saved[k], rtol=1e-9, atol=1e-12)
    return ranks[0]


@pytest.mark.skipif(_gpus() < 2, reason=f"NCCL needs two GPUs, one per rank; this machine "
                                        f"has {_gpus()} usable (CuPy)")
def test_nccl_reductions_on_two_gpus_give_the_one_process_result(tmp_path):
    assert _gpu_run(tmp_path)["reducer"] == "nccl"


@pytest.mark.skipif(_gpus() < 1, reason="needs a CUDA GPU and CuPy")
def test_host_staged_reductions_on_a_gpu_give_the_one_process_result(tmp_path):
    assert _gpu_run(tmp_path, XPNET_REDUCER="staged")["reducer"] == "staged"


def test_a_rank_that_leaves_is_caught_by_the_timeout(tmp_path):
    proc = run_worker("leave", tmp_path, timeout=90, WORKER_TIMEOUT="3")
    text = proc.stdout + proc.stderr
    assert proc.returncode == xn.distributed.EXIT_TIMEOUT, text
    # rank 1 left at the end of epoch 1: rank 0 waits in the agreed stop decision
    assert "rank 0 waited more than 3 s in the stop decision" in text


def _bn_statistics(sync: bool) -> list[dict]:
    """Each rank's running statistics of the batchnorm scenario's first layer, computed
    here from its shares of the batches (BatchNorm(momentum=0.2) sees X itself)."""
    X, _ = worker.data(100)
    stats = [{"mean": np.zeros(worker.FEATURES), "var": np.ones(worker.FEATURES)}
             for _ in range(2)]
    for _epoch in range(2):
        for glo in range(0, 100, 2 * worker.B):
            for rank, s in enumerate(stats):
                lo, hi = xn.distributed.shard_rows(glo, min(glo + 2 * worker.B, 100), rank, 2)
                rows = X[lo:hi]
                s["mean"] = 0.8 * s["mean"] + 0.2 * rows.mean(axis=0)
                s["var"] = 0.8 * s["var"] + 0.2 * rows.var(axis=0, ddof=1)
        if sync:
            for key in ("mean", "var"):
                both = (stats[0][key] + stats[1][key]) / 2
                stats[0][key], stats[1][key] = both, both.copy()
    return stats


def test_batchnorm_statistics_are_per_rank_or_averaged_with_sync_buffers(tmp_path):
    """Default: each rank keeps the running statistics of its own rows, and the checkpoint
    rank 0 writes holds rank 0's; sync_buffers=True: every epoch ends with their mean on
    every rank (and in the file). The parameters are the same on both ranks either way."""
    proc = run_worker("batchnorm", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = read(tmp_path, "batchnorm")
    for sync in (False, True):
        run = [r[f"sync{int(sync)}"] for r in ranks]
        assert run[0]["params"] == run[1]["params"]
        want = _bn_statistics(sync)
        for rank in range(2):
            for key in ("mean", "var"):
                np.testing.assert_allclose(run[rank]["buffers"][f"0.running_{key}"],
                                           want[rank][key], rtol=1e-12)
        same = run[0]["buffers"]["0.running_mean"] == run[1]["buffers"]["0.running_mean"]
        assert same is sync
        saved = xn.load(tmp_path / f"bn-sync{int(sync)}.safetensors", backend="numpy")
        for k, v in run[0]["buffers"].items():  # rank 0's, bit for bit
            assert saved.buffers[k].tolist() == v, k
