# NumPy is used on the host here for file I/O (IDX parsing), as DESIGN.md rule 1 allows.
"""MNIST and Fashion-MNIST: mirrors, the SHA-256 table, download and the local cache.

Downloads are verified against `CHECKSUMS` before they become visible: each file
streams into a uniquely named temporary file in the destination folder, is hashed on
the way, fsynced, and only then renamed onto its final name with `os.replace`
(see ``_download.py``). The rename is atomic on one file system, so a reader, or a
second process downloading the same file at the same time, sees either no file or a
complete verified one, never a partial one. Any failure deletes the temporary file.

Files already on disk are re-verified on every load; a mismatch is an error naming the
file and both digests, never a silent re-download.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._core import Dataset, DatasetError, DownloadError, cache_dir
from ._download import MirrorFailed, fetch_verified
from .idx import _read_idx

__all__ = [
    "CHECKSUMS",
    "CLASS_NAMES",
    "FILES",
    "MIRRORS",
    "FileChecksum",
    "download",
    "load_mnist",
]

FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
"""The four files of each dataset, in (train images, train labels, test images,
test labels) order, under their published names."""

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}
"""Base URLs tried in turn; a file's URL is ``base + file name``. Tests replace these."""


@dataclass(frozen=True)
class FileChecksum:
    """Expected digests of one published file.

    Parameters
    ----------
    sha256 : str
        SHA-256 of the published ``.gz`` file.
    size : int or None
        Size in bytes of the published ``.gz`` file (``None``: unknown).
    raw_sha256 : str or None
        SHA-256 of the decompressed IDX content. When known, a file whose ``.gz`` bytes
        differ (re-compressed with another timestamp or level) or an uncompressed copy
        is still accepted if its content matches.

    Examples
    --------
    >>> from xpnet.datasets.mnist import CHECKSUMS
    >>> CHECKSUMS["mnist"]["t10k-labels-idx1-ubyte.gz"].size
    4542
    """

    sha256: str
    size: int | None = None
    raw_sha256: str | None = None


# Published digests. The .gz digests and sizes are those listed by TensorFlow Datasets
# (tensorflow_datasets/url_checksums/mnist.txt and fashion_mnist.txt) and by other
# independent projects; the decompressed-content digests of MNIST are widely published
# and match the real files in this project's shared test data. No decompressed-content
# digest of Fashion-MNIST was confirmed from a public source, so those stay None.
CHECKSUMS: dict[str, dict[str, FileChecksum]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": FileChecksum(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            9912422,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        "train-labels-idx1-ubyte.gz": FileChecksum(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            28881,
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        "t10k-images-idx3-ubyte.gz": FileChecksum(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            1648877,
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        "t10k-labels-idx1-ubyte.gz": FileChecksum(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            4542,
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": FileChecksum(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880
        ),
        "train-labels-idx1-ubyte.gz": FileChecksum(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515
        ),
        "t10k-images-idx3-ubyte.gz": FileChecksum(
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102
        ),
        "t10k-labels-idx1-ubyte.gz": FileChecksum(
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148
        ),
    },
}
"""Expected digests of the published files: dataset name -> file name ->
[`FileChecksum`][xpnet.datasets.mnist.FileChecksum]."""

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
"""Class names by label."""

_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
}


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise DatasetError(
            f"{name!r} is not a downloadable dataset; choose one of {sorted(MIRRORS)}"
        )
    return _ALIASES[key]


def _folder(dataset: str, data_dir: str | os.PathLike[str] | None) -> Path:
    return cache_dir() / dataset if data_dir is None else Path(data_dir).expanduser()


def _find_local(folder: Path, fname: str) -> Path | None:
    """The file under a name it may have: the .gz, uncompressed, or dotted ``.idx3-ubyte``."""
    stem = fname[: -len(".gz")]
    dotted = stem.replace("-idx", ".idx")
    names = (fname, stem, dotted + ".gz", dotted)
    return next((folder / n for n in names if (folder / n).is_file()), None)


# The largest uncompressed file of either dataset (60,000 28x28 images plus the header).
_RAW_MAX_BYTES = 47_040_016


def _read_bounded(dataset: str, path: Path, spec: FileChecksum) -> bytes:
    """A cached file's bytes, its size checked against the published sizes before reading."""
    limit = max(2 * spec.size, _RAW_MAX_BYTES) if spec.size else _RAW_MAX_BYTES
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise DatasetError(
                f"{path}: {size:,} bytes, more than any copy of the {dataset} file "
                f"{path.name} can hold ({spec.size:,} bytes published, {_RAW_MAX_BYTES:,} "
                f"uncompressed); delete it, or run `xpnet download {dataset}` to replace it")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while being read
        raise DatasetError(f"{path}: more than {limit:,} bytes; delete it")
    return data


