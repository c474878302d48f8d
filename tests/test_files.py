"""Files xpnet writes: the umask's mode, an existing file's mode kept, errors naming the file."""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn
from xpnet.cli._output import write_json
from xpnet.datasets import write_idx

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set a umask for the test and put the old one back."""
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


def _save_model(path: Path) -> None:
    xn.save(xn.MLP([3, 2], backend="numpy", seed=0), path)


def _csv_log(path: Path) -> None:
    log = xn.CSVLogger(path)
    xn.MLP([3, 2], backend="numpy").fit(np.zeros((4, 3), np.float32), np.zeros(4, np.int64),
                                        epochs=1, callbacks=[log], verbose=0)


def _atomic_text(path: Path) -> None:
    from xpnet._files import atomic_write_text

    atomic_write_text(path, "hi\n")


WRITERS = {
    "save": (_save_model, "m.safetensors"),
    "CSVLogger": (_csv_log, "log.csv"),
    "write_idx": (lambda p: write_idx(p, np.arange(4, dtype=np.uint8)), "x-idx1-ubyte.gz"),
    "run.json": (lambda p: write_json(p, {"status": "running"}), "run.json"),
    "atomic_write_text": (lambda p: _atomic_text(p), "notes.txt"),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_new_files_follow_the_umask(tmp_path, umask, name):
    write, fname = WRITERS[name]
    for mask, expected in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        umask(mask)
        path = tmp_path / f"{mask:o}-{fname}"
        write(path)
        assert _mode(path) == expected, (name, oct(mask), oct(_mode(path)))


@pytest.mark.parametrize("name", list(WRITERS))
def test_saving_over_a_file_keeps_its_mode(tmp_path, umask, name):
    write, fname = WRITERS[name]
    path = tmp_path / fname
    write(path)
    for mode in (0o644, 0o640, 0o604):
        os.chmod(path, mode)
        write(path)
        assert _mode(path) == mode, (name, oct(mode), oct(_mode(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [fname]  # no temp file left


def _full_disk(monkeypatch) -> None:
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", no_space)


def test_a_full_disk_names_the_file_being_saved(tmp_path, monkeypatch):
    path = tmp_path / "run" / "model.safetensors"
    path.parent.mkdir()
    _save_model(path)
    before = path.read_bytes()
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        _save_model(path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]


def test_csv_logger_full_disk_names_the_log(tmp_path, monkeypatch):
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as info:
        _csv_log(tmp_path / "log.csv")
    assert info.value.filename == str(tmp_path / "log.csv")


def test_stale_temp_files_are_removed_by_the_next_write_young_ones_kept(tmp_path):
    target = tmp_path / "run.json"
    old = tmp_path / ".run.json.0badc0de.tmp"
    young = tmp_path / ".run.json.0fedcba9.tmp"
    other = tmp_path / ".model.safetensors.12345678.tmp"
    for p in (old, young, other):
        p.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600  # xpnet._files.STALE_TEMP_SECONDS
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    write_json(target, {"status": "completed"})
    assert json.loads(target.read_text()) == {"status": "completed"}
    assert not old.exists() and young.exists() and other.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_an_atomic_write_replaces_only_regular_files(tmp_path, kind):
    """Before: os.replace swapped a FIFO, a device node (as root) or a link for the new
    file. Now a target that is not a regular file is refused, naming what it is, and
    nothing is left behind."""
    from xpnet._files import atomic_write_bytes

    target, victim = tmp_path / "out.png", tmp_path / "victim.txt"
    victim.write_text("keep me")
    if kind == "symlink":
        target.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    with pytest.raises(OSError, match={"symlink": "is a symbolic link", "fifo": "is a FIFO",
                                       "folder": "is a folder"}[kind]):
        atomic_write_bytes(target, b"png bytes")
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "victim.txt"]
    mode = os.lstat(target).st_mode
    assert {"symlink": stat.S_ISLNK, "fifo": stat.S_ISFIFO, "folder": stat.S_ISDIR}[kind](mode)
