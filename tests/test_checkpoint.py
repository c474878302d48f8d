"""Checkpoints: any backend to any backend, optimizer state, atomic writes, hostile files."""

import json
import os
import pickle
import struct

import numpy as np
import pytest

import xpnet as xn


def _trained(backend, blobs, **kw):
    X, y = blobs
    m = xn.MLP([4, 8, 3], backend=backend, seed=0, **kw)
    m.fit(X, y, epochs=2, batch_size=50, verbose=0, optimizer=xn.AdamW(lr=1e-2), seed=0)
    return m


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch", "jax"])
def test_round_trip_between_backends(backend, target, tmp_path, blobs):
    if target not in xn.available_backends():
        pytest.skip(f"{target} unavailable")
    m = _trained(backend, blobs, dropout=0.1)
    path = xn.save(m, tmp_path / "m.safetensors")
    m2 = xn.load(path, backend=target)
    assert m2.backend.name == target and m2.get_config() == m.get_config()
    for k in m.params:
        assert xn.to_numpy(m2.params[k]).tobytes() == xn.to_numpy(m.params[k]).tobytes()
    X, _ = blobs
    np.testing.assert_allclose(xn.to_numpy(m2.predict_proba(X)),
                               xn.to_numpy(m.predict_proba(X)), rtol=1e-5, atol=1e-6)
    ck = xn.load_checkpoint(path, backend=target)
    assert isinstance(ck.optimizer, xn.AdamW) and ck.optimizer.state["step"] == 12
    for slot in ("exp_avg", "exp_avg_sq"):
        for k in m.params:
            np.testing.assert_array_equal(xn.to_numpy(ck.optimizer.state[slot][k]),
                                          xn.to_numpy(m.optimizer.state[slot][k]))
    assert ck.metadata["backend"] == backend


def test_resume_is_bitwise_on_numpy(tmp_path, blobs):
    X, y = blobs
    straight = xn.MLP([4, 8, 3], backend="numpy", seed=0, dropout=0.2)
    straight.fit(X, y, epochs=4, batch_size=32, seed=3, verbose=0, optimizer=xn.Adam(1e-2))
    first = xn.MLP([4, 8, 3], backend="numpy", seed=0, dropout=0.2)
    ck = xn.ModelCheckpoint(tmp_path / "last.safetensors")
    first.fit(X, y, epochs=2, batch_size=32, seed=3, verbose=0, optimizer=xn.Adam(1e-2),
              callbacks=[ck])
    c = xn.load_checkpoint(tmp_path / "last.safetensors", backend="numpy")
    assert c.training["epoch"] == 2
    h = c.model.fit(X, y, epochs=4, batch_size=32, verbose=0, optimizer=c.optimizer,
                    resume=c.training)
    assert len(h.history["loss"]) == 4
    for k in straight.params:
        assert c.model.params[k].tobytes() == straight.params[k].tobytes(), k


def test_no_pickle_ever(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="not an xpnet checkpoint|not a valid"):
        xn.load(bad, backend="numpy")
    assert not marker.exists()
    npz = tmp_path / "evil.npz"
    np.savez(npz, a=np.array([Evil()], dtype=object))
    with pytest.raises(ValueError):
        xn.load(npz, backend="numpy")
    assert not marker.exists()


def _header_file(path, header: dict, payload: bytes = b""):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + payload)
    return path