def _mismatch(dataset: str, path: Path, spec: FileChecksum, digest: str,
              raw_digest: str | None) -> DatasetError:
    content = "" if raw_digest is None else \
        f" (decompressed content: expected {spec.raw_sha256}, got {raw_digest})"
    return DatasetError(
        f"{path}: SHA-256 mismatch for {dataset} file {path.name}: expected {spec.sha256}, "
        f"got {digest}{content}. The file is damaged or is not the published one. Delete "
        f"it, or run `xpnet download {dataset}` (xpnet.datasets.download({dataset!r})) to "
        "replace it with a verified copy; to load unverified files, pass their folder as "
        "the dataset name instead (xpnet.datasets.load('DIR')).")


def _load_verified(dataset: str, spec: FileChecksum, path: Path, parse: bool = True
                   ) -> tuple[Any, str, str]:
    """Read `path` once and verify it: (its array, or None unless `parse`; name; SHA-256)."""
    try:
        data = _read_bounded(dataset, path, spec)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest == spec.sha256:
        return (_read_idx(data, str(path))[0] if parse else None), path.name, digest
    if spec.raw_sha256 is None and data[:2] != b"\x1f\x8b":
        raise DatasetError(
            f"{path}: cannot verify the uncompressed file {path.name}: xpnet knows only "
            f"the SHA-256 of the published {dataset} .gz files. Put the .gz files in "
            f"{path.parent}, or load the folder unverified with "
            f"xpnet.datasets.load({str(path.parent)!r})."
        )
    arr, raw_digest = None, None
    if spec.raw_sha256 is not None:  # a re-compressed or uncompressed copy of the content
        with contextlib.suppress(DatasetError):
            arr, raw_digest = _read_idx(data, str(path), hashed=True)
    if raw_digest is None or raw_digest != spec.raw_sha256:
        raise _mismatch(dataset, path, spec, digest, raw_digest)
    return arr, path.name, digest


def _verified(dataset: str, spec: FileChecksum, path: Path) -> bool:
    """Whether `path` has the published digest, or the published content (re-compressed)."""
    try:
        _load_verified(dataset, spec, path, parse=False)
    except DatasetError:
        return False
    return True


# --------------------------------------------------------------------------- download


def _tried(failures: list[tuple[str, str]]) -> str:
    """Why each mirror failed; one reason, with the hosts, when they all failed alike."""
    if not failures:
        return " no mirrors configured."
    reasons = {why for _, why in failures}
    if len(reasons) == 1 and len(failures) > 1:
        hosts = ", ".join(urllib.parse.urlsplit(url).netloc for url, _ in failures)
        return f" {reasons.pop()} ({len(failures)} mirrors: {hosts})."
    return "\n" + "\n".join(f"  - {url}: {why}" for url, why in failures)


