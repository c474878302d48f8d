# NumPy is used on the host here for the confusion matrix, per-class counts and the
# ranking of printed predictions, which are output anyway, as DESIGN.md allows.
"""``xpnet evaluate`` and ``xpnet predict``: use a saved model.

Both take a model file or a run folder. ``evaluate`` scores it on a split of a dataset
(by default the one it was trained on); ``predict`` classifies ``.npy``, IDX or image
files. Results go to standard output, as tables or, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from .._files import check_regular
from ..backends import get_backend, to_numpy
from ..checkpoint import load_checkpoint
from ._args import CONFUSION_FILE, DATASETS, EXIT_DATA, EXIT_OK, EXIT_USAGE, RUN_FILE, CLIError
from ._confusion import print_report, report
from ._inputs import read_inputs
from ._io import (
    check_output,
    checked,
    class_names,
    dataset_inputs,
    dataset_spec,
    image_shape,
    load_dataset,
    model_path,
    refuse_table,
    require_classifier,
    run_meta,
)
from ._output import carried, console, print_json, print_json_rows, print_scores, table
from ._plots import require_matplotlib
from ._tables import evaluate_table, predict_table, table_encoder

__all__ = ["cmd_evaluate", "cmd_predict"]


def _plot_target(args: argparse.Namespace, model_file: Path) -> Path | None:
    """Where --plot / --plot-path put the confusion matrix (checked before any work)."""
    if not (args.plot or args.plot_path):
        return None
    require_matplotlib()
    plot_path = Path(args.plot_path).expanduser() if args.plot_path \
        else model_file.parent / CONFUSION_FILE
    # the data is checked once known (_evaluation_data, evaluate_table), before it is read
    check_output(plot_path, "--plot-path" if args.plot_path else "--plot",
                 [model_file, model_file.parent / RUN_FILE], folder=True)
    return plot_path


def _evaluation_data(args: argparse.Namespace, spec: str | None, meta: dict[str, Any],
                     model: Any, model_file: Path, plot_path: Path | None = None
                     ) -> tuple[Any, np.ndarray, np.ndarray]:
    """The dataset, and the X and y of the chosen split, checked against the model."""
    data_dir = args.data_dir
    if spec is None:
        info = meta.get("dataset") or {}
        spec = info.get("spec")
        if not spec:
            raise CLIError(f"{model_file} does not say which dataset it was trained on; pass "
                           "--dataset NAME|PATH", EXIT_USAGE)
        # the model file names the dataset only: where to read it (and whether to download
        # into a folder) is the user's choice, --data-dir or the default data folder
        if spec not in DATASETS and not Path(spec).exists():
            raise CLIError(f"the model was trained on {spec}, which no longer exists; pass "
                           "--dataset NAME|PATH", EXIT_DATA)
    if plot_path is not None:  # the dataset named by the model file, checked before reading
        check_output(plot_path, "--plot-path" if args.plot_path else "--plot",
                     dataset_inputs(spec, data_dir))
    ds = load_dataset(spec, data_dir, progress=not args.json)
    X, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    if ds.n_features != model.in_features:
        raise CLIError(f"{ds.name} has {ds.n_features} features per sample but the model "
                       f"expects {model.in_features}; evaluate it on the data it was trained "
                       "on", EXIT_DATA)
    if int(y.max()) >= model.out_features:
        raise CLIError(f"{ds.name} has label {int(y.max())} but the model only knows "
                       f"{model.out_features} classes", EXIT_DATA)
    return ds, X, y


def _scores(model: Any, backend: Any, X: np.ndarray, y: np.ndarray
            ) -> tuple[dict[str, Any], dict[str, float], np.ndarray]:
    """Loss and accuracy, top-3/top-5 accuracy and the predicted labels (on the host)."""
    result = model.evaluate(X, y)
    yd = backend.asarray(y, dtype=backend.xp.int64)
    scores = model.predict_proba(X)
    pred = to_numpy(backend.xp.argmax(scores, axis=1))
    top = {str(k): float(metrics.top_k_accuracy(yd, scores, k))
           for k in (3, 5) if k < model.out_features}
    return result, top, pred


def _load_classifier(model_file: Path, backend_name: str, command: str
                     ) -> tuple[Any, Any, dict[str, Any], Any]:
    """Backend, model, run metadata and table encoder (else it must be a classifier)."""
    backend = get_backend(backend_name)
    ckpt = load_checkpoint(model_file, backend=backend)
    model, meta = ckpt.model, run_meta(ckpt, model_file)
    encoder = table_encoder(meta, model_file)
    if encoder is None:
        require_classifier(model, model_file, command)
    return backend, model, meta, encoder


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``xpnet evaluate``: accuracy, loss, top-k, per-class table, confusion matrix."""
    model_file = model_path(args.model)
    plot_path = _plot_target(args, model_file)
    if args.data is not None and args.dataset is not None:
        raise CLIError(f"give the data once: {args.data} or --dataset {args.dataset}",
                       EXIT_USAGE)
    dataset = args.dataset if args.dataset is not None else args.data
    spec = None if dataset is None else dataset_spec(dataset)[1]
    backend, model, meta, encoder = _load_classifier(model_file, args.backend, "evaluate")
    if encoder is not None:
        return evaluate_table(args, backend, model, encoder, model_file, plot_path)
    if dataset is not None:
        refuse_table(dataset, model_file, "evaluate on")
    ds, X, y = _evaluation_data(args, spec, meta, model, model_file, plot_path)
    result, top, pred = _scores(model, backend, X, y)
    names = class_names(meta, model.out_features)
    # counted on the host: the predictions are output now, and integer matmul (what
    # metrics.confusion_matrix uses) is not implemented for CUDA tensors in PyTorch
    scores, cm = report(y, pred, names, plot_path,
                        f"{ds.name} {args.split}: accuracy {result.get('accuracy', 0):.4f}")
    out = {"model": str(model_file.resolve()), "dataset": ds.name, "source": ds.source,
           "split": args.split, "samples": int(X.shape[0]), "backend": backend.name,
           "device": backend.device_name, "accuracy": result.get("accuracy"),
           "loss": result["loss"], "top_k_accuracy": top, **scores}
    if args.json:
        print_json(out)
    else:
        _print_evaluation(out, model, model_file, ds, cm, names)
    return EXIT_OK


