"""One ``xpnet train`` per output folder: an exclusive lock on ``<out>/.xpnet.lock``.

The lock is an OS file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows)
taken without waiting, so a second run into a folder in use is refused at once (exit
status 2) with the pid, host, start time and command of the run holding it, which the
holder writes into the lock file. A run removes the file when it ends. The operating
system drops the lock when its process dies, however it dies, so a file left behind by a
run killed with ``SIGKILL`` never blocks the next one: it is there, naming its dead
holder, but nobody holds it. The next run takes it over and reports the stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import stat
import sys
import time
from pathlib import Path
from typing import Any

from ._args import EXIT_DATA, EXIT_USAGE, CLIError

__all__ = ["LOCK_FILE", "RunLock"]

#: The lock file inside a run folder.
LOCK_FILE = ".xpnet.lock"
_WIN_LOCK_OFFSET = 1 << 20  # Windows locks a byte past the holder's description


def _lock(fd: int, take: bool = True) -> bool:
    """Take (or drop) the exclusive lock without waiting; False when another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK if take else msvcrt.LK_UNLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if take else fcntl.LOCK_UN)
    except BlockingIOError:
        return False
    return True


def _describe(info: dict[str, Any] | None) -> str:
    if info is None:
        return "another process (it has not yet written its pid)"
    where = "" if info.get("host") == platform.node() else f" on {info.get('host')}"
    return (f"pid {info.get('pid')}{where}, started {info.get('started_at')}: "
            f"{info.get('command')}")


class RunLock:
    """A run folder's exclusive lock until `release` (exit 2: held elsewhere, 3: uncreatable)."""

    def __init__(self, folder: Path, command: str):
        self.folder = folder
        self.path = folder / LOCK_FILE
        self.created = not folder.exists()
        self._fd: int | None = None
        for _ in range(5):  # retry if the file was replaced between opening and locking
            fd = self._open()
            if not _lock(fd):
                other = self._read_holder(fd, wait=True)
                os.close(fd)
                raise CLIError(f"{folder} is in use by another xpnet run "
                               f"({_describe(other)}); wait for it to finish, or choose "
                               "another --out", EXIT_USAGE)
            if self._same_file(fd):
                self._fd = fd
                break
            os.close(fd)
        else:  # pragma: no cover - another process keeps replacing the lock file
            raise CLIError(f"cannot lock {self.path}: it keeps being replaced", EXIT_DATA)
        self.stale = self._read_holder(fd, wait=False)
        holder = {"pid": os.getpid(), "host": platform.node(),
                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(holder).encode("utf-8"))

    def _open(self) -> int:
        """The lock file, opened without following a link or blocking on a FIFO (else exit 2)."""
        flags = (os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            if self.path.is_symlink() or exc.errno == getattr(errno, "ELOOP", None):
                raise CLIError(f"{self.path} is a symbolic link; xpnet never writes through "
                               "links: remove it, or choose another --out", EXIT_USAGE) from None
            raise CLIError(f"cannot create the output folder {self.folder} or its lock file: "
                           f"{exc.strerror or exc}", EXIT_DATA) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CLIError(f"{self.path} is not a regular file (a FIFO, a device or a "
                           "folder); remove it, or choose another --out", EXIT_USAGE)
        return fd

    def _same_file(self, fd: int) -> bool:
        """Whether the locked file is still the one at self.path (not removed meanwhile)."""
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            return False

    def _read_holder(self, fd: int, *, wait: bool) -> dict[str, Any] | None:
        """The holder in ``fd`` (at most 64 KiB); one that just locked gets 0.5 s to write it."""
        for _ in range(10 if wait else 1):
            with contextlib.suppress(OSError, ValueError):  # empty or not yet whole
                os.lseek(fd, 0, os.SEEK_SET)
                info = json.loads(os.read(fd, 1 << 16).decode("utf-8"))
                if isinstance(info, dict) and "pid" in info:
                    return info
            if wait:
                time.sleep(0.05)
        return None

    def release(self) -> None:
        """Unlock and remove the lock file, and the folder if the lock made it; idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # removed while still locked: a run waiting on
            if self._same_file(fd):         # the old file sees it replaced and retries
                self.path.unlink()
        if self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when nothing was written
        with contextlib.suppress(OSError):
            _lock(fd, take=False)
        os.close(fd)
