"""The callback machinery of a fit: ``Callback``, ``CallbackList``, ``History``, ``ProgressBar``.

The callbacks users add (early stopping, checkpoints, CSV logs) live in
[`xpnet.callbacks`][]; this module holds what the trainer itself runs. The line between
the two is the import graph: `ModelCheckpoint` writes through `xpnet.checkpoint`, which
builds models, which train through this package, so nothing here may reach it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Callback", "CallbackList", "History", "ProgressBar"]


class Callback:
    """Base class: override any hook. ``self.model`` is set before training starts.

    Hooks receive ``logs``, a dict of Python floats (``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``...). Set
    ``self.model.stop_training = True`` to stop after the current epoch.
    ``on_batch_end`` is called after every step, with running means for the epoch so
    far read from the device only when the callback reads them (a sync on a GPU);
    ``self.trainer.current.display`` says whether a display is due (every
    ``display_interval`` seconds).

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
    trainer: Any = None
    """The [`Trainer`][xpnet.training.Trainer] running the fit (None outside ``fit``)."""
    rank_zero_only: bool = False
    """In data-parallel training, run only on rank 0 (callbacks that print or write files)."""

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

    def set_trainer(self, trainer: Any) -> None:
        """Attach the [`Trainer`][xpnet.training.Trainer] running the fit.

        A callback reads the run's position through ``self.trainer.state``
        (a [`TrainState`][xpnet.training.TrainState]), e.g. to save a resumable
        checkpoint.

        Parameters
        ----------
        trainer : Trainer

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> class Where(xn.Callback):
        ...     def on_epoch_end(self, epoch, logs):
        ...         print(self.trainer.state.epoch, self.trainer.state.history["loss"][-1] > 0)
        >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, callbacks=[Where()],
        ...                                         verbose=0)
        1 True
        2 True
        """
        self.trainer = trainer

    def on_train_interrupted(self, logs: dict) -> str | None:
        """Called when Ctrl-C (or SIGTERM) stops ``fit`` at the end of a step.

        ``self.trainer.state`` then holds the mid-epoch position, so a
        checkpoint written here resumes exactly.

        Parameters
        ----------
        logs : dict
            ``epoch`` (0-based) and ``step`` (steps done in it).

        Returns
        -------
        str or None
            The path of a file written for resuming (reported by
            [`TrainingInterrupted`][xpnet.TrainingInterrupted]), or None.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.Callback().on_train_interrupted({"epoch": 0, "step": 3}) is None
        True
        """
        return None

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
            Empty; read the model or the returned [`History`][xpnet.History].

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

    def on_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        """Called after every step with running values for the epoch.

        Parameters
        ----------
        step : int
            0-based step within the epoch.
        logs : Mapping
            Running means ``loss`` (and ``accuracy``) over the epoch so far,
            and ``samples_seen``. The means are read from the device on first
            access, so a hook that reads them only now and then (e.g. when
            ``self.trainer.current.display`` is True) does not make a GPU step wait.

        Examples
        --------

        >>> import numpy as np, xpnet as xn
        >>> class Steps(xn.Callback):
        ...     def on_batch_end(self, step, logs):
        ...         print(step, logs["samples_seen"])
        >>> X, y = np.zeros((20, 3), "float32"), np.zeros(20, "int64")
        >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=1, batch_size=8,
        ...                                         callbacks=[Steps()], verbose=0)
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


class History(Callback):
    """Per-epoch metrics returned by [`fit`][xpnet.training.fit].

    Attributes
    ----------
    history : dict of str to list of float
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``,
        ``seconds`` (and ``skipped_steps`` when any step was skipped, and the
        ``metrics`` of ``fit``, with their ``val_`` twins).
    epoch : list of int
        0-based epoch indices.
    params : dict
        The run's settings (epochs, batch size, steps per epoch...), with
        ``seed`` (the seed of the batch order and dropout, drawn when ``fit``
        had none) and ``model_seed`` (the model's): with the same data and
        settings, they repeat the run.
    stopped_early : bool
        True when an [`EarlyStopping`][xpnet.EarlyStopping] callback or
        ``on_nonfinite="stop"`` ended the run before ``epochs``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> X, y = np.zeros((8, 3), "float32"), np.zeros(8, "int64")
    >>> h = xn.MLP([3, 2], backend="numpy").fit(X, y, epochs=2, batch_size=4, verbose=0)
    >>> sorted(h.history), h.epoch, h.params["steps_per_epoch"], h.stopped_early
    (['accuracy', 'loss', 'lr', 'seconds'], [0, 1], 2, False)
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict[str, Any] = {}
        self.stopped_early = False

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's logs.

        Parameters
        ----------
        epoch : int
            0-based epoch index.
        logs : dict of str to float

        Examples
        --------
        >>> import xpnet as xn
        >>> h = xn.History()
        >>> h.append(0, {"loss": 0.5})
        >>> h.append(1, {"loss": 0.25})
        >>> h.history, h.epoch
        ({'loss': [0.5, 0.25]}, [0, 1])
        """
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Record the epoch's logs (``fit`` runs this callback first)."""
        self.append(epoch, logs)

    def restore(self, hist: dict[str, list[float]]) -> None:
        """Refill from a training record's ``history`` (when resuming).

        Parameters
        ----------
        hist : dict of str to list of float

        Examples
        --------
        >>> import xpnet as xn
        >>> h = xn.History()
        >>> h.restore({"loss": [0.5, 0.25], "val_loss": [0.6]})
        >>> h.epoch, h.history["val_loss"]
        ([0, 1], [0.6])
        """
        n = max((len(v) for v in hist.values()), default=0)
        for i in range(n):
            self.append(i, {k: v[i] for k, v in hist.items() if i < len(v)})

    def to_dict(self) -> dict:
        """JSON-friendly view: ``{"epoch": [...], "history": {name: [...]}}``.

        Examples
        --------
        >>> import json, xpnet as xn
        >>> h = xn.History()
        >>> h.append(0, {"loss": 0.5})
        >>> json.dumps(h.to_dict())
        '{"epoch": [0], "history": {"loss": [0.5]}}'
        """
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in
                                                       self.history.items()}}

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"


