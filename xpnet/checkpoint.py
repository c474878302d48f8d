"""Checkpoints: safetensors tensors + JSON metadata; atomic writes; never unpickles.

Files are written on the host (NumPy is used here for I/O only): parameters
and optimizer moments are copied off the device, serialised by safetensors,
written to a temp file in the target folder, fsynced, then ``os.replace``d
over the target, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks
from ._files import atomic_write_bytes
from ._version import __version__
from .backends import Backend, get_backend, to_numpy
from .blocks import _held_configs, _walk, _widths
from .layers import check_saveable as _layer_saveable
from .layers import layer_from_config
from .losses import check_saveable as _loss_saveable
from .model import Sequential
from .optimizers import Optimizer, _optimizer_class, _saveable_config, optimizer_from_config
from .training.state import TrainState

__all__ = ["save", "load", "load_checkpoint", "check_saveable", "Checkpoint",
           "CheckpointError"]

FORMAT = "xpnet"
FORMAT_VERSION = 1
_PARAM = "params/"
_OPT = "optimizer/"
_BUF = "buffers/"  # the layers' buffers (BatchNorm's running statistics)


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, or does not match what was asked.

    A ``ValueError``, so ``except ValueError`` catches it too.

    Examples
    --------
    >>> import os, tempfile, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "junk.safetensors")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"not a checkpoint")
    >>> try:
    ...     xn.load(path, backend="numpy")
    ... except xn.CheckpointError as exc:
    ...     print(str(exc).replace(path, "<path>"))  # doctest: +ELLIPSIS
    <path> is not an xpnet checkpoint: it looks like a text file, 16 bytes. A checkpoint is ...
    >>> tmp.cleanup()
    """


@dataclass
class Checkpoint:
    """Everything a checkpoint holds.

    Attributes
    ----------
    model : Sequential
        The model with its saved parameters, on the requested backend.
    optimizer : Optimizer or None
        The optimizer, with its state (moments, step count) restored.
    training : dict or None
        Where training stopped: ``epoch`` (epochs done), ``rng`` (the
        batch-order generator's state), ``seed``, ``history``. Pass it to
        ``fit(resume=...)`` to continue exactly.
    metadata : dict
        Versions, backend and time of the save, and any user metadata.

    Examples
    --------
    >>> import os, tempfile, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = xn.save(xn.MLP([3, 2], backend="numpy"), os.path.join(tmp.name, "m.safetensors"),
    ...                metadata={"run": "demo"})
    >>> ckpt = xn.load_checkpoint(path, backend="numpy")
    >>> ckpt.optimizer, ckpt.training, ckpt.metadata["user"], ckpt.metadata["dtype"]
    (None, None, {'run': 'demo'}, 'float32')
    >>> tmp.cleanup()
    """

    model: Any
    optimizer: Any = None
    training: dict | None = None
    metadata: dict = field(default_factory=dict)


