"""The ``xpnet`` command: ``train``, ``evaluate``, ``predict``, ``export``, ``info``, ``download``.

Run ``xpnet --help`` or see ``docs/cli.md``. `main` is the entry point of both the
``xpnet`` console script and ``python -m xpnet``; it returns the exit code (see
`EXIT_CODES`) instead of raising, so it can also be called from Python.

Human-readable progress and the ``train`` summary go to standard error; the results of
``evaluate``, ``predict`` and ``info`` go to standard output, and with ``--json`` standard
output holds exactly one JSON object and nothing else.

Each command is one handler, ``cmd_<command>(args) -> int``: ``args`` is the
``argparse.Namespace`` that `build_parser` parses for that command, the result is the
exit status (0 when the command did its job), and a failure the user can fix is raised
as `CLIError` with its exit status, which `main` reports as one line.

One module per job:

================  ================================================================
``_args``         defaults, exit codes (an exception's too), flags and checks
``_settings``     ``train`` settings: defaults lookup, resume rules, optimizer, split
``_io``           reading datasets, saved models and their metadata
``_inputs``       reading ``predict`` inputs into one block, within the data cap
``_tables``       tables (CSV, TSV, Parquet, .npz of X and y): train, evaluate, predict
``_confusion``    ``evaluate``'s per-class counts and confusion matrix
``_records``      the run folder and ``run.json``
``_runlock``      one ``train`` per output folder (an exclusive lock)
``_distributed``  ``train --distributed``: phases agreed by every rank, rank 0 writes
``_plots``        training curves and confusion matrix PNGs
``_output``       consoles, styled text, JSON
``_progress``     ``train``'s bar and per-epoch lines, fitted to the terminal
``train``         ``xpnet train``
``evaluate``      ``xpnet evaluate`` and ``xpnet predict``
``export``        ``xpnet export`` (ONNX)
``info``          ``xpnet info`` and ``xpnet download``
================  ================================================================

SIGTERM stops a command as Ctrl-C does, with exit status 128 + the signal number: the
command's guard lives beside ``fit``'s, in `xpnet.training.interrupt`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from ..training.interrupt import _exit_status
from ._args import (
    DEFAULTS,
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    build_parser,
)
from ._args import classify as _classify
from ._distributed import env_rank, json_asked
from ._output import print_json, safe_text
from .evaluate import cmd_evaluate, cmd_predict
from .export import cmd_export
from .info import cmd_download, cmd_info
from .train import cmd_train

__all__ = ["main", "build_parser", "DEFAULTS", "EXIT_CODES"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
    "info": cmd_info, "download": cmd_download, "export": cmd_export}


#: NumPy's floating-point warnings (overflow, invalid value, divide by zero, underflow).
_FLOAT_WARNINGS = r"(overflow|invalid value|divide by zero|underflow) encountered"


def _report(code: int, message: str, *, as_json: bool, status: str = "error") -> int:
    """One line on standard error; with --json also one JSON object on standard output."""
    # on one line, control characters escaped (it may quote a file)
    line = safe_text(" ".join(part.strip() for part in str(message).splitlines()
                              if part.strip()))
    sys.stderr.write(f"xpnet: {'error: ' if status == 'error' else ''}{line}\n")
    sys.stderr.flush()
    if as_json:
        try:
            print_json({"status": status, "exit_code": code, "message": line})
        except CLIError as exc:  # standard output cannot be written either (a full disk)
            sys.stderr.write(f"xpnet: error: {exc}\n")
    return code


def _rank(args: argparse.Namespace | None) -> tuple[int, int]:
    """This process's rank and the job's size under ``train --distributed`` (else 0, 1)."""
    comm = getattr(args, "comm", None)
    if comm is not None:
        return comm.rank, comm.size
    if getattr(args, "distributed", False) or (args is None and "--distributed" in sys.argv):
        return env_rank(), 2
    return 0, 1


def _end_rank(code: int, message: str, args: argparse.Namespace | None, *,
              as_json: bool) -> int:
    """Report a failure once per job: rank 0 for agreed ones, the failing rank otherwise."""
    # a rank that failed alone while the others train names itself and ends the job
    # (MPI_Abort): the others are waiting in a collective for it
    rank, size = _rank(args)
    alone = bool(getattr(args, "rank_failure", False))
    if rank != 0 and not alone:
        return code  # every rank failed the same way; rank 0 says so
    if rank != 0:
        message = f"rank {rank} of {size}: {message}"
        # rank 0 prints the JSON of the job; the job ends before it can
        as_json = json_asked(args)
    code = _report(code, message, as_json=as_json)
    comm = getattr(args, "comm", None)
    if alone and comm is not None and comm.size > 1:
        comm.abort(code, f"ending every rank of the job because rank {rank} failed")
    return code


def _wants_json(argv: list[str], args: argparse.Namespace | None) -> bool:
    """--json was given (before parsing succeeds, any '--json' word counts)."""
    return bool(getattr(args, "json", False)) if args is not None else "--json" in argv


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpnet`` command and return its exit status.

    Every failure is one line on standard error, ``xpnet: error: <message>``; with
    ``--json`` standard output then holds exactly one JSON object,
    ``{"status": "error", "exit_code": N, "message": "..."}`` (``"status":
    "interrupted"`` after Ctrl-C or SIGTERM).

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success; see `EXIT_CODES` for the others.

    Examples
    --------
    >>> from xpnet.cli import main
    >>> main(["evaluate", "no-such-model.safetensors", "--json"])  # doctest: +ELLIPSIS
    {"status": "error", "exit_code": 3, "message": "model file no-such-model.safetensors ..."}
    3
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args: argparse.Namespace | None = None
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        args.argv = argv
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        handler = _COMMANDS[args.command]
        with warnings.catch_warnings():
            if not debug:
                # the array library's floating-point warnings while a run diverges would
                # bury the one-line error; fit() detects non-finite values itself. Only
                # those: any other RuntimeWarning (numba's fallback...) is still shown
                warnings.filterwarnings("ignore", _FLOAT_WARNINGS, RuntimeWarning)
            return handler(args)
    except KeyboardInterrupt as exc:
        if debug:
            traceback.print_exc()
        if _rank(args)[0] != 0:
            return _exit_status(exc)
        return _report(_exit_status(exc), "interrupted", as_json=_wants_json(argv, args),
                       status="interrupted")
    except SystemExit as exc:  # rich exits this way when the reader of stdout goes away
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except BrokenPipeError:  # e.g. `xpnet info | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        return EXIT_OK
    except Exception as exc:
        code, message = _classify(exc, getattr(args, "command", None))
        if debug:
            traceback.print_exc()
        return _end_rank(code, message, args, as_json=_wants_json(argv, args))
