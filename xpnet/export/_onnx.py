# NumPy is used here on the host for I/O only: the parameters are copied off the device
# into the graph as constants, and the check run feeds NumPy rows to onnxruntime.
"""ONNX export through ndonnx: the layers' own ``forward``, traced.

The steps of [`export_onnx`][xpnet.export.export_onnx]: check every argument; import
ndonnx, onnx and onnxruntime ([`require_onnx`][xpnet.export.require_onnx]); trace each
layer (`_trace`); add the heads the caller asked for (`_heads`); convert the opset when
asked; annotate the shapes and the metadata; ``onnx.checker.check_model``; run the graph
once in onnxruntime against the model itself (`_verify`); write the file atomically.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..backends import to_numpy
from ..checkpoint import Checkpoint, atomic_write_bytes
from ..model import Sequential

__all__ = ["export_onnx", "ExportError", "require_onnx", "INPUT_NAME", "OUTPUTS", "BATCH_DIM"]

INPUT_NAME = "input"
"""The name of the graph's one input."""
OUTPUTS = ("proba", "logits", "labels")
"""The outputs the graph can have, by name."""
BATCH_DIM = "batch"
"""The name of the symbolic batch dimension of ``batch="dynamic"`` graphs."""
_MIN_NDONNX = (0, 23)
_VERIFY_MAX_ROWS = 4096  # a static batch above this is not run through onnxruntime
_LIBRARIES = ("ndonnx", "spox", "onnx", "onnxruntime", "numpy", "array_api_compat")


class ExportError(ValueError):
    """A model cannot be exported: a layer does not trace, or the graph fails a check.

    A ``ValueError``, so ``except ValueError`` catches it too. The message names the layer
    (index and class), the line of its code that failed and why.

    Examples
    --------
    >>> import xpnet as xn
    >>> issubclass(xn.export.ExportError, ValueError)
    True
    """


def require_onnx() -> dict[str, str]:
    """Import ndonnx, onnx and onnxruntime, or say how to install them.

    Returns
    -------
    dict of str to str
        The installed versions, keyed ``"ndonnx"``, ``"onnx"``, ``"onnxruntime"``.

    Raises
    ------
    ImportError
        When one of them is missing or ndonnx is older than 0.23; the message says
        ``pip install ndonnx onnx onnxruntime``.

    Examples
    --------
    >>> import xpnet as xn
    >>> sorted(xn.export.require_onnx())
    ['ndonnx', 'onnx', 'onnxruntime']
    """
    names = ("ndonnx", "onnx", "onnxruntime")
    missing = [m for m in names if importlib.util.find_spec(m) is None]
    python = "" if sys.version_info >= (3, 11) else "; ndonnx needs Python 3.11 or later"
    if missing:
        raise ImportError(f"ONNX export needs ndonnx, onnx and onnxruntime "
                          f"({', '.join(missing)} not installed): "
                          f"pip install ndonnx onnx onnxruntime{python}")
    versions = {m: importlib.import_module(m).__version__ for m in names}
    found = tuple(int(p) if p.isdigit() else 0 for p in versions["ndonnx"].split(".")[:2])
    if found < _MIN_NDONNX:
        raise ImportError(f"ONNX export needs ndonnx >= {'.'.join(map(str, _MIN_NDONNX))}, "
                          f'found {versions["ndonnx"]}: pip install -U ndonnx')
    return versions


# ----------------------------------------------------------------------------- arguments
def _check_model(model: Any) -> tuple[Sequential, dict]:
    """The model and its run record (``{}`` without one) from a model or a checkpoint."""
    if isinstance(model, Checkpoint):
        user = model.metadata.get("user")
        return _check_model(model.model)[0], user if isinstance(user, dict) else {}
    if not isinstance(model, Sequential):
        raise TypeError(f"export_onnx expects an xpnet model (Sequential or MLP) or a "
                        f"Checkpoint from xpnet.load_checkpoint, got {type(model).__name__}")
    return model, {}