def check_saveable(model: Any, optimizer: Any = None) -> tuple[dict, dict | None]:
    """Check that a file of ``model`` (and ``optimizer``) would load back as they are.

    [`save`][xpnet.checkpoint.save] calls it before it writes anything, and
    [`ModelCheckpoint`][xpnet.ModelCheckpoint] before the first epoch. Refused: a layer
    or a loss whose class is not registered ([`xpnet.register_layer`][],
    [`xpnet.register_loss`][]), or whose ``get_config()`` does not return
    every constructor argument or does not rebuild it; an optimizer of a class
    that is not registered ([`xpnet.register_optimizer`][]), whose config does not
    rebuild it, or whose schedule, decay mask or group selector is a function.

    Parameters
    ----------
    model : Sequential
    optimizer : Optimizer, optional

    Returns
    -------
    (dict, dict or None)
        The model's config and the optimizer's ``{"class", "config"}``.

    Raises
    ------
    ValueError
        Naming what cannot be rebuilt and what to do.

    Examples
    --------
    >>> import xpnet as xn
    >>> m = xn.MLP([3, 2], backend="numpy")
    >>> try:
    ...     xn.checkpoint.check_saveable(m, xn.Adam(lr=lambda step: 1e-3))
    ... except ValueError as exc:
    ...     print(str(exc).split(":")[0])
    the optimizer Adam(lr=lambda(step), betas=(0.9, 0.999), eps=1e-08) cannot be saved
    """
    config = model.get_config()
    for i, layer in enumerate(model.layers):  # the layers it holds first, then the layer
        for path, held in reversed(list(_walk(layer, str(i), root=True))):
            _layer_saveable(held, f"layer {path} ({type(held).__name__})")
    config["loss"] = _loss_saveable(model.loss)
    if optimizer is None:
        return config, None
    try:
        opt_meta = _saveable_config(optimizer)
    except ValueError as exc:
        raise ValueError(f"the optimizer {optimizer!r} cannot be saved: {exc}; or save the "
                         "weights and architecture alone with "
                         "xn.save(model, path, optimizer=False)") from None
    return config, opt_meta


def save(model: Any, path: str | os.PathLike, *, optimizer: Any = None,
         training: dict | None = None, metadata: dict | None = None) -> Path:
    """Save a model (and optionally its optimizer and training position) atomically.

    Parameters
    ----------
    model : Sequential
        From any backend; tensors are copied to the host for writing.
    path : str or Path
        Target file, conventionally ``*.safetensors``.
    optimizer : Optimizer, False or None
        Saved with its ``state``. None (the default) saves ``model.optimizer``
        when that has a state; False saves no optimizer (the weights and the
        architecture only, e.g. for an optimizer whose schedule is a function).
    training : dict, optional
        Training position (``epoch``, ``rng``, ``seed``, ``history``), as
        ``fit`` provides to [`xpnet.ModelCheckpoint`][]; an ``optimizer``
        key in it is used as the optimizer.
    metadata : dict, optional
        Extra JSON-serialisable information stored with the file.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Before anything is written, when the file would not load back as the
        model is (see [`check_saveable`][xpnet.checkpoint.check_saveable]).

    Examples
    --------
    >>> import tempfile, os, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> m = xn.MLP([4, 3], backend="numpy")
    >>> p = xn.save(m, os.path.join(tmp.name, "m.safetensors"))
    >>> xn.load(p, backend="numpy").params.keys() == m.params.keys()
    True
    >>> m.optimizer = xn.Adam(lr=lambda step: 1e-3 / (1 + step))
    >>> m.optimizer.state = m.optimizer.init(m.params)
    >>> p = xn.save(m, os.path.join(tmp.name, "w.safetensors"), optimizer=False)
    >>> xn.load_checkpoint(p, backend="numpy").optimizer is None
    True
    >>> tmp.cleanup()
    """
    from safetensors.numpy import save as st_save

    path = Path(path)
    optimizer, training = _saved_optimizer(model, optimizer, training)
    config, opt_meta = check_saveable(model, optimizer)
    if not path.parent.exists():
        raise FileNotFoundError(f"cannot save to {path}: folder {path.parent} does not exist")
    tensors = {_PARAM + k: _host(v) for k, v in model.params.items()}
    _check_loadable_params(model, config, tensors)
    for k, v in getattr(model, "buffers", {}).items():
        tensors[_BUF + k] = arr = _host(v)
        if not np.isfinite(arr).all():
            raise ValueError(f"cannot save: buffer {k!r} contains NaN or inf, and load "
                             "refuses such a file")
    meta: dict[str, str] = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "xpnet_version": __version__,
        "model": json.dumps(config),
        "backend": model.backend.name,
        "device": model.backend.device_name,
        "dtype": model.dtype_name,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if opt_meta is not None:
        tensors.update(_optimizer_tensors(model, optimizer.state, opt_meta))
        meta["optimizer"] = json.dumps(opt_meta)
    if training is not None:
        meta["training"] = json.dumps(training)
    if metadata:
        meta["user"] = json.dumps(metadata)
    atomic_write_bytes(path, st_save(tensors, metadata=meta))
    return path


