# NumPy is used on the host here for tables: their encoded rows, the predictions written
# out and the regression metrics of `evaluate`, which are output anyway (DESIGN.md, rule 1).
"""Tables in the command: ``train --dataset FILE.csv --target COLUMN``, and ``evaluate``
and ``predict`` of the models it saves.

The table is read and encoded by [`xpnet.datasets.read_table`][] and
[`xpnet.datasets.TableEncoder`][]; the encoding (columns, categories, classes, the
target's mean and scale) is stored in the run record and the checkpoint's metadata
(``dataset.table``) and applied again to the rows given to ``evaluate`` and
``predict``. Numeric columns are standardized by a
[`Normalization`][xpnet.preprocessing.Normalization] layer, the model's first, adapted
on the training rows (`scaled_model`), so a saved or exported model takes raw rows.
"""

from __future__ import annotations

import argparse
import csv
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets
from ._args import EXIT_DATA, EXIT_OK, EXIT_USAGE, CLIError
from ._confusion import print_report, report
from ._io import check_output, run_meta
from ._output import carried, console, print_json, print_scores, same_decimals, write_stdout

__all__ = ["TableData", "is_table", "check_dataset_file", "check_table_flags", "load_table",
           "saved_table", "scaled_model", "table_scores", "table_encoder", "evaluate_table",
           "predict_table"]


@dataclass(frozen=True, eq=False, repr=False)
class TableData:
    """A table encoded for training, shaped like a Dataset without its test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    encoder: Any
    source: str
    rows: int
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        """Model outputs: the classes, or 1 for regression."""
        return int(self.encoder.n_outputs)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.encoder.classes)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Rows are not images: their width."""
        return (self.n_features,)

    @property
    def regression(self) -> bool:
        return bool(self.encoder.task == "regression")

    def short_summary(self) -> str:
        """The name, the features and the target, for a narrow terminal."""
        task = "regression" if self.regression else f"{len(self.encoder.classes)} classes"
        return f"{self.name}: {self.n_features} features; target {self.encoder.target}, {task}"

    def summary(self) -> str:
        """One line: rows, columns, features, target and task."""
        enc = self.encoder
        n_num = len(enc.numeric_features)
        task = "regression" if self.regression else \
            f"classification, {len(enc.classes)} classes"
        return (f"{self.name}: {self.rows:,} rows of {len(enc.columns)} column"
                f"{'s' if len(enc.columns) != 1 else ''} ({self.n_features} features: "
                f"{n_num} numeric, {self.n_features - n_num} one-hot); target "
                f"{enc.target}, {task} (source: {self.source})")


def is_table(spec_kind: str, spec: str) -> bool:
    """Whether a ``--dataset`` value names a table file."""
    return spec_kind == "path" and datasets.is_table_file(spec)


def check_dataset_file(spec_kind: str, spec: str) -> None:
    """Refuse (exit 3) a ``--dataset`` file no loader reads, listing the formats accepted."""
    p = Path(spec)
    if spec_kind != "path" or not p.is_file() or p.suffix.lower() in datasets.TABLE_FORMATS:
        return
    tables = ", ".join(f"{s} {d}" for s, d in datasets.TABLE_FORMATS.items() if s != ".npz")
    raise CLIError(f"--dataset {p}: unknown format {p.suffix.lower() or '(no suffix)'!r}; "
                   "accepted: a folder of the four IDX files, an .npz with x_train, y_train, "
                   f"x_test, y_test (images) or with X and y (a table), {tables}", EXIT_DATA)


