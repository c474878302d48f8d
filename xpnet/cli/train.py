"""``xpnet train``: train an MLP and keep a resumable run folder.

Everything that can be checked is checked before data is loaded or a device is touched
(a resumed checkpoint from its header; its tensors are read, once, when the model is
built); the ``--out`` folder is locked first (`_runlock`: one run per folder);
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
import contextlib
import errno
import itertools
import math
import os
import shlex
import signal
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..backends import get_backend
from ..callbacks import Callback, EarlyStopping, ModelCheckpoint
from ..checkpoint import CheckpointError, _read_records, load_checkpoint, save
from ..distributed import EXIT_TIMEOUT
from ..model import MLP, Sequential
from ..ops._malloc import owned_process
from ..schedules import describe_lr
from ..training import NonFiniteLossError, fit
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
    classify,
)
from ._distributed import (
    global_steps,
    json_asked,
    open_comm,
    per_rank_batch,
    rank_device,
    share_plan,
    together,
)
from ._io import check_output, dataset_inputs, dataset_spec, load_dataset
from ._output import (
    console,
    fmt_secs,
    kv_table,
    print_fitted,
    print_json,
    same_decimals,
    styled,
    write_json,
)
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
class _Held:
    """What the command releases however it ends: the ``--out`` lock, the thread limits."""

    lock: RunLock | None = None
    limiter: Any = None


@dataclass(frozen=True)
class _Plan:
    """The dataset and the settings, all checked before any data is read (`_plan`)."""

    spec_kind: str
    spec: str
    s: dict[str, Any]
    explicit: set[str]
    table: bool = False  # --dataset is a table file (see _tables)
    saved: dict[str, Any] | None = None  # with --resume: the run's settings
    resume_file: Path | None = None  # and its checkpoint further on
    resumed_table: Any = None  # with --resume of a table run: its encoding (every rank)


@dataclass(frozen=True)
class _Data:
    """The loaded data, split and batched, and the optimizer for its steps (`_load`)."""

    backend: Any
    ds: Any  # its training rows only, after the split
    val: Any
    n_train: int
    bs: int
    global_bs: int
    steps: int
    optimizer: Any
    summary: str  # the dataset as loaded, before the split


@dataclass(frozen=True)
class _Records:
    """The run folder and run.json (`_open_records`; rank 0, others know only its path)."""

    out: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    recorder: RunRecorder | None = None
    model_file: Path | None = None
    record_path: Path | None = None  # other ranks: rank 0's run.json, marked if they fail


@dataclass(frozen=True)
class _Run:
    """A prepared run (`_prepare`): what training, the summary and the endings read."""

    args: argparse.Namespace
    comm: Any
    plan: _Plan
    data: _Data
    model: Any
    resume: dict[str, Any] | None  # the resumed checkpoint's training position (rank 0)
    threads_txt: str
    rec: _Records

    @property
    def start_epoch(self) -> int:
        return int((self.resume or {}).get("epoch", 0))


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


def _locate_run(args: argparse.Namespace, out: Path | None
                ) -> tuple[str, str, Any, int, Path | None, Any]:
    """(spec_kind, spec); with --resume, the saved settings, epochs done, file and checkpoint."""
    spec_kind, spec = dataset_spec(args.dataset) if args.dataset is not None \
        else ("name", DEFAULTS["train"]["dataset"])
    if out is not None and args.resume:
        model_file = _resume_source(out)
        if model_file is None:
            raise CLIError(f"nothing to resume: {out / MODEL_FILE} does not exist; run "
                           "without --resume to start a new run", EXIT_DATA)
        ckpt = _read_records(model_file)  # the settings and position: no tensors read
        saved, done = saved_settings(ckpt, model_file)
        if args.dataset is None:
            spec_kind = "name" if saved["dataset"] in DATASETS else "path"
            spec = saved["dataset"]
        return spec_kind, spec, saved, done, model_file, ckpt
    if out is not None and not args.overwrite and \
            any((out / name).exists() for name in (MODEL_FILE, RESUME_FILE)):
        raise CLIError(f"{out} already holds a run ({MODEL_FILE}); pass --resume to "
                       "continue it, --overwrite to replace it, or choose another --out",
                       EXIT_USAGE)
    return spec_kind, spec, None, 0, None, None


def _resume_source(out: Path) -> Path | None:
    """Of the model file and the resume file, the checkpoint further on (for --resume)."""
    found = [p for p in (out / RESUME_FILE, out / MODEL_FILE) if p.is_file()]
    if len(found) < 2:
        return found[0] if found else None

    def position(path: Path) -> tuple[int, int]:
        try:
            training = _read_records(path).training or {}
        except CheckpointError:
            return (-1, -1)
        return int(training.get("epoch", 0)), int(training.get("step", 0))

    return max(found, key=position)  # a tie: the resume file, listed first


def _lock_out(args: argparse.Namespace, held: _Held) -> Path | None:
    """Lock --out before anything reads it: one run per folder (exit status 2 if in use)."""
    if args.no_save or not args.out:
        return None
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder", EXIT_USAGE)
    lock = held.lock = RunLock(out, _command(args))
    if lock.stale is not None:
        console(stderr=True, quiet=args.quiet).print(
            f"xpnet: note: cleared the stale lock of an earlier run in {lock.folder} "
            f"(pid {lock.stale.get('pid')}, no longer running)")
    return out


def _plan(args: argparse.Namespace, comm: Any, out: Path | None) -> _Plan:
    """Settings from flags, the resumed run and the defaults; all checks before data."""
    # saved, resume_file and ckpt: all set with --resume, or none
    spec_kind, spec, saved, done, resume_file, ckpt = _locate_run(args, out)
    check_dataset_file(spec_kind, spec)
    table = is_table(spec_kind, spec)
    resumed_table = saved_table(ckpt, resume_file) if table and ckpt is not None else None
    check_table_flags(args, table, saved is not None, resumed_table)
    dataset_key = "table" if table else spec if spec_kind == "name" else "train"
    s, explicit = _settings(args, comm, dataset_key, saved, spec)
    if out is not None:  # the files written in --out: new or regular, none of them the data
        inputs = dataset_inputs(spec, s["data_dir"])
        for name in (MODEL_FILE, RESUME_FILE, RUN_FILE, CURVES_FILE):
            check_output(out / name, "--out", inputs)
    if saved is not None:
        resume_conflicts(s, saved, explicit)
        if done >= s["epochs"]:
            raise CLIError(f"the run in {out} has already done {done} epochs; pass "
                           f"--epochs N with N > {done} to train further", EXIT_USAGE)
    return _Plan(spec_kind, spec, s, explicit, table, saved, resume_file, resumed_table)


def _settings(args: argparse.Namespace, comm: Any, dataset_key: str, saved: dict | None,
              spec: str) -> tuple[dict[str, Any], set[str]]:
    """Checked settings (with the ranks and a resumed run's batch per rank); flags given."""
    s, explicit = resolve(args, dataset_key, saved)
    s["dataset"] = spec
    check_settings(s)
    if comm.size > 1:
        s["ranks"] = comm.size
    s["batch_size"] = per_rank_batch(s, saved, explicit, comm.size)
    return s, explicit


def _load(args: argparse.Namespace, comm: Any, plan: _Plan) -> tuple[_Plan, _Data]:
    """The backend, the dataset, the validation split and the optimizer."""
    s = plan.s
    backend = get_backend(*rank_device(comm, s["backend"], args.device))
    ds: Any = load_table(plan.spec, args, plan.resumed_table) if plan.table \
        else load_dataset(plan.spec, s["data_dir"], progress=not args.quiet)
    if plan.spec_kind == "path" and ds.name in DATASETS and plan.saved is None:
        # a folder holding the real MNIST files gets MNIST's defaults
        s, explicit = _settings(args, comm, ds.name, None, plan.spec)
        plan = replace(plan, s=s, explicit=explicit)
    summary = ds.summary()  # the dataset as loaded, before the split
    train_idx, val_idx = split(ds.x_train.shape[0], s["val_split"], s["seed"])
    val = None  # without validation rows: every row, in order, no copy
    if val_idx is not None:
        val = (ds.x_train[val_idx], ds.y_train[val_idx])
        # the run keeps the dataset with its training rows only, so that the full array
        # is freed: one float copy of the data during training, not two
        ds = replace(ds, x_train=ds.x_train[train_idx], y_train=ds.y_train[train_idx])
    n_train = ds.x_train.shape[0]
    bs = min(s["batch_size"], n_train)
    global_bs, steps = global_steps(n_train, bs, comm.size)
    return plan, _Data(backend, ds, val, n_train, bs, global_bs, steps,
                       make_optimizer(s, steps), summary)


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo", "rb") as f:
        for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_model_memory(sizes: list[int], s: dict[str, Any], data: _Data) -> None:
    """Refuse (exit 2, with the numbers) weights and gradients over the host's memory."""
    pairs = list(itertools.pairwise(sizes))
    n = sum(a * b + b for a, b in pairs)
    itemsize = 8 if s["dtype"] == "float64" else 4
    largest = max(a * b for a, b in pairs)
    need = 2 * n * itemsize + 8 * largest  # + the float64 draw of the largest layer
    avail = _available_memory() if data.backend.is_host else None
    if avail is not None and need > avail:
        raise CLIError(
            f"--hidden {','.join(map(str, s['hidden']))}: the model has {n:,} parameters; "
            f"training needs at least {need / 2**30:,.1f} GiB ({n:,} x {itemsize} bytes "
            f"of {s['dtype']} for the weights, as much for their gradients) but "
            f"{avail / 2**30:,.1f} GiB of memory is available; lower --hidden", EXIT_USAGE)


def _build_model(plan: _Plan, data: _Data) -> tuple[Any, dict[str, Any] | None]:
    """A new model, or the resumed run's model, optimizer state and training position."""
    ds, s = data.ds, plan.s
    sizes = [ds.n_features, *s["hidden"], ds.num_classes]
    if plan.saved is None:
        _check_model_memory(sizes, s, data)
        kwargs = {"activation": s["activation"], "dropout": s["dropout"],
                  "backend": data.backend, "dtype": s["dtype"], "seed": s["seed"]}
        if plan.table:  # numeric columns scaled inside the model
            return scaled_model(sizes, ds.encoder.numeric_features, ds.x_train,
                                regression=ds.regression, **kwargs), None
        return MLP(sizes, **kwargs), None
    assert plan.resume_file is not None
    ckpt = load_checkpoint(plan.resume_file, backend=data.backend)
    model = ckpt.model
    if model.in_features != ds.n_features or model.out_features < ds.num_classes:
        raise CLIError(f"{plan.resume_file} has {model.in_features} inputs and "
                       f"{model.out_features} classes but {ds.name} has {ds.n_features} "
                       f"features and {ds.num_classes} classes", EXIT_DATA)
    resume = ckpt.training or {}
    _check_resumed(plan, data, model, resume)
    if ckpt.optimizer is not None and type(ckpt.optimizer) is type(data.optimizer):
        data.optimizer.state = ckpt.optimizer.state
    return model, resume


def _check_resumed(plan: _Plan, data: _Data, model: Any, resume: dict[str, Any]) -> None:
    """Saved settings against the saved model; a mid-epoch position against the batch size."""
    assert plan.saved is not None
    hidden = [layer.units for layer in model.layers if hasattr(layer, "units")][:-1]
    if list(plan.s["hidden"]) != hidden:
        raise CLIError(f"{plan.resume_file}: its settings say hidden "
                       f"{','.join(map(str, plan.s['hidden'])) or 'none'} but the saved "
                       f"model has hidden layers {','.join(map(str, hidden)) or 'none'}; the "
                       "file was edited or damaged", EXIT_DATA)
    step = resume.get("step", 0)
    saved_bs, ranks = plan.saved.get("batch_size"), plan.saved.get("ranks", 1)
    if not step or not isinstance(saved_bs, int):
        return
    was = min(saved_bs, data.n_train) * (ranks if isinstance(ranks, int) else 1)
    if was != data.global_bs:
        raise CLIError(f"--batch-size {data.global_bs} differs from the run being resumed "
                       f"({was}), which was saved in the middle of epoch "
                       f"{resume.get('epoch', 0) + 1} (step {step}): resume with its "
                       "batch size (drop --batch-size); it can change from the next "
                       "epoch's start", EXIT_USAGE)


def _limit_threads(comm: Any, plan: _Plan, data: _Data, model: Any, held: _Held) -> str:
    """--threads; auto with several ranks on a node shares the node's cores among them."""
    setting, work = plan.s["threads"], data.bs * model.num_params
    if setting == "auto" and comm.local_size > 1 and work >= AUTO_ONE_THREAD_BELOW:
        setting = max(1, (os.cpu_count() or 1) // comm.local_size)
    held.limiter, txt = limit_threads(setting, data.backend, work, "threads" in plan.explicit)
    return txt


def _open_records(args: argparse.Namespace, comm: Any, plan: _Plan, data: _Data, model: Any,
                  resume: dict[str, Any] | None, held: _Held) -> _Records:
    """The output folder (a new default one is created and locked here) and run.json."""
    ds, s = data.ds, plan.s
    default_folder = held.lock is None and not args.no_save
    if default_folder:
        held.lock = RunLock(default_out(ds.name if plan.spec_kind == "path" else plan.spec),
                            _command(args))
    out = held.lock.folder if held.lock is not None else None
    replaces = None if out is None else make_output_folder(out, latest=default_folder,
                                                           overwrite=args.overwrite)
    # the dataset as the checkpoint describes it (a table: with the encoding, applied again
    # by evaluate and predict); run.json adds the files' hashes and the row counts
    described = {
        "name": ds.name, "spec": plan.spec, "data_dir": s["data_dir"], "source": ds.source,
        "n_features": ds.n_features, "num_classes": ds.num_classes,
        "image_shape": list(ds.image_shape), "class_names": list(ds.class_names),
        **({"table": ds.encoder.to_dict()} if plan.table else {})}
    dataset_info = {**described, "sha256": dict(ds.sha256), "n_train": int(data.n_train),
                    "n_val": 0 if data.val is None else int(data.val[0].shape[0]),
                    "n_test": 0 if plan.table else int(ds.x_test.shape[0])}
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()}
    meta = {"xpnet_cli": RUN_SCHEMA, "settings": settings, "dataset": described}
    previous = read_previous_record(out) if plan.saved is not None and out else None
    record = new_record(
        command=_command(args), settings=settings, previous=previous, resume=resume,
        resuming=plan.saved is not None, backend=data.backend, dataset=dataset_info,
        model=model, optimizer=data.optimizer, steps_per_epoch=data.steps,
        batch_size=data.global_bs, saving=out is not None)
    if comm.size > 1:
        record["ranks"] = comm.size
    recorder = RunRecorder(out / RUN_FILE if out else None, record,
                           (resume or {}).get("history"), replaces)
    recorder.write()
    return _Records(out, meta, record, recorder, out / MODEL_FILE if out else None)


def _command(args: argparse.Namespace) -> str:
    return "xpnet " + " ".join(shlex.quote(a) for a in args.argv)


def _announce(run: _Run) -> None:
    """Tell the user what is about to happen (standard error), fitting the terminal's width."""
    s, data, backend, size = run.plan.s, run.data, run.data.backend, run.comm.size
    con = console(stderr=True, quiet=run.args.quiet)
    say = lambda text: print_fitted(con, text, _INDENT)  # noqa: E731
    say(styled((f"xpnet {__version__}", "bold"), "  backend ", (backend.name, "bold"),
               f" ({backend.device_name}), {s['dtype']}, seed {s['seed']}"
               + (f", threads {run.threads_txt}" if backend.is_host else "")))
    say(_data_line(data.ds, data.summary, con.width))
    vtxt = f", validation {data.val[0].shape[0]:,} ({s['val_split']:g})" if data.val else ""
    ttxt = "; test: a held-out file, with xpnet evaluate" if run.plan.table \
        else f", test {data.ds.x_test.shape[0]:,}"
    say(f"split    train {data.n_train:,}{vtxt}{ttxt}")
    say(f"model    {_sizes(data.ds, s)} ({s['activation']}"
        f"{', dropout ' + format(s['dropout'], 'g') if s['dropout'] else ''}), "
        f"{run.model.num_params:,} parameters")
    batch = f"{data.global_bs} ({data.bs} x {size} ranks)" if size > 1 else f"{data.bs}"
    say(f"training {_optimizer_text(s)}, batch {batch}, {s['epochs']} "
        f"epoch{'s' if s['epochs'] != 1 else ''} of {data.steps} steps")
    say(f"lr       {describe_lr(data.optimizer.lr)}")
    if run.resume is not None:
        done, step = run.resume.get("epoch", 0), run.resume.get("step", 0)
        # as the Ctrl-C message names it: "epoch 2, step 44" is saved (44 steps of epoch 2)
        where = f"epoch {done + 1}, step {step}" if step else f"epoch {done}"
        say(f"resuming {run.rec.out} after {where}")
    if run.rec.out is not None:
        say(f"output   {run.rec.out}")


_INDENT = 9  # the value column of the lines _announce prints ("data     ...")


def _data_line(ds: Any, summary: str, width: int) -> str:
    """The ``data`` line; if too wide, without the counts (``split`` has them), then the source."""
    what = (f"{'x'.join(map(str, ds.image_shape))} images ({ds.n_features} features)"
            if len(ds.image_shape) >= 2 else f"{ds.n_features} features")
    # a table: its target, and regression has no classes
    shorter = ds.short_summary() if isinstance(ds, TableData) \
        else f"{ds.name}: {what}, {ds.num_classes} classes"
    fitting = (text for text in (summary, f"{shorter} (source: {ds.source})", shorter)
               if _INDENT + len(text) <= width)
    return "data     " + next(fitting, summary)  # none fits: broken at spaces by print_fitted


def _optimizer_text(s: dict[str, Any]) -> str:
    """The optimizer's name and the settings that are not zero, e.g. ``sgd (momentum 0.9)``."""
    extras = [f"{key.replace('_', ' ')} {s[key]:g}" for key in ("momentum", "weight_decay")
              if s.get(key)]
    return s["optimizer"] + (f" ({', '.join(extras)})" if extras else "")


def _sizes(ds: Any, s: dict[str, Any]) -> str:
    return " → ".join(map(str, [ds.n_features, *s["hidden"], ds.num_classes]))


def _checkpoint_file(out: Path, s: dict[str, Any]) -> Path:
    """Where fit saves the state to resume from: with early stopping, beside the best model."""
    return out / (RESUME_FILE if s["early_stopping"] > 0 else MODEL_FILE)


def _fit(run: _Run) -> tuple[Any, Any]:
    """Train, with the checkpoint and run.json rewritten after every epoch: (history, early)."""
    s, data, rec, early = run.plan.s, run.data, run.rec, None
    # the progress comes first, where fit(verbose=1) would put the library's own
    callbacks: list[Any] = [] if run.args.quiet else [TrainProgress()]
    if s["early_stopping"] > 0:
        early = EarlyStopping(monitor="val_loss", patience=s["early_stopping"],
                              restore_best_weights=True,
                              best_weights=_resumed_best_weights(run))
        callbacks.append(early)
    if rec.out is not None:  # with early stopping the best epoch is the run's model
        callbacks.append(ModelCheckpoint(_checkpoint_file(rec.out, s), metadata=rec.meta))
        if early is not None:
            callbacks.append(_best_model(run, early))
    if rec.recorder is not None:  # rank 0 only
        callbacks.append(recorder_callback(rec.recorder))
    with owned_process():  # the command owns its process: glibc malloc tuning on NumPy
        history = fit(run.model, data.ds.x_train, data.ds.y_train, epochs=s["epochs"],
                      batch_size=data.bs, optimizer=data.optimizer, validation_data=data.val,
                      callbacks=callbacks, seed=s["seed"], verbose=0, resume=run.resume,
                      distributed=run.comm)
    return history, early


def _resumed_best_weights(run: _Run) -> dict[str, Any] | None:
    """The resumed run's best-epoch parameters: its model file, if it holds that epoch."""
    model_file, resume_file = run.rec.model_file, run.plan.resume_file
    # the epoch of the best value EarlyStopping watches before resuming (-1: none)
    key = "val_loss" if run.data.val is not None else "loss"
    best, at = math.inf, -1
    for epoch, value in enumerate(((run.resume or {}).get("history") or {}).get(key) or []):
        if isinstance(value, (int, float)) and math.isfinite(value) and value < best:
            best, at = float(value), epoch
    if run.resume is None or resume_file is None or model_file is None or at < 0 or \
            resume_file == model_file or not model_file.is_file():
        return None
    try:  # the tensors read only when the file holds that epoch
        if (_read_records(model_file).training or {}).get("epoch") != at + 1:
            return None
        return dict(load_checkpoint(model_file, backend=run.data.backend).model.params)
    except CheckpointError:
        return None


def _best_model(run: _Run, early: EarlyStopping) -> Any:
    """A callback saving the model, optimizer state and position at each best epoch."""
    meta = run.rec.meta
    path: Path = run.rec.model_file  # type: ignore[assignment]  # set when saving

    class BestModel(Callback):  # after `early`, which has just judged the epoch
        rank_zero_only = True

        def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
            if early.best_epoch == epoch:
                save(self.model, path, metadata=meta,
                     training=self.trainer.state.to_record() if self.trainer else None)

    return BestModel()


def _finish(run: _Run, history: Any, early: Any) -> Path | None:
    """Test score and curves (their file returned); run.json's final record."""
    ds, record, start = run.data.ds, run.rec.record, run.start_epoch
    test = None if run.plan.table else run.model.evaluate(ds.x_test, ds.y_test)
    if run.plan.table:  # no test split: the validation rows' scores
        record["validation"] = table_scores(run.model, ds, run.data.val)
    train_secs = float(sum(history.history.get("seconds", [])[start:]))
    epochs_run = len(history.epoch) - start
    sps = run.data.n_train * epochs_run / train_secs if train_secs > 0 else None
    curves = None
    if run.args.plot and run.rec.out is not None:
        curves = run.rec.out / CURVES_FILE
        plot_curves(record["history"], curves, f"{ds.name}: {_sizes(ds, run.plan.s)}, "
                    f"{run.plan.s['optimizer']} lr {run.plan.s['lr']:g}")
    record.update(status="stopped_early" if history.stopped_early else "completed",
                  finished_at=timestamp(), test=test,
                  train_seconds=train_secs, samples_per_second=sps,
                  stopped_early=history.stopped_early,
                  best_epoch=None if early is None or early.best_epoch < 0
                  else early.best_epoch + 1)
    record["files"]["curves"] = CURVES_FILE if curves else None
    assert run.rec.recorder is not None
    run.rec.recorder.write()
    return curves


def _print_summary(run: _Run, history: Any, curves: Path | None, total: float) -> None:
    """The result table (standard error) and, with --json, the summary (standard output)."""
    out, record, model_file = run.rec.out, run.rec.record, run.rec.model_file
    test, sps = record["test"], record["samples_per_second"]
    rows = _score_rows("test", test) + _score_rows("validation", record.get("validation"))
    ep_txt = f"{len(history.epoch)}"
    if run.start_epoch:
        ep_txt += f" ({run.start_epoch} before resuming)"
    if history.stopped_early:
        ep_txt += f", stopped early (best epoch {record['best_epoch']})"
    rows += [("epochs", ep_txt),
             ("time", f"{fmt_secs(total)} (training {fmt_secs(record['train_seconds'])})"),
             ("samples/s", f"{sps:,.0f}" if sps else "-")]
    if out is not None:
        rows += [("model", str(model_file)), ("run record", str(out / RUN_FILE))]
        if curves:
            rows.append(("curves", str(curves)))
        rows.append(("next", f"xpnet evaluate {shlex.quote(str(out))}"
                     + (" HELD-OUT-FILE" if run.plan.table else "")))
    else:
        rows.append(("model", "not saved (--no-save)"))
    # a long path folds onto the next row, whole
    console(stderr=True, quiet=run.args.quiet).print(kv_table("result", rows, overflow="fold"))
    if run.args.json:
        backend = run.data.backend
        print_json({
            "status": record["status"], "dataset": run.data.ds.name, "backend": backend.name,
            "device": backend.device_name, "test": test,
            **({"validation": record["validation"]} if run.plan.table else {}),
            "epochs": len(history.epoch),
            "stopped_early": history.stopped_early, "train_seconds": record["train_seconds"],
            "total_seconds": total, "samples_per_second": sps,
            "history": record["history"], "settings": record["settings"],
            "out": str(out.resolve()) if out else None,
            "model": str(model_file.resolve()) if out and model_file else None,
            "run_json": str((out / RUN_FILE).resolve()) if out else None,
            "curves": str(curves.resolve()) if curves else None})


def _score_rows(split: str, scores: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The summary's rows for the test or a table's validation scores (none without them)."""
    if not scores:
        return []
    if "r2" in scores:  # MAE and RMSE in the target's units: the same decimals
        mae, rmse = same_decimals([scores["mae"], scores["rmse"]])
        return [(f"{split} R²", f"{scores['r2']:.4f}"),
                (f"{split} MAE", mae), (f"{split} RMSE", rmse)]
    return [(f"{split} accuracy", f"{scores.get('accuracy', float('nan')):.4f}"),
            (f"{split} loss", f"{scores['loss']:.4f}")]


# ----------------------------------------------------------------------------- endings
def _resume_hint(out: Path | None) -> str | None:
    """The command that continues this run, when its folder holds a checkpoint."""
    if out is None or _resume_source(out) is None:
        return None
    return f"xpnet train --out {shlex.quote(str(out))} --resume"


def _write_final(rec: _Records, guard: _SignalGuard, **final: Any) -> str:
    """Rewrite run.json with its `final` status; a note for the message if that failed."""
    rec.record.update(final, finished_at=timestamp())
    if rec.recorder is None:
        return ""
    try:
        with guard.deferred():
            rec.recorder.write()
    except OSError as exc:
        return f" ({RUN_FILE} could not be updated: {exc})"
    return ""


def _interrupted(run: _Run, exc: KeyboardInterrupt, guard: _SignalGuard) -> int:
    """Ctrl-C or SIGTERM: run.json says interrupted, the user learns how to continue."""
    code, out = _exit_status(exc, guard.received), run.rec.out
    name = signal.Signals(code - 128).name  # SIGINT or SIGTERM, the signals the guard takes
    note = _write_final(run.rec, guard, status="interrupted", signal=name)
    hint = _resume_hint(out)
    done, epochs = run.rec.record["epochs_done"], run.plan.s["epochs"]
    if out is None:
        message = f"interrupted ({name}) after {done} epoch(s); nothing was saved (--no-save)"
    elif _kept(run.rec):
        hint = None
        message = f"interrupted ({name}) before the new run saved anything{_kept(run.rec)}"
    elif hint is None:
        message = (f"interrupted ({name}) before the first epoch finished; nothing to resume "
                   f"in {out}")
    else:
        where = f"epoch {done}/{epochs}"
        if getattr(exc, "checkpoint", None) and getattr(exc, "step", 0):
            where = f"epoch {exc.epoch}, step {exc.step}"  # type: ignore[attr-defined]
        message = (f"interrupted ({name}); {where} is saved in "
                   f"{_checkpoint_file(out, run.plan.s)}. Continue with:\n  {hint}")
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


def _disk_full(out: Path | None, exc: OSError) -> str:
    """A full disk's message: the file (or the free-space check) and how to go on."""
    what = f"no space left on device while writing {exc.filename}" if exc.filename \
        else str(exc.strerror or exc)
    hint = _resume_hint(out)
    then = f"continue with: {hint}" if hint else "run the command again"
    return f"{what}; free some space, then {then}"


def _failure(run: _Run, exc: BaseException) -> tuple[str, int | None]:
    """The one-line message of a run that failed, and its exit status (None: main decides)."""
    out, done = run.rec.out, run.rec.record.get("epochs_done")
    if isinstance(exc, NonFiniteLossError):
        saved_txt = f"; epoch {done} is saved in {out / MODEL_FILE}" if out and done else ""
        return (f"training diverged: the loss or a gradient became NaN/inf at epoch "
                f"{exc.epoch}, step {exc.step}; lower --lr (now {run.plan.s['lr']:g}), add "
                f"--warmup-epochs, or try --optimizer adam{saved_txt}", EXIT_FAILURE)
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return _disk_full(out, exc), EXIT_DATA
    if isinstance(exc, CLIError):
        return str(exc), None
    return f"{type(exc).__name__}: {exc}", None


def _kept(rec: _Records) -> str:
    """``--overwrite`` that ended before its first save: a note that the earlier run stays."""
    if rec.recorder is None or not rec.recorder.pending:
        return ""
    return f"; the earlier run in {rec.out} is kept as it was"


def _failed(run: _Run, exc: BaseException, guard: _SignalGuard) -> BaseException:
    """Mark run.json failed, with the error; return the exception to raise."""
    message, code = _failure(run, exc)
    note = _write_final(run.rec, guard, status="failed", error=message) + _kept(run.rec)
    if code is not None:
        return CLIError(message + note, code)
    if note and isinstance(exc, Exception):
        code, message = classify(exc, "train")
        return CLIError(message + note, code)
    return exc


def _train_on_other_rank(run: _Run) -> int:
    """Ranks other than 0: train silently; rank 0 reports how the run ended."""
    try:
        _fit(run)
    except KeyboardInterrupt as exc:  # every rank stopped at the same step
        return _exit_status(exc)
    except NonFiniteLossError:  # likewise; rank 0 says where
        return EXIT_FAILURE
    except BaseException as exc:  # this rank alone failed: main() ends the job, and
        run.args.rank_failure = True  # rank 0's run.json says which rank failed
        _mark_failed(run, f"rank {run.comm.rank} of {run.comm.size}: "
                          f"{classify(exc, 'train')[1]}")
        raise
    return EXIT_OK


def _prepare(args: argparse.Namespace, comm: Any, held: _Held) -> _Run:
    """Lock, plan, load, build, thread limits and the run folder; agreed on every rank."""
    if comm.size == 1:
        plan, data = _load(args, comm, _plan(args, comm, _lock_out(args, held)))
        model, resume = _build_model(plan, data)
        threads_txt = _limit_threads(comm, plan, data, model, held)
        rec = _open_records(args, comm, plan, data, model, resume, held)
        return _Run(args, comm, plan, data, model, resume, threads_txt, rec)

    root = comm.is_root
    plan = together(comm, lambda: _plan(args, comm, _lock_out(args, held)), on="root")
    plan = share_plan(comm, plan)
    loaded = together(comm, lambda: _load(args, comm, plan), on="root")  # first: a download
    plan, data = together(comm, lambda: _load(args, comm, plan), on="others") or loaded  # once
    built = together(comm, lambda: _build_model(plan, data), on="root")
    config = comm.bcast(built[0].get_config() if root else None)
    # the other ranks: rank 0's architecture (its weights come at the start of fit)
    like_rank0 = together(comm, lambda: Sequential.from_config(config, backend=data.backend),
                          on="others")
    model, resume = built or (like_rank0, None)
    threads_txt = together(comm, lambda: _limit_threads(comm, plan, data, model, held))
    rec = together(comm, lambda: _open_records(args, comm, plan, data, model, resume, held),
                   on="root")
    # the run record's path: rank 0 marks it when a watchdog ends the job, another rank
    # when it fails alone (the job then ends before rank 0 can)
    out = comm.bcast(str(rec.out) if root and rec.out is not None else None)
    if not root:
        rec = _Records(record_path=None if out is None else Path(out) / RUN_FILE)
    run = _Run(args, comm, plan, data, model, resume, threads_txt, rec)
    if root:
        comm.on_abort(lambda code, message: _aborted(run, code, message))
    elif out is not None:
        comm.on_abort(lambda code, message: _aborted_waiting(run, code, message))
    return run


def _aborted(run: _Run, code: int, message: str) -> None:
    """Aborting while run.json says running: mark it failed and, with --json, print the error."""
    if run.rec.recorder is None or run.rec.record.get("status") != "running":
        return  # already final, and reported
    run.rec.record.update(status="failed", error=message, finished_at=timestamp())
    run.rec.recorder.write()
    if run.args.json:
        print_json({"status": "error", "exit_code": code, "message": message})


def _aborted_waiting(run: _Run, code: int, message: str) -> None:
    """A rank's wait timed out: unless rank 0 reports first, mark run.json failed, say so."""
    if code != EXIT_TIMEOUT:
        return  # a rank failing alone has reported itself
    if run.comm.save_in_progress is None:
        time.sleep(_RANK0_GRACE)
    if _mark_failed(run, message) and json_asked(run.args):
        print_json({"status": "error", "exit_code": code, "message": message})


#: Seconds another rank that timed out leaves rank 0 to report first (it may have timed
#: out too, waiting for a third rank); then that rank marks run.json itself.
_RANK0_GRACE = 1.0


def _mark_failed(run: _Run, message: str) -> bool:
    """Mark rank 0's run.json failed with another rank's `message`; True if it was running."""
    if run.rec.record_path is None:
        return False
    record = read_previous_record(run.rec.record_path.parent)
    if record is None or record.get("status") != "running":
        return False
    record.update(status="failed", error=message, finished_at=timestamp())
    try:
        write_json(run.rec.record_path, record)
    except OSError:
        return False
    return True


def _run_recorded(run: _Run, guard: _SignalGuard, t_start: float) -> int:
    """From the first run.json write on: every ending leaves run.json final."""
    history: Any = None
    try:
        _announce(run)
        history, early = _fit(run)
        curves = _finish(run, history, early)
    except KeyboardInterrupt as exc:
        return _interrupted(run, exc, guard)
    except BaseException as exc:
        # this rank alone, before fit ended (a divergence is every rank's): main() ends the job
        if history is None and run.comm.size > 1 and not isinstance(exc, NonFiniteLossError):
            run.args.rank_failure = True
        raised = _failed(run, exc, guard)
        if raised is exc:
            raise
        raise raised from None
    _print_summary(run, history, curves, time.perf_counter() - t_start)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``xpnet train``: 0 when done or stopped early, 130 after SIGINT, 143 after SIGTERM."""
    t_start = time.perf_counter()
    _check_flags(args)
    comm = args.comm = open_comm(args)  # main() reads it to end each rank
    if not comm.is_root:  # rank 0 alone prints and writes
        args.quiet, args.json = True, False
    held = _Held()
    with _SignalGuard() as guard:
        try:
            run = _prepare(args, comm, held)
            if not comm.is_root:
                return _train_on_other_rank(run)
            return _run_recorded(run, guard, t_start)
        except OSError as exc:  # before run.json was written: nothing to mark
            if exc.errno not in _DISK_FULL:
                raise
            out = held.lock.folder if held.lock is not None else None
            raise CLIError(_disk_full(out, exc), EXIT_DATA) from None
        finally:
            if held.limiter is not None:
                held.limiter.restore_original_limits()
            if held.lock is not None:
                held.lock.release()
