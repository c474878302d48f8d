# NumPy is used on the host here for file I/O (reading .npy, IDX and image inputs, the
# validation split's index arithmetic) and for printing results, as DESIGN.md allows.
"""The ``xpnet`` command: ``train``, ``evaluate``, ``predict``, ``info``, ``download``.

Run ``xpnet --help`` or see ``docs/cli.md``. :func:`main` is the entry point of both the
``xpnet`` console script and ``python -m xpnet``; it returns the exit code (see
:data:`EXIT_CODES`) instead of raising, so it can also be called from Python.

Human-readable progress and the ``train`` summary go to standard error; the results of
``evaluate``, ``predict`` and ``info`` go to standard output, and with ``--json`` standard
output holds exactly one JSON object and nothing else.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "build_parser", "DEFAULTS", "EXIT_CODES"]

# -----------------------------------------------------------------------------------------
# Defaults: the one place to change them. Lookup order for every `train` setting: the
# flag on the command line; when resuming, the value the run was started with; the
# entry of the dataset below; then "train". The learning rate, weight decay and momentum
# fall back to the optimizer's entry when neither the flag nor the dataset sets them, and a
# dataset's "lr" applies only while its default optimizer is in use.
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
    # per optimizer
    "optimizers": {
        "adam": {"lr": 2e-3, "weight_decay": 0.0},
        "adamw": {"lr": 1e-3, "weight_decay": 0.01},
        "sgd": {"lr": 0.05, "weight_decay": 0.0, "momentum": 0.9},
        "rmsprop": {"lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0},
    },
}

# --threads auto: below this much work per step (batch size x parameters), CPU backends
# run with one BLAS/OpenMP thread. Small matrices gain nothing from more threads, and
# OpenBLAS's spinning worker threads make such steps 10-20x slower when the cores are
# shared with other processes (measured on a 2-core machine).
AUTO_ONE_THREAD_BELOW = 50_000_000

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DATA, EXIT_BACKEND, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

#: Exit status -> meaning (also printed by ``--help``).
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "runtime failure (training diverged, out of memory, internal error)",
    EXIT_USAGE: "usage error: bad flag or value, missing optional dependency",
    EXIT_DATA: "data or file problem: missing/corrupted dataset, model or input file",
    EXIT_BACKEND: "backend unavailable (e.g. --backend cupy without a usable GPU)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a run with an output folder can be resumed",
}

DATASETS = ("digits", "mnist", "fashion-mnist")
_DATASET_ALIASES = {"digits": "digits", "mnist": "mnist", "fashion-mnist": "fashion-mnist",
                    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}
BACKENDS = ("auto", "numpy", "cupy", "torch", "array_api_strict")
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "exponential")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pbm")
MODEL_FILE, RUN_FILE, CURVES_FILE, CONFUSION_FILE = (
    "model.safetensors", "run.json", "curves.png", "confusion.png")
RUN_SCHEMA = 1
# Settings that define the experiment: a resumed run must keep them.
_FIXED_ON_RESUME = ("dataset", "hidden", "activation", "dropout", "dtype", "val_split",
                    "optimizer", "seed")
_TRAIN_KEYS = ("dataset", "data_dir", "backend", "hidden", "activation", "dropout", "optimizer",
               "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "batch_size",
               "epochs", "seed", "dtype", "val_split", "early_stopping", "threads")


class CLIError(Exception):
    """An error the command reports as one line, with its exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (raised as CLIError, exit status 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    return parse


def _float_in(low: float, high: float | None = None, *, low_open: bool = False,
              high_open: bool = True):
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
                f"expected comma-separated layer sizes such as 512,256, got {text!r}") from None
        if size < 1:
            raise argparse.ArgumentTypeError(
                f"layer sizes must be positive integers, got {size} in {text!r}")
        sizes.append(size)
    return tuple(sizes)


def _threads(text: str) -> str | int:
    if text.strip().lower() == "auto":
        return "auto"
    return _int_at_least(1)(text)


def _backend_name(text: str) -> str:
    name = text.strip().lower().replace("-", "_")
    base = name.split(":", 1)[0]
    if base not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}; choose one of: {', '.join(BACKENDS)} "
            "(torch:cuda selects a device)")
    return name


def _epilog() -> str:
    lines = ["exit status:"]
    lines += [f"  {code:<4} {text}" for code, text in EXIT_CODES.items()]
    return "\n".join(lines)