def test_hostile_and_broken_files(tmp_path, blobs):
    m = _trained("numpy", blobs)
    good = xn.save(m, tmp_path / "good.safetensors")
    data = good.read_bytes()
    cases = {
        "empty": b"",
        "short": data[:5],
        "truncated": data[: len(data) // 2],
        "huge-header": struct.pack("<Q", 2**60) + b"{}",
        "garbage": os.urandom(256),
    }
    for name, blob in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(blob)
        with pytest.raises(ValueError):
            xn.load(p, backend="numpy")
    # a header that claims a huge tensor in a tiny file
    p = _header_file(tmp_path / "claims.safetensors",
                     {"__metadata__": {"format": "xpnet"},
                      "params/0.W": {"dtype": "F32", "shape": [100000, 100000],
                                     "data_offsets": [0, 40000000000]}}, b"\0" * 16)
    with pytest.raises(ValueError):
        xn.load(p, backend="numpy")
    # overlapping offsets
    p = _header_file(tmp_path / "overlap.safetensors",
                     {"__metadata__": {"format": "xpnet"},
                      "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
    with pytest.raises(ValueError):
        xn.load(p, backend="numpy")


def test_architecture_mismatch_and_lying_manifest(tmp_path, blobs):
    from safetensors.numpy import load_file, save_file

    m = _trained("numpy", blobs)
    path = xn.save(m, tmp_path / "m.safetensors")
    tensors = load_file(path)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    cfg = json.loads(meta["model"])
    cfg["layers"][0]["config"]["units"] = 9  # manifest says 9 hidden units, tensors have 8
    lie = dict(meta, model=json.dumps(cfg))
    save_file(tensors, tmp_path / "lie.safetensors", metadata=lie)
    with pytest.raises(ValueError, match=r"tensor 'params/0.W' has shape \(4, 8\).*\(4, 9\)"):
        xn.load(tmp_path / "lie.safetensors", backend="numpy")
    wrong_dtype = {k: v.astype(np.float64) for k, v in tensors.items()}
    save_file(wrong_dtype, tmp_path / "f64.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="dtype float64, expected float32"):
        xn.load(tmp_path / "f64.safetensors", backend="numpy")
    missing = {k: v for k, v in tensors.items() if k != "params/2.b"}
    save_file(missing, tmp_path / "missing.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="missing.*params/2.b"):
        xn.load(tmp_path / "missing.safetensors", backend="numpy")
    save_file(tensors, tmp_path / "foreign.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not an xpnet checkpoint"):
        xn.load(tmp_path / "foreign.safetensors", backend="numpy")


def test_save_failure_leaves_previous_file(tmp_path, blobs, monkeypatch):
    m = _trained("numpy", blobs)
    path = xn.save(m, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space left"):
        xn.save(m, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_save_to_missing_folder(tmp_path, blobs):
    m = _trained("numpy", blobs)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        xn.save(m, tmp_path / "nope" / "m.safetensors")


def test_custom_layer_needs_registration(tmp_path):
    class Twice(xn.Layer):
        def forward(self, params, x, *, train=False):
            return 2 * x, None

        def backward(self, params, cache, dy):
            return 2 * dy, {}

    m = xn.Sequential([xn.Dense(3), Twice()], in_features=2, backend="numpy")
    # refused before anything is written: the file could not be loaded
    with pytest.raises(ValueError, match=r"layer 1 \(Twice\) cannot be rebuilt.*not registered"
                                         r".*register_layer\(Twice\)"):
        xn.save(m, tmp_path / "t.safetensors")
    assert not list(tmp_path.iterdir())
    xn.register_layer(Twice)
    p = xn.save(m, tmp_path / "t.safetensors")
    assert isinstance(xn.load(p, backend="numpy").layers[1], Twice)


def test_stale_temp_files_of_killed_saves_are_cleaned(tmp_path, blobs):
    import time

    m = _trained("numpy", blobs)
    old = tmp_path / ".m.safetensors.abc123.tmp"
    old.write_bytes(b"partial")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    fresh = tmp_path / ".m.safetensors.def456.tmp"  # maybe another process's save in flight
    fresh.write_bytes(b"partial")
    xn.save(m, tmp_path / "m.safetensors")
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("content,kind", [
    (b"\x89PNG\r\n\x1a\n" + bytes(166), "a PNG image, 174 bytes"),
    (b"x1,x2,label\n0.5,0.25,1\n", "a text file, 23 bytes"),
    (b"\x93NUMPY\x01\x00" + bytes(40), "a NumPy .npy array, 48 bytes"),
])
def test_a_file_that_is_not_a_checkpoint_is_named_by_what_it_looks_like(tmp_path, content,
                                                                        kind):
    """``xpnet evaluate seven.png`` said "safetensors header length 727905341920923785 does
    not fit a 174-byte file"; now it says what the file seems to be and what is expected."""
    path = tmp_path / "seven.png"
    path.write_bytes(content)
    with pytest.raises(xn.CheckpointError) as info:
        xn.load(path, backend="numpy")
    assert f"is not an xpnet checkpoint: it looks like {kind}. A checkpoint is the " \
           ".safetensors file that xn.save and xpnet train write" in str(info.value)


def test_the_header_read_refuses_a_bad_file_with_the_full_loads_error(tmp_path, blobs):
    """``xpnet train --resume`` reads the headers alone (_read_records) to compare positions
    and take the settings: a file that is not a checkpoint, a damaged header, a foreign or
    future format and a damaged training record get the full load's error, word for word."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from xpnet.checkpoint import _read_records

    m = _trained("numpy", blobs)
    good = xn.save(m, tmp_path / "good.safetensors", training={"epoch": 2},
                   metadata={"run": 7})
    tensors = load_file(good)
    with safe_open(str(good), framework="numpy") as f:
        meta = f.metadata()
    head = _read_records(good)
    full = xn.load_checkpoint(good, backend="numpy")
    assert head.model is None and head.optimizer is None
    assert (head.training, head.metadata) == (full.training, full.metadata)
    assert head.training == {"epoch": 2} and head.metadata["user"] == {"run": 7}
    bad = {"png": b"\x89PNG\r\n\x1a\n" + bytes(166), "short": b"12345",
           "truncated": good.read_bytes()[:-100],
           "huge-header": struct.pack("<Q", 2**60) + b"{}"}
    for name, blob in bad.items():
        (tmp_path / f"{name}.safetensors").write_bytes(blob)
    for name, edit in [("foreign", {"format": "pt"}), ("future", {"format_version": "2"}),
                       ("record", {"training": "{not json"}),
                       ("position", {"training": json.dumps({"epoch": -1})})]:
        save_file(tensors, tmp_path / f"{name}.safetensors", metadata=dict(meta, **edit))
        bad[name] = b""
    (tmp_path / "folder.safetensors").mkdir()
    for name in [*bad, "folder", "absent"]:
        path = tmp_path / f"{name}.safetensors"
        with pytest.raises((ValueError, FileNotFoundError)) as want:
            xn.load_checkpoint(path, backend="numpy")
        with pytest.raises(type(want.value)) as got:
            _read_records(path)
        assert str(got.value) == str(want.value), name
    with pytest.raises(xn.CheckpointError, match=r"format version '2' is not supported "
                                                 r"\(expected 1\)"):
        _read_records(tmp_path / "future.safetensors")
