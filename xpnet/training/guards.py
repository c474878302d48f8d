"""Non-finite guards: what a step does with a NaN/inf loss or gradient.

The policy (``on_nonfinite``) is chosen once per fit, and so is the guard:

* :class:`HostGuard` for host backends (NumPy, CPU torch, ``array_api_strict``),
  where reading a value costs nothing: each step is checked before its update
  is applied, in place.
* :class:`DeviceGuard` for devices: the update is masked on the device
  (``keep``), and the flag is read only at display intervals and at the end
  of the epoch, so a GPU step never waits on the host.

Both keep the epoch's running loss and correct count, so the offending update
is never applied and never counted.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["NonFiniteLossError", "HostGuard", "DeviceGuard", "ON_NONFINITE"]

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


class _Guard:
    """What both guards share: the policy and the epoch's running sums."""

    def __init__(self, policy: str, ops: Any, xp: Any, model: Any, optimizer: Any):
        self.policy, self.ops, self.xp = policy, ops, xp
        self.model, self.optimizer = model, optimizer
        self.stopped = False  # the "stop" policy ended training

    def begin_epoch(self, epoch: int, steps: int, *, run_loss: float = 0.0,
                    run_correct: float = 0.0, seen: int = 0) -> None:
        """Start the epoch's sums (from a resumed position's sums when given)."""
        xp, model = self.xp, self.model
        zero = xp.zeros((), dtype=model.dtype, device=model.backend.device)
        self.run_loss = zero + run_loss if run_loss else zero
        self.run_correct = zero + run_correct if run_correct else zero
        self.seen = seen
        self.skipped = 0
        self.epoch, self.steps = epoch, steps

    def running(self) -> dict[str, float]:
        """The epoch's running mean loss and correct count (reads the device)."""
        return {"run_loss": float(self.run_loss), "run_correct": float(self.run_correct),
                "seen": self.seen}


class HostGuard(_Guard):
    """Check each step on the host, then update in place; the bad update is never applied."""

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int) -> bool:
        """Apply step ``k``'s update when finite; False when the policy says stop."""
        if not self.ops.all_finite(value, grads):
            what = "loss" if not math.isfinite(float(value)) else "gradient"
            if self.policy == "raise":
                raise NonFiniteLossError(self.epoch + 1, k + 1, what)
            if self.policy == "stop":
                self.stopped = True
                return False
            self.skipped += 1
            return True
        opt = self.optimizer
        opt.update_(self.model.params, grads, opt.state)
        self.run_loss = self.run_loss + value * rows
        if count is not None:
            self.run_correct = self.run_correct + count
        self.seen += rows
        return True

    def poll(self) -> bool:
        """Nothing to read back on the host; False (go on)."""
        return False

    def end_epoch(self, n: int) -> int:
        """Rows the epoch's means cover."""
        return self.seen


class DeviceGuard(_Guard):
    """Mask each update on the device; read the flags at display intervals only."""

    def begin_epoch(self, epoch: int, steps: int, **sums: Any) -> None:
        """Start the epoch's sums and the device flags."""
        super().begin_epoch(epoch, steps, **sums)
        xp, dev = self.xp, self.model.backend.device
        self.bad = xp.asarray(False, device=dev)
        self.n_bad = xp.asarray(0, dtype=xp.int64, device=dev)
        self.bad_rows = xp.asarray(0, dtype=xp.int64, device=dev)
        self.first_bad = xp.asarray(-1, dtype=xp.int64, device=dev)
        self._zero = xp.asarray(0, dtype=xp.int64, device=dev)

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int) -> bool:
        """Apply step ``k``'s update under a device-side ``keep`` mask; no host sync."""
        xp = self.xp
        ok = self.ops.finite_flag(value, grads)
        keep = ok if self.policy == "skip" else (ok & ~self.bad)
        # zero + k: the step index as a device scalar without a host-to-device copy
        self.first_bad = xp.where((~ok) & (~self.bad), self._zero + k, self.first_bad)
        self.bad = self.bad | (~ok)
        self.n_bad = self.n_bad + xp.astype(~ok, xp.int64)
        self.bad_rows = self.bad_rows + xp.astype(~ok, xp.int64) * rows
        opt, model = self.optimizer, self.model
        model.params, opt.state = opt.update(model.params, grads, opt.state, keep=keep)
        self.run_loss = self.run_loss + xp.where(keep, value, 0.0) * float(rows)
        if count is not None:
            self.run_correct = self.run_correct + xp.where(keep, count, 0.0)
        self.seen += rows
        return True

    def poll(self) -> bool:
        """Read the flag (a sync); raise or stop per the policy. True when training stops."""
        if self.policy == "skip" or not bool(self.bad):
            return False
        k = int(self.first_bad)
        if self.policy == "raise":
            raise NonFiniteLossError(self.epoch + 1, k + 1, "loss or gradient")
        self.stopped = True
        return True

    def end_epoch(self, n: int) -> int:
        """Count skipped steps (a sync) and return the rows the epoch's means cover."""
        if self.policy == "skip" and bool(self.bad):
            self.skipped += int(self.n_bad)
        return self.seen - int(self.bad_rows) if self.policy == "skip" else self.seen
