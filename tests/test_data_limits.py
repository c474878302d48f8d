"""Loaders and ``xpnet predict`` inputs: class counts bounded, memory proportional to the data.

Hostile files are tiny; each test measures what loading them costs (``tracemalloc`` peak,
in a child process with an address-space limit where a regression could eat the machine)
and checks that the refusal is a clear ``DatasetError`` or exit status 3.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
import xpnet.datasets as xds
from xpnet.datasets import DatasetError, write_idx

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


def _idx_folder(folder: Path, train_labels, test_labels, side: int = 2) -> Path:
    """Four raw IDX files: one side x side image per label."""
    folder.mkdir(parents=True, exist_ok=True)
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    write_idx(folder / IDX_NAMES[0], np.zeros((len(train_labels), side, side), np.uint8))
    write_idx(folder / IDX_NAMES[1], train_labels)
    write_idx(folder / IDX_NAMES[2], np.zeros((len(test_labels), side, side), np.uint8))
    write_idx(folder / IDX_NAMES[3], test_labels)
    return folder


# A child process loads the folder under a 1.5 GiB address-space limit (a loader that
# builds two billion class names fails fast there instead of taking the machine down) and
# reports what happened and the tracemalloc peak.
_LOAD_IN_CHILD = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    limit = 1536 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import xpnet.datasets as xds
    tracemalloc.start()
    try:
        ds = xds.load(sys.argv[1])
        outcome = {"loaded": ds.num_classes}
    except BaseException as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    outcome["peak"] = tracemalloc.get_traced_memory()[1]
    print(json.dumps(outcome))
""")


def _load_in_child(folder: Path) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, str(folder)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform == "win32", reason="resource.RLIMIT_AS is POSIX")
def test_label_of_two_billion_in_a_tiny_idx_folder_is_refused_cheaply(tmp_path):
    folder = _idx_folder(tmp_path / "bomb", np.array([2_000_000_000], np.int32),
                         np.array([0], np.int32))
    assert sum(p.stat().st_size for p in folder.iterdir()) == 64
    outcome = _load_in_child(folder)
    assert outcome.get("error") == "DatasetError", outcome
    assert "y_train has label 2000000000 at index 0; labels must be < 65536" \
        in outcome["message"]
    assert outcome["peak"] < 2**20, outcome  # nothing sized by the label was allocated


@pytest.mark.parametrize("labels,names,message", [
    pytest.param([65_535, 0], None,
                 "labels up to 65535 give 65536 classes but the data has only 3 labelled "
                 "samples; more classes than samples are allowed only up to 256",
                 id="classes-beyond-the-data"),
    pytest.param([0, 1], [str(i) for i in range(70_000)],
                 "70000 class names give 70000 classes; at most 65536 are allowed",
                 id="too-many-class-names"),
    pytest.param([2**40, 0], None, "labels must be < 65536", id="int64-label"),
])
def test_class_count_is_bounded_before_allocating(labels, names, message):
    y = np.array(labels, np.int64)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=message):
            xds.Dataset.from_arrays("t", np.zeros((2, 4), np.uint8), y,
                                    np.zeros((1, 4), np.uint8), [0], class_names=names)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_up_to_256_classes_need_no_samples_and_more_need_them():
    x = np.zeros((3, 4), np.uint8)
    ds = xds.Dataset.from_arrays("t", x, [0, 1, 255], x[:1], [2])
    assert ds.num_classes == 256
    many = np.arange(300) % 300
    ds = xds.Dataset.from_arrays("t", np.zeros((300, 4), np.uint8), many, x[:1], [299])
    assert ds.num_classes == 300
    assert xds.MAX_CLASSES == 65_536 and xds.FREE_CLASSES == 256


def test_npz_class_names_beyond_the_data_are_refused(tmp_path):
    p = tmp_path / "names.npz"
    np.savez(p, x_train=np.zeros((2, 4), np.uint8), y_train=[0, 1],
             x_test=np.zeros((1, 4), np.uint8), y_test=[1],
             class_names=np.array([f"c{i}" for i in range(5000)]))
    with pytest.raises(DatasetError, match="5000 class names give 5000 classes but the data "
                                           "has only 3 labelled samples"):
        xds.load(p)


