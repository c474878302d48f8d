# NumPy is used on the host here for the confusion matrix, per-class counts and the
# ranking of printed predictions, which are output anyway, as DESIGN.md allows.
"""``xpnet evaluate`` and ``xpnet predict``: use a saved model.

Both take a model file or a run folder. ``evaluate`` scores it on a split of a dataset
(by default the one it was trained on); ``predict`` classifies ``.npy``, IDX or image
files. Results go to standard output, as tables or, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._args import CONFUSION_FILE, DATASETS, EXIT_DATA, EXIT_OK, EXIT_USAGE, CLIError
from ._io import (
    class_names,
    dataset_spec,
    image_shape,
    load_dataset,
    model_path,
    read_inputs,
    run_meta,
)
from ._output import console, print_json, styled
from ._plots import plot_confusion, require_matplotlib

__all__ = ["cmd_evaluate", "cmd_predict"]


def _per_class(cm: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Support, correct count, accuracy and most frequent confusion of each true class."""
    per_class: list[dict[str, Any]] = []
    for c in range(cm.shape[0]):
        support = int(cm[c].sum())
        off = cm[c].copy()
        off[c] = 0
        confused = int(off.argmax()) if off.any() else None
        per_class.append({
            "label": c, "class": names[c], "support": support, "correct": int(cm[c, c]),
            "accuracy": cm[c, c] / support if support else None,
            "most_confused_with": None if confused is None else names[confused]})
    return per_class


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``xpnet evaluate``: accuracy, loss, top-k, per-class table, confusion matrix.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``evaluate`` arguments (see :func:`xpnet.cli.build_parser`).

    Returns
    -------
    int
        0.

    Raises
    ------
    CLIError
        When the model, the dataset or the plot folder is missing, or the data does not
        fit the model (exit status 2 or 3).

    Examples
    --------
    >>> from xpnet.cli import main
    >>> main(["evaluate", "runs/latest", "--json"])  # doctest: +SKIP
    0
    """
    from .. import metrics
    from ..backends import get_backend, to_numpy
    from ..checkpoint import load_checkpoint

    model_file = model_path(args.model)
    plot_path = None
    if args.plot or args.plot_path:
        require_matplotlib()
        plot_path = Path(args.plot_path).expanduser() if args.plot_path \
            else model_file.parent / CONFUSION_FILE
        if not plot_path.parent.is_dir():
            raise CLIError(f"--plot-path: folder {plot_path.parent} does not exist", EXIT_USAGE)
    spec = None
    if args.dataset is not None:
        _, spec = dataset_spec(args.dataset)
    backend = get_backend(args.backend)
    ckpt = load_checkpoint(model_file, backend=backend)
    model, meta = ckpt.model, run_meta(ckpt)
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
    ds = load_dataset(spec, data_dir, progress=not args.json)
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
    top: dict[str, float] = {}
    for kk in (3, 5):
        if kk < k:
            top[str(kk)] = float(metrics.top_k_accuracy(yd, scores, kk))
    names = class_names(meta, k)
    per_class = _per_class(cm, names)
    if plot_path is not None:
        plot_confusion(cm, names, plot_path,
                       f"{ds.name} {args.split}: accuracy {result.get('accuracy', 0):.4f}")
    out = {"model": str(model_file.resolve()), "dataset": ds.name, "source": ds.source,
           "split": args.split, "samples": int(X.shape[0]), "backend": backend.name,
           "device": backend.device_name, "accuracy": result.get("accuracy"),
           "loss": result["loss"], "top_k_accuracy": top, "per_class": per_class,
           "confusion_matrix": cm.tolist(),
           "plot": str(plot_path.resolve()) if plot_path else None}
    if args.json:
        print_json(out)
        return EXIT_OK

    from rich.table import Table

    con = console(stderr=False)
    con.print(f"model  {model_file}  ({model.num_params:,} parameters, backend "
              f"{backend.name} {backend.device_name})")
    con.print(f"data   {ds.summary()}; evaluating the {args.split} split")
    t = Table(title="metrics", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("accuracy", f"{result.get('accuracy', float('nan')):.4f}")
    t.add_row("loss", f"{result['loss']:.4f}")
    for top_k, v in top.items():
        t.add_row(f"top-{top_k} accuracy", f"{v:.4f}")
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
        for name in names:
            cmt.add_column(name, justify="right")
        for i, name in enumerate(names):
            cmt.add_row(name, *[styled((str(v), "bold" if i == j else "dim" if v == 0 else ""))
                                for j, v in enumerate(cm[i].tolist())])
        con.print(cmt)
    else:
        con.print(f"(confusion matrix of {k} classes not shown; use --json or --plot)")
    if plot_path is not None:
        con.print(f"confusion matrix plot: {plot_path}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``xpnet predict``: the most likely classes of each input row.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``predict`` arguments (see :func:`xpnet.cli.build_parser`).

    Returns
    -------
    int
        0.

    Raises
    ------
    CLIError
        When the model or an input is missing or unreadable, an input does not fit the
        model, or the model is not a classifier (exit status 2 or 3).

    Examples
    --------
    >>> from xpnet.cli import main
    >>> main(["predict", "runs/latest", "digit.png", "--json"])  # doctest: +SKIP
    0
    """
    from ..backends import get_backend, to_numpy
    from ..checkpoint import load_checkpoint

    model_file = model_path(args.model)
    for text in args.inputs:  # cheap checks first
        if not Path(text).expanduser().exists():
            raise CLIError(f"input {Path(text).expanduser()} does not exist", EXIT_DATA)
    backend = get_backend(args.backend)
    ckpt = load_checkpoint(model_file, backend=backend)
    model, meta = ckpt.model, run_meta(ckpt)
    if model.loss.name != "cross_entropy":
        raise CLIError(f"{model_file} is not a classifier (loss {model.loss.name})", EXIT_DATA)
    k = model.out_features
    names = class_names(meta, k)
    shape = image_shape(meta, model.in_features)
    X, items = read_inputs(args.inputs, model.in_features, shape, args.invert)
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
        print_json({"model": str(model_file.resolve()), "backend": backend.name,
                    "class_names": names, "predictions": preds})
        return EXIT_OK

    from rich.table import Table

    con = console(stderr=False)
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
