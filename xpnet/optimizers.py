"""Optimizers as pure updates: ``params, state = opt.update(params, grads, state)``.

``update`` rebinds arrays (it never mutates its inputs), so immutable
namespaces work. The formulas follow ``torch.optim`` exactly (tested against
it), so published hyper-parameters carry over.

Each rule is written once here, as the reference: the optimizer's
``_update_one``. Faster versions of it (NumPy ufunc chunks, numba, CUDA) live
in [`xpnet.ops.kernels`][], registered for the exact class, and give the
reference's bits (tested); a subclass runs its own ``_update_one``.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

from . import _param_groups
from ._registry import Registry, _differing_value
from .backends import _namespace_of as _xp
from .ops import ops_of
from .schedules import (
    Constant,
    describe_lr,
    get_schedule,
    schedule_from_config,
    schedule_to_config,
)

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "clip_by_global_norm",
    "clip_by_value",
    "global_norm",
    "get_optimizer",
    "optimizer_from_config",
    "register_optimizer",
    "OPTIMIZERS",
]

Params = dict[str, Any]
#: A learning rate: a positive float, or a schedule ``step -> lr`` (step counts from 0).
LearningRate = float | Callable[[int], float]
#: Which parameters weight decay applies to: ``"all"``, ``"weights"`` (arrays of two or
#: more dimensions), a collection of parameter keys, or a function ``key -> bool``.
DecayMask = str | Callable[[str], bool] | list | tuple | set | frozenset


def _finite(name: str, value: Any, *, low: float = 0.0, high: float | None = None,
            low_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    v = float(value)  # a finite Real; the message below keeps the caller's spelling
    bad_low = v < low if low_inclusive else v <= low
    if bad_low or (high is not None and v >= high):
        rng = f"{'[' if low_inclusive else '('}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{name} must be in {rng}, got {value!r}")
    return float(value)


def _trained(params: Params, grads: Params) -> Params:
    """The parameters ``grads`` updates (the others are frozen); a stray gradient is refused."""
    for k, g in grads.items():  # one type test per key; the backends named on a mismatch
        p = params.get(k)
        if p is not None and type(g) is not type(p):
            _check_same_backend(k, g, p)
    if grads.keys() == params.keys():
        return params
    extra = sorted(set(grads) - set(params))
    if extra:
        raise ValueError(f"grads has keys that are not parameters: {extra} (parameters: "
                         f"{sorted(params)})")
    return {k: p for k, p in params.items() if k in grads}


def _check_same_backend(key: str, g: Any, p: Any) -> None:
    """Refuse a gradient of another array library than its parameter's."""
    from .backends import backend_of

    try:
        gb, pb = backend_of(g).name, backend_of(p).name
    except (TypeError, ValueError):
        raise TypeError(f"grads[{key!r}] is a {type(g).__name__}, not an array of the "
                        f"parameter's library ({type(p).__name__})") from None
    if gb != pb:
        raise TypeError(f"grads[{key!r}] is a {gb} array, the parameter a {pb} one; an "
                        f"update needs both on one backend (compute the gradients with the "
                        f"model, or convert them: xn.get_backend({pb!r}).asarray(...))")


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair of floats, got {betas!r}")
    return (_finite("betas[0]", betas[0], high=1.0), _finite("betas[1]", betas[1], high=1.0))


def _positive_or_none(name: str) -> Callable[[Any], Any]:
    return lambda v: None if v is None else _finite(name, v, low_inclusive=False)


def _deprecated_update_args(kwargs: dict) -> None:
    """``update_``'s arguments of earlier versions: warned about and ignored."""
    unknown = sorted(set(kwargs) - {"spare", "grads_finite"})
    if unknown:
        raise TypeError(f"update_() got unexpected keyword arguments {unknown}")
    if kwargs:
        warnings.warn(f"update_(): {', '.join(sorted(kwargs))} no longer do anything (the "
                      "model's store keeps the spare buffers, and the check of the new "
                      "values covers the gradients) and will be removed",
                      DeprecationWarning, stacklevel=3)


def _check_lr(lr: Any) -> Any:
    """A positive float as a `Constant`; a callable must give a rate at step 0."""
    if isinstance(lr, numbers.Real) and not isinstance(lr, bool):
        return get_schedule(_finite("lr", lr, low=0.0, low_inclusive=False))
    if not callable(lr):
        raise ValueError(f"lr must be a positive float or a schedule, got {lr!r}")
    _rate(lr, 0)
    return get_schedule(lr)


def _rate(schedule: Any, step: int) -> float:
    try:
        value = schedule(step)
    except Exception as exc:  # the user's schedule: say which call failed
        raise ValueError(f"the learning-rate schedule {describe_lr(schedule)} failed at step "
                         f"{step}: {exc!r}") from exc
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"the learning-rate schedule {describe_lr(schedule)} gave {value!r} at "
                         f"step {step}; a learning rate must be a finite number >= 0")
    return float(value)


def _check_decay(decay: Any) -> Any:
    if isinstance(decay, (list, tuple, set, frozenset)):
        bad = [k for k in decay if not isinstance(k, str)]
        if bad:
            raise ValueError(f"decay keys must be parameter keys such as '0.W', got {bad!r}")
        return frozenset(decay)
    if decay in ("all", "weights") if isinstance(decay, str) else callable(decay):
        return decay
    raise ValueError(f"decay must be 'all', 'weights', a collection of parameter keys or a "
                     f"function key -> bool, got {decay!r}")


