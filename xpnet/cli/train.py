"""``xpnet train``: train an MLP and keep a resumable run folder.

Everything that can be checked is checked before data is loaded or a device is touched;
then the data, the model and the output folder; then ``fit`` with a checkpoint and a run
record rewritten after every epoch. Progress and the summary go to standard error; with
``--json`` the summary also goes to standard output as one JSON object.
"""

from __future__ import annotations

import argparse
import math
import shlex
import time
from pathlib import Path
from typing import Any

from ._args import (
    CURVES_FILE,
    DATASETS,
    DEFAULTS,
    EXIT_DATA,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MODEL_FILE,
    RUN_FILE,
    CLIError,
)
from ._io import dataset_spec, load_dataset
from ._output import console, fmt_secs, print_json, styled
from ._plots import plot_curves, require_matplotlib
from ._records import (
    RUN_SCHEMA,
    RunRecorder,
    default_out,
    make_output_folder,
    new_record,
    read_previous_record,
    recorder_callback,
    timestamp,
)
from ._settings import (
    check_settings,
    limit_threads,
    make_optimizer,
    resolve,
    resume_conflicts,
    saved_settings,
    split,
)

__all__ = ["cmd_train"]


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


def _locate_run(args: argparse.Namespace
                ) -> tuple[str, str, Path | None, dict[str, Any] | None, int]:
    """(spec kind, dataset spec, --out folder, settings of the resumed run, epochs done)."""
    spec_kind, spec = dataset_spec(args.dataset) if args.dataset is not None \
        else ("name", DEFAULTS["train"]["dataset"])
    saved: dict[str, Any] | None = None
    done = 0
    out: Path | None = None
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
            saved, done = saved_settings(model_file)
            if args.dataset is None:
                spec_kind = "name" if saved["dataset"] in DATASETS else "path"
                spec = saved["dataset"]
        elif out is not None and (out / MODEL_FILE).exists() and not args.overwrite:
            raise CLIError(f"{out} already holds a run ({MODEL_FILE}); pass --resume to "
                           "continue it, --overwrite to replace it, or choose another --out",
                           EXIT_USAGE)
    return spec_kind, spec, out, saved, done


