# NumPy is used on the host here for file I/O: reading .npy, IDX and image inputs and
# checking their values before they go to the model, as DESIGN.md allows.
"""What the ``xpnet`` command reads: datasets, saved models and ``predict`` inputs.

Every reader checks what it reads and raises :class:`~xpnet.cli._args.CLIError` with exit
status 3 (a data or file problem) naming the file and what is wrong with it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._args import DATASET_ALIASES, DATASETS, EXIT_DATA, EXIT_USAGE, MODEL_FILE, CLIError

__all__ = ["dataset_spec", "load_dataset", "model_path", "run_meta", "class_names",
           "image_shape", "read_inputs", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pbm")


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
        return "path", str(path.resolve())
    if os.sep in value or "/" in value or "." in value or value.startswith("~"):
        raise CLIError(f"--dataset: no such file or folder: {value}", EXIT_DATA)
    raise CLIError(
        f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}, or give the path "
        "of a folder of IDX files or of an .npz file", EXIT_USAGE)


def load_dataset(spec: str, data_dir: str | None, *, progress: bool) -> Any:
    """Load a dataset by name or path (see :func:`xpnet.datasets.load`).

    Parameters
    ----------
    spec : str
        A canonical name or an absolute path, as :func:`dataset_spec` returns.
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


def run_meta(ckpt: Any) -> dict[str, Any]:
    """The metadata ``xpnet train`` stored in a checkpoint (empty if there is none).

    Parameters
    ----------
    ckpt : xpnet.checkpoint.Checkpoint
        A loaded checkpoint.

    Returns
    -------
    dict
        Its user metadata: ``"settings"`` and ``"dataset"`` for a model saved by
        ``xpnet train``, whatever was passed as ``metadata=`` otherwise.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from xpnet.cli._io import run_meta
    >>> run_meta(SimpleNamespace(metadata={"user": {"settings": {"seed": 0}}}))
    {'settings': {'seed': 0}}
    """
    user = ckpt.metadata.get("user")
    return user if isinstance(user, dict) else {}


def class_names(meta: dict[str, Any], n: int) -> list[str]:
    """The `n` class names saved with a model, or ``"0"``, ``"1"``, ... without them.

    Parameters
    ----------
    meta : dict
        The run metadata (see :func:`run_meta`).
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
        The run metadata (see :func:`run_meta`).
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
    shape = (meta.get("dataset") or {}).get("image_shape")
    if isinstance(shape, list) and shape and math.prod(int(s) for s in shape) == n_features:
        return tuple(int(s) for s in shape)
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None


# ----------------------------------------------------------------------------- inputs
def _scale(arr: np.ndarray, name: str) -> np.ndarray:
    """float32 in [0, 1]: uint8 and other integers in [0, 255] are divided by 255."""
    if arr.dtype.hasobject:
        raise CLIError(f"{name}: object arrays are not accepted", EXIT_DATA)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        ilo, ihi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if ilo < 0 or ihi > 255:
            raise CLIError(f"{name} holds integers in [{ilo}, {ihi}]; integer inputs must lie "
                           "in [0, 255] (they are divided by 255)", EXIT_DATA)
        return arr.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise CLIError(f"{name} contains NaN or infinite values", EXIT_DATA)
        lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise CLIError(f"{name} holds floats in [{lo:g}, {hi:g}]; float inputs must be "
                           "scaled to [0, 1] like the training data (uint8 is scaled for you)",
                           EXIT_DATA)
        return out
    raise CLIError(f"{name} has dtype {arr.dtype}; expected uint8, integers or floats",
                   EXIT_DATA)


def _rows(arr: np.ndarray, name: str, n_features: int,
          image_shape: tuple[int, ...] | None) -> np.ndarray:
    """(n, n_features) float32 rows from rows, one image, or a stack of images."""
    shape = tuple(arr.shape)
    want = f"(n, {n_features}) rows" + (
        f" or (n, {', '.join(map(str, image_shape))}) images" if image_shape else "")
    if arr.ndim == 1 and shape[0] == n_features:
        arr = arr.reshape(1, n_features)
    elif image_shape and shape == image_shape:
        arr = arr.reshape(1, n_features)
    elif arr.ndim == 2 and shape[1] == n_features:
        pass
    elif arr.ndim >= 3 and (shape[1:] == image_shape if image_shape
                            else math.prod(shape[1:]) == n_features):
        arr = arr.reshape(shape[0], n_features)
    else:
        raise CLIError(f"{name} has shape {shape}; the model expects {want}", EXIT_DATA)
    if arr.shape[0] == 0:
        raise CLIError(f"{name} holds no samples", EXIT_DATA)
    return _scale(arr, name)


def _read_image(path: Path, image_shape: tuple[int, ...] | None, invert: str
                ) -> tuple[np.ndarray, bool]:
    """One image file as a (1, h*w) row in [0, 1], and whether it was inverted."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise CLIError("reading image files needs Pillow: pip install 'xpnet[images]'",
                       EXIT_USAGE) from None
    if image_shape is None or len(image_shape) != 2:
        raise CLIError(f"{path}: the model has no 2-D image shape to resize images to; give "
                       ".npy rows instead", EXIT_DATA)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and
                                                   "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            gray = im.convert("L")
            h, w = image_shape
            shrink = gray.width >= w and gray.height >= h
            resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
            if gray.size != (w, h):
                gray = gray.resize((w, h), resample=resample)
            arr = np.asarray(gray, dtype=np.float32) / np.float32(255.0)
    except (OSError, ValueError, SyntaxError) as exc:
        raise CLIError(f"{path}: cannot read the image: {exc}", EXIT_DATA) from None
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    flip = invert == "yes" or (invert == "auto" and float(border.mean()) > 0.5)
    if flip:
        arr = 1.0 - arr
    return arr.reshape(1, -1), flip


