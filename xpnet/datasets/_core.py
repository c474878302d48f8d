# NumPy is used on the host here for dataset I/O and validation (DESIGN.md, rule 1).
"""Shared pieces of [`xpnet.datasets`][]: the error classes, [`Dataset`][xpnet.datasets.Dataset],
hashing and the cache folder."""

from __future__ import annotations

import hashlib
import io
import math
import os
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "Dataset",
    "DatasetError",
    "DownloadError",
    "FREE_CLASSES",
    "MAX_CLASSES",
    "MAX_DATA_BYTES",
    "cache_dir",
    "check_class_count",
    "check_data_size",
    "check_float_values",
    "file_sha256",
    "max_data_bytes",
    "read_npy_header",
]


class DatasetError(ValueError):
    """A data file or array is missing, malformed, or fails its checksum.

    Every problem with data that [`xpnet.datasets`][] detects is raised as this class
    (or a subclass), so ``except DatasetError`` catches them all. It is a
    `ValueError`.

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
    """Return the SHA-256 hex digest of a file, read in 256 KiB chunks.

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
    h, buffer = hashlib.sha256(), memoryview(bytearray(1 << 18))
    with open(path, "rb", buffering=0) as f:  # one buffer (f.read(n) would allocate n each time)
        while n := f.readinto(buffer):
            h.update(buffer[:n])
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


MAX_CLASSES = 2**16
"""Labels must be smaller than this: a dataset has at most 65,536 classes."""
FREE_CLASSES = 256
"""A dataset may have more classes than labelled samples only up to this many (any
``uint8`` label); above it, every class needs at least one sample's worth of data."""
MAX_DATA_BYTES = 2**32
"""Default cap, in bytes, on the float32 copy of the images a loader makes (4 GiB);
the environment variable ``XPNET_MAX_DATA_BYTES`` sets another."""
_CHECK_CHUNK = 1 << 20  # elements per chunk when checking float values
_MAX_NPY_HEADER = 10_000  # numpy's own default max_header_size
# a class name is a label for tables and plots, stored in every checkpoint and run.json
_MAX_CLASS_NAME_CHARS = 256


def max_data_bytes() -> int:
    """The cap on the float32 copy of a dataset or of ``predict`` inputs, in bytes.

    ``XPNET_MAX_DATA_BYTES`` when it is set (a positive integer), else
    [`MAX_DATA_BYTES`][xpnet.datasets.MAX_DATA_BYTES] (4 GiB). Loaders compare what the
    file headers claim with it before they allocate or decompress anything.

    Returns
    -------
    int
        The cap.

    Raises
    ------
    DatasetError
        ``XPNET_MAX_DATA_BYTES`` is set but is not a positive integer.

    Examples
    --------
    >>> from xpnet.datasets import max_data_bytes
    >>> max_data_bytes() >= 2**20
    True
    """
    text = os.environ.get("XPNET_MAX_DATA_BYTES", "").strip()
    if not text:
        return MAX_DATA_BYTES
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise DatasetError(f"XPNET_MAX_DATA_BYTES must be a positive integer (bytes), got "
                           f"{text!r}")
    return value


def check_data_size(n_values: int, what: str) -> None:
    """Refuse data whose float32 copy would exceed
    [`max_data_bytes`][xpnet.datasets.max_data_bytes].

    Parameters
    ----------
    n_values : int
        The number of values (samples times features) the float32 copy would hold.
    what : str
        What the data is, for the message (e.g. a file name).

    Raises
    ------
    DatasetError
        Above the cap; the message gives both sizes and how to raise the cap.

    Examples
    --------
    >>> from xpnet.datasets import DatasetError, check_data_size
    >>> check_data_size(70_000 * 784, "mnist")  # 220 MB: fine
    >>> try:
    ...     check_data_size(2**31, "big.npy")
    ... except DatasetError as exc:
    ...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
    big.npy would take 8589934592 bytes as float32 (2147483648 values), above the
    4294967296-byte cap (xpnet.datasets.MAX_DATA_BYTES); set XPNET_MAX_DATA_BYTES to
    allow more
    """
    need, cap = 4 * int(n_values), max_data_bytes()
    if need > cap:
        raise DatasetError(
            f"{what} would take {need} bytes as float32 ({n_values} values), above the "
            f"{cap}-byte cap (xpnet.datasets.MAX_DATA_BYTES); set XPNET_MAX_DATA_BYTES to "
            "allow more"
        )


