"""How a failed command ends: its exit status and its one-line message."""

from __future__ import annotations

from ._args import EXIT_BACKEND, EXIT_DATA, EXIT_FAILURE, CLIError

__all__ = ["classify"]


def classify(exc: BaseException, command: str | None = None) -> tuple[int, str]:
    """Exit status and one-line message for an exception that ended `command`."""
    from ..backends import BackendError
    from ..checkpoint import CheckpointError
    from ..datasets import DatasetError
    from ..training import NonFiniteLossError

    if isinstance(exc, CLIError):
        return exc.code, str(exc)
    if isinstance(exc, BackendError):
        return EXIT_BACKEND, f"{exc}; run `xpnet info` to see what is usable, or pass " \
                             "--backend numpy"
    if isinstance(exc, (DatasetError, CheckpointError)):
        return EXIT_DATA, str(exc)
    if isinstance(exc, NonFiniteLossError):
        return EXIT_FAILURE, f"training diverged: {exc}"
    if isinstance(exc, MemoryError):
        advice = "lower --batch-size or --hidden" if command == "train" else \
            "give fewer or smaller inputs, or use a machine with more memory"
        return EXIT_FAILURE, f"out of memory ({exc or type(exc).__name__}); {advice}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return EXIT_DATA, f"{where}{exc.strerror or exc}"
    return EXIT_FAILURE, f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