def _report_interrupt(out: Path | None, done: int, epochs: int) -> None:
    """Say what a Ctrl-C left behind and how to continue."""
    err = console(stderr=True)
    if out is None:
        err.print(f"xpnet: interrupted after {done} epoch(s); nothing was saved "
                  "(--no-save)")
    elif done == 0 or not (out / MODEL_FILE).exists():
        err.print(f"xpnet: interrupted before the first epoch finished; nothing to resume "
                  f"in {out}")
    else:
        err.print(f"xpnet: interrupted; epoch {done}/{epochs} is saved in "
                  f"{out / MODEL_FILE}. Continue with:\n"
                  f"  xpnet train --out {shlex.quote(str(out))} --resume")


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``xpnet train``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``train`` flags (see :func:`xpnet.cli.build_parser`), plus ``argv``,
        the command line as given, for the run record.

    Returns
    -------
    int
        0 when training completed or stopped early; 130 after Ctrl-C.

    Raises
    ------
    CLIError
        For bad flag combinations, a run that cannot be resumed, a model that does not
        fit the data, or a diverged run (exit status 1).

    Examples
    --------
    >>> from xpnet.cli import main
    >>> main(["train", "--epochs", "2", "--no-save", "--quiet"])  # doctest: +SKIP
    0
    """
    from .._version import __version__
    from ..callbacks import EarlyStopping, ModelCheckpoint
    from ..checkpoint import load_checkpoint, save
    from ..model import MLP
    from ..training import NonFiniteLossError, fit

    t_start = time.perf_counter()
    con = console(stderr=True, quiet=args.quiet)

    # ---- everything that can be checked before touching data or devices ------------
    _check_flags(args)
    spec_kind, spec, out, saved, done = _locate_run(args)
    dataset_key = spec if spec_kind == "name" else "train"
    s, explicit = resolve(args, dataset_key, saved)
    s["dataset"] = spec
    check_settings(s)
    if saved is not None:
        resume_conflicts(s, saved, explicit)
        if done >= s["epochs"]:
            raise CLIError(f"the run in {out} has already done {done} epochs; pass --epochs N "
                           f"with N > {done} to train further", EXIT_USAGE)

    # ---- backend, then data ---------------------------------------------------------
    from ..backends import get_backend

    backend = get_backend(s["backend"])
    ds = load_dataset(spec, s["data_dir"], progress=not args.quiet)
    if spec_kind == "path" and ds.name in DATASETS and saved is None:
        # a folder holding the real MNIST files gets MNIST's defaults
        s, explicit = resolve(args, ds.name, None)
        s["dataset"] = spec
        check_settings(s)
    train_idx, val_idx = split(ds.x_train.shape[0], s["val_split"], s["seed"])
    X, y = ds.x_train[train_idx], ds.y_train[train_idx]
    val = None if val_idx is None else (ds.x_train[val_idx], ds.y_train[val_idx])
    n_train = X.shape[0]
    bs = min(s["batch_size"], n_train)
    steps = math.ceil(n_train / bs)
    optimizer = make_optimizer(s, steps)

    # ---- model --------------------------------------------------------------------
    resume = None
    if saved is not None:
        assert out is not None
        ckpt = load_checkpoint(out / MODEL_FILE, backend=backend)
        model = ckpt.model
        if model.in_features != ds.n_features or model.out_features < ds.num_classes:
            raise CLIError(f"{out / MODEL_FILE} has {model.in_features} inputs and "
                           f"{model.out_features} classes but {ds.name} has {ds.n_features} "
                           f"features and {ds.num_classes} classes", EXIT_DATA)
        resume = ckpt.training or {}
        if ckpt.optimizer is not None and type(ckpt.optimizer) is type(optimizer):
            optimizer.state = ckpt.optimizer.state
    else:
        model = MLP([ds.n_features, *s["hidden"], ds.num_classes], activation=s["activation"],
                    dropout=s["dropout"], backend=backend, dtype=s["dtype"], seed=s["seed"])

    # ---- output folder and records ---------------------------------------------------
    default_folder = out is None and not args.no_save
    if default_folder:
        out = default_out(ds.name if spec_kind == "path" else spec)
    model_file: Path | None = None
    if out is not None:
        make_output_folder(out, latest=default_folder, overwrite=args.overwrite)
        model_file = out / MODEL_FILE
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
    command = "xpnet " + " ".join(shlex.quote(a) for a in args.argv)
    previous = read_previous_record(out) if saved is not None and out is not None else None
    record = new_record(command=command, settings=settings, previous=previous, resume=resume,
                        resuming=saved is not None, backend=backend, dataset=dataset_info,
                        model=model, optimizer=optimizer, steps_per_epoch=steps,
                        batch_size=bs, saving=out is not None)
    recorder = RunRecorder(out / RUN_FILE if out else None, record,
                           (resume or {}).get("history"))
    recorder.write()

    # ---- tell the user what is about to happen ----------------------------------------
    limiter, threads_txt = limit_threads(s["threads"], backend, bs * model.num_params,
                                         "threads" in explicit)
    sizes = " → ".join(map(str, [ds.n_features, *s["hidden"], ds.num_classes]))
    con.print(styled((f"xpnet {__version__}", "bold"), "  backend ", (backend.name, "bold"),
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
    if model_file is not None:
        checkpoint = ModelCheckpoint(model_file, metadata=meta)
        callbacks.append(checkpoint)
    callbacks.append(recorder_callback(recorder))
    start_epoch = int((resume or {}).get("epoch", 0))
    try:
        history = fit(model, X, y, epochs=s["epochs"], batch_size=bs, optimizer=optimizer,
                      validation_data=val, callbacks=callbacks, seed=s["seed"],
                      verbose=0 if args.quiet else 1, resume=resume)
    except KeyboardInterrupt:
        record.update(status="interrupted", finished_at=timestamp())
        recorder.write()
        _report_interrupt(out, record["epochs_done"], s["epochs"])
        return EXIT_INTERRUPTED
    except NonFiniteLossError as exc:
        record.update(status="failed", error=str(exc), finished_at=timestamp())
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
    if early is not None and checkpoint is not None and model_file is not None \
            and checkpoint.trainer is not None \
            and 0 <= early.best_epoch < len(history.epoch) - 1:
        # EarlyStopping put back the best epoch's weights: store those
        save(model, model_file, training=checkpoint.training_record(), metadata=meta)
    test = model.evaluate(ds.x_test, ds.y_test)
    epochs_run = len(history.epoch) - start_epoch
    secs = [v for v in history.history.get("seconds", [])[start_epoch:]]
    train_secs = float(sum(secs))
    sps = n_train * epochs_run / train_secs if train_secs > 0 else None
    curves = None
    if args.plot and out is not None:
        curves = out / CURVES_FILE
        plot_curves(record["history"], curves,
                    f"{ds.name}: {sizes}, {s['optimizer']} lr {s['lr']:g}")
    status = "stopped_early" if history.stopped_early else "completed"
    record.update(status=status, finished_at=timestamp(),
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
    table.add_row("time", f"{fmt_secs(total)} (training {fmt_secs(train_secs)})")
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
        print_json({
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