_HYPER_CHECKS: dict[str, Callable[[Any], Any]] = {
    "weight_decay": lambda v: _finite("weight_decay", v),
    "clip_norm": _positive_or_none("clip_norm"),
    "clip_value": _positive_or_none("clip_value"),
    "eps": lambda v: _finite("eps", v, low_inclusive=False),
    "momentum": lambda v: _finite("momentum", v, high=1.0),
    "alpha": lambda v: _finite("alpha", v, high=1.0),
    "betas": _check_betas,
    "decay": _check_decay,
}
"""Hyper-parameters checked when assigned (``opt.weight_decay = nan`` is refused)."""


def global_norm(grads: Params) -> Any:
    """The L2 norm of all gradients together, as a 0-d device array.

    Parameters
    ----------
    grads : dict of arrays

    Returns
    -------
    0-d array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.optimizers.global_norm({"a": np.array([3.0, 0.0]), "b": np.array([4.0])}))
    5.0
    """
    total = None
    for g in grads.values():
        s = _xp(g).sum(g * g)
        total = s if total is None else total + s
    return _xp(total).sqrt(total)


def clip_by_global_norm(grads: Params, max_norm: float) -> tuple[Params, Any]:
    """Scale all gradients so their global L2 norm is at most ``max_norm``.

    Same rule as ``torch.nn.utils.clip_grad_norm_``; computed on the device
    with no host sync.

    Parameters
    ----------
    grads : dict of arrays
    max_norm : float

    Returns
    -------
    (clipped grads, norm before clipping)

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    >>> clipped, norm = xn.clip_by_global_norm(grads, 1.0)
    >>> float(norm), np.round(clipped["a"], 6).tolist(), np.round(clipped["b"], 6).tolist()
    (5.0, [0.6, 0.0], [0.8])
    """
    norm = global_norm(grads)
    xp = _xp(norm)
    coef = xp.minimum(max_norm / (norm + 1e-6), 1.0)
    return {k: g * coef for k, g in grads.items()}, norm


def clip_by_value(grads: Params, limit: float) -> Params:
    """Clip every gradient element to ``[-limit, limit]``.

    Parameters
    ----------
    grads : dict of arrays
    limit : float

    Returns
    -------
    dict of arrays

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.optimizers.clip_by_value({"w": np.array([-3.0, 0.5, 2.0])}, 1.0)["w"].tolist()
    [-1.0, 0.5, 1.0]
    """
    # minimum/maximum, not clip: array-api-compat's CuPy clip writes through boolean
    # masks, each a device sync
    return {k: _xp(g).minimum(_xp(g).maximum(g, -limit), limit) for k, g in grads.items()}