def _host(a: Any) -> np.ndarray:
    """`a` as a C-contiguous host array, as safetensors writes it."""
    return np.ascontiguousarray(to_numpy(a))


def _check_loadable_params(model: Any, config: dict, tensors: dict[str, np.ndarray]) -> None:
    """Refuse, before writing, parameters (keys, shapes, dtype, NaN/inf) `load` would refuse."""
    shapes: dict[str, tuple] = {}
    widths = _widths(model.layers, model.in_features)
    for i, layer in enumerate(model.layers):
        need = layer.param_shapes(widths[i])
        if need is None:  # a layer that does not declare its shapes: build the architecture
            twin = Sequential.from_config(config, backend="numpy")
            shapes = {k: tuple(v.shape) for k, v in twin.params.items()}
            break
        shapes.update({f"{i}.{k}": tuple(v) for k, v in need.items()})
    why = "cannot save: load would refuse the file ({}); the model's parameters were " \
          "changed to values its architecture does not describe"
    got = {k[len(_PARAM):] for k in tensors if k.startswith(_PARAM)}
    if got != set(shapes):
        raise ValueError(why.format(f"parameters missing {sorted(set(shapes) - got)}, "
                                    f"unexpected {sorted(got - set(shapes))}"))
    for k, shape in shapes.items():
        arr = tensors[_PARAM + k]
        if tuple(arr.shape) != shape:
            raise ValueError(why.format(f"parameter {k!r} has shape {tuple(arr.shape)}, the "
                                        f"architecture needs {shape}"))
        if str(arr.dtype) != model.dtype_name:
            raise ValueError(why.format(f"parameter {k!r} has dtype {arr.dtype}, the model's "
                                        f"is {model.dtype_name}"))
        if not np.isfinite(arr).all():
            raise ValueError(f"cannot save: parameter {k!r} contains NaN or inf, and load "
                             "refuses such a file; save a model from before it diverged "
                             "(fit's on_nonfinite='raise' or 'skip' keeps it finite)")


def _saved_optimizer(model: Any, optimizer: Any, training: dict | None) -> tuple[Any, dict | None]:
    """The optimizer saved (given, else the record's, else the model's); the record without it."""
    training = dict(training) if training else None
    held = training.pop("optimizer", None) if training else None
    optimizer = held if optimizer is None else optimizer
    if optimizer is None and getattr(model, "optimizer", None) is not None \
            and model.optimizer.state is not None:
        optimizer = model.optimizer
    return (None if optimizer is False else optimizer), training


def _optimizer_tensors(model: Any, state: dict | None, opt_meta: dict) -> dict[str, np.ndarray]:
    """The slots as host tensors; `opt_meta` gains the step, the slot names and the covered keys."""
    if state is None:
        return {}
    slots = {s: values for s, values in state.items() if s not in ("step", "steps")}
    opt_meta["step"] = int(state["step"])
    opt_meta["slots"] = list(slots)
    if "steps" in state:
        opt_meta["steps"] = {k: int(n) for k, n in state["steps"].items()}
    if slots:
        covered = next(iter(slots.values()))
        opt_meta["keys"] = [k for k in model.params if k in covered]
    return {f"{_OPT}{slot}/{k}": _host(v) for slot, values in slots.items()
            for k, v in values.items()}