def _running_info(logs: Mapping[str, Any], seconds: float, parts: int) -> str:
    """The bar's running values: loss, then accuracy, then samples/s, the first `parts`."""
    info = [f"loss {logs['loss']:.4f}"]
    if "accuracy" in logs:
        info.append(f"acc {logs['accuracy']:.4f}")
    info.append(f"{logs['samples_seen'] / seconds:,.0f} samples/s")
    return "  ".join(info[:parts])


_SHORT = {"accuracy": "acc", "val_accuracy": "val_acc"}


def _epoch_line(epoch: int, epochs: int, logs: Mapping[str, Any], samples: int, steps: int,
                drop: tuple[str, ...]) -> str:
    """The epoch's summary line without the fields in `drop` ("short": acc, val_acc names)."""
    short = "short" in drop
    parts = [f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs and key not in drop:
            parts.append(f"{_SHORT.get(key, key) if short else key} {logs[key]:.4f}")
    secs = logs.get("seconds", 0.0)
    if "seconds" not in drop:
        parts.append(f"{secs:.2f}s")
    if secs > 0 and steps > 0 and "per_step" not in drop:
        parts.append(_per_step(secs / steps))
    if secs > 0 and "samples" not in drop:
        parts.append(f"{samples / secs:,.0f} samples/s")
    return "  ".join(parts)


def _per_step(seconds: float) -> str:
    """Seconds per step as Keras writes them: ``2s/step``, ``3ms/step``, ``250us/step``."""
    scale, unit = next((s, u) for s, u in ((1, "s"), (1e3, "ms"), (1e6, "us"))
                       if seconds * s >= 1 or u == "us")
    return f"{seconds * scale:.0f}{unit}/step"


class CallbackList:
    """The callbacks of one fit, called in order; owns the History and the progress bar.

    Like Keras' ``CallbackList``: ``fit`` builds one from the user's list and
    calls each hook once on the list. [`History`][xpnet.training.History] always comes first (so
    every later callback sees the epoch already recorded), then a
    [`ProgressBar`][xpnet.training.ProgressBar] when ``progress`` is set, then the user's callbacks.
    On ranks other than 0 of a data-parallel fit, callbacks marked
    ``rank_zero_only`` (progress, checkpoints, logs) are left out.

    Parameters
    ----------
    callbacks : iterable of Callback
    model : Sequential
    trainer : Trainer, optional
    progress : bool
        Add a [`ProgressBar`][xpnet.training.ProgressBar] on standard error.
    rank : int
        This process's rank in data-parallel training (0 on one process).

    Attributes
    ----------
    history : History
    callbacks : list of Callback

    Examples
    --------
    >>> import xpnet as xn
    >>> cl = xn.training.CallbackList([xn.EarlyStopping()], model=None, progress=True)
    >>> [type(cb).__name__ for cb in cl.callbacks]
    ['History', 'ProgressBar', 'EarlyStopping']
    >>> cl = xn.training.CallbackList([xn.EarlyStopping(), xn.CSVLogger("log.csv")],
    ...                               model=None, rank=1)
    >>> [type(cb).__name__ for cb in cl.callbacks]
    ['History', 'EarlyStopping']
    """

    def __init__(self, callbacks: Iterable[Callback] = (), *, model: Any,
                 trainer: Any = None, progress: bool = False, rank: int = 0):
        self.history, self.trainer = History(), trainer
        bar = [ProgressBar()] if progress else []
        self.callbacks: list[Callback] = [cb for cb in [self.history, *bar, *callbacks]
                                          if rank == 0 or not cb.rank_zero_only]
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_trainer(trainer)

    @property
    def wants_batches(self) -> bool:
        """Whether any callback has an ``on_batch_end`` (reading running values costs a sync)."""
        return any(type(cb).on_batch_end is not Callback.on_batch_end for cb in self.callbacks)

    def on_train_begin(self, logs: dict) -> None:
        """Call every callback's ``on_train_begin``."""
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict) -> None:
        """Call every callback's ``on_train_end``."""
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Call every callback's ``on_epoch_begin``."""
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Call every callback's ``on_epoch_end`` (History first); in data-parallel
        training each ``rank_zero_only`` one runs as an announced save (see
        [`Communicator.saving`][xpnet.distributed.Communicator.saving]), which the
        other ranks wait for up to the save timeout."""
        comm = getattr(self.trainer, "comm", None)
        for cb in self.callbacks:
            if cb.rank_zero_only and comm is not None and comm.size > 1:
                with comm.saving(f"{type(cb).__name__} at the end of epoch {epoch + 1}"):
                    cb.on_epoch_end(epoch, logs)
            else:
                cb.on_epoch_end(epoch, logs)

    def on_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        """Call every callback's ``on_batch_end``."""
        for cb in self.callbacks:
            cb.on_batch_end(step, logs)

    def on_train_interrupted(self, logs: dict) -> str | None:
        """Call every callback's ``on_train_interrupted``; the first path written, if any."""
        paths = [cb.on_train_interrupted(logs) for cb in self.callbacks]
        return next((p for p in paths if p), None)


