"""Interrupted and resumed training: Ctrl-C mid-epoch, resume in a new process, same bits."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpnet as xn


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    return X, y


def _model():
    return xn.MLP([6, 16, 3], dropout=0.2, backend="numpy", seed=0)


FIT = dict(batch_size=32, seed=11, verbose=0)


class _CtrlCAt(xn.Callback):
    """Sends SIGINT to this process after a given global step."""

    def __init__(self, at):
        self.at, self.count = at, 0

    def on_batch_end(self, step, logs):
        self.count += 1
        if self.count == self.at:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def terminal_sigint():
    """Python's own Ctrl-C handler, as in a terminal: a process started in the background
    by a non-interactive shell inherits SIGINT ignored, and Python then leaves it so."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_mid_epoch_then_resume_in_new_process(tmp_path, terminal_sigint):
    X, y = _data()
    straight = _model()
    straight.fit(X, y, epochs=3, optimizer=xn.Adam(1e-2), **FIT)

    m = _model()
    ck = xn.ModelCheckpoint(tmp_path / "run.safetensors")
    with pytest.raises(xn.TrainingInterrupted) as info:
        # 13 steps per epoch: interrupt after the 18th step overall (epoch 2, step 5)
        m.fit(X, y, epochs=3, optimizer=xn.Adam(1e-2), callbacks=[ck, _CtrlCAt(18)],
              display_interval=0.0, **FIT)
    assert (info.value.epoch, info.value.step) == (2, 5)
    assert info.value.checkpoint == str(tmp_path / "run.safetensors")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    np.savez(tmp_path / "data.npz", X=X, y=y)
    script = textwrap.dedent(f"""
        import numpy as np, xpnet as xn
        d = np.load({str(tmp_path / 'data.npz')!r})
        c = xn.load_checkpoint({str(tmp_path / 'run.safetensors')!r}, backend="numpy")
        assert c.training["epoch"] == 1 and c.training["step"] == 5, c.training
        h = c.model.fit(d["X"], d["y"], epochs=3, optimizer=c.optimizer, resume=c.training,
                        batch_size=32, verbose=0)
        np.savez({str(tmp_path / 'out.npz')!r}, **c.model.params)
        print(len(h.history["loss"]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    resumed = np.load(tmp_path / "out.npz")
    for k, v in straight.params.items():
        assert resumed[k].tobytes() == v.tobytes(), k


def test_epoch_history_survives_resume(tmp_path):
    X, y = _data()
    full = _model().fit(X, y, epochs=4, optimizer=xn.Adam(1e-2), **FIT)
    m = _model()
    m.fit(X, y, epochs=2, optimizer=xn.Adam(1e-2),
          callbacks=[xn.ModelCheckpoint(tmp_path / "c.safetensors")], **FIT)
    c = xn.load_checkpoint(tmp_path / "c.safetensors", backend="numpy")
    h = c.model.fit(X, y, epochs=4, optimizer=c.optimizer, resume=c.training, verbose=0,
                    batch_size=32)
    assert h.history["loss"] == full.history["loss"]
    assert h.history["accuracy"] == full.history["accuracy"]


def test_resume_past_the_end_is_refused(tmp_path):
    X, y = _data()
    m = _model()
    m.fit(X, y, epochs=2, callbacks=[xn.ModelCheckpoint(tmp_path / "c.safetensors")], **FIT)
    c = xn.load_checkpoint(tmp_path / "c.safetensors", backend="numpy")
    with pytest.raises(ValueError, match="2 epochs are already done"):
        c.model.fit(X, y, epochs=2, resume=c.training, verbose=0)


def test_checkpoint_folder_checked_before_training(tmp_path):
    X, y = _data()
    m = _model()
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(FileNotFoundError, match="does not exist"):
        m.fit(X, y, epochs=1, callbacks=[xn.ModelCheckpoint(tmp_path / "no" / "c.st")], **FIT)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="not writable"):
            m.fit(X, y, epochs=1, callbacks=[xn.ModelCheckpoint(ro / "c.st")], **FIT)
    for k in before:
        np.testing.assert_array_equal(m.params[k], before[k])


def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    X, y = _data()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    m = _model()
    with pytest.raises(OSError, match="not enough free space"):
        m.fit(X, y, epochs=1, callbacks=[xn.ModelCheckpoint(tmp_path / "c.st")], **FIT)
    assert list(tmp_path.iterdir()) == []


def test_history_json_roundtrip(tmp_path):
    X, y = _data()
    h = _model().fit(X, y, epochs=2, **FIT)
    assert json.loads(json.dumps(h.to_dict()))["history"]["loss"] == h.history["loss"]