def _read(path: Path, tensors: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The file's tensors (none unless `tensors`) and metadata, after every check of its header."""
    from safetensors import safe_open

    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file (a checkpoint is one .safetensors file)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not an xpnet checkpoint: file too short "
                                  f"({size} bytes)")
        header_len = int.from_bytes(head[:8], "little")
        if header_len <= 1 or header_len > size - 8 or header_len > 100_000_000:
            kind = _looks_like(head)
            what = (f": it looks like {kind}, {size} bytes" if kind else
                    f" (safetensors header length {header_len} does not fit a {size}-byte file)")
            raise CheckpointError(
                f"{path} is not an xpnet checkpoint{what}. A checkpoint is the .safetensors "
                "file that xn.save and xpnet train write (model.safetensors in a run folder)")
        f.seek(8)  # the tensors counted in the raw header: parsing it costs ~1 kB each
        count = f.read(header_len).count(b'"data_offsets"')
    if count > _MAX_TENSORS:
        raise CheckpointError(f"{path} holds {count:,} tensors; an xpnet checkpoint holds at "
                              f"most {_MAX_TENSORS:,}: damaged or not written by xpnet")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not an xpnet checkpoint")
            keys = list(f.keys())
            limit = _tensor_limit(meta)
            if len(keys) > limit:  # each tensor costs memory, even an empty one
                raise CheckpointError(
                    f"{path} holds {len(keys):,} tensors; the model and optimizer it "
                    f"describes can use at most {limit:,}: damaged or not written by xpnet")
            arrays = {k: f.get_tensor(k) for k in keys} if tensors else {}
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a valid xpnet checkpoint: {_bounded(exc)}") from None
    # the exact text save writes: int() would also take " 1" and Arabic-Indic digits
    if meta.get("format_version") != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('format_version')!r} "
                              f"is not supported (expected {FORMAT_VERSION})")
    return arrays, meta


# tensors a checkpoint may hold per layer of its manifest, parameters and optimizer slots
# together (a Dense layer has 2 parameters, Adam 2 slots each: 6)
_TENSORS_PER_LAYER = 1024
_MAX_TENSORS = 65_536  # whatever the manifest says


def _tensor_limit(meta: dict) -> int:
    """The most tensors the file's manifest can use, checked before any is read."""
    try:
        layers = json.loads(meta.get("model", "{}")).get("layers")
    except (ValueError, RecursionError, AttributeError):
        layers = None
    try:  # a layer that holds layers counts each
        n = sum(1 for c in layers for _ in _held_configs(c)) if isinstance(layers, list) else 0
    except ValueError:  # nested too deep: refused when the model is read
        n = 0
    return _TENSORS_PER_LAYER * (n + 1)


_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip file"),
          (b"PK\x03\x04", "a zip archive such as an .npz"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"\x00\x00\x08", "an IDX file (MNIST's format)"))


def _looks_like(head: bytes) -> str | None:
    """What a file that is not a checkpoint seems to be, from its first bytes."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file" if all(c.isprintable() or c in "\r\n\t" for c in text) else None


def _json(meta: dict, key: str, path: Path) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError, RecursionError) as exc:  # ValueError: JSON, huge ints
        raise CheckpointError(f"{path}: metadata {key!r} is missing or not JSON ({exc})") from None


# Errors a hostile or corrupted manifest can provoke while rebuilding objects from it.
_CONFIG_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
                  RecursionError)
_BAD_MODEL = "bad model architecture in metadata: "
_BAD_OPT = "bad optimizer metadata: "

# the constructor annotations a manifest value is checked against (others are left to the
# constructor): "bias": "no" would be taken as true, "units": 8.0 as a size
_SCALAR_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


@contextlib.contextmanager
def _refusing(path: Path, what: str) -> Iterator[None]:
    """Raise what a bad manifest provokes (`_CONFIG_ERRORS`) as a CheckpointError."""
    try:
        yield
    except _CONFIG_ERRORS as exc:
        raise CheckpointError(f"{path}: {what}{_bounded(exc)}") from None


def _bounded(exc: BaseException, limit: int = 300) -> str:
    """An error's text cut to `limit` characters (a hostile manifest quoted ran to megabytes)."""
    text = str(exc)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


