"""``xpnet train``: train an MLP and keep a resumable run folder.

Everything that can be checked is checked before data is loaded or a device is touched;
the ``--out`` folder is locked first (`_runlock`: one run per folder);
then the data, the model and the output folder; then ``fit`` with a checkpoint and a run
record rewritten after every epoch. From the first ``run.json`` write on, every ending
leaves it final: ``completed``/``stopped_early``, ``interrupted`` (Ctrl-C or SIGTERM,
see `xpnet.training.interrupt`; exit status 130 or 143) or ``failed`` with the error.
Progress and the summary go to standard error; with ``--json`` the summary also goes to
standard output as one JSON object. With ``--distributed`` every rank of ``mpiexec`` or
``srun`` trains and rank 0 alone prints and writes (see `_distributed`).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import shlex
import signal
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..training.interrupt import _exit_status, _SignalGuard
from ._args import (
    AUTO_ONE_THREAD_BELOW,
    CURVES_FILE,
    DATASETS,
    DEFAULTS,
    EXIT_DATA,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    MODEL_FILE,
    RUN_FILE,
    CLIError,
)
from ._distributed import (
    global_steps,
    open_comm,
    per_rank_batch,
    rank_device,
    share_plan,
    together,
)
from ._io import check_output, dataset_inputs, dataset_spec, load_dataset
from ._output import console, fmt_secs, print_fitted, print_json, same_decimals, styled
from ._plots import plot_curves, require_matplotlib
from ._progress import TrainProgress
from ._records import (
    RESUME_FILE,
    RUN_SCHEMA,
    RunRecorder,
    default_out,
    make_output_folder,
    new_record,
    read_previous_record,
    recorder_callback,
    timestamp,
)
from ._runlock import RunLock
from ._settings import (
    check_settings,
    limit_threads,
    make_optimizer,
    resolve,
    resume_conflicts,
    saved_settings,
    split,
)
from ._tables import (
    TableData,
    check_dataset_file,
    check_table_flags,
    is_table,
    load_table,
    saved_table,
    scaled_model,
    table_scores,
)

__all__ = ["cmd_train"]

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


@dataclass
class _Run:
    """What one ``xpnet train`` has worked out so far, passed between its phases."""

    args: argparse.Namespace
    command: str
    comm: Any = None
    out: Path | None = None
    lock: RunLock | None = None
    spec_kind: str = "name"
    spec: str = ""
    table: bool = False  # --dataset is a table file (see _tables)
    saved: dict[str, Any] | None = None
    done: int = 0
    s: dict[str, Any] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    backend: Any = None
    ds: Any = None
    X: Any = None
    y: Any = None
    val: Any = None
    n_train: int = 0
    bs: int = 0
    global_bs: int = 0
    steps: int = 0
    optimizer: Any = None
    model: Any = None
    resume: dict[str, Any] | None = None
    limiter: Any = None
    threads_txt: str = ""
    data_summary: str = ""
    model_file: Path | None = None
    record_path: Path | None = None  # other ranks: rank 0's run.json, marked if they fail
    resume_file: Path | None = None
    replaces: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    recorder: RunRecorder | None = None
    early: Any = None
    checkpoint: Any = None
    history: Any = None
    start_epoch: int = 0


def _check_flags(args: argparse.Namespace) -> None:
    """Flag combinations that are wrong whatever the data (exit status 2)."""
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
        require_matplotlib()


def _locate_run(run: _Run) -> None:
    """The dataset spec, and with --resume the settings and epochs of the run in --out."""
    args = run.args
    run.spec_kind, run.spec = dataset_spec(args.dataset) if args.dataset is not None \
        else ("name", DEFAULTS["train"]["dataset"])
    out = run.out
    if out is None:
        return
    if args.resume:
        model_file = run.resume_file = _resume_source(out)
        if model_file is None:
            raise CLIError(f"nothing to resume: {out / MODEL_FILE} does not exist; run "
                           "without --resume to start a new run", EXIT_DATA)
        run.saved, run.done = saved_settings(model_file)
        if args.dataset is None:
            run.spec_kind = "name" if run.saved["dataset"] in DATASETS else "path"
            run.spec = run.saved["dataset"]
    elif not args.overwrite and any((out / name).exists()
                                    for name in (MODEL_FILE, RESUME_FILE)):
        raise CLIError(f"{out} already holds a run ({MODEL_FILE}); pass --resume to "
                       "continue it, --overwrite to replace it, or choose another --out",
                       EXIT_USAGE)


def _resume_source(out: Path) -> Path | None:
    """Of the model file and the resume file, the checkpoint further on (for --resume)."""
    from ..checkpoint import CheckpointError, load_checkpoint

    found = [p for p in (out / RESUME_FILE, out / MODEL_FILE) if p.is_file()]
    if len(found) < 2:
        return found[0] if found else None

    def position(path: Path) -> tuple[int, int]:
        try:
            training = load_checkpoint(path, backend="numpy").training or {}
        except CheckpointError:
            return (-1, -1)
        return int(training.get("epoch", 0)), int(training.get("step", 0))

    return max(found, key=position)  # a tie: the resume file, listed first


def _lock_out(run: _Run) -> None:
    """Lock --out before anything reads it: one run per folder (exit status 2 if in use)."""
    args = run.args
    if args.no_save or not args.out:
        return
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder", EXIT_USAGE)
    run.lock = RunLock(out, run.command)
    run.out = out
    _note_stale(run)


def _note_stale(run: _Run) -> None:
    if run.lock is not None and run.lock.stale is not None:
        console(stderr=True, quiet=run.args.quiet).print(
            f"xpnet: note: cleared the stale lock of an earlier run in {run.lock.folder} "
            f"(pid {run.lock.stale.get('pid')}, no longer running)")


def _plan(run: _Run) -> None:
    """Settings from flags, the resumed run and the defaults; all checks before data."""
    _locate_run(run)
    check_dataset_file(run.spec_kind, run.spec)
    run.table = is_table(run.spec_kind, run.spec)
    resumed_table = saved_table(run.resume_file) if run.table and \
        run.saved is not None and run.resume_file is not None else None
    check_table_flags(run.args, run.table, run.saved is not None, resumed_table)
    dataset_key = "table" if run.table else run.spec if run.spec_kind == "name" else "train"
    run.s, run.explicit = resolve(run.args, dataset_key, run.saved)
    run.s["dataset"] = run.spec
    check_settings(run.s)
    _check_outputs(run)
    _rank_settings(run)
    if run.saved is not None:
        resume_conflicts(run.s, run.saved, run.explicit)
        if run.done >= run.s["epochs"]:
            raise CLIError(f"the run in {run.out} has already done {run.done} epochs; pass "
                           f"--epochs N with N > {run.done} to train further", EXIT_USAGE)


def _check_outputs(run: _Run) -> None:
    """The files written in --out: new or regular files, none of them the dataset (exit 2)."""
    if run.out is None:
        return
    inputs = dataset_inputs(run.spec, run.s["data_dir"])
    for name in (MODEL_FILE, RESUME_FILE, RUN_FILE, CURVES_FILE):
        check_output(run.out / name, "--out", inputs)


def _rank_settings(run: _Run) -> None:
    """With several ranks: their number, and the batch per rank of a resumed run."""
    if run.comm.size > 1:
        run.s["ranks"] = run.comm.size
    run.s["batch_size"] = per_rank_batch(run.s, run.saved, run.explicit, run.comm.size)


def _load(run: _Run) -> None:
    """The backend, the dataset, the validation split and the optimizer."""
    from ..backends import get_backend

    args = run.args
    run.backend = get_backend(*rank_device(run.comm, run.s["backend"], args.device))
    if run.table:
        saved = saved_table(run.resume_file) if run.resume_file is not None else None
        ds = run.ds = load_table(run.spec, args, saved)
    else:
        ds = run.ds = load_dataset(run.spec, run.s["data_dir"], progress=not args.quiet)
    if run.spec_kind == "path" and ds.name in DATASETS and run.saved is None:
        # a folder holding the real MNIST files gets MNIST's defaults
        run.s, run.explicit = resolve(args, ds.name, None)
        run.s["dataset"] = run.spec
        check_settings(run.s)
        _rank_settings(run)
    train_idx, val_idx = split(ds.x_train.shape[0], run.s["val_split"], run.s["seed"])
    if val_idx is None:  # every row, in order: no copy
        run.X, run.y, run.val = ds.x_train, ds.y_train, None
    else:
        run.X, run.y = ds.x_train[train_idx], ds.y_train[train_idx]
        run.val = (ds.x_train[val_idx], ds.y_train[val_idx])
        # the run keeps the dataset with its training rows only, so that the full array
        # is freed: one float copy of the data during training, not two
        run.ds = replace(ds, x_train=run.X, y_train=run.y)
    run.data_summary = ds.summary()  # the dataset as loaded, before the split
    run.n_train = run.X.shape[0]
    run.bs = min(run.s["batch_size"], run.n_train)
    run.global_bs, run.steps = global_steps(run.n_train, run.bs, run.comm.size)
    run.optimizer = make_optimizer(run.s, run.steps)


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_model_memory(run: _Run) -> None:
    """Refuse (exit 2, with the numbers) weights and gradients over the host's memory."""
    ds, s = run.ds, run.s
    sizes = [ds.n_features, *s["hidden"], ds.num_classes]
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    n = sum(a * b + b for a, b in pairs)
    itemsize = 8 if s["dtype"] == "float64" else 4
    largest = max(a * b for a, b in pairs)
    need = 2 * n * itemsize + 8 * largest  # + the float64 draw of the largest layer
    avail = _available_memory() if run.backend is None or run.backend.is_host else None
    if avail is not None and need > avail:
        raise CLIError(
            f"--hidden {','.join(map(str, s['hidden']))}: the model has {n:,} parameters; "
            f"training needs at least {need / 2**30:,.1f} GiB ({n:,} x {itemsize} bytes "
            f"of {s['dtype']} for the weights, as much for their gradients) but "
            f"{avail / 2**30:,.1f} GiB of memory is available; lower --hidden", EXIT_USAGE)


