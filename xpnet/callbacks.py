"""Callbacks for :func:`xpnet.fit`: early stopping, checkpoints, progress bar, CSV log."""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._files import atomic_write_text, check_writable

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "ProgressBar", "CSVLogger"]


class Callback:
    """Base class: override any hook. ``self.model`` is set before training starts.

    Hooks receive ``logs``, a dict of Python floats (``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``...). Set
    ``self.model.stop_training = True`` to stop after the current epoch.
    ``on_batch_end`` is called at display intervals only (reading values from
    the device is a sync), with running means for the epoch so far.

    Examples
    --------
    A callback that records the training loss of every epoch:

    >>> import numpy as np, xpnet as xn
    >>> class LossLog(xn.Callback):
    ...     def __init__(self):
    ...         self.losses = []
    ...     def on_epoch_end(self, epoch, logs):
    ...         self.losses.append(logs["loss"])
    >>> X = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> cb = LossLog()
    >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[cb], verbose=0)
    >>> len(cb.losses)
    2
    """

    model: Any = None

    def set_model(self, model: Any) -> None:
        """Attach the model being trained (``fit`` calls this before training).

        Parameters
        ----------
        model : Sequential

        Examples
        --------
        >>> import xpnet as xn
        >>> cb, m = xn.Callback(), xn.MLP([3, 2], backend="numpy")
        >>> cb.set_model(m)
        >>> cb.model is m
        True
        """
        self.model = model

    def on_train_begin(self, logs: dict) -> None:
        """Called once before the first epoch; ``logs`` describes the run.

        Parameters
        ----------
        logs : dict
            ``epochs``, ``steps_per_epoch``, ``samples``, ``batch_size`` and
            ``has_validation``.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> class Show(xn.Callback):
        ...     def on_train_begin(self, logs):
        ...         print(logs["epochs"], logs["steps_per_epoch"], logs["has_validation"])
        >>> X, y = np.zeros((32, 3), "float32"), np.zeros(32, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, batch_size=8,
        ...                                         callbacks=[Show()], verbose=0)
        2 4 False
        """

    def on_train_end(self, logs: dict) -> None:
        """Called once after the last epoch (also after an early stop or an error).

        Parameters
        ----------
        logs : dict
            Empty; read the model or the returned :class:`~xpnet.History`.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> class Done(xn.Callback):
        ...     def on_train_end(self, logs):
        ...         print("done after", self.model.optimizer.state["step"], "steps")
        >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[Done()],
        ...                                         verbose=0)
        done after 2 steps
        """

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Called at the start of each epoch.

        Parameters
        ----------
        epoch : int
            0-based epoch index.
        logs : dict
            Empty.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> class Epochs(xn.Callback):
        ...     def on_epoch_begin(self, epoch, logs):
        ...         print("epoch", epoch)
        >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[Epochs()],
        ...                                         verbose=0)
        epoch 0
        epoch 1
        """

    def on_batch_end(self, step: int, logs: dict) -> None:
        """Called at display intervals with running values for the epoch.

        Parameters
        ----------
        step : int
            0-based step within the epoch.
        logs : dict
            Running means ``loss`` (and ``accuracy``) over the epoch so far,
            and ``samples_seen``.

        Examples
        --------
        With ``display_interval=0`` the hook runs after every step:

        >>> import numpy as np, xpnet as xn
        >>> class Steps(xn.Callback):
        ...     def on_batch_end(self, step, logs):
        ...         print(step, logs["samples_seen"])
        >>> X, y = np.zeros((20, 3), "float32"), np.zeros(20, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=1, batch_size=8,
        ...     display_interval=0.0, callbacks=[Steps()], verbose=0)
        0 8
        1 16
        2 20
        """

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Called at the end of each epoch with that epoch's metrics.

        Parameters
        ----------
        epoch : int
            0-based epoch index.
        logs : dict
            ``loss``, ``accuracy`` (classifiers), ``val_loss`` and
            ``val_accuracy`` (with validation data), ``lr``, ``seconds``.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> class Keys(xn.Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(epoch, sorted(logs))
        >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=1, callbacks=[Keys()],
        ...                                         verbose=0)
        0 ['accuracy', 'loss', 'lr', 'seconds']
        """


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class EarlyStopping(Callback):
    """Stop when a monitored metric has stopped improving.

    Parameters
    ----------
    monitor : str
        Metric name in the epoch logs (default ``"val_loss"``; falls back to
        ``"loss"`` when there is no validation data).
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
    restore_best_weights : bool
        Put back the parameters of the best epoch when stopping or at the end.

    Attributes
    ----------
    best : float
        Best value of the monitored metric so far.
    best_epoch : int
        0-based epoch of ``best`` (-1 before the first epoch).
    stopped_epoch : int or None
        0-based epoch at which training was stopped, or None.

    Examples
    --------
    With an impossible ``min_delta`` only the first epoch counts as an
    improvement, so training stops after ``patience + 1`` more epochs:

    >>> import numpy as np, xpnet as xn
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    >>> stop = xn.EarlyStopping(patience=0, min_delta=10.0)
    >>> h = m.fit(X, y, epochs=20, validation_split=0.25, callbacks=[stop], verbose=0)
    >>> stop.best_epoch, stop.stopped_epoch, len(h.history["val_loss"]), h.stopped_early
    (0, 1, 2, True)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a finite float >= 0, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = _mode_for(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_params: dict | None = None

    def on_train_begin(self, logs: dict) -> None:
        """Reset the counters; monitor ``loss`` instead of ``val_loss`` without validation data."""
        self._reset()
        if not logs.get("has_validation") and self.monitor.startswith("val_"):
            self.monitor = self.monitor[4:]

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Track the best value; ask ``fit`` to stop after ``patience`` epochs without one."""
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r} but the logs only have "
                f"{sorted(logs)}"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                xp = self.model.xp
                self._best_params = {k: xp.asarray(v, copy=True)
                                     for k, v in self.model.params.items()}
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True

    def on_train_end(self, logs: dict) -> None:
        """Put back the best epoch's parameters when ``restore_best_weights`` is set."""
        if self.restore_best_weights and self._best_params is not None:
            self.model.params = self._best_params