@functools.lru_cache(maxsize=256)
def _init_hints(cls: type) -> dict[str, str]:
    """The string annotations of the ``__init__`` parameters along `cls`'s MRO (subclasses win)."""
    hints: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if inspect.isfunction(init):
            hints.update({name: hint for name, hint in init.__annotations__.items()
                          if isinstance(hint, str) and name != "return"})
    return hints


def _check_config_types(cls: type | None, config: Any, what: str) -> None:
    """Check each config value against its parameter's annotation where that is a scalar type."""
    if cls is None or not isinstance(config, dict):  # an unknown class: refused by its lookup
        return
    hints = _init_hints(cls)
    for key, value in config.items():
        parts = [t.strip() for t in hints.get(key, "").split("|")]
        optional = "None" in parts
        parts = [t for t in parts if t != "None"]
        if len(parts) != 1 or parts[0] not in _SCALAR_TYPES or (value is None and optional):
            continue
        want = _SCALAR_TYPES[parts[0]]
        if isinstance(value, bool) != (want == (bool,)) or not isinstance(value, want):
            raise ValueError(f"{what}: {key!r} must be {parts[0]}, got "
                             f"{type(value).__name__} {repr(value)[:40]}")


def _check_shapes(config: Any, tensors: dict, path: Path) -> None:
    """Compare the layers' declared shapes with the file's before a lying manifest allocates."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise CheckpointError(f"{path}: {_BAD_MODEL}model config must be a dict with a "
                              "'layers' list")
    with _refusing(path, _BAD_MODEL):
        n = _checks.check_int("in_features", config.get("in_features"))
        for c in config["layers"]:
            for cls, inner in _held_configs(c):  # the layer's, and those of layers it holds
                _check_config_types(cls, inner, f"layer {cls.__name__}")
        layers = [layer_from_config(c) for c in config["layers"]]
    for i, layer in enumerate(layers):
        with _refusing(path, _BAD_MODEL):
            need = layer.param_shapes(n)
            bufs = layer.buffer_shapes(n)
            n = layer.out_features(n)
        wanted = [(f"{_PARAM}{i}.{k}", v) for k, v in (need or {}).items()] + \
            [(f"{_BUF}{i}.{k}", v) for k, v in (bufs or {}).items()]
        for key, shape in wanted:
            if key not in tensors:
                raise CheckpointError(f"{path}: tensors do not match the architecture "
                                      f"(missing [{key!r}])")
            got = tuple(tensors[key].shape)
            if got != tuple(shape):
                raise CheckpointError(f"{path}: tensor {key!r} has shape {got}, layer {i} "
                                      f"({type(layer).__name__}) needs {tuple(shape)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise CheckpointError(f"{path}: {_BAD_MODEL}layer {i} gives {n!r} features")


def _slot_keys(om: dict, tensors: dict, slots: list, params: dict, path: Path) -> list[str]:
    """The parameters the optimizer state covers (the record's ``keys``, else all), in each slot."""
    keys = om.get("keys", list(params))
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) \
            or len(set(keys)) != len(keys) or not set(keys) <= set(params):
        raise CheckpointError(f"{path}: {_BAD_OPT}keys {keys!r} are not distinct "
                              f"parameters of the model ({sorted(params)})")
    for slot in slots:
        prefix = f"{_OPT}{slot}/"
        have = sorted(k[len(prefix):] for k in tensors if k.startswith(prefix))
        if have != sorted(keys):
            raise CheckpointError(f"{path}: optimizer slot {slot!r} holds tensors for "
                                  f"{have}, the record says {sorted(keys)}")
    return [k for k in params if k in set(keys)]


def _param_steps(om: dict, keys: list[str], step: int, path: Path) -> dict[str, int]:
    """Each covered parameter's update count: the record's ``steps``, else (old files) ``step``."""
    steps = om.get("steps")
    if steps is None:
        return dict.fromkeys(keys, step)
    if not isinstance(steps, dict) or sorted(steps) != sorted(keys) or not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= step
            for n in steps.values()):
        raise CheckpointError(f"{path}: {_BAD_OPT}steps {steps!r} must give "
                              f"each of {sorted(keys)} an update count in [0, {step}]")
    return {k: steps[k] for k in keys}


