"""The ``Trainer``: the epochs and steps of one fit, through the model's public calls only.

One step is: take a batch -> ``model.loss_and_grads`` (forward, loss,
backward) -> the gradient hooks -> the non-finite guard, which applies the
optimizer update -> the running sums. Gradient transformations (a
data-parallel allreduce, parameter masks...) plug in as hooks: functions
``hook(grads, trainer) -> grads`` run in order on every step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..backends import synchronize
from ..ops import ops_for
from ..random import RNG
from .callbacks import Callback, CallbackList, History
from .guards import DeviceGuard, HostGuard
from .interrupt import InterruptFlag, TrainingInterrupted
from .state import TrainState

__all__ = ["Trainer"]

GradHook = Callable[[dict, "Trainer"], dict]


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
        Seconds between ``on_batch_end`` calls (each reads the device).
    grad_hooks : list of callable, optional
        ``hook(grads, trainer) -> grads``, run on every step before the guard.

    Attributes
    ----------
    history : History
    rng : RNG
        The generator for batch order and dropout.

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
                 grad_hooks: Sequence[GradHook] = ()):
        self.model, self.X, self.y, self.validation = model, X, y, validation
        self.optimizer, self.epochs, self.shuffle = optimizer, epochs, shuffle
        self.n = X.shape[0]
        self.batch_size = min(batch_size, self.n)
        self.steps = math.ceil(self.n / self.batch_size)
        self.display_interval = display_interval
        self.grad_hooks = list(grad_hooks)
        self._start = state if state is not None else TrainState()
        self.rng = RNG(self._start.seed)
        if self._start.rng is not None:
            self.rng.set_state(self._start.rng)
        self.ops = ops_for(model.backend)
        guard = HostGuard if model.backend.is_host else DeviceGuard
        self.guard = guard(on_nonfinite, self.ops, model.xp, model, optimizer)
        self.callbacks = CallbackList(callbacks, model=model, trainer=self, progress=verbose)
        self.history: History = self.callbacks.history
        self.history.restore(self._start.history)
        self.history.params = {
            "epochs": epochs, "batch_size": self.batch_size, "steps_per_epoch": self.steps,
            "samples": self.n, "seed": self._start.seed, "optimizer": repr(optimizer),
            "backend": model.backend.name, "device": model.backend.device_name}
        self.epoch, self.step_done = self._start.epoch, self._start.step
        self._epoch_rng: dict | None = self._start.epoch_rng

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
                if not self.run_epoch() or model.stop_training:
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
        last_display = time.perf_counter()
        wants_batches = self.callbacks.wants_batches
        for k in range(first, self.steps):
            if not self.step(k, perm):
                return False
            if wants_batches and (time.perf_counter() - last_display >= self.display_interval
                                  or k == self.steps - 1):
                last_display = time.perf_counter()
                if self.guard.poll():
                    return False
                self.callbacks.on_batch_end(k, self._running_logs(k))
            if self._interrupt.requested:
                raise self._interrupted(k)
        seen = self.guard.end_epoch(self.n)
        if self.guard.poll():
            return False
        synchronize(self.model.backend)
        logs = self.epoch_logs(seen, time.perf_counter() - t0)
        self.epoch, self.step_done = epoch + 1, 0
        self.callbacks.on_epoch_end(epoch, logs)
        return True

    def begin_epoch(self, first: int = 0) -> Any:
        """Draw the epoch's permutation (redrawn exactly when resuming mid-epoch) and
        start the guard's sums; :meth:`step` takes the permutation.

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
        """Rows of step ``k``: ``(X_batch, y_batch, rows)``.

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
        lo, hi = k * self.batch_size, min((k + 1) * self.batch_size, self.n)
        X, y = self.X, self.y
        if perm is None:
            if lo == 0 and hi == self.n:
                return X, y, hi - lo
            return X[lo:hi, ...], y[lo:hi, ...], hi - lo
        xp, idx = self.model.xp, perm[lo:hi]
        return xp.take(X, idx, axis=0), xp.take(y, idx, axis=0), hi - lo

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
        xb, yb, rows = self.batch(k, perm)
        model = self.model
        value, grads, out = model.loss_and_grads(xb, yb, train=True, check_values=False,
                                                 rng=self.rng, return_output=True)
        for hook in self.grad_hooks:
            grads = hook(grads, self)
        count = model.loss.count_correct(out, yb)
        if not self.guard.apply(k, value, grads, count, rows):
            return False
        self.step_done = k + 1
        return True

    # -- logs --------------------------------------------------------------------
    def _running_logs(self, k: int) -> dict[str, float]:
        sums = self.guard.running()
        denom = max(sums["seen"], 1)
        logs = {"loss": sums["run_loss"] / denom,
                "samples_seen": min((k + 1) * self.batch_size, self.n)}
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
        logs: dict[str, float] = {}
        if seen > 0:
            sums = self.guard.running()
            logs["loss"] = sums["run_loss"] / seen
            if self.model.loss.classification:
                logs["accuracy"] = sums["run_correct"] / seen
        logs.update(self.evaluate())
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
        result = self.model.evaluate(*self.validation)
        return {"val_" + k: v for k, v in result.items()}

    def _interrupted(self, k: int) -> TrainingInterrupted:
        path = self.callbacks.on_train_interrupted({"epoch": self.epoch, "step": k + 1})
        return TrainingInterrupted(self.epoch + 1, k + 1, path,
                                   self._interrupt.signum or 2)
