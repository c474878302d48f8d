# NumPy is used on the host here for file I/O: reading .npy, IDX and image inputs and
# checking their values before they go to the model, as DESIGN.md allows.
"""The inputs of ``xpnet predict``: ``.npy``, IDX and image files, read into one block.

Memory stays proportional to the data: every input's header is read first (shape and
dtype, nothing decompressed), the total is compared with the data cap
([`xpnet.datasets.max_data_bytes`][]), then one float32 block is allocated and each
input is converted into its rows of it, one input at a time (``.npy`` files are memory
mapped, never loaded whole). That block is the only float copy. The names of the rows
are made when asked for (`_Items`), not held one dict per row.

A missing, unreadable, truncated or misshapen input, values out of range, an image above
Pillow's decompression-bomb limit or inputs over the data cap are a `CLIError` with exit
status 3; an image without Pillow installed, exit status 2.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets
from ._args import EXIT_DATA, EXIT_USAGE, CLIError
from ._io import refuse_table

__all__ = ["IMAGE_SUFFIXES", "read_inputs"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pbm")


@dataclass
class _Input:
    """One input file, as planned from its header: its kind, stored shape and row count."""

    text: str
    path: Path
    kind: str  # "image", "npy" or "idx"
    shape: tuple[int, ...] = ()
    dtype: Any = None
    rows: int = 1


def _row_count(shape: tuple[int, ...], name: str, n_features: int,
               image_shape: tuple[int, ...] | None) -> int:
    """Rows an array of `shape` gives: rows, one image, or a stack of images."""
    want = f"(n, {n_features}) rows" + (
        f" or (n, {', '.join(map(str, image_shape))}) images" if image_shape else "")
    if shape == (n_features,) or (image_shape and shape == image_shape):
        rows = 1
    elif shape[1:] == (n_features,) or len(shape) >= 3 and (
            shape[1:] == image_shape if image_shape else math.prod(shape[1:]) == n_features):
        rows = shape[0]
    else:
        raise CLIError(f"{name} has shape {shape}; the model expects {want}", EXIT_DATA)
    if rows == 0:
        raise CLIError(f"{name} holds no samples", EXIT_DATA)
    return rows


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, after checking the file holds that much data."""
    try:
        with open(path, "rb") as f:
            shape, dtype, _ = datasets.read_npy_header(f, str(path))
            have = path.stat().st_size - f.tell()
    except datasets.DatasetError as exc:
        raise CLIError(f"not a readable .npy file: {exc}", EXIT_DATA) from None
    need = math.prod(shape) * dtype.itemsize
    if need > have:
        raise CLIError(f"{path}: the .npy header claims shape {shape} of {dtype} ({need} "
                       f"bytes) but the file holds {have} bytes of data: truncated or "
                       "corrupt", EXIT_DATA)
    return shape, dtype


def _idx(read: Callable[[Path], Any], path: Path) -> Any:
    """`read(path)`, its DatasetError a CLIError (exit 3)."""
    try:
        return read(path)
    except datasets.DatasetError as exc:
        raise CLIError(f"{path}: not a .npy, IDX or image file ({exc})", EXIT_DATA) from None


def _plan(text: str, n_features: int, image_shape: tuple[int, ...] | None) -> _Input:
    """Check one input (a regular file: cmd_predict checked) from its name and header alone."""
    path = Path(text).expanduser()
    refuse_table(path, "this model", "predict from")
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        if image_shape is None or len(image_shape) != 2:
            raise CLIError(f"{path}: the model has no 2-D image shape to resize images to; "
                           "give .npy rows instead", EXIT_DATA)
        return _Input(text, path, "image")
    kind = "npy" if suffix == ".npy" else "idx"
    shape, dtype = _npy_shape(path) if kind == "npy" else _idx(datasets.read_idx_header, path)
    if dtype.hasobject:
        raise CLIError(f"{path}: object arrays are not accepted", EXIT_DATA)
    if dtype.kind not in "biuf":  # bool, integers, floats
        raise CLIError(f"{path} has dtype {dtype}; expected uint8, integers or floats",
                       EXIT_DATA)
    rows = _row_count(shape, str(path), n_features, image_shape)
    return _Input(text, path, kind, shape, dtype, rows)


