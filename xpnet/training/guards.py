"""Non-finite guards: what a step does with a NaN/inf loss, gradient or update.

The policy (``on_nonfinite``) is chosen once per fit, and so is the guard:

* [`HostGuard`][xpnet.training.HostGuard] for host backends (NumPy, CPU torch,
  ``array_api_strict``), where reading a value is free: the loss is read, and the update
  is applied only if every new parameter and slot is finite
  (``Optimizer.update_(..., check_finite=True)``).
* [`DeviceGuard`][xpnet.training.DeviceGuard] for devices: one flag says whether the
  loss, the gradients and every new value are finite, the old values are kept where it
  is false, and it is read only at display intervals and the epoch's end, so a GPU step
  never waits on the host. ``XPNET_DEVICE_GUARD=1`` forces it on a host backend (the
  tests check it against the host guard).

Both keep the epoch's running loss and correct count, so an offending update is never
applied nor counted. New buffer values (BatchNorm's running statistics) are checked
with the step and assigned only where its update is.
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
_BUFFERS = "buffer update (a running statistic would become inf or NaN)"


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

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int,
              buffers: dict | None = None) -> bool:
        """Apply step ``k``'s update (and its new ``buffers``) when finite; False when the
        policy says stop. The gradients are looked at only to name the cause of a refusal
        (each flows into a new value, which the update checks)."""
        if not math.isfinite(float(value)):
            return self._bad(k, "loss")
        if buffers and not self.ops.all_finite(value, buffers):
            return self._bad(k, _BUFFERS)
        opt = self.optimizer
        if not opt.update_(self.model._params, grads, opt.state, check_finite=True):
            return self._bad(k, "gradient" if not self.ops.all_finite(value, grads)
                             else _UPDATE)
        if buffers:
            dict.update(self.model.buffers, buffers)  # checked as the forward made them
        self.record(value, count, rows)
        return True

    def record(self, value: Any, count: Any, rows: int) -> None:
        """Add an applied step's loss and correct count to the epoch's sums."""
        self.run_loss += float(value) * rows
        if count is not None:
            self.run_correct += float(count)
        self.seen += rows

    def poll(self) -> bool:
        """Nothing to read back on the host; False (go on)."""
        return False

    def end_epoch(self, n: int) -> int:
        """Rows the epoch's means cover."""
        return self.seen