def _build_model(run: _Run) -> None:
    """A new model, or the resumed run's model, optimizer state and training position."""
    from ..checkpoint import load_checkpoint
    from ..model import MLP

    ds, s = run.ds, run.s
    if run.saved is None:
        _check_model_memory(run)
    if run.saved is None and run.table:  # numeric columns scaled inside the model
        run.model = scaled_model([ds.n_features, *s["hidden"], ds.num_classes],
                                 ds.encoder.numeric_features, run.X,
                                 regression=ds.regression, activation=s["activation"],
                                 dropout=s["dropout"], backend=run.backend, dtype=s["dtype"],
                                 seed=s["seed"])
        return
    if run.saved is None:
        run.model = MLP([ds.n_features, *s["hidden"], ds.num_classes],
                        activation=s["activation"], dropout=s["dropout"], backend=run.backend,
                        dtype=s["dtype"], seed=s["seed"])
        return
    assert run.out is not None and run.resume_file is not None
    ckpt = load_checkpoint(run.resume_file, backend=run.backend)
    model = run.model = ckpt.model
    if model.in_features != ds.n_features or model.out_features < ds.num_classes:
        raise CLIError(f"{run.resume_file} has {model.in_features} inputs and "
                       f"{model.out_features} classes but {ds.name} has {ds.n_features} "
                       f"features and {ds.num_classes} classes", EXIT_DATA)
    run.resume = ckpt.training or {}
    _check_resumed(run, model)
    if ckpt.optimizer is not None and type(ckpt.optimizer) is type(run.optimizer):
        run.optimizer.state = ckpt.optimizer.state