def check_class_count(num_classes: int, n_labels: int, what: str) -> None:
    """Refuse a class count that is too large, or too large for the data.

    Parameters
    ----------
    num_classes : int
        The number of classes (largest label + 1, or the number of class names).
    n_labels : int
        The number of labelled samples (train and test).
    what : str
        Where the count comes from, for the message.

    Raises
    ------
    DatasetError
        Above [`MAX_CLASSES`][xpnet.datasets.MAX_CLASSES], or above both
        [`FREE_CLASSES`][xpnet.datasets.FREE_CLASSES] and `n_labels`.

    Examples
    --------
    >>> from xpnet.datasets import DatasetError, check_class_count
    >>> check_class_count(10, 3, "labels")  # up to 256 classes are always allowed
    >>> try:
    ...     check_class_count(1000, 3, "labels")
    ... except DatasetError as exc:
    ...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
    labels give 1000 classes but the data has only 3 labelled samples; more classes than
    samples are allowed only up to 256
    """
    if num_classes > MAX_CLASSES:
        raise DatasetError(f"{what} give {num_classes} classes; at most {MAX_CLASSES} are "
                           "allowed (xpnet.datasets.MAX_CLASSES)")
    if num_classes > max(FREE_CLASSES, n_labels):
        raise DatasetError(
            f"{what} give {num_classes} classes but the data has only {n_labels} labelled "
            f"samples; more classes than samples are allowed only up to {FREE_CLASSES}")


def read_npy_header(f: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Read the header of a ``.npy`` stream and check it, without reading the data.

    Parameters
    ----------
    f : binary file
        Positioned at the start of the ``.npy`` data (a file, or a member of an ``.npz``);
        left just after the header.
    name : str
        What to call the array in messages.

    Returns
    -------
    shape : tuple of int
    dtype : numpy.dtype
    fortran_order : bool

    Raises
    ------
    DatasetError
        A malformed header, a format version other than 1.0 and 2.0 (3.0 exists only for
        structured dtypes with non-Latin-1 field names), or an object dtype (xpnet never
        unpickles data).

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from xpnet.datasets import read_npy_header
    >>> buf = io.BytesIO()
    >>> np.save(buf, np.zeros((2, 3), np.uint8))
    >>> _ = buf.seek(0)
    >>> read_npy_header(buf, "x.npy")
    ((2, 3), dtype('uint8'), False)
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise DatasetError(f"{name} uses .npy format version {version[0]}.{version[1]}; "
                               "xpnet reads versions 1.0 and 2.0 (numeric arrays)")
        # Kept by hand: numpy allocates the header length a file claims (4 GiB in a 2.0
        # header) before it checks that length against its max_header_size.
        size = f.read(2 if version == (1, 0) else 4)
        length = int.from_bytes(size, "little")
        if length > _MAX_NPY_HEADER:
            raise ValueError(f"the header claims {length} bytes, more than {_MAX_NPY_HEADER}")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(io.BytesIO(size + f.read(length)),
                                     max_header_size=_MAX_NPY_HEADER)
    except DatasetError:  # the version's own message (a ValueError too)
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{name} has a malformed .npy header: {exc}") from None
    if dtype.hasobject:
        raise DatasetError(f"{name} has object dtype {dtype}; xpnet never unpickles data "
                           "(save numeric arrays only)")
    return tuple(int(d) for d in shape), dtype, bool(fortran)


def _inflate_limit(compressed: int) -> int:
    """Most bytes `compressed` bytes of deflate data (gzip, zip) can hold: about 1032:1."""
    return compressed * 1032 + 1024


def _npz_members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The ``.npy`` members of an ``.npz``, by array name."""
    return {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}


def _npz_member_shape(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                      key: str) -> tuple[int, ...]:
    """The shape in one .npy header; object dtypes and impossible sizes refused first."""
    with zf.open(info) as f:
        shape, dtype, _ = read_npy_header(f, f"{path}: array {key!r}")
    nbytes = math.prod(shape) * dtype.itemsize
    limit = info.file_size
    if info.compress_type != zipfile.ZIP_STORED:
        limit = min(limit, _inflate_limit(info.compress_size))
    if nbytes > limit:
        raise DatasetError(
            f"{path}: array {key!r} claims shape {shape} of {dtype} ({nbytes} bytes) but "
            f"the archive member holds at most {limit} bytes: truncated or corrupt"
        )
    return shape


def _load_npz(path: Path, pick: Callable[[dict[str, zipfile.ZipInfo]], dict[str, str]],
              sized: tuple[str, ...], error: type[DatasetError] = DatasetError
              ) -> dict[str, np.ndarray]:
    """The arrays `pick` maps names to members of; every header and `sized`'s float32 size first."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = _npz_members(zf)
            keys = pick(members)
            shapes = {name: _npz_member_shape(zf, members[key], path, name)
                      for name, key in keys.items()}
        check_data_size(sum(math.prod(shapes[name]) for name in sized),
                        f"{path}'s {' and '.join(sized)}")
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[key] for name, key in keys.items()}
    except DatasetError as exc:  # a ValueError too: first
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None
    except zipfile.BadZipFile as exc:
        raise error(f"{path}: not an .npz (zip) file: {exc}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{path}: cannot read arrays: {exc}") from None


