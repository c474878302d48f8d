"""``xpnet train --distributed``: one run over the ranks of ``mpiexec``/``srun``.

Rank 0 plans the run (locks and reads ``--out``), loads the data first (a download
happens once), builds or resumes the model and alone prints and writes files; the
other ranks take its settings and model configuration, load the data after it, and
train. Every phase before training ends with `together`: a failure on any rank
becomes the same one-line error, and the same exit status, on every rank, so none is
left waiting. From the start of ``fit`` on, ranks that fail alone end the job instead
(see ``main``).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..backends import get_backend
from ..distributed import DistributedError, SingleProcess, init, local_device
from ..distributed._devices import _first_int
from ._args import EXIT_USAGE, CLIError, classify

__all__ = ["open_comm", "together", "AgreedError", "per_rank_batch", "rank_device",
           "global_steps", "share_plan", "env_rank", "json_asked"]


class AgreedError(CLIError):
    """A failure every rank raises at the same point: each ends with it, none aborts."""


def open_comm(args: argparse.Namespace) -> Any:
    """MPI with ``--distributed`` (exit 2 without mpi4py), else one process."""
    if not getattr(args, "distributed", False):
        return SingleProcess()
    try:
        # no excepthook: main() ends each rank itself (and aborts only when it must)
        return init(require=True, abort_on_error=False)
    except DistributedError as exc:
        raise CLIError(f"--distributed: {exc}", EXIT_USAGE) from None


def together(comm: Any, phase: Callable[[], Any], *, on: str = "all",
             command: str = "train") -> Any:
    """`phase` on the ranks `on`, its value (None elsewhere); a failure: AgreedError on all."""
    runs_here = on == "all" or (on == "root") == comm.is_root
    failure = result = None
    if runs_here:
        try:
            result = phase()
        except Exception as exc:
            failure = classify(exc, command)
    for rank, outcome in enumerate(comm.allgather(failure)):
        if outcome is not None:
            code, message = outcome
            raise AgreedError(message if rank == 0 else f"rank {rank}: {message}", code)
    return result


def per_rank_batch(s: dict[str, Any], saved: dict[str, Any] | None, explicit: set[str],
                   ranks: int) -> int:
    """``--batch-size``, or a resumed run's global batch over `ranks` (exit 2: no even split)."""
    old = (saved or {}).get("ranks", 1)
    if saved is None or "batch_size" in explicit or type(old) is not int or old < 1 \
            or old == ranks:
        return int(s["batch_size"])
    total = int(saved["batch_size"]) * old
    if total % ranks:
        raise CLIError(f"the run being resumed used a global batch of {total} "
                       f"({saved['batch_size']} x {old} ranks), which {ranks} ranks cannot "
                       "split evenly; pass --batch-size N (rows per rank)", EXIT_USAGE)
    return total // ranks


def rank_device(comm: Any, backend: str, explicit: int | None) -> tuple[str, Any]:
    """``(backend name, device)`` for this rank: ``--device``, else its place on the node."""
    name, _, where = backend.partition(":")
    if name == "auto":  # cupy when a GPU is usable, else numpy
        name = get_backend("auto").name
    on_gpu = name == "cupy" or (name == "torch" and where.startswith("cuda"))
    if not on_gpu:
        return name, (where or None)
    try:
        index = local_device(comm, name, explicit)
    except ValueError as exc:
        raise CLIError(f"--device: {exc}", EXIT_USAGE) from None
    if index is None:
        return name, (where or None)
    return name, (index if name == "cupy" else f"cuda:{index}")


def global_steps(n_train: int, batch: int, ranks: int) -> tuple[int, int]:
    """The global batch and the steps per epoch of `ranks` ranks of `batch` rows."""
    total = min(batch * ranks, n_train)
    return total, math.ceil(n_train / total)


def share_plan(comm: Any, plan: Any) -> Any:
    """Rank 0's plan on every rank, without its checkpoint file in ``--out``."""
    shared = comm.bcast(plan if comm.is_root else None)
    return plan if comm.is_root else replace(shared, resume_file=None)


def env_rank() -> int:
    """The rank a launcher gave this process (0 outside one): who reports early errors."""
    rank = _first_int(os.environ, ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                                   "SLURM_PROCID"))
    return 0 if rank is None else rank


def json_asked(args: argparse.Namespace | None) -> bool:
    """--json on the command line: ranks other than 0 run with ``args.json`` cleared."""
    return "--json" in (getattr(args, "argv", None) or ())