def _slot_tensor(tensors: dict, name: str, ref: Any, model: Sequential, nonnegative: bool,
                 path: Path) -> Any:
    """Optimizer tensor `name` on the backend: `ref`'s shape and dtype, finite, >= 0 if asked."""
    arr = tensors.get(name)
    if arr is None or tuple(arr.shape) != tuple(ref.shape) or str(arr.dtype) != model.dtype_name:
        raise CheckpointError(f"{path}: optimizer tensor {name!r} is missing or has the wrong "
                              "shape or dtype")
    if arr.size and not np.isfinite(arr).all():
        raise CheckpointError(f"{path}: optimizer tensor {name!r} contains NaN or inf")
    if nonnegative and arr.size and float(arr.min()) < 0:
        raise CheckpointError(f"{path}: optimizer tensor {name!r} holds negative values "
                              f"(down to {float(arr.min()):.3g}); it is a mean of squares")
    return model.backend.asarray(arr, dtype=model.dtype)


def _load_model(meta: dict, tensors: dict, be: Backend, path: Path) -> Sequential:
    """The model the manifest describes, with the file's parameters (each checked)."""
    config = _json(meta, "model", path)
    _check_shapes(config, tensors, path)
    if config.get("dtype") in ("float32", "float64"):
        be.dtype(config["dtype"])  # BackendError: JAX holds float64 only in its 64-bit mode
    with _refusing(path, _BAD_MODEL):
        model = Sequential.from_config(config, backend=be)
    model.params = _model_tensors(model, tensors, _PARAM, model.params, "tensors", path)
    model.buffers = _model_tensors(model, tensors, _BUF, model.buffers, "buffers", path)
    return model


def _model_tensors(model: Sequential, tensors: dict, prefix: str, refs: dict, what: str,
                   path: Path) -> dict:
    """The file's tensors under `prefix` for the keys of `refs`, each checked, on the backend."""
    expected = {prefix + k: v for k, v in refs.items()}
    got = {k for k in tensors if k.startswith(prefix)}
    if got != set(expected):
        raise CheckpointError(
            f"{path}: {what} do not match the architecture (missing "
            f"{sorted(set(expected) - got)}, unexpected {sorted(got - set(expected))})")
    for k, ref in expected.items():
        arr, shape = tensors[k], tuple(ref.shape)
        if tuple(arr.shape) != shape:
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(arr.shape)}, the "
                                  f"architecture needs {shape}")
        if str(arr.dtype) != model.dtype_name:
            raise CheckpointError(f"{path}: tensor {k!r} has dtype {arr.dtype}, expected "
                                  f"{model.dtype_name}")
        if not np.isfinite(arr).all():
            raise CheckpointError(f"{path}: tensor {k!r} contains NaN or inf")
    return {k[len(prefix):]: model.backend.asarray(tensors[k], dtype=model.dtype)
            for k in expected}


def _load_optimizer(meta: dict, tensors: dict, model: Sequential, path: Path) -> Optimizer:
    """The optimizer of the manifest, with its state (every slot checked) when saved."""
    om = _json(meta, "optimizer", path)
    with _refusing(path, _BAD_OPT):
        _check_config_types(_optimizer_class(om["class"]), om["config"], f"optimizer {om['class']}")
        optimizer = optimizer_from_config(om["class"], om["config"])
    if "step" not in om:
        return optimizer
    step, slots = om["step"], om.get("slots", [])
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: {_BAD_OPT}step must be an int >= 0, got {step!r}")
    if not isinstance(slots, list) or sorted(map(str, slots)) != sorted(optimizer.slots):
        raise CheckpointError(f"{path}: {_BAD_OPT}slots {slots!r}, "
                              f"{type(optimizer).__name__} has {list(optimizer.slots)}")
    keys = _slot_keys(om, tensors, slots, model.params, path)
    state: dict = {"step": step, "steps": _param_steps(om, keys, step, path)}
    for slot in slots:
        nonnegative = slot in optimizer.nonnegative_slots  # a mean of squares: square-rooted
        state[slot] = {k: _slot_tensor(tensors, f"{_OPT}{slot}/{k}", model.params[k], model,
                                       nonnegative, path) for k in keys}
    optimizer.state = state
    return optimizer