class Optimizer:
    """Base class for optimizers.

    Parameters
    ----------
    lr : float or callable
        Learning rate, or a schedule: any callable ``step -> float`` (step counts
        from 0; the built-in [`xpnet.schedules`][] also save in checkpoints).
        Assigning ``opt.lr`` later is checked the same way.
    weight_decay : float
        L2 penalty added to the gradient (decoupled for [`AdamW`][xpnet.optimizers.AdamW]).
    decay : {"all", "weights"}, collection of str, or callable
        Which parameters ``weight_decay`` applies to: ``"all"`` (the default, as
        in ``torch.optim``), ``"weights"`` (arrays of two or more dimensions, such
        as ``Dense``'s ``W``; not biases, as scikit-learn's ``alpha``), a
        collection of parameter keys and layer prefixes (an entry ending in ``"."``
        names every key under it: ``"2."``, or ``"2.0."`` for the first layer of a
        [`Block`][xpnet.blocks.Block] at index 2), or a function ``key -> bool``.
    clip_norm : float, optional
        Clip gradients to this global L2 norm before the update.
    clip_value : float, optional
        Clip each gradient element to ``[-clip_value, clip_value]``.
    groups : list of dict, optional
        Parameter groups, each ``{"params": ..., "lr_scale": float, "weight_decay":
        float}`` (settings optional): ``"params"`` is ``"weights"``, a function
        ``key -> bool``, or a list of parameter keys and layer prefixes (as ``decay``).
        A group's parameters use ``lr_scale`` times the scheduled rate and its
        ``weight_decay`` instead of the optimizer's and the ``decay`` mask; a parameter
        is in one group at most. See [`groups`][xpnet.optimizers.Optimizer.groups].

    Notes
    -----
    A parameter with no entry in ``grads`` is frozen:
    [`update`][xpnet.optimizers.Optimizer.update] and
    [`update_`][xpnet.optimizers.Optimizer.update_] leave it as it is (no decay either)
    and keep no state for it; a parameter that gets a gradient again starts with
    zero moments.

    Attributes
    ----------
    state : dict or None
        The state left by the last [`xpnet.fit`][] that used this object;
        passing the same optimizer to ``fit`` again on the same model continues from
        it (on another model, ``fit`` starts it fresh and says so in the ``xpnet`` log).
    slots : tuple of str
        Names of the per-parameter state arrays (e.g. Adam's ``exp_avg``).

    Examples
    --------
    The pure interface every optimizer shares, as used in a custom loop:

    >>> import numpy as np, xpnet as xn
    >>> opt = xn.Adam(lr=0.1, clip_norm=1.0)
    >>> params = {"w": np.array([1.0, -1.0])}
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...     params, state = opt.update(params, {"w": 2 * params["w"]}, state)
    >>> state["step"], bool(np.all(np.abs(params["w"]) < 1.0))
    (3, True)
    """

    slots: tuple[str, ...] = ()
    _groups: tuple = ()  # parameter groups, checked (see the groups property)
    nonnegative_slots: tuple[str, ...] = ()
    """Slots that hold means of squares: never negative (checked when loading)."""

    decoupled = False
    """True: weight decay shrinks the parameter (``p *= 1 - lr * wd``, AdamW);
    False: it adds ``wd * p`` to the gradient (L2)."""

    def __init__(self, lr: LearningRate = 1e-3, *, weight_decay: float = 0.0,
                 decay: DecayMask = "all", clip_norm: float | None = None,
                 clip_value: float | None = None, groups: list | None = None):
        self.lr = lr
        self.weight_decay = weight_decay  # checked by __setattr__, as every hyper-parameter
        self.decay: Any = decay
        self.groups = groups
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.state: dict | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # every assignment of a hyper-parameter, the constructor's included, is checked here
        check = _HYPER_CHECKS.get(name)
        super().__setattr__(name, value if check is None else check(value))

    def __getstate__(self) -> dict:
        # copied or pickled without the (weak) reference to the model it last trained
        state = dict(self.__dict__)
        state.pop("_last_model", None)
        return state

    @property
    def groups(self) -> list[dict]:
        """The parameter groups, as given (settings left out take the optimizer's).

        A scale of the learning rate rather than a rate of its own keeps one schedule
        for the whole model (``torch.optim``'s schedulers scale every group's rate
        alike; ``optax.multi_transform`` chains each label's transform). Assigning a
        list is checked as the constructor checks it.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.AdamW(lr=1e-3, weight_decay=0.01, groups=[
        ...     {"params": ["0."], "lr_scale": 0.1},           # layer 0: a tenth of the rate
        ...     {"params": ["1.b"], "weight_decay": 0.0}])     # no decay on that bias
        >>> opt.lr_scale_for("0.W", np.ones((2, 2))), opt.weight_decay_for("1.b", np.ones(2))
        (0.1, 0.0)
        >>> opt.groups[1]
        {'params': ['1.b'], 'weight_decay': 0.0}
        >>> xn.SGD(lr=0.1, groups=[{"params": ["0."], "lr_scale": 0.1}])
        SGD(lr=0.1, groups=[{'params': ['0.'], 'lr_scale': 0.1}])
        >>> try:
        ...     opt.groups = [{"params": ["0.W"]}, {"params": ["0."]}]
        ... except ValueError as exc:
        ...     print(str(exc).split(";")[0])
        parameter groups 0 and 1 both name '0.W' ('0.W' and '0.')
        """
        return [{"params": g.select if isinstance(g.select, str) or callable(g.select)
                 else list(g.select), **g._settings()} for g in self._groups]

    @groups.setter
    def groups(self, value: Any) -> None:
        self._groups = _param_groups.check_groups(value)
        self._group_of: dict = {}  # (key, ndim) -> group index or None

    def _group(self, key: str, p: Any) -> Any:
        """The group of parameter ``key``, or None (resolved once per key)."""
        if not self._groups:
            return None
        memo = (key, p.ndim)
        if memo not in self._group_of:
            self._group_of[memo] = _param_groups.group_index(self._groups, key, p)
        i = self._group_of[memo]
        return None if i is None else self._groups[i]

    def check_groups(self, params: Params) -> None:
        """Refuse parameter groups that do not fit ``params``: a group, or a key or
        layer prefix it lists, that names no parameter, and a parameter in two groups.

        [`xpnet.fit`][] calls it with the model's parameters before it trains.

        Parameters
        ----------
        params : dict of arrays
            A model's parameters (all of them: frozen ones count).

        Raises
        ------
        ValueError
            Naming the group and what it names.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.SGD(lr=0.1, groups=[{"params": ["0.w"], "lr_scale": 0.5}])
        >>> try:
        ...     opt.check_groups({"0.W": np.ones((2, 2)), "0.b": np.ones(2)})
        ... except ValueError as exc:
        ...     print(str(exc).split(" (")[0])
        parameter group 0 names ['0.w'], which are not parameters of this model
        """
        _param_groups.check_against(self._groups, params)

    def lr_scale_for(self, key: str, p: Any) -> float:
        """The multiple of the learning rate that parameter ``key`` is updated with
        (its group's ``lr_scale``; 1.0 outside groups).

        Parameters
        ----------
        key : str
            The parameter's key, e.g. ``"0.W"``.
        p : array
            The parameter (a ``"weights"`` group looks at its number of dimensions).

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.SGD(lr=0.1, groups=[{"params": "weights", "lr_scale": 0.5}])
        >>> opt.lr_scale_for("0.W", np.ones((3, 2))), opt.lr_scale_for("0.b", np.ones(2))
        (0.5, 1.0)
        """
        group = self._group(key, p)
        return 1.0 if group is None else group.lr_scale

    def _lr_for(self, key: str, p: Any, lr: Any) -> Any:
        """Parameter ``key``'s rate for the step's ``lr`` (a float or a traced JAX value)."""
        scale = self.lr_scale_for(key, p)
        return lr if scale == 1.0 else lr * scale

    @property
    def lr(self) -> Any:
        """The schedule ``step -> float`` (a float given is held as a
        [`Constant`][xpnet.schedules.Constant]).

        Assigning a float or a callable is checked as the constructor checks it.

        Examples
        --------
        >>> import xpnet as xn
        >>> opt = xn.SGD(lr=0.1)
        >>> opt.lr = 0.05
        >>> opt.learning_rate(0), opt
        (0.05, SGD(lr=0.05))
        >>> try:
        ...     opt.lr = -1.0
        ... except ValueError as exc:
        ...     print(exc)
        lr must be in (0.0, inf), got -1.0
        """
        return self._lr

    @lr.setter
    def lr(self, value: Any) -> None:
        self._lr = _check_lr(value)

    def weight_decay_for(self, key: str, p: Any) -> float:
        """The weight decay applied to parameter ``key``: its group's ``weight_decay``
        where it sets one, else the optimizer's (0.0 where ``decay`` excludes it).

        Parameters
        ----------
        key : str
            The parameter's key, e.g. ``"0.W"``.
        p : array
            The parameter (``decay="weights"`` looks at its number of dimensions).

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.AdamW(weight_decay=0.01, decay="weights")
        >>> opt.weight_decay_for("0.W", np.ones((3, 2))), opt.weight_decay_for("0.b", np.ones(2))
        (0.01, 0.0)
        """
        group = self._group(key, p)
        if group is not None and group.weight_decay is not None:
            return group.weight_decay
        wd, decay = self.weight_decay, self.decay
        if wd == 0.0 or decay == "all":
            return wd
        if decay == "weights":
            return wd if p.ndim >= 2 else 0.0
        if isinstance(decay, frozenset):  # keys, and layer prefixes ending in "."
            return wd if key in decay or any(_param_groups._names(e, key) for e in decay) \
                else 0.0
        return wd if decay(key) else 0.0

    # -- public --------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """The learning rate used for update number ``step`` (0-based).

        Parameters
        ----------
        step : int

        Returns
        -------
        float

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.SGD(lr=xn.StepDecay(0.1, step_size=10, gamma=0.5)).learning_rate(10)
        0.05
        """
        return _rate(self._lr, step)

    def init(self, params: Params) -> dict:
        """Fresh optimizer state for ``params`` (zeros for every slot, step 0).

        For a model's ``params`` (or a subset) the slots are views into one buffer of
        the model's [store][xpnet.store.ParamStore], so that
        [`update_`][xpnet.optimizers.Optimizer.update_] runs one kernel over the model.

        Parameters
        ----------
        params : dict of arrays

        Returns
        -------
        dict
            ``{"step": 0, "steps": {param_key: 0}, slot_name: {param_key: array}, ...}``:
            ``step`` counts the updates applied (the learning-rate schedule's step),
            ``steps`` each parameter's own updates (Adam's bias correction, as in
            ``torch.optim``: a parameter trained late starts at 1).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> state = xn.Adam().init({"w": np.ones(3)})
        >>> sorted(state), state["exp_avg"]["w"].tolist(), state["steps"]
        (['exp_avg', 'exp_avg_sq', 'step', 'steps'], [0.0, 0.0, 0.0], {'w': 0})
        """
        for k, p in params.items():  # a parameter in two groups is refused here
            self._group(k, p)
        state: dict = {"step": 0, "steps": dict.fromkeys(params, 0)}
        store = getattr(params, "store", None)
        first = next(iter(params.values()), None)
        with ops_of(first).scope(first):  # zeros on CuPy: on the current GPU
            if store is not None and params:
                state.update(store.new_slots(self.slots, list(params)))
                return state
            for slot in self.slots:
                state[slot] = {k: _xp(p).zeros_like(p) for k, p in params.items()}
        return state

    def update(self, params: Params, grads: Params, state: dict, *,
               keep: Any = None) -> tuple[Params, dict]:
        """Apply one update; return new params and new state (inputs untouched).

        Gradients are clipped first ([`clip_grads`][xpnet.optimizers.Optimizer.clip_grads]),
        then the library's fused kernel runs where one applies (CuPy with
        ``XPNET_CUPY_FUSED=1``), else the reference rule. Parameters without a gradient
        are frozen.

        Parameters
        ----------
        params : dict of arrays
        grads : dict of arrays
            A gradient for every parameter to train (its keys are a subset of
            ``params``'s).
        state : dict
            From [`init`][xpnet.optimizers.Optimizer.init] or a previous update.
        keep : 0-d bool array, optional
            When False, the new parameters and slots are the old ones (chosen on the
            device, no host sync); the step counts advance all the same.

        Returns
        -------
        (params, state)

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.SGD(lr=0.5)
        >>> params = {"w": np.array([1.0, 2.0]), "b": np.array([1.0])}
        >>> new, state = opt.update(params, {"w": np.array([1.0, 1.0])}, opt.init(params))
        >>> new["w"].tolist(), new["b"].tolist(), params["w"].tolist(), state["step"]
        ([0.5, 1.5], [1.0], [1.0, 2.0], 1)
        """
        trained = _trained(params, grads)
        state = self._aligned(trained, state, in_place=False)
        step = int(state["step"])
        lr = self.learning_rate(step)
        ts = {k: state["steps"][k] + 1 for k in trained}
        first = next(iter(trained.values()), None)
        ops = ops_of(first)
        with ops.scope(first):
            new, slots = self._pure(ops, trained, self.clip_grads(grads), state, lr, ts, keep)
        if trained is not params:
            new = {k: new.get(k, p) for k, p in params.items()}
        return new, {"step": step + 1, "steps": ts, **slots}

    def update_(self, params: Params, grads: Params, state: dict, *,
                check_finite: bool = False, **deprecated: Any) -> bool:
        """Apply one update in place: ``params`` and ``state`` are modified.

        What [`xpnet.fit`][] uses. On a model's ``params`` with ``init(model.params)``'s
        state, NumPy and CPU torch run one kernel over the model's flat buffers (see
        [`xpnet.store`][] and [`xpnet.ops`][]) and swap the new values in; elsewhere the
        reference rule's result is assigned to the entries. Both give the bits of
        [`update`][xpnet.optimizers.Optimizer.update]; ``grads`` is never modified, and
        parameters without a gradient are frozen.

        Parameters
        ----------
        params, grads : dict of arrays (``grads``: a subset of the keys)
        state : dict
            From [`init`][xpnet.optimizers.Optimizer.init].
        check_finite : bool
            Apply the update only if every new parameter and slot value is finite;
            otherwise leave ``params`` and ``state`` (step counts too) as they were and
            return False. On NumPy the kernel checks each value as it writes it.
        **deprecated
            ``spare=`` and ``grads_finite=`` (earlier versions): ignored, with a
            ``DeprecationWarning``.

        Returns
        -------
        bool
            Whether the update was applied (always True without ``check_finite``).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> opt = xn.SGD(lr=0.5)
        >>> params = {"w": np.array([1.0, 2.0])}
        >>> state = opt.init(params)
        >>> opt.update_(params, {"w": np.array([1.0, 1.0])}, state)
        True
        >>> params["w"].tolist(), state["step"]
        ([0.5, 1.5], 1)
        >>> huge = xn.SGD(lr=1e10)  # 0.5 - 1e10 * 1e300 overflows: the update is not applied
        >>> huge.update_(params, {"w": np.array([1e300, 0.0])}, state, check_finite=True)
        False
        >>> params["w"].tolist(), state["step"]
        ([0.5, 1.5], 1)
        """
        if deprecated:
            _deprecated_update_args(deprecated)
        trained = _trained(params, grads)
        self._aligned(trained, state, in_place=True, params=params)
        step = int(state["step"])
        # a constant rate was checked when it was set
        lr = self._lr.lr if type(self._lr) is Constant else self.learning_rate(step)
        first = next(iter(trained.values()), None)
        ops = ops_of(first)
        with ops.scope(first):
            clipped = self.clip_grads(grads)
            done = ops.update_store(self, params, clipped, state, lr, check_finite)
            if done is None:
                done = self._update_reference_(ops, params, trained, clipped, state, lr,
                                               check_finite)
        if done:
            state["step"] = step + 1
            steps = state["steps"]
            for k in trained:
                steps[k] += 1
        return done

    def _update_reference_(self, ops: Any, params: Params, trained: Params, grads: Params,
                           state: dict, lr: float, check: bool) -> bool:
        """The reference rule's update, checked if asked, then assigned to the entries."""
        ts = {k: state["steps"][k] + 1 for k in trained}
        new_params, new_slots = self._pure(ops, trained, grads, state, lr, ts, None)
        if check and not ops.arrays_finite(
                [*new_params.values(), *(a for s in self.slots for a in new_slots[s].values())]):
            return False
        for k, v in new_params.items():
            params[k] = v
        for s in self.slots:
            values = state[s]
            for k, v in new_slots[s].items():
                values[k] = v
        return True

    def _aligned(self, trained: Params, state: dict, *, in_place: bool,
                 params: Any = None) -> dict:
        """``state`` with slots and counts for exactly the trained parameters (new ones at zero)."""
        keys = list(trained)
        steps = state.get("steps")
        if steps is None:
            steps = dict.fromkeys(keys, int(state["step"]))
        elif list(steps) != keys:
            steps = {k: steps.get(k, 0) for k in keys}
        if in_place:
            state["steps"] = steps
        else:
            state = {**state, "steps": steps}
        store = getattr(params, "store", None)
        if store is not None and self.slots:
            for s in self.slots:
                if state.get(s) is not store.slot_dicts.get(s):
                    break
            else:  # the store holds the slots
                store.align_slots(keys)
                return state
        for slot in self.slots:
            values = state[slot]
            if list(values) == keys:
                continue
            fixed = {k: values[k] if k in values else _xp(p).zeros_like(p)
                     for k, p in trained.items()}
            if in_place:
                values.clear()
                values.update(fixed)
            else:
                state = {**state, slot: fixed}
        return state

    def clip_grads(self, grads: Params) -> Params:
        """``grads`` clipped as configured: by value (``clip_value``), then by
        global norm (``clip_norm``); the same dict when neither is set.

        Used by both [`update`][xpnet.optimizers.Optimizer.update] and
        [`update_`][xpnet.optimizers.Optimizer.update_]; no host sync.

        Parameters
        ----------
        grads : dict of arrays

        Returns
        -------
        dict of arrays

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> g = {"w": np.array([3.0, -0.5])}
        >>> xn.SGD(clip_value=1.0).clip_grads(g)["w"].tolist()
        [1.0, -0.5]
        >>> np.round(xn.SGD(clip_norm=1.0).clip_grads(g)["w"], 4).tolist()
        [0.9864, -0.1644]
        """
        if self.clip_value is not None:
            grads = clip_by_value(grads, self.clip_value)
        if self.clip_norm is not None:
            grads, _ = clip_by_global_norm(grads, self.clip_norm)
        return grads

    def _pure(self, ops: Any, params: Params, grads: Params, state: dict, lr: float,
              ts: dict[str, int], keep: Any) -> tuple[Params, dict]:
        """New parameters and slots: the library's fused kernel, else the reference rule."""
        fused = ops.update(self, params, grads, state, lr, ts, keep)
        if fused is not None:
            return fused
        return self._reference(params, grads, state, lr, ts, keep)

    def _reference(self, params: Params, grads: Params, state: dict, lr: float,
                   ts: dict[str, int], keep: Any) -> tuple[Params, dict]:
        """Weight decay, then ``_update_one`` per parameter at its own rate, masked by ``keep``."""
        new_params: Params = {}
        new_slots: dict = {s: {} for s in self.slots}
        for k, p in params.items():
            slots = {s: state[s][k] for s in self.slots}
            lr_k = self._lr_for(k, p, lr)
            p_in, g_in = self._decayed(p, grads[k], lr_k, self.weight_decay_for(k, p))
            p2, slots2 = self._update_one(p_in, g_in, slots, lr_k, ts[k])
            if keep is not None:
                xp = _xp(p)
                p2 = xp.where(keep, p2, p)
                slots2 = {s: xp.where(keep, v, slots[s]) for s, v in slots2.items()}
            new_params[k] = p2
            for s, v in slots2.items():
                new_slots[s][k] = v
        return new_params, new_slots

    def _decayed(self, p: Any, g: Any, lr: float, wd: float) -> tuple[Any, Any]:
        """``(p, g + wd p)``, or ``(p (1 - lr wd), g)`` for a decoupled rule."""
        if not wd:
            return p, g
        if self.decoupled:
            return p * (1.0 - lr * wd), g
        return p, g + wd * p

    def _update_one(self, p, g, slots: dict, lr: float, t: int):
        """The reference rule on decayed ``p, g``: ``(new p, {slot: new value})``."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """Constructor arguments as JSON, for checkpoints.

        Returns
        -------
        dict
            ``lr`` (a schedule config), ``weight_decay``, ``decay``,
            ``clip_norm``, ``clip_value``, ``groups`` (only where there are
            groups) and the subclass's own arguments;
            rebuild with [`optimizer_from_config`][xpnet.optimizers.optimizer_from_config].

        Raises
        ------
        ValueError
            When the schedule, the decay mask or a group's selector is a
            function, which cannot be written as JSON.

        Examples
        --------
        >>> import xpnet as xn
        >>> cfg = xn.SGD(lr=0.1, momentum=0.9).get_config()
        >>> cfg["lr"], cfg["momentum"], cfg["clip_norm"], cfg["decay"]
        ({'class': 'Constant', 'config': {'lr': 0.1}}, 0.9, None, 'all')
        """
        decay = self.decay
        if callable(decay):
            raise ValueError(f"the decay mask {decay!r} is a function, which cannot be saved; "
                             "pass decay= as 'all', 'weights' or a list of parameter keys")
        cfg = {"lr": schedule_to_config(self.lr), "weight_decay": self.weight_decay,
               "decay": decay if isinstance(decay, str) else sorted(decay),
               "clip_norm": self.clip_norm, "clip_value": self.clip_value}
        if self._groups:
            cfg["groups"] = [g.config(i) for i, g in enumerate(self._groups)]
        cfg.update(self._extra_config())
        return cfg

    def _extra_config(self) -> dict:
        return {}

    def _repr_args(self) -> dict:
        """Settings shown by ``repr`` (never raises, unlike ``get_config``)."""
        decay = self.decay
        shown = (None if decay == "all" else decay if isinstance(decay, str) else
                 sorted(decay) if isinstance(decay, frozenset) else
                 getattr(decay, "__name__", type(decay).__name__))
        groups = self._groups and f"[{', '.join(g.shown() for g in self._groups)}]"
        return {"weight_decay": self.weight_decay, "decay": shown if self.weight_decay else None,
                "clip_norm": self.clip_norm, "clip_value": self.clip_value,
                **self._extra_config(), "groups": groups or None}

    def __repr__(self) -> str:
        def shown(k: str, v: Any) -> str:  # a function's name and the groups as they are
            plain = k == "groups" or k == "decay" and not isinstance(v, (str, list))
            return f"{k}={v!s}" if plain else f"{k}={v!r}"

        args = ", ".join(shown(k, v) for k, v in self._repr_args().items()
                         if v not in (None, 0.0, False))
        return f"{type(self).__name__}(lr={describe_lr(self.lr)}{', ' + args if args else ''})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``lr``, ``weight_decay``, ``decay``, ``clip_norm`` and ``clip_value`` are those of
    every [`Optimizer`][xpnet.optimizers.Optimizer].

    Parameters
    ----------
    momentum : float
        In ``[0, 1)``; 0 is plain gradient descent.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> opt = xn.SGD(lr=0.1)
    >>> p, s = opt.update({"w": np.ones(2)}, {"w": np.ones(2)}, opt.init({"w": np.ones(2)}))
    >>> p["w"].tolist()
    [0.9, 0.9]
    """

    def __init__(self, lr: LearningRate = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 *, weight_decay: float = 0.0, decay: DecayMask = "all",
                 clip_norm: float | None = None, clip_value: float | None = None,
                 groups: list | None = None):
        super().__init__(lr, weight_decay=weight_decay, decay=decay, clip_norm=clip_norm,
                         clip_value=clip_value, groups=groups)
        self.momentum = momentum
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.slots = ("momentum_buffer",) if self.momentum > 0 else ()

    def _update_one(self, p, g, slots, lr, t):
        if self.momentum > 0:
            if isinstance(t, int):
                buf = g if t == 1 else self.momentum * slots["momentum_buffer"] + g
            else:  # a traced step count (the compiled JAX step)
                buf = _xp(g).where(t == 1, g, self.momentum * slots["momentum_buffer"] + g)
            g = g + self.momentum * buf if self.nesterov else buf
            return p - lr * g, {"momentum_buffer": buf}
        return p - lr * g, {}

    def _extra_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), with bias correction; ``weight_decay`` is an L2 term.

    ``lr``, ``weight_decay``, ``decay``, ``clip_norm`` and ``clip_value`` are those of
    every [`Optimizer`][xpnet.optimizers.Optimizer]; the L2 term joins the gradient
    before the moments rescale it (for decay kept apart from the gradient, see
    [`AdamW`][xpnet.optimizers.AdamW]).

    Parameters
    ----------
    betas : (float, float)
        Decay rates of the first and second moment averages, each in ``[0, 1)``.
    eps : float
        Added to the denominator for stability (> 0).

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.Adam(lr=1e-3)
    Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08)
    """

    slots = ("exp_avg", "exp_avg_sq")
    nonnegative_slots = ("exp_avg_sq",)
    decoupled = False

    def __init__(self, lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, *, weight_decay: float = 0.0, decay: DecayMask = "all",
                 clip_norm: float | None = None, clip_value: float | None = None,
                 groups: list | None = None):
        super().__init__(lr, weight_decay=weight_decay, decay=decay, clip_norm=clip_norm,
                         clip_value=clip_value, groups=groups)
        self.betas, self.eps = betas, eps

    def _update_one(self, p, g, slots, lr, t):
        b1, b2 = self.betas
        m = b1 * slots["exp_avg"] + (1.0 - b1) * g
        v = b2 * slots["exp_avg_sq"] + (1.0 - b2) * (g * g)
        # torch's  p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps),  rearranged to save a
        # pass over the parameters: p -= (lr/bc1*sqrt(bc2)) * m / (sqrt(v) + eps*sqrt(bc2))
        # (a traced step count on JAX, see xpnet.training._jit: the array's own sqrt)
        bc2 = 1.0 - b2**t
        sqrt_bc2 = math.sqrt(bc2) if isinstance(bc2, float) else _xp(bc2).sqrt(bc2)
        step_size = lr / (1.0 - b1**t) * sqrt_bc2
        denom = _xp(v).sqrt(v) + self.eps * sqrt_bc2
        return p - step_size * (m / denom), {"exp_avg": m, "exp_avg_sq": v}

    def _extra_config(self):
        return {"betas": list(self.betas), "eps": self.eps}

    def _repr_args(self) -> dict:
        # betas as a tuple, then the base class's settings
        args = super()._repr_args()
        return {"betas": self.betas, "eps": args.pop("eps"),
                **{k: v for k, v in args.items() if k != "betas"}}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); default decay 0.01.

    The parameters are [`Adam`][xpnet.optimizers.Adam]'s; only ``weight_decay``
    differs, in its default and in what it does.

    Parameters
    ----------
    weight_decay : float
        Decoupled: ``p *= 1 - lr * weight_decay`` before the Adam step. With
        ``decay="weights"`` biases are left undecayed, the usual choice for AdamW.

    Examples
    --------
    With a zero gradient only the decay acts: ``1 * (1 - 0.1 * 0.5)``.

    >>> import numpy as np, xpnet as xn
    >>> opt = xn.AdamW(lr=0.1, weight_decay=0.5)
    >>> p, s = opt.update({"w": np.ones(2)}, {"w": np.zeros(2)}, opt.init({"w": np.ones(2)}))
    >>> p["w"].tolist()
    [0.95, 0.95]
    """

    decoupled = True

    def __init__(self, lr: LearningRate = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, *, decay: DecayMask = "all",
                 clip_norm: float | None = None, clip_value: float | None = None,
                 groups: list | None = None):
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay, decay=decay,
                         clip_norm=clip_norm, clip_value=clip_value, groups=groups)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum, as in ``torch.optim``.

    ``lr``, ``weight_decay``, ``decay``, ``clip_norm`` and ``clip_value`` are those of
    every [`Optimizer`][xpnet.optimizers.Optimizer].

    Parameters
    ----------
    alpha : float
        Smoothing constant of the squared-gradient average, in ``[0, 1)``.
    eps : float
        Added to the denominator for stability (> 0).
    momentum : float
        In ``[0, 1)``; 0 disables the momentum buffer.
    centered : bool
        Divide by the gradient's estimated variance instead of its second moment.

    Examples
    --------
    The first step divides the gradient by ``sqrt(1 - alpha) * |g|``:

    >>> import numpy as np, xpnet as xn
    >>> opt = xn.RMSprop(lr=0.01)
    >>> p, s = opt.update({"w": np.ones(2)}, {"w": np.ones(2)}, opt.init({"w": np.ones(2)}))
    >>> np.round(p["w"], 6).tolist(), sorted(s)
    ([0.9, 0.9], ['square_avg', 'step', 'steps'])
    """

    nonnegative_slots = ("square_avg",)

    def __init__(self, lr: LearningRate = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, centered: bool = False, *, weight_decay: float = 0.0,
                 decay: DecayMask = "all", clip_norm: float | None = None,
                 clip_value: float | None = None, groups: list | None = None):
        super().__init__(lr, weight_decay=weight_decay, decay=decay, clip_norm=clip_norm,
                         clip_value=clip_value, groups=groups)
        self.alpha, self.eps, self.momentum = alpha, eps, momentum
        self.centered = bool(centered)
        slots = ["square_avg"]
        if self.momentum > 0:
            slots.append("momentum_buffer")
        if self.centered:
            slots.append("grad_avg")
        self.slots = tuple(slots)

    def _update_one(self, p, g, slots, lr, t):
        xp = _xp(p)
        sq = self.alpha * slots["square_avg"] + (1.0 - self.alpha) * (g * g)
        out = {"square_avg": sq}
        if self.centered:
            ga = self.alpha * slots["grad_avg"] + (1.0 - self.alpha) * g
            out["grad_avg"] = ga
            avg = xp.sqrt(sq - ga * ga) + self.eps
        else:
            avg = xp.sqrt(sq) + self.eps
        if self.momentum > 0:
            buf = self.momentum * slots["momentum_buffer"] + g / avg
            out["momentum_buffer"] = buf
            return p - lr * buf, out
        return p - lr * (g / avg), out

    def _extra_config(self):
        return {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
"""Optimizer names accepted by ``fit`` and the CLI."""


def get_optimizer(opt: str | Optimizer | None, **kwargs: Any) -> Optimizer:
    """Resolve an optimizer name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``).

    Parameters
    ----------
    opt : str or Optimizer
        A name (case-insensitive) or an instance, returned as is.
    **kwargs
        Passed to the constructor when ``opt`` is a name (e.g. ``lr=``).

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.optimizers.get_optimizer("SGD", lr=0.1, momentum=0.9)
    SGD(lr=0.1, momentum=0.9)
    """
    if isinstance(opt, Optimizer):
        return opt
    if isinstance(opt, str) and opt.lower() in OPTIMIZERS:
        return OPTIMIZERS[opt.lower()](**kwargs)
    raise ValueError(f"unknown optimizer {opt!r}; choose one of: {', '.join(OPTIMIZERS)}")


_REGISTRY = Registry("optimizer", "register_optimizer", Optimizer)
for _cls in (SGD, Adam, AdamW, RMSprop):
    _REGISTRY.add(_cls.__name__, _cls, builtin=True)


def register_optimizer(cls: type[Optimizer]) -> type[Optimizer]:
    """Register a custom optimizer class so that checkpoints of it save and load.

    It works as [`register_layer`][xpnet.layers.register_layer] does (a decorator; a
    name belongs to one class, so ``Adam`` cannot be taken over). The class is an
    [`Optimizer`][xpnet.optimizers.Optimizer] subclass with its rule in
    ``_update_one`` and its state arrays named in ``slots``; its own constructor
    arguments come back from ``_extra_config()``. [`xpnet.save`][] refuses an optimizer
    that loading could not rebuild as it is: an unregistered class, or a config that
    misses a constructor argument or rebuilds different settings.

    Parameters
    ----------
    cls : type
        An [`Optimizer`][xpnet.optimizers.Optimizer] subclass that defines ``_update_one``.

    Returns
    -------
    type
        ``cls`` unchanged.

    Raises
    ------
    TypeError
        When ``cls`` is not an Optimizer subclass or has no ``_update_one`` of its own.
    ValueError
        When its name is registered for a different class.

    Examples
    --------
    >>> import xpnet as xn
    >>> @xn.register_optimizer
    ... class ScaledSGD(xn.Optimizer):
    ...     def __init__(self, lr=0.01, *, scale=1.0, **kw):
    ...         super().__init__(lr, **kw)
    ...         self.scale = scale
    ...     def _update_one(self, p, g, slots, lr, t):
    ...         return p - lr * self.scale * g, {}
    ...     def _extra_config(self):
    ...         return {"scale": self.scale}
    >>> cfg = ScaledSGD(0.1, scale=2.0).get_config()
    >>> xn.optimizers.optimizer_from_config("ScaledSGD", cfg)
    ScaledSGD(lr=0.1, scale=2.0)
    """
    _REGISTRY.check_class(cls)
    if cls._update_one is Optimizer._update_one:
        raise TypeError(f"register_optimizer: {cls.__name__} defines no _update_one(p, g, "
                        "slots, lr, t), the rule it applies to each parameter")
    return _REGISTRY.register(cls)


def _optimizer_class(name: Any) -> type | None:
    """The optimizer class registered under ``name`` (built-in or user's), or None."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def _saveable_config(opt: Optimizer) -> dict:
    """``{"class", "config"}`` of ``opt``, once checked to rebuild the same settings."""
    cls, name = type(opt), type(opt).__name__
    if _REGISTRY.get(name) is not cls:
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is not registered; register "
                         f"it with xpnet.register_optimizer({name})")
    cfg = opt.get_config()
    try:
        cfg = json.loads(json.dumps(cfg))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"get_config() must return JSON, got {cfg!r} ({exc})") from None
    missing = [p.name for p in inspect.signature(cls).parameters.values()
               if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in cfg
               and p.name != "groups"]
    if missing:
        raise ValueError(f"{name}() takes {', '.join(map(repr, missing))}, which "
                         f"{name}.get_config() does not return; return it from _extra_config()")
    try:
        twin = optimizer_from_config(name, cfg)
    except Exception as exc:  # the user's constructor: any error means "cannot rebuild"
        raise ValueError(f"{name}(**get_config()) fails: {exc}") from None
    for k, mine in vars(opt).items():
        if not k.startswith("_") and k != "state" and k in vars(twin):
            differs = _differing_value(k, mine, vars(twin)[k], 0)
            if differs is not None:
                raise ValueError(f"{name}(**get_config()) has {k}={differs[2]!r}, this "
                                 f"optimizer {k}={differs[1]!r}; return every constructor "
                                 "argument from _extra_config()")
    return {"class": name, "config": cfg}


