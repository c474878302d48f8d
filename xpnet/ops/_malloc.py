"""Keep freed memory inside the process while training on NumPy (glibc only).

A NumPy training step allocates its activations and gradients afresh and frees
them at the end of the step. With glibc's default, dynamic thresholds, the
heap top is handed back to the kernel as soon as more than a few MiB are free,
and the next step faults the same pages in again: about 2,000 page faults and
5 ms of a 20 ms step at batch 1024 on the 784-512-256-10 net (measured with
``getrusage`` on the benchmark machine).

While ``fit`` runs, `keep_freed_memory` sets glibc's mmap threshold to
32 MiB (the ceiling glibc's own dynamic threshold can reach) and its trim
threshold to 256 MiB, so those pages are reused instead. When the last running
``fit`` ends, `release` gives the free memory back (``malloc_trim``) and
lowers the trim threshold to 32 MiB, so that afterwards at most about 32 MiB of
free memory stays at the heap top. glibc cannot switch its dynamic adjustment
back on, so the process keeps these fixed thresholds after the first ``fit``;
they are close to where the dynamic ones settle once large arrays have been
freed.

These settings are process-wide and outlive the fit, so a library call does not
make them on its own: the tuning applies inside `owned_process` (``xpnet train``,
whose process ends with the command) or with ``XPNET_MALLOC_TUNING=1``. Nothing is
changed when the C library is not glibc, when the user configured malloc already
(``MALLOC_*_`` variables or ``glibc.malloc`` tunables in ``GLIBC_TUNABLES``), or
when ``XPNET_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for the dynamic threshold on 64-bit
TRIM_THRESHOLD = 256 << 20  # while training
TRIM_THRESHOLD_AFTER = 32 << 20  # once no fit is running
_USER_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
              "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX")

_libc: ctypes.CDLL | None = None
_probed = False
_lock = threading.Lock()
_active = 0
_owned = 0  # inside owned_process: the caller owns the process (the xpnet command)


@contextlib.contextmanager
def owned_process() -> Iterator[None]:
    """Within the block the tuning is on by default, as in ``xpnet train``."""
    global _owned
    _owned += 1
    try:
        yield
    finally:
        _owned -= 1


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, ValueError, AttributeError):
        return None
    return libc


def user_configured() -> bool:
    """Whether the environment already sets glibc's malloc parameters."""
    if any(os.environ.get(v) for v in _USER_VARS):
        return True
    return "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def available() -> bool:
    """Whether the C library is glibc, whose thresholds the tuning sets."""
    global _libc, _probed
    if not _probed:
        _libc, _probed = _glibc(), True
    return _libc is not None


def enabled() -> bool:
    """Whether the tuning applies: glibc, no user malloc settings, and asked for or owned."""
    setting = os.environ.get("XPNET_MALLOC_TUNING", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting not in ("1", "true", "yes", "on") and not _owned:
        return False
    if user_configured():
        return False
    return available()


def keep_freed_memory() -> bool:
    """Raise the thresholds for a fit; True if set, then pair it with one `release`."""
    global _active
    if not enabled():
        return False
    assert _libc is not None
    with _lock:
        if _active == 0 and not (_libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                                 and _libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
            return False
        _active += 1
    return True


def release() -> None:
    """End of a fit: when no other fit is running, trim the heap and lower the trim threshold."""
    global _active
    if _libc is None:
        return
    with _lock:
        if _active == 0:
            return
        _active -= 1
        if _active == 0:
            _libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
            _libc.malloc_trim(0)