class ModelCheckpoint(Callback):
    """Save the model (atomically) at the end of epochs.

    Parameters
    ----------
    path : str or Path
        Target ``.safetensors`` file; ``{epoch}`` in the name is formatted.
    monitor : str
        Metric used with ``save_best_only``.
    save_best_only : bool
        Only save when the monitored metric improves.
    mode : {"auto", "min", "max"}
    metadata : dict, optional
        Extra JSON-serialisable information stored in every file written
        (see :func:`xpnet.save`); read it back from
        ``load_checkpoint(path).metadata["user"]``.

    Attributes
    ----------
    saved : list of str
        The paths written so far, oldest first.

    Examples
    --------
    >>> import os, tempfile, numpy as np, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    >>> ckpt = xn.ModelCheckpoint(os.path.join(tmp.name, "epoch{epoch}.safetensors"))
    >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[ckpt], verbose=0)
    >>> [os.path.basename(p) for p in ckpt.saved]
    ['epoch1.safetensors', 'epoch2.safetensors']
    >>> xn.load_checkpoint(ckpt.saved[-1], backend="numpy").training["epoch"]
    2
    >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto",
                 metadata: dict | None = None):
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.path = str(path)
        self.metadata = dict(metadata) if metadata else None
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _mode_for(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []
        self.fit_state: Any = None  # set by fit so checkpoints can resume

    def on_train_begin(self, logs: dict) -> None:
        """Check that the target folder exists and has room, before the first epoch."""
        parent = Path(self.path.format(epoch=0)).resolve().parent
        if not parent.exists():
            raise FileNotFoundError(f"ModelCheckpoint folder {parent} does not exist")
        check_writable(parent, self._estimated_bytes())
        if not logs.get("has_validation") and self.monitor.startswith("val_"):
            self.monitor = self.monitor[4:]

    def _estimated_bytes(self) -> int:
        """Size of one checkpoint: parameters plus optimizer slots, plus the header."""
        if self.model is None:
            return 0
        per_copy = 0
        for v in self.model.params.values():
            size = 1
            for d in v.shape:
                size *= d
            per_copy += size * (8 if self.model.dtype_name == "float64" else 4)
        opt = getattr(self.model, "optimizer", None)
        copies = 1 + (len(opt.slots) if opt is not None else 2)
        return per_copy * copies + 64 * 1024

    def save_now(self) -> str:
        """Write a resumable checkpoint immediately (used when training is interrupted).

        With ``save_best_only`` the best file is kept and the state goes to
        ``<name>.interrupted.safetensors`` beside it.

        Returns
        -------
        str
            The path written.

        Examples
        --------
        >>> import os, tempfile, xpnet as xn
        >>> tmp = tempfile.TemporaryDirectory()
        >>> ckpt = xn.ModelCheckpoint(os.path.join(tmp.name, "m.safetensors"))
        >>> ckpt.set_model(xn.MLP([3, 2], backend="numpy"))
        >>> os.path.basename(ckpt.save_now())
        'm.safetensors'
        >>> tmp.cleanup()
        """
        from .checkpoint import save

        epoch = (self.fit_state()["epoch"] if callable(self.fit_state) else 0) + 1
        path = self.path.format(epoch=epoch)
        if self.save_best_only:
            p = Path(path)
            path = str(p.with_name(p.stem + ".interrupted" + p.suffix))
        training = self.fit_state() if callable(self.fit_state) else None
        save(self.model, path, training=training, metadata=self.metadata)
        self.saved.append(path)
        return path

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Save (with ``save_best_only``, only when the monitored metric improved)."""
        from .checkpoint import save

        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, not in the logs")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1)
        training = self.fit_state() if callable(self.fit_state) else None
        save(self.model, path, training=training, metadata=self.metadata)
        self.saved.append(path)