def _check_outputs(outputs: Any) -> list[str]:
    names = [outputs] if isinstance(outputs, str) else outputs
    ok = isinstance(names, Sequence) and len(names) > 0 and \
        all(isinstance(n, str) and n in OUTPUTS for n in names)
    if not ok:
        raise ValueError(f"outputs must be one of {', '.join(map(repr, OUTPUTS))} or a list of "
                         f"them, got {outputs!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"outputs lists a name twice: {list(names)!r}")
    return list(names)


def _positive_int(value: Any, name: str, other: str) -> int:
    """``value`` if a positive int; else the error naming ``other``, the one other choice."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be {other} or a positive int, got {value!r}")
    return int(value)


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot export to {path}: it is a folder; give a file name "
                                "such as model.onnx")
    if not path.parent.exists():
        raise FileNotFoundError(f"cannot export to {path}: folder {path.parent} does not exist")
    return path


def _check_class_names(names: Any, record: dict, model: Sequential) -> list[str] | None:
    """The class names: given, else the run record's, else None; checked against the model."""
    source = "class_names"
    if names is None:
        dataset = record["dataset"] if isinstance(record.get("dataset"), dict) else {}
        names, source = dataset.get("class_names", record.get("class_names")), "the run record"
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence) or \
            not all(isinstance(n, str) for n in names):
        raise ValueError(f"class names ({source}) must be a list of str, got {names!r}")
    if model.loss.name == "cross_entropy" and len(names) != model.out_features:
        raise ValueError(f"{len(names)} class names ({source}) for a model with "
                         f"{model.out_features} outputs")
    return list(names)


# ----------------------------------------------------------------------------- tracing
def _failing_line(exc: BaseException) -> str:
    """``'`code`' (file:line)`` of the innermost frame outside the array libraries."""
    skip = [os.path.dirname(sys.modules[m].__file__ or "") + os.sep
            for m in _LIBRARIES if m in sys.modules]
    skip += [os.path.dirname(os.__file__) + os.sep, __file__,
             os.path.join(os.path.dirname(os.path.dirname(__file__)), "backends.py")]
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not any(f.filename.startswith(s) for s in skip)]
    if not frames:
        return ""
    f = frames[-1]
    return f"`{(f.line or '').strip()}` ({Path(f.filename).name}:{f.lineno}) "


def _trace_error(what: str, exc: BaseException) -> ExportError:
    return ExportError(
        f"{what} cannot be traced to ONNX: {_failing_line(exc)}failed with "
        f"{type(exc).__name__}: {exc}. Export runs forward on ndonnx arrays: it may use only "
        "functions of the Array API standard, from the array's own namespace "
        "(array_api_compat.array_namespace(x)), and may not read array values in Python "
        "(float(), bool(), an `if` on an array)")


def _trace(model: Sequential, x: Any, ndx: Any) -> Any:
    """Run each layer's forward (train=False) on the traced input; return the raw outputs."""
    dtype, h, width = x.dtype, x, model.in_features
    for i, layer in enumerate(model.layers):
        what = f"layer {i} ({type(layer).__name__})"
        params, buffers = ({k: ndx.asarray(np.ascontiguousarray(to_numpy(v)), dtype=dtype)
                            for k, v in arrays.items()}
                           for arrays in (model.layer_params(i), model.layer_buffers(i)))
        kw = {"buffers": buffers} if buffers else {}  # running statistics
        try:
            result = layer.forward(params, h, train=False, **kw)
        except Exception as exc:
            raise _trace_error(what, exc) from exc
        width = layer.out_features(width)
        h = result[0] if isinstance(result, tuple) and len(result) == 2 else result
        if not isinstance(h, ndx.Array):
            raise ExportError(f"{what} cannot be traced to ONNX: its forward returned "
                              f"{type(h).__name__}, not the array it was given a namespace for "
                              "(did it convert to NumPy, e.g. with np.asarray?)")
        if h.dtype != dtype or h.ndim != 2 or h.shape[1] not in (width, None):
            raise ExportError(f"{what} returned {h.dtype} of shape {h.shape} from {dtype} "
                              f"input; the model expects {dtype} of shape (n, {width})")
    return h


def _heads(model: Sequential, logits: Any, names: list[str]) -> dict[str, Any]:
    """The requested outputs from the traced raw outputs."""
    make = {"logits": lambda: logits, "proba": lambda: model.loss.output_transform(logits),
            "labels": lambda: model.loss.predict_labels(logits)}  # as Sequential.predict
    heads = {}
    for name in names:
        try:
            heads[name] = make[name]()
        except Exception as exc:
            raise _trace_error(f"the {name!r} output of loss {model.loss!r}", exc) from exc
    return heads


