"""The whole training step as one compiled function on JAX (``jax.jit``).

On JAX every array operation is a separate dispatch when run eagerly; a W2 step is
about 60 of them, which made ``fit`` on JAX about 3x the same job written natively with
``jax.jit``. [`JitStep`][xpnet.training._jit.JitStep] traces the model's own forward,
loss, backward and the optimizer's reference rule once per fit shape into one pure
function ``(params, slots, lr, counts, X, y, weight) -> (new params, new slots, loss,
correct, finite)``; the new values are those of the step where every loss, parameter
and slot value is finite and the old ones elsewhere (the guard's ``where`` inside the
same compiled kernel). When the flag says a step was not finite, nothing was changed
and the trainer runs that step again through the ordinary guarded path, which names
the cause and applies the policy (raise, stop, skip) exactly as on every backend.

Used by the [`Trainer`][xpnet.training.Trainer] for JAX models on one process, without
gradient hooks, on data already on JAX, when every layer, the loss and the optimizer are
xpnet's own classes: a user's class may keep Python state (a call counter) that a trace
would run once instead of at every step, so such a fit keeps the eager step. The layers'
buffers (BatchNorm's running statistics) are inputs and outputs of the step like the
parameters: their new values are kept where the step is finite. Dropout's
uniform draws are made on the host from the trainer's generator exactly as the eager
step makes them (the same calls in the same order, found by tracing the forward pass
once) and passed in. The gradients' keys and shapes are checked as the step is traced.
A fit whose first step does not compile runs eagerly.
``XPNET_JAX_JIT=0`` turns it off (the tests compare both).
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any

import numpy as np

from ..ops import ops_for

_log = logging.getLogger("xpnet")
# model -> {key: compiled step}: a fit after a fit reuses the compiled step
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _enabled() -> bool:
    return os.environ.get("XPNET_JAX_JIT", "1").strip().lower() not in ("0", "false", "no",
                                                                          "off")


def _settings_key(optimizer: Any) -> tuple:
    """The optimizer's settings that the trace bakes in (the learning rate is an input;
    the parameter groups' scales and decays are constants of the trace, in ``_groups``)."""
    plain = (bool, int, float, str, tuple, frozenset, type(None))
    return (type(optimizer), tuple(sorted(
        (k, v) for k, v in vars(optimizer).items()
        if k not in ("lr", "state") and isinstance(v, plain))))


class JitStep:
    """One compiled training step for a JAX model (see the module docstring)."""

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
            cache[key] = jax.jit(self._pure, static_argnames=("rows",))
        self.fn = cache[key]
        self.tried = False
        self.plans: dict[int, list] = {}
        self.stochastic = any(layer.stochastic for layer in model.layers)

    @staticmethod
    def usable(trainer: Any) -> bool:
        """Whether this fit can run the compiled step."""
        model = trainer.model
        return (_enabled() and model.backend.name == "jax" and trainer.comm.size == 1
                and not trainer.grad_hooks and isinstance(trainer.guard, _host_guard())
                and all(_on_jax(a) for a in (trainer.X, trainer.y, trainer.sample_weight))
                and _ours(model.loss) and _ours(trainer.optimizer)
                and all(_ours(layer) for layer in model.layers))

    def _pure(self, params: dict, slots: dict, hyper: Any, lo: Any, perm: Any, X: Any,
              y: Any, weight: Any, masks: tuple, rows: int, buffers: dict) -> tuple:
        """The step as a pure function of its inputs (traced by ``jax.jit``): the batch's
        ``rows`` rows from ``lo`` (of ``perm`` when shuffled), the learning rate and the
        parameters' update numbers in ``hyper``, the dropout draws made on the host."""
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
        model._params, model._buffers = params, buffers
        new_buffers: dict = {}
        try:
            # the gradients' keys and shapes are checked as the step is traced
            value, grads, out = model._loss_grads_out(xb, yb, model.loss, train=True,
                                                      rng=_Replay(masks), weight=wb,
                                                      check_grads=True,
                                                      new_buffers=new_buffers)
        finally:
            model._params, model._buffers = saved
        trained = {k: params[k] for k in grads}
        counts = {k: hyper[i + 1] for i, k in enumerate(self.keys)}
        state = {s: slots[s] for s in opt.slots}
        new, new_slots = opt._reference(trained, opt.clip_grads(grads), state, hyper[0],
                                        counts, None)
        ok = xp.isfinite(value)
        for a in [*new.values(), *(v for s in opt.slots for v in new_slots[s].values()),
                  *new_buffers.values()]:
            ok = ok & xp.all(xp.isfinite(a))
        new = {k: xp.where(ok, v, trained[k]) for k, v in new.items()}
        new_slots = {s: {k: xp.where(ok, v, slots[s][k]) for k, v in new_slots[s].items()}
                     for s in opt.slots}
        new_buffers = {k: xp.where(ok, v, buffers[k]) for k, v in new_buffers.items()}
        return new, new_slots, new_buffers, value, model.loss.count_correct(out, yb), ok

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
                _log.debug("the compiled JAX step is not used for this fit (%s: %s)",
                           type(exc).__name__, exc)
                return None
            plan = self.plans[rows] = rec.calls
        rng, backend = self.trainer.dropout_rng, model.backend
        ops = ops_for(backend)  # the draws keep_mask makes; the mask is made in the step
        return tuple(ops.uniform(rng, shape, dtype, backend) for shape, _, dtype in plan)

    def step(self, k: int, perm: Any) -> tuple[Any, Any, int] | None:
        """Run the compiled step on batch ``k``; ``(loss, correct, rows)`` when it was
        applied, None when the caller must run this step the ordinary way (a step that
        was not finite, or one that does not compile: then never again in this fit)."""
        trainer = self.trainer
        model, opt = trainer.model, trainer.optimizer
        state = opt.state
        params = model._params
        opt._aligned({k: params[k] for k in self.keys}, state, in_place=True, params=params)
        step = int(state["step"])
        steps = state["steps"]
        hyper = np.asarray([opt.learning_rate(step), *(steps[k] + 1 for k in self.keys)],
                           dtype=model.dtype_name)
        lo, hi, rows = trainer._span(k)
        slots = {s: {k: state[s][k] for k in self.keys} for s in opt.slots}
        masks = self._masks(hi - lo)
        if masks is None:
            trainer._jit = None
            return None
        args = (dict(params), slots, hyper, np.int32(lo), perm, trainer.X, trainer.y,
                trainer.sample_weight, masks, hi - lo, dict(model.buffers))
        if self.tried:
            out = self.fn(*args)
        else:
            self.tried = True
            try:
                out = self.fn(*args)
            except Exception as exc:  # noqa: BLE001 - any trace failure: run eagerly
                _log.debug("the compiled JAX step is not used for this fit (%s: %s)",
                           type(exc).__name__, exc)
                trainer._jit = None
                return None
        new, new_slots, new_buffers, value, correct, ok = out
        if not bool(ok):
            return None
        params.update(new)
        if new_buffers:
            dict.update(model.buffers, new_buffers)
        for s in opt.slots:
            state[s].update(new_slots[s])
        state["step"] = step + 1
        for k in self.keys:
            steps[k] += 1
        return value, correct, rows


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


def _host_guard() -> type:
    from .guards import HostGuard

    return HostGuard
