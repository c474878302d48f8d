# NumPy is used on the host here for file I/O (.npz and IDX files), as DESIGN.md allows.
"""``load(name)``: one entry point for the bundled digits, MNIST, Fashion-MNIST and
data on disk (a folder of IDX files or an ``.npz`` file)."""

from __future__ import annotations

import functools
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ._core import Dataset, DatasetError, _load_npz, check_data_size, file_sha256
from .digits import load_digits
from .idx import _read_idx, read_idx_header
from .mnist import _ALIASES as _MNIST_ALIASES
from .mnist import CLASS_NAMES, FILES, _find_local, known_digests, load_mnist

__all__ = ["DATASET_NAMES", "load", "load_idx_folder", "load_npz"]

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
"""Names [`load`][xpnet.datasets.load] accepts besides a path."""

_ALIASES = {"digits": "digits", **_MNIST_ALIASES}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_MAX_NAMES_BYTES = 2**16 * 256 * 4 + 4096  # 65,536 class names of 256 characters, as UTF-32


def load(
    name: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Dataset:
    """Load a dataset by name or from a path.

    Parameters
    ----------
    name : str or os.PathLike
        ``"digits"`` (bundled 8x8 digits, offline), ``"mnist"`` or ``"fashion-mnist"``
        (downloaded once, then cached and re-verified), or a path: a folder holding the
        four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``),
        or an ``.npz`` file with arrays ``x_train``, ``y_train``, ``x_test``,
        ``y_test`` (the Keras ``mnist.npz`` layout). Names are matched before paths;
        write ``./mnist`` to load a folder called ``mnist``.
    data_dir : str or os.PathLike, optional
        For ``"mnist"`` / ``"fashion-mnist"`` only: the folder holding (or to receive)
        the four ``.gz`` files. Default: ``cache_dir() / name``. Ignored otherwise.
    progress : bool, default True
        Progress bars while downloading.

    Returns
    -------
    Dataset
        float32 images in [0, 1] flattened to ``(n, n_features)``, int64 labels, class
        names, image shape, source and the SHA-256 of each file read.

    Raises
    ------
    DatasetError
        Unknown name (the message lists the valid names), missing or malformed files,
        checksum mismatch, object arrays in an ``.npz``, mismatched lengths, negative
        labels, NaN pixels.
    DownloadError
        MNIST files are missing and no mirror could deliver them.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> ds = xds.load("digits")
    >>> ds.x_train.dtype, ds.y_train.dtype, ds.image_shape
    (dtype('float32'), dtype('int64'), (8, 8))
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"dataset name must be a str or a path, got {type(name).__name__}")
    canonical = _canonical_name(name) if isinstance(name, str) else None
    if canonical is not None:
        if canonical == "digits":
            return load_digits()
        return load_mnist(canonical, data_dir, progress=progress)
    path = Path(name).expanduser()
    if path.is_dir():
        return load_idx_folder(path)
    if path.is_file():
        return load_npz(path)
    text = os.fspath(name)
    if isinstance(name, os.PathLike) or os.sep in text or "/" in text or "." in text:
        raise DatasetError(f"no such file or folder: {path}")
    raise DatasetError(
        f"unknown dataset {text!r}; valid names are {', '.join(map(repr, DATASET_NAMES))}, "
        "or a path to a folder of IDX files or to an .npz file"
    )


def _canonical_name(name: str) -> str | None:
    """The dataset `name` spells (``Fashion_MNIST`` -> ``fashion-mnist``), or None."""
    return _ALIASES.get(name.strip().lower())


def load_idx_folder(folder: str | os.PathLike[str]) -> Dataset:
    """Load the four standard IDX files from a folder (no checksum table needed).

    Each file may be gzip-compressed (``.gz``) or raw, and may use the dotted spelling
    ``train-images.idx3-ubyte``. If all four files match a known MNIST or Fashion-MNIST
    digest, the dataset gets that name and its class names.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        A file is missing or malformed ([`IDXError`][xpnet.datasets.IDXError]), images are
        not ``(n, rows, cols)``, lengths differ, labels are negative.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> ds = xds.load_idx_folder("data/mnist")  # doctest: +SKIP
    """
    folder = Path(folder)
    paths = {fname: _find_local(folder, fname) for fname in FILES}
    missing = [f for f, p in paths.items() if p is None]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise DatasetError(
            f"{folder}: missing IDX file(s) {', '.join(m[:-3] + '[.gz]' for m in missing)}; "
            f"the folder holds {present if present else 'nothing'}"
        )
    _check_idx_headers(folder, [p for p in paths.values() if p is not None])
    arrays, digests, owners, known = [], {}, set(), known_digests()
    for path in paths.values():
        assert path is not None
        try:  # hashed, then parsed as a stream: no copy of the file's bytes is held
            digests[path.name] = archive = file_sha256(path)
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read: {exc}") from exc
        arr, content = _read_idx(path, str(path), hashed=archive not in known)
        owners.add((known.get(archive) or known.get(content, "")).split("/")[0])
        arrays.append(arr)
    name, class_names = folder.resolve().name or "idx", None
    if len(owners) == 1 and (owner := owners.pop()) in CLASS_NAMES:
        name, class_names = owner, CLASS_NAMES[owner]
    return Dataset.from_arrays(name, *arrays, class_names=class_names, source=str(folder),
                               sha256=digests)


def _check_idx_headers(folder: Path, paths: list[Path]) -> None:
    """Shapes, lengths and the float32 size from the four headers, before reading any data."""
    shapes = [read_idx_header(p)[0] for p in paths]
    for key, shape, ndim in zip(("train images", "train labels", "test images", "test labels"),
                                shapes, (3, 1, 3, 1), strict=True):
        if len(shape) != ndim:
            want = "(n, rows, cols)" if ndim == 3 else "(n,)"
            raise DatasetError(f"{folder}: {key} have shape {shape}; expected {want}")
    for split, (images, labels) in (("train", shapes[:2]), ("test", shapes[2:])):
        if images[0] != labels[0]:
            raise DatasetError(f"{folder}: x_{split} has {images[0]} samples but y_{split} has "
                               f"{labels[0]}")
    check_data_size(math.prod(shapes[0]) + math.prod(shapes[2]), f"{folder}'s images")


def _npz_extras(arrays: dict[str, np.ndarray], path: Path
                ) -> tuple[list[str] | None, list[int] | None]:
    """The optional ``class_names`` and ``image_shape`` arrays of an .npz, checked."""
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.dtype.kind not in "US" or names.ndim != 1:
            raise DatasetError(f"{path}: class_names must be a 1-D array of strings")
        class_names = [str(n) for n in names.tolist()]
    image_shape = None
    if "image_shape" in arrays:
        shp = arrays["image_shape"]
        if shp.ndim != 1 or not np.issubdtype(shp.dtype, np.integer):
            raise DatasetError(f"{path}: image_shape must be a 1-D integer array")
        image_shape = [int(d) for d in shp.tolist()]
    return class_names, image_shape


def _npz_keys(path: Path, members: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
    """The member of each array `load_npz` reads (any key case); class_names' size bounded."""
    by_lower = {k.lower(): k for k in members}
    absent = [want for want in _NPZ_KEYS if want not in by_lower]
    if absent:
        raise DatasetError(
            f"{path}: no array {absent[0]!r}; an .npz dataset needs "
            f"{', '.join(_NPZ_KEYS)} (found: {', '.join(sorted(members)) or 'none'})")
    keys = {want: by_lower[want] for want in (*_NPZ_KEYS, "class_names", "image_shape")
            if want in by_lower}
    names_size = members[keys["class_names"]].file_size if "class_names" in keys else 0
    if names_size > _MAX_NAMES_BYTES:
        raise DatasetError(f"{path}: class_names takes {names_size:,} bytes; at most "
                           f"{_MAX_NAMES_BYTES:,} are read (65,536 names of 256 characters)")
    return keys


def load_npz(path: str | os.PathLike[str]) -> Dataset:
    """Load an ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``.

    This is the layout of Keras' ``mnist.npz``; any ``.npz`` with those four arrays
    works (key case is ignored). Optional arrays: ``class_names`` (strings) and
    ``image_shape`` (integers). Pickled (object) arrays are never loaded.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    Dataset
        Named after the file stem, with ``source`` the path.

    Raises
    ------
    DatasetError
        Not a zip/npz file, missing keys, object arrays, truncated members, or array
        contents that fail validation (see
        [`Dataset.from_arrays`][xpnet.datasets.Dataset.from_arrays]).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> import xpnet.datasets as xds
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "toy.npz")
    ...     np.savez(p, x_train=np.zeros((3, 4), np.uint8), y_train=[0, 1, 2],
    ...              x_test=np.zeros((1, 4), np.uint8), y_test=[1])
    ...     ds = xds.load(p)
    >>> ds.name, ds.x_train.shape, ds.num_classes
    ('toy', (3, 4), 3)
    """
    path = Path(path)
    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    arrays = _load_npz(path, functools.partial(_npz_keys, path), ("x_train", "x_test"))
    class_names, image_shape = _npz_extras(arrays, path)
    try:
        return Dataset.from_arrays(path.stem, *(arrays[k] for k in _NPZ_KEYS),
                                   class_names=class_names, image_shape=image_shape,
                                   source=str(path), sha256={path.name: digest})
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None
