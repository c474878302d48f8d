"""IDX reader/writer: round trips, every malformed header, gzip abuse, fuzzing."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet.datasets import DatasetError, IDXError, read_idx, read_idx_header, write_idx
from xpnet.datasets.idx import MAX_PAYLOAD_BYTES

CODES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes | None = None) -> bytes:
    """Hand-built IDX bytes (payload defaults to the right number of zero bytes)."""
    header = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    if payload is None:
        itemsize = np.dtype(CODES.get(code, np.uint8)).itemsize
        payload = bytes(int(np.prod(dims)) * itemsize)
    return header + payload


def gz(data: bytes, mtime: int = 0) -> bytes:
    return gzip.compress(data, mtime=mtime)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("code", sorted(CODES))
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype_and_ndim(tmp_path, code, ndim, suffix):
    dtype = np.dtype(CODES[code])
    shape = (3, 2, 4, 1)[:ndim]
    rng = np.random.default_rng(code * 10 + ndim)
    if dtype.kind == "f":
        arr = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    path = write_idx(tmp_path / f"a-idx{ndim}{suffix}", arr)
    assert path == tmp_path / f"a-idx{ndim}{suffix}"
    raw = path.read_bytes()
    if suffix:
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    assert raw[:4] == bytes([0, 0, code, ndim])
    back = read_idx(path)
    assert back.dtype == dtype and back.dtype.isnative
    assert back.shape == shape
    assert back.flags.writeable
    np.testing.assert_array_equal(back, arr)
    # The same bytes in memory read the same.
    np.testing.assert_array_equal(read_idx(path.read_bytes()), arr)
    np.testing.assert_array_equal(read_idx(bytearray(path.read_bytes())), arr)
    np.testing.assert_array_equal(read_idx(memoryview(path.read_bytes())), arr)


def test_big_endian_input_and_payload_layout(tmp_path):
    arr = np.array([1, -2, 258], dtype=">i2")
    p = write_idx(tmp_path / "x.idx", arr)
    assert p.read_bytes() == bytes([0, 0, 0x0B, 1, 0, 0, 0, 3]) + struct.pack(">3h", 1, -2, 258)
    out = read_idx(p)
    assert out.dtype == np.dtype("int16") and out.dtype.isnative
    assert out.tolist() == [1, -2, 258]


def test_gzip_output_is_reproducible(tmp_path):
    arr = np.arange(100, dtype=np.uint8)
    a = write_idx(tmp_path / "a.gz", arr).read_bytes()
    b = write_idx(tmp_path / "b.gz", arr).read_bytes()
    assert a == b


def test_empty_dimension_is_allowed(tmp_path):
    out = read_idx(idx_bytes(0x08, (0, 28, 28)))
    assert out.shape == (0, 28, 28)


def test_multi_member_gzip_is_read():
    data = idx_bytes(0x08, (4,), b"\x01\x02\x03\x04")
    blob = gz(data[:6]) + gz(data[6:])
    assert read_idx(blob).tolist() == [1, 2, 3, 4]


def test_gzip_detected_by_content_not_name(tmp_path):
    p = tmp_path / "plain-name-idx1-ubyte"
    p.write_bytes(gz(idx_bytes(0x08, (2,), b"\x05\x06")))
    assert read_idx(p).tolist() == [5, 6]


# --------------------------------------------------------------------------- writer errors


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.complex64, object])
def test_write_rejects_unsupported_dtype(tmp_path, dtype):
    with pytest.raises(IDXError, match="cannot be stored in IDX"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=dtype))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(), (1, 1, 1, 1, 1)])
def test_write_rejects_bad_ndim(tmp_path, shape):
    with pytest.raises(IDXError, match="dimensions"):
        write_idx(tmp_path / "x.idx", np.zeros(shape, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.idx"
    write_idx(target, np.arange(3, dtype=np.uint8))

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_idx(target, np.arange(5, dtype=np.uint8))
    # The old file is intact and no temporary file is left.
    assert [p.name for p in tmp_path.iterdir()] == ["x.idx"]
    assert read_idx(target).tolist() == [0, 1, 2]


# ---------------------------------------------------------------------- malformed headers

MALFORMED = [
    pytest.param(b"", r"file is 0 bytes long; an IDX header needs at least 4", id="empty"),
    pytest.param(b"\x00\x00\x08", r"file is 3 bytes long", id="3-bytes"),
    pytest.param(b"\x01\x00\x08\x01\x00\x00\x00\x00", r"bad magic number.*0x01 0x00", id="magic"),
    pytest.param(b"\x00\x07\x08\x01\x00\x00\x00\x00", r"bad magic number.*0x00 0x07", id="magic2"),
    pytest.param(b"PK\x03\x04rest", r"bad magic number", id="zip-file"),
    pytest.param(b"\x00\x00\x0a\x01\x00\x00\x00\x00", r"unknown data type code 0x0A", id="dtype"),
    pytest.param(b"\x00\x00\xff\x01\x00\x00\x00\x00", r"unknown data type code 0xFF", id="dtype2"),
    pytest.param(b"\x00\x00\x08\x00", r"ndim=0; xpnet reads IDX arrays of 1 to 4 dims", id="ndim0"),
    pytest.param(idx_bytes(0x08, (1, 1, 1, 1, 1)), r"ndim=5", id="ndim5"),
    pytest.param(b"\x00\x00\x08\xff", r"ndim=255", id="ndim255"),
    pytest.param(
        b"\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00",
        r"header truncated: ndim=3 needs 12 bytes of dimension sizes, got 6",
        id="dims-truncated",
    ),
    pytest.param(
        idx_bytes(0x08, (3, 4))[:-1],
        r"payload truncated: header claims shape \(3, 4\) of uint8, expected 12 bytes "
        r"of data, got 11",
        id="payload-truncated",
    ),
    pytest.param(
        idx_bytes(0x0C, (2,))[:-3],
        r"payload truncated.*expected 8 bytes of data, got 5",
        id="int32-truncated",
    ),
    pytest.param(
        idx_bytes(0x08, (3, 4)) + b"\x00",
        r"1 unexpected trailing bytes after the 12-byte payload",
        id="trailing",
    ),
    pytest.param(
        idx_bytes(0x08, (2**31,), b""),
        r"payload truncated.*expected 2147483648 bytes of data, got 0",
        id="claims-2**31-elements",
    ),
    pytest.param(
        idx_bytes(0x0E, (2**16, 2**16), b"xx"),
        r"claims shape \(65536, 65536\) of float64 = 34359738368 bytes, above the "
        r"2147483648-byte limit",
        id="claims-32GiB",
    ),
    pytest.param(
        idx_bytes(0x08, (2**32 - 1,) * 4, b""),
        r"above the 2147483648-byte limit",
        id="claims-absurd",
    ),
]


@pytest.mark.parametrize(("blob", "message"), MALFORMED)
def test_malformed_raw(tmp_path, blob, message):
    p = tmp_path / "bad-idx"
    p.write_bytes(blob)
    with pytest.raises(IDXError, match=message) as info:
        read_idx(p)
    assert str(p) in str(info.value)  # names the file
    assert isinstance(info.value, DatasetError) and isinstance(info.value, ValueError)
    with pytest.raises(IDXError, match=message):
        read_idx(blob)


@pytest.mark.parametrize(("blob", "message"), MALFORMED)
def test_malformed_inside_gzip(blob, message):
    message = message.replace("file is", "decompressed data is")
    if "trailing" in message:
        message = "unexpected trailing bytes"
    if "payload truncated" in message:
        message = "payload truncated"
    with pytest.raises(IDXError, match=message):
        read_idx(gz(blob))


def test_huge_claim_is_rejected_without_allocating():
    blob = idx_bytes(0x08, (2**31,), b"")  # 2 GiB claimed, 0 present
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="payload truncated"):
            read_idx(blob)
        with pytest.raises(IDXError):
            read_idx(gz(idx_bytes(0x08, (2**30,), b"\x00" * 10)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_gzip_claim_larger_than_file_can_hold():
    blob = gz(idx_bytes(0x08, (2**30,), b"\x00" * 10))
    with pytest.raises(IDXError, match=r"more than a \d+-byte gzip file can hold"):
        read_idx(blob)


def test_missing_file(tmp_path):
    with pytest.raises(IDXError, match="cannot open"):
        read_idx(tmp_path / "nope.gz")


def test_directory_is_rejected(tmp_path):
    with pytest.raises(IDXError, match=str(tmp_path).replace("\\", "\\\\")):
        read_idx(tmp_path)


# ---------------------------------------------------------------------------- gzip abuse


def test_corrupt_gzip():
    good = gz(idx_bytes(0x08, (64,), bytes(range(64))) * 1)
    bad = bytearray(good)
    for i in range(12, len(bad) - 8):
        bad[i] ^= 0x5A
    with pytest.raises(IDXError, match="corrupt gzip data"):
        read_idx(bytes(bad))


def test_gzip_bad_crc():
    good = bytearray(gz(idx_bytes(0x08, (16,), bytes(range(16)))))
    good[-8] ^= 0xFF  # CRC-32 in the trailer
    with pytest.raises(IDXError, match="corrupt gzip data.*(check|crc)"):
        read_idx(bytes(good))


def test_truncated_gzip():
    good = gz(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    blob = gz(idx_bytes(0x08, (5000,), gzip.decompress(good)))
    with pytest.raises(IDXError, match="corrupt gzip data.*truncated"):
        read_idx(blob[: len(blob) // 2])
    with pytest.raises(IDXError, match="corrupt gzip data.*truncated"):
        read_idx(blob[:-4])  # trailer cut


def test_only_gzip_magic():
    with pytest.raises(IDXError, match="corrupt gzip data"):
        read_idx(b"\x1f\x8b")


def test_garbage_after_gzip_stream():
    with pytest.raises(IDXError, match="non-gzip data after the stream"):
        read_idx(gz(idx_bytes(0x08, (2,), b"\x01\x02")) + b"garbage")


def test_zero_padding_after_gzip_stream_is_skipped():
    # as gzip -d and Python's gzip module do; other bytes there are refused (above)
    blob = gz(idx_bytes(0x08, (2,), b"\x01\x02")) + bytes(16)
    assert read_idx(blob).tolist() == [1, 2]


def test_gzip_file_far_larger_than_its_payload_is_refused_unread():
    # 10 MB of zero padding took GzipFile 3 s to skip, a byte per call
    blob = gz(idx_bytes(0x08, (2,), b"\x01\x02")) + bytes(10**7)
    with pytest.raises(IDXError, match=r"larger than a gzip stream of shape \(2,\) of uint8 "
                       r"needs \(at most 65546 bytes\)"):
        read_idx(blob)


def test_gzip_header_name_is_read_only_in_the_first_64_kib():
    # a file name (FNAME flag) that never ends: GzipFile read it a byte per call, 10 MB in 2 s
    blob = b"\x1f\x8b\x08\x08" + bytes(6) + b"a" * 10**7
    for read in (read_idx, read_idx_header):
        with pytest.raises(IDXError, match="no IDX header in the first 64 KiB"):
            read(blob)


def test_gzip_bomb_is_not_decompressed():
    # Header claims 10 bytes; the stream then inflates to 64 MiB of zeros.
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(idx_bytes(0x08, (10,)))]
    zeros = bytes(1 << 20)
    for _ in range(64):
        parts.append(comp.compress(zeros))
    parts.append(comp.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="unexpected trailing bytes after the 10-byte payload"):
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # never inflated the 64 MiB


def test_limit_constant():
    assert MAX_PAYLOAD_BYTES == 2**31


# ------------------------------------------------------------------------------- fuzzing

# 300 examples per fuzz test in CI; HYPOTHESIS_PROFILE=deep (x20) or XPNET_FUZZ_SCALE=<n>
# for more on demand (the same knob as tests/test_fuzz_checkpoint.py).
FUZZ_SCALE = int(os.environ.get(
    "XPNET_FUZZ_SCALE", "20" if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else "1"))

_VALID = [
    idx_bytes(0x08, (2, 3), bytes(range(6))),
    idx_bytes(0x0C, (3,), struct.pack(">3i", 1, -1, 7)),
    idx_bytes(0x0D, (1, 1, 2), struct.pack(">2f", 0.5, -2.0)),
    idx_bytes(0x0E, (1, 1, 1, 1), struct.pack(">d", 3.0)),
]
_SEEDS = _VALID + [gz(v) for v in _VALID]


def _check_fuzz(blob: bytes) -> None:
    read_idx(_VALID[0])  # warm up lazy imports before tracing
    tracemalloc.start()
    try:
        out = read_idx(blob)
    except IDXError:
        out = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # never more than the input justifies (10x its size, plus 1 MiB of slack)
    assert peak < 10 * len(blob) + 2**20, peak
    if out is None:
        return
    assert isinstance(out, np.ndarray)
    assert 1 <= out.ndim <= 4
    assert out.dtype.isnative


@settings(max_examples=300 * FUZZ_SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(blob):
    _check_fuzz(blob)


@settings(max_examples=300 * FUZZ_SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    st.integers(-8, 8),
    st.binary(max_size=8),
)
def test_fuzz_mutated_files(seed, flips, cut, tail):
    blob = bytearray(seed)
    for pos, value in flips:
        if blob:
            blob[pos % len(blob)] = value
    if cut < 0:
        del blob[cut:]
    blob += tail[:cut] if cut > 0 else b""
    _check_fuzz(bytes(blob))


def test_fuzz_file_path(tmp_path):
    # The path branch has its own size logic; exercise it on a few mutations too.
    rng = np.random.default_rng(0)
    for i, seed in enumerate(_SEEDS * 5):
        blob = bytearray(seed)
        blob[int(rng.integers(len(blob)))] = int(rng.integers(256))
        p = Path(tmp_path, f"f{i}")
        p.write_bytes(bytes(blob))
        try:
            out = read_idx(p)
        except IDXError:
            continue
        assert isinstance(out, np.ndarray)