def _print_evaluation(out: dict[str, Any], model: Any, model_file: Path, ds: Any,
                      cm: np.ndarray | None, names: list[str]) -> None:
    accuracy = out["accuracy"]
    print_scores(out, model, model_file, f"{ds.summary()}; evaluating the {out['split']} split", [
        ("accuracy", f"{accuracy if accuracy is not None else float('nan'):.4f}"),
        ("loss", f"{out['loss']:.4f}"),
        *((f"top-{k} accuracy", f"{v:.4f}") for k, v in out["top_k_accuracy"].items())])
    con = console(stderr=False)
    right = {"justify": "right"}
    pc = table("per class", "class", ("support", right), ("correct", right), ("accuracy", right),
               "most confused with")
    for row in out["per_class"]:
        acc = row["accuracy"]
        style = "red" if acc is not None and acc < (accuracy or 0) - 0.05 else ""
        pc.add_row(row["class"], f"{row['support']:,}", f"{row['correct']:,}",
                   "-" if acc is None else f"{acc:.4f}", row["most_confused_with"] or "-",
                   style=style)
    con.print(pc)
    print_report(con, cm, names, out["plot"])


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``xpnet predict``: each row's likely classes, or a table model's class or number."""
    model_file = model_path(args.model)
    for text in args.inputs:  # cheap checks first
        path = Path(text).expanduser()
        if not path.exists():
            raise CLIError(f"input {path} does not exist", EXIT_DATA)
        checked(check_regular, path, "input")  # a FIFO would block forever, a device never end
    backend, model, meta, encoder = _load_classifier(model_file, args.backend, "predict")
    if encoder is not None:
        return predict_table(args, backend, model, encoder, model_file)
    for flag, value in (("--output", args.output), ("--proba", args.proba),
                        ("--strict", args.strict), ("--impute", args.impute)):
        if value:
            raise CLIError(f"{flag} applies to models trained on a table; {model_file} "
                           "classifies images or arrays", EXIT_USAGE)
    k = model.out_features
    names = class_names(meta, k)
    shape = image_shape(meta, model.in_features)
    X, items = read_inputs(args.inputs, model.in_features, shape, args.invert)
    top_k = min(args.top_k, k)
    # every row is classified before anything is written (an error leaves no half output),
    # one batch at a time: only the top k of each row are kept, not n x classes float64
    n = X.shape[0]
    labels = np.empty((n, top_k), dtype=np.int64)
    probs = np.empty((n, top_k), dtype=np.float64)
    for start in range(0, n, _PREDICT_BATCH):
        proba = to_numpy(model.predict_proba(X[start:start + _PREDICT_BATCH]))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :top_k]
        labels[start:start + len(order)] = order
        # the digits the model's dtype carries: float32 prints as its shortest repr
        probs[start:start + len(order)] = carried(np.take_along_axis(proba, order, axis=1))
    del X, proba, order
    preds = _prediction_rows(items, labels, probs, names)
    if args.json:
        print_json_rows({"model": str(model_file.resolve()), "backend": backend.name,
                         "class_names": names}, "predictions", preds)
    else:
        _print_predictions(preds, top_k, model_file)
    return EXIT_OK


# rows per predict_proba call: the batch predict_proba uses itself, so that the outputs
# are those of one call on all the rows
_PREDICT_BATCH = 8192


def _prediction_rows(items: Iterable[dict[str, Any]], labels: np.ndarray, probs: np.ndarray,
                     names: list[str]) -> Iterator[dict[str, Any]]:
    """One output dict per row, made as the output is written."""
    rows = iter(items)
    for start in range(0, labels.shape[0], 1024):  # Python numbers for 1024 rows at a time
        for row_labels, row_probs in zip(labels[start:start + 1024].tolist(),
                                         probs[start:start + 1024].tolist(), strict=True):
            best = row_labels[0]
            yield {**next(rows), "label": best, "class": names[best],
                   "probability": row_probs[0],
                   "top_k": [{"label": c, "class": names[c], "probability": q}
                             for c, q in zip(row_labels, row_probs, strict=True)]}


def _print_predictions(preds: Iterable[dict[str, Any]], top_k: int, model_file: Path) -> None:
    con = console(stderr=False)
    t = table(f"predictions of {model_file}", "input", ("class", {"style": "bold"}),
              ("probability", {"justify": "right"}), *([f"top {top_k}"] if top_k > 1 else []))
    for p in preds:
        name = p["input"] + (" (inverted)" if p.get("inverted") else "")
        row = [name, p["class"], f"{p['probability']:.4f}"]
        if top_k > 1:
            row.append(", ".join(f"{c['class']} {c['probability']:.3f}" for c in p["top_k"]))
        t.add_row(*row)
    con.print(t)
