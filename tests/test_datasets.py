"""Dataset loading: real MNIST files, folders, .npz, bundled digits, validation errors.

No test here touches the network: ``urlopen`` is replaced by a function that fails.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import xpnet.datasets as xds
from xpnet.datasets import Dataset, DatasetError, load, read_idx, write_idx
from xpnet.datasets import mnist as mnist_mod
from xpnet.datasets.mnist import CHECKSUMS, FILES, FileChecksum

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
T10K_IMAGES = SHARED_MNIST / "t10k-images-idx3-ubyte.gz"
T10K_LABELS = SHARED_MNIST / "t10k-labels-idx1-ubyte.gz"
TRAIN_LABELS = SHARED_MNIST / "train-labels-idx1-ubyte.gz"

needs_real_mnist = pytest.mark.skipif(
    not (T10K_IMAGES.is_file() and T10K_LABELS.is_file()),
    reason=f"real MNIST test files not found in {SHARED_MNIST}",
)
needs_train_labels = pytest.mark.skipif(
    not TRAIN_LABELS.is_file(), reason=f"real MNIST train labels not found in {SHARED_MNIST}"
)

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def real_test_set():
    if not (T10K_IMAGES.is_file() and T10K_LABELS.is_file()):
        pytest.skip(f"real MNIST test files not found in {SHARED_MNIST}")
    return read_idx(T10K_IMAGES), read_idx(T10K_LABELS)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _content_sha256(path: Path) -> str:
    return hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()


# ------------------------------------------------------------------------ real MNIST files


@needs_real_mnist
def test_real_t10k_images_and_labels(real_test_set):
    images, labels = real_test_set
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TEST_COUNTS


@needs_train_labels
def test_real_train_labels():
    labels = read_idx(TRAIN_LABELS)
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS


@needs_real_mnist
@needs_train_labels
@pytest.mark.parametrize("path", [T10K_IMAGES, T10K_LABELS, TRAIN_LABELS], ids=lambda p: p.name)
def test_real_files_match_checksum_table(path):
    spec = CHECKSUMS["mnist"][path.name]
    # The decompressed content is byte-for-byte the published MNIST file...
    assert _content_sha256(path) == spec.raw_sha256
    # ... and the compressed size is the published one, so the verifier accepts it
    # (it checks the .gz digest first, the content digest when the gzip wrapper differs).
    assert path.stat().st_size == spec.size
    arr, _, digest = mnist_mod._load_verified("mnist", spec, path)
    assert digest == _sha256(path)
    assert arr is None or arr.shape[0] in (10000, 60000)


@needs_real_mnist
def test_corrupted_real_file_fails_checksum(tmp_path):
    data = bytearray(T10K_LABELS.read_bytes())
    p = tmp_path / T10K_LABELS.name
    # Rewrite one label (content changes, gzip stays valid).
    labels = bytearray(gzip.decompress(bytes(data)))
    labels[100] = (labels[100] + 1) % 10
    p.write_bytes(gzip.compress(bytes(labels)))
    spec = CHECKSUMS["mnist"][p.name]
    with pytest.raises(
        DatasetError, match=r"SHA-256 mismatch.*expected f7ae60f9.*got [0-9a-f]{64}"
    ):
        mnist_mod._load_verified("mnist", spec, p)


def _idx_folder(folder: Path, images, labels, *, n_train: int, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    s = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{s}", images[:n_train])
    write_idx(folder / f"train-labels-idx1-ubyte{s}", labels[:n_train])
    write_idx(folder / f"t10k-images-idx3-ubyte{s}", images[n_train:])
    write_idx(folder / f"t10k-labels-idx1-ubyte{s}", labels[n_train:])
    return folder


@needs_real_mnist
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_load_idx_folder_from_real_data(tmp_path, real_test_set, gz):
    images, labels = real_test_set
    folder = _idx_folder(tmp_path / "mine", images, labels, n_train=8000, gz=gz)
    ds = load(folder)
    assert ds.x_train.shape == (8000, 784) and ds.x_test.shape == (2000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.x_train.max() == 1.0  # 255 -> 1.0
    assert ds.image_shape == (28, 28) and ds.n_features == 784
    assert ds.num_classes == 10
    assert ds.name == "mine"
    assert ds.source == str(folder)
    assert set(ds.sha256) == {p.name for p in folder.iterdir()}
    # Flattening keeps each image's pixels together (the seed notebook's bug).
    np.testing.assert_array_equal(
        ds.x_test[5].reshape(28, 28), images[8005].astype(np.float32) / 255
    )
    np.testing.assert_array_equal(ds.y_test, labels[8000:])
    # The same folder loads by str path too.
    assert load(str(folder)).x_train.shape == (8000, 784)


@needs_real_mnist
def test_load_dotted_names_and_known_digest(tmp_path, real_test_set):
    import shutil

    images, labels = real_test_set
    folder = tmp_path / "dotted"
    folder.mkdir()
    write_idx(folder / "train-images.idx3-ubyte", images[:100])
    write_idx(folder / "train-labels.idx1-ubyte", labels[:100])
    # Real t10k files: recognised as MNIST by their digest, but train is not => name
    # stays the folder's.
    shutil.copy(T10K_IMAGES, folder / T10K_IMAGES.name)
    shutil.copy(T10K_LABELS, folder / T10K_LABELS.name)
    ds = load(folder)
    assert ds.name == "dotted"
    assert ds.x_test.shape == (10000, 784)


@needs_real_mnist
def test_a_file_whose_digest_is_known_is_not_hashed_again_while_read(tmp_path, real_test_set,
                                                                      monkeypatch):
    from xpnet.datasets import registry

    hashed = []
    real_read = registry._read_idx
    monkeypatch.setattr(registry, "_read_idx",
                        lambda *a, **kw: hashed.append(kw["hashed"]) or real_read(*a, **kw))
    images, labels = real_test_set
    folder = tmp_path / "raw"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", images[:100])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:100])
    for gz in (T10K_IMAGES, T10K_LABELS):  # the real content, uncompressed: a known digest
        (folder / gz.name[:-3]).write_bytes(gzip.decompress(gz.read_bytes()))
    ds = load(folder)
    assert hashed == [True, True, False, False]
    assert ds.x_test.shape == (10000, 784) and set(ds.sha256) == {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte"}
    np.testing.assert_array_equal(ds.y_test, labels)


def test_idx_folder_missing_files(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(
        DatasetError, match=r"missing IDX file\(s\) train-labels-idx1-ubyte\[\.gz\]"
    ):
        load(tmp_path)


def test_idx_folder_wrong_ndim(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 9), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 3, 3), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(DatasetError, match=r"train images have shape \(2, 9\)"):
        load(tmp_path)


def test_idx_folder_mismatched_lengths(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 3, 10).astype(np.uint8)
    folder = _idx_folder(tmp_path / "f", images, labels, n_train=6)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[:3])
    with pytest.raises(DatasetError, match="x_test has 4 samples but y_test has 3"):
        load(folder)


def test_idx_folder_malformed_file(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 4, 4), dtype=np.uint8)
    folder = _idx_folder(tmp_path / "f", images, np.zeros(10, np.uint8), n_train=6)
    bad = folder / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(xds.IDXError, match="t10k-images-idx3-ubyte.gz: corrupt gzip"):
        load(folder)


# ---------------------------------------------------------------------- mnist with data_dir


def _fake_mnist_folder(folder: Path, monkeypatch, *, n_train=60, n_test=10) -> Path:
    """Four small IDX files in folder, with the checksum table patched to match."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, n_train).astype(np.uint8),
        FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    table = {}
    for fname, arr in arrays.items():
        p = write_idx(folder / fname, arr)
        table[fname] = FileChecksum(_sha256(p), p.stat().st_size)
    monkeypatch.setitem(CHECKSUMS, "mnist", table)
    return folder