class ProgressBar(Callback):
    """A rich progress bar per epoch: loss, accuracy, samples/s; one summary line per epoch.

    Parameters
    ----------
    stream : file or rich.console.Console, optional
        Where to draw (default: standard error, so standard output stays clean).
        When it is not a terminal only the per-epoch lines are written. A rich
        ``Console`` is drawn on as it is (its width, its terminal setting).

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

    rank_zero_only = True
    _info_parts = 3  # running values shown: loss, accuracy, samples/s (a subclass narrows)

    def __init__(self, stream: Any = None):
        self.stream = stream
        self._progress: Any = None
        self._task: Any = None

    def on_train_begin(self, logs: dict) -> None:
        """Open the console and note the run's size."""
        from rich.console import Console

        self.console = self.stream if isinstance(self.stream, Console) else \
            Console(file=self.stream or sys.stderr, highlight=False)
        self.epochs = logs["epochs"]
        self.steps = logs["steps_per_epoch"]
        self.samples = logs["samples"]

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        """Start the epoch's live bar (only on a terminal)."""
        from rich.progress import Progress

        self._epoch = epoch
        self._t0 = time.perf_counter()
        self._progress = None
        if not self.console.is_terminal:
            # a live bar in a log file or pipe only adds blank lines; the per-epoch
            # summary line is printed either way
            return
        self._progress = Progress(*self._columns(epoch), console=self.console, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("train", total=self.steps, info="")

    def _columns(self, epoch: int) -> list[Any]:
        """The live bar's rich columns for ``epoch``."""
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

        return [TextColumn(f"epoch {epoch + 1}/{self.epochs}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[info]}")]

    def on_batch_end(self, step: int, logs: Mapping[str, float]) -> None:
        """Advance the bar and show the running loss, accuracy and samples/s (at display
        intervals)."""
        current = getattr(self.trainer, "current", None)  # None: called by hand, outside a fit
        if self._progress is None or (current is not None and not current.display):
            return
        seconds = max(time.perf_counter() - self._t0, 1e-9)
        self._progress.update(self._task, completed=step + 1,
                              info=_running_info(logs, seconds, self._info_parts))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Replace the bar with one summary line for the epoch."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.console.print(self._summary(epoch, logs), soft_wrap=True)

    def _summary(self, epoch: int, logs: dict) -> str:
        """The epoch's summary line: metrics, seconds, samples/s."""
        return _epoch_line(epoch, self.epochs, logs, self.samples, self.steps, ("per_step",))

    def on_train_end(self, logs: dict) -> None:
        """Close a bar left open by an interruption."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
