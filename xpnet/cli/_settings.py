# NumPy appears here only in type annotations (the split's indices).
"""From ``xpnet train`` flags to a training setup.

Resolves every setting (flag, then the resumed run, then `DEFAULTS`),
checks combinations no single flag can check, and builds the pieces ``fit`` needs that
depend only on the settings: the optimizer with its schedule, the validation split and the
BLAS thread limit.
"""

from __future__ import annotations

import argparse
from collections import ChainMap
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._split import split_rows
from ._args import AUTO_ONE_THREAD_BELOW, DEFAULTS, EXIT_DATA, EXIT_USAGE, CLIError
from ._io import bad_field, run_meta

__all__ = ["TRAIN_KEYS", "resolve", "check_settings", "saved_settings", "resume_conflicts",
           "make_optimizer", "split", "limit_threads"]

#: The settings of a run, in run.json order.
TRAIN_KEYS = ("dataset", "data_dir", "backend", "hidden", "activation", "dropout", "optimizer",
              "lr", "momentum", "weight_decay", "schedule", "warmup_epochs", "batch_size",
              "epochs", "seed", "dtype", "val_split", "early_stopping", "threads", "target",
              "task", "max_categories")
# Settings that define the experiment: a resumed run must keep them.
_FIXED_ON_RESUME = ("dataset", "hidden", "activation", "dropout", "dtype", "val_split",
                    "optimizer", "seed", "target", "task", "max_categories")


#: Settings whose default is the optimizer's unless the dataset sets it for its default one.
_PER_OPTIMIZER = ("lr", "weight_decay", "momentum")


def resolve(args: argparse.Namespace, dataset_key: str, saved: dict[str, Any] | None
            ) -> tuple[dict[str, Any], set[str]]:
    """Settings from flags > saved run > DEFAULTS[dataset] > DEFAULTS['train']; flags given."""
    explicit = {k for k in TRAIN_KEYS if getattr(args, k, None) is not None}
    saved = saved or {}
    ds_defaults = DEFAULTS.get(dataset_key, {})
    chain = ChainMap({k: getattr(args, k) for k in explicit},
                     {k: v for k, v in saved.items() if k != "data_dir"},  # never a folder
                     {k: v for k, v in ds_defaults.items() if k not in _PER_OPTIMIZER},
                     DEFAULTS["train"])
    s: dict[str, Any] = {key: chain.get(key) for key in TRAIN_KEYS}
    s["hidden"] = tuple(s["hidden"])
    opt_defaults = DEFAULTS["optimizers"][s["optimizer"]]
    opt_is_default = "optimizer" not in explicit and "optimizer" not in saved and \
        s["optimizer"] == ds_defaults.get("optimizer", DEFAULTS["train"]["optimizer"])
    for key in _PER_OPTIMIZER:
        if s[key] is None:
            use_dataset = opt_is_default and key in ds_defaults
            s[key] = ds_defaults[key] if use_dataset else opt_defaults.get(key)
    return s, explicit


def check_settings(s: dict[str, Any]) -> None:
    """Refuse (exit 2) a warm-up not shorter than the run, or momentum the optimizer lacks."""
    if s["warmup_epochs"] >= s["epochs"]:
        raise CLIError(f"--warmup-epochs {s['warmup_epochs']} must be smaller than --epochs "
                       f"{s['epochs']}", EXIT_USAGE)
    if s["momentum"] is not None and s["optimizer"] not in ("sgd", "rmsprop") \
            and s["momentum"] > 0:
        raise CLIError(f"--momentum applies to sgd and rmsprop, not {s['optimizer']}",
                       EXIT_USAGE)


def _as_flag_text(key: str, value: Any) -> str:
    """A saved setting written as its command-line value (ValueError if it has none)."""
    if key == "hidden":
        if not isinstance(value, list) or not all(type(v) is int for v in value):
            raise ValueError("a list of integers")
        return ",".join(map(str, value)) or "none"
    if key in ("dataset", "data_dir") and not isinstance(value, str):
        raise ValueError("a string")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("a number or a name")
    return str(value)