def read_inputs(paths: list[str], n_features: int, image_shape: tuple[int, ...] | None,
                invert: str) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Read ``predict`` inputs into one block of rows for the model.

    Parameters
    ----------
    paths : list of str
        ``.npy`` files ((n, features) rows, one image or a stack of images), IDX files
        (raw or ``.gz``) or image files (see :data:`IMAGE_SUFFIXES`; needs Pillow).
    n_features : int
        The model's number of inputs.
    image_shape : tuple of int or None
        The shape image inputs are resized to (see :func:`image_shape`).
    invert : {"auto", "yes", "no"}
        Whether to invert image files (``auto``: when their border is light).

    Returns
    -------
    X : numpy.ndarray
        (n, n_features) float32 rows in [0, 1]; integers are divided by 255.
    items : list of dict
        One per row: ``{"input": name}`` (``name[i]`` for row i of a multi-row file),
        with ``"inverted"`` for image files.

    Raises
    ------
    CLIError
        Exit status 3 for a missing, unreadable or misshapen input, or values out of
        range; 2 when an image needs Pillow and it is missing.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from xpnet.cli._io import read_inputs
    >>> with tempfile.TemporaryDirectory() as d:
    ...     np.save(Path(d) / "x.npy", np.zeros((2, 8, 8), np.uint8))
    ...     X, items = read_inputs([str(Path(d) / "x.npy")], 64, (8, 8), "auto")
    >>> X.shape, X.dtype, [item["input"][-6:] for item in items]
    ((2, 64), dtype('float32'), ['npy[0]', 'npy[1]'])
    """
    from ..datasets import DatasetError, read_idx

    blocks, labels = [], []
    for text in paths:
        path = Path(text).expanduser()
        if not path.exists():
            raise CLIError(f"input {path} does not exist", EXIT_DATA)
        if path.is_dir():
            raise CLIError(f"input {path} is a folder; give .npy, IDX or image files",
                           EXIT_DATA)
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            rows, flipped = _read_image(path, image_shape, invert)
            blocks.append(rows)
            labels.append({"input": str(text), "inverted": flipped})
            continue
        if suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise CLIError(f"{path}: not a readable .npy file ({exc})", EXIT_DATA) from None
        else:
            try:
                arr = read_idx(path)
            except DatasetError as exc:
                raise CLIError(f"{path}: not a .npy, IDX or image file ({exc})",
                               EXIT_DATA) from None
        rows = _rows(np.asarray(arr), str(path), n_features, image_shape)
        blocks.append(rows)
        one = rows.shape[0] == 1
        labels += [{"input": str(text) if one else f"{text}[{i}]"} for i in range(rows.shape[0])]
    return np.concatenate(blocks, axis=0), labels
