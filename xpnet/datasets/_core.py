# NumPy is used on the host here for dataset I/O and validation (DESIGN.md, rule 1).
"""Shared pieces of :mod:`xpnet.datasets`: the error classes, :class:`Dataset`, hashing
and the cache folder."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Dataset",
    "DatasetError",
    "DownloadError",
    "cache_dir",
    "file_sha256",
]


class DatasetError(ValueError):
    """A data file or array is missing, malformed, or fails its checksum.

    Every problem with data that :mod:`xpnet.datasets` detects is raised as this class
    (or a subclass), so ``except DatasetError`` catches them all. It is a
    :class:`ValueError`.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> try:
    ...     xds.load("no-such-dataset")
    ... except xds.DatasetError as exc:
    ...     print(type(exc).__name__)
    DatasetError
    """


class DownloadError(DatasetError):
    """No mirror delivered a file whose SHA-256 matches xpnet's table.

    The message lists what each mirror answered and how to supply the files by hand.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> issubclass(xds.DownloadError, xds.DatasetError)
    True
    """


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file to hash.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        If the file cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xpnet.datasets import file_sha256
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "empty.bin")
    ...     _ = p.write_bytes(b"")
    ...     file_sha256(p)[:16]
    'e3b0c44298fc1c14'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Return the root folder where downloaded datasets are cached.

    ``$XPNET_DATA_DIR`` if it is set and not empty; otherwise the platform's per-user
    cache folder: ``$XDG_CACHE_HOME/xpnet`` (default ``~/.cache/xpnet``) on Linux and
    other Unix systems, ``~/Library/Caches/xpnet`` on macOS and
    ``%LOCALAPPDATA%\\xpnet\\Cache`` on Windows. Each dataset lives in a subfolder
    (``mnist/``, ``fashion-mnist/``). The folder is not created here.

    Returns
    -------
    pathlib.Path
        The cache root (absolute when the environment gives an absolute path).

    Examples
    --------
    >>> from pathlib import Path
    >>> from xpnet.datasets import cache_dir
    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get("XPNET_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", "").strip()
        root = Path(base) if base else Path.home() / "AppData" / "Local"
        return root / "xpnet" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "xpnet"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG spec says relative paths are invalid and must be ignored.
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "xpnet"


def _prepare_images(x: Any, key: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate images and return them as float32 (n, n_features) in [0, 1]."""
    x = np.asarray(x)
    if x.dtype.hasobject:
        raise DatasetError(f"{key} is an object array; only numeric arrays are accepted")
    if x.ndim < 2:
        raise DatasetError(f"{key} has shape {x.shape}; expected (n_samples, ...) with ndim >= 2")
    n = x.shape[0]
    if n == 0:
        raise DatasetError(f"{key} is empty (shape {x.shape})")
    image_shape = tuple(int(d) for d in x.shape[1:])
    n_features = math.prod(image_shape)
    if n_features == 0:
        raise DatasetError(f"{key} has shape {x.shape}: each sample has no features")
    x = x.reshape(n, n_features)
    if x.dtype == np.uint8:
        out = x.astype(np.float32)
        out /= np.float32(255.0)
        return out, image_shape
    if x.dtype == np.bool_:
        return x.astype(np.float32), image_shape
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DatasetError(
                f"{key} holds integers in [{lo}, {hi}]; integer images must lie in "
                "[0, 255] (they are divided by 255)"
            )
        out = x.astype(np.float32)
        out /= np.float32(255.0)
        return out, image_shape
    if np.issubdtype(x.dtype, np.floating):
        out = x.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            kind = "NaN" if np.isnan(out[tuple(bad)]) else "an infinite value"
            raise DatasetError(f"{key} contains {kind} (first at sample {int(bad[0])})")
        flo, fhi = float(out.min()), float(out.max())
        if flo < 0.0 or fhi > 1.0:
            raise DatasetError(
                f"{key} holds floats in [{flo:g}, {fhi:g}]; float images must already be "
                "scaled to [0, 1] (uint8 images are scaled for you)"
            )
        return out, image_shape
    raise DatasetError(f"{key} has dtype {x.dtype}; expected uint8, an integer or a float dtype")