def download(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download and verify the four files of MNIST or Fashion-MNIST.

    Files already present and matching `CHECKSUMS` are kept (nothing is
    fetched when all four verify); missing files are fetched, trying each mirror in
    turn; a present file that fails its checksum is replaced by a verified download.
    Each file is written atomically (see the module docstring), so concurrent downloads
    into one folder are safe.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Which dataset.
    data_dir : str or os.PathLike, optional
        Folder to put the files in (created if needed). Default:
        ``cache_dir() / name``, i.e. ``$XPNET_DATA_DIR/<name>`` or the platform cache.
    progress : bool, default True
        Show a progress bar (rich, on stderr) per file.
    mirrors : sequence of str, optional
        Base URLs to try instead of ``MIRRORS[name]``.
    timeout : float, default 30.0
        Seconds to wait on connecting and on each read.

    Returns
    -------
    pathlib.Path
        The folder holding the four verified files.

    Raises
    ------
    DownloadError
        If every mirror fails for a file: the message lists each mirror's answer (HTTP
        error, refused connection, timeout, truncated transfer, checksum mismatch) and
        how to supply the files by hand (``--data-dir DIR`` / ``data_dir=DIR``).
    DatasetError
        If ``name`` is not a downloadable dataset.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> folder = xds.download("mnist", "data/mnist")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', ...]
    """
    dataset = _canonical(name)
    folder = _folder(dataset, data_dir)
    # a damaged file is replaced by a verified copy under the published name
    present = {f: _find_local(folder, f) for f in FILES}
    todo = [f for f, p in present.items()
            if p is None or not _verified(dataset, CHECKSUMS[dataset][f], p)]
    _fetch_files(dataset, folder, todo, mirrors=mirrors, progress=progress, timeout=timeout)
    return folder


def _fetch_files(dataset: str, folder: Path, fnames: Sequence[str], *,
                 mirrors: Sequence[str] | None, progress: bool, timeout: float) -> None:
    """Download each of fnames into folder, trying the mirrors in turn."""
    if not fnames:
        return
    bases = tuple(mirrors) if mirrors is not None else MIRRORS[dataset]
    table = CHECKSUMS[dataset]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the data folder {folder}: {exc}") from exc
    for fname in fnames:
        failures = []
        spec = table[fname]
        for base in bases:
            url = (base if base.endswith("/") else base + "/") + fname
            try:
                fetch_verified(url, folder / fname, sha256=spec.sha256, size=spec.size,
                               content_ok=functools.partial(_verified, dataset, spec),
                               timeout=timeout, progress=progress, label=f"{dataset} {fname}")
                break
            except MirrorFailed as exc:
                failures.append((url, str(exc)))
        else:
            raise DownloadError(
                f"could not download {dataset} file {fname} from any mirror:"
                f"{_tried(failures)}\nOffline, put the four files ({', '.join(FILES)}) in a "
                f"folder DIR and pass --data-dir DIR (data_dir=DIR in Python), or in {folder}; "
                "their SHA-256 is checked.")


# ------------------------------------------------------------------------------- load


def load_mnist(
    name: str = "mnist",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
) -> Dataset:
    """Load MNIST or Fashion-MNIST, downloading missing files, verifying every file.

    Files already in the folder are verified (every time) before anything is
    downloaded; a file that fails is an error, never silently replaced. Missing files
    are downloaded as by [`download`][xpnet.datasets.download].

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}, default "mnist"
        Which dataset.
    data_dir : str or os.PathLike, optional
        Folder holding the four files (``.gz`` or uncompressed). Missing files are
        downloaded into it. Default: ``cache_dir() / name``.
    progress : bool, default True
        Progress bars while downloading.
    mirrors : sequence of str, optional
        Base URLs to try instead of ``MIRRORS[name]``.

    Returns
    -------
    Dataset
        60,000 train and 10,000 test images, 28x28, flattened to 784 float32 features
        in [0, 1]; int64 labels 0..9.

    Raises
    ------
    DatasetError
        A file on disk fails its SHA-256 check (the message names the file, the expected
        and the actual digest), or is malformed.
    DownloadError
        A missing file could not be downloaded from any mirror.

    Examples
    --------
    >>> from xpnet.datasets.mnist import load_mnist
    >>> ds = load_mnist("mnist", "data/mnist")  # doctest: +SKIP
    >>> ds.x_train.shape, ds.y_test.shape  # doctest: +SKIP
    ((60000, 784), (10000,))
    """
    dataset = _canonical(name)
    folder = _folder(dataset, data_dir)
    table = CHECKSUMS[dataset]
    # Files already here are verified first, so a damaged file is reported before any
    # download; load never replaces a file that exists.
    paths = {fname: _find_local(folder, fname) for fname in FILES}
    loaded = {f: _load_verified(dataset, table[f], p) for f, p in paths.items() if p is not None}
    missing = [fname for fname, path in paths.items() if path is None]
    _fetch_files(dataset, folder, missing, mirrors=mirrors, progress=progress, timeout=30.0)
    loaded.update({f: _load_verified(dataset, table[f], folder / f) for f in missing})
    x_train, y_train, x_test, y_test = (loaded[f][0] for f in FILES)
    for key, x in (("train images", x_train), ("test images", x_test)):
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DatasetError(f"{dataset} {key} have shape {x.shape} and dtype {x.dtype}; "
                               "expected (n, rows, cols) uint8")
    return Dataset.from_arrays(dataset, x_train, y_train, x_test, y_test,
                               class_names=CLASS_NAMES[dataset], source=str(folder),
                               sha256={loaded[f][1]: loaded[f][2] for f in FILES})


def known_digests() -> Mapping[str, str]:
    """Map every known digest (archive or content) to ``"<dataset>/<file>"``.

    Returns
    -------
    Mapping[str, str]

    Examples
    --------
    >>> from xpnet.datasets.mnist import known_digests
    >>> known_digests()["f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"]
    'mnist/t10k-labels-idx1-ubyte.gz'
    """
    return {digest: f"{dataset}/{fname}" for dataset, table in CHECKSUMS.items()
            for fname, spec in table.items() for digest in (spec.sha256, spec.raw_sha256) if digest}
