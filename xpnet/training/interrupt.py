"""Signals: Ctrl-C (SIGINT) and SIGTERM, during ``fit`` and around ``xpnet train``.

In ``fit``, `InterruptFlag` turns the first SIGINT or SIGTERM into a flag the trainer reads
after each step: the step finishes, a resumable checkpoint is written and
`TrainingInterrupted` is raised; a second signal interrupts at once. Around the whole
command, `_SignalGuard` makes SIGTERM (job schedulers, ``kill``) stop it the way Ctrl-C
does: inside ``fit`` it is passed on to fit's SIGINT handler, anywhere else `_Terminated`
(a ``KeyboardInterrupt``) is raised; the command exits with 128 + the signal number
(`_exit_status`: 130 for SIGINT, 143 for SIGTERM). Every handler is installed only in the
main thread and the previous one put back exactly on exit (`_Handlers`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TrainingInterrupted", "InterruptFlag"]

_H = TypeVar("_H", bound="_Handlers")


class _Handlers:
    """Install `handler` for `signals` in the main thread; put the previous ones back on exit."""

    def __init__(self, signals: tuple[int, ...], handler: Callable[[int, Any], Any] | int):
        self._signals, self._new = signals, handler
        self._old: dict[int, Any] = {}

    def __enter__(self: _H) -> _H:
        if threading.current_thread() is threading.main_thread():
            for sig in self._signals:
                with contextlib.suppress(ValueError, OSError):  # e.g. embedded interpreters
                    self._old[sig] = signal.signal(sig, self._new)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped [`fit`][xpnet.training.fit] at the end of a step.

    Attributes
    ----------
    epoch, step : int
        1-based epoch and the number of steps done in it.
    checkpoint : str or None
        Path of the resumable checkpoint written on the way out (when a
        [`ModelCheckpoint`][xpnet.ModelCheckpoint] callback was given).
    signum : int
        The signal that stopped training (``signal.SIGINT`` or ``signal.SIGTERM``);
        the command line exits with ``128 + signum``.

    Examples
    --------
    ``fit`` raises it; continue with
    ``fit(..., resume=xn.load_checkpoint(exc.checkpoint).training)``. It is a
    ``KeyboardInterrupt``, so code that does not catch it stops as usual:

    >>> import xpnet as xn
    >>> exc = xn.TrainingInterrupted(2, 5, "run.safetensors")
    >>> isinstance(exc, KeyboardInterrupt), exc.checkpoint, int(exc.signum)
    (True, 'run.safetensors', 2)
    >>> print(exc)
    training interrupted at epoch 2, step 5; resumable checkpoint saved to run.safetensors
    """

    def __init__(self, epoch: int, step: int, checkpoint: str | None,
                 signum: int = signal.SIGINT):
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        self.signum = signum
        msg = f"training interrupted at epoch {epoch}, step {step}"
        if checkpoint:
            msg += f"; resumable checkpoint saved to {checkpoint}"
        super().__init__(msg)


class InterruptFlag(_Handlers):
    """A context manager that turns the first SIGINT/SIGTERM into a flag read after each step.

    A second signal interrupts at once (``KeyboardInterrupt``). Handlers are
    installed only in the main thread and put back on exit.

    Attributes
    ----------
    signum : int or None
        The signal received, None while there was none.

    Examples
    --------
    >>> import os, signal
    >>> from xpnet.training import InterruptFlag
    >>> with InterruptFlag() as flag:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     flag.signum == signal.SIGTERM
    True
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        super().__init__(self.SIGNALS, self._handler)
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a signal arrived."""
        return self.signum is not None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside ``fit``, raised the way Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


def _exit_status(exc: BaseException, received: int | None = None) -> int:
    """128 + the signal: `exc`'s ``signum``, else `received`, else SIGINT (130; SIGTERM 143)."""
    signum = getattr(exc, "signum", None) or received or signal.SIGINT
    return 128 + int(signum)


class _SignalGuard(_Handlers):
    """While active, SIGTERM interrupts like SIGINT; `received` is the signal seen, if any."""

    def __init__(self) -> None:
        super().__init__((signal.SIGTERM,), self._handler)
        self.received: int | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum
        on_int = signal.getsignal(signal.SIGINT)
        if callable(on_int) and on_int is not signal.default_int_handler:
            on_int(signal.SIGINT, frame)  # fit's handler: finish the step, save, raise
            return
        raise _Terminated(signum)

    def deferred(self) -> _Handlers:
        """Ignore SIGINT and SIGTERM in the block (while the final record is written)."""
        return _Handlers((signal.SIGINT, signal.SIGTERM), signal.SIG_IGN)
