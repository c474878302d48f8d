"""Data loading shared by the MNIST examples: MNIST when it is on disk, else the bundled digits.

``load_example_data(data_dir, fast=...)`` returns ``(dataset, note)``, where ``note``
is one line saying what was loaded and why:

* ``fast=True``: the bundled 8x8 digits (offline, a few seconds to train on);
* ``data_dir`` holding the four MNIST files (``train-images-idx3-ubyte.gz`` ...):
  ``xn.datasets.load("mnist", data_dir=...)``, which verifies each file's SHA-256;
  four IDX files that are not the published MNIST are read as they are;
* ``data_dir`` an ``.npz`` file (Keras' ``mnist.npz`` layout): ``xn.datasets.load(path)``;
* ``data_dir`` holding only the MNIST *test* files (``t10k-*``): the first 80% of
  the 10,000 test images (8,000) for training, the last 20% (2,000) for testing;
* no ``data_dir``: MNIST from xpnet's cache (``xpnet download mnist`` fills it) when
  it is there, else the bundled digits.

Nothing is downloaded here, so the examples run offline.
"""

from __future__ import annotations

from pathlib import Path

import xpnet as xn

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


def find_idx(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder`` (``.gz`` or raw, dashed or dotted name), or None."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def _digits(why: str) -> tuple[xn.datasets.Dataset, str]:
    return xn.datasets.load("digits"), f"{why}; using the bundled 8x8 digits"


def _test_set_only(folder: Path) -> xn.datasets.Dataset:
    images = xn.datasets.read_idx(find_idx(folder, TEST_IMAGES))
    labels = xn.datasets.read_idx(find_idx(folder, TEST_LABELS))
    n_train = int(0.8 * len(images))  # 8,000 of MNIST's 10,000 test images
    return xn.datasets.Dataset.from_arrays(
        "mnist-t10k", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
        source=str(folder),
    )


def load_example_data(data_dir: str | None, *, fast: bool = False
                      ) -> tuple[xn.datasets.Dataset, str]:
    """Load MNIST (or a part of it) when available, else the bundled digits.

    Parameters
    ----------
    data_dir : str or None
        A folder of IDX files, an ``.npz`` file, or None for xpnet's cache.
    fast : bool
        Use the bundled digits whatever ``data_dir`` says.

    Returns
    -------
    (Dataset, str)
        The data and a one-line note saying what was loaded.
    """
    if fast:
        return _digits("--fast")
    if data_dir is None:
        folder = xn.datasets.cache_dir() / "mnist"
        if all(find_idx(folder, s) for s in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES,
                                              TEST_LABELS)):
            return (xn.datasets.load("mnist", data_dir=folder, progress=False),
                    f"MNIST from xpnet's cache {folder}")
        return _digits("MNIST is not in xpnet's cache (pass --data-dir DIR or run "
                       "`xpnet download mnist`)")
    path = Path(data_dir).expanduser()
    if path.is_file():
        return xn.datasets.load(path), f"data from {path}"
    if not path.is_dir():
        raise SystemExit(f"--data-dir {path}: no such file or folder")
    have = {s: find_idx(path, s) for s in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)}
    if all(have.values()):
        try:
            return (xn.datasets.load("mnist", data_dir=path, progress=False),
                    f"MNIST from {path} (SHA-256 verified)")
        except xn.datasets.DatasetError:
            return xn.datasets.load(path), f"IDX files from {path} (not the published MNIST)"
    if have[TEST_IMAGES] and have[TEST_LABELS]:
        ds = _test_set_only(path)
        return ds, (f"only the MNIST test set is in {path}: training on its first "
                    f"{len(ds.y_train):,} images, testing on the last {len(ds.y_test):,}")
    missing = ", ".join(s for s, p in have.items() if p is None)
    return _digits(f"{path} lacks {missing}")
