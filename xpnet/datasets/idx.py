# NumPy is used on the host here for file I/O (IDX parsing), as DESIGN.md rule 1 allows.
"""Read and write IDX files, the format of the MNIST and Fashion-MNIST distributions.

An IDX file is a header followed by a C-order array, all big-endian::

    0x00 0x00 <dtype code> <ndim>   # magic: two zero bytes, a type code, a dim count
    <dim 0> ... <dim ndim-1>        # uint32 each
    <payload>                       # prod(dims) * itemsize bytes

[`read_idx`][xpnet.datasets.read_idx] checks the whole header, and that the payload
length is exactly what the header implies, *before* it allocates the array, so a hostile
or damaged file can neither make it allocate gigabytes nor return a silently truncated
array. Gzip input is read through `gzip.GzipFile` as a stream and never inflated more
than 8 KiB past the header-implied size (a gzip bomb costs nothing); the parts GzipFile
reads a byte at a time (a stored file name, zero padding) are bounded by refusing a gzip
header that does not end in the first 64 KiB and a file much larger than its payload.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._files import atomic_open, check_regular
from ._core import DatasetError, _inflate_limit

__all__ = ["IDXError", "read_idx", "read_idx_header", "write_idx", "MAX_PAYLOAD_BYTES"]

MAX_PAYLOAD_BYTES = 2**31
"""Largest payload [`read_idx`][xpnet.datasets.read_idx] accepts (2 GiB);
larger claims are rejected unread."""

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_SLACK = 1 << 16  # gzip headers (file names) and members beyond the data stored
_CHUNK = 1 << 20

_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_SIZE_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}
_CODES_TEXT = ", ".join(f"0x{c:02X} ({_CODE_TO_DTYPE[c].name})" for c in sorted(_CODE_TO_DTYPE))


class IDXError(DatasetError):
    """An IDX file is malformed: bad header, wrong length, corrupt gzip, or too big.

    The message names the file and the problem. A subclass of
    [`DatasetError`][xpnet.datasets.DatasetError], hence of `ValueError`.

    Examples
    --------
    >>> from xpnet.datasets import IDXError, read_idx
    >>> try:
    ...     read_idx(b"\\x00\\x00")
    ... except IDXError as exc:
    ...     print(exc)
    <bytes>: file is 2 bytes long; an IDX header needs at least 4
    """


def _describe(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(source)  # type: ignore[call-overload, no-any-return]


@contextlib.contextmanager
def _reading(source: str | os.PathLike[str] | bytes | bytearray | memoryview, name: str
             ) -> Iterator[tuple[io.BufferedIOBase, int | None, int | None]]:
    """Yield (stream, raw size, gzip size), gzip unpacked; read and gzip errors as IDXError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        f: io.BufferedIOBase = io.BytesIO(source)
    else:
        try:
            check_regular(source)  # a FIFO would block, a device never end
            f = open(source, "rb")
        except OSError as exc:
            raise IDXError(f"{name}: cannot open: {exc.strerror or exc}") from exc
    with f:
        try:
            gz = f.read(2) == _GZIP_MAGIC
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            if not gz:
                yield f, size, None
                return
            # GzipFile reads a gzip header's file name a byte per call: that header must end,
            # and the IDX header start, in the file's first 64 KiB (the size check bounds the rest)
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(f.read(_GZIP_SLACK)), mode="rb") as head:
                    head.read(20)
            except EOFError:
                if size <= _GZIP_SLACK:
                    raise
                raise IDXError(f"{name}: corrupt gzip data (no IDX header in the first 64 KiB: "
                               "a gzip header that long?)") from None
            f.seek(0)
            # GzipFile's reads inflate what is asked for and at most its 8 KiB buffer more
            with gzip.GzipFile(fileobj=f, mode="rb") as unpacked:
                yield unpacked, None, size
        except EOFError:
            raise IDXError(f"{name}: corrupt gzip data (the file ends before the end of the "
                           "gzip stream: truncated)") from None
        except gzip.BadGzipFile as exc:  # after the first member: the magic was checked
            what = "non-gzip data after the stream" if "Not a gzipped" in str(exc) else exc
            raise IDXError(f"{name}: corrupt gzip data ({what})") from None
        except zlib.error as exc:
            raise IDXError(f"{name}: corrupt gzip data ({exc})") from None
        except OSError as exc:
            raise IDXError(f"{name}: cannot read: {exc}") from exc


