"""A failing rank must not leave the others waiting forever.

Two mechanisms, both documented in ``docs/distributed.md``:

* [`install_excepthook`][xpnet.distributed.install_excepthook]: an exception nobody
  catches on one rank prints its traceback, names the rank and calls ``MPI_Abort``,
  which ends every rank of the job at once (``mpiexec`` exits with status 1).
* [`Watchdog`][xpnet.distributed.Watchdog]: a rank that waits longer than the timeout in
  one collective of the training loop (another rank died silently, hung, or left the
  loop) says so and aborts the job (exit status 124).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["install_excepthook", "Watchdog", "EXIT_FAILED", "EXIT_TIMEOUT"]

EXIT_FAILED = 1
"""``MPI_Abort`` error code after an uncaught exception on a rank."""
EXIT_TIMEOUT = 124
"""``MPI_Abort`` error code after a rank waited longer than the timeout."""


def install_excepthook(comm: Any) -> Callable[..., None]:
    """Make an uncaught exception on any rank abort the whole job, naming the rank.

    The previous hook still prints the traceback first.

    Parameters
    ----------
    comm : Communicator
        Its ``rank``, ``size`` and ``abort`` are used.

    Returns
    -------
    callable
        The hook installed as `sys.excepthook`.

    Examples
    --------
    >>> import sys
    >>> from xpnet.distributed import SingleProcess, install_excepthook
    >>> saved = sys.excepthook
    >>> hook = install_excepthook(SingleProcess())
    >>> sys.excepthook is hook
    True
    >>> sys.excepthook = saved
    """
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        sys.stderr.write(f"xpnet.distributed: rank {comm.rank} of {comm.size} failed:\n")
        previous(exc_type, exc, tb)
        comm.abort(EXIT_FAILED, f"rank {comm.rank} of {comm.size} raised "
                                f"{exc_type.__name__}: {exc}; ending every rank of the job")

    sys.excepthook = hook
    return hook


class Watchdog:
    """Call ``expire(message)`` when one guarded wait lasts longer than ``timeout`` seconds.

    A daemon thread, started at the first guarded wait, checks the deadline
    (MPI calls release the GIL while they wait, so it runs).

    Parameters
    ----------
    timeout : float or None
        Seconds; None guards nothing.
    expire : callable
        Called once with a message naming what waited too long; it should end
        the process (the communicator aborts the job).
    rank : int
        For the message.

    Examples
    --------
    >>> import time
    >>> from xpnet.distributed import Watchdog
    >>> said = []
    >>> dog = Watchdog(0.05, said.append, rank=0)
    >>> with dog.guard("allreduce"):
    ...     time.sleep(0.5)
    >>> said[0].startswith("rank 0 waited more than 0.05 s in allreduce")
    True
    """

    def __init__(self, timeout: float | None, expire: Callable[[str], Any], *, rank: int):
        self.timeout, self.expire, self.rank = timeout, expire, rank
        self._deadline: float | None = None
        self._what = ""
        self._thread: threading.Thread | None = None
        self._fired = False

    def guard(self, what: str) -> Watchdog:
        """A context manager: the block must end within ``timeout`` seconds.

        Parameters
        ----------
        what : str
            What is waited for (named in the message).

        Returns
        -------
        context manager
        """
        self._what = what
        return self

    def __enter__(self) -> None:
        if self.timeout is None:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="xpnet-watchdog",
                                            daemon=True)
            self._thread.start()
        self._deadline = time.monotonic() + self.timeout

    def __exit__(self, *exc: object) -> None:
        self._deadline = None

    def _watch(self) -> None:
        assert self.timeout is not None
        tick = min(1.0, max(self.timeout / 20.0, 0.01))
        while not self._fired:
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                self._fired = True
                self.expire(_waited_too_long(self.rank, self.timeout, self._what))
                return
            time.sleep(tick)


def _waited_too_long(rank: int, limit: float, what: str) -> str:
    return (f"rank {rank} waited more than {limit:g} s in {what}: another rank has failed, "
            "hung or left the training loop; ending every rank of the job")