def load_checkpoint(path: str | os.PathLike, *, backend: str | Backend = "auto",
                    device: Any = None) -> Checkpoint:
    """Load a model, its optimizer state and training position from a checkpoint.

    It takes the arguments and raises the errors of [`load`][xpnet.checkpoint.load],
    which returns only the ``model`` of this result.

    Returns
    -------
    Checkpoint

    Examples
    --------
    >>> import os, tempfile, numpy as np, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> m = xn.MLP([3, 2], backend="numpy")
    >>> h = m.fit(np.zeros((8, 3), "float32"), np.zeros(8, "int64"), epochs=2, verbose=0)
    >>> path = xn.save(m, os.path.join(tmp.name, "m.safetensors"))  # with m.optimizer
    >>> ckpt = xn.load_checkpoint(path, backend="numpy")
    >>> type(ckpt.optimizer).__name__, ckpt.optimizer.state["step"]
    ('Adam', 2)
    >>> tmp.cleanup()
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    be = get_backend(backend, device)
    tensors, meta = _read(path)
    model = _load_model(meta, tensors, be, path)
    if "optimizer" in meta:
        model.optimizer = _load_optimizer(meta, tensors, model, path)
    return _records(meta, path, model)


def _read_records(path: Path) -> Checkpoint:
    """`load_checkpoint` without the tensors: the training record and metadata; no model."""
    return _records(_read(path, tensors=False)[1], path)


def _records(meta: dict, path: Path, model: Any = None) -> Checkpoint:
    """The checkpoint of `model` with the file's training record and metadata, both checked."""
    training = _json(meta, "training", path) if "training" in meta else None
    if training is not None:  # the schema fit(resume=...) reads
        with _refusing(path, ""):
            TrainState.from_record(training)
    info = {k: v for k, v in meta.items() if k not in ("model", "optimizer", "training", "user")}
    if "user" in meta:
        info["user"] = _json(meta, "user", path)
    return Checkpoint(model=model, optimizer=getattr(model, "optimizer", None),
                      training=training, metadata=info)


def load(path: str | os.PathLike, *, backend: str | Backend = "auto",
         device: Any = None) -> Sequential:
    """Load a model saved with [`save`][xpnet.checkpoint.save] onto any backend.

    Parameters
    ----------
    path : str or Path
    backend : str or Backend
        Where to put the tensors; any backend can load a file saved from any other.
    device : optional
        Device on the backend.

    Returns
    -------
    Sequential
        With ``model.optimizer`` restored when the file holds one; the training
        position is in [`load_checkpoint`][xpnet.checkpoint.load_checkpoint]'s result.

    Raises
    ------
    CheckpointError
        For a file that is not a checkpoint, is truncated or corrupted, or whose
        tensors do not match its architecture.
    FileNotFoundError

    Examples
    --------
    >>> import os, tempfile, numpy as np, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> m = xn.MLP([3, 4, 2], backend="numpy", seed=3)
    >>> path = xn.save(m, os.path.join(tmp.name, "m.safetensors"))
    >>> back = xn.load(path, backend="array_api_strict")  # any backend
    >>> back.backend.name, np.array_equal(xn.to_numpy(back.params["0.W"]), m.params["0.W"])
    ('array_api_strict', True)
    >>> tmp.cleanup()
    """
    return load_checkpoint(path, backend=backend, device=device).model
