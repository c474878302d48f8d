# This module imports CuPy and PyTorch lazily, to count the GPUs they see.
"""Where a rank runs: its rank on the node (from the launcher), the GPUs it sees, the one
it takes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["LOCAL_RANK_VARS", "WORLD_SIZE_VARS", "env_local_rank", "env_world_size",
           "choose_device", "gpu_count", "local_device"]

#: Variables launchers set to the rank of a process among those on its node, in the
#: order they are read: Open MPI's ``mpiexec``, MPICH/Intel MPI (Hydra), MVAPICH2, Slurm.
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                   "SLURM_LOCALID")
#: Variables launchers set to the number of processes of the job.
WORLD_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE",
                   "SLURM_STEP_NUM_TASKS")


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def env_local_rank(env: Mapping[str, str] | None = None) -> int | None:
    """This process's rank on its node, as the launcher wrote it (None: no launcher said).

    Parameters
    ----------
    env : mapping, optional
        The environment to read (default ``os.environ``).

    Returns
    -------
    int or None

    Examples
    --------
    >>> from xpnet.distributed import env_local_rank
    >>> env_local_rank({"SLURM_LOCALID": "3"}), env_local_rank({})
    (3, None)
    >>> env_local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "1", "SLURM_LOCALID": "3"})
    1
    """
    return _first_int(os.environ if env is None else env, LOCAL_RANK_VARS)


def env_world_size(env: Mapping[str, str] | None = None) -> int | None:
    """The number of processes a launcher started (None outside a launcher).

    Parameters
    ----------
    env : mapping, optional
        The environment to read (default ``os.environ``).

    Returns
    -------
    int or None

    Examples
    --------
    >>> from xpnet.distributed import env_world_size
    >>> env_world_size({"OMPI_COMM_WORLD_SIZE": "4"}), env_world_size({})
    (4, None)
    """
    return _first_int(os.environ if env is None else env, WORLD_SIZE_VARS)


def choose_device(local_rank: int, n_devices: int, explicit: int | None = None) -> int:
    """The GPU index a rank uses: ``explicit`` when given, else ``local_rank % n_devices``.

    With one rank per GPU (the usual launch) rank ``i`` on a node takes GPU
    ``i``; with more ranks than GPUs they share round-robin (slower, but it
    runs). ``CUDA_VISIBLE_DEVICES`` applies first: the index counts the GPUs
    this process can see.

    Parameters
    ----------
    local_rank : int
        The rank on the node (`Communicator.local_rank`).
    n_devices : int
        GPUs this process sees.
    explicit : int, optional
        A device given by the user (``--device``); used as it is.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When there is no GPU, or ``explicit`` is not one of them.

    Examples
    --------
    >>> from xpnet.distributed import choose_device
    >>> [choose_device(r, 4) for r in range(6)]
    [0, 1, 2, 3, 0, 1]
    >>> choose_device(5, 4, explicit=2)
    2
    """
    if n_devices < 1:
        raise ValueError("no GPU is visible to this process (check CUDA_VISIBLE_DEVICES)")
    if explicit is not None:
        if not 0 <= explicit < n_devices:
            raise ValueError(f"device {explicit} does not exist: this process sees "
                             f"{n_devices} GPU(s), 0 to {n_devices - 1}")
        return explicit
    if local_rank < 0:
        raise ValueError(f"local_rank must be >= 0, got {local_rank}")
    return local_rank % n_devices


def gpu_count(backend_name: str) -> int:
    """The number of GPUs ``backend_name`` (``"cupy"`` or ``"torch"``) sees; 0 if none.

    Parameters
    ----------
    backend_name : str

    Returns
    -------
    int

    Examples
    --------
    >>> from xpnet.distributed import gpu_count
    >>> gpu_count("numpy")
    0
    """
    with contextlib.suppress(Exception):  # no driver, no device: none seen
        if backend_name == "cupy":
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        if backend_name == "torch":
            import torch

            return int(torch.cuda.device_count())
    return 0


def local_device(comm: Any, backend_name: str = "cupy", explicit: int | None = None
                 ) -> int | None:
    """The GPU this rank should use: ``explicit``, else its rank on the node modulo the GPUs.

    Parameters
    ----------
    comm : Communicator
        Its ``local_rank`` picks the GPU.
    backend_name : {"cupy", "torch"}
    explicit : int, optional
        A device the user chose (``--device``).

    Returns
    -------
    int or None
        None on one process without ``explicit`` (the backend's default device).

    Raises
    ------
    ValueError
        When this process sees no GPU, or ``explicit`` is not one of them.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.distributed.local_device(xn.distributed.SingleProcess()) is None
    True
    """
    if comm.size == 1 and explicit is None:
        return None
    return choose_device(comm.local_rank, gpu_count(backend_name), explicit)
