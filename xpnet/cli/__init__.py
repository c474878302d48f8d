"""The ``xpnet`` command: ``train``, ``evaluate``, ``predict``, ``export``, ``info``, ``download``.

Run ``xpnet --help`` or see ``docs/cli.md``. :func:`main` is the entry point of both the
``xpnet`` console script and ``python -m xpnet``; it returns the exit code (see
:data:`EXIT_CODES`) instead of raising, so it can also be called from Python.

Human-readable progress and the ``train`` summary go to standard error; the results of
``evaluate``, ``predict`` and ``info`` go to standard output, and with ``--json`` standard
output holds exactly one JSON object and nothing else.

One module per job:

============  ================================================================
``_args``     defaults, exit codes, flags and their value checks
``_settings`` ``train`` settings: defaults lookup, resume rules, optimizer, split
``_io``       reading datasets, saved models and ``predict`` inputs
``_records``  the run folder and ``run.json``
``_plots``    training curves and confusion matrix PNGs
``_output``   consoles, styled text, JSON
``train``     ``xpnet train``
``evaluate``  ``xpnet evaluate`` and ``xpnet predict``
``export``    ``xpnet export`` (ONNX)
``info``      ``xpnet info`` and ``xpnet download``
============  ================================================================
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from ._args import (
    DEFAULTS,
    EXIT_BACKEND,
    EXIT_CODES,
    EXIT_DATA,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
)
from ._args import build_parser as _build_parser
from .evaluate import cmd_evaluate, cmd_predict
from .export import add_export_parser, cmd_export
from .info import cmd_download, cmd_info
from .train import cmd_train

__all__ = ["main", "build_parser", "DEFAULTS", "EXIT_CODES"]

_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
    "info": cmd_info, "download": cmd_download, "export": cmd_export}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnet`` command, ``export`` included.

    See :func:`xpnet.cli._args.build_parser`; :func:`xpnet.cli.export.add_export_parser`
    adds ``export``.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from xpnet.cli import build_parser
    >>> build_parser().parse_args(["export", "m.safetensors", "m.onnx"]).command
    'export'
    """
    parser = _build_parser()
    add_export_parser(parser)
    return parser


def _classify(exc: BaseException) -> tuple[int, str]:
    """Exit status and one-line message for an exception that ended a command."""
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
        return EXIT_FAILURE, f"out of memory ({exc or type(exc).__name__}); lower --batch-size " \
                             "or --hidden"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return EXIT_DATA, f"{where}{exc.strerror or exc}"
    return EXIT_FAILURE, f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)"


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpnet`` command and return its exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success; see :data:`EXIT_CODES` for the others.

    Examples
    --------
    >>> from xpnet.cli import main
    >>> main(["info", "--json"])  # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
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
                # overflow warnings from the array library while a run diverges would
                # bury the one-line error; fit() detects non-finite values itself
                warnings.simplefilter("ignore", RuntimeWarning)
            return handler(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        sys.stderr.write("xpnet: interrupted\n")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # rich exits this way when the reader of stdout goes away
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except BrokenPipeError:  # e.g. `xpnet info | head`
        try:
            sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:
        code, message = _classify(exc)
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"xpnet: error: {_one_line(message)}\n")
        sys.stderr.flush()
        return code
