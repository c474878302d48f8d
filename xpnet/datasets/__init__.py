# NumPy is used on the host in this subpackage for file I/O (IDX, .npz), as DESIGN.md allows.
"""Datasets for xpnet: bundled 8x8 digits, MNIST, Fashion-MNIST, and your own files
(image arrays, and tables: CSV, TSV, Parquet, see `read_table`).

Everything here returns NumPy arrays on the host; ``fit`` moves them to the device once.

Examples
--------
>>> import xpnet.datasets as xds
>>> ds = xds.load("digits")
>>> ds.summary()
'digits: 1437 train / 360 test images of 8x8 (64 features), 10 classes (source: bundled)'
"""

from ._core import (
    FREE_CLASSES,
    MAX_CLASSES,
    MAX_DATA_BYTES,
    Dataset,
    DatasetError,
    DownloadError,
    cache_dir,
    check_class_count,
    check_data_size,
    check_float_values,
    file_sha256,
    max_data_bytes,
    read_npy_header,
)
from .digits import load_digits
from .idx import IDXError, read_idx, read_idx_header, write_idx
from .mnist import download, load_mnist
from .registry import DATASET_NAMES, load, load_idx_folder, load_npz
from .table_encoder import TableEncoder
from .tables import (
    MAX_CATEGORIES,
    TABLE_FORMATS,
    Table,
    TableError,
    TableWarning,
    is_table_file,
    read_table,
)

__all__ = [
    "DATASET_NAMES",
    "FREE_CLASSES",
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "MAX_DATA_BYTES",
    "TABLE_FORMATS",
    "Table",
    "TableEncoder",
    "TableError",
    "TableWarning",
    "Dataset",
    "DatasetError",
    "DownloadError",
    "IDXError",
    "cache_dir",
    "check_class_count",
    "check_data_size",
    "check_float_values",
    "download",
    "file_sha256",
    "is_table_file",
    "load",
    "load_digits",
    "load_idx_folder",
    "load_mnist",
    "load_npz",
    "max_data_bytes",
    "read_idx",
    "read_idx_header",
    "read_npy_header",
    "read_table",
    "write_idx",
]