def test_mnist_uses_files_in_data_dir(tmp_path, monkeypatch):
    folder = _fake_mnist_folder(tmp_path / "mn", monkeypatch)
    ds = load("mnist", data_dir=folder)
    assert ds.name == "mnist"
    assert ds.x_train.shape == (60, 784) and ds.x_test.shape == (10, 784)
    assert ds.class_names == tuple("0123456789")
    assert ds.source == str(folder)
    assert ds.sha256 == {f: CHECKSUMS["mnist"][f].sha256 for f in FILES}


def test_mnist_sha256_mismatch_in_data_dir(tmp_path, monkeypatch):
    folder = _fake_mnist_folder(tmp_path / "mn", monkeypatch)
    bad = folder / "train-labels-idx1-ubyte.gz"
    write_idx(bad, np.ones(60, np.uint8))
    expected = CHECKSUMS["mnist"][bad.name].sha256
    actual = _sha256(bad)
    with pytest.raises(DatasetError) as info:
        load("mnist", data_dir=folder)
    msg = str(info.value)
    assert str(bad) in msg
    assert "SHA-256 mismatch" in msg
    assert f"expected {expected}" in msg and f"got {actual}" in msg
    assert "xpnet download mnist" in msg


def test_mnist_real_table_rejects_fake_files(tmp_path):
    # With the real table, files that are not MNIST are refused (content digest too).
    folder = tmp_path / "mn"
    folder.mkdir()
    for fname in FILES:
        write_idx(folder / fname, np.zeros((3, 28, 28) if "images" in fname else 3, np.uint8))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*expected 440fcabf"):
        load("mnist", data_dir=folder)


