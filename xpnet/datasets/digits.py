# NumPy is used on the host here for file I/O (reading the bundled .npz), as DESIGN.md allows.
"""The bundled 8x8 handwritten digits: works offline, needs nothing but NumPy.

The data is the UCI Machine Learning Repository's "Optical Recognition of Handwritten
Digits" set by E. Alpaydin and C. Kaynak (CC BY 4.0), taken once from scikit-learn's
copy by ``_data/make_digits.py`` and stored as ``_data/digits.npz``: 1,797 images of
8x8 pixels with grey levels 0..16, labels 0..9.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources

import numpy as np

from ._core import Dataset, DatasetError

__all__ = ["DIGITS_SHA256", "N_TEST", "SPLIT_SEED", "load_digits"]

DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"
"""SHA-256 of the bundled ``_data/digits.npz``; checked on every load."""
N_TEST = 360
"""Number of images held out as the test split."""
SPLIT_SEED = 0
"""Seed of the ``numpy.random.default_rng`` permutation that fixes the split."""
_N_IMAGES = 1797


def load_digits() -> Dataset:
    """Load the bundled 8x8 digits with xpnet's fixed train/test split.

    The split is a permutation of the 1,797 images drawn from
    ``numpy.random.default_rng(0)`` (not stratified); the first 1,437 permuted images
    are the training set and the last 360 the test set, in permuted order. Pixels are
    divided by 16, giving float32 in [0, 1].

    Returns
    -------
    Dataset
        ``name="digits"``, 1,437 train and 360 test samples of 64 features,
        ``image_shape=(8, 8)``, ten classes ``"0"`` .. ``"9"``, ``source="bundled"``,
        ``sha256={"digits.npz": ...}``.

    Raises
    ------
    DatasetError
        If the bundled file is missing or damaged (its SHA-256 is checked).

    Examples
    --------
    >>> from xpnet.datasets import load
    >>> ds = load("digits")
    >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
    ((1437, 64), (360, 64), 10)
    """
    ref = resources.files("xpnet.datasets") / "_data" / "digits.npz"
    try:
        data = ref.read_bytes()
    except OSError as exc:
        raise DatasetError(f"the bundled digits file is missing ({exc}); reinstall xpnet") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != DIGITS_SHA256:
        raise DatasetError(
            f"bundled digits.npz: SHA-256 mismatch: expected {DIGITS_SHA256}, got {digest}; "
            "the installation is damaged, reinstall xpnet"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        images = npz["images"]
        labels = npz["labels"]
    if images.shape != (_N_IMAGES, 8, 8) or labels.shape != (_N_IMAGES,):
        raise DatasetError(f"bundled digits.npz has unexpected shapes {images.shape}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(_N_IMAGES)
    train, test = perm[:-N_TEST], perm[-N_TEST:]
    x = images.astype(np.float32) / np.float32(16.0)  # (n, 8, 8): from_arrays flattens it
    return Dataset.from_arrays("digits", x[train], labels[train], x[test], labels[test],
                               source="bundled", sha256={"digits.npz": digest})
