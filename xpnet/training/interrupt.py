"""Interruption: the first SIGINT or SIGTERM during ``fit`` stops it at the end of a step."""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["TrainingInterrupted", "InterruptFlag"]


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


class InterruptFlag:
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
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal arrived."""
        return self.signum is not None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self._old[sig] = signal.signal(sig, self._handler)
                except ValueError:  # pragma: no cover - e.g. embedded interpreters
                    pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
