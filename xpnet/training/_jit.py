"""The whole training step as one compiled function on JAX (``jax.jit``).

On JAX every array operation is a separate dispatch when run eagerly; a W2 step is
about 60 of them, which made ``fit`` on JAX about 3x the same job written natively with
``jax.jit``. [`JitStep`][xpnet.training._jit.JitStep] traces the model's own forward,
loss, backward and the optimizer's reference rule once per fit shape into one pure
function of the parameters, slots and buffers (donated on a GPU: their memory holds
the new values), the batch, and the window's learning rates and update counts; it returns the
new values, the loss, the correct count and a code (0: kept; else why it was refused).
The new values are those of the step where every loss, parameter, slot and buffer
value is finite and the old ones elsewhere (the guard's ``where`` inside the same
compiled kernel), so the host never waits on a step: the codes are read every
``WINDOW`` steps, at the epoch's end and whenever the guard is asked (a display, a
callback reading the running logs). Which learning rate and Adam count a step uses
follow from the steps kept before it in the window, on the device, so a refused step
changes nothing, not the counts or the schedule; under ``raise`` and ``stop`` the steps
after a refused one change nothing either, and the host applies the policy at the
refused step when it reads the codes.

Used by the [`Trainer`][xpnet.training.Trainer] for JAX models on one process, without
gradient hooks, on data already on JAX, when every layer, the loss and the optimizer are
xpnet's own classes: a user's class may keep Python state (a call counter) that a trace
would run once instead of at every step, so such a fit keeps the eager step. The layers'
buffers (BatchNorm's running statistics) are inputs and outputs of the step like the
parameters: their new values are kept where the step is finite. Dropout's
uniform draws are made on the host from the trainer's generator exactly as the eager
step makes them (the same calls in the same order, found by tracing the forward pass
once) and passed in. The gradients' keys and shapes are checked as the step is traced.
A fit whose first step does not compile runs eagerly. On a GPU only arrays that this
fit's steps made are donated: one the model held before the fit, or one assigned to it
during the fit, is copied first (so a caller holding it keeps its values); one read from
``model.params`` or the optimizer's state during the fit is deleted by the next step.
On a CPU nothing is donated.
``XPNET_JAX_JIT=0`` turns it off (the tests compare both).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import numpy as np

from ..backends import env_flag
from ..ops import ops_for
from .guards import _BUFFERS, _UPDATE, HostGuard

_log = logging.getLogger("xpnet")
# model -> {key: compiled step}: a fit after a fit reuses the compiled step
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DONATE_ON_CPU = False  # the tests set it to run a GPU's donating step on a CPU
_WHY = ("loss", _BUFFERS, "gradient", _UPDATE)  # a refused step's code - 1: the cause


def _settings_key(optimizer: Any) -> tuple:
    """The optimizer's settings that the trace bakes in (the learning rate is an input;
    the parameter groups' scales and decays are constants of the trace, in ``_groups``)."""
    plain = (bool, int, float, str, tuple, frozenset, type(None))
    return (type(optimizer), tuple(sorted(
        (k, v) for k, v in vars(optimizer).items()
        if k not in ("lr", "state") and isinstance(v, plain))))