@needs_real_mnist
@needs_train_labels
def test_mnist_loads_real_files_in_data_dir(tmp_path, monkeypatch):
    """The three real files verify against the real table; only train images are fake."""
    import shutil

    folder = tmp_path / "mnist"
    folder.mkdir()
    for src in (T10K_IMAGES, T10K_LABELS, TRAIN_LABELS):
        shutil.copy(src, folder / src.name)
    fake = write_idx(folder / FILES[0], np.zeros((60000, 28, 28), np.uint8))
    table = dict(CHECKSUMS["mnist"])
    table[FILES[0]] = FileChecksum(_sha256(fake), fake.stat().st_size)
    monkeypatch.setitem(CHECKSUMS, "mnist", table)
    ds = load("mnist", data_dir=folder)
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert np.bincount(ds.y_test).tolist() == MNIST_TEST_COUNTS
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert ds.sha256[T10K_LABELS.name] == _sha256(T10K_LABELS)


def test_mnist_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "cache"))
    _fake_mnist_folder(tmp_path / "cache" / "mnist", monkeypatch)
    ds = load("mnist")
    assert ds.source == str(tmp_path / "cache" / "mnist")


def test_fashion_mnist_raw_file_cannot_be_verified(tmp_path, monkeypatch):
    folder = tmp_path / "fm"
    folder.mkdir()
    for fname in FILES:
        write_idx(folder / fname[:-3], np.zeros((3, 28, 28) if "images" in fname else 3, np.uint8))
    with pytest.raises(DatasetError, match=r"cannot verify the uncompressed file"):
        load("fashion-mnist", data_dir=folder)


# ---------------------------------------------------------------------------------- .npz


def test_keras_style_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "mnist.npz"
    np.savez_compressed(
        p,
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 50).astype(np.uint8),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=np.arange(20, dtype=np.uint8) % 10,
    )
    ds = load(p)
    assert ds.name == "mnist" and ds.source == str(p)
    assert ds.x_train.shape == (50, 784) and ds.x_train.dtype == np.float32
    assert ds.y_test.dtype == np.int64 and ds.num_classes == 10
    assert ds.image_shape == (28, 28)
    assert 0.0 <= ds.x_test.min() and ds.x_test.max() <= 1.0
    assert ds.sha256 == {"mnist.npz": _sha256(p)}
    assert load(str(p)).x_test.shape == (20, 784)