def _gz_idx_claiming(path: Path, shape: tuple[int, ...]) -> Path:
    """A gzip IDX file of uint8 zeros with the given shape (a small file that inflates)."""
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    with gzip.open(path, "wb") as f:
        f.write(header)
        f.write(bytes(int(np.prod(shape))))
    return path


def test_data_cap_is_checked_from_the_headers(tmp_path, monkeypatch):
    folder = _idx_folder(tmp_path / "f", np.zeros(5000, np.uint8), np.zeros(10, np.uint8))
    _gz_idx_claiming(folder / IDX_NAMES[0], (5000, 28, 28))  # 3.9 MB of zeros in 4 kB
    (folder / IDX_NAMES[2]).unlink()
    _gz_idx_claiming(folder / (IDX_NAMES[2] + ".gz"), (10, 28, 28))
    need = 4 * 5010 * 28 * 28
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", str(need - 1))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=rf"images would take {need} bytes as float32 "
                                               rf"\(3927840 values\), above the {need - 1}-byte"):
            xds.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20  # the 3.9 MB payload was never decompressed
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", str(need))
    assert xds.load(folder).x_train.shape == (5000, 784)
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "lots")
    with pytest.raises(DatasetError, match="XPNET_MAX_DATA_BYTES must be a positive integer"):
        xds.load(folder)


def test_npz_cap_is_checked_before_loading(tmp_path, monkeypatch):
    p = tmp_path / "d.npz"
    np.savez_compressed(p, x_train=np.zeros((1000, 100), np.uint8), y_train=np.zeros(1000, int),
                        x_test=np.zeros((10, 100), np.uint8), y_test=np.zeros(10, int))
    monkeypatch.setenv("XPNET_MAX_DATA_BYTES", "100000")
    with pytest.raises(DatasetError, match=r"x_train and x_test would take 404000 bytes as "
                                           r"float32 \(101000 values\)"):
        xds.load(p)


def test_loaders_make_one_float_copy(tmp_path):
    """IDX folder: raw uint8 + one float32 copy (+ the compressed bytes of one file)."""
    rng = np.random.default_rng(0)
    n, side = 3000, 28
    images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    folder = tmp_path / "f"
    folder.mkdir()
    write_idx(folder / (IDX_NAMES[0] + ".gz"), images[:2500])
    write_idx(folder / (IDX_NAMES[1] + ".gz"), (np.arange(2500) % 10).astype(np.uint8))
    write_idx(folder / (IDX_NAMES[2] + ".gz"), images[2500:])
    write_idx(folder / (IDX_NAMES[3] + ".gz"), (np.arange(500) % 10).astype(np.uint8))
    raw, as_float = images.nbytes, 4 * images.size
    tracemalloc.start()
    try:
        ds = xds.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ds.x_train.shape == (2500, 784)
    assert peak < raw + as_float + raw // 2, (peak, raw, as_float)


# ------------------------------------------------------------------------ predict inputs
def test_predict_inputs_hold_one_float_copy(tmp_path):
    from xpnet.cli._inputs import read_inputs

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3000, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a-idx3-ubyte.gz", images[:2000])
    np.save(tmp_path / "b.npy", images[2000:])
    tracemalloc.start()
    try:
        X, items = read_inputs([str(tmp_path / "a-idx3-ubyte.gz"), str(tmp_path / "b.npy")],
                               784, (28, 28), "auto")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.shape == (3000, 784) and len(items) == 3000
    np.testing.assert_array_equal(X, images.reshape(3000, 784) / np.float32(255))
    # base code: uint8 + float32 + the /255 result + the concatenation = 3+ float copies
    assert peak < 4 * images.size + images[:2000].nbytes + 4 * 2**20, peak


