# NumPy is used on the host in this subpackage for file I/O (IDX, .npz), as DESIGN.md allows.
"""Datasets for xpnet: bundled 8x8 digits, MNIST, Fashion-MNIST, and your own files.

Everything here returns NumPy arrays on the host; ``fit`` moves them to the device once.

Examples
--------
>>> import xpnet.datasets as xds
>>> ds = xds.load("digits")
>>> ds.summary()
'digits: 1437 train / 360 test images of 8x8 (64 features), 10 classes (source: bundled)'
"""

from ._core import Dataset, DatasetError, DownloadError, cache_dir, file_sha256
from .digits import load_digits
from .idx import IDXError, read_idx, write_idx
from .mnist import download, load_mnist
from .registry import DATASET_NAMES, load, load_idx_folder, load_npz

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetError",
    "DownloadError",
    "IDXError",
    "cache_dir",
    "download",
    "file_sha256",
    "load",
    "load_digits",
    "load_idx_folder",
    "load_mnist",
    "load_npz",
    "read_idx",
    "write_idx",
]
