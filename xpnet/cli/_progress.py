"""``xpnet train``'s progress: a bar per epoch and one line per epoch, fitted to the terminal.

`TrainProgress` is the library's [`ProgressBar`][xpnet.training.ProgressBar] made to fit
the console's width (``Console().width``: the terminal's, or ``$COLUMNS``): the live bar
and the per-epoch line drop their least useful fields until they fit, instead of letting
the terminal wrap them mid-number. `epoch_line` is the per-epoch line.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..training import ProgressBar

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["TrainProgress", "epoch_line"]

# The per-epoch line, from the richest to the narrowest: each step drops or shortens the
# least useful of what is left. Training loss and accuracy are never dropped before
# the validation ones, and the epoch number and training loss always stay.
_LEVELS: tuple[dict[str, Any], ...] = (
    {"drop": (), "short": False},
    {"drop": ("samples",), "short": False},
    {"drop": ("samples",), "short": True},
    {"drop": ("samples", "seconds"), "short": True},
    {"drop": ("samples", "seconds", "accuracy"), "short": True},
    {"drop": ("samples", "seconds", "accuracy", "val_loss"), "short": True},
    {"drop": ("samples", "seconds", "accuracy", "val_loss", "val_accuracy"), "short": True},
)
_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}
_BAR_MIN, _BAR_MAX = 10, 40


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any], samples: int,
               width: int) -> str:
    """The line printed at the end of an epoch, within `width` columns where it can be.

    Everything fits on a wide terminal: ``epoch 1/20  loss 1.1370  accuracy 0.6437
    val_loss 0.4203  val_accuracy 0.8951  0.06s  22,791 samples/s``. On a narrower one
    samples/s goes first, then the metrics' names are shortened (``acc``, ``val_acc``),
    then the epoch's seconds, then the training accuracy, the validation loss and the
    validation accuracy; the epoch and the training loss always stay.

    Parameters
    ----------
    epoch : int
        The epoch that ended, counted from 0.
    epochs : int
        The run's total epochs.
    logs : dict
        The epoch's values: ``loss``, and where measured ``accuracy``, ``val_loss``,
        ``val_accuracy``, ``seconds``.
    samples : int
        Training rows per epoch (for samples/s).
    width : int
        The terminal's width.

    Returns
    -------
    str
        The line.

    Examples
    --------
    >>> from xpnet.cli._progress import epoch_line
    >>> logs = {"loss": 1.137, "accuracy": 0.6437, "val_loss": 0.4203,
    ...         "val_accuracy": 0.8951, "seconds": 0.06}
    >>> line = epoch_line(0, 20, logs, 1294, 120)
    >>> line.startswith("epoch  1/20  loss 1.1370  accuracy 0.6437  val_loss 0.4203")
    True
    >>> line.endswith("  val_accuracy 0.8951  0.06s  21,567 samples/s")
    True
    >>> epoch_line(0, 20, logs, 1294, 80)
    'epoch  1/20  loss 1.1370  acc 0.6437  val_loss 0.4203  val_acc 0.8951  0.06s'
    >>> epoch_line(0, 20, logs, 1294, 40)
    'epoch  1/20  loss 1.1370  val_acc 0.8951'
    """
    line = ""
    for level in _LEVELS:
        line = _epoch_line_at(epoch, epochs, logs, samples, **level)
        if len(line) <= width:
            break
    return line


def _epoch_line_at(epoch: int, epochs: int, logs: dict[str, Any], samples: int, *,
                   drop: tuple[str, ...], short: bool) -> str:
    """The per-epoch line without the fields in `drop`, names shortened if `short`."""
    parts = [f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs and key not in drop:
            parts.append(f"{_SHORT.get(key, key) if short else key} {logs[key]:.4f}")
    secs = logs.get("seconds", 0.0)
    if "seconds" not in drop:
        parts.append(f"{secs:.2f}s")
    if secs > 0 and "samples" not in drop:
        parts.append(f"{samples / secs:,.0f} samples/s")
    return "  ".join(parts)


def _running_info(logs: dict[str, Any], seconds: float, parts: int) -> str:
    """The bar's running values: loss, then accuracy, then samples/s, the first `parts`."""
    info = [f"loss {logs['loss']:.4f}"]
    if "accuracy" in logs:
        info.append(f"acc {logs['accuracy']:.4f}")
    info.append(f"{logs['samples_seen'] / seconds:,.0f} samples/s")
    return "  ".join(info[:parts])


# The widest each count of running values can be (loss 12.3456, 1,234,567 samples/s).
_INFO_WIDTH = (0, len("loss 12.3456"), len("loss 12.3456  acc 0.0000"),
               len("loss 12.3456  acc 0.0000  1,234,567 samples/s"))


class TrainProgress(ProgressBar):
    """The progress of ``xpnet train``: a live bar per epoch and one line per epoch.

    Like [`ProgressBar`][xpnet.training.ProgressBar] (the live bar only on a terminal),
    but every line fits the console's width: the per-epoch line is `epoch_line`, and
    the bar narrows and shows fewer running values (samples/s first, then the
    accuracy) on a narrow terminal.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: standard error).

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from xpnet.cli._progress import TrainProgress
    >>> bar = TrainProgress(Console(file=io.StringIO(), width=80))
    >>> bar.on_train_begin({"epochs": 20, "steps_per_epoch": 21, "samples": 1294})
    >>> bar.on_epoch_begin(0, {})
    >>> bar.on_epoch_end(0, {"loss": 1.137, "accuracy": 0.6437, "seconds": 0.06})
    >>> bar.console.file.getvalue()
    'epoch  1/20  loss 1.1370  accuracy 0.6437  0.06s  21,567 samples/s\\n'
    """

    def __init__(self, console: Console | None = None):
        super().__init__()
        self._console = console
        self._info_parts = 3

    def on_train_begin(self, logs: dict) -> None:
        """Open the console (or take the given one) and note the run's size."""
        super().on_train_begin(logs)
        if self._console is not None:
            self.console = self._console

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Start the epoch's live bar (only on a terminal), sized to the console's width."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._epoch = epoch
        self._t0 = time.perf_counter()
        self._progress = None
        if not self.console.is_terminal:
            return  # a live bar in a log file or pipe only adds blank lines
        prefix = f"epoch {epoch + 1}/{self.epochs}"
        fixed = len(prefix) + 2 * len(str(self.steps)) + 1 + 3  # + 3 column gaps
        room = self.console.width - 1 - fixed
        self._info_parts = next((n for n in (3, 2, 1) if room - _INFO_WIDTH[n] >= _BAR_MIN),
                                0)
        bar = max(1, min(_BAR_MAX, room - _INFO_WIDTH[self._info_parts]))
        self._progress = Progress(
            TextColumn(prefix, markup=False), BarColumn(bar_width=bar), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.steps, info="")

    def on_batch_end(self, step: int, logs: dict) -> None:
        """Advance the bar and show the running values that fit."""
        if self._progress is None:
            return
        seconds = max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, completed=step + 1,
                              info=_running_info(logs, seconds, self._info_parts))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Replace the bar with the epoch's line (`epoch_line`)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.console.print(epoch_line(epoch, self.epochs, logs, self.samples,
                                      self.console.width), soft_wrap=True)