def _check_saved(settings: dict[str, Any], model_file: Path) -> None:
    """Check the saved settings with the same parser that checks the flags (exit 3)."""
    from ._args import build_parser

    argv = ["train"]
    for key in TRAIN_KEYS:
        value = settings.get(key)
        if value is None:
            continue
        try:
            argv.append(f"--{key.replace('_', '-')}={_as_flag_text(key, value)}")
        except ValueError as exc:
            raise bad_field(model_file, f"settings.{key}", str(exc), value) from None
    try:
        build_parser().parse_args(argv)
    except CLIError as exc:
        raise CLIError(f"{model_file}: damaged metadata: the saved settings do not parse: "
                       f"{exc}", EXIT_DATA) from None


def saved_settings(ckpt: Any, model_file: Path) -> tuple[dict[str, Any], int]:
    """The settings and epochs done of a run saved by ``xpnet train`` (exit 3 when absent)."""
    settings = run_meta(ckpt, model_file).get("settings")
    if not isinstance(settings, dict):
        raise CLIError(f"{model_file} was not written by `xpnet train` (no run settings in it); "
                       "it cannot be resumed from the command line", EXIT_DATA)
    _check_saved(settings, model_file)
    if ckpt.training is None:
        raise CLIError(f"{model_file} holds no training position; it cannot be resumed",
                       EXIT_DATA)
    return settings, int(ckpt.training.get("epoch", 0))


def resume_conflicts(s: dict[str, Any], saved: dict[str, Any], explicit: set[str]) -> None:
    """Refuse (exit 2) the first flag given that differs from the run being resumed."""
    for key in _FIXED_ON_RESUME:
        if key not in explicit or key not in saved:
            continue
        new, old = s[key], saved[key]
        if key == "hidden":
            new, old = ",".join(map(str, new)), ",".join(map(str, old))
        if new != old:
            flag = "--" + key.replace("_", "-")
            raise CLIError(f"{flag} {new} differs from the run being resumed "
                           f"({old}); drop {flag} to resume, or start a new run in "
                           "another --out folder", EXIT_USAGE)


def make_optimizer(s: dict[str, Any], steps_per_epoch: int) -> Any:
    """The optimizer of the settings, with its schedule and warm-up counted in steps."""
    from .. import schedules
    from ..optimizers import OPTIMIZERS

    lr, warm = s["lr"], s["warmup_epochs"] * steps_per_epoch
    after = max((s["epochs"] - s["warmup_epochs"]) * steps_per_epoch, 1)
    third = max(1, (s["epochs"] - s["warmup_epochs"]) // 3) * steps_per_epoch
    sched: Any = {
        "cosine": lambda: schedules.CosineDecay(lr, total_steps=after),
        "step": lambda: schedules.StepDecay(lr, step_size=third, gamma=0.1),
        "exponential": lambda: schedules.ExponentialDecay(lr, gamma=0.01 ** (1.0 / after)),
        "constant": lambda: schedules.Constant(lr)}[s["schedule"]]()
    if warm > 0:
        sched = schedules.LinearWarmup(sched, warmup_steps=warm)
    kwargs: dict[str, Any] = {"lr": sched, "weight_decay": s["weight_decay"]}
    if s["optimizer"] in ("sgd", "rmsprop"):
        kwargs["momentum"] = s["momentum"]
    return OPTIMIZERS[s["optimizer"]](**kwargs)


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted train and validation row indices (val None at 0); exit 2 when either is empty."""
    try:  # the "random" policy of the package's one split helper (see xpnet._split)
        train, val = split_rows(n, fraction, policy="random", seed=seed, name="--val-split")
    except ValueError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    return cast(np.ndarray, train), cast("np.ndarray | None", val)  # "random": index arrays


def limit_threads(setting: str | int, backend: Any, work: int, explicit: bool
                  ) -> tuple[Any, str]:
    """Apply ``--threads`` on CPU backends: (limiter or None, words); exit 2 if no threadpoolctl."""
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