def test_generic_npz_with_metadata(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "custom.npz"
    np.savez(
        p,
        X_train=rng.random((30, 12)),
        y_train=rng.integers(0, 3, 30),
        X_test=rng.random((6, 12)).astype(np.float32),
        y_test=np.array([0, 1, 2, 0, 1, 2], dtype=np.int32),
        class_names=np.array(["cat", "dog", "fox"]),
        image_shape=np.array([3, 4]),
    )
    ds = load(p)
    assert ds.class_names == ("cat", "dog", "fox")
    assert ds.image_shape == (3, 4)
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (30, 12)
    assert "custom: 30 train / 6 test images of 3x4 (12 features), 3 classes" in ds.summary()


def test_npz_object_arrays_rejected(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(
        p,
        x_train=np.array([{"a": 1}, None], dtype=object),
        y_train=np.zeros(2, np.int64),
        x_test=np.zeros((1, 4)),
        y_test=np.zeros(1, np.int64),
    )
    with pytest.raises(DatasetError, match=r"'x_train' has object dtype.*never unpickles"):
        load(p)


def test_npz_missing_key(tmp_path):
    p = tmp_path / "partial.npz"
    np.savez(p, x_train=np.zeros((2, 4)), y_train=[0, 1], x_test=np.zeros((1, 4)))
    with pytest.raises(DatasetError, match=r"no array 'y_test'.*found: x_test, x_train, y_train"):
        load(p)


def test_npz_mismatched_lengths(tmp_path):
    p = tmp_path / "m.npz"
    np.savez(p, x_train=np.zeros((5, 4)), y_train=[0, 1, 2], x_test=np.zeros((1, 4)), y_test=[0])
    with pytest.raises(DatasetError, match="x_train has 5 samples but y_train has 3"):
        load(p)


def test_npz_negative_labels(tmp_path):
    p = tmp_path / "neg.npz"
    np.savez(p, x_train=np.zeros((3, 4)), y_train=[0, -1, 2], x_test=np.zeros((1, 4)), y_test=[0])
    with pytest.raises(DatasetError, match="y_train has a negative label -1 at index 1"):
        load(p)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.full((2, 2), np.nan)}, "x_train contains NaN"),
        ({"x_train": np.full((2, 2), np.inf)}, "x_train contains an infinite value"),
        ({"x_train": np.full((2, 2), 3.0)}, r"floats in \[3, 3\]; float images must"),
        ({"x_train": np.full((2, 2), 300, np.int32)}, r"integers in \[300, 300\]"),
        ({"y_train": np.array([0.0, 1.0])}, "labels must be non-negative integers"),
        ({"y_train": np.array([[0], [1]])}, r"y_train has shape \(2, 1\)"),
        ({"x_train": np.zeros((0, 2)), "y_train": np.zeros(0, int)}, "x_train is empty"),
        ({"x_train": np.zeros(2)}, r"x_train has shape \(2,\)"),
        ({"x_test": np.zeros((1, 3))}, r"x_train samples have shape \(2,\) but x_test"),
    ],
)
def test_npz_content_validation(tmp_path, arrays, message):
    base = {
        "x_train": np.zeros((2, 2)),
        "y_train": np.array([0, 1]),
        "x_test": np.zeros((1, 2)),
        "y_test": np.array([1]),
    }
    base.update(arrays)
    p = tmp_path / "v.npz"
    np.savez(p, **base)
    with pytest.raises(DatasetError, match=message):
        load(p)


def test_npz_not_a_zip(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"definitely not a zip")
    with pytest.raises(DatasetError, match="not an .npz"):
        load(p)


def test_npz_member_claiming_huge_shape(tmp_path):
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (2**40,)
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    small = {"y_train.npy": [0], "x_test.npy": np.zeros((1, 1)), "y_test.npy": [0]}
    p = tmp_path / "bomb.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x_train.npy", buf.getvalue() + b"\x00" * 64)
        for name, arr in small.items():
            b = io.BytesIO()
            np.save(b, np.asarray(arr))
            zf.writestr(name, b.getvalue())
    with pytest.raises(DatasetError, match="claims shape .* truncated or corrupt"):
        load(p)


