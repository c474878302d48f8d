"""``fit``: a thin loop over loss_and_grads and an optimizer update.

The data is moved to the device once; each batch is one ``take`` of it. The
loss and accuracy are accumulated on the device and read only at display
intervals, so a GPU step never waits on the host. On host backends (NumPy,
CPU torch, array_api_strict) reading a value costs nothing, so a non-finite
loss is caught before its update is applied; on devices the update is masked
on the device and the flag is read at the next display interval.
"""

from __future__ import annotations

import math
import time
from typing import Any

from . import _checks
from .backends import synchronize
from .callbacks import Callback, ModelCheckpoint, ProgressBar
from .ops import ops_for
from .optimizers import Adam, Optimizer, get_optimizer
from .random import RNG

__all__ = ["fit", "History", "NonFiniteLossError", "TrainingInterrupted"]

ON_NONFINITE = ("raise", "stop", "skip")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss or gradient; the message names epoch and step.

    Attributes
    ----------
    epoch : int
        1-based epoch.
    step : int
        1-based step within the epoch.

    Examples
    --------
    Weights so large that the logits overflow make the first loss NaN:

    >>> import numpy as np, xpnet as xn
    >>> m = xn.MLP([2, 2], backend="numpy")
    >>> m.set_params({"0.W": np.full((2, 2), 3e38), "0.b": np.zeros(2)})
    >>> with np.errstate(all="ignore"):
    ...     try:
    ...         m.fit(np.ones((8, 2), "float32"), np.zeros(8, "int64"), verbose=0)
    ...     except xn.NonFiniteLossError as exc:
    ...         print(exc.epoch, exc.step, "|", str(exc).split(";")[0])
    1 1 | non-finite loss at epoch 1, step 1
    """

    def __init__(self, epoch: int, step: int, what: str = "loss"):
        self.epoch, self.step = epoch, step
        super().__init__(
            f"non-finite {what} at epoch {epoch}, step {step}; the parameters were left as "
            "they were before that step. Lower the learning rate, add clip_norm= to the "
            "optimizer, or pass on_nonfinite='skip'"
        )


class History:
    """Per-epoch metrics returned by :func:`fit`.

    Attributes
    ----------
    history : dict of str to list of float
        ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``,
        ``seconds`` (and ``skipped_steps`` when any step was skipped).
    epoch : list of int
        0-based epoch indices.
    params : dict
        The run's settings (epochs, batch size, steps per epoch...).
    stopped_early : bool
        True when an :class:`~xpnet.EarlyStopping` callback or
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


def _compatible_state(state: dict | None, params: dict) -> bool:
    if not state or "step" not in state:
        return False
    for slot, values in state.items():
        if slot == "step":
            continue
        if set(values) != set(params):
            return False
        for k, v in values.items():
            p = params[k]
            if tuple(v.shape) != tuple(p.shape) or v.dtype != p.dtype:
                return False
            try:
                if str(v.device) != str(p.device):
                    return False
            except AttributeError:  # pragma: no cover
                pass
    return True


