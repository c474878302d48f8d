"""SIGTERM handled like Ctrl-C (SIGINT) while ``xpnet train`` runs.

Job schedulers and ``kill`` stop a process with SIGTERM. `SignalGuard` makes it
stop ``xpnet train`` the way Ctrl-C does: inside ``fit`` it is passed on to fit's own
SIGINT handler (the step finishes, a resumable checkpoint is written, and
[`xpnet.TrainingInterrupted`][] is raised); anywhere else `Terminated`, a
``KeyboardInterrupt``, is raised. Either way ``run.json`` is marked ``interrupted`` and
the exit status is 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["SignalGuard", "Terminated", "exit_status"]


class Terminated(KeyboardInterrupt):
    """A termination signal outside ``fit``, raised the way Ctrl-C raises KeyboardInterrupt.

    Parameters
    ----------
    signum : int
        The signal (``signal.SIGTERM``).

    Examples
    --------
    >>> import signal
    >>> from xpnet.cli._signals import Terminated
    >>> exc = Terminated(signal.SIGTERM)
    >>> isinstance(exc, KeyboardInterrupt), exc.signum == signal.SIGTERM
    (True, True)
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


def exit_status(exc: BaseException, received: int | None = None) -> int:
    """128 + the number of the signal that interrupted a command.

    Parameters
    ----------
    exc : BaseException
        The ``KeyboardInterrupt`` (or [`xpnet.TrainingInterrupted`][]); its ``signum``
        attribute names the signal when it has one.
    received : int or None, optional
        The termination signal a `SignalGuard` saw, used when `exc` has no
        ``signum``.

    Returns
    -------
    int
        130 for SIGINT (the default), 143 for SIGTERM.

    Examples
    --------
    >>> import signal
    >>> from xpnet.cli._signals import Terminated, exit_status
    >>> exit_status(KeyboardInterrupt()), exit_status(Terminated(signal.SIGTERM))
    (130, 143)
    """
    signum = getattr(exc, "signum", None) or received or signal.SIGINT
    return 128 + int(signum)


class SignalGuard:
    """While active, SIGTERM interrupts like SIGINT (see the module docstring).

    Attributes
    ----------
    received : int or None
        The termination signal received, if any.

    Examples
    --------
    >>> import signal
    >>> from xpnet.cli._signals import SignalGuard, Terminated
    >>> with SignalGuard() as guard:
    ...     try:
    ...         guard._handler(signal.SIGTERM, None)  # what a SIGTERM runs
    ...     except Terminated:
    ...         print("stopped like Ctrl-C")
    stopped like Ctrl-C
    >>> guard.received == signal.SIGTERM
    True
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum
        on_int = signal.getsignal(signal.SIGINT)
        if callable(on_int) and on_int is not signal.default_int_handler:
            on_int(signal.SIGINT, frame)  # fit's handler: finish the step, save, raise
            return
        raise Terminated(signum)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):  # e.g. embedded interpreters
                self._old = signal.signal(signal.SIGTERM, self._handler)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._old)
            self._installed = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Ignore SIGINT and SIGTERM in the block (while the final record is written)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