def _header(path: str) -> list[str]:
    """The column names of a CSV/TSV file's first line (empty if unreadable)."""
    if Path(path).suffix.lower() not in (".csv", ".tsv"):
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            row = next(csv.reader(f, delimiter="\t" if path.lower().endswith(".tsv") else ","),
                       [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [c.strip() for c in row]


#: The flags of a table's encoding and their settings.
_TABLE_FLAGS = (("--target", "target"), ("--task", "task"),
                ("--max-categories", "max_categories"), ("--impute", "impute"))


def check_table_flags(args: argparse.Namespace, table: bool, resuming: bool,
                      saved_spec: dict[str, Any] | None = None) -> None:
    """Refuse (exit 2) table flags without a table, a table without --target, a changed resume."""
    given = [(flag, key) for flag, key in _TABLE_FLAGS if getattr(args, key)]
    if not table and given:
        raise CLIError(f"{given[0][0]} applies to table files (.csv, .tsv, .parquet, .npz of X "
                       f"and y), not to {args.dataset or 'digits'}", EXIT_USAGE)
    if table and not resuming and not args.target:
        names = _header(args.dataset)
        listed = f"; the columns are: {', '.join(names)}" if names else ""
        raise CLIError(f"--dataset {args.dataset} is a table: pass --target COLUMN, the "
                       f"column to predict{listed}", EXIT_USAGE)
    spec = saved_spec or {}
    for flag, key in given if table and resuming else ():
        if key not in spec or getattr(args, key) != spec[key]:
            old = f" ({spec[key]})" if key in spec else ""
            raise CLIError(f"{flag} cannot change when resuming: the run keeps the encoding "
                           f"it was started with{old}; drop {flag} to resume", EXIT_USAGE)


def _encode(encoder: Any, table: Any, *, quiet: bool, fit: bool = False, **kwargs: Any
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """``encoder.transform`` (after ``fit`` when `fit`), its notes printed as ``xpnet: note:``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", datasets.TableWarning)
        if fit:
            encoder.fit(table)
        X, y = encoder.transform(table, **kwargs)
    con = console(stderr=True, quiet=quiet)
    for w in caught:
        if issubclass(w.category, datasets.TableWarning):
            con.print(f"xpnet: note: {w.message}", markup=False, highlight=False)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return X, y


def load_table(path: str, args: argparse.Namespace, saved_spec: Any = None) -> TableData:
    """Read and encode the training table, or reuse a resumed run's encoding (TableError: 3)."""
    if saved_spec is not None:
        encoder = datasets.TableEncoder.from_dict(saved_spec)
        table = datasets.read_table(path, kinds=encoder.kinds)
    else:
        table = datasets.read_table(path)
        encoder = datasets.TableEncoder(
            args.target, task=args.task, impute=bool(args.impute),
            max_categories=args.max_categories or datasets.MAX_CATEGORIES)
    X, y = _encode(encoder, table, quiet=args.quiet, fit=saved_spec is None)
    assert y is not None
    return TableData(table.name, X, y, encoder, table.source, table.n_rows,
                     {Path(path).name: datasets.file_sha256(path)})


def scaled_model(sizes: list[int], numeric: list[int], X: Any, *, regression: bool,
                 **kwargs: Any) -> Any:
    """An MLP whose first layer standardizes the `numeric` columns, adapted on `X`."""
    from ..model import MLP, Sequential
    from ..preprocessing import Normalization

    loss = "mse" if regression else "cross_entropy"
    body = MLP(sizes, loss=loss, **kwargs)
    if not numeric:
        return body
    norm = Normalization(columns=numeric).adapt(X)
    return Sequential([norm, *body.layers], in_features=sizes[0], loss=loss,
                      backend=body.backend, dtype=body.dtype_name, seed=body.seed)


def saved_table(ckpt: Any, model_file: Any) -> Any:
    """The table encoding of the run being resumed (exit 3 when it has none)."""
    meta = run_meta(ckpt, model_file)
    spec = (meta.get("dataset") or {}).get("table")
    if spec is None:
        raise CLIError(f"{model_file} was not trained on a table; resume it with its own "
                       "dataset", EXIT_DATA)
    return spec


def table_scores(model: Any, ds: TableData, val: Any) -> dict[str, Any] | None:
    """Validation loss and accuracy, or loss, MAE, RMSE, R² in target units; None without rows."""
    if val is None:
        return None
    X, y = val
    result = dict(model.evaluate(X, y))
    if ds.regression:
        result.update(_regression_scores(ds.encoder, _outputs(model, X), y))
    return result


def _regression_scores(encoder: Any, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² of the outputs, in the target's units."""
    from .. import metrics

    pred, true = encoder.decode(outputs), encoder.decode(y)
    return {"mae": float(metrics.mean_absolute_error(true, pred)),
            "rmse": float(metrics.root_mean_squared_error(true, pred)),
            "r2": float(metrics.r2_score(true, pred))}


def table_encoder(meta: dict[str, Any], model_file: Any) -> Any:
    """The encoder stored with a model trained on a table, or None for other models."""
    spec = (meta.get("dataset") or {}).get("table")
    if spec is None:
        return None
    try:
        return datasets.TableEncoder.from_dict(spec)
    except datasets.TableError as exc:
        raise CLIError(f"{model_file}: damaged metadata: {exc}", EXIT_DATA) from None


def _read(path: str, encoder: Any, args: argparse.Namespace, *, with_target: bool
          ) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """The table at `path`, read with the model's column kinds, and its rows encoded."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CLIError(f"input {p} does not exist", EXIT_DATA)
    kinds = encoder.kinds
    if not with_target:
        kinds.pop(encoder.target, None)
    table = datasets.read_table(p, kinds=kinds)
    X, y = _encode(encoder, table, quiet=False, target=with_target, strict=args.strict,
                   impute=True if args.impute else None)
    return table, X, y


def _outputs(model: Any, X: np.ndarray) -> np.ndarray:
    """Class probabilities (classification) or the raw outputs (regression), on the host."""
    from ..backends import to_numpy

    predict = model.predict_proba if model.loss.name == "cross_entropy" else model.predict
    return to_numpy(predict(X)).astype(np.float64)


# ----------------------------------------------------------------------------- evaluate
def evaluate_table(args: argparse.Namespace, backend: Any, model: Any, encoder: Any,
                   model_file: Path, plot_path: Path | None = None) -> int:
    """``xpnet evaluate RUN FILE`` on a table holding the target column."""
    path = args.data or args.dataset
    if not path:
        raise CLIError(f"{model_file} was trained on a table; give the file to evaluate on: "
                       f"xpnet evaluate {args.model} FILE (with the {encoder.target!r} column)",
                       EXIT_USAGE)
    if plot_path is not None:
        if encoder.task == "regression":
            raise CLIError("--plot draws a classifier's confusion matrix; this model "
                           f"predicts a number ({encoder.target})", EXIT_USAGE)
        check_output(plot_path, "--plot-path" if args.plot_path else "--plot",
                     [Path(path).expanduser()])
    table, X, y = _read(path, encoder, args, with_target=True)
    assert y is not None
    result = model.evaluate(X, y)
    out: dict[str, Any] = {
        "model": str(model_file.resolve()), "dataset": table.name, "source": table.source,
        "samples": table.n_rows, "backend": backend.name, "device": backend.device_name,
        "task": encoder.task, "target": encoder.target, "loss": result["loss"]}
    outputs, cm, names = _outputs(model, X), None, list(encoder.classes)
    if encoder.task == "regression":
        out.update(_regression_scores(encoder, outputs, y))
    else:
        out["accuracy"] = result.get("accuracy")
        scores, cm = report(y, np.argmax(outputs, axis=1), names, plot_path,
                            f"{table.name}: accuracy {result.get('accuracy', 0):.4f}")
        out.update(scores)
    if args.json:
        print_json(out)
        return EXIT_OK
    _print_table_scores(out, model, model_file)
    if cm is not None:
        print_report(console(stderr=False), cm, names, out["plot"])
    return EXIT_OK


def _print_table_scores(out: dict[str, Any], model: Any, model_file: Path) -> None:
    if out["task"] == "regression":  # in the target's units: the same decimals
        mae, rmse = same_decimals([out["mae"], out["rmse"]])
        rows = [("MAE", mae), ("RMSE", rmse), ("R²", f"{out['r2']:.4f}"),
                ("loss (standardized)", f"{out['loss']:.4f}")]
    else:
        rows = [("accuracy", f"{out['accuracy']:.4f}"), ("loss", f"{out['loss']:.4f}")]
    print_scores(out, model, model_file, f"{out['source']}: {out['samples']:,} rows; target "
                 f"{out['target']} ({out['task']})", rows)


# ----------------------------------------------------------------------------- predict
#: --output suffixes of other formats than the CSV it writes.
_NOT_CSV = frozenset({".json", ".jsonl", ".tsv", ".parquet", ".pq", ".npz", ".npy", ".xlsx",
                      ".xls"})

def _output_target(args: argparse.Namespace, inputs: list[Path], model_file: Path
                   ) -> Path | None:
    """Where ``--output`` writes, checked first: a new or regular file, no input, folder exists."""
    if not args.output:
        return None
    out = Path(args.output).expanduser()
    if out.suffix.lower() in _NOT_CSV:
        json_hint = f"; for JSON: --json > {out.name}" if out.suffix.lower() == ".json" else ""
        raise CLIError(f"--output {out}: the predictions are written as CSV (commas); name "
                       f"the file .csv{json_hint}", EXIT_USAGE)
    check_output(out, "--output", [*inputs, model_file], folder=True)
    return out


def predict_table(args: argparse.Namespace, backend: Any, model: Any, encoder: Any,
                  model_file: Path) -> int:
    """``xpnet predict RUN FILE``: one prediction per row as CSV or JSON, or to ``--output``."""
    if len(args.inputs) != 1:
        raise CLIError(f"a model trained on a table predicts one table file at a time; got "
                       f"{len(args.inputs)} inputs", EXIT_USAGE)
    if args.proba and encoder.task == "regression":
        raise CLIError("--proba applies to classifiers; this model predicts a number "
                       f"({encoder.target})", EXIT_USAGE)
    path = Path(args.inputs[0]).expanduser()
    out_path = _output_target(args, [path], model_file)
    table, X, _ = _read(str(path), encoder, args, with_target=False)
    outputs = _outputs(model, X)
    rows = _prediction_rows(encoder, outputs, args.proba, np.dtype(model.dtype_name))
    if out_path is not None:
        from .._files import atomic_write_text

        atomic_write_text(out_path, _csv_text(rows))
        console(stderr=True, quiet=bool(args.json)).print(
            f"xpnet: wrote {len(rows) - 1:,} predictions to {out_path}")
    if args.json:
        header = rows[0]
        print_json({"model": str(model_file.resolve()), "backend": backend.name,
                    "input": str(path), "task": encoder.task, "target": encoder.target,
                    "class_names": list(encoder.classes),
                    "predictions": [_json_row(header, row, table.lines[i], table.unit)
                                    for i, row in enumerate(rows[1:])],
                    "output": str(out_path.resolve()) if out_path else None})
    elif out_path is None:
        write_stdout([_csv_text(rows)])
    return EXIT_OK


def _prediction_rows(encoder: Any, outputs: np.ndarray, proba: bool,
                     dtype: np.dtype) -> list[list[Any]]:
    """The header and one row per input row, with the digits the model's dtype carries."""
    target = encoder.target
    if encoder.task == "regression":
        values = carried(encoder.decode(outputs).astype(dtype))
        return [[target], *[[v] for v in values.tolist()]]
    best = np.argmax(outputs, axis=1)
    names = encoder.decode(best)
    header = [target, "probability"]
    if proba:
        header += [f"p({c})" for c in encoder.classes]
    probs = carried(outputs.astype(dtype)).tolist()
    return [header, *([str(name), p[b], *(p if proba else ())]
                      for name, p, b in zip(names, probs, best.tolist(), strict=True))]


def _json_row(header: list[str], row: list[Any], line: Any, unit: str) -> dict[str, Any]:
    item: dict[str, Any] = {unit: int(line), "prediction": row[0]}
    if len(row) > 1:
        item["probability"] = row[1]
    if len(row) > 2:
        item["probabilities"] = {h[2:-1]: p for h, p in zip(header[2:], row[2:], strict=True)}
    return item


def _csv_text(rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return buf.getvalue()
