"""Non-finite guards: what a step does with a NaN/inf loss, gradient or update.

The policy (``on_nonfinite``) is chosen once per fit, and so is the guard:

* [`HostGuard`][xpnet.training.HostGuard] for host backends (NumPy, CPU torch,
  ``array_api_strict``), where reading a value costs nothing: the loss and the gradients
  are checked first, then the update is applied only if every new parameter and
  optimizer slot is finite (``Optimizer.update_(..., check_finite=True)``: on NumPy the
  update is written into a second set of arrays, checked chunk by chunk, and swapped in;
  elsewhere the pure update is checked before it is rebound).
* [`DeviceGuard`][xpnet.training.DeviceGuard] for devices: the update is computed, then
  one flag says whether the loss, the gradients and every new parameter and slot are
  finite, and the step keeps the old values where it is false; the flag is read only at
  display intervals and at the end of the epoch, so a GPU step never waits on the host.
  Its bookkeeping is a handful of kernels per step whatever the number of parameters
  (parameters and slots are views of one flat buffer chosen with one ``where``).

Both keep the epoch's running loss and correct count, so the offending update
is never applied and never counted.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import to_numpy

__all__ = ["NonFiniteLossError", "HostGuard", "DeviceGuard", "ON_NONFINITE"]

ON_NONFINITE = ("raise", "stop", "skip")
"""The values ``on_nonfinite`` accepts: what a step does with a NaN/inf loss,
gradient or update (``"raise"`` a [`NonFiniteLossError`][xpnet.training.NonFiniteLossError],
``"stop"`` training quietly, or ``"skip"`` that update and go on)."""
_UPDATE = "update (a parameter or optimizer slot would become inf or NaN)"


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss or gradient, or an update that would have made a
    parameter or optimizer slot NaN/inf (it was not applied); the message names epoch and step.

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


class _Guard:
    """What both guards share: the policy and the epoch's running sums (in float64)."""

    def __init__(self, policy: str, ops: Any, xp: Any, model: Any, optimizer: Any):
        self.policy, self.ops, self.xp = policy, ops, xp
        self.model, self.optimizer = model, optimizer
        self.stopped = False  # the "stop" policy ended training

    def begin_epoch(self, epoch: int, steps: int, *, run_loss: float = 0.0,
                    run_correct: float = 0.0, seen: int = 0) -> None:
        """Start the epoch's sums (from a resumed position's sums when given)."""
        self.run_loss, self.run_correct, self.seen = float(run_loss), float(run_correct), seen
        self.skipped = 0
        self.epoch, self.steps = epoch, steps

    def running(self) -> dict[str, Any]:
        """The epoch's running sums of loss x rows and correct predictions (floats), and
        the rows they cover (an int)."""
        return {"run_loss": self.run_loss, "run_correct": self.run_correct, "seen": self.seen}

    def _bad(self, k: int, what: str) -> bool:
        """Step ``k`` was not applied: raise, stop, or count it. False when training stops."""
        if self.policy == "raise":
            raise NonFiniteLossError(self.epoch + 1, k + 1, what)
        if self.policy == "stop":
            self.stopped = True
            return False
        self.skipped += 1
        return True


class HostGuard(_Guard):
    """Check each step on the host; apply its update only if every new value is finite."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.spare: dict = {}  # the second set of arrays of the NumPy update

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int) -> bool:
        """Apply step ``k``'s update when finite; False when the policy says stop."""
        if not self.ops.all_finite(value, grads):
            return self._bad(k, "loss" if not math.isfinite(float(value)) else "gradient")
        opt = self.optimizer
        if not opt.update_(self.model.params, grads, opt.state, check_finite=True,
                           spare=self.spare, grads_finite=True):
            return self._bad(k, _UPDATE)
        self.run_loss += float(value) * rows
        if count is not None:
            self.run_correct += float(count)
        self.seen += rows
        return True

    def poll(self) -> bool:
        """Nothing to read back on the host; False (go on)."""
        return False

    def end_epoch(self, n: int) -> int:
        """Rows the epoch's means cover."""
        return self.seen