def _check_resumed(run: _Run, model: Any) -> None:
    """Saved settings against the saved model; a mid-epoch position against the batch size."""
    assert run.saved is not None and run.resume_file is not None
    hidden = [layer.units for layer in model.layers if hasattr(layer, "units")][:-1]
    if list(run.s["hidden"]) != hidden:
        raise CLIError(f"{run.resume_file}: its settings say hidden "
                       f"{','.join(map(str, run.s['hidden'])) or 'none'} but the saved model "
                       f"has hidden layers {','.join(map(str, hidden)) or 'none'}; the file "
                       "was edited or damaged", EXIT_DATA)
    resume = run.resume or {}
    step = resume.get("step", 0)
    saved_bs = run.saved.get("batch_size")
    if not step or not isinstance(saved_bs, int):
        return
    ranks = run.saved.get("ranks", 1) if isinstance(run.saved.get("ranks", 1), int) else 1
    was = min(saved_bs, run.n_train) * ranks
    if was != run.global_bs:
        raise CLIError(f"--batch-size {run.global_bs} differs from the run being resumed "
                       f"({was}), which was saved in the middle of epoch "
                       f"{resume.get('epoch', 0) + 1} (step {step}): resume with its "
                       "batch size (drop --batch-size); it can change from the next "
                       "epoch's start", EXIT_USAGE)


def _model_like_rank0(run: _Run, config: dict[str, Any]) -> None:
    """The other ranks' model: rank 0's architecture (its weights come at the start of fit)."""
    from ..model import Sequential

    run.model = Sequential.from_config(config, backend=run.backend)