def _convert_into(dest: np.ndarray, arr: np.ndarray, name: str) -> None:
    """Scale `arr` into the float32 rows `dest` in place: integers / 255, floats checked."""
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8 and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise CLIError(f"{name} holds integers in [{lo}, {hi}]; integer inputs must lie "
                           "in [0, 255] (they are divided by 255)", EXIT_DATA)
    dest.reshape(arr.shape)[...] = arr  # a view of dest: no temporary copy
    if arr.dtype != np.bool_ and np.issubdtype(arr.dtype, np.integer):
        dest /= np.float32(255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        try:  # float64 beyond float32's range became inf in the assignment
            datasets.check_float_values(dest, name)
        except datasets.DatasetError as exc:
            raise CLIError(f"{exc}; float inputs must be finite and scaled to [0, 1] like "
                           "the training data (uint8 is scaled for you)", EXIT_DATA) from None


class _Items(Sequence[dict[str, Any]]):
    """The items of the rows of several inputs, each made when asked for."""

    def __init__(self, spans: list[tuple[str, int, bool | None]]) -> None:
        self._spans = spans  # (name, rows, inverted or None) per input
        self._ends = list(np.cumsum([rows for _, rows, _ in spans], dtype=np.int64).tolist())

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @staticmethod
    def _item(span: tuple[str, int, bool | None], i: int) -> dict[str, Any]:
        text, rows, flipped = span
        if flipped is not None:
            return {"input": text, "inverted": flipped}
        return {"input": text} if rows == 1 else {"input": f"{text}[{i}]"}

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = int(index) + n if int(index) < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"item {index} of {n}")
        s = bisect.bisect_right(self._ends, i)
        return self._item(self._spans[s], i - (self._ends[s - 1] if s else 0))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for span in self._spans:
            for i in range(span[1]):
                yield self._item(span, i)


def _fill(inp: _Input, dest: np.ndarray, image_shape: tuple[int, ...] | None,
          invert: str) -> tuple[str, int, bool | None]:
    """Read one input into its rows of the block; return its (name, rows, inverted)."""
    if inp.kind == "image":
        assert image_shape is not None
        dest[0], flipped = _read_image(inp.path, image_shape, invert)
        return inp.text, 1, flipped
    if inp.kind == "npy":
        try:
            arr = np.load(inp.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CLIError(f"{inp.path}: not a readable .npy file ({exc})", EXIT_DATA) from None
    else:
        arr = _idx(datasets.read_idx, inp.path)
    if tuple(arr.shape) != inp.shape:
        raise CLIError(f"{inp.path} changed while it was being read (shape {inp.shape}, now "
                       f"{tuple(arr.shape)})", EXIT_DATA)
    _convert_into(dest, arr, str(inp.path))
    del arr
    return inp.text, inp.rows, None


def _read_image(path: Path, image_shape: tuple[int, ...], invert: str
                ) -> tuple[np.ndarray, bool]:
    """One image file as a row of h*w pixels in [0, 1], and whether it was inverted."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise CLIError("reading image files needs Pillow: pip install pillow",
                       EXIT_USAGE) from None
    try:
        with warnings.catch_warnings():  # sizes above Pillow's decompression-bomb limit
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)  # lazily: the header alone
        with opened as im:
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
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CLIError(f"{path}: refused as a possible decompression bomb: {exc}",
                       EXIT_DATA) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise CLIError(f"{path}: cannot read the image: {exc}", EXIT_DATA) from None
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    flip = invert == "yes" or (invert == "auto" and float(border.mean()) > 0.5)
    if flip:
        arr = 1.0 - arr
    return arr.reshape(-1), flip


def read_inputs(paths: list[str], n_features: int, image_shape: tuple[int, ...] | None,
                invert: str) -> tuple[np.ndarray, Sequence[dict[str, Any]]]:
    """``predict`` inputs as (n, n_features) float32 rows in [0, 1] and lazy per-row items."""
    plans = [_plan(text, n_features, image_shape) for text in paths]
    total = sum(p.rows for p in plans)
    datasets.check_data_size(total * n_features, f"the {len(plans)} input file(s)")
    X = np.empty((total, n_features), dtype=np.float32)
    spans = []
    start = 0
    for inp in plans:
        spans.append(_fill(inp, X[start:start + inp.rows], image_shape, invert))
        start += inp.rows
    return X, _Items(spans)
