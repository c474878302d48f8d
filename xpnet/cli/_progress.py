"""``xpnet train``'s progress: a bar per epoch and one line per epoch, fitted to the terminal.

`TrainProgress` is the library's [`ProgressBar`][xpnet.training.ProgressBar] with the
epoch's elapsed time and ETA on the live bar and the time per step on the per-epoch
line (as Keras shows them), made to fit the console's width (``Console().width``: the
terminal's, or ``$COLUMNS``): the live bar and the per-epoch line drop their least
useful fields until they fit, instead of letting the terminal wrap them mid-number.
`epoch_line` is the per-epoch line.
"""

from __future__ import annotations

from typing import Any

from ..training.callbacks import ProgressBar, _epoch_line

__all__ = ["TrainProgress", "epoch_line"]

# The per-epoch line, from the richest to the narrowest: each level drops or shortens
# ("short": acc, val_acc) one more of these, the least useful first. Training loss and
# accuracy are never dropped before the validation ones, and the epoch number and
# training loss always stay.
_DROPPED = ("samples", "short", "per_step", "seconds", "accuracy", "val_loss", "val_accuracy")
_BAR_MIN, _BAR_MAX = 10, 40


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any], samples: int, steps: int,
               width: int) -> str:
    """The epoch's line in `width`: drops samples/s, long names, ms/step, s, acc, val metrics."""
    lines = [_epoch_line(epoch, epochs, logs, samples, steps, _DROPPED[:level])
             for level in range(len(_DROPPED) + 1)]
    return next((line for line in lines if len(line) <= width), lines[-1])


# The widest each count of running values can be (loss 12.3456, 1,234,567 samples/s).
_INFO_WIDTH = (0, len("loss 12.3456"), len("loss 12.3456  acc 0.0000"),
               len("loss 12.3456  acc 0.0000  1,234,567 samples/s"))
_TIME_WIDTH = len("10:00:00")  # rich's TimeElapsedColumn and TimeRemainingColumn
# The live bar, from the richest to the narrowest: (running values, elapsed, ETA).
_BAR_LAYOUTS = ((3, True, True), (2, True, True), (1, True, True), (1, False, True),
                (0, False, True), (0, False, False))



def _extras_width(info_parts: int, elapsed: bool, eta: bool) -> int:
    """The most columns the running values and the times take on the live bar, gaps included."""
    return (_INFO_WIDTH[info_parts] + (_TIME_WIDTH + 1) * elapsed
            + (len("eta") + 1 + _TIME_WIDTH + 1) * eta)


class TrainProgress(ProgressBar):
    """ProgressBar with elapsed time and ETA, every line fitted to the console's width
    (``TrainProgress(console)`` draws on a given rich ``Console``, as ProgressBar does)."""

    def _columns(self, epoch: int) -> list[Any]:
        """The live bar's columns, the most that fit the console's width."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        prefix = f"epoch {epoch + 1}/{self.epochs}"
        fixed = len(prefix) + 2 * len(str(self.steps)) + 1 + 3  # + 3 column gaps
        room = self.console.width - 1 - fixed
        self._info_parts, elapsed, eta = next(
            (layout for layout in _BAR_LAYOUTS if room - _extras_width(*layout) >= _BAR_MIN),
            _BAR_LAYOUTS[-1])
        bar = max(1, min(_BAR_MAX, room - _extras_width(self._info_parts, elapsed, eta)))
        columns: list[ProgressColumn] = [
            TextColumn(prefix, markup=False), BarColumn(bar_width=bar), MofNCompleteColumn()]
        if elapsed:
            columns.append(TimeElapsedColumn())
        if eta:
            columns += [TextColumn("eta", markup=False), TimeRemainingColumn()]
        columns.append(TextColumn("{task.fields[info]}", markup=False))
        return columns

    def _summary(self, epoch: int, logs: dict) -> str:
        """The epoch's line (`epoch_line`), with ms/step, fitted to the console's width."""
        return epoch_line(epoch, self.epochs, logs, self.samples, self.steps, self.console.width)
