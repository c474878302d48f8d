"""Input checks shared by the public entry points.

Every check runs before any work is done and raises ``ValueError`` or
``TypeError`` with a message that names the argument, the bad value and what
was expected.  NumPy is used here for host-side inspection of host inputs.

Inputs (`as_array`): arrays pass as they are; lists, data frames and series, and objects
with ``__dlpack__`` or ``__array__`` are converted once. A table's columns must be numbers
or bools: features become float32 when every column is, else float64; targets keep their
dtype; text, categories and dates are refused with the way to encode them
(tests/test_inputs_python.py shows each case). ``values=False`` skips the checks that
read the values of arrays already on the device (each a device-to-host sync). A memory
map of another dtype or backend is streamed (``check_X(..., stream=True)`` returns a
`HostRows`), so that fit, evaluate and predict never hold a converted copy of it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
import weakref
from collections.abc import Collection
from typing import Any, Literal, NoReturn, overload

import array_api_compat
import numpy as np

from .backends import Backend, _namespace_of, backend_of, dtype_name, to_numpy

FLOAT_DTYPES = ("float32", "float64")


@overload
def check_int(name: str, value: Any, *, minimum: int = ...,
              allow_none: Literal[False] = ...) -> int: ...
@overload
def check_int(name: str, value: Any, *, minimum: int = ..., allow_none: bool) -> int | None: ...
def check_int(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """An int >= `minimum` (bools refused); ``None`` passes only with `allow_none`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = True) -> float:
    """A finite real within the bounds given (`low_open`, `high_open`: strict)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (NumPy's bools too), nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_sizes(name: str, value: Any) -> list[int]:
    """Layer widths, an int or a sequence of ints >= 1 (may be empty), as a list."""
    sizes = [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
        else value
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    return [int(s) for s in sizes]


def check_dtype(dtype: Any) -> str:
    """Normalise a float dtype spec to ``"float32"`` or ``"float64"``."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


_is_array = array_api_compat.is_array_api_obj


def check_param_value(key: str, value: Any, ref: Any, what: str = "parameter", *,
                      copied: bool = False) -> None:
    """Refuse a `what` unlike `ref` in kind, shape or dtype (`copied`: any array of its library)."""
    if not _is_array(value) or type(value) is not type(ref) and not (
            copied and _namespace_of(value) is _namespace_of(ref)):
        kind = f"{_kind(value)} {type(value).__name__}" if _is_array(value) \
            else type(value).__name__
        raise TypeError(f"{what} {key!r} is {_a(kind)} {kind}, the model's arrays are "
                        f"{_kind(ref)} {type(ref).__name__}")
    if tuple(value.shape) != tuple(ref.shape):
        raise ValueError(f"{what} {key!r} has shape {tuple(value.shape)}, expected "
                         f"{tuple(ref.shape)}")
    if dtype_name(value.dtype) != dtype_name(ref.dtype):
        raise TypeError(f"{what} {key!r} has dtype {dtype_name(value.dtype)}, the model's "
                        f"is {dtype_name(ref.dtype)}")


def _kind(a: Any) -> str:
    mod = type(a).__module__.split(".")[0]
    return {"numpy": "NumPy", "cupy": "CuPy", "torch": "torch", "jax": "JAX", "jaxlib": "JAX",
            "array_api_strict": "array_api_strict"}.get(mod, mod)


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _from_sequence(name: str, a: Any) -> Any:
    """Turn a list/tuple into a NumPy array; a ragged or non-numeric one is refused by name."""
    if not isinstance(a, (list, tuple)):
        return a
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} could not be converted to an array ({exc}); "
                         "pass a rectangular array of numbers") from None