class DeviceGuard(_Guard):
    """Keep each update on the device only where it is finite; read the flags at display
    intervals only.

    The update is computed out of place, one device flag says whether the loss, the
    gradients and every new parameter and slot are finite, and each trained parameter
    and slot becomes ``where(keep, new, old)``: frozen parameters and their (absent)
    slots are never touched. The step counts are host integers, so they advance with
    every step and are set back when a flag read shows steps that were not kept (at
    the next display or the end of the epoch): with ``on_nonfinite="skip"``, the
    steps between a skipped one and that read count one update too many for Adam's
    bias correction and the schedule. ``XPNET_DEVICE_GUARD=1`` runs this guard on a
    host backend too (the tests compare it with [`HostGuard`][xpnet.training.HostGuard]).
    """

    def begin_epoch(self, epoch: int, steps: int, **sums: Any) -> None:
        """Start the epoch's sums and the device flag."""
        super().begin_epoch(epoch, steps, **sums)
        xp, dev, dtype = self.xp, self.model.backend.device, self.model.dtype
        # kept steps' loss x rows, correct predictions, rows, steps: one vector, one add
        self.acc = xp.zeros((4,), dtype=xp.float64, device=dev)
        self.good = xp.asarray(True, device=dev)  # every step of the epoch so far kept
        self._zero = xp.zeros((), dtype=dtype, device=dev)
        self._one = xp.ones((), dtype=dtype, device=dev)
        self._weights: dict[int, Any] = {}
        self._first: int | None = None
        self._ran = 0
        self._uncounted = 0  # steps not kept whose counts are already set back
        self._zero_cache: dict[int, Any] = {}
        self._own_flat: Any = None  # without a store: the buffer of the live values
        self._own_views: list = []

    def apply(self, k: int, value: Any, grads: dict, count: Any, rows: int,
              buffers: dict | None = None) -> bool:
        """Compute step ``k``'s update and keep it (with the new ``buffers``) where it
        is finite; no host sync."""
        xp = self.xp
        if self._first is None:
            self._first = k
        self._ran += 1
        opt, model = self.optimizer, self.model
        # the live state covers exactly the trained parameters (a layer frozen or
        # unfrozen since the last step), so that every slot written below exists
        opt._aligned({k: model.params[k] for k in grads}, opt.state, in_place=True,
                     params=model.params)
        new_params, new_state = opt.update(model.params, grads, opt.state)
        keep = self._commit(value, grads, new_params, new_state, buffers or {})
        opt.state["step"], opt.state["steps"] = new_state["step"], new_state["steps"]
        if buffers:  # the old values where the step is not kept
            old = model.buffers
            dict.update(old, {b: xp.where(keep, v, old[b]) for b, v in buffers.items()})
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

    def _commit(self, value: Any, grads: dict, new_params: dict, new_state: dict,
                buffers: dict) -> Any:
        """The step's keep flag; the store's buffer becomes ``where(keep, new, live)``."""
        xp, model, opt = self.xp, self.model, self.optimizer
        store, slots = model.store, list(opt.slots)
        if store is None:
            return self._commit_each(value, grads, new_params, new_state, buffers)
        rows = [{k: new_params[k] if k in grads else model.params[k] for k in store.keys}]
        rows += [{k: new_state[s][k] for k in grads} for s in slots]
        flat_new, keep = self._checked(value, grads, buffers,
                                       [piece for row in rows for piece in self._layout(row)])
        start = flat_new.shape[0] - store.data.shape[0] * store.total
        store.set_data(xp.where(keep, xp.reshape(flat_new[start:], store.data.shape),
                                store.data))
        return keep

    def _checked(self, value: Any, grads: dict, buffers: dict, pieces: list) -> tuple[Any, Any]:
        """The loss, gradients, buffers and ``pieces`` as one flat array, and the keep flag."""
        xp = self.xp
        head = [xp.reshape(a, (-1,)) for a in (value, *grads.values(), *buffers.values())]
        flat_new = xp.concat(head + pieces)
        ok = xp.isfinite(xp.sum(flat_new, dtype=xp.float64))  # NaN/inf anywhere
        keep = ok if self.policy == "skip" else ok & self.good
        if self.policy != "skip":
            self.good = keep
        return flat_new, keep

    def _layout(self, row: dict) -> list[Any]:
        """One row of the store's buffer in pieces (zeros for a key ``row`` lacks, and gaps)."""
        store, xp = self.model.store, self.xp
        return [(xp.reshape(row[k], (-1,)) if k in row else self._zeros(store.sizes[k]))
                if isinstance(k, str) else k for k in store.layout(xp)]

    def _zeros(self, n: int) -> Any:
        z = self._zero_cache.get(n)
        if z is None:
            z = self._zero_cache[n] = self.xp.zeros((n,), dtype=self.model.dtype,
                                                    device=self.model.backend.device)
        return z

    def _commit_each(self, value: Any, grads: dict, new_params: dict, new_state: dict,
                     buffers: dict) -> Any:
        """`_commit` without a store: parameters and slots become views of the guard's buffer."""
        xp, model, opt = self.xp, self.model, self.optimizer
        keys, slots = list(model.params), list(opt.slots)
        params, state = model.params, opt.state
        old = [params[k] for k in keys] + [state[s][k] for s in slots for k in grads]
        new = [new_params[k] if k in grads else params[k] for k in keys] + \
              [new_state[s][k] for s in slots for k in grads]
        views = self._own_views
        if len(views) == len(old) and all(a is b for a, b in zip(views, old, strict=True)):
            flat_old = self._own_flat  # the live values are the last step's views
        else:
            flat_old = xp.concat([xp.reshape(a, (-1,)) for a in old])
        flat_new, keep = self._checked(value, grads, buffers,
                                       [xp.reshape(a, (-1,)) for a in new])
        flat = xp.where(keep, flat_new[flat_new.shape[0] - flat_old.shape[0]:], flat_old)
        views, offset = [], 0
        for a in old:
            size = math.prod(a.shape)
            views.append(xp.reshape(flat[offset:offset + size], a.shape))
            offset += size
        n = len(keys)
        model.params = dict(zip(keys, views[:n], strict=True))
        for j, s in enumerate(slots):
            state[s] = dict(zip(grads, views[n + j * len(grads):n + (j + 1) * len(grads)],
                                strict=True))
        self._own_flat, self._own_views = flat, views
        return keep

    def _kept(self) -> int:
        """Steps of this epoch kept so far (a sync); sets the counts back for the others."""
        kept = int(to_numpy(self.acc)[3])
        dropped = self._ran - kept - self._uncounted
        if dropped > 0:
            state = self.optimizer.state
            state["step"] -= dropped
            state["steps"] = {k: max(n - dropped, 0) for k, n in state["steps"].items()}
            self._uncounted += dropped
        return kept

    def running(self) -> dict[str, Any]:
        """The running sums, read from the device (one sync)."""
        self._kept()
        acc = to_numpy(self.acc)
        return {"run_loss": self.run_loss + float(acc[0]),
                "run_correct": self.run_correct + float(acc[1]),
                "seen": self.seen + int(acc[2])}

    def poll(self) -> bool:
        """Read the flag (a sync); raise or stop per the policy. True when training stops."""
        kept = self._kept()
        if self.policy == "skip" or bool(self.good):
            return False
        k = (self._first or 0) + kept  # the kept steps are those before the first bad one
        if self.policy == "raise":
            raise NonFiniteLossError(self.epoch + 1, k + 1, "loss, gradient or " + _UPDATE)
        self.stopped = True
        return True

    def end_epoch(self, n: int) -> int:
        """Count skipped steps (a sync) and return the rows the epoch's means cover."""
        kept = self._kept()
        if self.policy == "skip":
            self.skipped += self._ran - kept
        return self.seen + int(to_numpy(self.acc)[2])