class CSVLogger(Callback):
    """Write one CSV row of metrics per epoch (the file is replaced atomically).

    Parameters
    ----------
    path : str or Path
        The CSV file; its folder must exist.

    Examples
    --------
    >>> import os, tempfile, numpy as np, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    >>> log = xn.CSVLogger(os.path.join(tmp.name, "log.csv"))
    >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[log], verbose=0)
    >>> lines = log.path.read_text().splitlines()
    >>> lines[0], len(lines)
    ('epoch,loss,accuracy,lr,seconds', 3)
    >>> tmp.cleanup()
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict) -> None:
        """Start a new table."""
        self.rows = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Append the epoch's row and rewrite the file atomically."""
        self.rows.append({"epoch": epoch + 1, **logs})
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


class ProgressBar(Callback):
    """A rich progress bar per epoch: loss, accuracy, samples/s; one summary line per epoch.

    Parameters
    ----------
    stream : file, optional
        Where to draw (default: standard error, so standard output stays clean).
        When it is not a terminal only the per-epoch lines are written.

    Examples
    --------
    ``fit(verbose=1)`` adds one on standard error; pass one to draw elsewhere:

    >>> import io, numpy as np, xpnet as xn
    >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    >>> out = io.StringIO()
    >>> h = xn.MLP([3, 2], backend="numpy").fit(
    ...     X, y, epochs=2, callbacks=[xn.ProgressBar(stream=out)], verbose=0)
    >>> "epoch 2/2  loss" in out.getvalue()
    True
    """

    def __init__(self, stream: Any = None):
        self.stream = stream
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, logs: dict) -> None:
        """Open the console and note the run's size."""
        from rich.console import Console

        self.console = Console(file=self.stream or sys.stderr, highlight=False)
        self.epochs = logs["epochs"]
        self.steps = logs["steps_per_epoch"]
        self.samples = logs["samples"]

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Start the epoch's live bar (only on a terminal)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._epoch = epoch
        self._t0 = time.perf_counter()
        if not self.console.is_terminal:
            # a live bar in a log file or pipe only adds blank lines; the per-epoch
            # summary line is printed either way
            self._progress = None
            return
        self._progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.steps, info="")

    def on_batch_end(self, step: int, logs: dict) -> None:
        """Advance the bar and show the running loss, accuracy and samples/s."""
        if self._progress is None:
            return
        dt = max(time.perf_counter() - self._t0, 1e-9)
        info = f"loss {logs['loss']:.4f}"
        if "accuracy" in logs:
            info += f"  acc {logs['accuracy']:.4f}"
        info += f"  {logs['samples_seen'] / dt:,.0f} samples/s"
        self._progress.update(self._task, completed=step + 1, info=info)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Replace the bar with one summary line for the epoch."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        parts = [f"epoch {epoch + 1:>{len(str(self.epochs))}}/{self.epochs}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in logs:
                parts.append(f"{key} {logs[key]:.4f}")
        secs = logs.get("seconds", 0.0)
        parts.append(f"{secs:.2f}s")
        if secs > 0:
            parts.append(f"{self.samples / secs:,.0f} samples/s")
        self.console.print("  ".join(parts), soft_wrap=True)

    def on_train_end(self, logs: dict) -> None:
        """Close a bar left open by an interruption."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