def _run_predict(cwd: Path, *args, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, NO_COLOR="1", **env)
    return subprocess.run([sys.executable, "-m", "xpnet", "predict", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    """A digits classifier saved the way ``xpnet train`` saves it (8x8 image shape)."""
    folder = tmp_path_factory.mktemp("model")
    m = xn.MLP([64, 10], backend="numpy", seed=0)
    meta = {"xpnet_cli": 1, "dataset": {"name": "digits", "spec": "digits",
                                        "image_shape": [8, 8],
                                        "class_names": [str(i) for i in range(10)]}}
    return xn.save(m, folder / "model.safetensors", metadata=meta)


def test_predict_refuses_inputs_above_the_cap_from_their_headers(tmp_path, digits_model):
    big = _gz_idx_claiming(tmp_path / "big-idx3-ubyte.gz", (20_000, 8, 8))
    proc = _run_predict(tmp_path, digits_model, big, XPNET_MAX_DATA_BYTES="1000000")
    assert proc.returncode == 3, proc.stderr
    assert ("would take 5120000 bytes as float32 (1280000 values), above the 1000000-byte "
            "cap") in proc.stderr
    assert "XPNET_MAX_DATA_BYTES" in proc.stderr and proc.stdout == ""


def test_float64_beyond_float32_is_refused_by_predict(tmp_path, digits_model):
    x = np.full((1, 64), 0.5)
    x[0, 3] = 1e39  # finite in float64, inf in float32
    np.save(tmp_path / "x.npy", x)
    proc = _run_predict(tmp_path, digits_model, tmp_path / "x.npy")
    assert proc.returncode == 3, proc.stderr
    assert "contains an infinite value (first at sample 0)" in proc.stderr


# The child runs one ``xpnet predict`` and reports its peak resident set size: the only
# child of a fresh process, so no earlier child's peak is counted.
_PREDICT_PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    with open(sys.argv[1], "w") as out:
        rc = subprocess.run([sys.executable, "-m", "xpnet", "predict", *sys.argv[2:]],
                            stdout=out).returncode
    print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
""")


def _predict_peak(tmp_path: Path, model: Path, data: Path) -> tuple[int, Path]:
    out = tmp_path / f"{data.name}.json"
    proc = subprocess.run([sys.executable, "-c", _PREDICT_PEAK, str(out), str(model),
                           str(data), "--backend", "numpy", "--json"],
                          cwd=tmp_path, env=dict(os.environ, NO_COLOR="1"),
                          capture_output=True, text=True, timeout=300)
    rc, peak = map(int, proc.stdout.split())
    assert rc == 0, proc.stderr
    return peak, out


def test_predict_json_memory_is_bounded_by_the_data(tmp_path, digits_model):
    """200,000 zero 8x8 images in a 12 kB gzip IDX: 12.8 MB of uint8, 51 MB as float32.

    Base code held a dict per row and n x classes float64: 680 MB at peak (51 MB for five
    rows); streamed by batch it is the one float32 block over what five rows cost."""
    n = 200_000
    small, _ = _predict_peak(tmp_path, digits_model,
                             _gz_idx_claiming(tmp_path / "five-idx3-ubyte.gz", (5, 8, 8)))
    big, out = _predict_peak(tmp_path, digits_model,
                             _gz_idx_claiming(tmp_path / "many-idx3-ubyte.gz", (n, 8, 8)))
    as_float = 4 * n * 64
    assert big - small < 3 * as_float, (big, small, as_float)
    text = out.read_text()
    assert text.count("\n") == 1 and text.endswith("]}\n")
    preds = json.loads(text)["predictions"]
    assert len(preds) == n
    assert preds[0]["input"].endswith("many-idx3-ubyte.gz[0]")
    assert preds[-1]["input"].endswith(f"many-idx3-ubyte.gz[{n - 1}]")
    assert len({(p["label"], p["probability"]) for p in preds}) == 1  # the same zero image
    assert [len(p["top_k"]) for p in preds[::50_000]] == [3] * 4


def test_predict_row_names_are_made_when_asked_for():
    from xpnet.cli._inputs import _Items

    items = _Items([("a.png", 1, True), ("b.npy", 3, None), ("c.npy", 1, None)])
    assert len(items) == 5 and len(_Items([])) == 0
    assert list(items) == [{"input": "a.png", "inverted": True}, {"input": "b.npy[0]"},
                           {"input": "b.npy[1]"}, {"input": "b.npy[2]"}, {"input": "c.npy"}]
    assert items[3] == {"input": "b.npy[2]"} and items[-1] == {"input": "c.npy"}
    assert items[1:5:2] == [{"input": "b.npy[0]"}, {"input": "b.npy[2]"}]
    with pytest.raises(IndexError, match="item 5 of 5"):
        items[5]