def frame_columns(X: Any) -> list[str] | None:
    """The column names of a data frame when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "to_numpy"):
        return None
    names = list(columns)
    return names if names and all(isinstance(c, str) for c in names) else None


def check_columns(model: Any, X: Any, name: str = "X") -> None:
    """Refuse a data frame whose columns differ from ``model.feature_names_in_``."""
    want = getattr(model, "feature_names_in_", None)
    got = frame_columns(X)
    if want is None or got is None or got == want:
        return
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    if not missing and not extra:
        first = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        raise ValueError(
            f"{name}'s columns are the model's in another order (column {first} is "
            f"{got[first]!r}, at fit it was {want[first]!r}); the values are taken by "
            f"position, so reorder them: {name}[model.feature_names_in_]")
    raise ValueError(
        f"{name}'s columns differ from those the model was fitted on: missing "
        f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, not seen at fit "
        f"{extra[:5]}{' ...' if len(extra) > 5 else ''}; pass "
        f"{name}[model.feature_names_in_] with those columns")


def as_array(name: str, a: Any, backend: Backend | None = None, *,
             targets: bool = False) -> Any:
    """`a` as an array, converted once where it is not one (see the module docstring)."""
    if _is_array(a):
        return a
    if isinstance(a, (list, tuple)):
        return _from_sequence(name, a)
    if hasattr(a, "to_numpy") and (hasattr(a, "dtypes") or hasattr(a, "dtype")):
        return _from_frame(name, a, targets)
    if hasattr(a, "__dlpack__"):
        for make in ([backend.xp.from_dlpack] if backend is not None else []) + [np.from_dlpack]:
            with contextlib.suppress(Exception):  # a device or layout this library cannot take
                return make(a)
    if hasattr(a, "__array__"):
        out = np.asarray(a)
        if out.dtype == object:
            raise TypeError(f"{name} ({type(a).__name__}) converts to an array of Python "
                            "objects, not numbers; pass a numeric array")
        return out
    return a


# a dtype's kind from its name where it has no ``kind`` (Polars: Float64, Int8, Boolean...)
_KIND_BY_NAME = (("float", "f"), ("decimal", "f"), ("int", "i"), ("uint", "i"), ("bool", "b"),
                 ("date", "M"), ("time", "M"), ("duration", "M"), ("categorical", "C"),
                 ("enum", "C"))
_COLUMN_KINDS = {"b": "number", "i": "number", "u": "number", "f": "number", "C": "categories",
                 "M": "dates or times", "m": "dates or times", "c": "complex numbers"}


def _column_kind(dtype: Any) -> str:
    """``"number"`` or what a column of this dtype holds (`_COLUMN_KINDS`, else text)."""
    text = str(dtype).lower()
    kind = getattr(dtype, "kind", None)
    if kind is None:
        kind = next((k for name, k in _KIND_BY_NAME if text.startswith(name)), "O")
    return "categories" if text == "category" else _COLUMN_KINDS.get(kind, "text")


def _numpy_dtype(dtype: Any) -> np.dtype | None:
    """The NumPy dtype of a column's dtype, or None for another library's."""
    try:
        return np.dtype(getattr(dtype, "numpy_dtype", dtype))
    except TypeError:
        return None


# how to fix a column that is not numbers, by (targets, text or categories)
_FRAME_FIXES = {
    (True, True): "encode them as integer labels 0..k-1 first, e.g. codes, names = "
                  "pandas.factorize(y)",
    (True, False): "convert them to numbers first",
    (False, True): "encode it first: pandas.get_dummies(df) one-hot encodes text columns (or "
                   "train from the file with `xpnet train --dataset FILE.csv`, which encodes "
                   "them)",
    (False, False): "convert it to numbers first (e.g. df[col].astype('int64'), or features "
                    "such as the day of the week)",
}


def _from_frame(name: str, a: Any, targets: bool) -> Any:
    """A data frame or series (pandas, or anything with ``to_numpy`` and dtypes) as NumPy."""
    frame = hasattr(a, "dtypes") and hasattr(a, "columns")
    dtypes = list(a.dtypes) if frame else [a.dtype]
    labels = list(a.columns) if frame else [getattr(a, "name", None)]
    for label, dt in zip(labels, dtypes, strict=False):
        what = _column_kind(dt)
        if what == "number":
            continue
        where = f"{name}: column {label!r}" if frame else f"{name} ({type(a).__name__})"
        fix = _FRAME_FIXES[targets, what in ("text", "categories")]
        raise TypeError(f"{where} holds {what} ({dt}); {fix}")
    found = [_numpy_dtype(dt) for dt in dtypes]  # None: another library's dtype
    if targets and None in found:
        return np.asarray(a.to_numpy())
    if targets:
        target = np.result_type(*found) if found else np.dtype(np.float64)
    else:  # float32 when every column is, else float64
        target = np.dtype(np.float32 if found and all(d == np.float32 for d in found)
                          else np.float64)
    try:
        # a copy of our own: pandas' copy-on-write views are read-only, which PyTorch warns of
        out = a.to_numpy(dtype=target, na_value=np.nan, copy=True) if target.kind == "f" \
            else a.to_numpy(dtype=target, copy=True)
    except TypeError:
        out = np.asarray(a.to_numpy(), dtype=target)
    except ValueError as exc:
        raise ValueError(f"{name} ({type(a).__name__}) could not be converted to {target} "
                         f"({exc}); fill or drop its missing values first") from None
    return np.asarray(out)


def _check_numeric(name: str, dname: str, expected: str = "numbers") -> None:
    if dname.startswith("complex"):
        raise TypeError(f"{name} has complex dtype {dname}; xpnet trains on real floats")
    if dname not in ("bool", "float16", "float32", "float64", "bfloat16") \
            and not dname.startswith(("int", "uint")):
        raise TypeError(f"{name} has unsupported dtype {dname}; expected {expected}")


def to_backend(name: str, a: Any, backend: Backend, dtype: str | None = None) -> Any:
    """`a` on `backend` in `dtype` (a host one cast before its copy); another backend's refused."""
    a = _from_sequence(name, a)
    if not _is_array(a):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    if not backend.owns(a):
        if not isinstance(a, np.ndarray):
            _refuse_foreign(name, a, backend)
        if dtype is not None:
            with np.errstate(over="ignore"):  # beyond the dtype's range: inf, refused after
                a = a.astype(dtype, copy=False)
        a = backend.asarray(a)
    if dtype is None or a.dtype == (target := backend.dtype(dtype)):
        return a
    return backend.xp.astype(a, target)


