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
    """Delete temp files of earlier writes to `path` that were killed mid-write.

    Parameters
    ----------
    path : str or os.PathLike
        The target file; its temp files are ``.<name>.<random>.tmp`` beside it.
    older_than : float, optional
        Only files last modified more than this many seconds ago are removed.

    Returns
    -------
    int
        The number of files removed.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import remove_stale_temps
    >>> with tempfile.TemporaryDirectory() as d:
    ...     old = Path(d) / ".m.safetensors.1a2b.tmp"
    ...     _ = old.write_bytes(b"partial")
    ...     os.utime(old, (0, 0))
    ...     remove_stale_temps(Path(d) / "m.safetensors")
    1
    """
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
    """Create a new temp file ``.<name>.<random><suffix>`` beside `path`, for writing.

    Its mode is ``0o666`` less the umask, or `path`'s own mode when `path` exists, so
    that renaming it over `path` gives the file the mode users expect.

    Parameters
    ----------
    path : str or os.PathLike
        The file the temp file will replace; its folder must exist.
    suffix : str, optional
        The temp file's suffix.

    Returns
    -------
    (int, pathlib.Path)
        An open file descriptor (write only) and the temp file's path. The caller closes
        and renames or removes it; `atomic_open` does all of that.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import create_temp
    >>> with tempfile.TemporaryDirectory() as d:
    ...     old = os.umask(0o027)
    ...     fd, tmp = create_temp(Path(d) / "data.gz", ".part")
    ...     _ = os.umask(old)
    ...     os.close(fd)
    ...     tmp.name.startswith(".data.gz."), tmp.suffix, oct(tmp.stat().st_mode & 0o777)
    (True, '.part', '0o640')
    """
    path = Path(path)
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None
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
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder whose entries changed.

    Examples
    --------
    >>> import tempfile
    >>> from xpnet._files import fsync_folder
    >>> with tempfile.TemporaryDirectory() as d:
    ...     fsync_folder(d)
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _naming(exc: OSError, path: Path, tmp: Path | None) -> OSError:
    """`exc` with the target as its filename (a full disk names the file being saved)."""
    if exc.errno is None or exc.filename not in (None, str(tmp), tmp):
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def _kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (for messages)."""
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode)
            or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def check_regular(path: str | os.PathLike[str]) -> None:
    """Refuse to read anything but a regular file (links are followed).

    Reading a FIFO blocks until a writer comes, perhaps forever; a device such as
    ``/dev/zero`` never ends. Both are refused before they are opened.

    Parameters
    ----------
    path : str or os.PathLike
        The file about to be read.

    Raises
    ------
    FileNotFoundError
        It does not exist.
    OSError
        It is a FIFO, a device, a folder or a socket (errno ``EINVAL``), named with
        what it is.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import check_regular
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.mkfifo(Path(d) / "x.npy")
    ...     try:
    ...         check_regular(Path(d) / "x.npy")
    ...     except OSError as exc:
    ...         print(exc.strerror)
    is a FIFO, not a regular file: xpnet reads only regular files
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        what = _kind(mode)
        raise OSError(errno.EINVAL, f"is {what}, not a regular file: xpnet reads only "
                      "regular files" if what != "not a regular file"
                      else "is not a regular file: xpnet reads only regular files", str(path))


def check_target(path: str | os.PathLike[str]) -> None:
    """Refuse to replace anything but a regular file: a link, a FIFO, a device or a folder
    at ``path`` raises ``OSError`` naming it (nothing is written through a link, and
    ``os.replace`` never swaps a device node or a FIFO for a file).

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import check_target
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.symlink(Path(d) / "elsewhere", Path(d) / "out.png")
    ...     try:
    ...         check_target(Path(d) / "out.png")
    ...     except OSError as exc:
    ...         print(exc.strerror)
    is a symbolic link: xpnet writes only over regular files
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    what = _kind(mode)
    raise OSError(errno.EEXIST, f"is {what}: xpnet writes only over regular files"
                  if what != "not a regular file" else "is not a regular file", str(path))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, suffix: str = ".tmp"
                ) -> Iterator[BinaryIO]:
    """Open a binary file that replaces `path` atomically when the block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        The target; its folder must exist.
    suffix : str, optional
        Suffix of the temp file (``.tmp``; downloads use ``.part``).

    Yields
    ------
    BinaryIO
        The temp file, open for writing. Leave the block with an exception to discard it.

    Raises
    ------
    OSError
        From creating, writing, syncing or renaming, with ``filename`` set to `path`;
        the temp file is removed and an earlier `path` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import atomic_open
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_open(Path(d) / "a.bin") as f:
    ...         _ = f.write(b"hello")
    ...     print(sorted(p.name for p in Path(d).iterdir()))
    ['a.bin']
    """
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
    except OSError as exc:
        named = _naming(exc, path, tmp)
        if named is exc:
            raise
        raise named from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_open`).

    Parameters
    ----------
    path : str or os.PathLike
        The target; its folder must exist.
    data : bytes
        The whole new content.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import atomic_write_bytes
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "a.txt"
    ...     atomic_write_bytes(p, b"hi")
    ...     os.chmod(p, 0o640)
    ...     atomic_write_bytes(p, b"again")  # keeps the file's mode
    ...     p.read_bytes(), oct(p.stat().st_mode & 0o777)
    (b'again', '0o640')
    """
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `atomic_open`).

    Parameters
    ----------
    path : str or os.PathLike
        The target; its folder must exist.
    text : str
        The whole new content.
    encoding : str, optional
        Default UTF-8.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xpnet._files import atomic_write_text
    >>> with tempfile.TemporaryDirectory() as d:
    ...     atomic_write_text(Path(d) / "log.csv", "epoch,loss\\n1,0.5\\n")
    ...     print((Path(d) / "log.csv").read_text(), end="")
    epoch,loss
    1,0.5
    """
    atomic_write_bytes(path, text.encode(encoding))


def check_writable(folder: str | os.PathLike[str], need_bytes: int = 0) -> None:
    """Fail early, with a clear message, when `folder` cannot take a file of `need_bytes`.

    Creates and removes a small probe file (catches read-only file systems that
    ``os.access`` misses) and compares the free space with twice `need_bytes` (a save
    writes its temp file before the old file goes).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder files will be written to.
    need_bytes : int, optional
        The size of one file; 0 skips the free-space check.

    Raises
    ------
    PermissionError
        The folder is not writable.
    OSError
        Not enough free space (errno ``ENOSPC``); the message names the folder.

    Examples
    --------
    >>> import tempfile
    >>> from xpnet._files import check_writable
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_writable(d, 1000)  # silent when there is room
    """
    import errno
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
