# NumPy is used here on the host only, for the buffers handed to MPI.
"""Reducers: how one step's flat buffer is summed over the ranks, for each kind of memory.

=================  ==============================================================
``host``           NumPy, PyTorch on the CPU, ``array_api_strict``: one MPI
                   ``Allreduce`` on the buffer itself, control flags included
``nccl``           CuPy with NCCL: ``ncclAllReduce`` on the device, on the current
                   stream (no host sync); the control flags on the host over MPI
``cuda-aware-mpi`` a device buffer handed to an MPI built with CUDA support (the
                   stream is synchronised first: MPI does not wait on it)
``staged``         any device without the two above: copied to the host, reduced
                   over MPI, copied back
=================  ==============================================================

The buffer always ends with ``len(flags)`` slots for the control flags (see
[`GradientAllreduce`][xpnet.distributed.GradientAllreduce]). A reducer with ``inline_flags`` has
them written into the buffer and reads their sums back from it (one MPI call in all);
the others sum the flags in a separate small MPI call on the host, so that the host
never writes to or waits for the device for them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..backends import Backend, synchronize, to_numpy

__all__ = ["REDUCERS", "choose_reducer", "make_reducer", "HostReducer", "StagedReducer"]

REDUCERS = ("host", "nccl", "cuda-aware-mpi", "staged")
"""Names of the reducers, the ways one step's buffer is summed over the ranks
(``XPNET_REDUCER`` picks one; see [`choose_reducer`][xpnet.distributed.choose_reducer])."""


def choose_reducer(backend_name: str, is_host: bool, *, nccl: bool, cuda_aware: bool,
                   override: str | None = None) -> str:
    """The reducer for a backend: host memory on the host; NCCL, CUDA-aware MPI or staging.

    Parameters
    ----------
    backend_name : str
        ``"numpy"``, ``"cupy"``, ``"torch"``...
    is_host : bool
        Whether arrays live in host memory ([`xpnet.backends.Backend.is_host`][]).
    nccl : bool
        Whether CuPy's NCCL binding works here.
    cuda_aware : bool
        Whether MPI can read device memory.
    override : str, optional
        A reducer asked for by name (``XPNET_REDUCER``); checked against what can work.

    Returns
    -------
    str
        One of [`REDUCERS`][xpnet.distributed.REDUCERS].

    Raises
    ------
    ValueError
        For an unknown or impossible ``override``.

    Examples
    --------
    >>> from xpnet.distributed import choose_reducer
    >>> choose_reducer("numpy", True, nccl=False, cuda_aware=False)
    'host'
    >>> choose_reducer("cupy", False, nccl=True, cuda_aware=True)
    'nccl'
    >>> choose_reducer("cupy", False, nccl=False, cuda_aware=True)
    'cuda-aware-mpi'
    >>> choose_reducer("torch", False, nccl=True, cuda_aware=False)
    'staged'
    >>> choose_reducer("cupy", False, nccl=True, cuda_aware=False, override="staged")
    'staged'
    """
    possible = ["host"] if is_host else (
        (["nccl"] if nccl and backend_name == "cupy" else [])
        + (["cuda-aware-mpi"] if cuda_aware else []) + ["staged"])
    if override:
        if override not in REDUCERS:
            raise ValueError(f"unknown reducer {override!r}; choose one of {REDUCERS}")
        if override not in possible:
            raise ValueError(f"reducer {override!r} cannot work for backend {backend_name!r} "
                             f"here; possible: {possible}")
        return override
    return possible[0]


class _MPIReducer:
    """What the reducers share: the MPI communicator, and the flags summed in a host call."""

    name = ""
    inline_flags = False

    def __init__(self, comm: Any, backend: Backend | None = None):
        self.comm = comm

    def _sum_flags(self, flags: list[int]) -> list[int]:
        summed = self.comm.allreduce(np.asarray(flags, dtype=np.int64), what="the step flags")
        return [int(v) for v in summed.tolist()]


def _read_flags(summed: Any) -> list[int]:
    """The summed flags, from the float slots at the end of a summed host buffer."""
    return [int(round(float(v))) for v in summed.tolist()]


class HostReducer(_MPIReducer):
    """One MPI ``Allreduce`` on a host buffer, control flags included.

    Parameters
    ----------
    comm : Communicator

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.distributed import HostReducer, SingleProcess
    >>> import xpnet as xn
    >>> flat = np.array([0.5, 1.5, 1.0, 0.0])   # the last two slots hold the flags
    >>> flat, flags = HostReducer(SingleProcess()).allreduce(flat, [1, 0],
    ...                                                      xn.get_backend("numpy"))
    >>> flat.tolist(), flags
    ([0.5, 1.5, 1.0, 0.0], [1, 0])
    """

    name = "host"
    inline_flags = True

    def allreduce(self, flat: Any, flags: list[int], backend: Backend) -> tuple[Any, list[int]]:
        """Sum ``flat`` (whose last ``len(flags)`` slots hold the flags) over the ranks.

        Parameters
        ----------
        flat : array
            1-D, contiguous, on the host.
        flags : list of int
            This rank's flags (already in the buffer).
        backend : Backend

        Returns
        -------
        tuple
            The summed buffer and the summed flags.
        """
        k = len(flags)
        self.comm.allreduce(flat, what="the gradient allreduce")
        return flat, _read_flags(to_numpy(flat[-k:]))


class StagedReducer(_MPIReducer):
    """Device buffer copied to the host, summed over MPI, copied back.

    Parameters
    ----------
    comm : Communicator

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> from xpnet.distributed import SingleProcess, StagedReducer
    >>> b = xn.get_backend("array_api_strict")
    >>> flat = b.asarray([2.0, 0.0], dtype=b.dtype("float64"))
    >>> out, flags = StagedReducer(SingleProcess()).allreduce(flat, [1], b)
    >>> xn.to_numpy(out).tolist(), flags
    ([2.0, 1.0], [1])
    """

    name = "staged"

    def allreduce(self, flat: Any, flags: list[int], backend: Backend) -> tuple[Any, list[int]]:
        """Sum ``flat`` through a host copy; see
        [`HostReducer.allreduce`][xpnet.distributed.HostReducer.allreduce].

        Parameters
        ----------
        flat : array
        flags : list of int
        backend : Backend

        Returns
        -------
        tuple
        """
        k = len(flags)
        host = np.array(to_numpy(flat), copy=True)
        host[-k:] = flags
        self.comm.allreduce(host, what="the gradient allreduce")
        out = backend.xp.asarray(host, dtype=flat.dtype, device=backend.device)
        return out, _read_flags(host[-k:])


class CudaAwareMPIReducer(_MPIReducer):
    """A device buffer handed straight to an MPI that reads GPU memory."""

    name = "cuda-aware-mpi"

    def allreduce(self, flat: Any, flags: list[int],
                  backend: Backend) -> tuple[Any, list[int]]:  # pragma: no cover - GPU
        """Sum ``flat`` on the device through MPI; the flags in a separate host call."""
        synchronize(backend)  # MPI reads the buffer now, not when the stream gets there
        self.comm.allreduce(flat, what="the gradient allreduce")
        return flat, self._sum_flags(flags)


class NcclReducer(_MPIReducer):  # pragma: no cover - needs GPUs
    """``ncclAllReduce`` on the current CuPy stream; the control flags over MPI on the host."""

    name = "nccl"

    def __init__(self, comm: Any, backend: Any):
        import cupy
        from cupy.cuda import nccl

        super().__init__(comm)
        self.cupy, self.nccl = cupy, nccl
        # rank 0 draws the NCCL id; every rank joins with it on its backend's GPU
        uid = comm.bcast(nccl.get_unique_id() if comm.rank == 0 else None)
        with cupy.cuda.Device(backend.device.id):
            self.nccl_comm = nccl.NcclCommunicator(comm.size, uid, comm.rank)
        self.types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                      "float64": nccl.NCCL_FLOAT64}

    def allreduce(self, flat: Any, flags: list[int], backend: Backend) -> tuple[Any, list[int]]:
        """Sum ``flat`` in place on the GPU (queued on the stream) and the flags on the host."""
        stream = self.cupy.cuda.get_current_stream()
        dtype = self.types[np.dtype(flat.dtype).name]
        self.nccl_comm.allReduce(flat.data.ptr, flat.data.ptr, flat.size, dtype,
                                 self.nccl.NCCL_SUM, stream.ptr)
        return flat, self._sum_flags(flags)


def _nccl_available() -> bool:  # pragma: no cover - needs CuPy
    try:
        from cupy.cuda import nccl
    except Exception:
        return False
    return bool(getattr(nccl, "available", True))


def _cuda_aware_mpi() -> bool:  # pragma: no cover - needs a GPU build of MPI
    """Whether the MPI library reads device memory (``XPNET_CUDA_AWARE_MPI`` overrides)."""
    env = os.environ.get("XPNET_CUDA_AWARE_MPI")
    if env is not None:
        return env.strip() not in ("", "0", "no", "false")
    import ctypes

    try:
        query = ctypes.CDLL(None).MPIX_Query_cuda_support  # Open MPI's extension
    except (AttributeError, OSError):
        return False
    return bool(query())


_KINDS: dict[str, type[_MPIReducer]] = {
    kind.name: kind for kind in (HostReducer, NcclReducer, CudaAwareMPIReducer, StagedReducer)}


def make_reducer(comm: Any, backend: Backend, kind: str | None = None) -> Any:
    """The reducer this job uses for ``backend`` (see
    [`choose_reducer`][xpnet.distributed.choose_reducer]).

    Parameters
    ----------
    comm : Communicator
    backend : Backend
    kind : str, optional
        Force one of [`REDUCERS`][xpnet.distributed.REDUCERS]; default ``XPNET_REDUCER``
        or the best that works.

    Returns
    -------
    reducer
        An object with ``name`` and ``allreduce(flat, flags, backend)``.

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.distributed import SingleProcess, make_reducer
    >>> make_reducer(SingleProcess(), xn.get_backend("numpy")).name
    'host'
    """
    nccl = cuda_aware = False
    if not backend.is_host:  # pragma: no cover - needs a GPU
        nccl = backend.name == "cupy" and _nccl_available()
        cuda_aware = _cuda_aware_mpi()
    kind = choose_reducer(backend.name, backend.is_host, nccl=nccl, cuda_aware=cuda_aware,
                          override=kind or os.environ.get("XPNET_REDUCER") or None)
    return _KINDS[kind](comm, backend)