# ----------------------------------------------------------------------------- the graph
def _build(model: Sequential, names: list[str], batch: int | None, opset: int | None) -> Any:
    """The traced ``onnx.ModelProto``, converted to ``opset`` when given (no metadata yet)."""
    import ndonnx as ndx
    import onnx

    dtype = {"float32": ndx.float32, "float64": ndx.float64}[model.dtype_name]
    x = ndx.argument(shape=(BATCH_DIM if batch is None else batch, model.in_features),
                     dtype=dtype)
    proto = ndx.build({INPUT_NAME: x}, _heads(model, _trace(model, x, ndx), names))
    current = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset is not None and opset != current:
        try:
            proto = onnx.version_converter.convert_version(proto, opset)
        except Exception as exc:
            raise ExportError(f"cannot convert the graph from opset {current} (what ndonnx "
                              f"builds) to opset {opset}: {str(exc).splitlines()[0]}") from None
    for value in proto.graph.output:  # name the batch dimension of every output
        dim = value.type.tensor_type.shape.dim[0]
        if batch is None and not dim.HasField("dim_value"):
            dim.dim_param = BATCH_DIM
    return proto


def _value_spec(value: Any) -> dict[str, Any]:
    """``{"name", "dtype", "shape"}`` of a graph input or output."""
    import onnx

    t = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
             for d in t.shape.dim]
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
    return {"name": value.name, "dtype": dtype, "shape": shape}


def _annotate(proto: Any, model: Sequential, record: dict, class_names: list[str] | None,
              versions: dict[str, str]) -> None:
    """Producer, doc string and the ``metadata_props`` documented in docs/onnx.md."""
    import onnx

    proto.producer_name, proto.producer_version = "xpnet", __version__
    proto.graph.name = "xpnet"
    meta = {p.key: p.value for p in proto.metadata_props}  # keeps ndonnx's schema
    outputs = [_value_spec(v) for v in proto.graph.output]
    meta.update({
        "xpnet_version": __version__, "ndonnx_version": versions["ndonnx"],
        "input": json.dumps(_value_spec(proto.graph.input[0])), "outputs": json.dumps(outputs),
        "model": json.dumps(model.get_config()), "loss": model.loss.name,
    })
    dataset = record.get("dataset")
    if isinstance(dataset, dict):
        meta["dataset"] = json.dumps({k: dataset[k] for k in
                                      ("name", "source", "num_classes", "image_shape")
                                      if k in dataset})
    if class_names is not None:
        meta["class_names"] = json.dumps(class_names)
    onnx.helper.set_model_props(proto, meta)
    outs = ", ".join(f"{s['name']} {s['dtype']} {s['shape']}" for s in outputs)
    proto.doc_string = (f"xpnet {__version__} {type(model).__name__} "
                        f"({model.loss.name}); input {INPUT_NAME}, outputs {outs}")


# ----------------------------------------------------------------------------- checking
def _verify(data: bytes, model: Sequential, names: list[str], batch: int | None) -> None:
    """Run the serialised graph in onnxruntime on seeded rows; its outputs must be the model's."""
    import onnxruntime as ort

    rows = 7 if batch is None else batch
    if rows > _VERIFY_MAX_ROWS:
        return
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime {ort.__version__} cannot load the graph: "
                          f"{str(exc).splitlines()[0]}") from None
    X = np.random.default_rng(0).standard_normal((rows, model.in_features)).astype(model.dtype_name)
    got = dict(zip(names, session.run(names, {INPUT_NAME: X}), strict=True))
    logits = to_numpy(model.forward(X))
    want = {"logits": logits, "proba": to_numpy(model.predict_proba(X)),
            "labels": to_numpy(model.predict(X))}
    # floats agree within a tolerance scaled to the dtype and the logits' magnitude; labels
    # wherever the model's decision is not a near-tie
    rel = 1e-4 if model.dtype_name == "float32" else 1e-9
    tol = rel * max(1.0, float(np.nanmax(np.abs(logits), initial=0.0)))
    for name in names:
        g, w = got[name], want[name]
        if g.shape != w.shape:
            bad = True
        elif w.dtype.kind == "f":
            bad = not np.allclose(g, w, rtol=rel, atol=tol, equal_nan=True)
        else:
            ties = _near_ties(model.loss.name, logits, tol)
            bad = bool(np.any((g != w) & ~ties)) if ties.shape == w.shape else \
                not np.array_equal(g, w)
        if bad:
            raise ExportError(
                f"the exported graph's {name!r} output differs from the model's on {rows} "
                f"random rows (onnxruntime {ort.__version__}); a layer's forward does not "
                "trace faithfully: does it branch in Python on its input?")


