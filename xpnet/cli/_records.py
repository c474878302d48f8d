"""The output folder of ``xpnet train`` and its run record, ``run.json``.

A run folder holds ``model.safetensors`` (rewritten by a checkpoint callback after every
epoch), ``run.json`` (`new_record`, kept in step by `RunRecorder`) and, with
``--plot``, ``curves.png``. Default folders are ``runs/<dataset>-<date>-<time>`` with a
``runs/latest`` link to the newest. The schema is documented in ``docs/cli.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

from ._args import CURVES_FILE, EXIT_DATA, MODEL_FILE, RUN_FILE, CLIError
from ._output import write_json

__all__ = ["RUN_SCHEMA", "RESUME_FILE", "timestamp", "default_out", "make_output_folder",
           "file_identity", "read_previous_record", "new_record", "RunRecorder",
           "recorder_callback"]

#: Version of the run.json layout (and of the ``xpnet_cli`` checkpoint metadata).
RUN_SCHEMA = 1

#: With ``--early-stopping``: the last epoch's full state (weights, optimizer, position),
#: what ``--resume`` continues from; ``model.safetensors`` holds the best epoch.
RESUME_FILE = "last.safetensors"


def timestamp() -> str:
    """The local time with UTC offset, e.g. ``'2025-01-01T12:00:00+0100'``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ----------------------------------------------------------------------------- folders
def default_out(dataset_name: str, root: Path = Path("runs")) -> Path:
    """Create ``<root>/<dataset>-<YYYYmmdd-HHMMSS>`` atomically (``-2``... if taken; exit 3)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset_name).strip("-.") or "run"
    base = root / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 2
    while not _mkdir(out, exist_ok=False):
        out, k = base.with_name(f"{base.name}-{k}"), k + 1
    return out


def _mkdir(out: Path, *, exist_ok: bool) -> bool:
    """Create `out` and its parents (False: it exists, without `exist_ok`); exit 3 if it cannot."""
    try:
        out.mkdir(parents=True, exist_ok=exist_ok)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and not exist_ok:
            return False
        raise CLIError(f"cannot create the output folder {out}: {exc.strerror}",
                       EXIT_DATA) from None
    return True


def _point_latest(out: Path) -> None:
    """Make runs/latest a symlink to the newest default run folder (best effort)."""
    link = out.parent / "latest"
    if link.exists() and not link.is_symlink():
        return  # a real folder called latest: leave it alone
    tmp = out.parent / f".latest.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(out.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except (OSError, NotImplementedError):  # e.g. Windows without symlink rights
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def file_identity(path: Path) -> tuple[int, int, int, int] | None:
    """Device, inode, mtime and size of `path`, or None; an atomic save changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def make_output_folder(out: Path, *, latest: bool, overwrite: bool
                       ) -> dict[str, tuple[int, int, int, int] | None] | None:
    """Create `out` (exit 3); with `overwrite`, the identities of the earlier run's files."""
    _mkdir(out, exist_ok=True)
    if latest:
        _point_latest(out)
    return {name: file_identity(out / name) for name in (MODEL_FILE, RESUME_FILE)} \
        if overwrite else None


# ----------------------------------------------------------------------------- run.json
def read_previous_record(out: Path) -> Any:
    """The parsed run.json in `out`, or None when missing or unreadable."""
    if not (out / RUN_FILE).is_file():
        return None
    try:
        record = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None  # a damaged record is ignored


def new_record(*, command: str, settings: dict[str, Any], previous: Any,
               resume: dict[str, Any] | None, resuming: bool, backend: Any,
               dataset: dict[str, Any], model: Any, optimizer: Any, steps_per_epoch: int,
               batch_size: int, saving: bool) -> dict[str, Any]:
    """The record of a starting run (``status`` ``'running'``), filled in by `RunRecorder`."""
    from .._version import __version__
    from ..backends import versions

    prev = previous or {}  # carried over: the first command, start time and resumes
    # a hand-edited or damaged record: fields of the wrong type are not carried over
    earlier = prev.get("resumes")
    earlier = [r for r in earlier if isinstance(r, dict)] if isinstance(earlier, list) else []
    first, started = prev.get("command"), prev.get("started_at")
    return {
        "schema": RUN_SCHEMA,
        "status": "running",
        "command": first if isinstance(first, str) and first else command,
        "settings": settings,
        "seed": settings["seed"],
        "started_at": started if isinstance(started, str) and started else timestamp(),
        "finished_at": None,
        "resumes": [*earlier, {"at": timestamp(), "command": command,
                               "from_epoch": int((resume or {}).get("epoch", 0))}]
        if resuming else [],
        "versions": {"xpnet": __version__, "python": platform.python_version(),
                     **versions()},
        "platform": {"system": platform.platform(), "machine": platform.machine(),
                     "cpus": os.cpu_count()},
        "backend": {"name": backend.name, "device": backend.device_name},
        "dataset": dataset,
        "model": {"config": model.get_config(), "num_params": model.num_params},
        "optimizer": repr(optimizer),
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "epochs": settings["epochs"],
        "epochs_done": 0,
        "history": {},
        "test": None,
        "train_seconds": None,
        "samples_per_second": None,
        "files": {"model": MODEL_FILE if saving else None,
                  "run": RUN_FILE if saving else None, "curves": None},
    }


class RunRecorder:
    """Keeps run.json in step with the checkpoint; an overwritten run stays until the first save."""

    def __init__(self, path: Path | None, record: dict[str, Any],
                 history: dict[str, Any] | None,
                 replaces: dict[str, tuple[int, int, int, int] | None] | None = None):
        self.path = path
        self.record = record
        self._replaces = replaces if path is not None and replaces is not None \
            and any(v is not None for v in replaces.values()) else None
        hist = history or {}
        n = max((len(v) for v in hist.values()), default=0)
        self.record["history"] = {"epoch": list(range(1, n + 1)),
                                  **{k: list(v) for k, v in hist.items()}}
        self.record["epochs_done"] = n

    def epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Append one epoch's logs to the history and rewrite the file."""
        h = self.record["history"]
        h["epoch"].append(epoch + 1)
        for k, v in logs.items():
            h.setdefault(k, []).append(v)
        self.record["epochs_done"] = epoch + 1
        self.write()

    @property
    def pending(self) -> bool:
        """True while an earlier run (``--overwrite``) is kept: no model saved yet."""
        if self._replaces is None or self.path is None:
            return False
        folder = self.path.parent
        earlier = {name: ident for name, ident in self._replaces.items()
                   if file_identity(folder / name) == ident}
        if len(earlier) == len(self._replaces):
            return True
        self._replaces = None  # this run has saved: what is left of the earlier one goes
        for name in (*(n for n, ident in earlier.items() if ident is not None), CURVES_FILE):
            (folder / name).unlink(missing_ok=True)
        return False

    def write(self) -> None:
        """Write the record atomically (nothing without a path, nor while `pending`)."""
        if self.path is not None and not self.pending:
            write_json(self.path, self.record)


def recorder_callback(recorder: RunRecorder) -> Any:
    """A Callback that calls ``recorder.epoch_end`` after each epoch."""
    from ..callbacks import Callback

    class RunRecord(Callback):
        rank_zero_only = True  # a write the other ranks wait for (announced)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            recorder.epoch_end(epoch, logs)

    return RunRecord()