def _read_header(stream: io.BufferedIOBase, name: str, *, gz: bool
                 ) -> tuple[tuple[int, ...], np.dtype, bytes]:
    """Read and check an IDX header: the shape and (big-endian) dtype it declares, its bytes."""
    head = stream.read(4)
    if len(head) < 4:
        raise IDXError(f"{name}: {'decompressed data' if gz else 'file'} is {len(head)} bytes "
                       "long; an IDX header needs at least 4")
    if head[0] != 0 or head[1] != 0:
        raise IDXError(
            f"{name}: bad magic number: first two bytes are 0x{head[0]:02X} 0x{head[1]:02X}, "
            "an IDX file starts with 0x00 0x00 (is this an IDX file?)"
        )
    code, ndim = head[2], head[3]
    if code not in _CODE_TO_DTYPE:
        raise IDXError(f"{name}: unknown data type code 0x{code:02X}; known codes: {_CODES_TEXT}")
    if not 1 <= ndim <= 4:
        raise IDXError(f"{name}: header says ndim={ndim}; xpnet reads IDX arrays of 1 to 4 dims")
    dim_bytes = stream.read(4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise IDXError(
            f"{name}: header truncated: ndim={ndim} needs {4 * ndim} bytes of dimension "
            f"sizes, got {len(dim_bytes)}"
        )
    return struct.unpack(f">{ndim}I", dim_bytes), _CODE_TO_DTYPE[code], head + dim_bytes


def _truncated(name: str, shape_text: str, nbytes: int, got: int) -> IDXError:
    return IDXError(f"{name}: payload truncated: header claims {shape_text}, expected {nbytes} "
                    f"bytes of data, got {got}")


def _check_sizes(name: str, shape_text: str, header_len: int, nbytes: int,
                 raw_size: int | None, gz_size: int | None) -> None:
    """Refuse a header whose payload size the limit or the file's size cannot hold."""
    if nbytes > MAX_PAYLOAD_BYTES:
        raise IDXError(
            f"{name}: header claims {shape_text} = {nbytes} bytes, above the "
            f"{MAX_PAYLOAD_BYTES}-byte limit (corrupt header?)"
        )
    if raw_size is not None:
        have = raw_size - header_len
        if have < nbytes:
            raise _truncated(name, shape_text, nbytes, have)
        if have > nbytes:
            raise IDXError(
                f"{name}: {have - nbytes} unexpected trailing bytes after the {nbytes}-byte "
                f"payload of {shape_text}"
            )
    if gz_size is not None and header_len + nbytes > _inflate_limit(gz_size):
        raise IDXError(
            f"{name}: payload truncated: header claims {shape_text} = {nbytes} bytes, more "
            f"than a {gz_size}-byte gzip file can hold"
        )
    # GzipFile skips zero padding after a stream a byte per call (0.3 s per MB): bounded here
    most = header_len + nbytes + nbytes // 1000 + _GZIP_SLACK
    if gz_size is not None and gz_size > most:
        raise IDXError(f"{name}: a {gz_size}-byte gzip file is larger than a gzip stream of "
                       f"{shape_text} needs (at most {most} bytes): data after the stream?")


def read_idx(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> np.ndarray:
    """Read an IDX array from a file path or from bytes, raw or gzip-compressed.

    Gzip is detected from the content (the ``1f 8b`` magic), not the file name.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray or memoryview
        A path to an IDX file (``.gz`` or not), or the file's bytes.

    Returns
    -------
    numpy.ndarray
        A new, writable, native-endian array with the header's shape and dtype (uint8,
        int8, int16, int32, float32 or float64).

    Raises
    ------
    IDXError
        If the file cannot be read, is shorter than 4 bytes, has a bad magic number, an
        unknown type code, ``ndim`` outside 1..4, a truncated header, a payload shorter
        or longer than the header implies, a claimed size above
        `MAX_PAYLOAD_BYTES` or above what the file can hold, or corrupt gzip data.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.datasets import read_idx
    >>> blob = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    >>> read_idx(blob)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    return _read_idx(source, _describe(source))[0]


def read_idx_header(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the header of an IDX file: the shape and dtype of the array it holds.

    Nothing beyond the header is read or decompressed (a gzip file is inflated only as
    far as its first 8 KiB), so callers can check sizes before reading any data.

    Parameters
    ----------
    source
        As for [`read_idx`][xpnet.datasets.read_idx]: a path or the file's bytes.

    Returns
    -------
    shape : tuple of int
        The dimensions the header declares (not yet checked against the file's length;
        [`read_idx`][xpnet.datasets.read_idx] does that).
    dtype : numpy.dtype
        The native-endian dtype of the values.

    Raises
    ------
    IDXError
        The file cannot be opened, or its header is malformed.

    Examples
    --------
    >>> from xpnet.datasets import read_idx_header
    >>> read_idx_header(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(6))
    ((2, 3), dtype('uint8'))
    """
    name = _describe(source)
    with _reading(source, name) as (stream, _, gz_size):
        dims, dtype, _ = _read_header(stream, name, gz=gz_size is not None)
    return dims, dtype.newbyteorder("=")


def _read_idx(source: str | os.PathLike[str] | bytes | bytearray | memoryview, name: str, *,
              hashed: bool = False) -> tuple[np.ndarray, str]:
    """An IDX file's or bytes' array (raw or gzip); the SHA-256 of its IDX content if `hashed`."""
    with _reading(source, name) as (stream, raw_size, gz_size):
        dims, dtype, header = _read_header(stream, name, gz=gz_size is not None)
        count = math.prod(dims)
        nbytes = count * dtype.itemsize
        shape_text = f"shape {dims} of {dtype.name}"
        _check_sizes(name, shape_text, len(header), nbytes, raw_size, gz_size)
        # Only now, with the size known to be consistent, allocate.
        out = np.empty(count, dtype=dtype)
        view = out.view(np.uint8).data
        got = 0
        while got < nbytes and (n := stream.readinto(view[got : got + _CHUNK])):
            got += n
        if got < nbytes:
            raise _truncated(name, shape_text, nbytes, got)
        # gzip: one byte past the payload must be the end of the data; this also makes zlib
        # check the gzip trailer (CRC-32 and length)
        if gz_size is not None and stream.read(1):
            raise IDXError(f"{name}: unexpected trailing bytes after the {nbytes}-byte payload "
                           f"of {shape_text} (decompressed data is longer than the header "
                           "implies)")
    array = out.reshape(dims).astype(dtype.newbyteorder("="), copy=False)
    if not hashed:
        return array, ""
    digest = hashlib.sha256(header)
    digest.update(view)
    return array, digest.hexdigest()


def write_idx(path: str | os.PathLike[str], array: object) -> Path:
    """Write an array as an IDX file, atomically; gzip-compressed if the name ends ``.gz``.

    The data goes to a temporary file in the same folder, which is flushed, fsynced and
    then renamed over ``path``, so readers never see a half-written file. Gzip output
    has a zero timestamp and no stored name, so equal arrays give equal bytes.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its folder must exist.
    array : array_like
        1 to 4 dimensions; dtype uint8, int8, int16, int32, float32 or float64 (any byte
        order; written big-endian). Each dimension must be below 2**32.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    IDXError
        If the dtype or the number of dimensions cannot be stored in IDX.
    OSError
        If the file cannot be written (nothing is left behind).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from xpnet.datasets import read_idx, write_idx
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "a-idx2-int.gz")
    ...     _ = write_idx(p, np.arange(6, dtype=np.int32).reshape(2, 3))
    ...     read_idx(p).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    arr = np.asarray(array)
    code = _KIND_SIZE_TO_CODE.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None or arr.dtype.hasobject:
        raise IDXError(
            f"{path}: dtype {arr.dtype} cannot be stored in IDX; supported: {_CODES_TEXT}"
        )
    if not 1 <= arr.ndim <= 4:
        raise IDXError(f"{path}: array has {arr.ndim} dimensions; IDX here supports 1 to 4")
    if any(d >= 2**32 for d in arr.shape):
        raise IDXError(f"{path}: dimension in shape {arr.shape} does not fit in 32 bits")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=_CODE_TO_DTYPE[code]).tobytes()
    with atomic_open(path) as f, (
            gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=6, mtime=0)
            if path.name.endswith(".gz") else contextlib.nullcontext(f)) as out:
        out.write(header)
        out.write(payload)
    return path
