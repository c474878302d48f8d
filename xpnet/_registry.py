"""Name registries for the classes a checkpoint names (layers, losses, schedules).

A checkpoint stores a class by name and its constructor arguments
(``get_config()``); loading looks the name up here. Two rules keep that safe:

* a name belongs to one class: registering a *different* class under a name
  that is taken is refused (re-registering a class of the same module and
  qualified name, as a re-run notebook cell or a module reload does, replaces it;
  xpnet's own names are never given to another class);
* `Registry.check_rebuildable` refuses, before a file is written, an
  object that loading could not rebuild as it is: an unregistered class, a
  ``get_config()`` that is not JSON or misses a constructor argument, or one
  that does not rebuild an equal object (public attributes compared by value: a held
  object without an ``==`` of its own attribute by attribute, lists and dicts item by
  item; arrays are not judged).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

__all__ = ["Registry"]


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry:
    """Classes by name for one kind of object (``"layer"``, ``"loss"``...), as above."""

    def __init__(self, kind: str, register_call: str, base: type = object):
        self.kind, self.register_call, self.base = kind, register_call, base
        self._classes: dict[str, type] = {}
        self._builtin: set[str] = set()

    def add(self, name: str, cls: type, *, builtin: bool = False) -> None:
        """Register `cls` under `name`; ValueError when another class holds it (rules above)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty str, got {name!r}")
        held = self._classes.get(name)
        if held is not None and held is not cls and (
                name in self._builtin or _qualified(held) != _qualified(cls)):
            raise ValueError(
                f"{self.kind} name {name!r} is taken by {_qualified(held)}; give "
                f"{_qualified(cls)} a name of its own before registering it")
        self._classes[name] = cls
        if builtin:
            self._builtin.add(name)

    def check_class(self, cls: Any) -> None:
        """Refuse anything but a subclass of ``base``, with a ``TypeError`` naming it."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            call = self.register_call.rsplit(".", 1)[-1]
            raise TypeError(f"{call} expects a {self.base.__name__} subclass, got {cls!r}")

    def register(self, cls: Any) -> Any:
        """Register a user's `base` subclass under its class name; return it (a decorator)."""
        self.check_class(cls)
        self.add(cls.__name__, cls)
        return cls

    def get(self, name: str) -> type | None:
        return self._classes.get(name)

    def build(self, name: Any, kwargs: dict, what: str) -> Any:
        """`name`'s class built from `kwargs` (ValueError: unknown name, refused arguments)."""
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None:
            plural = self.kind + ("es" if self.kind.endswith("s") else "s")
            raise ValueError(f"unknown {what} {name!r}; register custom {plural} with "
                             f"xpnet.{self.register_call} (known: {', '.join(self._classes)})")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"{self.kind} {name}: bad config {kwargs!r}: {exc}") from None

    def names(self) -> list[str]:
        """Registered names, in the order they were registered (built-in ones first)."""
        return list(self._classes)

    def check_rebuildable(self, obj: Any, name: str, what: str) -> dict:
        """`obj`'s config (JSON), or ValueError saying why loading could not rebuild it."""
        cls, held = type(obj), self._classes.get(name)
        refused = f"{what} cannot be rebuilt from a checkpoint"
        if held is None:
            raise ValueError(f"{refused}: {_qualified(cls)} is not registered; register it "
                             f"with xpnet.{self.register_call}({cls.__name__})")
        if held is not cls:
            raise ValueError(
                f"{refused}: it would be stored as {name!r}, the name of {_qualified(held)}; "
                f"give {cls.__name__} a name of its own and register it with "
                f"xpnet.{self.register_call}")
        cfg = obj.get_config()
        try:
            cfg = json.loads(json.dumps(cfg))
        except (TypeError, ValueError) as exc:
            hint = " (a held layer goes in as {'class': type(layer).__name__, 'config': " \
                "layer.get_config()}, rebuilt by xpnet.layers.layer_from_config)" \
                if self.kind == "layer" else ""
            raise ValueError(f"{what}: get_config() must return a JSON-serialisable dict, got "
                             f"{cfg!r} ({exc}){hint}") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{what}: get_config() must return a dict, got {cfg!r}")
        missing = [p.name for p in inspect.signature(cls).parameters.values()
                   if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in cfg]
        if missing:
            raise ValueError(
                f"{refused}: {cls.__name__}() takes {', '.join(map(repr, missing))}, which "
                f"{cls.__name__}.get_config() does not return; return every constructor "
                "argument from get_config()")
        try:
            twin = cls(**cfg)
            twin_cfg = json.loads(json.dumps(twin.get_config()))
        except Exception as exc:  # the user's constructor: any error means "cannot rebuild"
            raise ValueError(f"{refused}: {cls.__name__}(**{cfg!r}) fails: {exc}") from None
        if twin_cfg != cfg:
            raise ValueError(f"{refused}: {cls.__name__}(**get_config()) has the config "
                             f"{twin_cfg!r}, not {cfg!r}")
        differs = _differing_attribute(obj, twin)
        if differs is not None:
            name, mine, theirs = differs
            raise ValueError(f"{refused}: {cls.__name__}(**get_config()) has {name}={theirs!r}, "
                             f"this object {name}={mine!r}; get_config() must return the "
                             "values it was built with")
        return cfg


def _differing_attribute(obj: Any, twin: Any, prefix: str = "",
                         depth: int = 0) -> tuple[str, Any, Any] | None:
    """(path, mine, theirs) of the first public attribute whose values differ, or None."""
    mine, theirs = getattr(obj, "__dict__", {}), getattr(twin, "__dict__", {})
    for name, value in mine.items():
        if name.startswith("_") or name == "trainable" or name not in theirs:
            continue
        found = _differing_value(f"{prefix}{name}", value, theirs[name], depth)
        if found is not None:
            return found
    return None


def _differing_value(path: str, a: Any, b: Any, depth: int) -> tuple[str, Any, Any] | None:
    """Where ``a`` and ``b`` differ by value (``_differing_attribute``), or None."""
    if depth > 20:  # a cycle of held objects: not judged
        return None
    if type(a) is not type(b):
        return None if _equal(a, b) is not False else (path, a, b)
    if isinstance(a, (list, tuple, dict)):  # item by item: an index or a key
        if len(a) != len(b) or isinstance(a, dict) and a.keys() != b.keys():
            return path, a, b
        for k in a if isinstance(a, dict) else range(len(a)):
            found = _differing_value(f"{path}[{k!r}]", a[k], b[k], depth + 1)
            if found is not None:
                return found
        return None
    if type(a).__eq__ is object.__eq__ and hasattr(a, "__dict__"):
        return _differing_attribute(a, b, f"{path}.", depth + 1)
    return (path, a, b) if _equal(a, b) is False else None


def _equal(a: Any, b: Any) -> bool | None:
    """``a == b`` as a bool, or None when it is not one (arrays) or raises."""
    try:
        same = a == b
    except Exception:  # an object whose == raises: not judged
        return None
    return same if isinstance(same, bool) else None
