"""Parameter groups of an optimizer (``Optimizer(groups=...)``): which parameters take
their own learning-rate scale and weight decay, checked when given and when resolved."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_FIELDS = ("params", "lr_scale", "weight_decay")


@dataclass(frozen=True)
class Group:
    """One group: its selector and its settings (``None``: the optimizer's)."""

    select: str | tuple[str, ...] | Callable[[str], bool]
    lr_scale: float = 1.0
    weight_decay: float | None = None

    def matches(self, key: str, p: Any) -> bool:
        """Whether parameter ``key`` (the array ``p``) is in this group."""
        select = self.select
        if isinstance(select, str):  # "weights": arrays of two or more dimensions
            return p.ndim >= 2
        if callable(select):
            return bool(select(key))
        return any(_names(entry, key) for entry in select)

    def config(self, i: int) -> dict:
        """The group as JSON (refused for a function selector)."""
        if callable(self.select):
            raise ValueError(f"parameter group {i} selects its parameters with the function "
                             f"{_name(self.select)}, which cannot be saved; give 'params' as "
                             "'weights' or a list of parameter keys and layer prefixes")
        params = self.select if isinstance(self.select, str) else list(self.select)
        return {"params": params, **self._settings()}

    def shown(self) -> str:
        """The group as ``repr`` shows it (a function by its name)."""
        if not callable(self.select):
            return repr(self.config(0))
        settings = "".join(f", {k!r}: {v!r}" for k, v in self._settings().items())
        return f"{{'params': {_name(self.select)}{settings}}}"

    def _settings(self) -> dict:
        out: dict = {}
        if self.lr_scale != 1.0:
            out["lr_scale"] = self.lr_scale
        if self.weight_decay is not None:
            out["weight_decay"] = self.weight_decay
        return out


def _names(entry: str, key: str) -> bool:
    """An entry ending in ``"."`` names a layer (every key under it), else one key."""
    return key.startswith(entry) if entry.endswith(".") else key == entry


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _number(i: int, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"parameter group {i}: {name} must be a finite number >= 0, got "
                         f"{value!r}")
    return float(value)


def _selector(i: int, params: Any) -> str | tuple[str, ...] | Callable[[str], bool]:
    if params == "weights" or callable(params):
        return params
    if isinstance(params, str):
        params = [params]
    if not isinstance(params, (list, tuple)) or not params \
            or not all(isinstance(e, str) and e for e in params):
        raise ValueError(f"parameter group {i}: 'params' must be 'weights', a function "
                         "key -> bool, or a non-empty list of parameter keys ('0.W') and "
                         f"layer prefixes ('2.'), got {params!r}")
    if len(set(params)) != len(params):
        raise ValueError(f"parameter group {i}: 'params' lists a key twice: {params!r}")
    return tuple(params)


def check_groups(groups: Any) -> tuple[Group, ...]:
    """The groups as given (a list of dicts), checked; ``()`` for None."""
    if groups is None:
        return ()
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("groups must be a list of dicts such as {'params': ['0.W', '0.b'], "
                         f"'lr_scale': 0.1}}, got {groups!r}")
    out = []
    for i, g in enumerate(groups):
        if "lr" in g:
            raise ValueError(f"parameter group {i}: give 'lr_scale', a multiple of the "
                             "optimizer's (scheduled) learning rate, not 'lr'")
        unknown = sorted(set(g) - set(_FIELDS), key=str)
        if unknown or "params" not in g:
            raise ValueError(f"parameter group {i}: needs 'params' and takes 'lr_scale' and "
                             f"'weight_decay', got the keys {sorted(g, key=str)}")
        wd = g.get("weight_decay")
        out.append(Group(_selector(i, g["params"]),
                         _number(i, "lr_scale", g.get("lr_scale", 1.0)),
                         None if wd is None else _number(i, "weight_decay", wd)))
    _refuse_listed_twice(out)
    return tuple(out)


def _refuse_listed_twice(groups: list[Group]) -> None:
    """Two groups whose lists name one parameter (a key, or a key under a prefix)."""
    listed = [(i, e) for i, g in enumerate(groups) if isinstance(g.select, tuple)
              for e in g.select]
    for a, (i, x) in enumerate(listed):
        for j, y in listed[a + 1:]:
            if i != j and (x == y or _names(x, y) or _names(y, x)):
                raise ValueError(f"parameter groups {i} and {j} both name {max(x, y, key=len)!r}"
                                 f" ({x!r} and {y!r}); a parameter may be in one group only")


def group_index(groups: tuple[Group, ...], key: str, p: Any) -> int | None:
    """The group of parameter ``key``, or None; refused when two groups hold it."""
    found = [i for i, g in enumerate(groups) if g.matches(key, p)]
    if len(found) > 1:
        raise ValueError(f"parameter {key!r} is in parameter groups {found[0]} and "
                         f"{found[1]}; a parameter may be in one group only")
    return found[0] if found else None


def check_against(groups: tuple[Group, ...], params: dict) -> None:
    """Refuse a group, listed key or prefix naming no parameter, and a parameter in two groups."""
    for k, p in params.items():
        group_index(groups, k, p)
    for i, g in enumerate(groups):
        if isinstance(g.select, tuple):
            unknown = [e for e in g.select if not any(_names(e, k) for k in params)]
            if unknown:
                raise ValueError(f"parameter group {i} names {unknown}, which are not "
                                 f"parameters of this model (parameters: {list(params)}; a "
                                 "layer prefix ends in '.', as '2.')")
        elif not any(g.matches(k, p) for k, p in params.items()):
            what = "'weights'" if isinstance(g.select, str) else _name(g.select)
            raise ValueError(f"parameter group {i} ({what}) holds no parameter of this "
                             f"model (parameters: {list(params)})")
