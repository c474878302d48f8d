"""What the ``xpnet`` command reads: datasets, saved models and their metadata.

Every reader checks what it reads and raises `CLIError` with exit
status 3 (a data or file problem) naming the file and what is wrong with it. The inputs
of ``xpnet predict`` are read by `xpnet.cli._inputs`.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import check_regular, check_target
from ..datasets import cache_dir
from ..datasets import load as load_dataset  # by canonical name or absolute path
from ..datasets.registry import _canonical_name
from ._args import DATASETS, EXIT_DATA, EXIT_USAGE, MODEL_FILE, CLIError

__all__ = ["checked", "dataset_spec", "load_dataset", "model_path", "run_meta",
           "require_classifier", "class_names", "image_shape", "check_output", "dataset_inputs",
           "refuse_table", "bad_field"]

#: A folder given as an input contributes at most this many of its files to the check of
#: `check_output` (a dataset folder holds a handful).
_MAX_FOLDER_INPUTS = 1000


# ----------------------------------------------------------------------------- datasets
def dataset_spec(value: str) -> tuple[str, str]:
    """``--dataset`` as ``('name', canonical)`` or ``('path', absolute)``; names win (exit 3/2)."""
    name = _canonical_name(value)
    if name is not None:
        return "name", name
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():  # a FIFO would block the loader, a device never end
            checked(check_regular, path, "--dataset")
        return "path", str(path.resolve())
    if os.sep in value or "/" in value or "." in value or value.startswith("~"):
        raise CLIError(f"--dataset: no such file or folder: {value}", EXIT_DATA)
    raise CLIError(
        f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}, or give the path "
        "of a folder of IDX files or of an .npz file", EXIT_USAGE)


def checked(check: Callable[[Path], None], path: Path, what: str, code: int = EXIT_DATA
            ) -> None:
    """``check(path)``; its OSError is a CLIError (exit `code`) naming `what` and `path`."""
    try:
        check(path)
    except OSError as exc:
        raise CLIError(f"{what} {path} {exc.strerror}", code) from None


def dataset_inputs(spec: str, data_dir: str | None) -> list[Path]:
    """The files a dataset is read from (the .npz, or the IDX folder), for `check_output`."""
    if spec not in DATASETS:
        return [Path(spec)]
    if spec == "digits":  # bundled with the package
        return []
    return [Path(data_dir).expanduser() if data_dir else cache_dir() / spec]


def _identities(paths: list[Path]) -> dict[tuple[int, int], Path]:
    """(device, inode) of each existing file in `paths`, a folder standing for its files."""
    found: dict[tuple[int, int], Path] = {}
    for path in paths:
        inner: list[Path] = []
        if os.path.isdir(path):
            with contextlib.suppress(OSError), os.scandir(path) as entries:
                inner = [Path(e.path) for e in itertools.islice(entries, _MAX_FOLDER_INPUTS)]
        for file in (path, *inner):
            with contextlib.suppress(OSError):
                st = os.stat(file)
                found[(st.st_dev, st.st_ino)] = file
    return found


def check_output(path: Path, flag: str, inputs: tuple[Path, ...] | list[Path] = (), *,
                 folder: bool = False) -> None:
    """Refuse (exit 2) an output not a regular file, one of `inputs`, or (`folder`) unplaced."""
    if folder and not path.parent.is_dir():
        raise CLIError(f"{flag}: folder {path.parent} does not exist", EXIT_USAGE)
    checked(check_target, path, flag, EXIT_USAGE)
    try:
        st = os.stat(path)
    except OSError:
        return  # a new file
    same = _identities(list(inputs)).get((st.st_dev, st.st_ino))
    if same is not None:
        raise CLIError(f"{flag} {path} is an input of this command ({same}); xpnet never "
                       "writes over its inputs: choose another name", EXIT_USAGE)


def refuse_table(path: Any, model: Any, use: str) -> None:
    """Refuse (exit 3) a table file given to a model of images or arrays."""
    if Path(path).suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        raise CLIError(f"{path} is a table, but {model} was trained on images or arrays, not "
                       "on a table; train one with xpnet train --dataset FILE --target COLUMN "
                       f"to {use} tables", EXIT_DATA)


# ----------------------------------------------------------------------------- models
def model_path(value: str) -> Path:
    """The model file named by ``MODEL``: a file, or a run folder holding one (exit 3 if none)."""
    path = Path(value).expanduser()
    if path.is_dir():
        inner = path / MODEL_FILE
        if not inner.is_file():
            raise CLIError(f"{path} is a folder without a {MODEL_FILE}; give a model file or "
                           "the output folder of `xpnet train`", EXIT_DATA)
        return inner
    if not path.exists():
        raise CLIError(f"model file {path} does not exist", EXIT_DATA)
    return path


def bad_field(model_file: Any, field: str, want: str, value: Any) -> CLIError:
    """The error (exit 3) of a metadata `field` that is not `want`, showing its value."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CLIError(f"{model_file}: damaged metadata: {field} must be {want}, got "
                    f"{type(value).__name__} {shown}", EXIT_DATA)


#: The ``dataset`` metadata entries that are checked: (key, check of a value, what it must be).
_DATASET_META: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    *((key, lambda v: isinstance(v, str), "a string") for key in ("name", "spec", "source")),
    ("data_dir", lambda v: v is None or isinstance(v, str), "a string or null"),
    ("image_shape", lambda v: v is None or isinstance(v, list) and 1 <= len(v) <= 4
     and all(type(d) is int and d >= 1 for d in v), "a list of 1 to 4 positive integers"),
    ("class_names", lambda v: v is None or isinstance(v, list)
     and all(isinstance(c, str) for c in v), "a list of strings"))


def run_meta(ckpt: Any, model_file: Any = "the model file") -> dict[str, Any]:
    """The checkpoint's user metadata, type-checked (exit 3 when damaged)."""
    user = ckpt.metadata.get("user")
    if not isinstance(user, dict):
        return {}
    info = user.get("dataset", {})  # the entries that evaluate and predict rely on
    if not isinstance(info, dict):
        raise bad_field(model_file, "dataset", "an object", info)
    for key, ok, want in _DATASET_META:
        if key in info and not ok(info[key]):
            raise bad_field(model_file, f"dataset.{key}", want, info[key])
    if "settings" in user and not isinstance(user["settings"], dict):
        raise bad_field(model_file, "settings", "an object", user["settings"])
    return user


def require_classifier(model: Any, model_file: Any, command: str) -> None:
    """Refuse (exit 3) a model whose loss is not ``cross_entropy``."""
    if model.loss.name != "cross_entropy":
        raise CLIError(f"{model_file} is not a classifier (its loss is {model.loss.name}); "
                       f"xpnet {command} works with models trained on class labels "
                       "(cross_entropy), such as those of `xpnet train`", EXIT_DATA)


def class_names(meta: dict[str, Any], n: int) -> list[str]:
    names = (meta.get("dataset") or {}).get("class_names")
    if isinstance(names, list) and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


def image_shape(meta: dict[str, Any], n_features: int) -> tuple[int, ...] | None:
    """The saved image shape matching `n_features`, else a square one, else None."""
    shape = (meta.get("dataset") or {}).get("image_shape")  # checked by run_meta
    if isinstance(shape, list) and shape and math.prod(shape) == n_features:
        return tuple(shape)
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None