def _refuse_foreign(name: str, a: Any, backend: Backend) -> NoReturn:
    theirs = backend_of(a)
    if theirs.name != backend.name:
        kind = _kind(a)
        raise TypeError(
            f"{name} is {_a(kind)} {kind} array but the model lives on backend {backend.name!r}; "
            f"pass a NumPy array, or move the model with model.to({theirs.name!r})"
        )
    raise TypeError(
        f"{name} is on device {theirs.device} but the model is on {backend.device}; "
        f"move the data or the model (model.to({backend.name!r}, device=...))"
    )


def _check_host_values(name: str, host: np.ndarray, dtype: str) -> None:
    """Refuse NaN, inf and (float32 model) values beyond float32; no copy."""
    if host.dtype.kind not in "fc":
        return
    # min and max propagate NaN and expose inf without a boolean copy of X
    low, high = float(host.min()), float(host.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int(np.size(host) - np.count_nonzero(np.isfinite(host)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values; clean the data first")
    if dtype == "float32" and host.dtype.itemsize > 4:
        big = max(abs(low), abs(high))
        if big > float(np.finfo(np.float32).max):
            raise ValueError(f"{name} has values up to {big:.3g}, beyond float32's range "
                             f"(3.4e38), where the model computes; scale the data or build the "
                             f"model with dtype='float64'")


class HostRows:
    """Rows of a host memory map, converted a batch at a time by `batch_rows`."""

    ndim = 2

    def __init__(self, array: np.ndarray, backend: Backend, dtype: str):
        self.array, self.backend, self.dtype_name = array, backend, dtype
        self.shape = tuple(array.shape)

    def __getitem__(self, rows: Any) -> HostRows:
        if isinstance(rows, tuple) and len(rows) == 2 and rows[1] is Ellipsis:
            rows = rows[0]
        if not isinstance(rows, slice):
            raise TypeError("rows of a memory-mapped X are taken by slices")
        return HostRows(self.array[rows], self.backend, self.dtype_name)

    def batch_rows(self, lo: int, hi: int, perm: Any = None) -> Any:
        """Rows ``lo:hi`` (or ``perm[lo:hi]``, an index array) on the backend, converted."""
        if perm is None:  # a copy (writable, unlike the memory map, for PyTorch)
            part = np.array(self.array[lo:hi], dtype=self.dtype_name)
        else:  # the index vector comes to the host once per batch
            part = np.take(self.array, to_numpy(perm[lo:hi]), axis=0)
        return self.backend.asarray(part.astype(self.dtype_name, copy=False),
                                    dtype=self.backend.dtype(self.dtype_name))


def _streams(X: Any, backend: Backend, dtype: str) -> bool:
    """Whether `X` is a memory map the model cannot read in place (so `HostRows`)."""
    return isinstance(X, np.memmap) and not (backend.owns(X) and X.dtype == np.dtype(dtype))


def check_X(X: Any, backend: Backend, dtype: str, n_features: int | None,
            name: str = "X", *, values: bool = True, stream: bool = False) -> Any:
    """Features on `backend` in `dtype`; ``stream=True`` may return a `HostRows`."""
    if stream and isinstance(X, HostRows):
        if n_features is not None and X.shape[1] != n_features:
            raise ValueError(f"{name} has {X.shape[1]} features, the model expects "
                             f"{n_features}")
        return X
    X, read = _unmasked(name, X, backend, "a 2-D float array", values, targets=False)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}"
            + ("; flatten images with X.reshape(len(X), -1)" if X.ndim > 2 else "")
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    dname = dtype_name(X.dtype)
    _check_numeric(name, dname, "float32 or float64")
    # an int memory map is converted (a batch at a time with stream=True), not cast in memory
    if dname == "bool" or dname.startswith(("int", "uint")) and not isinstance(X, np.memmap):
        hint = " / 255" if dname == "uint8" else ""
        raise TypeError(f"{name} has dtype {dname}; convert it to floats first, "
                        f"e.g. {_cast_hint(X, name, 'float32')}{hint}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, the model expects {n_features}")
    host = X if isinstance(X, np.ndarray) and read else None
    if host is not None and host.size:
        _check_host_values(name, host, dtype)
    if stream and _streams(X, backend, dtype):
        return HostRows(X, backend, dtype)
    Xd = to_backend(name, X, backend, dtype)
    xp = backend.xp
    if values and host is None and not bool(xp.all(xp.isfinite(Xd))):
        raise ValueError(f"{name} contains NaN or infinite values; clean the data first")
    return Xd


UNSCALED_LIMIT = 10.0
"""``fit`` warns when a feature column's mean lies beyond +-``UNSCALED_LIMIT`` or its
standard deviation above it (on up to ``UNSCALED_ROWS`` evenly spaced rows)."""
UNSCALED_ROWS = 10_000
_warned_unscaled: weakref.WeakSet = weakref.WeakSet()


def warn_if_unscaled(model: Any, Xd: Any, name: str = "X") -> None:
    """Log once per model when `Xd` looks unscaled and no adapted Normalization leads."""
    first = model.layers[0] if model.layers else None
    normalization = type(first).__name__ == "Normalization"
    if model in _warned_unscaled:
        return
    if normalization:  # adapted, or loaded adapted (its mean and scale are not 0 and 1)
        stats = model.layer_params(0)
        if getattr(first, "_stats", None) is not None or (to_numpy(stats["mean"]) != 0).any() \
                or (to_numpy(stats["scale"]) != 1).any():
            return
    n = int(Xd.shape[0])
    step = max(1, n // UNSCALED_ROWS)
    rows = slice(0, min(n, step * UNSCALED_ROWS), step)  # evenly spaced, UNSCALED_ROWS at most
    xp, sample = (np, np.asarray(Xd.array[rows], dtype=np.float64)) \
        if isinstance(Xd, HostRows) else (model.xp, Xd[rows, ...])
    mean, std = (to_numpy(f(sample, axis=0)).astype(np.float64) for f in (xp.mean, xp.std))
    size = np.maximum(np.abs(mean), std)
    j = int(np.argmax(size))
    if not size[j] > UNSCALED_LIMIT:
        return
    _warned_unscaled.add(model)
    if normalization:
        logging.getLogger("xpnet").warning(
            "fit: %s looks unscaled (column %d has mean %.4g and standard deviation %.4g) and "
            "the model's first layer, a Normalization, was never adapted, so it passes %s "
            "through unchanged: adapt it before building the model, e.g. "
            "xn.Sequential([xn.Normalization().adapt(%s), ...]) (the model holds a copy of "
            "the layers it was built from, so adapting the original afterwards changes "
            "nothing). (Logged once per model.)", name, j, mean[j], std[j], name, name)
        return
    logging.getLogger("xpnet").warning(
        "fit: %s looks unscaled: column %d has mean %.4g and standard deviation %.4g (xpnet "
        "warns beyond +-%g). An MLP trains best on features of mean about 0 and standard "
        "deviation about 1: put xn.Normalization().adapt(%s) first in the model, e.g. "
        "xn.Sequential([xn.Normalization().adapt(%s), xn.Dense(64), xn.ReLU(), "
        "xn.Dense(n_outputs)], in_features=%d), or standardize %s yourself. (Logged once per "
        "model.)", name, j, mean[j], std[j], UNSCALED_LIMIT, name, name, Xd.shape[1], name)


def _unmasked(name: str, a: Any, backend: Backend, what: str, values: bool,
              targets: bool = True) -> tuple[Any, bool]:
    """`a` as an array (`what`), not masked; and whether to read its values."""
    a = as_array(name, a, backend, targets=targets)
    if not _is_array(a):
        raise TypeError(f"{name} must be {what}, got {type(a).__name__}")
    if isinstance(a, np.ma.MaskedArray):
        hint = "" if targets else f" (e.g. {name}.filled(0.0) or {name}.compressed())"
        raise TypeError(f"{name} is a masked array; fill or drop the masked values first{hint}")
    # values=False skips reads on the device only: a host array is read before its copy
    return a, values or (isinstance(a, np.ndarray) and not backend.owns(a))


def check_y(y: Any, backend: Backend, dtype: str, n_samples: int, loss: Any, n_outputs: int,
            name: str = "y", *, values: bool = True) -> Any:
    """Targets checked by ``loss.check_target``."""
    y, values = _unmasked(name, y, backend, "an array", values)
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {tuple(y.shape)}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {y.shape[0]}")
    _check_numeric(name, dtype_name(y.dtype))
    return loss.check_target(y, backend=backend, dtype=dtype, n_outputs=n_outputs, name=name,
                             values=values)


def is_integer_array(a: Any) -> bool:
    """Whether ``a`` has an integer dtype (labels)."""
    return dtype_name(a.dtype).startswith(("int", "uint"))


def _cast_hint(a: Any, name: str, dtype: str) -> str:
    """How to cast ``a`` in its own library: ``X.to(torch.float32)`` or ``X.astype(...)``."""
    short = name.split()[-1]
    if type(a).__module__.startswith("torch"):
        return f"{short}.to(torch.{dtype})"
    return f"{short}.astype('{dtype}')"


def check_labels(y: Any, backend: Backend, n_classes: int, name: str = "y", *,
                 values: bool = True) -> Any:
    """Integer class labels in ``[0, n_classes)``, returned as int64 on ``backend``."""
    if not is_integer_array(y):
        raise TypeError(
            f"{name} has dtype {dtype_name(y.dtype)}; class labels must be integers "
            f"0..{n_classes - 1} (convert with {_cast_hint(y, name, 'int64')})"
        )
    yd = to_backend(name, y, backend)
    xp = backend.xp
    lo, hi = (int(xp.min(yd)), int(xp.max(yd))) if values else (0, 0)
    if lo < 0 or hi >= n_classes:
        raise ValueError(
            f"{name} has labels in [{lo}, {hi}] but the model has {n_classes} classes "
            f"(labels must be in [0, {n_classes - 1}])"
        )
    index = backend.index_dtype
    return yd if yd.dtype == index else xp.astype(yd, index)


def check_float_targets(y: Any, backend: Backend, dtype: str, n_outputs: int, name: str = "y",
                        *, values: bool = True, unit_range: str | None = None) -> Any:
    """Float targets (n, n_outputs) or (n,); `unit_range` names a loss wanting [0, 1]."""
    if y.ndim == 2 and y.shape[1] != n_outputs:
        raise ValueError(f"{name} has {y.shape[1]} columns, the model has {n_outputs} outputs")
    if y.ndim == 1 and n_outputs != 1:
        raise ValueError(
            f"{name} is 1-D but the model has {n_outputs} outputs; pass shape (n, {n_outputs})"
        )
    yd = to_backend(name, y, backend, dtype)
    xp = backend.xp
    if values and not bool(xp.all(xp.isfinite(yd))):
        raise ValueError(f"{name} contains NaN or infinite values")
    if values and unit_range is not None:
        vmin, vmax = float(xp.min(yd)), float(xp.max(yd))
        if vmin < 0.0 or vmax > 1.0:
            raise ValueError(
                f"{name} has values in [{vmin:g}, {vmax:g}]; {unit_range} targets "
                f"(0/1 labels or probabilities) must be in [0, 1]"
            )
    return yd


def check_sample_weight(w: Any, backend: Backend, dtype: str, n_samples: int, loss: Any,
                        name: str = "sample_weight", *, values: bool = True) -> Any:
    """Per-row weights: (n,), finite, >= 0, not all zero; `loss` needs ``per_sample``."""
    if not getattr(loss, "has_per_sample", False):
        raise TypeError(f"{name} needs the loss of each row, but {type(loss).__name__} does "
                        "not define per_sample(output, target)")
    w, values = _unmasked(name, w, backend, "a 1-D array of weights", values)
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"{name} has shape {tuple(w.shape)}; expected ({n_samples},), one "
                         "weight per row of X")
    _check_numeric(name, dtype_name(w.dtype))
    if values:
        xp, wv = (np, w.astype(np.float64)) if isinstance(w, np.ndarray) \
            else (backend.xp, to_backend(name, w, backend, dtype))  # a host one before its copy
        if not bool(xp.all(xp.isfinite(wv))):
            raise ValueError(f"{name} contains NaN or infinite values")
        low = float(xp.min(wv))
        if low < 0:
            raise ValueError(f"{name} has negative values (down to {low:g}); weights must "
                             "be >= 0")
        if not float(xp.max(wv)) > 0:
            raise ValueError(f"{name} is all zero: at least one row needs a positive weight")
    return to_backend(name, w, backend, dtype)
