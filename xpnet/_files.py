"""Atomic file writes: the one implementation every writer in xpnet uses.

Checkpoints, ``run.json``, CSV logs, plots, IDX files and downloads all go through
`atomic_open` (or its two short forms, `atomic_write_bytes` and
`atomic_write_text`):

1. a temp file ``.<name>.<random>.tmp`` is created **in the target's folder** (same file
   system, so the rename below is atomic), with mode ``0o666`` so that the process umask
   applies exactly as for any file the user creates (``0o644`` under the usual ``022``);
   when the target already exists, the temp file takes the target's mode instead, so
   saving over a file never changes who may read it;
2. the data is written, flushed and ``os.fsync``\\ ed;
3. ``os.replace`` moves it over the target: readers see the old file or the new one,
   never a mix;
4. the folder is fsynced, so the rename itself survives a power cut.

Any exception in steps 1 to 3 (a full disk, a permission error, ``KeyboardInterrupt``)
removes the temp file and re-raises; the previous file is untouched. An ``OSError`` is
re-raised with ``filename`` set to the *target* (not the temp file), so a full disk reads
``[Errno 28] No space left on device: 'run/model.safetensors'``.

Temp files of a write killed by ``SIGKILL`` or a power cut cannot be cleaned up by the
process itself; the next write to the same target removes those older than an hour
(`remove_stale_temps`; a younger one may belong to a write still in flight in
another process).

Reads and writes touch regular files only: `check_regular` (before a read: a FIFO blocks
until a writer comes, ``/dev/zero`` never ends) and `check_target` (before a write: nothing
is written through a link, and ``os.replace`` never swaps a device node or a FIFO).
`check_writable` probes a folder with a real temp file (``os.access`` misses read-only
file systems) and wants twice the file's size free (the temp file exists beside the old).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "check_regular",
           "check_target", "check_writable",
           "create_temp", "fsync_folder", "remove_stale_temps", "STALE_TEMP_SECONDS"]

#: Temp files of an earlier write to the same target older than this are removed.
STALE_TEMP_SECONDS = 3600.0

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | \
    getattr(os, "O_CLOEXEC", 0)


def remove_stale_temps(path: str | os.PathLike[str],
                       older_than: float = STALE_TEMP_SECONDS) -> int:
    """Delete the temp files beside `path` older than `older_than` seconds; return how many."""
    path = Path(path)
    now, removed = time.time(), 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def create_temp(path: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, Path]:
    """Create ``.<name>.<random><suffix>`` beside `path`; return (write-only fd, its path)."""
    path = Path(path)
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None
    # not tempfile.mkstemp: it creates mode 0o600, and the umask cannot be read without a race
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, _FLAGS, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        if mode is not None and hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, mode)
            except OSError:
                os.close(fd)
                os.unlink(tmp)
                raise
        return fd, tmp
    raise FileExistsError(f"no free temp file name beside {path}")  # pragma: no cover


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: What a file is, in words, by the type letter `stat.filemode` gives it (none for a regular file).
_KINDS = {"l": "a symbolic link", "d": "a folder", "p": "a FIFO", "c": "a device", "b": "a device",
          "s": "a socket"}


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raise OSError (EINVAL) naming what `path` is unless it is a regular file."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        what = _KINDS.get(stat.filemode(mode)[0])
        raise OSError(errno.EINVAL, (f"is {what}, not" if what else "is not")
                      + " a regular file: xpnet reads only regular files", str(path))


def check_target(path: str | os.PathLike[str]) -> None:
    """Raise OSError naming what `path` is (a link too) unless it is absent or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        what = _KINDS.get(stat.filemode(mode)[0])
        raise OSError(errno.EEXIST, f"is {what}: xpnet writes only over regular files" if what
                      else "is not a regular file", str(path))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, suffix: str = ".tmp"
                ) -> Iterator[BinaryIO]:
    """Yield a binary temp file that replaces `path` when the block ends without an error."""
    path = Path(path)
    check_target(path)
    remove_stale_temps(path)
    tmp: Path | None = None
    try:
        fd, tmp = create_temp(path, suffix)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:  # named after the target: a full disk names the file being saved
        if exc.errno is None or exc.filename not in (None, str(tmp), tmp):
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def check_writable(folder: str | os.PathLike[str], need_bytes: int = 0) -> None:
    """PermissionError if `folder` is read-only, OSError (ENOSPC) if under 2 x `need_bytes` free."""
    import shutil

    folder = Path(folder)
    try:
        fd, probe = create_temp(folder / "xpnet-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"folder {folder} is not writable: {exc.strerror or exc}"
                              ) from None
    free = shutil.disk_usage(folder).free
    if need_bytes and free < 2 * need_bytes:
        raise OSError(errno.ENOSPC, f"not enough free space in {folder}: a checkpoint needs "
                      f"about {2 * need_bytes / 1e6:.1f} MB, {free / 1e6:.1f} MB free")
