"""What the ``xpnet`` command reads: datasets, saved models and their metadata.

Every reader checks what it reads and raises `CLIError` with exit
status 3 (a data or file problem) naming the file and what is wrong with it. The inputs
of ``xpnet predict`` are read by `xpnet.cli._inputs`.
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

from ._args import DATASET_ALIASES, DATASETS, EXIT_DATA, EXIT_USAGE, MODEL_FILE, CLIError

__all__ = ["dataset_spec", "load_dataset", "model_path", "run_meta", "require_classifier",
           "class_names", "image_shape", "check_output", "dataset_inputs"]

#: A folder given as an input contributes at most this many of its files to the check of
#: `check_output` (a dataset folder holds a handful).
_MAX_FOLDER_INPUTS = 1000


# ----------------------------------------------------------------------------- datasets
def dataset_spec(value: str) -> tuple[str, str]:
    """Normalise a ``--dataset`` value without loading anything.

    Parameters
    ----------
    value : str
        A dataset name (or alias such as ``fashion_mnist``), or the path of a folder of IDX
        files or of an ``.npz`` file. Names win over paths.

    Returns
    -------
    (str, str)
        ``("name", canonical_name)`` or ``("path", absolute_path)``.

    Raises
    ------
    CLIError
        Exit status 3 for a path that does not exist, 2 for an unknown name.

    Examples
    --------
    >>> from xpnet.cli._io import dataset_spec
    >>> dataset_spec("Fashion_MNIST")
    ('name', 'fashion-mnist')
    """
    key = value.strip().lower()
    if key in DATASET_ALIASES:
        return "name", DATASET_ALIASES[key]
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            from .._files import check_regular

            try:
                check_regular(path)  # a FIFO would block the loader, a device never end
            except OSError as exc:
                raise CLIError(f"--dataset {path} {exc.strerror}", EXIT_DATA) from None
        return "path", str(path.resolve())
    if os.sep in value or "/" in value or "." in value or value.startswith("~"):
        raise CLIError(f"--dataset: no such file or folder: {value}", EXIT_DATA)
    raise CLIError(
        f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}, or give the path "
        "of a folder of IDX files or of an .npz file", EXIT_USAGE)


def load_dataset(spec: str, data_dir: str | None, *, progress: bool) -> Any:
    """Load a dataset by name or path (see [`xpnet.datasets.load`][]).

    Parameters
    ----------
    spec : str
        A canonical name or an absolute path, as `dataset_spec` returns.
    data_dir : str or None
        Folder of the MNIST/Fashion-MNIST files; None for the cache.
    progress : bool
        Show download progress bars.

    Returns
    -------
    xpnet.datasets.Dataset
        The train and test splits as host arrays, with their metadata.

    Examples
    --------
    >>> from xpnet.cli._io import load_dataset
    >>> load_dataset("digits", None, progress=False).num_classes
    10
    """
    from ..datasets import load

    return load(spec, data_dir, progress=progress)


def dataset_inputs(spec: str, data_dir: str | None) -> list[Path]:
    """The files a dataset is read from: the ``.npz``, or the folder of IDX files.

    Parameters
    ----------
    spec : str
        A canonical name or an absolute path, as `dataset_spec` returns.
    data_dir : str or None
        ``--data-dir``; None for the cache folder of a named dataset.

    Returns
    -------
    list of pathlib.Path
        Paths (files or folders) for `check_output`'s ``inputs``.

    Examples
    --------
    >>> from xpnet.cli._io import dataset_inputs
    >>> dataset_inputs("/data/x.npz", None)
    [PosixPath('/data/x.npz')]
    """
    from ..datasets import cache_dir

    if spec not in DATASETS:
        return [Path(spec)]
    if spec == "digits":  # bundled with the package
        return []
    return [Path(data_dir).expanduser() if data_dir else cache_dir() / spec]


def _identities(paths: list[Path]) -> dict[tuple[int, int], Path]:
    """(device, inode) of each existing file in `paths`, a folder standing for its files."""
    found: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found[(st.st_dev, st.st_ino)] = path
        if not os.path.isdir(path):
            continue
        try:
            with os.scandir(path) as entries:
                for entry in itertools.islice(entries, _MAX_FOLDER_INPUTS):
                    try:
                        inner = entry.stat()
                    except OSError:
                        continue
                    found[(inner.st_dev, inner.st_ino)] = Path(entry.path)
        except OSError:
            continue
    return found


def check_output(path: Path, flag: str, inputs: tuple[Path, ...] | list[Path] = ()) -> None:
    """Refuse, before any work, an output path xpnet must not write (exit status 2).

    Refused: a symbolic link, a FIFO, a device, a folder or anything else that is not a
    regular file at `path` (see `xpnet._files.check_target`); a `path` that is one of the
    command's `inputs` (the same file, hard links included). Whether its folder exists is
    the caller's check.

    Parameters
    ----------
    path : pathlib.Path
        The file the command will write.
    flag : str
        How the user gave it (``--plot-path``, ``OUTPUT``...), for the message.
    inputs : list of pathlib.Path, optional
        Files and folders the command reads (a folder stands for the files in it).

    Raises
    ------
    CLIError
        Exit status 2, naming the path and what it is.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xpnet.cli._io import check_output
    >>> with tempfile.TemporaryDirectory() as d:
    ...     model = Path(d) / "model.safetensors"
    ...     _ = model.write_bytes(b"weights")
    ...     check_output(Path(d) / "cm.png", "--plot-path", [model])  # a new file: fine
    ...     try:
    ...         check_output(model, "--plot-path", [model])
    ...     except Exception as exc:
    ...         print(str(exc).replace(d, "D"))
    --plot-path D/model.safetensors is an input of this command (D/model.safetensors); xpnet
    never writes over its inputs: choose another name
    """
    from .._files import check_target

    try:
        check_target(path)
    except OSError as exc:
        raise CLIError(f"{flag} {path} {exc.strerror}", EXIT_USAGE) from None
    try:
        st = os.stat(path)
    except OSError:
        return  # a new file
    same = _identities(list(inputs)).get((st.st_dev, st.st_ino))
    if same is not None:
        raise CLIError(f"{flag} {path} is an input of this command ({same}); xpnet never "
                       "writes over its inputs: choose another name", EXIT_USAGE)


# ----------------------------------------------------------------------------- models
def model_path(value: str) -> Path:
    """The model file named by a ``MODEL`` argument: a file, or a run folder holding one.

    Parameters
    ----------
    value : str
        A ``.safetensors`` file or the output folder of ``xpnet train``.

    Returns
    -------
    pathlib.Path
        The model file (not yet read).

    Raises
    ------
    CLIError
        Exit status 3 when the file does not exist or the folder holds no model.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xpnet.cli._io import model_path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "model.safetensors").touch()
    ...     model_path(d).name
    'model.safetensors'
    """
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


def _bad_field(model_file: Any, field: str, want: str, value: Any) -> CLIError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CLIError(f"{model_file}: damaged metadata: {field} must be {want}, got "
                    f"{type(value).__name__} {shown}", EXIT_DATA)


def _check_dataset_meta(info: Any, model_file: Any) -> None:
    """Types of the ``dataset`` metadata that ``evaluate`` and ``predict`` rely on."""
    if not isinstance(info, dict):
        raise _bad_field(model_file, "dataset", "an object", info)
    for key, types, want in (("name", str, "a string"), ("spec", str, "a string"),
                             ("source", str, "a string"),
                             ("data_dir", (str, type(None)), "a string or null")):
        if key in info and not isinstance(info[key], types):
            raise _bad_field(model_file, f"dataset.{key}", want, info[key])
    shape = info.get("image_shape")
    if shape is not None and not (
            isinstance(shape, list) and 1 <= len(shape) <= 4
            and all(type(d) is int and d >= 1 for d in shape)):
        raise _bad_field(model_file, "dataset.image_shape", "a list of 1 to 4 positive "
                         "integers", shape)
    names = info.get("class_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(c, str) for c in names)):
        raise _bad_field(model_file, "dataset.class_names", "a list of strings", names)


def run_meta(ckpt: Any, model_file: Any = "the model file") -> dict[str, Any]:
    """The metadata ``xpnet train`` stored in a checkpoint (empty if there is none), checked.

    Parameters
    ----------
    ckpt : xpnet.checkpoint.Checkpoint
        A loaded checkpoint.
    model_file : str or pathlib.Path, optional
        Its path, for messages.

    Returns
    -------
    dict
        Its user metadata: ``"settings"`` and ``"dataset"`` for a model saved by
        ``xpnet train``, whatever was passed as ``metadata=`` otherwise.

    Raises
    ------
    CLIError
        Exit status 3 when ``"dataset"`` or ``"settings"`` hold values of the wrong type
        (``image_shape`` not a list of positive integers, ``spec`` not a string...).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from xpnet.cli._io import run_meta
    >>> run_meta(SimpleNamespace(metadata={"user": {"settings": {"seed": 0}}}))
    {'settings': {'seed': 0}}
    >>> run_meta(SimpleNamespace(metadata={"user": {"dataset": {"image_shape": "28x28"}}}),
    ...          "m.safetensors")
    Traceback (most recent call last):
    ...
    xpnet.cli._args.CLIError: m.safetensors: damaged metadata: dataset.image_shape must be
    a list of 1 to 4 positive integers, got str '28x28'
    """
    user = ckpt.metadata.get("user")
    if not isinstance(user, dict):
        return {}
    if "dataset" in user:
        _check_dataset_meta(user["dataset"], model_file)
    if "settings" in user and not isinstance(user["settings"], dict):
        raise _bad_field(model_file, "settings", "an object", user["settings"])
    return user


def require_classifier(model: Any, model_file: Any, command: str) -> None:
    """Refuse a model that is not a softmax classifier (exit status 3).

    Parameters
    ----------
    model : xpnet.model.Sequential
        The loaded model.
    model_file : str or pathlib.Path
        Its path, for the message.
    command : str
        ``"evaluate"`` or ``"predict"``.

    Raises
    ------
    CLIError
        Exit status 3 when the model's loss is not ``cross_entropy``.

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.cli._io import require_classifier
    >>> require_classifier(xn.MLP([4, 2], loss="mse", backend="numpy"), "m.safetensors",
    ...                    "evaluate")
    Traceback (most recent call last):
    ...
    xpnet.cli._args.CLIError: m.safetensors is not a classifier (its loss is mse); xpnet
    evaluate works with models trained on class labels (cross_entropy), such as those of
    `xpnet train`
    """
    if model.loss.name != "cross_entropy":
        raise CLIError(f"{model_file} is not a classifier (its loss is {model.loss.name}); "
                       f"xpnet {command} works with models trained on class labels "
                       "(cross_entropy), such as those of `xpnet train`", EXIT_DATA)


def class_names(meta: dict[str, Any], n: int) -> list[str]:
    """The `n` class names saved with a model, or ``"0"``, ``"1"``, ... without them.

    Parameters
    ----------
    meta : dict
        The run metadata (see `run_meta`).
    n : int
        The model's number of classes.

    Returns
    -------
    list of str
        `n` names.

    Examples
    --------
    >>> from xpnet.cli._io import class_names
    >>> class_names({}, 3)
    ['0', '1', '2']
    """
    names = (meta.get("dataset") or {}).get("class_names")
    if isinstance(names, list) and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


def image_shape(meta: dict[str, Any], n_features: int) -> tuple[int, ...] | None:
    """The image shape a model's inputs come from, to read image files for it.

    Parameters
    ----------
    meta : dict
        The run metadata (see `run_meta`).
    n_features : int
        The model's number of inputs.

    Returns
    -------
    tuple of int or None
        The saved image shape when it matches `n_features`, else a square image when
        `n_features` is a perfect square, else None.

    Examples
    --------
    >>> from xpnet.cli._io import image_shape
    >>> image_shape({}, 784), image_shape({}, 10)
    ((28, 28), None)
    """
    shape = (meta.get("dataset") or {}).get("image_shape")  # checked by run_meta
    if isinstance(shape, list) and shape and math.prod(shape) == n_features:
        return tuple(shape)
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None
