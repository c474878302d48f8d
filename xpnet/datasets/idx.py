# NumPy is used on the host here for file I/O (IDX parsing), as DESIGN.md rule 1 allows.
"""Read and write IDX files, the format of the MNIST and Fashion-MNIST distributions.

An IDX file is a header followed by a C-order array, all big-endian::

    0x00 0x00 <dtype code> <ndim>   # magic: two zero bytes, a type code, a dim count
    <dim 0> ... <dim ndim-1>        # uint32 each
    <payload>                       # prod(dims) * itemsize bytes

[`read_idx`][xpnet.datasets.read_idx] checks the whole header, and that the payload
length is exactly what the header implies, *before* it allocates the array, so a hostile
or damaged file can neither make it allocate gigabytes nor return a silently truncated
array. Gzip input is decompressed as a stream and never past the header-implied size
plus one byte (a gzip bomb costs nothing).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from .._files import atomic_open, check_regular
from ._core import DatasetError

__all__ = ["IDXError", "read_idx", "read_idx_header", "write_idx", "MAX_PAYLOAD_BYTES"]

MAX_PAYLOAD_BYTES = 2**31
"""Largest payload [`read_idx`][xpnet.datasets.read_idx] accepts (2 GiB);
larger claims are rejected unread."""

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than about 1032:1, so a gzip file of N bytes can
# never hold more than this many bytes; larger header claims are rejected unread.
_MAX_DEFLATE_RATIO = 1032
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


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


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


class _GunzipReader:
    """Gzip reader: ``read(n)`` gives at most n bytes; members followed, trailing junk refused."""

    def __init__(self, f: BinaryIO, name: str) -> None:
        self._f = f
        self._name = name
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""

    def _fail(self, what: str) -> IDXError:
        return IDXError(f"{self._name}: corrupt gzip data ({what})")

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._d.eof:
                tail = self._d.unused_data + self._input
                self._input = b""
                while len(tail) < 2:
                    more = self._f.read(_CHUNK)
                    if not more:
                        break
                    tail += more
                if not tail:
                    break  # clean end of the last member
                if tail[:2] != _GZIP_MAGIC:
                    raise self._fail(f"{len(tail)}+ bytes of non-gzip data after the stream")
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._input = tail
                continue
            data = self._d.unconsumed_tail or self._input
            self._input = b""
            if not data:
                data = self._f.read(_CHUNK)
                if not data:
                    raise self._fail("the file ends before the end of the gzip stream: truncated")
            try:
                out += self._d.decompress(data, n - len(out))
            except zlib.error as exc:
                raise self._fail(str(exc)) from None
        return bytes(out)


def _describe(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(source)  # type: ignore[call-overload, no-any-return]


def _read_exact(stream: BinaryIO | _GunzipReader, n: int) -> bytes:
    """Read up to n bytes, looping over short reads; fewer only at end of data."""
    parts = []
    got = 0
    while got < n:
        chunk = stream.read(min(n - got, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_header(
    stream: BinaryIO | _GunzipReader, name: str, *, gz: bool, hasher: _Hasher | None = None
) -> tuple[tuple[int, ...], np.dtype]:
    """Read and check an IDX header: the shape and the (big-endian) dtype it declares."""
    head = _read_exact(stream, 4)
    if len(head) < 4:
        if gz:
            raise IDXError(
                f"{name}: decompressed data is {len(head)} bytes long; "
                "an IDX header needs at least 4"
            )
        raise IDXError(f"{name}: file is {len(head)} bytes long; an IDX header needs at least 4")
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
    dim_bytes = _read_exact(stream, 4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise IDXError(
            f"{name}: header truncated: ndim={ndim} needs {4 * ndim} bytes of dimension "
            f"sizes, got {len(dim_bytes)}"
        )
    if hasher is not None:
        hasher.update(head)
        hasher.update(dim_bytes)
    return struct.unpack(f">{ndim}I", dim_bytes), _CODE_TO_DTYPE[code]


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
            raise IDXError(
                f"{name}: payload truncated: header claims {shape_text}, expected {nbytes} "
                f"bytes of data, got {have}"
            )
        if have > nbytes:
            raise IDXError(
                f"{name}: {have - nbytes} unexpected trailing bytes after the {nbytes}-byte "
                f"payload of {shape_text}"
            )
    if gz_size is not None and header_len + nbytes > gz_size * _MAX_DEFLATE_RATIO + 1024:
        raise IDXError(
            f"{name}: payload truncated: header claims {shape_text} = {nbytes} bytes, more "
            f"than a {gz_size}-byte gzip file can hold"
        )


def _parse(
    stream: BinaryIO | _GunzipReader,
    name: str,
    *,
    raw_size: int | None,
    gz_size: int | None,
    hasher: _Hasher | None = None,
) -> np.ndarray:
    """Parse an IDX stream; give one of `raw_size` and `gz_size`; `hasher` sees every raw byte."""
    dims, dtype = _read_header(stream, name, gz=gz_size is not None, hasher=hasher)
    header_len = 4 + 4 * len(dims)
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    shape_text = f"shape {dims} of {dtype.name}"
    _check_sizes(name, shape_text, header_len, nbytes, raw_size, gz_size)
    # Only now, with the size known to be consistent, allocate.
    out = np.empty(count, dtype=dtype)
    view = out.view(np.uint8).reshape(-1).data
    got = 0
    while got < nbytes:
        chunk = stream.read(min(nbytes - got, _CHUNK))
        if not chunk:
            break
        view[got : got + len(chunk)] = chunk
        got += len(chunk)
        if hasher is not None:
            hasher.update(chunk)
    if got < nbytes:
        raise IDXError(
            f"{name}: payload truncated: header claims {shape_text}, expected {nbytes} bytes "
            f"of data, got {got}"
        )
    if gz_size is not None:
        # One byte past the payload: must be end of data. This also makes zlib check the
        # gzip trailer (CRC-32 and length).
        if stream.read(1):
            raise IDXError(
                f"{name}: unexpected trailing bytes after the {nbytes}-byte payload of "
                f"{shape_text} (decompressed data is longer than the header implies)"
            )
    native = dtype.newbyteorder("=")
    return out.reshape(dims).astype(native, copy=False)


def _open(path: str | os.PathLike[str], name: str) -> BinaryIO:
    """The file opened for binary reading; IDXError naming it when it cannot be."""
    try:
        check_regular(path)  # a FIFO would block, a device never end
        return open(path, "rb")
    except OSError as exc:
        raise IDXError(f"{name}: cannot open: {exc.strerror or exc}") from exc


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
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _read_stream(io.BytesIO(data), name, len(data))
    with _open(source, name) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            return _read_stream(f, name, size)
        except IDXError:
            raise
        except OSError as exc:
            raise IDXError(f"{name}: cannot read: {exc}") from exc


def read_idx_header(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
) -> tuple[tuple[int, ...], np.dtype]:
    """Read only the header of an IDX file: the shape and dtype of the array it holds.

    Nothing beyond the header is read or decompressed (a gzip file is inflated only as
    far as its first 20 bytes), so callers can check sizes before reading any data.

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
    if isinstance(source, (bytes, bytearray, memoryview)):
        f: BinaryIO = io.BytesIO(bytes(source))
    else:
        f = _open(source, name)
    with f:
        try:
            gz = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            stream = _GunzipReader(f, name) if gz else f
            dims, dtype = _read_header(stream, name, gz=gz)
        except OSError as exc:
            raise IDXError(f"{name}: cannot read: {exc}") from exc
    return dims, dtype.newbyteorder("=")


def _read_stream(f: BinaryIO, name: str, size: int, hasher: _Hasher | None = None) -> np.ndarray:
    magic = f.read(2)
    f.seek(0)
    if magic == _GZIP_MAGIC:
        return _parse(_GunzipReader(f, name), name, raw_size=None, gz_size=size, hasher=hasher)
    return _parse(f, name, raw_size=size, gz_size=None, hasher=hasher)


def _read_idx_bytes(data: bytes, name: str) -> tuple[np.ndarray, str]:
    """The array of IDX bytes (raw or gzip) and the SHA-256 of the uncompressed content."""
    hasher = hashlib.sha256()
    arr = _read_stream(io.BytesIO(data), name, len(data), hasher)
    return arr, hasher.hexdigest()


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
    with atomic_open(path) as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)
    return path