def _prepare_labels(y: Any, key: str) -> np.ndarray:
    """Validate labels and return them as int64 of shape (n,)."""
    y = np.asarray(y)
    if y.dtype.hasobject:
        raise DatasetError(f"{key} is an object array; labels must be integers")
    if y.ndim != 1:
        raise DatasetError(f"{key} has shape {y.shape}; labels must be 1-D (n_samples,)")
    if y.shape[0] == 0:
        raise DatasetError(f"{key} is empty")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{key} has dtype {y.dtype}; labels must be non-negative integers")
    lo = int(y.min())
    if lo < 0:
        first = int(np.argmax(y < 0))
        raise DatasetError(
            f"{key} has a negative label {int(y[first])} at index {first}; "
            "labels must be non-negative integers"
        )
    if int(y.max()) > np.iinfo(np.int64).max:  # only reachable for uint64
        raise DatasetError(f"{key} has labels too large for int64")
    return y.astype(np.int64)


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled train/test split held as NumPy arrays on the host.

    Build one with :func:`xpnet.datasets.load` or :meth:`Dataset.from_arrays`; both
    validate the arrays. Move the arrays to a device with the backend of your choice
    (``fit`` does that once for you).

    Parameters
    ----------
    name : str
        Short name, e.g. ``"mnist"``.
    x_train, x_test : numpy.ndarray
        float32 of shape ``(n, n_features)`` with values in ``[0, 1]``; each image is
        flattened row by row (``image_shape`` gives the original shape).
    y_train, y_test : numpy.ndarray
        int64 of shape ``(n,)``, values in ``0 .. num_classes - 1``.
    class_names : tuple of str
        One name per class, index = label.
    image_shape : tuple of int
        Shape of one sample before flattening, e.g. ``(28, 28)``.
    source : str
        Where the data came from: a folder, a file, a URL or ``"bundled"``.
    sha256 : dict of str to str
        File name -> SHA-256 hex digest of each file that was read.

    Raises
    ------
    DatasetError
        From the constructor if shapes or dtypes break the contract above.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.datasets import Dataset
    >>> ds = Dataset.from_arrays(
    ...     "tiny", np.zeros((4, 2, 2), np.uint8), [0, 1, 0, 1],
    ...     np.ones((2, 2, 2), np.uint8), [1, 0])
    >>> ds.n_features, ds.num_classes, round(float(ds.x_test.max()), 6)
    (4, 2, 0.003922)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]
    source: str
    sha256: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("x_train", "x_test"):
            x = getattr(self, key)
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
                raise DatasetError(
                    f"Dataset.{key} must be a float32 NumPy array of shape (n, n_features); "
                    "use Dataset.from_arrays to convert and validate"
                )
        for key in ("y_train", "y_test"):
            y = getattr(self, key)
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
                raise DatasetError(f"Dataset.{key} must be an int64 NumPy array of shape (n,)")
        for split in ("train", "test"):
            nx = getattr(self, f"x_{split}").shape[0]
            ny = getattr(self, f"y_{split}").shape[0]
            if nx != ny:
                raise DatasetError(f"x_{split} has {nx} samples but y_{split} has {ny} labels")
        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise DatasetError(
                f"x_train has {self.x_train.shape[1]} features but x_test has "
                f"{self.x_test.shape[1]}"
            )
        if math.prod(self.image_shape) != self.x_train.shape[1]:
            raise DatasetError(
                f"image_shape {self.image_shape} does not match {self.x_train.shape[1]} features"
            )
        top = max(int(self.y_train.max(initial=0)), int(self.y_test.max(initial=0)))
        if top >= len(self.class_names):
            raise DatasetError(
                f"label {top} has no class name: class_names has {len(self.class_names)} entries"
            )

    @classmethod
    def from_arrays(
        cls,
        name: str,
        x_train: Any,
        y_train: Any,
        x_test: Any,
        y_test: Any,
        *,
        class_names: Sequence[str] | None = None,
        image_shape: Sequence[int] | None = None,
        source: str = "arrays",
        sha256: dict[str, str] | None = None,
    ) -> Dataset:
        """Validate and convert arrays into a :class:`Dataset`.

        Parameters
        ----------
        name : str
            Short name for the data.
        x_train, x_test : array_like
            Images or feature vectors, shape ``(n, ...)``. uint8 (and other integer
            dtypes with values in 0..255) are divided by 255; bool becomes 0/1; floats
            must already lie in ``[0, 1]`` and be finite. Everything is flattened to
            ``(n, n_features)`` float32.
        y_train, y_test : array_like
            Non-negative integer labels of shape ``(n,)``.
        class_names : sequence of str, optional
            Names indexed by label; default ``"0"``, ``"1"``, ... up to the largest label.
        image_shape : sequence of int, optional
            Shape of one sample; default ``x_train.shape[1:]``.
        source : str, default "arrays"
            Recorded as :attr:`source`.
        sha256 : dict, optional
            Digests of the files the arrays came from.

        Returns
        -------
        Dataset

        Raises
        ------
        DatasetError
            Empty arrays, mismatched lengths, negative or non-integer labels, NaN or
            out-of-range pixel values, object arrays, mismatched feature counts.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.datasets import Dataset
        >>> ds = Dataset.from_arrays("xor", np.eye(2), [0, 1], np.eye(2), [0, 1])
        >>> ds.summary()
        'xor: 2 train / 2 test samples of 2 features, 2 classes (source: arrays)'
        """
        xtr, shape_tr = _prepare_images(x_train, "x_train")
        xte, shape_te = _prepare_images(x_test, "x_test")
        ytr = _prepare_labels(y_train, "y_train")
        yte = _prepare_labels(y_test, "y_test")
        if xtr.shape[0] != ytr.shape[0]:
            raise DatasetError(f"x_train has {xtr.shape[0]} samples but y_train has {ytr.shape[0]}")
        if xte.shape[0] != yte.shape[0]:
            raise DatasetError(f"x_test has {xte.shape[0]} samples but y_test has {yte.shape[0]}")
        if shape_tr != shape_te:
            raise DatasetError(
                f"x_train samples have shape {shape_tr} but x_test samples have {shape_te}"
            )
        top = max(int(ytr.max()), int(yte.max()))
        if class_names is None:
            names = tuple(str(i) for i in range(top + 1))
        else:
            names = tuple(str(c) for c in class_names)
            if top >= len(names):
                raise DatasetError(
                    f"label {top} has no class name: {len(names)} class names were given"
                )
        if image_shape is None:
            shape = shape_tr
        else:
            shape = tuple(int(d) for d in image_shape)
            if math.prod(shape) != xtr.shape[1]:
                raise DatasetError(
                    f"image_shape {shape} has {math.prod(shape)} pixels but the samples have "
                    f"{xtr.shape[1]} features"
                )
        return cls(
            name=str(name),
            x_train=xtr,
            y_train=ytr,
            x_test=xte,
            y_test=yte,
            class_names=names,
            image_shape=shape,
            source=str(source),
            sha256=dict(sha256 or {}),
        )

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)``.

        Examples
        --------
        >>> import xpnet.datasets as xds
        >>> xds.load("digits").num_classes
        10
        """
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        """Features per sample, ``x_train.shape[1]``.

        Examples
        --------
        >>> import xpnet.datasets as xds
        >>> xds.load("digits").n_features
        64
        """
        return int(self.x_train.shape[1])

    def summary(self) -> str:
        """Return a one-line description of the split.

        Returns
        -------
        str

        Examples
        --------
        >>> from xpnet.datasets import load
        >>> load("digits").summary()
        'digits: 1437 train / 360 test images of 8x8 (64 features), 10 classes (source: bundled)'
        """
        n_tr, n_te = self.x_train.shape[0], self.x_test.shape[0]
        if len(self.image_shape) >= 2:
            what = f"images of {'x'.join(map(str, self.image_shape))} ({self.n_features} features)"
        else:
            what = f"samples of {self.n_features} features"
        return (
            f"{self.name}: {n_tr} train / {n_te} test {what}, {self.num_classes} classes "
            f"(source: {self.source})"
        )

    def __repr__(self) -> str:
        return f"<Dataset {self.summary()}>"
