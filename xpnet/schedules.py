"""Learning-rate schedules: pure functions of the optimizer step (0-based).

A schedule is any callable ``step -> float``. The classes here also describe
themselves as JSON (``get_config``) so checkpoints can rebuild them, and as
short text (``describe``) for logs: ``cosine(0.002 -> 0, 420 steps)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from ._registry import Registry

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "LinearWarmup",
    "get_schedule",
    "schedule_from_config",
    "schedule_to_config",
    "register_schedule",
    "describe_lr",
]


def _check_positive(name: str, value: float, *, allow_zero: bool = False,
                    most: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be in {'[' if allow_zero else '('}0, {most:g}], "
                         f"got {value!r}")
    return float(value)


def _check_steps(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class Schedule:
    """Base class: ``schedule(step)`` returns the learning rate for that step.

    Subclasses implement ``__call__`` and [`get_config`][xpnet.schedules.Schedule.get_config] (their
    constructor arguments), so that checkpoints can rebuild them.

    Examples
    --------
    >>> import xpnet as xn
    >>> class Halving(xn.schedules.Schedule):
    ...     def __init__(self, lr):
    ...         self.lr = lr
    ...     def __call__(self, step):
    ...         return self.lr / 2**step
    ...     def get_config(self):
    ...         return {"lr": self.lr}
    >>> h = Halving(1.0)
    >>> h(3), h
    (0.125, Halving(lr=1.0))
    """

    _arguments: tuple[str, ...] = ()
    # the constructor's arguments, each held in the attribute of its name: what the
    # default get_config returns

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        """Constructor arguments for checkpoints.

        The built-in schedules return their constructor's arguments as they were
        given; a subclass with constructor arguments of its own overrides it to
        return them, as the class example does.

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal schedule.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.StepDecay(0.1, step_size=100).get_config()
        {'lr': 0.1, 'step_size': 100, 'gamma': 0.1}
        """
        return {name: getattr(self, name) for name in self._arguments}

    def describe(self) -> str:
        """Short text for logs and the optimizer's ``repr`` (default: the ``repr``).

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.LinearWarmup(xn.CosineDecay(0.002, total_steps=420), warmup_steps=20).describe()
        'warmup(20 steps) then cosine(0.002 -> 0, 420 steps)'
        """
        return repr(self)

    def __repr__(self) -> str:
        # show nested schedules as themselves, not as their config dicts
        cfg = {k: getattr(self, k, v) if isinstance(v, dict) else v
               for k, v in self.get_config().items()}
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The same learning rate at every step.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.

    Examples
    --------
    >>> Constant(0.1)(1000)
    0.1
    """

    _arguments = ("lr",)

    def __init__(self, lr: float):
        self.lr = _check_positive("lr", lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def describe(self) -> str:
        """The rate itself, e.g. ``0.001``."""
        return repr(self.lr)


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps.

    Parameters
    ----------
    lr : float
        The rate of the first ``step_size`` steps, > 0.
    step_size : int
        Steps between two reductions, > 0.
    gamma : float
        The factor of each reduction, > 0.

    Examples
    --------
    >>> StepDecay(1.0, step_size=10, gamma=0.5)(25)
    0.25
    """

    _arguments = ("lr", "step_size", "gamma")

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        self.lr = _check_positive("lr", lr)
        self.step_size = _check_steps("step_size", step_size)
        self.gamma = _check_positive("gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)

    def describe(self) -> str:
        """E.g. ``step(0.1 x0.5 every 10 steps)``."""
        return f"step({self.lr:g} x{self.gamma:g} every {self.step_size} steps)"


class ExponentialDecay(Schedule):
    """``lr * gamma ** step``: smooth exponential decay per step.

    Parameters
    ----------
    lr : float
        The rate at step 0, > 0.
    gamma : float
        Per-step factor in (0, 1].

    Examples
    --------
    >>> round(ExponentialDecay(1.0, gamma=0.5)(2), 6)
    0.25
    """

    _arguments = ("lr", "gamma")

    def __init__(self, lr: float, gamma: float):
        self.lr = _check_positive("lr", lr)
        self.gamma = _check_positive("gamma", gamma, most=1.0)

    def __call__(self, step: int) -> float:
        return self.lr * self.gamma**step

    def describe(self) -> str:
        """E.g. ``exponential(0.1 x0.99 per step)``."""
        return f"exponential({self.lr:g} x{self.gamma:g} per step)"


class CosineDecay(Schedule):
    """Cosine annealing from ``lr`` to ``min_lr`` over ``total_steps``, then flat.

    Parameters
    ----------
    lr : float
        The rate at step 0, > 0.
    total_steps : int
        Steps to reach ``min_lr``, > 0; the rate stays there after.
    min_lr : float
        The final rate, in ``[0, lr]``.

    Examples
    --------
    >>> CosineDecay(1.0, total_steps=10)(10)
    0.0
    """

    _arguments = ("lr", "total_steps", "min_lr")

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0):
        self.lr = _check_positive("lr", lr)
        self.total_steps = _check_steps("total_steps", total_steps)
        self.min_lr = _check_positive("min_lr", min_lr, allow_zero=True)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr ({self.lr!r}), got {min_lr!r}")

    def __call__(self, step: int) -> float:
        t = min(step, self.total_steps) / self.total_steps
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * t))

    def describe(self) -> str:
        """E.g. ``cosine(0.002 -> 0, 420 steps)``."""
        return f"cosine({self.lr:g} -> {self.min_lr:g}, {self.total_steps} steps)"


class LinearWarmup(Schedule):
    """Ramp linearly up to ``after(warmup_steps)`` over the first steps, then follow ``after``.

    Parameters
    ----------
    after : Schedule or float
        The schedule to follow after warm-up (a float means constant).
    warmup_steps : int
        Number of warm-up steps; step ``warmup_steps`` is ``after(0)``.
    start_factor : float
        In ``[0, 1]``. During warm-up the rate at step ``s`` is ``after(0) * (f + (1 - f)
        * (s + 1) / (warmup_steps + 1))`` with ``f = start_factor``, so it never starts
        at exactly zero and rises to ``after(0)`` in equal steps.

    Examples
    --------
    >>> w = LinearWarmup(1.0, warmup_steps=4)
    >>> [round(w(s), 6) for s in range(6)]
    [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    """

    def __init__(self, after: Schedule | float, warmup_steps: int, start_factor: float = 0.0):
        self.after = get_schedule(after)
        self.warmup_steps = _check_steps("warmup_steps", warmup_steps)
        self.start_factor = _check_positive("start_factor", start_factor, allow_zero=True,
                                            most=1.0)

    def __call__(self, step: int) -> float:
        if step >= self.warmup_steps:
            return self.after(step - self.warmup_steps)
        frac = self.start_factor + (1.0 - self.start_factor) * (step + 1) / (self.warmup_steps + 1)
        return self.after(0) * frac

    def get_config(self) -> dict:
        """Constructor arguments; ``after`` as a nested schedule config."""
        return {"after": schedule_to_config(self.after), "warmup_steps": self.warmup_steps,
                "start_factor": self.start_factor}

    def describe(self) -> str:
        """E.g. ``warmup(20 steps) then cosine(0.002 -> 0, 420 steps)``."""
        return f"warmup({self.warmup_steps} steps) then {describe_lr(self.after)}"


_SCHEDULES = Registry("schedule", "schedules.register_schedule", Schedule)
for _cls in (Constant, StepDecay, ExponentialDecay, CosineDecay, LinearWarmup):
    _SCHEDULES.add(_cls.__name__, _cls, builtin=True)


def register_schedule(cls: type[Schedule]) -> type[Schedule]:
    """Register a [`Schedule`][xpnet.schedules.Schedule] subclass
    so that checkpoints can rebuild it.

    It works as [`register_layer`][xpnet.layers.register_layer] does: by class name,
    as a decorator that returns ``cls``, one class per name, and a ``get_config()``
    that returns the constructor arguments. A subclass of a built-in schedule needs
    registering too, under its own name. A plain function works as a schedule as
    well, but an optimizer using one is saved with
    ``xn.save(model, path, optimizer=False)`` only.

    Parameters
    ----------
    cls : type
        A [`Schedule`][xpnet.schedules.Schedule] subclass.

    Examples
    --------
    A step decay with a floor; it keeps [`StepDecay`][xpnet.schedules.StepDecay]'s
    constructor and ``get_config``:

    >>> import xpnet as xn
    >>> @xn.schedules.register_schedule
    ... class FlooredStep(xn.StepDecay):
    ...     def __call__(self, step):
    ...         return max(super().__call__(step), 1e-4)
    >>> cfg = xn.schedules.schedule_to_config(FlooredStep(0.1, step_size=10))
    >>> cfg["class"], xn.schedules.schedule_from_config(cfg)(50)
    ('FlooredStep', 0.0001)
    """
    return _SCHEDULES.register(cls)


def describe_lr(lr: Any) -> str:
    """Short text for a learning rate: a schedule's ``describe()``, a function's name.

    Parameters
    ----------
    lr : float, Schedule or callable

    Returns
    -------
    str

    Examples
    --------
    >>> import xpnet as xn
    >>> def warm(step):
    ...     return 1e-3 * min(1.0, (step + 1) / 100)
    >>> xn.schedules.describe_lr(warm), xn.schedules.describe_lr(lambda s: 0.1)
    ('warm(step)', 'lambda(step)')
    >>> xn.schedules.describe_lr(xn.CosineDecay(0.002, total_steps=420))
    'cosine(0.002 -> 0, 420 steps)'
    """
    if isinstance(lr, Schedule):
        return lr.describe()
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return repr(float(lr))
    name = getattr(lr, "__name__", None)
    if isinstance(name, str):
        return ("lambda" if name == "<lambda>" else name) + "(step)"
    return repr(lr) if type(lr).__repr__ is not object.__repr__ else type(lr).__name__


def get_schedule(lr: float | Callable[[int], float]) -> Schedule | Callable[[int], float]:
    """Turn a float or a callable into a schedule.

    Parameters
    ----------
    lr : float, Schedule or callable
        A number becomes [`Constant`][xpnet.schedules.Constant]; a callable
        ``step -> float`` is used as is.

    Returns
    -------
    Schedule or callable

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.schedules.get_schedule(0.1)
    Constant(lr=0.1)
    >>> xn.schedules.get_schedule(lambda step: 0.1 / (step + 1))(4)
    0.02
    """
    if isinstance(lr, Schedule) or (callable(lr) and not isinstance(lr, (int, float))):
        return lr
    return Constant(lr)


def schedule_to_config(s: Any) -> dict:
    """Describe a schedule as JSON (``{"class": ..., "config": ...}``).

    Parameters
    ----------
    s : Schedule
        A built-in or registered schedule; plain callables cannot be described.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        For a callable that is not a built-in or registered [`Schedule`][xpnet.schedules.Schedule].

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.schedules.schedule_to_config(xn.ExponentialDecay(0.1, gamma=0.99))
    {'class': 'ExponentialDecay', 'config': {'lr': 0.1, 'gamma': 0.99}}
    """
    if isinstance(s, Schedule):
        if _SCHEDULES.get(type(s).__name__) is not type(s):
            raise ValueError(f"the schedule {describe_lr(s)} cannot be saved: "
                             f"{type(s).__name__} is not registered (register it with "
                             "xpnet.schedules.register_schedule)")
        return {"class": type(s).__name__, "config": s.get_config()}
    raise ValueError(f"the schedule {describe_lr(s)} is a function, which cannot be saved; "
                     "use a Schedule class (built-in or registered) to save it")


def schedule_from_config(cfg: dict) -> Schedule:
    """Rebuild a schedule from [`schedule_to_config`][xpnet.schedules.schedule_to_config] output.

    Parameters
    ----------
    cfg : dict

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError
        For an unknown class or a malformed config.

    Examples
    --------
    >>> import xpnet as xn
    >>> s = xn.LinearWarmup(xn.CosineDecay(0.1, total_steps=50), warmup_steps=5)
    >>> twin = xn.schedules.schedule_from_config(xn.schedules.schedule_to_config(s))
    >>> twin.after, all(twin(i) == s(i) for i in (0, 5, 30))
    (CosineDecay(lr=0.1, total_steps=50, min_lr=0.0), True)
    """
    cls = _SCHEDULES.get(cfg["class"]) if isinstance(cfg, dict) and isinstance(
        cfg.get("class"), str) else None
    if cls is None:
        raise ValueError(f"unknown schedule config {cfg!r}")
    kwargs = dict(cfg.get("config", {}))
    if "after" in kwargs:
        kwargs["after"] = schedule_from_config(kwargs["after"])
    return cls(**kwargs)