def _limit_threads(run: _Run) -> None:
    """--threads; auto with several ranks on a node shares the node's cores among them."""
    setting, work = run.s["threads"], run.bs * run.model.num_params
    if setting == "auto" and run.comm.local_size > 1 and work >= AUTO_ONE_THREAD_BELOW:
        setting = max(1, (os.cpu_count() or 1) // run.comm.local_size)
    run.limiter, run.threads_txt = limit_threads(setting, run.backend, work,
                                                 "threads" in run.explicit)


def _open_records(run: _Run) -> None:
    """The output folder (a new default one is created and locked here) and run.json."""
    args, ds, s = run.args, run.ds, run.s
    default_folder = run.out is None and not args.no_save
    if default_folder:
        run.out = default_out(ds.name if run.spec_kind == "path" else run.spec)
        run.lock = RunLock(run.out, run.command)
    if run.out is not None:
        run.replaces = make_output_folder(run.out, latest=default_folder,
                                          overwrite=args.overwrite)
        run.model_file = run.out / MODEL_FILE
    dataset_info = {
        "name": ds.name, "spec": run.spec, "data_dir": s["data_dir"], "source": ds.source,
        "sha256": dict(ds.sha256), "n_train": int(run.n_train),
        "n_val": 0 if run.val is None else int(run.val[0].shape[0]),
        "n_test": int(ds.x_test.shape[0]), "n_features": ds.n_features,
        "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
        "class_names": list(ds.class_names)}
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    run.meta = {"xpnet_cli": RUN_SCHEMA, "settings": settings, "dataset": {
        k: dataset_info[k] for k in ("name", "spec", "data_dir", "source", "n_features",
                                     "num_classes", "image_shape", "class_names")}}
    if run.table:  # the encoding, applied again by evaluate and predict
        dataset_info["table"] = run.meta["dataset"]["table"] = ds.encoder.to_dict()
    previous = read_previous_record(run.out) if run.saved is not None and run.out else None
    run.record = new_record(
        command=run.command, settings=settings, previous=previous, resume=run.resume,
        resuming=run.saved is not None, backend=run.backend, dataset=dataset_info,
        model=run.model, optimizer=run.optimizer, steps_per_epoch=run.steps,
        batch_size=run.global_bs, saving=run.out is not None)
    if run.comm.size > 1:
        run.record["ranks"] = run.comm.size
    run.recorder = RunRecorder(run.out / RUN_FILE if run.out else None, run.record,
                               (run.resume or {}).get("history"), run.replaces)
    run.recorder.write()


def _announce(run: _Run) -> None:
    """Tell the user what is about to happen (standard error), fitting the terminal's width."""
    from .._version import __version__
    from ..schedules import describe_lr

    s, ds, backend = run.s, run.ds, run.backend
    con = console(stderr=True, quiet=run.args.quiet)
    say = lambda text: print_fitted(con, text, _INDENT)  # noqa: E731
    say(styled((f"xpnet {__version__}", "bold"), "  backend ", (backend.name, "bold"),
               f" ({backend.device_name}), {s['dtype']}, seed {s['seed']}"
               + (f", threads {run.threads_txt}" if backend.is_host else "")))
    say(_data_line(ds, run.data_summary, con.width))
    vtxt = f", validation {run.val[0].shape[0]:,} ({s['val_split']:g})" if run.val else ""
    ttxt = "; test: a held-out file, with xpnet evaluate" if run.table \
        else f", test {ds.x_test.shape[0]:,}"
    say(f"split    train {run.n_train:,}{vtxt}{ttxt}")
    say(f"model    {_sizes(run)} ({s['activation']}"
        f"{', dropout ' + format(s['dropout'], 'g') if s['dropout'] else ''}), "
        f"{run.model.num_params:,} parameters")
    batch = f"{run.global_bs} ({run.bs} x {run.comm.size} ranks)" if run.comm.size > 1 \
        else f"{run.bs}"
    say(f"training {_optimizer_text(s)}, batch {batch}, {s['epochs']} "
        f"epoch{'s' if s['epochs'] != 1 else ''} of {run.steps} steps")
    say(f"lr       {describe_lr(run.optimizer.lr)}")
    if run.resume is not None:
        done, step = run.resume.get("epoch", 0), run.resume.get("step", 0)
        # as the Ctrl-C message names it: "epoch 2, step 44" is saved (44 steps of epoch 2)
        where = f"epoch {done + 1}, step {step}" if step else f"epoch {done}"
        say(f"resuming {run.out} after {where}")
    if run.out is not None:
        say(f"output   {run.out}")


_INDENT = 9  # the value column of the lines _announce prints ("data     ...")


def _data_line(ds: Any, summary: str, width: int) -> str:
    """The ``data`` line; if too wide, without the counts (``split`` has them), then the source."""
    what = (f"{'x'.join(map(str, ds.image_shape))} images ({ds.n_features} features)"
            if len(ds.image_shape) >= 2 else f"{ds.n_features} features")
    shorter = f"{ds.name}: {what}, {ds.num_classes} classes"
    if isinstance(ds, TableData):  # a table: its target, and regression has no classes
        shorter = ds.short_summary()
    for text in (summary, f"{shorter} (source: {ds.source})", shorter):
        if _INDENT + len(text) <= width:
            return "data     " + text
    return "data     " + summary  # broken at spaces by print_fitted


def _optimizer_text(s: dict[str, Any]) -> str:
    """The optimizer's name and the settings that are not zero, e.g. ``sgd (momentum 0.9)``."""
    extras = [f"{label} {s[key]:g}" for key, label in (("momentum", "momentum"),
                                                       ("weight_decay", "weight decay"))
              if s.get(key)]
    return s["optimizer"] + (f" ({', '.join(extras)})" if extras else "")


def _sizes(run: _Run) -> str:
    return " → ".join(map(str, [run.ds.n_features, *run.s["hidden"], run.ds.num_classes]))


def _fit(run: _Run) -> None:
    """Train, with the checkpoint and run.json rewritten after every epoch."""
    from ..callbacks import EarlyStopping, ModelCheckpoint
    from ..ops._malloc import owned_process
    from ..training import fit

    s = run.s
    # the progress comes first, where fit(verbose=1) would put the library's own
    callbacks: list[Any] = [] if run.args.quiet else [TrainProgress()]
    if s["early_stopping"] > 0:
        run.early = EarlyStopping(monitor="val_loss", patience=s["early_stopping"],
                                  restore_best_weights=True,
                                  best_weights=_resumed_best_weights(run))
        callbacks.append(run.early)
    if run.model_file is not None and run.out is not None and s["early_stopping"] > 0:
        # the last state to resume from, and the best epoch as the run's model
        run.checkpoint = ModelCheckpoint(run.out / RESUME_FILE, metadata=run.meta)
        callbacks += [run.checkpoint, _best_model(run)]
    elif run.model_file is not None:
        run.checkpoint = ModelCheckpoint(run.model_file, metadata=run.meta)
        callbacks.append(run.checkpoint)
    if run.recorder is not None:  # rank 0 only
        callbacks.append(recorder_callback(run.recorder))
    run.start_epoch = int((run.resume or {}).get("epoch", 0))
    with owned_process():  # the command owns its process: glibc malloc tuning on NumPy
        run.history = fit(run.model, run.X, run.y, epochs=s["epochs"], batch_size=run.bs,
                          optimizer=run.optimizer, validation_data=run.val,
                          callbacks=callbacks, seed=s["seed"], verbose=0, resume=run.resume,
                          distributed=run.comm)


def _resumed_best_weights(run: _Run) -> dict[str, Any] | None:
    """The resumed run's best-epoch parameters: its model file, if it holds that epoch."""
    from ..checkpoint import CheckpointError, load_checkpoint

    if run.resume is None or run.resume_file is None or run.model_file is None or \
            run.resume_file == run.model_file or not run.model_file.is_file():
        return None
    key = "val_loss" if run.val is not None else "loss"  # what EarlyStopping watches
    values = (run.resume.get("history") or {}).get(key) or []
    best, at = math.inf, -1
    for epoch, value in enumerate(values):
        if isinstance(value, (int, float)) and value < best:
            best, at = float(value), epoch
    try:
        ckpt = load_checkpoint(run.model_file, backend=run.backend)
    except CheckpointError:
        return None
    if at < 0 or (ckpt.training or {}).get("epoch") != at + 1:
        return None
    return dict(ckpt.model.params)


def _best_model(run: _Run) -> Any:
    """A callback saving the model, optimizer state and position at each best epoch."""
    from ..callbacks import Callback
    from ..checkpoint import save

    key = "val_loss" if run.val is not None else "loss"  # what EarlyStopping watches
    earlier = (run.resume or {}).get("history", {}).get(key) or []
    finite = [float(v) for v in earlier if isinstance(v, (int, float)) and math.isfinite(v)]
    meta = run.meta
    path: Path = run.model_file  # type: ignore[assignment]  # set when saving

    class BestModel(Callback):
        rank_zero_only = True
        best = min(finite, default=math.inf)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            value = logs.get(key)
            if value is None or not value < self.best:
                return
            self.best = float(value)
            save(self.model, path, metadata=meta,
                 training=self.trainer.state.to_record() if self.trainer else None)

    return BestModel()


def _finish(run: _Run) -> dict[str, Any]:
    """Test score and curves; run.json's final record. The summary's data."""
    history, early = run.history, run.early
    if run.table:  # no test split: the validation rows' scores
        test, validation = None, table_scores(run.model, run.ds, run.val)
    else:
        test, validation = run.model.evaluate(run.ds.x_test, run.ds.y_test), None
    secs = list(history.history.get("seconds", [])[run.start_epoch:])
    train_secs = float(sum(secs))
    epochs_run = len(history.epoch) - run.start_epoch
    sps = run.n_train * epochs_run / train_secs if train_secs > 0 else None
    curves = None
    if run.args.plot and run.out is not None:
        curves = run.out / CURVES_FILE
        plot_curves(run.record["history"], curves,
                    f"{run.ds.name}: {_sizes(run)}, {run.s['optimizer']} lr {run.s['lr']:g}")
    status = "stopped_early" if history.stopped_early else "completed"
    if run.table:
        run.record["validation"] = validation
    run.record.update(status=status, finished_at=timestamp(), test=test,
                      train_seconds=train_secs, samples_per_second=sps,
                      stopped_early=history.stopped_early,
                      best_epoch=None if early is None or early.best_epoch < 0
                      else early.best_epoch + 1)
    run.record["files"]["curves"] = CURVES_FILE if curves else None
    assert run.recorder is not None
    run.recorder.write()
    return {"status": status, "test": test, "train_secs": train_secs, "sps": sps,
            "curves": curves, "validation": validation}


def _print_summary(run: _Run, result: dict[str, Any], total: float) -> None:
    """The result table (standard error) and, with --json, the summary (standard output)."""
    from rich.table import Table

    history, out, test = run.history, run.out, result["test"]
    table = Table(title="result", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")   # a long path folds onto the next row, whole
    if test is not None:
        table.add_row("test accuracy", f"{test.get('accuracy', float('nan')):.4f}")
        table.add_row("test loss", f"{test['loss']:.4f}")
    for name, text in _validation_rows(result.get("validation")):
        table.add_row(name, text)
    ep_txt = f"{len(history.epoch)}"
    if run.start_epoch:
        ep_txt += f" ({run.start_epoch} before resuming)"
    if history.stopped_early:
        ep_txt += f", stopped early (best epoch {run.record['best_epoch']})"
    table.add_row("epochs", ep_txt)
    table.add_row("time", f"{fmt_secs(total)} (training {fmt_secs(result['train_secs'])})")
    table.add_row("samples/s", f"{result['sps']:,.0f}" if result["sps"] else "-")
    if out is not None:
        table.add_row("model", str(run.model_file))
        table.add_row("run record", str(out / RUN_FILE))
        if result["curves"]:
            table.add_row("curves", str(result["curves"]))
        table.add_row("next", f"xpnet evaluate {shlex.quote(str(out))}"
                      + (" HELD-OUT-FILE" if run.table else ""))
    else:
        table.add_row("model", "not saved (--no-save)")
    console(stderr=True, quiet=run.args.quiet).print(table)
    if run.args.json:
        curves = result["curves"]
        print_json({
            "status": result["status"], "dataset": run.ds.name, "backend": run.backend.name,
            "device": run.backend.device_name, "test": test,
            **({"validation": result["validation"]} if run.table else {}),
            "epochs": len(history.epoch),
            "stopped_early": history.stopped_early, "train_seconds": result["train_secs"],
            "total_seconds": total, "samples_per_second": result["sps"],
            "history": run.record["history"], "settings": run.record["settings"],
            "out": str(out.resolve()) if out else None,
            "model": str(run.model_file.resolve()) if out and run.model_file else None,
            "run_json": str((out / RUN_FILE).resolve()) if out else None,
            "curves": str(curves.resolve()) if curves else None})


def _validation_rows(scores: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The summary's rows for a table's validation scores (none without validation rows)."""
    if not scores:
        return []
    if "r2" in scores:  # MAE and RMSE in the target's units: the same decimals
        mae, rmse = same_decimals([scores["mae"], scores["rmse"]])
        return [("validation R²", f"{scores['r2']:.4f}"),
                ("validation MAE", mae), ("validation RMSE", rmse)]
    return [("validation accuracy", f"{scores['accuracy']:.4f}"),
            ("validation loss", f"{scores['loss']:.4f}")]


# ----------------------------------------------------------------------------- endings
def _resume_hint(run: _Run) -> str | None:
    """The command that continues this run, when its folder holds a checkpoint."""
    if run.out is None or _resume_source(run.out) is None:
        return None
    return f"xpnet train --out {shlex.quote(str(run.out))} --resume"


def _write_final(run: _Run, guard: _SignalGuard) -> str:
    """Rewrite run.json with its final status; a note for the message if that failed."""
    if run.recorder is None:
        return ""
    try:
        with guard.deferred():
            run.recorder.write()
    except OSError as exc:
        return f" ({RUN_FILE} could not be updated: {exc})"
    return ""


def _interrupted(run: _Run, exc: KeyboardInterrupt, guard: _SignalGuard) -> int:
    """Ctrl-C or SIGTERM: run.json says interrupted, the user learns how to continue."""
    code = _exit_status(exc, guard.received)
    try:
        name = signal.Signals(code - 128).name
    except ValueError:
        name = f"signal {code - 128}"
    run.record.update(status="interrupted", finished_at=timestamp(), signal=name)
    note = _write_final(run, guard)
    hint = _resume_hint(run)
    done, epochs = run.record["epochs_done"], run.s["epochs"]
    if run.out is None:
        message = f"interrupted ({name}) after {done} epoch(s); nothing was saved (--no-save)"
    elif _kept(run):
        hint = None
        message = f"interrupted ({name}) before the new run saved anything{_kept(run)}"
    elif hint is None:
        message = (f"interrupted ({name}) before the first epoch finished; nothing to resume "
                   f"in {run.out}")
    else:
        where = f"epoch {done}/{epochs}"
        if getattr(exc, "checkpoint", None) and getattr(exc, "step", 0):
            where = f"epoch {exc.epoch}, step {exc.step}"  # type: ignore[attr-defined]
        saved_in = run.checkpoint.path if run.checkpoint is not None else run.out / MODEL_FILE
        message = (f"interrupted ({name}); {where} is saved in {saved_in}. "
                   f"Continue with:\n  {hint}")
    err = console(stderr=True)
    # lines that fit the terminal, broken between words; a path and the command to
    # copy (the indented line) stay whole
    err.print("\n".join(line if len(line) <= err.width or line.startswith("  ") else
                         textwrap.fill(line, err.width, subsequent_indent="  ",
                                       break_long_words=False, break_on_hyphens=False)
                         for line in f"xpnet: {message}{note}".split("\n")))
    if run.args.json:
        print_json({"status": "interrupted", "exit_code": code, "signal": name,
                    "message": message.replace("\n  ", " ") + note, "resume": hint})
    return code


def _disk_full(run: _Run, exc: OSError) -> str:
    """A full disk's message: the file (or the free-space check) and how to go on."""
    what = f"no space left on device while writing {exc.filename}" if exc.filename \
        else str(exc.strerror or exc)
    hint = _resume_hint(run)
    then = f"continue with: {hint}" if hint else "run the command again"
    return f"{what}; free some space, then {then}"


def _failure(run: _Run, exc: BaseException) -> tuple[str, int | None]:
    """The one-line message of a run that failed, and its exit status (None: main decides)."""
    from ..training import NonFiniteLossError

    if isinstance(exc, NonFiniteLossError):
        saved_txt = (f"; epoch {run.record['epochs_done']} is saved in {run.out / MODEL_FILE}"
                     if run.out is not None and run.record["epochs_done"] else "")
        return (f"training diverged: the loss or a gradient became NaN/inf at epoch "
                f"{exc.epoch}, step {exc.step}; lower --lr (now {run.s['lr']:g}), add "
                f"--warmup-epochs, or try --optimizer adam{saved_txt}", EXIT_FAILURE)
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return _disk_full(run, exc), EXIT_DATA
    if isinstance(exc, CLIError):
        return str(exc), None
    return f"{type(exc).__name__}: {exc}", None


def _kept(run: _Run) -> str:
    """``--overwrite`` that ended before its first save: a note that the earlier run stays."""
    if run.recorder is None or not run.recorder.pending:
        return ""
    return f"; the earlier run in {run.out} is kept as it was"


def _failed(run: _Run, exc: BaseException, guard: _SignalGuard) -> BaseException:
    """Mark run.json failed, with the error; return the exception to raise."""
    message, code = _failure(run, exc)
    run.record.update(status="failed", error=message, finished_at=timestamp())
    note = _write_final(run, guard) + _kept(run)
    if code is not None:
        return CLIError(message + note, code)
    if note and isinstance(exc, Exception):
        from ._failures import classify

        code, message = classify(exc, "train")
        return CLIError(message + note, code)
    return exc


def _note_rank_failure(run: _Run, exc: BaseException) -> None:
    """Mark a failure of this rank alone (not divergence or interrupt): main() ends the job."""
    from ..training import NonFiniteLossError

    if run.comm.size > 1 and run.history is None and \
            not isinstance(exc, (NonFiniteLossError, KeyboardInterrupt)):
        run.args.rank_failure = True


def _train_on_other_rank(run: _Run) -> int:
    """Ranks other than 0: train silently; rank 0 reports how the run ended."""
    from ..training import NonFiniteLossError

    try:
        _fit(run)
    except KeyboardInterrupt as exc:  # every rank stopped at the same step
        return _exit_status(exc)
    except NonFiniteLossError:  # likewise; rank 0 says where
        return EXIT_FAILURE
    except BaseException as exc:
        _note_rank_failure(run, exc)
        if getattr(run.args, "rank_failure", False):
            _record_rank_failure(run, exc)
        raise
    return EXIT_OK


def _lock_and_plan(run: _Run) -> None:
    _lock_out(run)
    _plan(run)


def _prepare(run: _Run) -> None:
    """Lock, plan, load, build, thread limits and the run folder; agreed on every rank."""
    comm = run.comm
    if comm.size == 1:
        _lock_out(run)
        _plan(run)
        _load(run)
        _build_model(run)
        _limit_threads(run)
        _open_records(run)
        return
    together(comm, lambda: _lock_and_plan(run), on="root")
    share_plan(comm, run)
    together(comm, lambda: _load(run), on="root")  # first: a download happens once
    together(comm, lambda: _load(run), on="others")
    together(comm, lambda: _build_model(run), on="root")
    config = comm.bcast(run.model.get_config() if comm.is_root else None)
    together(comm, lambda: _model_like_rank0(run, config), on="others")
    together(comm, lambda: _limit_threads(run))
    together(comm, lambda: _open_records(run), on="root")
    # the run record's path: rank 0 marks it when a watchdog ends the job, another rank
    # when it fails alone (the job then ends before rank 0 can)
    out = comm.bcast(str(run.out) if comm.is_root and run.out is not None else None)
    if comm.is_root:
        comm.on_abort(lambda code, message: _aborted(run, code, message))
    elif out is not None:
        run.record_path = Path(out) / RUN_FILE
        comm.on_abort(lambda code, message: _aborted_waiting(run, code, message))


def _aborted(run: _Run, code: int, message: str) -> None:
    """Aborting while run.json says running: mark it failed and, with --json, print the error."""
    if run.recorder is None or run.record.get("status") != "running":
        return  # already final, and reported
    run.record.update(status="failed", error=message, finished_at=timestamp())
    run.recorder.write()
    if run.args.json:
        print_json({"status": "error", "exit_code": code, "message": message})


def _record_rank_failure(run: _Run, exc: BaseException) -> None:
    """This rank failed alone and is about to end the job: mark rank 0's run.json failed."""
    from ._failures import classify

    _mark_failed(run, f"rank {run.comm.rank} of {run.comm.size}: {classify(exc, 'train')[1]}")


def _aborted_waiting(run: _Run, code: int, message: str) -> None:
    """A rank's wait timed out: unless rank 0 reports first, mark run.json failed, say so."""
    from ..distributed import EXIT_TIMEOUT

    if code != EXIT_TIMEOUT:
        return  # a rank failing alone has reported itself
    if run.comm.save_in_progress is None:
        time.sleep(_RANK0_GRACE)
    if _mark_failed(run, message) and "--json" in (getattr(run.args, "argv", None) or ()):
        print_json({"status": "error", "exit_code": code, "message": message})


#: Seconds another rank that timed out leaves rank 0 to report first (it may have timed
#: out too, waiting for a third rank); then that rank marks run.json itself.
_RANK0_GRACE = 1.0


def _mark_failed(run: _Run, message: str) -> bool:
    """Mark rank 0's run.json failed with another rank's `message`; True if it was running."""
    from ._output import write_json

    if run.record_path is None:
        return False
    record = read_previous_record(run.record_path.parent)
    if record is None or record.get("status") != "running":
        return False
    record.update(status="failed", error=message, finished_at=timestamp())
    try:
        write_json(run.record_path, record)
    except OSError:
        return False
    return True


def _run_recorded(run: _Run, guard: _SignalGuard, t_start: float) -> int:
    """From the first run.json write on: every ending leaves run.json final."""
    try:
        _announce(run)
        _fit(run)
        result = _finish(run)
    except KeyboardInterrupt as exc:
        return _interrupted(run, exc, guard)
    except BaseException as exc:
        _note_rank_failure(run, exc)
        raised = _failed(run, exc, guard)
        if raised is exc:
            raise
        raise raised from None
    _print_summary(run, result, time.perf_counter() - t_start)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``xpnet train``: 0 when done or stopped early, 130 after SIGINT, 143 after SIGTERM."""
    t_start = time.perf_counter()
    _check_flags(args)
    comm = args.comm = open_comm(args)  # main() reads it to end each rank
    if not comm.is_root:  # rank 0 alone prints and writes
        args.quiet, args.json = True, False
    run = _Run(args=args, command="xpnet " + " ".join(shlex.quote(a) for a in args.argv),
               comm=comm)
    with _SignalGuard() as guard:
        try:
            _prepare(run)
            if not comm.is_root:
                return _train_on_other_rank(run)
            return _run_recorded(run, guard, t_start)
        except OSError as exc:  # before run.json was written: nothing to mark
            if exc.errno not in _DISK_FULL:
                raise
            raise CLIError(_disk_full(run, exc), EXIT_DATA) from None
        finally:
            if run.limiter is not None:
                run.limiter.restore_original_limits()
            if run.lock is not None:
                run.lock.release()
