"""The callbacks users add to [`xpnet.fit`][]: early stopping, checkpoints, learning rate
on plateaus, CSV log (and, re-exported, the [`Callback`][xpnet.callbacks.Callback] base and
the [`ProgressBar`][xpnet.callbacks.ProgressBar]).

The first three watch one metric through the best-value tracker that the scikit-learn
estimators share. What the trainer itself runs (the base, `CallbackList`, `History`, the
progress bar) lives in `xpnet.training.callbacks`, below the checkpoint module that
`ModelCheckpoint` writes with.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import array_api_compat

from . import _checks
from ._files import atomic_write_text, check_writable
from .checkpoint import check_saveable, save
from .training.callbacks import Callback, ProgressBar

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "ProgressBar",
           "CSVLogger"]
_BUFFER = "buffers/"  # marks a layer buffer among the best epoch's saved arrays


# The best value of a monitored metric, a copy of the parameters then and the epochs since,
# for the callbacks below and the scikit-learn estimators, whose users were promised two
# published rules. rule="keras" (as Keras' EarlyStopping): an epoch improves when it beats
# `best` by more than min_delta; only then do `best` and the copy move and the wait restart.
# rule="sklearn" (sklearn.neural_network's tol / n_iter_no_change): the wait restarts unless
# the epoch falls short of `best` by min_delta (with min_delta=0 a tie counts), and `best`
# with its copy moves on every strictly better value. Either way, stop once wait > patience.
class _BestWeights:
    """Best value of a metric, copies of the parameters then (``params``) and ``wait`` since."""

    def __init__(self, mode: str = "min", *, min_delta: float = 0.0,
                 patience: int | float = 0, rule: str = "keras"):
        self.mode = _checks.check_choice("mode", mode, ("min", "max"))
        self.rule = _checks.check_choice("rule", rule, ("keras", "sklearn"))
        self.min_delta = _checks.check_float("min_delta", min_delta, low=0.0, high=None)
        if not (isinstance(patience, float) and patience == math.inf):
            patience = _checks.check_int("patience", patience, minimum=0)
        self.patience = patience
        self._sign = 1.0 if self.mode == "max" else -1.0
        self.reset()

    def reset(self) -> None:
        self.best = -self._sign * math.inf
        self.params: dict[str, Any] | None = None
        self.wait = 0

    def update(self, value: float, params: dict[str, Any] | None = None) -> bool:
        """Record one epoch's value, copying `params` at a new best; return whether it improved."""
        # compare in "higher is better" units; negation is exact, NaN stays NaN
        v, b = self._sign * value, self._sign * self.best
        if self.rule == "keras":
            improved = new_best = v > b + self.min_delta
        else:
            improved, new_best = not v < b + self.min_delta, v > b
        if new_best:
            self.best = value
            if params is not None:
                xp = array_api_compat.array_namespace(*params.values())
                self.params = {k: xp.asarray(a, copy=True) for k, a in params.items()}
        self.wait = 0 if improved else self.wait + 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Whether more than ``patience`` epochs in a row brought no improvement."""
        return self.wait > self.patience


def _watch(monitor: str, mode: str, logs: dict | None = None,
           **tracker: Any) -> tuple[str, str, _BestWeights]:
    """A fit's monitor (no ``val_`` without validation data in `logs`), mode and new tracker."""
    if logs is not None and not logs.get("has_validation") and monitor.startswith("val_"):
        monitor = monitor[4:]
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
    return monitor, mode, _BestWeights(mode, **tracker)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _amount(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return float(value)


def _monitored(cb: Any, logs: dict) -> float:
    """The value of ``cb.monitor`` in an epoch's logs."""
    if cb.monitor not in logs:
        raise ValueError(f"{type(cb).__name__} monitors {cb.monitor!r} but the logs only "
                         f"have {sorted(logs)}")
    return logs[cb.monitor]


class EarlyStopping(Callback):
    """Stop when a monitored metric has stopped improving.

    Parameters
    ----------
    monitor : str
        Metric name in the epoch logs (default ``"val_loss"``; falls back to
        ``"loss"`` in a fit without validation data). The monitor, the mode and
        the best value are chosen afresh at the start of every fit the callback
        is passed to; a fit that resumes a run (``resume=``) goes on from that
        run's history.
    patience : int
        Epochs without improvement before stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
    restore_best_weights : bool
        Put back the parameters of the best epoch when stopping or at the end (and the
        layers' buffers, such as BatchNorm's running statistics, of that epoch).
    best_weights : dict, optional
        For a fit that resumes a run (``fit(resume=...)``): the parameters of
        that run's best epoch so far (as saved then, e.g. by a checkpoint with
        ``save_best_only``). A resumed fit replays the run's history, so the
        best value, its epoch and the wait go on as in an uninterrupted run;
        these weights are the ones ``restore_best_weights`` puts back unless a
        later epoch beats them (without them, the last epoch's stay).

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

    A fit that resumes a run goes on from that run's best value and wait:

    >>> m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    >>> stop = xn.EarlyStopping(patience=0, min_delta=10.0)
    >>> state = xn.training.TrainState(epoch=1, seed=0,
    ...                                history={"loss": [0.7], "val_loss": [0.6]})
    >>> h = m.fit(X, y, epochs=20, validation_split=0.25, callbacks=[stop], verbose=0,
    ...           resume=state.to_record())
    >>> stop.best, stop.best_epoch, stop.stopped_epoch
    (0.6, 0, 1)
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True,
                 best_weights: dict | None = None):
        self.patience = _count("patience", patience)
        self.min_delta = _amount("min_delta", min_delta)
        if best_weights is not None and not isinstance(best_weights, dict):
            raise TypeError(f"best_weights must be a dict of parameters, got "
                            f"{type(best_weights).__name__}")
        self._monitor, self._mode = monitor, mode
        self.restore_best_weights, self.best_weights = restore_best_weights, best_weights
        self._reset()

    def _reset(self, logs: dict | None = None) -> None:
        self.monitor, self.mode, self._tracker = _watch(
            self._monitor, self._mode, logs, min_delta=self.min_delta, patience=self.patience)
        self.best_epoch = -1
        self.stopped_epoch: int | None = None

    @property
    def best(self) -> float:
        """Best value of the monitored metric so far."""
        return self._tracker.best

    @property
    def wait(self) -> int:
        """Epochs since the last improvement."""
        return self._tracker.wait

    def on_train_begin(self, logs: dict) -> None:
        """Choose the monitor and mode for this fit (``loss`` instead of ``val_loss`` without
        validation data) and reset the best value and the counters: a reused callback
        starts afresh at each fit; a fit that resumes a run replays that run's history
        (and takes ``best_weights`` as the best epoch's parameters)."""
        self._reset(logs)
        history = getattr(getattr(self.trainer, "history", None), "history", None) or {}
        for epoch, value in enumerate(history.get(self.monitor) or []):
            if self._tracker.update(value):
                self.best_epoch = epoch
        if self.best_epoch >= 0 and self.best_weights is not None and \
                self.restore_best_weights:
            self._tracker.params = dict(self.best_weights)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Track the best value; ask ``fit`` to stop after ``patience`` epochs without one."""
        value = _monitored(self, logs)
        params = None
        if self.restore_best_weights:  # the layers' buffers (running statistics) too
            params = {**self.model.params, **{_BUFFER + k: v for k, v in
                                              getattr(self.model, "buffers", {}).items()}}
        if self._tracker.update(value, params):
            self.best_epoch = epoch
        elif self._tracker.should_stop:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict) -> None:
        """Put back the best epoch's parameters when ``restore_best_weights`` is set."""
        if self.restore_best_weights and self._tracker.params is not None:
            best = self._tracker.params
            self.model.params = {k: v for k, v in best.items() if not k.startswith(_BUFFER)}
            buffers = {k[len(_BUFFER):]: v for k, v in best.items() if k.startswith(_BUFFER)}
            if buffers:
                self.model.buffers = buffers


class ModelCheckpoint(Callback):
    """Save the model (atomically) at the end of epochs.

    Parameters
    ----------
    path : str or Path
        Target ``.safetensors`` file; ``{epoch}`` in the name is formatted.
    monitor : str
        Metric used with ``save_best_only`` (``"val_..."`` falls back to the
        training metric in a fit without validation data). The monitor, the mode
        and the best value are chosen afresh at the start of every fit.
    save_best_only : bool
        Only save when the monitored metric improves.
    mode : {"auto", "min", "max"}
    metadata : dict, optional
        Extra JSON-serialisable information stored in every file written
        (see [`xpnet.save`][]); read it back from
        ``load_checkpoint(path).metadata["user"]``.
    save_optimizer : bool
        Save the optimizer and its state (needed to resume exactly); False
        writes the weights and architecture only, e.g. when the learning rate
        is a plain function, which cannot be saved.

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

    rank_zero_only = True  # one writer in data-parallel training

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = False, mode: str = "auto",
                 metadata: dict | None = None, save_optimizer: bool = True):
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.path = str(path)
        self.metadata = dict(metadata) if metadata else None
        self._monitor, self._mode = monitor, mode
        self.monitor, self.mode, self._tracker = _watch(monitor, mode)
        self.save_best_only = save_best_only
        self.saved: list[str] = []
        if not isinstance(save_optimizer, bool):
            raise TypeError(f"save_optimizer must be True or False, got {save_optimizer!r}")
        self.save_optimizer = save_optimizer

    def on_train_begin(self, logs: dict) -> None:
        """Check, before the first epoch, that the files would load back (see
        [`xpnet.checkpoint.check_saveable`][]) and that the folder exists and has room;
        choose the monitor and mode for this fit (``loss`` instead of ``val_loss``
        without validation data) and start a new best: a reused callback starts afresh
        at each fit."""
        check_saveable(self.model, self.model.optimizer if self.save_optimizer else None)
        parent = Path(self.path.format(epoch=0)).resolve().parent
        if not parent.exists():
            raise FileNotFoundError(f"ModelCheckpoint folder {parent} does not exist")
        opt = self.model.optimizer  # a file: the parameters, each slot (2 if none), a header
        copies = 1 + (len(opt.slots) if opt is not None else 2)
        itemsize = 8 if self.model.dtype_name == "float64" else 4
        check_writable(parent, self.model.num_params * itemsize * copies + 64 * 1024)
        self.monitor, self.mode, self._tracker = _watch(self._monitor, self._mode, logs)

    @property
    def best(self) -> float:
        """Best value of the monitored metric so far (with ``save_best_only``)."""
        return self._tracker.best

    def training_record(self) -> dict | None:
        """The resume record of the fit this callback runs in (None outside a fit).

        Read from the trainer (``self.trainer.state``), so a file written now
        resumes from exactly this point; the trainer stays attached after
        ``fit`` returns, so this is also the record of the finished run.

        Returns
        -------
        dict or None

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> ckpt = xn.ModelCheckpoint("unused-{epoch}.safetensors")
        >>> ckpt.training_record() is None
        True
        """
        return None if self.trainer is None else self.trainer.state.to_record()

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
        training = self.training_record()
        path = self.path.format(epoch=(training["epoch"] if training else 0) + 1)
        if self.save_best_only:
            p = Path(path)
            path = str(p.with_name(p.stem + ".interrupted" + p.suffix))
        return self._save(path, training)

    def _save(self, path: str, training: dict | None) -> str:
        save(self.model, path, training=training, metadata=self.metadata,
             optimizer=None if self.save_optimizer else False)
        self.saved.append(path)
        return path

    def on_train_interrupted(self, logs: dict) -> str | None:
        """Write a resumable mid-epoch checkpoint; return its path."""
        return self.save_now()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Save (with ``save_best_only``, only when the monitored metric improved)."""
        if self.save_best_only and not self._tracker.update(_monitored(self, logs)):
            return
        self._save(self.path.format(epoch=epoch + 1), self.training_record())


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a metric has stopped improving.

    Keras' rule: after ``patience`` epochs in a row without an improvement of more
    than ``min_delta``, the rate becomes ``max(lr * factor, min_lr)``; then
    ``cooldown`` epochs pass before the wait counts again. The optimizer's
    learning rate must be a constant (a float): a schedule already decides the
    rate at every step. The new rate is the optimizer's ``lr``, so a checkpoint
    saves it and ``fit`` called again continues with it.

    Parameters
    ----------
    monitor : str
        Metric name in the epoch logs (default ``"val_loss"``; falls back to
        ``"loss"`` in a fit without validation data). Chosen afresh, with the mode
        and the best value, at the start of every fit.
    factor : float
        In ``(0, 1)``.
    patience : int
        Epochs without improvement before the rate is reduced.
    mode : {"auto", "min", "max"}
    min_delta : float
        Smallest change that counts as an improvement.
    cooldown : int
        Epochs after a reduction during which the wait does not count.
    min_lr : float
        The rate is never reduced below it.

    Attributes
    ----------
    reductions : list of (int, float)
        ``(epoch, new rate)`` of each reduction in the last fit.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    >>> plateau = xn.ReduceLROnPlateau("loss", factor=0.5, patience=1, min_delta=10.0)
    >>> h = m.fit(X, y, epochs=4, optimizer=xn.SGD(lr=0.1), callbacks=[plateau], verbose=0)
    >>> h.history["lr"], plateau.reductions
    ([0.1, 0.1, 0.05, 0.025], [(1, 0.05), (2, 0.025), (3, 0.0125)])
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0,
                 min_lr: float = 0.0):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.patience, self.cooldown = _count("patience", patience), _count("cooldown", cooldown)
        self.min_delta, self.min_lr = _amount("min_delta", min_delta), _amount("min_lr", min_lr)
        self._monitor, self._mode, self.factor = monitor, mode, float(factor)
        self.monitor, self.mode, self._tracker = _watch(monitor, mode, min_delta=self.min_delta)
        self.reductions: list[tuple[int, float]] = []
        self.wait = self._cooling = 0

    def on_train_begin(self, logs: dict) -> None:
        """Choose the monitor and mode for this fit, reset the counters, and check that
        the optimizer's learning rate is a constant."""
        from .schedules import Constant

        opt = self.trainer.optimizer if self.trainer is not None else self.model.optimizer
        if not isinstance(opt.lr, Constant):
            raise ValueError(f"ReduceLROnPlateau changes a constant learning rate, but the "
                             f"optimizer's is the schedule {opt.lr!r}; pass a float lr, or "
                             "let the schedule decide the rate alone")
        self.monitor, self.mode, self._tracker = _watch(self._monitor, self._mode, logs,
                                                        min_delta=self.min_delta)
        self.wait = self._cooling = 0
        self.reductions = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Count the epochs without improvement; reduce the rate after ``patience``."""
        improved = self._tracker.update(_monitored(self, logs))
        if self._cooling > 0:
            self._cooling -= 1
            self.wait = 0
        if improved or self._cooling > 0:  # (the wait is 0 while cooling down)
            self.wait = 0
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        opt = self.trainer.optimizer if self.trainer is not None else self.model.optimizer
        old = float(opt.lr.lr)
        new = max(old * self.factor, self.min_lr)
        if new < old:
            opt.lr = new
            self.reductions.append((epoch, new))
            self._cooling, self.wait = self.cooldown, 0


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

    rank_zero_only = True  # one writer in data-parallel training

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict) -> None:
        """Start a new table."""
        self.rows = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Append the epoch's row and rewrite the file atomically."""
        self.rows.append({"epoch": epoch + 1, **logs})
        keys = dict.fromkeys(k for row in self.rows for k in row)  # in first-seen order
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(keys))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())