def _image_array(x: Any, key: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate the shape and dtype of images; return them as (n, n_features), unconverted."""
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
    if x.dtype.kind not in "biuf":
        raise DatasetError(
            f"{key} has dtype {x.dtype}; expected uint8, an integer or a float dtype")
    return x.reshape(n, n_features), image_shape


def check_float_values(x: np.ndarray, key: str) -> None:
    """Check that float samples are finite and in [0, 1], in chunks (no full-size temporaries).

    Parameters
    ----------
    x : numpy.ndarray
        (n, n_features) floats.
    key : str
        The array's name, for the message.

    Raises
    ------
    DatasetError
        NaN or infinity (naming the first sample that holds one), or values outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.datasets import DatasetError, check_float_values
    >>> try:
    ...     check_float_values(np.array([[0.5], [np.nan]], np.float32), "x_test")
    ... except DatasetError as exc:
    ...     print(exc)
    x_test contains NaN (first at sample 1)
    """
    rows = max(1, _CHECK_CHUNK // max(1, x.shape[1]))
    lo, hi = math.inf, -math.inf
    for start in range(0, x.shape[0], rows):
        part = x[start:start + rows]
        if not np.isfinite(part).all():
            bad = np.argwhere(~np.isfinite(part))[0]
            kind = "NaN" if np.isnan(part[tuple(bad)]) else "an infinite value"
            raise DatasetError(f"{key} contains {kind} (first at sample {start + int(bad[0])})")
        lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    if lo < 0.0 or hi > 1.0:
        raise DatasetError(
            f"{key} holds floats in [{lo:g}, {hi:g}]; float images must already be "
            "scaled to [0, 1] (uint8 images are scaled for you)"
        )


def _to_float32(x: np.ndarray, key: str) -> np.ndarray:
    """(n, n_features) float32 in [0, 1] from validated images: the one float copy."""
    if x.dtype.kind in "iu" and x.dtype != np.uint8:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DatasetError(f"{key} holds integers in [{lo}, {hi}]; integer images must lie "
                               "in [0, 255] (they are divided by 255)")
    out = x.astype(np.float32)  # float64 values beyond float32's range become inf here
    if x.dtype.kind in "iu":
        out /= np.float32(255.0)
    elif x.dtype.kind == "f":
        check_float_values(out, key)
    return out


def _prepare_labels(y: Any, key: str) -> np.ndarray:
    """Validate labels (below MAX_CLASSES) and return them as int64 of shape (n,)."""
    y = np.asarray(y)
    if y.dtype.hasobject:
        raise DatasetError(f"{key} is an object array; labels must be integers")
    if y.ndim != 1:
        raise DatasetError(f"{key} has shape {y.shape}; labels must be 1-D (n_samples,)")
    if y.shape[0] == 0:
        raise DatasetError(f"{key} is empty")
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{key} has dtype {y.dtype}; labels must be non-negative integers")
    if y.min() < 0:
        first = int(np.argmax(y < 0))
        raise DatasetError(f"{key} has a negative label {int(y[first])} at index {first}; "
                           "labels must be non-negative integers")
    if y[first := int(np.argmax(y))] >= MAX_CLASSES:
        raise DatasetError(f"{key} has label {int(y[first])} at index {first}; labels must be "
                           f"< {MAX_CLASSES} (xpnet.datasets.MAX_CLASSES)")
    return y.astype(np.int64)


def _check_class_names(n_names: int, top: int, n_labels: int) -> None:
    """Refuse too many class names for the data, or too few for the largest label."""
    check_class_count(n_names, n_labels, f"{n_names} class names")
    if top >= n_names:
        raise DatasetError(f"label {top} has no class name: {n_names} class names were given")


def _check_sample_counts(x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> None:
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.shape[0] != y.shape[0]:
            raise DatasetError(f"x_{split} has {x.shape[0]} samples but y_{split} has "
                               f"{y.shape[0]}")


def _class_names(class_names: Sequence[str] | None, top: int, n_labels: int
                 ) -> tuple[str, ...]:
    """The class names, after checking their number before building any."""
    if class_names is None:
        check_class_count(top + 1, n_labels, f"labels up to {top}")
        return tuple(str(i) for i in range(top + 1))
    _check_class_names(len(class_names), top, n_labels)
    names = tuple(str(c) for c in class_names)
    for i, name in enumerate(names):
        if len(name) > _MAX_CLASS_NAME_CHARS:
            raise DatasetError(f"class name {i} has {len(name):,} characters "
                               f"({name[:20]!r}...); at most {_MAX_CLASS_NAME_CHARS} are taken")
    return names


def _sample_shape(image_shape: Sequence[int], n_features: int) -> tuple[int, ...]:
    """A given ``image_shape``, checked against the samples' number of features."""
    shape = tuple(int(d) for d in image_shape)
    if not 1 <= len(shape) <= 4 or min(shape) < 1:
        raise DatasetError(f"image_shape must be 1 to 4 positive integers, got {list(shape)}")
    if math.prod(shape) != n_features:
        raise DatasetError(
            f"image_shape {shape} has {math.prod(shape)} pixels but the samples have "
            f"{n_features} features"
        )
    return shape


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled train/test split held as NumPy arrays on the host.

    Build one with [`xpnet.datasets.load`][] or
    [`Dataset.from_arrays`][xpnet.datasets.Dataset.from_arrays]; both validate the
    arrays. Move the arrays to a device with the backend of your choice (``fit`` does
    that once for you).

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
        _check_sample_counts(self.x_train, self.y_train, self.x_test, self.y_test)
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
        _check_class_names(len(self.class_names), top, len(self.y_train) + len(self.y_test))

    @classmethod
    def from_arrays(cls, name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
                    class_names: Sequence[str] | None = None,
                    image_shape: Sequence[int] | None = None, source: str = "arrays",
                    sha256: dict[str, str] | None = None) -> Dataset:
        """Validate and convert arrays into a [`Dataset`][xpnet.datasets.Dataset].

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
            Non-negative integer labels of shape ``(n,)``, below
            [`MAX_CLASSES`][xpnet.datasets.MAX_CLASSES].
        class_names : sequence of str, optional
            Names indexed by label; default ``"0"``, ``"1"``, ... up to the largest label.
            The number of classes may exceed the number of labelled samples (train and
            test) only up to [`FREE_CLASSES`][xpnet.datasets.FREE_CLASSES] (see
            [`check_class_count`][xpnet.datasets.check_class_count]).
        image_shape : sequence of int, optional
            Shape of one sample; default ``x_train.shape[1:]``.
        source : str, default "arrays"
            Recorded as `source`.
        sha256 : dict, optional
            Digests of the files the arrays came from.

        Returns
        -------
        Dataset

        Raises
        ------
        DatasetError
            Empty arrays, mismatched lengths, negative or non-integer labels, a label of
            [`MAX_CLASSES`][xpnet.datasets.MAX_CLASSES] or more, more classes than the
            data can hold, images whose float32 copy would exceed
            [`max_data_bytes`][xpnet.datasets.max_data_bytes], NaN or out-of-range pixel
            values (also float64 values beyond float32's range), object arrays,
            mismatched feature counts. Labels and sizes are checked before any copy is
            made.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.datasets import Dataset
        >>> ds = Dataset.from_arrays("xor", np.eye(2), [0, 1], np.eye(2), [0, 1])
        >>> ds.summary()
        'xor: 2 train / 2 test samples of 2 features, 2 classes (source: arrays)'
        """
        # shapes, labels and the class count first: they bound what is allocated next
        xtr, shape = _image_array(x_train, "x_train")
        xte, shape_te = _image_array(x_test, "x_test")
        ytr, yte = _prepare_labels(y_train, "y_train"), _prepare_labels(y_test, "y_test")
        _check_sample_counts(xtr, ytr, xte, yte)
        if shape != shape_te:
            raise DatasetError(
                f"x_train samples have shape {shape} but x_test samples have {shape_te}")
        names = _class_names(class_names, max(int(ytr.max()), int(yte.max())),
                             ytr.shape[0] + yte.shape[0])
        check_data_size(xtr.size + xte.size, f"{name}'s x_train and x_test")
        xtr, xte = _to_float32(xtr, "x_train"), _to_float32(xte, "x_test")
        if image_shape is not None:
            shape = _sample_shape(image_shape, xtr.shape[1])
        return cls(name=str(name), x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                   class_names=names, image_shape=shape, source=str(source),
                   sha256=dict(sha256 or {}))

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