def test_npy_header_length_is_checked_before_it_is_read(tmp_path):
    """Before: numpy allocated the 4 GiB a 2.0 header claims as its own length, then
    failed on the missing bytes; now the claim is refused with nothing read."""
    import tracemalloc

    p = tmp_path / "big.npy"
    p.write_bytes(b"\x93NUMPY\x02\x00" + (2**32 - 16).to_bytes(4, "little") + b"{'descr': '<f4'}")
    tracemalloc.start()
    try:
        with open(p, "rb") as f, \
                pytest.raises(DatasetError, match="claims 4294967280 bytes, more than 10000"):
            xds.read_npy_header(f, "big.npy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_npy_format_version_3_is_refused_with_its_own_message():
    """Before: the version message was wrapped as a malformed header, naming the file twice."""
    import io

    buf = io.BytesIO(b"\x93NUMPY\x03\x00" + (10).to_bytes(4, "little") + b"{}" + b" " * 8)
    with pytest.raises(DatasetError) as info:
        xds.read_npy_header(buf, "a.npy")
    assert str(info.value) == ("a.npy uses .npy format version 3.0; xpnet reads versions 1.0 "
                               "and 2.0 (numeric arrays)")


# -------------------------------------------------------------------------------- digits


def test_digits_offline():
    ds = load("digits")
    assert ds.name == "digits" and ds.source == "bundled"
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.y_train.shape == (1437,) and ds.y_test.shape == (360,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert ds.image_shape == (8, 8)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() == 1.0
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert ds.sha256 == {"digits.npz": xds.digits.DIGITS_SHA256}
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [
        178, 182, 177, 183, 181, 182, 181, 179, 174, 180,
    ]  # fmt: skip


def test_digits_split_is_pinned():
    # The split is part of the documented contract; pin it so a change is noticed.
    perm = np.random.default_rng(0).permutation(1797)
    assert perm[-360:][:8].tolist() == [256, 1340, 1067, 1276, 1409, 1216, 1587, 973]
    digest = hashlib.sha256(perm.astype("<i8").tobytes()).hexdigest()
    assert digest == "14b7f6bc58ce844efd500d56ca64ce44abff6e3dd1d9b8d2a6d11825767e38d3"
    ds = load("digits")
    assert ds.y_test[:20].tolist() == [0, 8, 8, 9, 8, 3, 7, 5, 0, 6, 6, 3, 1, 3, 8, 7, 8, 6, 1, 5]
    x_digest = hashlib.sha256(ds.x_test.tobytes()).hexdigest()
    assert x_digest == "01bd491a29bd9f7233205b7f121fe45c35a761b1bd2a2d2ac48079d8c277196c"
    np.testing.assert_array_equal(load("digits").x_test, ds.x_test)


def test_digits_matches_sklearn_copy():
    sk = pytest.importorskip("sklearn.datasets")
    bunch = sk.load_digits()
    ds = load("digits")
    perm = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(ds.y_test, bunch.target[perm[-360:]])
    np.testing.assert_array_equal(
        ds.x_train, (bunch.images[perm[:-360]].reshape(-1, 64) / 16).astype(np.float32)
    )


def test_digits_without_sklearn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import xpnet.datasets as xds\n"
        "ds = xds.load('digits')\n"
        "assert 'sklearn' not in [m.split('.')[0] for m in sys.modules if sys.modules[m]]\n"
        "print(ds.x_train.shape, ds.x_test.shape)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1437, 64) (360, 64)"


def test_digits_damaged_file(monkeypatch):
    monkeypatch.setattr(xds.digits, "DIGITS_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="bundled digits.npz: SHA-256 mismatch"):
        load("digits")


# --------------------------------------------------------------------------- names, errors


def test_unknown_name_lists_valid_names():
    with pytest.raises(DatasetError) as info:
        load("cifar10")
    msg = str(info.value)
    assert "'cifar10'" in msg
    for name in ("'digits'", "'mnist'", "'fashion-mnist'"):
        assert name in msg
    assert "path" in msg
    assert isinstance(info.value, ValueError)


def test_missing_path():
    with pytest.raises(DatasetError, match="no such file or folder"):
        load("./does/not/exist.npz")


def test_name_type_error():
    with pytest.raises(TypeError, match="dataset name must be a str or a path"):
        load(3)  # type: ignore[arg-type]


def test_names_are_case_insensitive_and_aliases(tmp_path, monkeypatch):
    assert load(" Digits ").name == "digits"
    folder = _fake_mnist_folder(tmp_path / "mn", monkeypatch)
    assert load("MNIST", data_dir=folder).name == "mnist"
    with pytest.raises(DatasetError, match="fashion-mnist"):
        xds.download("emnist")
    assert xds.DATASET_NAMES == ("digits", "mnist", "fashion-mnist")


def test_error_hierarchy():
    assert issubclass(xds.DownloadError, DatasetError)
    assert issubclass(xds.IDXError, DatasetError)
    assert issubclass(DatasetError, ValueError)


# ------------------------------------------------------------------------------ Dataset


def test_dataset_from_arrays_and_properties():
    ds = Dataset.from_arrays(
        "toy",
        np.zeros((4, 2, 3), np.uint8),
        [0, 1, 2, 1],
        np.full((2, 2, 3), 255, np.uint8),
        [2, 0],
        class_names=["a", "b", "c"],
    )
    assert ds.num_classes == 3 and ds.n_features == 6 and ds.image_shape == (2, 3)
    assert ds.x_test.max() == 1.0
    assert ds.summary() == (
        "toy: 4 train / 2 test images of 2x3 (6 features), 3 classes (source: arrays)"
    )
    assert repr(ds).startswith("<Dataset toy:")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


def test_dataset_rejects_bad_direct_construction():
    x = np.zeros((2, 4), np.float32)
    y = np.zeros(2, np.int64)
    with pytest.raises(DatasetError, match="float32"):
        Dataset("d", x.astype(np.float64), y, x, y, ("0",), (4,), "s")
    with pytest.raises(DatasetError, match="int64"):
        Dataset("d", x, y.astype(np.int32), x, y, ("0",), (4,), "s")
    with pytest.raises(DatasetError, match="no class name"):
        Dataset("d", x, y + 3, x, y, ("0",), (4,), "s")
    with pytest.raises(DatasetError, match="image_shape"):
        Dataset("d", x, y, x, y, ("0",), (3,), "s")


def test_from_arrays_class_names_too_few():
    with pytest.raises(DatasetError, match="label 2 has no class name: 2 class names"):
        Dataset.from_arrays("t", np.zeros((3, 1)), [0, 1, 2], np.zeros((1, 1)), [0],
                            class_names=["a", "b"])  # fmt: skip


# ---------------------------------------------------------------------------- cache_dir


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path))
    assert xds.cache_dir() == tmp_path


def test_cache_dir_linux(monkeypatch, tmp_path):
    monkeypatch.delenv("XPNET_DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert xds.cache_dir() == tmp_path / "xpnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert xds.cache_dir() == Path.home() / ".cache" / "xpnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert xds.cache_dir() == Path.home() / ".cache" / "xpnet"


def test_cache_dir_macos_and_windows(monkeypatch, tmp_path):
    monkeypatch.delenv("XPNET_DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert xds.cache_dir() == Path.home() / "Library" / "Caches" / "xpnet"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    assert xds.cache_dir() == tmp_path / "xpnet" / "Cache"


@needs_real_mnist
def test_uncompressed_real_file_verifies_by_content(tmp_path):
    p = tmp_path / "t10k-labels-idx1-ubyte"
    p.write_bytes(gzip.decompress(T10K_LABELS.read_bytes()))
    spec = CHECKSUMS["mnist"]["t10k-labels-idx1-ubyte.gz"]
    arr, _, digest = mnist_mod._load_verified("mnist", spec, p)
    assert digest == spec.raw_sha256
    assert arr is not None and arr.shape == (10000,)


def test_folder_of_known_files_is_named_after_the_dataset(tmp_path, monkeypatch):
    folder = _fake_mnist_folder(tmp_path / "whatever", monkeypatch)
    ds = load(folder)
    assert ds.name == "mnist" and ds.class_names == tuple("0123456789")
    # One file changed: no longer recognised, named after the folder.
    write_idx(folder / FILES[3], np.zeros(10, np.uint8))
    assert load(folder).name == "whatever"