def _near_ties(loss_name: str, logits: np.ndarray, tol: float) -> np.ndarray:
    """Where a predicted label may differ between two correct runs (a near-tie)."""
    if loss_name == "cross_entropy" and logits.shape[1] > 1:
        top = np.sort(logits, axis=1)
        return (top[:, -1] - top[:, -2]) <= tol
    return np.abs(logits) <= tol


# ----------------------------------------------------------------------------- public
def export_onnx(model: Any, path: str | os.PathLike, *,
                outputs: str | Sequence[str] = "proba", batch: int | str = "dynamic",
                opset: int | None = None, class_names: Sequence[str] | None = None) -> Path:
    """Write a model as an ONNX graph traced from its layers' own forward code.

    Each layer's ``forward(params, x, train=False)`` runs on an ``ndonnx`` array, with
    the parameters as constants, so the graph computes what
    [`forward`][xpnet.model.Sequential.forward] computes (dropout is the identity).
    Before anything is written the graph passes ``onnx.checker.check_model`` and is run
    once in onnxruntime on seeded random rows, whose outputs must match the model's; the
    file is then written atomically.

    Parameters
    ----------
    model : Sequential or Checkpoint
        The model; a [`Checkpoint`][xpnet.checkpoint.Checkpoint] (from
        [`xpnet.load_checkpoint`][]) also contributes the dataset and class names that
        ``xpnet train`` stores with a model.
    path : str or Path
        The ``.onnx`` file to write; its folder must exist.
    outputs : {"proba", "logits", "labels"} or list of them
        The graph's outputs, in this order: ``"proba"`` is
        [`predict_proba`][xpnet.model.Sequential.predict_proba] (softmax or sigmoid),
        ``"logits"`` is [`forward`][xpnet.model.Sequential.forward], ``"labels"`` is
        [`predict`][xpnet.model.Sequential.predict] (int64 class indices for
        cross-entropy models).
    batch : "dynamic" or int
        ``"dynamic"``: the first input dimension is the symbolic ``"batch"``, any number
        of rows; an int fixes it.
    opset : int, optional
        The ONNX opset; default: the one ndonnx builds (21 with ndonnx 0.23). Other values
        are converted with ``onnx.version_converter``; opsets 20 and later convert.
    class_names : list of str, optional
        Stored in the metadata; default: those of the checkpoint's run record, if any.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before any work.
    ImportError
        Without ndonnx, onnx or onnxruntime (``pip install ndonnx onnx onnxruntime``).
    ExportError
        When a layer cannot be traced (the message names it and the failing line), or
        the graph fails the checker or the onnxruntime comparison. Nothing is written.

    Examples
    --------
    >>> import os, tempfile, numpy as np, onnxruntime as ort, xpnet as xn
    >>> tmp = tempfile.TemporaryDirectory()
    >>> model = xn.MLP([4, 8, 3], activation="gelu", backend="numpy", seed=0)
    >>> path = xn.export_onnx(model, os.path.join(tmp.name, "m.onnx"),
    ...                       outputs=["proba", "labels"], class_names=["a", "b", "c"])
    >>> session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> X = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    >>> proba, labels = session.run(None, {"input": X})
    >>> bool(np.allclose(proba, model.predict_proba(X), atol=1e-6))
    True
    >>> session.get_modelmeta().custom_metadata_map["class_names"]
    '["a", "b", "c"]'
    >>> tmp.cleanup()
    """
    model, record = _check_model(model)
    names = _check_outputs(outputs)
    rows = None if isinstance(batch, str) and batch == "dynamic" else \
        _positive_int(batch, "batch", "'dynamic'")
    if opset is not None:
        opset = _positive_int(opset, "opset", "None (ndonnx's default)")
    path = _check_path(path)
    class_names = _check_class_names(class_names, record, model)
    versions = require_onnx()
    import onnx

    proto = _build(model, names, rows, opset)
    _annotate(proto, model, record, class_names, versions)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the traced graph fails onnx.checker: {exc}") from None
    data = proto.SerializeToString()
    _verify(data, model, names, rows)
    atomic_write_bytes(path, data)
    return path
