# No NumPy here: this module only moves bytes over HTTP into verified files.
"""One verified, atomic HTTP download (internal to [`xpnet.datasets`][]).

`fetch_verified` streams a URL into a uniquely named temporary file in the
destination folder, hashing on the way; it fails on an HTTP error, a refused
connection, a timeout (per read, and a total deadline for the whole file), a body
shorter than its ``Content-Length`` (a connection closed mid-transfer), a size other
than the expected one, or a SHA-256 mismatch, and then deletes the temporary file. Only
a verified file is fsynced and renamed onto its final name with `os.replace`. That
rename is atomic on one file system, so a reader, or a second process downloading the
same file at the same moment, sees either no file or a complete verified one: two
concurrent downloads each rename their own complete copy, and the last rename wins with
identical bytes. A file whose SHA-256 differs is still taken when ``content_ok`` accepts
it (a re-compressed copy of the same content); when the target cannot be replaced, a copy
another process already put in place is kept if ``content_ok`` accepts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._files import create_temp, fsync_folder

__all__ = ["MirrorFailed", "fetch_verified"]

# Without a Content-Length or a known size, refuse to store more than this.
MAX_DOWNLOAD_BYTES = 256 * 2**20
_CHUNK = 1 << 16

# The whole download of one file must end within DEADLINE_BASE_S + bytes / MIN_BYTES_PER_S
# (11 min for MNIST's 9.9 MB): the per-read timeout alone lets a sender that trickles a
# byte now and then hold the command forever. Kept hand-written: pooch (scipy,
# scikit-image) passes only requests' per-read timeout and has no total deadline either.
DEADLINE_BASE_S = 60.0
MIN_BYTES_PER_S = 16_000.0


class MirrorFailed(Exception):
    """One URL failed; the message says why in a few words."""


def _explain(exc: BaseException, timeout: float) -> str:
    import http.client
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
        return f"timed out after {timeout:g} s"  # socket.timeout is TimeoutError
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return f"cannot connect: {reason.strerror or reason}" if isinstance(reason, OSError) \
            else str(reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early: truncated transfer ({len(exc.partial)} bytes read)"
    if isinstance(exc, ConnectionError):
        return f"connection failed: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _progress_bar(enabled: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; a rich progress bar on stderr when enabled."""
    if not enabled:
        yield lambda n: None
        return
    # rich is a dependency of xpnet; imported lazily to keep `import xpnet` fast.
    from rich import progress as rp
    from rich.console import Console
    from rich.errors import LiveError

    bar = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.DownloadColumn(),
                      rp.TransferSpeedColumn(), rp.TimeRemainingColumn(),
                      console=Console(stderr=True), transient=False)
    try:
        bar.start()
    except LiveError:  # another live display is active (e.g. a concurrent download)
        yield lambda n: None
        return
    try:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()


def fetch_verified(url: str, target: Path, *, sha256: str, size: int | None,
                   content_ok: Callable[[Path], bool], timeout: float, progress: bool,
                   label: str) -> None:
    """Fetch `url` to `target` if `sha256` or `content_ok` accepts it, else raise MirrorFailed."""
    # Imported here: urllib.request and http.client are only needed to download.
    import http.client
    import urllib.request

    tmp_name: str | None = None
    start = time.monotonic()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "xpnet"})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            announced: int | None = None
            with contextlib.suppress(TypeError, ValueError):
                announced = int(resp.headers.get("Content-Length"))
            if announced is not None and size is not None and announced != size:
                raise MirrorFailed(f"server announces {announced} bytes, the published file "
                                   f"has {size}")
            limit = size or announced or MAX_DOWNLOAD_BYTES
            deadline = DEADLINE_BASE_S + limit / MIN_BYTES_PER_S
            fd, tmp_path = create_temp(target, ".part")
            tmp_name = str(tmp_path)
            with os.fdopen(fd, "wb") as tmp:
                with _progress_bar(progress, label, announced) as advance:
                    received, digest = _copy(resp, tmp, limit, start, deadline, advance)
                tmp.flush()
                os.fsync(tmp.fileno())
        if announced is not None and received != announced:
            raise MirrorFailed(f"truncated transfer: got {received} of {announced} bytes")
        if size is not None and received != size:
            raise MirrorFailed(f"got {received} bytes, the published file has {size}")
        if digest != sha256 and not content_ok(Path(tmp_name)):
            raise MirrorFailed(f"SHA-256 mismatch: expected {sha256}, got {digest}")
        _publish(tmp_name, target, content_ok)
        tmp_name = None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise MirrorFailed(_explain(exc, timeout)) from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _copy(resp: Any, out: Any, limit: int, start: float, deadline: float,
          advance: Callable[[int], None]) -> tuple[int, str]:
    """Copy at most `limit` bytes within `deadline` s of `start`; return (size, SHA-256)."""
    h = hashlib.sha256()
    received = 0
    while chunk := resp.read(_CHUNK):
        received += len(chunk)
        if time.monotonic() - start > deadline:
            raise MirrorFailed(
                f"too slow: {received} of {limit} bytes after the deadline of "
                f"{deadline:g} s (at least {MIN_BYTES_PER_S / 1e3:g} kB/s expected)")
        if received > limit:
            raise MirrorFailed(f"server sent more than the expected {limit} bytes")
        out.write(chunk)
        h.update(chunk)
        advance(len(chunk))
    return received, h.hexdigest()


def _publish(tmp_name: str, target: Path, content_ok: Callable[[Path], bool]) -> None:
    """Atomically move a verified temporary file onto target."""
    try:
        os.replace(tmp_name, target)
    except PermissionError:
        # Windows refuses to replace a file another process holds open. If that process
        # already put a verified copy there, ours is redundant.
        if not (target.is_file() and content_ok(target)):
            raise
        os.unlink(tmp_name)
        return
    fsync_folder(target.parent)  # make the rename itself durable