class JitStep:
    """One compiled training step for a JAX model (see the module docstring)."""

    WINDOW = 64  # the most steps whose flags are read together

    def __init__(self, trainer: Any):
        import jax

        self.jax = jax
        self.trainer = trainer
        model, opt = trainer.model, trainer.optimizer
        self.keys = tuple(model.trainable_keys)
        key = (_settings_key(opt), repr(model.loss), self.keys,
               tuple(repr(layer) for layer in model.layers))
        cache = _CACHE.setdefault(model, {})
        if key not in cache:
            cache.clear()  # one compiled step per model: the settings of the last fit
            # donated off the CPU only: there it saves a second copy of the parameters and
            # slots in the device's memory; on a CPU it measured no faster, and a held
            # array read during the fit would be deleted by the next step
            donate = _DONATE_ON_CPU or getattr(model.backend.device, "platform", "cpu") != "cpu"
            cache[key] = jax.jit(self._pure, static_argnames=("rows",),
                                 donate_argnums=(0, 1, 2, 3) if donate else ())
        self.fn = cache[key]
        self.tried = False
        self.plans: dict[int, list] = {}
        self.stochastic = any(layer.stochastic for layer in model.layers)
        self.pending: list[tuple[int, int]] = []  # (k, rows) of the steps not read yet
        self.window: tuple | None = None  # (learning rates, counts, halt) of this window
        self.made: dict[str, dict] = {}  # the arrays this fit's steps made (may be donated)
        g = trainer.guard
        trainer.guard = _LazyGuard(g.policy, g.ops, g.xp, g.model, g.optimizer)
        trainer.guard.jit = self

    @staticmethod
    def usable(trainer: Any) -> bool:
        """Whether this fit can run the compiled step."""
        model = trainer.model
        return (env_flag("XPNET_JAX_JIT", True) and model.backend.name == "jax"
                and trainer.comm.size == 1 and not trainer.grad_hooks
                and isinstance(trainer.guard, HostGuard)
                and all(_on_jax(a) for a in (trainer.X, trainer.y, trainer.sample_weight))
                and _ours(model.loss) and _ours(trainer.optimizer)
                and all(_ours(layer) for layer in model.layers))

    def _pure(self, trained: dict, slots: dict, buffers: dict, carry: tuple, frozen: dict,
              window: tuple, lo: Any, perm: Any, X: Any, y: Any, weight: Any, masks: tuple,
              rows: int) -> tuple:
        """The step as a pure function of its inputs (traced by ``jax.jit``): the batch's
        ``rows`` rows from ``lo`` (of ``perm`` when shuffled), the dropout draws made on
        the host; ``carry`` (steps kept and run in this window, no step refused yet, and
        each step's loss, correct count and code) picks the learning rate and the update
        numbers from ``window``."""
        jax = self.jax
        xp = jax.numpy
        model, opt = self.trainer.model, self.trainer.optimizer
        idx = None if perm is None else jax.lax.dynamic_slice_in_dim(perm, lo, rows)

        def batch(a: Any) -> Any:
            if a is None:
                return None
            if idx is None:
                return jax.lax.dynamic_slice_in_dim(a, lo, rows)
            return xp.take(a, idx, axis=0)

        xb, yb, wb = batch(X), batch(y), batch(weight)
        saved = model._params, model._buffers
        model._params = {k: trained[k] if k in trained else frozen[k] for k in saved[0]}
        model._buffers = buffers
        new_buffers: dict = {}
        try:
            # the gradients' keys and shapes are checked as the step is traced
            value, grads, out = model._loss_grads_out(xb, yb, model.loss, train=True,
                                                      rng=_Replay(masks), weight=wb,
                                                      check_grads=True,
                                                      new_buffers=new_buffers)
        finally:
            model._params, model._buffers = saved
        kept, good, ran, log = carry
        rates, counts, halt = window
        ts = counts + kept.astype(counts.dtype) + 1  # each parameter's update number
        new, new_slots = opt._reference(
            {k: trained[k] for k in grads}, opt.clip_grads(grads), slots, rates[kept],
            {k: ts[i] for i, k in enumerate(self.keys)}, None)
        fine = [xp.isfinite(value), _finite(xp, new_buffers.values()),
                _finite(xp, [*new.values(), *(v for s in new_slots.values()
                                              for v in s.values())])]
        ok = fine[0] & fine[1] & fine[2]
        keep = ok & good
        # why a step was refused, as the host guard names it (loss, buffers, gradient,
        # update); the gradients are read only when the step is refused
        bad_grads = jax.lax.cond(ok, lambda: xp.asarray(False),
                                 lambda: ~_finite(xp, grads.values()))
        code = xp.where(keep, 0, xp.argmax(xp.stack([~fine[0], ~fine[1], bad_grads,
                                                     xp.asarray(True)])) + 1)
        new = {k: xp.where(keep, v, trained[k]) for k, v in new.items()}
        new_slots = {s: {k: xp.where(keep, v, slots[s][k]) for k, v in new_slots[s].items()}
                     for s in opt.slots}
        new_buffers = {k: xp.where(keep, new_buffers[k], v) if k in new_buffers else v
                       for k, v in buffers.items()}
        correct = model.loss.count_correct(out, yb)
        row = [value, xp.asarray(0) if correct is None else correct, code]
        log = log.at[ran].set(xp.stack([xp.asarray(v, dtype=log.dtype) for v in row]))
        carry = (kept + keep.astype(kept.dtype), good & (keep | ~halt), ran + 1, log)
        return new, new_slots, new_buffers, carry, value, correct

    def _masks(self, rows: int) -> tuple | None:
        """The uniform draws of the step's dropout masks, made on the host from the
        trainer's generator as the eager step makes them (same calls, same order); None
        when a layer asks its generator for something else (that fit keeps the eager
        step)."""
        model = self.trainer.model
        if not self.stochastic:
            return ()
        plan = self.plans.get(rows)
        if plan is None:
            rec = _Recorder(self.jax.numpy)
            spec = self.jax.ShapeDtypeStruct((rows, model.in_features),
                                             model.backend.dtype(model.dtype_name))
            try:
                self.jax.eval_shape(lambda x: model._forward(x, train=True, rng=rec), spec)
            except Exception as exc:  # noqa: BLE001 - a generator call not recorded
                self._eager(exc)
                return None
            plan = self.plans[rows] = rec.calls
        rng, backend = self.trainer.dropout_rng, model.backend
        ops = ops_for(backend)  # the draws keep_mask makes; the mask is made in the step
        return tuple(ops.uniform(rng, shape, dtype, backend) for shape, _, dtype in plan)

    def _open(self, k: int) -> None:
        """Start a window of steps from step ``k``: the host's step counts and the
        learning rates of the updates to come, on the device."""
        trainer, jnp = self.trainer, self.jax.numpy
        model, opt = trainer.model, trainer.optimizer
        state, params = opt.state, model._params
        opt._aligned({key: params[key] for key in self.keys}, state, in_place=True,
                     params=params)
        step, dtype = int(state["step"]), model.backend.dtype(model.dtype_name)
        # the steps left in the epoch; the table keeps one shape (its tail is never read)
        rates = [opt.learning_rate(step + j) for j in range(min(self.WINDOW, trainer.steps - k))]
        rates += rates[-1:] * (self.WINDOW - len(rates))
        halt = trainer.guard.policy != "skip"  # raise, stop: no step after a refused one
        self.window = (jnp.asarray(rates, dtype=dtype),
                       jnp.asarray([state["steps"][key] for key in self.keys], dtype=dtype),
                       jnp.asarray(halt))
        self.carry = (jnp.asarray(0, dtype=jnp.int32), jnp.asarray(True),
                      jnp.asarray(0, dtype=jnp.int32), jnp.zeros((self.WINDOW, 3), dtype=dtype))

    def _mine(self, role: str, values: dict, keys: Any) -> dict:
        """``values`` at ``keys``; an array this fit's step did not make is copied, so
        that only those are donated (an array held from before the fit stays valid)."""
        made = self.made.get(role, {})
        return {k: values[k] if values[k] is made.get(k) else self.jax.numpy.array(
            values[k], copy=True) for k in keys}

    def step(self, k: int, perm: Any) -> bool | None:
        """Run the compiled step on batch ``k`` without reading its flag; False when the
        policy stopped training, None when the caller must run this step the ordinary
        way (one that does not compile: then never again in this fit)."""
        trainer = self.trainer
        if trainer.guard.stopped:
            return False
        model, opt = trainer.model, trainer.optimizer
        lo, hi, rows = trainer._span(k)
        masks = self._masks(hi - lo)
        if masks is None:
            return None
        if self.window is None:
            self._open(k)
        params, state = model._params, opt.state
        trained = self._mine("params", params, self.keys)
        slots = {s: self._mine(s, state[s], self.keys) for s in opt.slots}
        buffers = self._mine("buffers", model._buffers, model._buffers)
        frozen = {key: v for key, v in params.items() if key not in trained}
        args = (trained, slots, buffers, self.carry, frozen, self.window, np.int32(lo), perm,
                trainer.X, trainer.y, trainer.sample_weight, masks, hi - lo)
        try:
            out = self.fn(*args)
        except Exception as exc:  # noqa: BLE001 - a first step that does not compile: eagerly
            if self.tried:
                raise
            self._eager(exc)
            return None
        self.tried = True
        new, new_slots, new_buffers, self.carry, value, correct = out
        dict.update(params, new)  # the donated arrays are replaced everywhere they live
        dict.update(model._buffers, new_buffers)
        for s in opt.slots:
            state[s].update(new_slots[s])
        self.made = {"params": new, "buffers": new_buffers, **new_slots}
        self.pending.append((k, rows))
        state["step"] += 1  # counted as kept until the flags are read
        state["steps"] = {key: n + 1 for key, n in state["steps"].items()}
        trainer.current = trainer._values(k, rows, value, correct)
        trainer.step_done = k + 1
        if len(self.pending) == self.WINDOW:
            self.flush()
        return not trainer.guard.stopped

    def _eager(self, exc: Exception) -> None:
        """Hand this fit back to the eager step (every flag read first), logging why."""
        _log.debug("the compiled JAX step is not used for this fit (%s: %s)",
                   type(exc).__name__, exc)
        self.flush()
        self.trainer._jit = None

    def flush(self) -> None:
        """Read the flags of the steps run since the last read (one sync): record the
        kept steps' loss and count, set the step counts back by the steps not kept, and
        pass the first refused step to the guard's policy (raise, stop, or count a skip)."""
        pending, self.pending, self.window = self.pending, [], None
        if not pending:
            return
        trainer = self.trainer
        guard, state = trainer.guard, trainer.optimizer.state
        kept = 0
        try:
            log = np.asarray(self.carry[3])[:len(pending)]
            for (k, rows), (value, correct, code) in zip(pending, log, strict=True):
                if not code:
                    guard.record(value, correct, rows)
                    kept += 1
                elif not guard._bad(k, _WHY[int(code) - 1]):  # "stop": from this step
                    trainer.step_done = k
                    break
        finally:
            dropped = len(pending) - kept
            state["step"] -= dropped
            state["steps"] = {key: n - dropped for key, n in state["steps"].items()}