def fit(model, X, y, *, epochs: int = 10, batch_size: int | None = 128,
        optimizer: Optimizer | str | None = None, validation_data=None,
        validation_split: float = 0.0, shuffle: bool = True,
        callbacks: list[Callback] | None = None, seed: int | None = None, verbose: int = 1,
        on_nonfinite: str = "raise", resume: dict | None = None,
        display_interval: float = 0.25) -> History:
    """Train ``model`` on ``(X, y)``.

    Calling ``fit`` again continues from the current parameters; passing the
    same optimizer object (or none, which reuses ``model.optimizer``)
    continues its state (moments and step count).

    Parameters
    ----------
    model : Sequential
    X : array of shape (n, in_features)
        NumPy arrays are moved to the model's device once; arrays of the
        model's own backend are used in place.
    y : array
        Integer labels for cross-entropy; targets for other losses.
    epochs : int
        Number of passes over the data (>= 1). With ``resume``, the total
        number of epochs including those already done.
    batch_size : int or None
        Rows per step; ``None`` means full batch. Values above the number of
        samples are clipped to it (one full-batch step per epoch).
    optimizer : Optimizer or str, optional
        ``"adam"``, ``"sgd"``, ``"adamw"``, ``"rmsprop"`` or an instance.
        Default: the model's last optimizer, else ``Adam(lr=1e-3)``.
    validation_data : (X_val, y_val), optional
    validation_split : float
        Fraction in ``[0, 1)`` of the *last* rows of ``X`` held out for
        validation (ignored when ``validation_data`` is given).
    shuffle : bool
        Reshuffle the rows every epoch (from ``seed``).
    callbacks : list of Callback, optional
    seed : int, optional
        Seed for batch order and dropout. The same seed gives the same batch
        order on every backend. Default: drawn from the model's generator.
    verbose : {0, 1}
        0 is silent; 1 shows a progress bar and one line per epoch (stderr).
    on_nonfinite : {"raise", "stop", "skip"}
        What to do when a loss or gradient is NaN/inf: raise
        :class:`NonFiniteLossError` (default), stop training quietly, or skip
        that update and go on. The offending update is never applied.
    resume : dict, optional
        The ``training`` record of a checkpoint (see :func:`xpnet.load_checkpoint`)
        to continue an interrupted run exactly.
    display_interval : float
        Seconds between progress updates (each reads the running loss from
        the device).

    Returns
    -------
    History

    Raises
    ------
    ValueError, TypeError
        For bad arguments, before any work starts.
    NonFiniteLossError
        When ``on_nonfinite="raise"`` and a step is not finite.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 4)).astype("float32"); y = (X[:, 0] > 0).astype("int64")
    >>> m = xn.MLP([4, 8, 2], backend="numpy", seed=0)
    >>> h = m.fit(X, y, epochs=3, batch_size=16, verbose=0)
    >>> len(h.history["loss"])
    3
    """
    # ---- checks, before any work --------------------------------------------
    epochs = _checks.check_int("epochs", epochs)
    batch_size = _checks.check_int("batch_size", batch_size, allow_none=True)
    validation_split = _checks.check_float("validation_split", validation_split, low=0.0,
                                           high=1.0)
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
    if verbose not in (0, 1, 2, True, False):
        raise ValueError(f"verbose must be 0, 1 or 2 (2 is the same as 1), got {verbose!r}")
    if seed is not None:
        seed = _checks.check_int("seed", seed, minimum=0)
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects, got "
                        f"{type(callbacks).__name__}")
    callbacks = list(callbacks or [])
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    display_interval = _checks.check_float("display_interval", display_interval, low=0.0,
                                           high=None)
    if resume is not None and not (isinstance(resume, dict) and "epoch" in resume):
        raise TypeError("resume must be the 'training' dict of a checkpoint "
                        "(xpnet.load_checkpoint(path).training)")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be xpnet Callback objects, got {type(cb).__name__}")
    if optimizer is None:
        optimizer = model.optimizer if model.optimizer is not None else Adam(lr=1e-3)
    optimizer = get_optimizer(optimizer)
    if validation_data is not None:
        if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
            raise ValueError("validation_data must be a pair (X_val, y_val)")

    backend = model.backend
    xp = backend.xp
    loss = model.loss
    Xd = _checks.check_X(X, backend, model.dtype_name, model.in_features)
    yd = _checks.check_y(y, backend, model.dtype_name, Xd.shape[0], loss, model.out_features)
    Xv = yv = None
    if validation_data is not None:
        Xv = _checks.check_X(validation_data[0], backend, model.dtype_name, model.in_features,
                             name="validation X")
        yv = _checks.check_y(validation_data[1], backend, model.dtype_name, Xv.shape[0], loss,
                             model.out_features, name="validation y")
    elif validation_split > 0:
        n_val = int(math.floor(Xd.shape[0] * validation_split))
        if n_val < 1 or n_val >= Xd.shape[0]:
            raise ValueError(
                f"validation_split={validation_split} leaves {n_val} validation and "
                f"{Xd.shape[0] - n_val} training rows; both must be >= 1"
            )
        Xv, yv = Xd[-n_val:, ...], yd[-n_val:, ...]
        Xd, yd = Xd[:-n_val, ...], yd[:-n_val, ...]

    n = Xd.shape[0]
    bs = n if batch_size is None else min(batch_size, n)
    steps = math.ceil(n / bs)
    start_epoch = 0
    if resume is not None:
        start_epoch = int(resume.get("epoch", 0))
        if start_epoch >= epochs:
            raise ValueError(
                f"resume: {start_epoch} epochs are already done; ask for epochs > {start_epoch}"
            )

    # ---- state --------------------------------------------------------------
    if seed is None:
        seed = model.rng.spawn_seed() if resume is None else resume.get("seed", 0)
    rng = RNG(seed)
    if resume is not None and "rng" in resume:
        rng.set_state(resume["rng"])
    state: Any = optimizer.state
    if not _compatible_state(state, model.params):
        state = optimizer.init(model.params)
    optimizer.state = state
    model.optimizer = optimizer
    model.stop_training = False

    history = History()
    if resume is not None and resume.get("history"):
        for i, logs in enumerate(_rows(resume["history"])):
            history.append(i, logs)
    history.params = {"epochs": epochs, "batch_size": bs, "steps_per_epoch": steps,
                      "samples": n, "seed": seed, "optimizer": repr(optimizer),
                      "backend": backend.name, "device": backend.device_name}
    if verbose:
        callbacks = [ProgressBar(), *callbacks]
    # where training stands, for checkpoints (a mid-epoch save can resume exactly)
    pos: dict[str, Any] = {"epoch": start_epoch, "step": 0, "epoch_rng": None,
                           "run_loss": 0.0, "run_correct": 0.0, "seen": 0}

    def fit_state() -> dict:
        out = {"epoch": pos["epoch"], "step": pos["step"], "rng": rng.get_state(),
               "seed": seed, "optimizer": optimizer, "history": history.to_dict()["history"]}
        if pos["step"]:
            out.update(epoch_rng=pos["epoch_rng"], run_loss=pos["run_loss"],
                       run_correct=pos["run_correct"], seen=pos["seen"])
        return out

    for cb in callbacks:
        cb.set_model(model)
        if isinstance(cb, ModelCheckpoint):
            cb.fit_state = fit_state
    begin_logs = {"epochs": epochs, "steps_per_epoch": steps, "samples": n,
                  "batch_size": bs, "has_validation": Xv is not None}
    for cb in callbacks:
        cb.on_train_begin(begin_logs)

    host = backend.is_host
    classification = loss.classification
    step_index: Any = (xp.asarray(start_epoch * steps, dtype=xp.int64, device=backend.device)
                  if not host else None)
    wants_batches = bool(verbose) or any(
        type(cb).on_batch_end is not Callback.on_batch_end for cb in callbacks)
    stop = _InterruptFlag()
    ops = ops_for(backend)
    # malloc tuning and numba gating on NumPy (see xpnet.ops.NumpyOps.training)
    speed = ops.training(num_params=model.num_params,
                         n_updates=steps * max(epochs - start_epoch, 0))
    speed.__enter__()
    t_train = time.perf_counter()
    try:
        stop.install()
        for epoch in range(start_epoch, epochs):
            pos["epoch"] = epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            t0 = time.perf_counter()
            first_step = 0
            mid = resume is not None and epoch == start_epoch and int(resume.get("step", 0)) > 0
            if mid:
                assert resume is not None
                # resume inside an epoch: same permutation, same dropout stream, same sums
                rng.set_state(resume["epoch_rng"])
            pos["epoch_rng"] = rng.get_state()
            # one full batch: order does not change the mean gradient, so skip the copy
            perm = rng.permutation(n, backend) if shuffle and steps > 1 else None
            run_loss = xp.zeros((), dtype=model.dtype, device=backend.device)
            run_correct: Any = xp.zeros((), dtype=model.dtype, device=backend.device) \
                if classification else None
            n_ok_host = 0
            if mid:
                assert resume is not None
                rng.set_state(resume["rng"])
                first_step = int(resume["step"])
                run_loss = run_loss + float(resume.get("run_loss", 0.0))
                if classification:
                    run_correct = run_correct + float(resume.get("run_correct", 0.0))
                n_ok_host = int(resume.get("seen", 0))
            bad: Any = None if host else xp.asarray(False, device=backend.device)
            n_bad: Any = None if host else xp.asarray(0, dtype=xp.int64, device=backend.device)
            bad_rows: Any = None if host else xp.asarray(0, dtype=xp.int64,
                                                         device=backend.device)
            first_bad: Any = None if host else xp.asarray(-1, dtype=xp.int64,
                                                           device=backend.device)
            seen_ok = n_ok_host
            skipped = 0
            last_display = time.perf_counter()
            stop_now = False
            for step in range(first_step, steps):
                lo, hi = step * bs, min((step + 1) * bs, n)
                if perm is None:
                    xb, yb = (Xd, yd) if (lo == 0 and hi == n) else (Xd[lo:hi, ...], yd[lo:hi])
                else:
                    idx = perm[lo:hi]
                    xb, yb = xp.take(Xd, idx, axis=0), xp.take(yd, idx, axis=0)
                value, grads, out = model._loss_grads_out(xb, yb, loss, train=True, rng=rng)
                if host:
                    # one sum per gradient (in the model dtype), totalled in float64:
                    # NaN/inf anywhere makes the total non-finite
                    if not ops.all_finite(value, grads):
                        what = "loss" if not math.isfinite(float(value)) else "gradient"
                        if on_nonfinite == "raise":
                            raise NonFiniteLossError(epoch + 1, step + 1, what)
                        if on_nonfinite == "stop":
                            history.stopped_early = True
                            stop_now = True
                            break
                        skipped += 1
                        continue
                    optimizer.update_(model.params, grads, optimizer.state)
                    run_loss = run_loss + value * (hi - lo)
                    if classification:
                        run_correct = run_correct + model._accuracy_count(out, yb)
                    n_ok_host += hi - lo
                    seen_ok = n_ok_host
                else:
                    # the same test as the host path above, as a flag on the device
                    ok = ops.finite_flag(value, grads)
                    keep = ok if on_nonfinite == "skip" else (ok & ~bad)
                    first_bad = xp.where((~ok) & (~bad), step_index + step, first_bad)
                    bad = bad | (~ok)
                    n_bad = n_bad + xp.astype(~ok, xp.int64)
                    bad_rows = bad_rows + xp.astype(~ok, xp.int64) * (hi - lo)
                    model.params, optimizer.state = optimizer.update(
                        model.params, grads, optimizer.state, keep=keep)
                    run_loss = run_loss + xp.where(keep, value, 0.0) * float(hi - lo)
                    if classification:
                        run_correct = run_correct + xp.where(
                            keep, model._accuracy_count(out, yb), 0.0)
                    seen_ok = hi
                if wants_batches:
                    now = time.perf_counter()
                    if now - last_display >= display_interval or step == steps - 1:
                        last_display = now
                        if not host and bool(bad) and on_nonfinite != "skip":
                            stop_now = _device_nonfinite(on_nonfinite, first_bad, steps, history)
                            break
                        denom = max(seen_ok, 1)
                        logs = {"loss": float(run_loss) / denom, "samples_seen": hi}
                        if classification:
                            logs["accuracy"] = float(run_correct) / denom
                        for cb in callbacks:
                            cb.on_batch_end(step, logs)
                if stop.requested:
                    pos.update(step=step + 1, run_loss=float(run_loss),
                               run_correct=float(run_correct) if classification else 0.0,
                               seen=seen_ok)
                    raise _interrupted(callbacks, epoch, step, steps)
            if not host and not stop_now:
                if bool(bad):
                    if on_nonfinite == "skip":
                        skipped += int(n_bad)
                    else:
                        stop_now = _device_nonfinite(on_nonfinite, first_bad, steps, history)
                seen_ok = n - int(bad_rows) if on_nonfinite == "skip" else n
            if not host:
                step_index = step_index + steps
            synchronize(backend)
            seconds = time.perf_counter() - t0
            logs = {}
            if seen_ok > 0:
                logs["loss"] = float(run_loss) / seen_ok
                if classification:
                    logs["accuracy"] = float(run_correct) / seen_ok
            if Xv is not None:
                v = model._evaluate(Xv, yv)
                logs.update({"val_" + k: val for k, val in v.items()})
            logs["lr"] = optimizer.learning_rate(max(int(optimizer.state["step"]) - 1, 0))
            logs["seconds"] = seconds
            if skipped:
                logs["skipped_steps"] = float(skipped)
            pos.update(epoch=epoch + 1, step=0)
            if stop_now:
                break
            history.append(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                history.stopped_early = True
                break
    finally:
        stop.uninstall()
        speed.__exit__(None, None, None)
        history.params["train_seconds"] = time.perf_counter() - t_train
        for cb in callbacks:
            cb.on_train_end({})
    return history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped :func:`fit` at the end of a step.

    Attributes
    ----------
    epoch, step : int
        1-based epoch and the number of steps done in it.
    checkpoint : str or None
        Path of the resumable checkpoint written on the way out (when a
        :class:`~xpnet.ModelCheckpoint` callback was given).

    Examples
    --------
    ``fit`` raises it; continue with
    ``fit(..., resume=xn.load_checkpoint(exc.checkpoint).training)``. It is a
    ``KeyboardInterrupt``, so code that does not catch it stops as usual:

    >>> import xpnet as xn
    >>> exc = xn.TrainingInterrupted(2, 5, "run.safetensors")
    >>> isinstance(exc, KeyboardInterrupt), exc.checkpoint
    (True, 'run.safetensors')
    >>> print(exc)
    training interrupted at epoch 2, step 5; resumable checkpoint saved to run.safetensors
    """

    def __init__(self, epoch: int, step: int, checkpoint: str | None):
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        where = f"epoch {epoch}, step {step}"
        msg = f"training interrupted at {where}"
        if checkpoint:
            msg += f"; resumable checkpoint saved to {checkpoint}"
        super().__init__(msg)


def _interrupted(callbacks: list, epoch: int, step: int, steps: int) -> TrainingInterrupted:
    path = None
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint):
            path = cb.save_now()
    return TrainingInterrupted(epoch + 1, step + 1, path)


class _InterruptFlag:
    """Turns the first SIGINT during fit into a flag read after each step.

    A second Ctrl-C interrupts at once (the default behaviour).
    """

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None
        self._installed = False

    def _handler(self, signum, frame):  # pragma: no cover - exercised in a subprocess test
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
                self._installed = True
            except ValueError:  # pragma: no cover - e.g. embedded interpreters
                self._installed = False

    def uninstall(self) -> None:
        import signal

        if self._installed:
            signal.signal(signal.SIGINT, self._old)
            self._installed = False


def _device_nonfinite(policy: str, first_bad: Any, steps: int, history: History) -> bool:
    g = int(first_bad)
    epoch, step = g // steps + 1, g % steps + 1
    if policy == "raise":
        raise NonFiniteLossError(epoch, step, "loss or gradient")
    history.stopped_early = True
    return True


def _rows(hist: dict[str, list[float]]) -> list[dict[str, float]]:
    n = max((len(v) for v in hist.values()), default=0)
    return [{k: v[i] for k, v in hist.items() if i < len(v)} for i in range(n)]
