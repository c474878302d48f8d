"""Data-parallel training over MPI: many processes, many GPUs, many machines.

``comm = xpnet.distributed.init()`` returns the communicator of the job (every rank
under ``mpiexec`` or ``srun``, a [`SingleProcess`][xpnet.distributed.SingleProcess] otherwise), and
``model.fit(X, y, batch_size=128, distributed=comm)`` trains with 128 rows per rank
per step. Every rank draws the same global batch order and takes its own contiguous
slice of each global batch ([`shard_rows`][xpnet.distributed.shard_rows]); rank 0's
parameters are broadcast at the start ([`agree_start`][xpnet.distributed.agree_start]);
one allreduce per step sums the weighted gradients, the loss and the control flags
([`GradientAllreduce`][xpnet.distributed.GradientAllreduce], on the host, through NCCL
or staged, see [`choose_reducer`][xpnet.distributed.choose_reducer]). See
``docs/distributed.md``.

Modules: ``_comm`` (communicators, [`init`][xpnet.distributed.init]), ``_sharding``,
``_parallel`` (the gradient hook, the agreed start, sharded validation), ``_reduce``
(reducers, NCCL among them), ``_devices`` (local rank from the launcher, the GPUs seen,
the rank's GPU), ``_failure`` (abort on an uncaught exception,
the watchdog).

Examples
--------
>>> import numpy as np, xpnet as xn
>>> comm = xn.distributed.init()          # one process here
>>> X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
>>> y = (X[:, 0] > 0).astype("int64")
>>> h = xn.MLP([4, 8, 2], backend="numpy", seed=0).fit(
...     X, y, epochs=2, batch_size=16, distributed=comm, verbose=0)
>>> h.params["ranks"], h.params["batch_size"]
(1, 16)
"""

from __future__ import annotations

from ._comm import (
    DEFAULT_SAVE_TIMEOUT,
    DEFAULT_TIMEOUT,
    Communicator,
    DistributedError,
    MPICommunicator,
    SingleProcess,
    init,
)
from ._devices import choose_device, env_local_rank, env_world_size, gpu_count, local_device
from ._failure import EXIT_FAILED, EXIT_TIMEOUT, Watchdog, install_excepthook
from ._parallel import (
    GradientAllreduce,
    agree_start,
    average_buffers,
    evaluate_sharded,
    rank_seed,
)
from ._reduce import REDUCERS, HostReducer, StagedReducer, choose_reducer, make_reducer
from ._sharding import shard_rows

__all__ = ["init", "Communicator", "SingleProcess", "MPICommunicator", "DistributedError",
           "DEFAULT_TIMEOUT", "DEFAULT_SAVE_TIMEOUT", "shard_rows", "GradientAllreduce",
           "agree_start", "average_buffers",
           "evaluate_sharded", "rank_seed", "REDUCERS", "choose_reducer", "make_reducer",
           "HostReducer", "StagedReducer", "choose_device", "local_device", "gpu_count",
           "env_local_rank",
           "env_world_size", "install_excepthook", "Watchdog", "EXIT_FAILED", "EXIT_TIMEOUT"]