def optimizer_from_config(name: str, cfg: dict) -> Optimizer:
    """Rebuild an optimizer from its class name and
    [`Optimizer.get_config`][xpnet.optimizers.Optimizer.get_config].

    Parameters
    ----------
    name : str
        Class name, e.g. ``"Adam"``, or that of a class registered with
        [`register_optimizer`][xpnet.optimizers.register_optimizer].
    cfg : dict
        The output of [`Optimizer.get_config`][xpnet.optimizers.Optimizer.get_config].

    Returns
    -------
    Optimizer
        A fresh optimizer (no state).

    Examples
    --------
    >>> import xpnet as xn
    >>> opt = xn.AdamW(lr=xn.CosineDecay(0.01, total_steps=100), clip_norm=1.0)
    >>> twin = xn.optimizers.optimizer_from_config("AdamW", opt.get_config())
    >>> twin.get_config() == opt.get_config()
    True
    """
    cls = _optimizer_class(name)
    if cls is None:
        raise ValueError(f"unknown optimizer class {name!r}; register custom optimizers with "
                         f"xpnet.register_optimizer (known: {', '.join(_REGISTRY.names())})")
    kwargs = dict(cfg)
    kwargs["lr"] = schedule_from_config(kwargs["lr"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return cls(**kwargs)