class _LazyGuard(HostGuard):
    """The host guard of a compiled fit: the steps' flags are read (by
    [`JitStep.flush`][xpnet.training._jit.JitStep.flush]) before it answers."""

    jit: JitStep  # (a fit that falls back to the eager step has read every flag first)

    def running(self) -> dict[str, Any]:
        self.jit.flush()
        return super().running()

    def poll(self) -> bool:
        self.jit.flush()
        return self.stopped

    def end_epoch(self, n: int) -> int:
        self.jit.flush()
        return self.seen


class _Recorder:
    """Stands for the generator while the forward pass is traced once: records the
    dropout masks asked for (shape, keep, dtype) and hands out ones."""

    def __init__(self, xp: Any):
        self.xp = xp
        self.calls: list[tuple] = []

    def keep_mask(self, shape: tuple, keep: float, backend: Any, dtype: Any) -> Any:
        self.calls.append((tuple(shape), keep, dtype))
        return self.xp.ones(shape, dtype=dtype)


class _Replay:
    """Stands for the generator inside the compiled step: makes each dropout mask from
    the uniform draws made on the host, in the order the forward pass asks for them
    (the arithmetic of [`RNG.keep_mask`][xpnet.random.RNG.keep_mask])."""

    def __init__(self, draws: tuple):
        self.draws = list(draws)

    def keep_mask(self, shape: tuple, keep: float, backend: Any, dtype: Any) -> Any:
        xp = backend.xp
        scale = xp.asarray(1.0 / keep, dtype=dtype)
        return xp.where(self.draws.pop(0) < keep, scale, xp.asarray(0.0, dtype=dtype))


def _ours(obj: Any) -> bool:
    """Whether ``obj`` (a layer, loss or optimizer) and the layers it holds are xpnet's
    own: pure code that a trace runs as the eager step does. A class of the user's may
    keep Python state (a call counter, a list of what it saw) that a trace would run
    once instead of at every step, so its fit keeps the eager step."""
    if type(obj).__module__.split(".")[0] != "xpnet":
        return False
    from ..layers import Layer

    for value in getattr(obj, "__dict__", {}).values():
        held = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, Layer) and not _ours(v) for v in held):
            return False
    return True


def _on_jax(a: Any) -> bool:
    """None, or an array already on JAX (a host array would be copied in at every step)."""
    return a is None or type(a).__module__.startswith("jax")


def _finite(xp: Any, arrays: Any) -> Any:
    """One flag: every value of every array finite (True for none). ``sum(a - a)`` is 0,
    or NaN where ``a`` holds an inf or NaN: one fused pass on XLA's CPU backend, where
    ``all(isfinite(a))`` writes a mask and reduces it in two more."""
    ok = xp.asarray(True)
    for a in arrays:
        ok = ok & xp.isfinite(xp.sum(a - a))
    return ok
