"""The ``Trainer``: the epochs and steps of one fit.

One step is: take a batch -> the model's forward, loss and backward (what
``model.loss_and_grads`` runs after its checks) -> the gradient hooks -> the
non-finite guard, which applies the optimizer update (and the layers' new buffer
values, such as BatchNorm's running statistics, with it) -> the running sums.
Gradient transformations (a data-parallel allreduce, parameter masks...) plug in as hooks: functions
``hook(grads, trainer) -> grads`` run in order on every step; a hook may also
replace the step's values ([`StepValues`][xpnet.training.StepValues], ``trainer.current``).

With a communicator of several ranks (``distributed=``) each rank takes its
slice of every global batch, the first hook is the gradient allreduce
([`xpnet.distributed.GradientAllreduce`][]), and the decisions that end an
epoch or the run (a signal, early stopping, the non-finite policy) are taken
from values reduced over the ranks, so every rank takes them at the same step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._checks import HostRows
from ..backends import env_flag, synchronize
from ..blocks import _walk
from ..distributed import (
    GradientAllreduce,
    SingleProcess,
    agree_start,
    average_buffers,
    evaluate_sharded,
    rank_seed,
    shard_rows,
)
from ..ops import ops_for
from ..random import RNG
from ._jit import JitStep
from ._metrics import values as metric_values
from .callbacks import Callback, CallbackList, History
from .guards import DeviceGuard, HostGuard
from .interrupt import InterruptFlag, TrainingInterrupted
from .state import TrainState

__all__ = ["Trainer", "StepValues"]

GradHook = Callable[[dict, "Trainer"], dict]


@dataclass
class StepValues:
    """What one step produced, as the guard and the loop read it (``trainer.current``).

    Gradient hooks may replace it: the data-parallel allreduce puts in the
    values of the whole global batch, reduced over the ranks.

    Attributes
    ----------
    loss : 0-d array
        Mean loss over ``rows``.
    correct : 0-d array or None
        Correct predictions among ``rows`` (None: no accuracy).
    rows : int
        Rows the values cover.
    batch_rows : int
        Rows of the step over all ranks (equal to ``rows`` on one process).
    signal : int
        0, or the signal (SIGINT/SIGTERM) that asks training to stop after this step.
    display : bool
        Whether the loop polls the guard and progress displays update after this step
        (``on_batch_end`` itself runs after every step).

    Examples
    --------
    >>> import xpnet as xn
    >>> v = xn.training.StepValues(loss=0.5, correct=3.0, rows=4, batch_rows=8)
    >>> v.signal, v.display
    (0, False)
    """

    loss: Any
    correct: Any
    rows: int
    batch_rows: int
    signal: int = 0
    display: bool = False


class _RunningLogs(Mapping):
    """``on_batch_end``'s logs: the keys known at once, the running values read from the
    device on first access (a callback that reads none costs no sync)."""

    def __init__(self, trainer: Trainer, k: int):
        self._trainer, self._k = trainer, k
        self._values: dict[str, float] | None = None
        self._keys = ("loss", "accuracy", "samples_seen") \
            if trainer.model.loss.classification else ("loss", "samples_seen")

    def __getitem__(self, key: str) -> float:
        if key not in self._keys:
            raise KeyError(key)
        if key == "samples_seen":
            return min((self._k + 1) * self._trainer.batch_size, self._trainer.n)
        values = self._values
        if values is None:
            values = self._values = self._trainer._running_logs(self._k)
        return values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return repr(dict(self))


def _check_batch_rows(model: Any, n: int, batch_size: int, ranks: int) -> None:
    """Refuse, on every rank alike before any step, batches too small for a layer that
    needs several rows per batch in training (BatchNorm: 2, for a variance)."""
    last = n - (math.ceil(n / batch_size) - 1) * batch_size
    fewest = min(batch_size, last) // ranks  # a rank's smallest share of a batch
    held = [pair for i, top in enumerate(model.layers) for pair in _walk(top, str(i), root=True)]
    for i, layer in held:  # a block's layers too, by address ("2.0")
        need = getattr(layer, "_min_batch_rows", 0)  # a rank may have no rows otherwise
        if fewest < need:
            where = f" on each of the {ranks} ranks" if ranks > 1 else ""
            raise ValueError(
                f"layer {i} ({type(layer).__name__}) needs at least {need} rows per batch"
                f"{where} in training, but {n} rows in batches of {batch_size} give a "
                f"batch of {fewest} row(s){where}: choose a batch_size that does not leave "
                f"a last batch that small (rows % batch_size)"
                + (" or fewer ranks" if ranks > 1 else ""))


class Trainer:
    """Runs the epochs of one fit; ``fit`` = argument checks + ``Trainer(...).run()``.

    Parameters
    ----------
    model : Sequential
    X, y : arrays on the model's backend
        Already checked (``fit`` checks them); batches are ``xp.take`` of them.
    optimizer : Optimizer
        Its ``state`` must fit ``model.params`` (``fit`` sees to it).
    epochs : int
        Total epochs, including those a resumed ``state`` has done.
    batch_size : int
        Rows per step, at most ``len(X)``.
    validation : (X_val, y_val), optional
        Checked arrays, evaluated at the end of every epoch.
    shuffle : bool
    callbacks : list of Callback
    verbose : bool
        Add a progress bar.
    on_nonfinite : {"raise", "stop", "skip"}
    state : TrainState, optional
        Where to start (a resumed run); a fresh one from ``seed`` otherwise.
    display_interval : float
        Seconds between the guard's flag reads and progress updates (each reads the
        device); ``on_batch_end`` runs after every step, its values read on access.
    grad_hooks : list of callable, optional
        ``hook(grads, trainer) -> grads``, run on every step before the guard. A hook
        may return new arrays or change the ones it got; the update never writes
        gradients, so the arrays a hook returns (and may keep, e.g. buffers it refills
        every step) still hold those gradients after the step. The guard checks what
        the last hook returns.
    distributed : Communicator, optional
        Train data-parallel over its ranks (see [`xpnet.distributed`][]):
        ``batch_size`` is then the global batch, every rank's model, optimizer
        state and start position become rank 0's, and only rank 0 gets the
        progress bar and the ``rank_zero_only`` callbacks.
    sample_weight : array of shape (n,), optional
        Checked weights on the model's device; each batch takes its rows, and
        its loss is their weighted mean.
    metrics : list of (str, callable), optional
        ``(name, fn(y_true, y_pred))`` computed at each epoch's end on the whole
        training data (``name``) and the validation data (``val_name``), from
        ``model.predict_proba``; ``fit(metrics=...)`` resolves names to these.
    sync_buffers : bool
        With several ranks, replace the layers' buffers (BatchNorm's running
        statistics) on every rank by their mean over the ranks at the end of every
        epoch, before validation and the callbacks
        ([`xpnet.distributed.average_buffers`][]). By default each rank keeps its own.

    Attributes
    ----------
    history : History
    rng : RNG
        The generator for batch order (and dropout, on one process).
    dropout_rng : RNG
        The generator dropout draws from: ``rng`` on one process, a stream of
        each rank's own with several (the batch order stays the same on all).
    current : StepValues or None
        The values of the step in progress (or last done).
    comm : Communicator

    Examples
    --------
    What ``fit`` does, by hand:

    >>> import numpy as np, xpnet as xn
    >>> X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    >>> y = (X[:, 0] > 0).astype("int64")
    >>> m = xn.MLP([3, 8, 2], backend="numpy", seed=0)
    >>> opt = xn.Adam(lr=1e-2)
    >>> opt.state = opt.init(m.params)
    >>> t = xn.training.Trainer(m, X, y, optimizer=opt, epochs=3, batch_size=16,
    ...                         state=xn.training.TrainState(seed=0))
    >>> h = t.run()
    >>> len(h.history["loss"]), t.state.epoch, opt.state["step"]
    (3, 3, 12)
    """

    def __init__(self, model: Any, X: Any, y: Any, *, optimizer: Any, epochs: int,
                 batch_size: int, validation: tuple[Any, Any] | None = None,
                 shuffle: bool = True, callbacks: Sequence[Callback] = (),
                 verbose: bool = False, on_nonfinite: str = "raise",
                 state: TrainState | None = None, display_interval: float = 0.25,
                 grad_hooks: Sequence[GradHook] = (), distributed: Any = None,
                 sample_weight: Any = None, metrics: Sequence[tuple[str, Any]] = (),
                 sync_buffers: bool = False):
        self.model, self.X, self.y, self.validation = model, X, y, validation
        self.sample_weight = sample_weight
        self.metrics = list(metrics)
        self.sync_buffers = sync_buffers
        self.optimizer, self.epochs, self.shuffle = optimizer, epochs, shuffle
        self.n = X.shape[0]
        self.batch_size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        self.display_interval = display_interval
        self.grad_hooks = list(grad_hooks)
        self._start = state if state is not None else TrainState()
        self.comm = comm = distributed if distributed is not None else SingleProcess()
        _check_batch_rows(model, self.n, self.batch_size, comm.size)
        if comm.size > 1:  # every rank starts from rank 0; one allreduce per step
            self._start = agree_start(comm, model, optimizer, self._start, X=X, y=y,
                                      validation=validation, settings={
                                          "epochs": epochs, "global batch": self.batch_size,
                                          "shuffle": shuffle, "on_nonfinite": on_nonfinite})
            self.grad_hooks.insert(0, GradientAllreduce(comm, model))
        self.rng = RNG(self._start.seed)
        if self._start.rng is not None:
            self.rng.set_state(self._start.rng)
        self.dropout_rng = self.rng if comm.size == 1 else RNG(rank_seed(
            self._start.seed, comm.rank, self._start.epoch, self._start.step))
        self.ops, self._xp = ops_for(model.backend), model.xp
        # XPNET_DEVICE_GUARD=1: the device guard on a host backend (for tests)
        guard = HostGuard if model.backend.is_host and not env_flag("XPNET_DEVICE_GUARD", False) \
            else DeviceGuard
        self.guard = guard(on_nonfinite, self.ops, model.xp, model, optimizer)
        self._jit = JitStep(self) if JitStep.usable(self) else None
        self.callbacks = CallbackList(callbacks, model=model, trainer=self, progress=verbose,
                                      rank=comm.rank)
        self.history: History = self.callbacks.history
        self.history.restore(self._start.history)
        self.history.params = {
            "epochs": epochs, "batch_size": self.batch_size, "steps_per_epoch": self.steps,
            "samples": self.n, "seed": self._start.seed,
            "model_seed": getattr(model, "seed", None), "optimizer": repr(optimizer),
            "backend": model.backend.name, "device": model.backend.device_name,
            "ranks": comm.size}
        self.epoch, self.step_done = self._start.epoch, self._start.step
        self._epoch_rng: dict | None = self._start.epoch_rng
        self._interrupt = InterruptFlag()
        # the callbacks with an on_batch_end, called directly after each step
        self._batch_end = [cb.on_batch_end for cb in self.callbacks.callbacks
                           if type(cb).on_batch_end is not Callback.on_batch_end]
        self._last_display = 0.0
        self.current: StepValues | None = None
        self._grads_checked = False  # the first step compares gradient keys and shapes

    # -- position --------------------------------------------------------------
    @property
    def state(self) -> TrainState:
        """Where the run stands now (reads the running sums from the device mid-epoch).

        Returns
        -------
        TrainState
        """
        s = TrainState(epoch=self.epoch, step=self.step_done, seed=self._start.seed,
                       rng=self.rng.get_state(), history=self.history.to_dict()["history"])
        if self.step_done:
            s.epoch_rng = self._epoch_rng
            s.run_loss, s.run_correct, s.seen = (
                self.guard.running()[k] for k in ("run_loss", "run_correct", "seen"))
        return s

    # -- the run ---------------------------------------------------------------
    def run(self) -> History:
        """Train from the start state to ``epochs``; return the History.

        Returns
        -------
        History
        """
        model = self.model
        model.optimizer, model.stop_training = self.optimizer, False
        updates = self.steps * max(self.epochs - self.epoch, 0)
        t_train = time.perf_counter()
        with contextlib.ExitStack() as stack:
            stack.enter_context(model.backend.device_scope())
            stack.enter_context(self.ops.training(num_params=model.num_params,
                                                  n_updates=updates))
            self._interrupt = stack.enter_context(InterruptFlag())
            stack.callback(self._finish, t_train)
            self.callbacks.on_train_begin({
                "epochs": self.epochs, "steps_per_epoch": self.steps, "samples": self.n,
                "batch_size": self.batch_size, "has_validation": self.validation is not None})
            while self.epoch < self.epochs:
                if not self.run_epoch() or self.comm.any(model.stop_training,
                                                         what="the stop decision"):
                    self.history.stopped_early = True
                    break
        return self.history

    def _finish(self, t_train: float) -> None:
        self.history.params["train_seconds"] = time.perf_counter() - t_train
        self.callbacks.on_train_end({})

    def run_epoch(self) -> bool:
        """One epoch: its steps, then its logs and callbacks. False when a policy stopped it.

        Returns
        -------
        bool
        """
        epoch, first = self.epoch, self.step_done
        self.callbacks.on_epoch_begin(epoch, {})
        t0 = time.perf_counter()
        perm = self.begin_epoch(first)
        self._last_display = time.perf_counter()
        for k in range(first, self.steps):
            if not self.step(k, perm):
                return False
            current = self.current
            assert current is not None
            if current.display:
                self._last_display = time.perf_counter()
                if self.guard.poll():
                    return False
            if self._batch_end:
                running = _RunningLogs(self, k)
                for on_batch_end in self._batch_end:
                    on_batch_end(k, running)
            # one process stops as soon as it sees a signal; several ranks stop at the
            # step whose reduced flags carried it, so all stop together
            signum = current.signal or (self.comm.size == 1 and self._interrupt.signum)
            if signum:
                raise self._interrupted(k, signum)
        seen = self.guard.end_epoch(self.n)
        if self.guard.poll():
            return False
        synchronize(self.model.backend)
        if self.sync_buffers:  # every rank's running statistics become their mean
            average_buffers(self.comm, self.model)
        logs = self.epoch_logs(seen, time.perf_counter() - t0)
        self.epoch, self.step_done = epoch + 1, 0
        self.callbacks.on_epoch_end(epoch, logs)
        return True

    def begin_epoch(self, first: int = 0) -> Any:
        """Draw the epoch's permutation (redrawn exactly when resuming mid-epoch) and
        start the guard's sums; [`step`][xpnet.training.Trainer.step] takes the permutation.

        Parameters
        ----------
        first : int
            The first step to run (a resumed position's step, else 0).

        Returns
        -------
        array or None
            The permutation, on the device (None: the data's order).
        """
        start = self._start if (first and self.epoch == self._start.epoch) else None
        if start is not None and start.epoch_rng is not None:
            self.rng.set_state(start.epoch_rng)
        self._epoch_rng = self.rng.get_state()
        # one full batch: order does not change the mean gradient, so skip the copy
        perm = self.rng.permutation(self.n, self.model.backend) \
            if self.shuffle and self.steps > 1 else None
        sums: dict[str, Any] = {}
        if start is not None:
            if start.rng is not None:
                self.rng.set_state(start.rng)
            sums = {"run_loss": start.run_loss, "run_correct": start.run_correct,
                    "seen": start.seen}
        self.guard.begin_epoch(self.epoch, self.steps, **sums)
        return perm

    def batch(self, k: int, perm: Any) -> tuple[Any, Any, int]:
        """This rank's rows of step ``k``: ``(X_batch, y_batch, rows)``.

        On several ranks, the rank's contiguous share of the global batch
        ([`xpnet.distributed.shard_rows`][]). A rank with no share of a short
        last batch gets one stand-in row and ``rows == 0`` (its values are
        weighted 0).

        Parameters
        ----------
        k : int
            Step within the epoch.
        perm : array or None
            The epoch's permutation (None: the data's order).

        Returns
        -------
        tuple
        """
        lo, hi, rows = self._span(k)
        return self._take(self.X, lo, hi, perm), self._take(self.y, lo, hi, perm), rows

    def _span(self, k: int) -> tuple[int, int, int]:
        """This rank's row range of step ``k`` and its row count (a stand-in row for none)."""
        glo, ghi = k * self.batch_size, min((k + 1) * self.batch_size, self.n)
        if self.comm.size == 1:
            return glo, ghi, ghi - glo
        lo, hi = shard_rows(glo, ghi, self.comm.rank, self.comm.size)
        return (glo, glo + 1, 0) if hi == lo else (lo, hi, hi - lo)

    def rows(self, a: Any, k: int, perm: Any) -> Any:
        """This rank's rows of ``a`` (X, y or the weights) for step ``k``."""
        lo, hi, _ = self._span(k)
        return self._take(a, lo, hi, perm)

    def _take(self, a: Any, lo: int, hi: int, perm: Any) -> Any:
        """Rows ``lo:hi`` of ``a`` in the epoch's order (``perm``; None: the data's)."""
        if isinstance(a, HostRows):  # a memory-mapped X: read and converted per batch
            return a.batch_rows(lo, hi, perm)
        if perm is None:
            return a if lo == 0 and hi == self.n else a[lo:hi, ...]
        return self._xp.take(a, perm[lo:hi], axis=0)

    def step(self, k: int, perm: Any = None) -> bool:
        """One training step on batch ``k``: gradients, hooks, guarded update.

        Parameters
        ----------
        k : int
            Step within the epoch.
        perm : array or None
            The epoch's permutation.

        Returns
        -------
        bool
            False when the non-finite policy stopped training.
        """
        if self._jit is not None:  # JAX: the whole step compiled (None: run it eagerly)
            done = self._jit.step(k, perm)
            if done is not None:
                return done
        lo, hi, rows = self._span(k)
        xb, yb = self._take(self.X, lo, hi, perm), self._take(self.y, lo, hi, perm)
        wb = None if self.sample_weight is None else self._take(self.sample_weight, lo, hi,
                                                                 perm)
        model = self.model
        # a model with buffers (running statistics) gets their new values back: the
        # guard assigns them only with the step's update
        buffers: dict | None = {} if model._buffers else None
        # the data is checked (fit); the first step checks the gradients' keys and shapes
        value, grads, out = model._loss_grads_out(
            xb, yb, model.loss, train=True, rng=self.dropout_rng, weight=wb,
            check_grads=not self._grads_checked, new_buffers=buffers)
        self._grads_checked = True
        self.current = self._values(k, rows, value, model.loss.count_correct(out, yb))
        for hook in self.grad_hooks:
            grads = hook(grads, self)
        cur = self.current
        if not self.guard.apply(k, cur.loss, grads, cur.correct, cur.rows, buffers=buffers):
            return False
        self.step_done = k + 1
        return True

    def _values(self, k: int, rows: int, value: Any, correct: Any) -> StepValues:
        return StepValues(value, correct, rows,
                          min((k + 1) * self.batch_size, self.n) - k * self.batch_size,
                          self._interrupt.signum or 0, self._display_due(k))

    def _display_due(self, k: int) -> bool:
        """Whether this rank wants a progress display after step ``k`` (time or last step)."""
        return bool(self._batch_end) and (
            k == self.steps - 1
            or time.perf_counter() - self._last_display >= self.display_interval)

    # -- logs --------------------------------------------------------------------
    def _running_logs(self, k: int) -> dict[str, float]:
        return self._means()  # samples_seen: _RunningLogs' own

    def _means(self) -> dict[str, float]:
        """The epoch's running loss (and accuracy) over the rows seen so far."""
        sums = self.guard.running()
        denom = max(sums["seen"], 1)
        logs = {"loss": sums["run_loss"] / denom}
        if self.model.loss.classification:
            logs["accuracy"] = sums["run_correct"] / denom
        return logs

    def epoch_logs(self, seen: int, seconds: float) -> dict[str, float]:
        """The epoch's metrics: training means, validation, learning rate, time.

        Parameters
        ----------
        seen : int
            Rows the running sums cover.
        seconds : float
            The epoch's wall time.

        Returns
        -------
        dict of str to float
        """
        logs = self._means() if seen > 0 else {}  # the guard's sums cover `seen` rows
        logs.update(metric_values(self.metrics, self.model, self.X, self.y, ""))
        logs.update(self.evaluate())
        if self.validation is not None:
            logs.update(metric_values(self.metrics, self.model, *self.validation, "val_"))
        opt = self.optimizer
        logs["lr"] = opt.learning_rate(max(int(opt.state["step"]) - 1, 0))
        logs["seconds"] = seconds
        if self.guard.skipped:
            logs["skipped_steps"] = float(self.guard.skipped)
        return logs

    def evaluate(self) -> dict[str, float]:
        """Validation metrics (``val_loss``, ``val_accuracy``); empty without validation data.

        Returns
        -------
        dict of str to float
        """
        if self.validation is None:
            return {}
        result = evaluate_sharded(self.model, *self.validation, self.comm)
        return {"val_" + k: v for k, v in result.items()}

    def _interrupted(self, k: int, signum: int) -> TrainingInterrupted:
        path = self.callbacks.on_train_interrupted({"epoch": self.epoch, "step": k + 1})
        return TrainingInterrupted(self.epoch + 1, k + 1, path, signum)
