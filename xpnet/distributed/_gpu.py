# This module imports CuPy (its NCCL binding) and PyTorch, lazily: GPU runs only.
"""GPUs of a rank: how many it sees, and NCCL reductions for CuPy (set up over MPI)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["gpu_count", "local_device", "nccl_available", "NcclReducer"]


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
    >>> from xpnet.distributed._gpu import gpu_count
    >>> gpu_count("numpy")
    0
    """
    try:
        if backend_name == "cupy":
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        if backend_name == "torch":
            import torch

            return int(torch.cuda.device_count())
    except Exception:
        return 0
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
    from ._devices import choose_device

    if comm.size == 1 and explicit is None:
        return None
    return choose_device(comm.local_rank, gpu_count(backend_name), explicit)


def nccl_available() -> bool:
    """Whether CuPy's NCCL binding is importable and usable here.

    Returns
    -------
    bool

    Examples
    --------
    >>> from xpnet.distributed._gpu import nccl_available
    >>> isinstance(nccl_available(), bool)
    True
    """
    try:
        from cupy.cuda import nccl
    except Exception:
        return False
    return bool(getattr(nccl, "available", True))


class NcclReducer:  # pragma: no cover - needs GPUs
    """``ncclAllReduce`` on the current CuPy stream; the control flags over MPI on the host.

    Rank 0 draws the NCCL unique id and broadcasts it over MPI; every rank then
    joins the NCCL communicator on its backend's GPU.

    Parameters
    ----------
    comm : Communicator
        The MPI communicator (the NCCL one is built from it).
    backend : Backend
        A ``cupy`` backend; its device is this rank's GPU.
    """

    name = "nccl"
    inline_flags = False

    def __init__(self, comm: Any, backend: Any):
        import cupy
        from cupy.cuda import nccl

        self.comm, self.cupy, self.nccl = comm, cupy, nccl
        uid = comm.bcast(nccl.get_unique_id() if comm.rank == 0 else None)
        with cupy.cuda.Device(backend.device.id):
            self.nccl_comm = nccl.NcclCommunicator(comm.size, uid, comm.rank)
        self.types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                      "float64": nccl.NCCL_FLOAT64}

    def allreduce(self, flat: Any, flags: list[int], backend: Any) -> tuple[Any, list[int]]:
        """Sum ``flat`` in place on the GPU (queued on the stream) and the flags on the host."""
        stream = self.cupy.cuda.get_current_stream()
        dtype = self.types[np.dtype(flat.dtype).name]
        self.nccl_comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, dtype,
                                 self.nccl.NCCL_SUM, stream.ptr)
        summed = self.comm.allreduce(np.asarray(flags, dtype=np.int64), what="the step flags")
        return flat, [int(v) for v in summed.tolist()]