def _dflt(key: str) -> str:
    """'default: X' text for help, listing per-dataset values that differ."""
    base = DEFAULTS["train"].get(key)
    per = {d: DEFAULTS[d][key] for d in DATASETS if key in DEFAULTS.get(d, {})}

    def fmt(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

    if not per:
        return f"default: {fmt(base)}"
    parts = [f"{d} {fmt(v)}" for d, v in per.items()]
    if any(d not in per for d in DATASETS) or base is not None:
        parts.append(f"otherwise {fmt(base)}")
    return "default: " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xpnet`` command."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")

    parser = _Parser(
        prog="xpnet", formatter_class=fmt, epilog=_epilog(),
        description="Train, evaluate and use multilayer perceptrons on NumPy, CuPy or "
                    "PyTorch.\nStart with `xpnet train`: it trains on the bundled 8x8 "
                    "digits in seconds.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # ---- train
    t = sub.add_parser(
        "train", parents=[common], formatter_class=fmt, epilog=_epilog(),
        help="train a model on a dataset", description=(
            "Train an MLP and save it, with its optimizer state, in an output folder.\n"
            "Without --out, each run gets a new folder runs/<dataset>-<date>-<time>.\n"
            "Flags left out take per-dataset defaults (or, with --resume, the values the "
            "run was started with)."))
    g = t.add_argument_group("data")
    g.add_argument("--dataset", metavar="NAME|PATH",
                   help="digits (bundled), mnist, fashion-mnist, a folder of the four IDX "
                        "files, or an .npz with x_train/y_train/x_test/y_test "
                        "(default: digits)")
    g.add_argument("--data-dir", metavar="DIR",
                   help="folder holding (or to receive) the MNIST/Fashion-MNIST files "
                        "(default: the cache, see `xpnet info`)")
    g.add_argument("--val-split", type=_float_in(0.0, 1.0), metavar="F",
                   help=f"fraction of the training set held out for validation, chosen at "
                        f"random from --seed; 0 disables ({_dflt('val_split')})")
    g = t.add_argument_group("model")
    g.add_argument("--hidden", type=_hidden_sizes, metavar="N,N,...",
                   help=f"hidden layer sizes; 'none' for softmax regression "
                        f"({_dflt('hidden')})")
    g.add_argument("--activation", choices=ACTIVATIONS, help=f"({_dflt('activation')})")
    g.add_argument("--dropout", type=_float_in(0.0, 1.0), metavar="F",
                   help=f"dropout rate after each hidden layer, in [0, 1) "
                        f"({_dflt('dropout')})")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"({_dflt('dtype')})")
    g = t.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=OPTIMIZER_NAMES, help=f"({_dflt('optimizer')})")
    opt_lr = ", ".join(f"{k} {v['lr']:g}" for k, v in DEFAULTS["optimizers"].items())
    g.add_argument("--lr", type=_float_in(0.0, low_open=True), metavar="F",
                   help=f"peak learning rate (default: {opt_lr})")
    g.add_argument("--momentum", type=_float_in(0.0, 1.0), metavar="F",
                   help="momentum for sgd and rmsprop (default: sgd 0.9, rmsprop 0)")
    g.add_argument("--weight-decay", type=_float_in(0.0), metavar="F",
                   help="L2 penalty; decoupled for adamw (default: adamw 0.01, otherwise 0)")
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
                        "keep the best weights; 0 disables (default: 0)")
    g.add_argument("--seed", type=_int_at_least(0), metavar="N",
                   help=f"seed for weights, validation split, batch order and dropout "
                        f"({_dflt('seed')})")
    g = t.add_argument_group("execution and output")
    g.add_argument("--backend", type=_backend_name, metavar="NAME",
                   help="auto (cupy when a GPU is usable, else numpy), numpy, cupy, torch, "
                        "torch:cuda, array_api_strict (default: auto)")
    g.add_argument("--threads", type=_threads, metavar="N|auto",
                   help="BLAS/OpenMP threads on CPU backends; auto uses 1 for small models, "
                        "else the library default (needs threadpoolctl; default: auto)")
    g.add_argument("--out", metavar="DIR", help="output folder for model.safetensors, "
                   "run.json and curves.png (default: runs/<dataset>-<date>-<time>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out DIR from its last completed epoch")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a previous run in --out DIR instead of refusing")
    g.add_argument("--no-save", action="store_true", help="train without writing any file")
    g.add_argument("--plot", action="store_true",
                   help="also write curves.png (loss and accuracy per epoch; needs matplotlib)")
    g.add_argument("--json", action="store_true",
                   help="print the final summary as one JSON object on standard output")
    g.add_argument("--quiet", action="store_true", help="print nothing but errors on stderr")

    # ---- evaluate
    e = sub.add_parser(
        "evaluate", parents=[common], formatter_class=fmt, epilog=_epilog(),
        help="accuracy, loss, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a saved model (a .safetensors file or a run folder) on the "
                    "test split of its dataset.")
    e.add_argument("model", metavar="MODEL", help="model file or run folder")
    e.add_argument("--dataset", metavar="NAME|PATH",
                   help="dataset to evaluate on (default: the one the model was trained on)")
    e.add_argument("--data-dir", metavar="DIR", help="folder of the MNIST/Fashion-MNIST files")
    e.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split (default: test)")
    e.add_argument("--backend", type=_backend_name, default="auto", metavar="NAME",
                   help="(default: auto)")
    e.add_argument("--plot", action="store_true",
                   help=f"save the confusion matrix as {CONFUSION_FILE} next to the model")
    e.add_argument("--plot-path", metavar="FILE", help="where to save the confusion matrix PNG "
                   "(implies --plot)")
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    # ---- predict
    p = sub.add_parser(
        "predict", parents=[common], formatter_class=fmt, epilog=_epilog(),
        help="classify images or arrays with a saved model",
        description="Classify inputs: .npy arrays ((n, features) rows or (n, h, w) images; "
                    "uint8 is scaled by 1/255, floats must be in [0, 1]), IDX files (raw or "
                    ".gz), or image files (PNG/JPEG..., needs Pillow; converted to grayscale "
                    "and resized to the model's image shape).")
    p.add_argument("model", metavar="MODEL", help="model file or run folder")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help=".npy, IDX or image file(s)")
    p.add_argument("--top-k", type=_int_at_least(1), default=3, metavar="K",
                   help="show the K most likely classes (default: 3)")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="invert image files (dark strokes on a light background) to match "
                        "the training data's light-on-dark; auto decides from the border "
                        "(default: auto)")
    p.add_argument("--backend", type=_backend_name, default="auto", metavar="NAME",
                   help="(default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    # ---- info
    i = sub.add_parser("info", parents=[common], formatter_class=fmt, epilog=_epilog(),
                       help="versions, backends, devices, BLAS threads, data cache",
                       description="Show what xpnet can use on this machine.")
    i.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    # ---- download
    d = sub.add_parser("download", parents=[common], formatter_class=fmt, epilog=_epilog(),
                       help="download and verify MNIST or Fashion-MNIST",
                       description="Download the four files of a dataset (SHA-256 checked) "
                                   "into the cache or --data-dir.")
    d.add_argument("name", choices=("mnist", "fashion-mnist"), metavar="NAME",
                   help="mnist or fashion-mnist")
    d.add_argument("--data-dir", metavar="DIR", help="target folder (default: the cache)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


# ----------------------------------------------------------------------------- helpers
def _console(*, stderr: bool, quiet: bool = False):
    from rich.console import Console

    # markup off: paths, class names and messages may hold [brackets]
    return Console(stderr=stderr, quiet=quiet, highlight=False, markup=False, soft_wrap=True)


def _styled(*parts: str | tuple[str, str]):
    from rich.text import Text

    return Text.assemble(*parts)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types; non-finite floats become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


def _write_json(path: Path, obj: Any) -> None:
    from .callbacks import atomic_write_text

    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def _require_matplotlib() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install 'xpnet[plot]'", EXIT_USAGE) from None


def _save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as PNG atomically (temp file, fsync, os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _get_backend(name: str):
    """Resolve --backend; BackendError (exit status 4) says why one cannot run here."""
    from .backends import get_backend

    return get_backend(name)


def _dataset_spec(value: str) -> tuple[str, str]:
    """Normalise --dataset: ('name', canonical) or ('path', absolute path); checks only."""
    key = value.strip().lower()
    if key in _DATASET_ALIASES:
        return "name", _DATASET_ALIASES[key]
    path = Path(value).expanduser()
    if path.exists():
        return "path", str(path.resolve())
    if os.sep in value or "/" in value or "." in value or value.startswith("~"):
        raise CLIError(f"--dataset: no such file or folder: {value}", EXIT_DATA)
    raise CLIError(
        f"unknown dataset {value!r}; choose one of {', '.join(DATASETS)}, or give the path "
        "of a folder of IDX files or of an .npz file", EXIT_USAGE)


def _load_dataset(spec: str, data_dir: str | None, *, progress: bool):
    from .datasets import load

    return load(spec, data_dir, progress=progress)


def _model_path(value: str) -> Path:
    path = Path(value).expanduser()
    if path.is_dir():
        inner = path / MODEL_FILE
        if not inner.is_file():
            raise CLIError(f"{path} is a folder without a {MODEL_FILE}; give a model file or "
                           "the output folder of `xpnet train`", EXIT_DATA)
        return inner
    if not path.exists():
        raise CLIError(f"model file {path} does not exist", EXIT_DATA)
    return path


def _run_meta(ckpt: Any) -> dict:
    user = ckpt.metadata.get("user")
    return user if isinstance(user, dict) else {}


def _class_names(meta: dict, n: int) -> list[str]:
    names = (meta.get("dataset") or {}).get("class_names")
    if isinstance(names, list) and len(names) == n:
        return [str(c) for c in names]
    return [str(i) for i in range(n)]


def _image_shape(meta: dict, n_features: int) -> tuple[int, ...] | None:
    shape = (meta.get("dataset") or {}).get("image_shape")
    if isinstance(shape, list) and shape and math.prod(int(s) for s in shape) == n_features:
        return tuple(int(s) for s in shape)
    side = math.isqrt(n_features)
    return (side, side) if side * side == n_features else None


def _fmt_secs(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


# ----------------------------------------------------------------------------- train
def _resolve(args: argparse.Namespace, dataset_key: str, saved: dict | None
             ) -> tuple[dict, set[str]]:
    """Settings from flags > saved run > DEFAULTS[dataset] > DEFAULTS['train']."""
    explicit = {k for k in _TRAIN_KEYS if getattr(args, k, None) is not None}
    saved = saved or {}
    ds_defaults = DEFAULTS.get(dataset_key, {})
    s: dict[str, Any] = {}
    for key in _TRAIN_KEYS:
        if key in explicit:
            s[key] = getattr(args, key)
        elif key in saved:
            s[key] = saved[key]
        elif key in ds_defaults:
            s[key] = ds_defaults[key]
        else:
            s[key] = DEFAULTS["train"].get(key)
    s["hidden"] = tuple(s["hidden"])
    opt_defaults = DEFAULTS["optimizers"][s["optimizer"]]
    opt_is_default = "optimizer" not in explicit and "optimizer" not in saved and \
        s["optimizer"] == ds_defaults.get("optimizer", DEFAULTS["train"]["optimizer"])
    for key in ("lr", "weight_decay", "momentum"):
        if s[key] is None:
            if opt_is_default and key in ds_defaults:
                s[key] = ds_defaults[key]
            else:
                s[key] = opt_defaults.get(key)
    return s, explicit


def _check_settings(s: dict) -> None:
    if s["warmup_epochs"] >= s["epochs"]:
        raise CLIError(f"--warmup-epochs {s['warmup_epochs']} must be smaller than --epochs "
                       f"{s['epochs']}", EXIT_USAGE)
    if s["momentum"] is not None and s["optimizer"] not in ("sgd", "rmsprop") \
            and s["momentum"] > 0:
        raise CLIError(f"--momentum applies to sgd and rmsprop, not {s['optimizer']}",
                       EXIT_USAGE)


def _limit_threads(setting: str | int, backend: Any, work: int, explicit: bool
                   ) -> tuple[Any, str]:
    """Apply --threads on CPU backends; returns (limiter or None, description)."""
    if not backend.is_host:
        return None, "device"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if explicit:
            raise CLIError("--threads needs threadpoolctl: pip install threadpoolctl",
                           EXIT_USAGE) from None
        return None, "library default (install threadpoolctl to tune)"
    if setting == "auto":
        if work >= AUTO_ONE_THREAD_BELOW:
            return None, "library default"
        return threadpool_limits(limits=1), "1 (auto: small model)"
    return threadpool_limits(limits=int(setting)), str(setting)


def _make_optimizer(s: dict, steps_per_epoch: int):
    from . import schedules
    from .optimizers import OPTIMIZERS

    lr, warm = s["lr"], s["warmup_epochs"] * steps_per_epoch
    after = max((s["epochs"] - s["warmup_epochs"]) * steps_per_epoch, 1)
    sched: Any
    if s["schedule"] == "cosine":
        sched = schedules.CosineDecay(lr, total_steps=after)
    elif s["schedule"] == "step":
        step_size = max(1, (s["epochs"] - s["warmup_epochs"]) // 3) * steps_per_epoch
        sched = schedules.StepDecay(lr, step_size=step_size, gamma=0.1)
    elif s["schedule"] == "exponential":
        sched = schedules.ExponentialDecay(lr, gamma=0.01 ** (1.0 / after))
    else:
        sched = schedules.Constant(lr)
    if warm > 0:
        sched = schedules.LinearWarmup(sched, warmup_steps=warm)
    kwargs: dict[str, Any] = {"lr": sched, "weight_decay": s["weight_decay"]}
    if s["optimizer"] in ("sgd", "rmsprop"):
        kwargs["momentum"] = s["momentum"]
    return OPTIMIZERS[s["optimizer"]](**kwargs)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Training and validation row indices: a seeded random subset, both in data order."""
    n_val = int(math.floor(n * fraction))
    if fraction > 0 and (n_val < 1 or n_val >= n):
        raise CLIError(f"--val-split {fraction:g} leaves {n_val} validation and {n - n_val} "
                       f"training rows of {n}; both must be >= 1", EXIT_USAGE)
    if n_val == 0:
        return np.arange(n), None
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _default_out(dataset_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset_name).strip("-.") or "run"
    base = Path("runs") / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, k = base, 2
    while out.exists():
        out, k = base.with_name(f"{base.name}-{k}"), k + 1
    return out


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
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _saved_settings(model_file: Path) -> tuple[dict, int]:
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(model_file, backend="numpy")
    settings = _run_meta(ckpt).get("settings")
    if not isinstance(settings, dict):
        raise CLIError(f"{model_file} was not written by `xpnet train` (no run settings in it); "
                       "it cannot be resumed from the command line", EXIT_DATA)
    if ckpt.training is None:
        raise CLIError(f"{model_file} holds no training position; it cannot be resumed",
                       EXIT_DATA)
    return settings, int(ckpt.training.get("epoch", 0))


def _resume_conflicts(s: dict, saved: dict, explicit: set[str]) -> None:
    for key in _FIXED_ON_RESUME:
        if key not in explicit or key not in saved:
            continue
        new, old = s[key], saved[key]
        if key == "hidden":
            new, old = list(new), list(old)
        if new != old:
            flag = "--" + key.replace("_", "-")

            def show(v: Any) -> str:
                return ",".join(map(str, v)) if isinstance(v, list) else str(v)

            raise CLIError(f"{flag} {show(new)} differs from the run being resumed "
                           f"({show(old)}); drop {flag} to resume, or start a new run in "
                           "another --out folder", EXIT_USAGE)


class _RunRecorder:
    """Keeps run.json in step with the checkpoint: rewritten after every epoch."""

    def __init__(self, path: Path | None, record: dict, history: dict | None):
        self.path = path
        self.record = record
        hist = history or {}
        n = max((len(v) for v in hist.values()), default=0)
        self.record["history"] = {"epoch": list(range(1, n + 1)),
                                  **{k: list(v) for k, v in hist.items()}}
        self.record["epochs_done"] = n

    def epoch_end(self, epoch: int, logs: dict) -> None:
        h = self.record["history"]
        h["epoch"].append(epoch + 1)
        for k, v in logs.items():
            h.setdefault(k, []).append(v)
        self.record["epochs_done"] = epoch + 1
        self.write()

    def write(self) -> None:
        if self.path is not None:
            _write_json(self.path, self.record)


def _recorder_callback(recorder: _RunRecorder):
    from .callbacks import Callback

    class RunRecord(Callback):
        def on_epoch_end(self, epoch, logs):
            recorder.epoch_end(epoch, logs)

    return RunRecord()


def _plot_curves(history: dict, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    epochs = history.get("epoch", [])
    fig = Figure(figsize=(10, 4), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "-s")):
            values = history.get(prefix + key)
            if values and len(values) == len(epochs):
                ys = [np.nan if v is None else v for v in values]
                ax.plot(epochs, ys, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title)
    _save_figure(fig, path)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import __version__
    from .backends import versions
    from .callbacks import EarlyStopping, ModelCheckpoint
    from .checkpoint import load_checkpoint, save
    from .model import MLP
    from .training import NonFiniteLossError, fit

    t_start = time.perf_counter()
    con = _console(stderr=True, quiet=args.quiet)

    # ---- everything that can be checked before touching data or devices ------------
    if args.no_save and (args.out or args.resume or args.plot):
        bad = "--out" if args.out else "--resume" if args.resume else "--plot"
        raise CLIError(f"--no-save cannot be combined with {bad}", EXIT_USAGE)
    if args.resume and not args.out:
        raise CLIError("--resume needs --out DIR, the folder of the run to continue",
                       EXIT_USAGE)
    if args.overwrite and args.resume:
        raise CLIError("--overwrite and --resume contradict each other; choose one",
                       EXIT_USAGE)
    if args.plot:
        _require_matplotlib()
    spec_kind, spec = _dataset_spec(args.dataset) if args.dataset is not None \
        else ("name", DEFAULTS["train"]["dataset"])
    saved: dict | None = None
    done = 0
    out: Path | None = None
    model_file: Path | None = None
    if not args.no_save:
        out = Path(args.out).expanduser() if args.out else None
        if out is not None and out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file, not a folder", EXIT_USAGE)
        if args.resume:
            assert out is not None
            model_file = out / MODEL_FILE
            if not model_file.is_file():
                raise CLIError(f"nothing to resume: {model_file} does not exist; run without "
                               "--resume to start a new run", EXIT_DATA)
            saved, done = _saved_settings(model_file)
            if args.dataset is None:
                spec_kind = "name" if saved["dataset"] in DATASETS else "path"
                spec = saved["dataset"]
        elif out is not None and (out / MODEL_FILE).exists() and not args.overwrite:
            raise CLIError(f"{out} already holds a run ({MODEL_FILE}); pass --resume to "
                           "continue it, --overwrite to replace it, or choose another --out",
                           EXIT_USAGE)
    dataset_key = spec if spec_kind == "name" else "train"
    s, explicit = _resolve(args, dataset_key, saved)
    s["dataset"] = spec
    _check_settings(s)
    if saved is not None:
        _resume_conflicts(s, saved, explicit)
        if done >= s["epochs"]:
            raise CLIError(f"the run in {out} has already done {done} epochs; pass --epochs N "
                           f"with N > {done} to train further", EXIT_USAGE)

    # ---- backend, then data ---------------------------------------------------------
    backend = _get_backend(s["backend"])
    ds = _load_dataset(spec, s["data_dir"], progress=not args.quiet)
    if spec_kind == "path" and ds.name in DATASETS and saved is None:
        # a folder holding the real MNIST files gets MNIST's defaults
        s, explicit = _resolve(args, ds.name, None)
        s["dataset"] = spec
        _check_settings(s)
    train_idx, val_idx = _split(ds.x_train.shape[0], s["val_split"], s["seed"])
    X, y = ds.x_train[train_idx], ds.y_train[train_idx]
    val = None if val_idx is None else (ds.x_train[val_idx], ds.y_train[val_idx])
    n_train = X.shape[0]
    bs = min(s["batch_size"], n_train)
    steps = math.ceil(n_train / bs)
    optimizer = _make_optimizer(s, steps)

    # ---- model --------------------------------------------------------------------
    resume = None
    if saved is not None:
        assert model_file is not None
        ckpt = load_checkpoint(model_file, backend=backend)
        model = ckpt.model
        if model.in_features != ds.n_features or model.out_features < ds.num_classes:
            raise CLIError(f"{model_file} has {model.in_features} inputs and "
                           f"{model.out_features} classes but {ds.name} has {ds.n_features} "
                           f"features and {ds.num_classes} classes", EXIT_DATA)
        resume = ckpt.training or {}
        if ckpt.optimizer is not None and type(ckpt.optimizer) is type(optimizer):
            optimizer.state = ckpt.optimizer.state
    else:
        model = MLP([ds.n_features, *s["hidden"], ds.num_classes], activation=s["activation"],
                    dropout=s["dropout"], backend=backend, dtype=s["dtype"], seed=s["seed"])

    # ---- output folder and records ---------------------------------------------------
    default_out = out is None and not args.no_save
    if default_out:
        out = _default_out(ds.name if spec_kind == "path" else spec)
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"cannot create the output folder {out}: {exc.strerror}",
                           EXIT_DATA) from None
        if default_out:
            _point_latest(out)
        model_file = out / MODEL_FILE
        if args.overwrite:
            for name in (MODEL_FILE, RUN_FILE, CURVES_FILE):
                (out / name).unlink(missing_ok=True)
    dataset_info = {
        "name": ds.name, "spec": spec, "data_dir": s["data_dir"], "source": ds.source,
        "sha256": dict(ds.sha256), "n_train": int(n_train),
        "n_val": 0 if val is None else int(val[0].shape[0]), "n_test": int(ds.x_test.shape[0]),
        "n_features": ds.n_features, "num_classes": ds.num_classes,
        "image_shape": list(ds.image_shape), "class_names": list(ds.class_names)}
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    meta = {"xpnet_cli": RUN_SCHEMA, "settings": settings, "dataset": {
        k: dataset_info[k] for k in ("name", "spec", "data_dir", "source", "n_features",
                                     "num_classes", "image_shape", "class_names")}}
    versions_info = {"xpnet": __version__, "python": platform.python_version(), **versions()}
    command = "xpnet " + " ".join(shlex.quote(a) for a in args.argv)
    previous = None
    if saved is not None and out is not None and (out / RUN_FILE).is_file():
        try:
            previous = json.loads((out / RUN_FILE).read_text())
        except (OSError, ValueError):
            previous = None
    record: dict[str, Any] = {
        "schema": RUN_SCHEMA,
        "status": "running",
        "command": (previous or {}).get("command") or command,
        "settings": settings,
        "seed": s["seed"],
        "started_at": (previous or {}).get("started_at") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "finished_at": None,
        "resumes": [*(previous or {}).get("resumes", []),
                    {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command,
                     "from_epoch": int((resume or {}).get("epoch", 0))}
                    ] if saved is not None else [],
        "versions": versions_info,
        "platform": {"system": platform.platform(), "machine": platform.machine(),
                     "cpus": os.cpu_count()},
        "backend": {"name": backend.name, "device": backend.device_name},
        "dataset": dataset_info,
        "model": {"config": model.get_config(), "num_params": model.num_params},
        "optimizer": repr(optimizer),
        "steps_per_epoch": steps,
        "batch_size": bs,
        "epochs": s["epochs"],
        "epochs_done": 0,
        "history": {},
        "test": None,
        "train_seconds": None,
        "samples_per_second": None,
        "files": {"model": MODEL_FILE if out else None, "run": RUN_FILE if out else None,
                  "curves": None},
    }
    recorder = _RunRecorder(out / RUN_FILE if out else None, record,
                            (resume or {}).get("history"))
    recorder.write()

    # ---- tell the user what is about to happen ----------------------------------------
    limiter, threads_txt = _limit_threads(s["threads"], backend, bs * model.num_params,
                                          "threads" in explicit)
    sizes = " → ".join(map(str, [ds.n_features, *s["hidden"], ds.num_classes]))
    con.print(_styled((f"xpnet {__version__}", "bold"), "  backend ", (backend.name, "bold"),
                      f" ({backend.device_name}), {s['dtype']}, seed {s['seed']}"
                      + (f", threads {threads_txt}" if backend.is_host else "")))
    con.print(f"data     {ds.summary()}")
    vtxt = f", validation {val[0].shape[0]:,} ({s['val_split']:g})" if val else ""
    con.print(f"split    train {n_train:,}{vtxt}, test {ds.x_test.shape[0]:,}")
    con.print(f"model    {sizes} ({s['activation']}"
              f"{', dropout ' + format(s['dropout'], 'g') if s['dropout'] else ''}), "
              f"{model.num_params:,} parameters")
    con.print(f"training {optimizer!r}, schedule {s['schedule']}, batch {bs}, "
              f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''} ({steps} steps each)")
    if resume is not None:
        con.print(f"resuming {out} after epoch {resume.get('epoch', 0)}")
    if out is not None:
        con.print(f"output   {out}")

    # ---- train ------------------------------------------------------------------------
    callbacks: list[Any] = []
    early = None
    if s["early_stopping"] > 0:
        early = EarlyStopping(monitor="val_loss", patience=s["early_stopping"],
                              restore_best_weights=True)
        callbacks.append(early)
    checkpoint = None
    if out is not None:
        checkpoint = ModelCheckpoint(model_file, metadata=meta)
        callbacks.append(checkpoint)
    callbacks.append(_recorder_callback(recorder))
    start_epoch = int((resume or {}).get("epoch", 0))
    try:
        history = fit(model, X, y, epochs=s["epochs"], batch_size=bs, optimizer=optimizer,
                      validation_data=val, callbacks=callbacks, seed=s["seed"],
                      verbose=0 if args.quiet else 1, resume=resume)
    except KeyboardInterrupt:
        record.update(status="interrupted", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        recorder.write()
        done = record["epochs_done"]
        err = _console(stderr=True)
        if out is None:
            err.print(f"xpnet: interrupted after {done} epoch(s); nothing was saved "
                      "(--no-save)")
        elif done == 0 or not (out / MODEL_FILE).exists():
            err.print(f"xpnet: interrupted before the first epoch finished; nothing to resume "
                      f"in {out}")
        else:
            err.print(f"xpnet: interrupted; epoch {done}/{s['epochs']} is saved in "
                      f"{out / MODEL_FILE}. Continue with:\n"
                      f"  xpnet train --out {shlex.quote(str(out))} --resume")
        return EXIT_INTERRUPTED
    except NonFiniteLossError as exc:
        record.update(status="failed", error=str(exc),
                      finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        recorder.write()
        saved_txt = (f"; epoch {record['epochs_done']} is saved in {out / MODEL_FILE}"
                     if out is not None and record["epochs_done"] else "")
        raise CLIError(
            f"training diverged: the loss or a gradient became NaN/inf at epoch {exc.epoch}, "
            f"step {exc.step}; lower --lr (now {s['lr']:g}), add --warmup-epochs, or try "
            f"--optimizer adam{saved_txt}", EXIT_FAILURE) from None
    finally:
        if limiter is not None:
            limiter.restore_original_limits()

    # ---- results ----------------------------------------------------------------------
    if early is not None and checkpoint is not None and callable(checkpoint.fit_state) \
            and 0 <= early.best_epoch < len(history.epoch) - 1:
        # EarlyStopping put back the best epoch's weights: store those
        save(model, model_file, training=checkpoint.fit_state(), metadata=meta)
    test = model.evaluate(ds.x_test, ds.y_test)
    epochs_run = len(history.epoch) - start_epoch
    secs = [v for v in history.history.get("seconds", [])[start_epoch:]]
    train_secs = float(sum(secs))
    sps = n_train * epochs_run / train_secs if train_secs > 0 else None
    curves = None
    if args.plot and out is not None:
        curves = out / CURVES_FILE
        _plot_curves(record["history"], curves,
                     f"{ds.name}: {sizes}, {s['optimizer']} lr {s['lr']:g}")
    status = "stopped_early" if history.stopped_early else "completed"
    record.update(status=status, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  test=test, train_seconds=train_secs, samples_per_second=sps,
                  stopped_early=history.stopped_early,
                  best_epoch=None if early is None or early.best_epoch < 0
                  else early.best_epoch + 1)
    record["files"]["curves"] = CURVES_FILE if curves else None
    recorder.write()
    total = time.perf_counter() - t_start

    from rich.table import Table

    table = Table(title="result", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("test accuracy", f"{test.get('accuracy', float('nan')):.4f}")
    table.add_row("test loss", f"{test['loss']:.4f}")
    ep_txt = f"{len(history.epoch)}"
    if start_epoch:
        ep_txt += f" ({start_epoch} before resuming)"
    if history.stopped_early:
        ep_txt += f", stopped early (best epoch {record['best_epoch']})"
    table.add_row("epochs", ep_txt)
    table.add_row("time", f"{_fmt_secs(total)} (training {_fmt_secs(train_secs)})")
    table.add_row("samples/s", f"{sps:,.0f}" if sps else "-")
    if out is not None:
        table.add_row("model", str(model_file))
        table.add_row("run record", str(out / RUN_FILE))
        if curves:
            table.add_row("curves", str(curves))
        table.add_row("next", f"xpnet evaluate {shlex.quote(str(out))}")
    else:
        table.add_row("model", "not saved (--no-save)")
    con.print(table)

    if args.json:
        _print_json({
            "status": status,
            "dataset": ds.name,
            "backend": backend.name,
            "device": backend.device_name,
            "test": test,
            "epochs": len(history.epoch),
            "stopped_early": history.stopped_early,
            "train_seconds": train_secs,
            "total_seconds": total,
            "samples_per_second": sps,
            "history": record["history"],
            "settings": settings,
            "out": str(out.resolve()) if out else None,
            "model": str(model_file.resolve()) if out and model_file else None,
            "run_json": str((out / RUN_FILE).resolve()) if out else None,
            "curves": str(curves.resolve()) if curves else None,
        })
    return EXIT_OK


# ----------------------------------------------------------------------------- evaluate
def _plot_confusion(cm: np.ndarray, names: list[str], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    k = cm.shape[0]
    size = max(4.0, min(0.5 * k + 2, 16.0))
    fig = Figure(figsize=(size + 1, size), dpi=110, layout="constrained")
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(k), labels=names, rotation=45 if max(map(len, names)) > 2 else 0,
                  ha="right" if max(map(len, names)) > 2 else "center")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title)
    _save_figure(fig, path)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import metrics
    from .backends import to_numpy
    from .checkpoint import load_checkpoint

    model_file = _model_path(args.model)
    plot_path = None
    if args.plot or args.plot_path:
        _require_matplotlib()
        plot_path = Path(args.plot_path).expanduser() if args.plot_path \
            else model_file.parent / CONFUSION_FILE
        if not plot_path.parent.is_dir():
            raise CLIError(f"--plot-path: folder {plot_path.parent} does not exist", EXIT_USAGE)
    spec = None
    if args.dataset is not None:
        _, spec = _dataset_spec(args.dataset)
    backend = _get_backend(args.backend)
    ckpt = load_checkpoint(model_file, backend=backend)
    model, meta = ckpt.model, _run_meta(ckpt)
    data_dir = args.data_dir
    if spec is None:
        info = meta.get("dataset") or {}
        spec = info.get("spec")
        if not spec:
            raise CLIError(f"{model_file} does not say which dataset it was trained on; pass "
                           "--dataset NAME|PATH", EXIT_USAGE)
        data_dir = data_dir or info.get("data_dir")
        if spec not in DATASETS and not Path(spec).exists():
            raise CLIError(f"the model was trained on {spec}, which no longer exists; pass "
                           "--dataset NAME|PATH", EXIT_DATA)
    ds = _load_dataset(spec, data_dir, progress=not args.json)
    X, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    if ds.n_features != model.in_features:
        raise CLIError(f"{ds.name} has {ds.n_features} features per sample but the model "
                       f"expects {model.in_features}; evaluate it on the data it was trained "
                       "on", EXIT_DATA)
    k = model.out_features
    if int(y.max()) >= k:
        raise CLIError(f"{ds.name} has label {int(y.max())} but the model only knows {k} "
                       "classes", EXIT_DATA)
    result = model.evaluate(X, y)
    yd = backend.asarray(y, dtype=backend.xp.int64)
    scores = model.predict_proba(X)
    pred = backend.xp.argmax(scores, axis=1)
    # counted on the host: the predictions are output now, and integer matmul (what
    # metrics.confusion_matrix uses) is not implemented for CUDA tensors in PyTorch
    cm = np.bincount(y.astype(np.int64) * k + to_numpy(pred).astype(np.int64),
                     minlength=k * k).reshape(k, k)
    top = {}
    for kk in (3, 5):
        if kk < k:
            top[str(kk)] = float(metrics.top_k_accuracy(yd, scores, kk))
    names = _class_names(meta, k)
    per_class = []
    for c in range(k):
        support = int(cm[c].sum())
        off = cm[c].copy()
        off[c] = 0
        confused = int(off.argmax()) if off.any() else None
        per_class.append({
            "label": c, "class": names[c], "support": support, "correct": int(cm[c, c]),
            "accuracy": cm[c, c] / support if support else None,
            "most_confused_with": None if confused is None else names[confused]})
    if plot_path is not None:
        _plot_confusion(cm, names, plot_path,
                        f"{ds.name} {args.split}: accuracy {result.get('accuracy', 0):.4f}")
    out = {"model": str(model_file.resolve()), "dataset": ds.name, "source": ds.source,
           "split": args.split, "samples": int(X.shape[0]), "backend": backend.name,
           "device": backend.device_name, "accuracy": result.get("accuracy"),
           "loss": result["loss"], "top_k_accuracy": top, "per_class": per_class,
           "confusion_matrix": cm.tolist(),
           "plot": str(plot_path.resolve()) if plot_path else None}
    if args.json:
        _print_json(out)
        return EXIT_OK

    from rich.table import Table

    con = _console(stderr=False)
    con.print(f"model  {model_file}  ({model.num_params:,} parameters, backend "
              f"{backend.name} {backend.device_name})")
    con.print(f"data   {ds.summary()}; evaluating the {args.split} split")
    t = Table(title="metrics", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("accuracy", f"{result.get('accuracy', float('nan')):.4f}")
    t.add_row("loss", f"{result['loss']:.4f}")
    for kk, v in top.items():
        t.add_row(f"top-{kk} accuracy", f"{v:.4f}")
    t.add_row("samples", f"{X.shape[0]:,}")
    con.print(t)
    pc = Table(title="per class", title_justify="left")
    for col in ("class", "support", "correct", "accuracy", "most confused with"):
        pc.add_column(col, justify="left" if col in ("class", "most confused with")
                      else "right")
    for row in per_class:
        acc = row["accuracy"]
        style = "red" if acc is not None and acc < (result.get("accuracy") or 0) - 0.05 else ""
        pc.add_row(row["class"], f"{row['support']:,}", f"{row['correct']:,}",
                   "-" if acc is None else f"{acc:.4f}", row["most_confused_with"] or "-",
                   style=style)
    con.print(pc)
    if k <= 20:
        cmt = Table(title="confusion matrix (rows: true class, columns: predicted)",
                    title_justify="left")
        cmt.add_column("true \\ pred", style="bold")
        for c in names:
            cmt.add_column(c, justify="right")
        for i, c in enumerate(names):
            cmt.add_row(c, *[_styled((str(v), "bold" if i == j else "dim" if v == 0 else ""))
                             for j, v in enumerate(cm[i].tolist())])
        con.print(cmt)
    else:
        con.print(f"(confusion matrix of {k} classes not shown; use --json or --plot)")
    if plot_path is not None:
        con.print(f"confusion matrix plot: {plot_path}")
    return EXIT_OK


# ----------------------------------------------------------------------------- predict
def _scale(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.hasobject:
        raise CLIError(f"{name}: object arrays are not accepted", EXIT_DATA)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise CLIError(f"{name} holds integers in [{lo}, {hi}]; integer inputs must lie in "
                           "[0, 255] (they are divided by 255)", EXIT_DATA)
        return arr.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise CLIError(f"{name} contains NaN or infinite values", EXIT_DATA)
        lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise CLIError(f"{name} holds floats in [{lo:g}, {hi:g}]; float inputs must be "
                           "scaled to [0, 1] like the training data (uint8 is scaled for you)",
                           EXIT_DATA)
        return out
    raise CLIError(f"{name} has dtype {arr.dtype}; expected uint8, integers or floats",
                   EXIT_DATA)


def _rows(arr: np.ndarray, name: str, n_features: int,
          image_shape: tuple[int, ...] | None) -> np.ndarray:
    """(n, n_features) float32 rows from rows, one image, or a stack of images."""
    shape = tuple(arr.shape)
    want = f"(n, {n_features}) rows" + (
        f" or (n, {', '.join(map(str, image_shape))}) images" if image_shape else "")
    if arr.ndim == 1 and shape[0] == n_features:
        arr = arr.reshape(1, n_features)
    elif image_shape and shape == image_shape:
        arr = arr.reshape(1, n_features)
    elif arr.ndim == 2 and shape[1] == n_features:
        pass
    elif arr.ndim >= 3 and (shape[1:] == image_shape if image_shape
                            else math.prod(shape[1:]) == n_features):
        arr = arr.reshape(shape[0], n_features)
    else:
        raise CLIError(f"{name} has shape {shape}; the model expects {want}", EXIT_DATA)
    if arr.shape[0] == 0:
        raise CLIError(f"{name} holds no samples", EXIT_DATA)
    return _scale(arr, name)


def _read_image(path: Path, image_shape: tuple[int, ...] | None, invert: str
                ) -> tuple[np.ndarray, bool]:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise CLIError("reading image files needs Pillow: pip install 'xpnet[images]'",
                       EXIT_USAGE) from None
    if image_shape is None or len(image_shape) != 2:
        raise CLIError(f"{path}: the model has no 2-D image shape to resize images to; give "
                       ".npy rows instead", EXIT_DATA)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and
                                                   "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            gray = im.convert("L")
            h, w = image_shape
            shrink = gray.width >= w and gray.height >= h
            resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
            if gray.size != (w, h):
                gray = gray.resize((w, h), resample=resample)
            arr = np.asarray(gray, dtype=np.float32) / np.float32(255.0)
    except (OSError, ValueError, SyntaxError) as exc:
        raise CLIError(f"{path}: cannot read the image: {exc}", EXIT_DATA) from None
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    flip = invert == "yes" or (invert == "auto" and float(border.mean()) > 0.5)
    if flip:
        arr = 1.0 - arr
    return arr.reshape(1, -1), flip


def _read_inputs(paths: list[str], n_features: int, image_shape: tuple[int, ...] | None,
                 invert: str) -> tuple[np.ndarray, list[dict]]:
    from .datasets import DatasetError, read_idx

    blocks, labels = [], []
    for text in paths:
        path = Path(text).expanduser()
        if not path.exists():
            raise CLIError(f"input {path} does not exist", EXIT_DATA)
        if path.is_dir():
            raise CLIError(f"input {path} is a folder; give .npy, IDX or image files",
                           EXIT_DATA)
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            rows, flipped = _read_image(path, image_shape, invert)
            blocks.append(rows)
            labels.append({"input": str(text), "inverted": flipped})
            continue
        if suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise CLIError(f"{path}: not a readable .npy file ({exc})", EXIT_DATA) from None
        else:
            try:
                arr = read_idx(path)
            except DatasetError as exc:
                raise CLIError(f"{path}: not a .npy, IDX or image file ({exc})",
                               EXIT_DATA) from None
        rows = _rows(np.asarray(arr), str(path), n_features, image_shape)
        blocks.append(rows)
        one = rows.shape[0] == 1
        labels += [{"input": str(text) if one else f"{text}[{i}]"} for i in range(rows.shape[0])]
    return np.concatenate(blocks, axis=0), labels


def _cmd_predict(args: argparse.Namespace) -> int:
    from .backends import to_numpy
    from .checkpoint import load_checkpoint

    model_file = _model_path(args.model)
    for text in args.inputs:  # cheap checks first
        if not Path(text).expanduser().exists():
            raise CLIError(f"input {Path(text).expanduser()} does not exist", EXIT_DATA)
    backend = _get_backend(args.backend)
    ckpt = load_checkpoint(model_file, backend=backend)
    model, meta = ckpt.model, _run_meta(ckpt)
    if model.loss.name != "cross_entropy":
        raise CLIError(f"{model_file} is not a classifier (loss {model.loss.name})", EXIT_DATA)
    k = model.out_features
    names = _class_names(meta, k)
    shape = _image_shape(meta, model.in_features)
    X, items = _read_inputs(args.inputs, model.in_features, shape, args.invert)
    proba = to_numpy(model.predict_proba(X)).astype(np.float64)
    top_k = min(args.top_k, k)
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
    preds = []
    for i, item in enumerate(items):
        best = int(order[i, 0])
        preds.append({**item, "label": best, "class": names[best],
                      "probability": float(proba[i, best]),
                      "top_k": [{"label": int(c), "class": names[int(c)],
                                 "probability": float(proba[i, int(c)])} for c in order[i]]})
    if args.json:
        _print_json({"model": str(model_file.resolve()), "backend": backend.name,
                     "class_names": names, "predictions": preds})
        return EXIT_OK

    from rich.table import Table

    con = _console(stderr=False)
    t = Table(title=f"predictions of {model_file}", title_justify="left")
    t.add_column("input")
    t.add_column("class", style="bold")
    t.add_column("probability", justify="right")
    if top_k > 1:
        t.add_column(f"top {top_k}")
    for p in preds:
        name = p["input"] + (" (inverted)" if p.get("inverted") else "")
        row = [name, p["class"], f"{p['probability']:.4f}"]
        if top_k > 1:
            row.append(", ".join(f"{c['class']} {c['probability']:.3f}" for c in p["top_k"]))
        t.add_row(*row)
    con.print(t)
    return EXIT_OK


# ----------------------------------------------------------------------------- info
def _blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        return [{"library": i.get("internal_api"), "api": i.get("user_api"),
                 "threads": i.get("num_threads"), "version": i.get("version"),
                 "threading": i.get("threading_layer")} for i in threadpool_info()]
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.25
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}
        return [{"library": blas.get("name"), "api": "blas", "version": blas.get("version"),
                 "threads": env or "unknown (pip install threadpoolctl to see them)"}]
    except Exception:  # pragma: no cover - very old numpy
        return []


def _cmd_info(args: argparse.Namespace) -> int:
    from . import __version__
    from .backends import BackendError, backend_status, get_backend, versions
    from .datasets import cache_dir

    status = backend_status()
    devices = {}
    for name, why in status.items():
        if why is not None:
            continue
        try:
            devices[name] = [get_backend(name).device_name]
        except BackendError as exc:  # pragma: no cover - probe said yes
            devices[name] = [f"unavailable: {exc}"]
        if name == "torch":
            try:
                devices[name].append(get_backend("torch", "cuda").device_name)
            except BackendError:
                pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count()
    cache = cache_dir()
    data = {}
    for name in ("mnist", "fashion-mnist"):
        folder = cache / name
        files = sorted(p.name for p in folder.glob("*ubyte*")) if folder.is_dir() else []
        data[name] = {"folder": str(folder), "files": files}
    auto = "cupy" if status.get("cupy") is None else "numpy"
    info = {
        "versions": {"xpnet": __version__, "python": platform.python_version(), **versions()},
        "platform": platform.platform(),
        "cpus": {"count": os.cpu_count(), "usable": affinity},
        "backends": {name: {"available": why is None, "reason": why,
                            "devices": devices.get(name, [])} for name, why in status.items()},
        "auto_backend": auto,
        "blas": _blas_info(),
        "data_cache": {"dir": str(cache), "env": "XPNET_DATA_DIR", "datasets": data},
    }
    if args.json:
        _print_json(info)
        return EXIT_OK

    from rich.table import Table

    con = _console(stderr=False)
    con.print(f"xpnet {__version__} on Python {platform.python_version()}, "
              f"{info['platform']}, {affinity} of {os.cpu_count()} CPUs usable")
    t = Table(title="packages", title_justify="left", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    for k, v in info["versions"].items():
        t.add_row(k, v)
    con.print(t)
    b = Table(title=f"backends (auto picks {auto})", title_justify="left")
    b.add_column("backend", style="bold")
    b.add_column("status")
    b.add_column("devices / reason")
    for name, row in info["backends"].items():
        if row["available"]:
            b.add_row(name, _styled(("available", "green")), ", ".join(row["devices"]))
        else:
            b.add_row(name, _styled(("unavailable", "red")), row["reason"])
    con.print(b)
    bl = Table(title="BLAS", title_justify="left")
    for col in ("library", "api", "threads", "version"):
        bl.add_column(col)
    for row in info["blas"]:
        bl.add_row(*[str(row.get(c, "")) for c in ("library", "api", "threads", "version")])
    con.print(bl)
    con.print(f"data cache  {cache}  (set XPNET_DATA_DIR to move it)")
    for name, row in data.items():
        state = f"{len(row['files'])} file(s)" if row["files"] else "not downloaded"
        con.print(f"  {name:<14}{state}")
    return EXIT_OK


# ----------------------------------------------------------------------------- download
def _cmd_download(args: argparse.Namespace) -> int:
    from .datasets import download

    folder = download(args.name, args.data_dir, progress=not args.quiet)
    print(f"{args.name}: the four files are verified in {folder}")
    return EXIT_OK


# ----------------------------------------------------------------------------- main
def _classify(exc: BaseException) -> tuple[int, str]:
    from .backends import BackendError
    from .checkpoint import CheckpointError
    from .datasets import DatasetError
    from .training import NonFiniteLossError

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
        handler = {"train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
                   "info": _cmd_info, "download": _cmd_download}[args.command]
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