class DeviceGuard(_Guard):
    """Keep each update on the device only where it is finite; read the flags at display
    intervals only."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._flat: Any = None  # the buffer the live parameters and slots are views of
        self._views: list = []
        self._weights: dict[int, Any] = {}

    def begin_epoch(self, epoch: int, steps: int, **sums: Any) -> None:
        """Start the epoch's sums and the device flag."""
        super().begin_epoch(epoch, steps, **sums)
        xp, dev, dtype = self.xp, self.model.backend.device, self.model.dtype
        # kept steps' loss x rows, correct predictions, rows, steps: one vector, one add
        self.acc = xp.zeros((4,), dtype=xp.float64, device=dev)
        self.good = xp.asarray(True, device=dev)  # every step of the epoch so far kept
        self._zero = xp.zeros((), dtype=dtype, device=dev)
        self._one = xp.ones((), dtype=dtype, device=dev)
        self._first: int | None = None
        self._ran = 0

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int) -> bool:
        """Compute step ``k``'s update and keep it where it is finite; no host sync."""
        xp = self.xp
        if self._first is None:
            self._first = k
        self._ran += 1
        opt, model = self.optimizer, self.model
        new_params, new_state = opt.update(model.params, grads, opt.state)
        keep = self._select(value, grads, new_params, new_state)
        parts = xp.stack([value, self._zero if count is None else count, self._one, self._one])
        self.acc = self.acc + xp.where(keep, parts * self._rows(rows), 0.0)
        return True

    def _rows(self, rows: int) -> Any:
        w = self._weights.get(rows)
        if w is None:  # at most two sizes per fit: the batch and the last one
            w = self.xp.asarray([float(rows), 1.0, float(rows), 1.0], dtype=self.xp.float64,
                                device=self.model.backend.device)
            self._weights[rows] = w
        return w

    def _select(self, value: Any, grads: dict, new_params: dict, new_state: dict) -> Any:
        """One flag for the loss, the gradients and every new value; the new parameters and
        slots where it holds, the old ones elsewhere, as views of one buffer."""
        xp, model, opt = self.xp, self.model, self.optimizer
        keys = list(model.params)
        slots = [s for s in new_state if s != "step"]
        old = [model.params[k] for k in keys] + [opt.state[s][k] for s in slots for k in keys]
        new = [new_params[k] for k in keys] + [new_state[s][k] for s in slots for k in keys]
        views = self._views
        if len(views) == len(old) and all(a is b for a, b in zip(views, old, strict=True)):
            flat_old = self._flat  # the live values are the views of the last step's buffer
        else:
            flat_old = xp.concat([xp.reshape(a, (-1,)) for a in old])
        head = [xp.reshape(value, (1,))] + [xp.reshape(g, (-1,)) for g in grads.values()]
        flat_new = xp.concat(head + [xp.reshape(a, (-1,)) for a in new])
        ok = xp.isfinite(xp.sum(flat_new, dtype=xp.float64))  # NaN/inf anywhere: not finite
        keep = ok if self.policy == "skip" else ok & self.good
        if self.policy != "skip":
            self.good = keep
        start = flat_new.shape[0] - flat_old.shape[0]
        flat = xp.where(keep, flat_new[start:], flat_old)
        views, offset = [], 0
        for a in old:
            size = math.prod(a.shape)
            views.append(xp.reshape(flat[offset:offset + size], a.shape))
            offset += size
        n = len(keys)
        model.params = dict(zip(keys, views[:n], strict=True))
        state: dict = {"step": new_state["step"]}
        for j, s in enumerate(slots):
            state[s] = dict(zip(keys, views[n * (j + 1):n * (j + 2)], strict=True))
        opt.state = state
        self._flat, self._views = flat, views
        return keep

    def running(self) -> dict[str, Any]:
        """The running sums, read from the device (one sync)."""
        acc = to_numpy(self.acc)
        return {"run_loss": self.run_loss + float(acc[0]),
                "run_correct": self.run_correct + float(acc[1]),
                "seen": self.seen + int(acc[2])}

    def poll(self) -> bool:
        """Read the flag (a sync); raise or stop per the policy. True when training stops."""
        if self.policy == "skip" or bool(self.good):
            return False
        kept = int(to_numpy(self.acc)[3])  # the kept steps are those before the first bad one
        k = (self._first or 0) + kept
        if self.policy == "raise":
            raise NonFiniteLossError(self.epoch + 1, k + 1, "loss, gradient or " + _UPDATE)
        self.stopped = True
        return True

    def end_epoch(self, n: int) -> int:
        """Count skipped steps (a sync) and return the rows the epoch's means cover."""
        acc = to_numpy(self.acc)
        if self.policy == "skip":
            self.skipped += self._ran - int(acc[3])
        return self.seen + int(acc[2])
