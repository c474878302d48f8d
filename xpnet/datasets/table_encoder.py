# NumPy is used on the host here for encoding table columns, as DESIGN.md allows.
"""[`TableEncoder`][xpnet.datasets.TableEncoder]: a [`Table`][xpnet.datasets.Table]'s
columns as model inputs and targets, the same way at training and at prediction time.

What it learns from the training table is a JSON-serialisable dict
(`TableEncoder.to_dict`) that the command stores in the run and the checkpoint.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._core import check_data_size
from .tables import MAX_CATEGORIES, Table, TableError, TableWarning

__all__ = ["TableEncoder"]

_KINDS = ("int", "float", "string")
_SPEC_VERSION = 1
#: An inferred integer target with fewer rows than this per class (and over 20 classes)
#: gets a note that it may be a quantity.
_ROWS_PER_CLASS = 5
_TARGET_MISSING = "the target is missing in {n} row(s) (this is the first); remove those rows"
_FEATURE_MISSING = ("{n} missing value(s) in this column (this is the first); fill them, or "
                    "pass --impute to fill numbers with the training median and text with the "
                    "most frequent value")
_ID_NAME = re.compile(r"(^|[_\s.-])id$|^id[_\s.-]|^(index|row|unnamed: ?0)$", re.IGNORECASE)
#: A number written with thousands separators, a percent sign or a currency sign.
_FORMATTED = re.compile(r"[+-]?[$€£¥]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?"  # 1,234  $1,234.50
                        r"|[+-]?[$€£¥]\d+(?:\.\d+)?"                  # $5
                        r"|[+-]?\d+(?:\.\d+)?%")                       # 12.5%


def _note(text: str) -> None:
    warnings.warn(text, TableWarning, stacklevel=3)


class TableEncoder:
    """Encode a `Table` as model inputs and targets, the same way every time.

    `fit` learns from the training table which columns are features, the type of each,
    the categories of string columns (one-hot encoded, sorted), the values that fill
    missing cells (median for numbers, most frequent value for strings), the task, the
    classes (sorted) or the target's mean and standard deviation. `transform` applies
    that to any table with the same column names. Numeric features come first, in file
    order, then the one-hot blocks; scale the numeric ones inside the model (their
    indices are `numeric_features`).

    Parameters
    ----------
    target : str
        The target column.
    task : {"classification", "regression"}, optional
        Default: classification when the target holds integers or strings, regression
        when it holds other numbers.
    max_categories : int, default 1000
        Most categories one string column may have (more is refused, with the count).
    impute : bool, default False
        Fill missing feature values instead of refusing them. Missing targets are
        always refused.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.datasets import Table, TableEncoder
    >>> t = Table("pets", "pets.csv", ("age", "kind", "y"),
    ...           {"age": "float", "kind": "string", "y": "string"},
    ...           {"age": np.array([3.0, 5.5, 1.0]), "kind": np.array(["cat", "dog", "cat"]),
    ...            "y": np.array(["no", "yes", "no"])},
    ...           {k: np.zeros(3, bool) for k in ("age", "kind", "y")}, np.arange(2, 5))
    >>> enc = TableEncoder("y").fit(t)
    >>> enc.task, enc.classes, enc.feature_names
    ('classification', ['no', 'yes'], ['age', 'kind=cat', 'kind=dog'])
    >>> X, y = enc.transform(t)
    >>> X.tolist(), y.tolist()
    ([[3.0, 1.0, 0.0], [5.5, 0.0, 1.0], [1.0, 1.0, 0.0]], [0, 1, 0])
    """

    def __init__(self, target: str, *, task: str | None = None,
                 max_categories: int = MAX_CATEGORIES, impute: bool = False):
        if task not in (None, "classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) \
                or max_categories < 1:
            raise ValueError(f"max_categories must be a positive int, got {max_categories!r}")
        self.target = str(target)
        self.task = task
        self.max_categories = max_categories
        self.impute = bool(impute)
        self.columns: list[dict[str, Any]] = []
        self.target_kind = ""
        self.classes: list[str] = []
        self.target_mean = 0.0
        self.target_std = 1.0
        self._fitted = False

    # -- learning ---------------------------------------------------------------
    def fit(self, table: Table) -> TableEncoder:
        """Learn the encoding from the training table.

        Parameters
        ----------
        table : Table

        Returns
        -------
        TableEncoder
            self.

        Raises
        ------
        TableError
            The target column is missing (the message lists the columns) or has missing
            values; a string column with more than `max_categories` categories; a float
            target with ``task="classification"`` that holds non-integers; a
            classification target of one class; no feature column.

        Warns
        -----
        TableWarning
            A note, the encoder still fitted: an inferred integer target of over 20
            classes with under 5 rows per class, or an inferred float target of at most
            10 whole numbers (the other task may be meant); a column of unique integers
            counting up or named like an id; a text column of numbers written with
            separators or signs (``1,234``, ``12%``, ``$5``).
        """
        if self.target not in table.columns:
            raise TableError(f"{table.source}: no column {self.target!r} to use as the target; "
                             f"the columns are: {', '.join(table.columns)}")
        _refuse_missing(table, self.target, _TARGET_MISSING)
        kind = self.target_kind = table.kinds[self.target]
        inferred = self.task is None
        if self.task is None:
            self.task = "regression" if kind == "float" else "classification"
        self._fit_target(table, inferred)
        self.columns = [self._fit_column(table, name) for name in table.columns
                        if name != self.target]
        if not self.columns:
            raise TableError(f"{table.source}: the table holds only the target column "
                             f"{self.target!r}; there is nothing to learn from")
        self._fitted = True
        self._check_missing(table, impute=self.impute)
        return self

    def _fit_target(self, table: Table, inferred: bool) -> None:
        """The classes, or the target's mean and scale; a note when the other task may be meant."""
        kind, values = self.target_kind, table.values[self.target]
        at, found = table.where(column=self.target), np.unique(values)
        if self.task == "regression":
            if kind == "string":
                raise TableError(f"{at}: regression needs a numeric target; this column holds text")
            if inferred and found.shape[0] <= 10 and np.all(found == np.round(found)):
                shown = ", ".join(_class_name(v) for v in found.tolist())
                _note(f"{at}: the target holds only the whole numbers {shown}, written with "
                      "decimals, so it is trained as a number to predict (regression); for "
                      "classes, use --task classification")
            self.target_mean = float(np.mean(values))
            std = float(np.std(values))
            self.target_std = std if std > 0 and math.isfinite(std) else 1.0
            return
        if kind == "float" and not np.all(values == np.round(values)):
            raise TableError(f"{at}: the target holds non-integer numbers; use --task regression, "
                             "or round them to class labels")
        if found.shape[0] > self.max_categories:
            raise TableError(f"{at}: the target has {found.shape[0]:,} classes, more than "
                             f"{self.max_categories:,}; for a number to predict use --task "
                             "regression, or raise --max-categories")
        if found.shape[0] < 2:
            rows = f"all {table.n_rows:,} rows" if table.n_rows > 1 else "its only row"
            raise TableError(f"{at}: the target holds one class ({_class_name(found[0])!r}) in "
                             f"{rows}; a classifier needs at least 2 classes")
        self.classes = [_class_name(v) for v in found.tolist()]
        n_classes = len(self.classes)
        if inferred and kind == "int" and n_classes > 20 and \
                n_classes * _ROWS_PER_CLASS > table.n_rows:
            _note(f"{at}: the target holds {n_classes:,} different integers in {table.n_rows:,} "
                  f"rows, so it is trained as {n_classes:,} classes; for a quantity to predict, "
                  "use --task regression")

    def _fit_column(self, table: Table, name: str) -> dict[str, Any]:
        kind, values, missing = table.kinds[name], table.values[name], table.missing[name]
        present, at = values[~missing], table.where(column=name)
        col: dict[str, Any] = {"name": name, "kind": kind, "fill": None}
        if present.shape[0] == 0:
            raise TableError(f"{at}: every value is missing; drop the column")
        if kind == "string":
            cats, counts = np.unique(present, return_counts=True)
            if cats.shape[0] > self.max_categories:
                raise TableError(f"{at}: {cats.shape[0]:,} categories, more than --max-categories "
                                 f"{self.max_categories:,}; drop the column, group its rare "
                                 "values, or raise --max-categories")
            col["categories"] = cats.tolist()
            col["fill"] = str(cats[int(np.argmax(counts))])
            example = _formatted_number(col["categories"])
            if example is not None:
                _note(f"{at}: read as text, {cats.shape[0]:,} categories, but its values are "
                      f"numbers written with separators or signs ({example!r}); remove the ',', "
                      "'%' or currency signs from the file to use them as numbers")
        else:
            col["fill"] = float(np.median(present))
            if kind == "int" and _looks_like_an_id(name, values, missing):
                _note(f"{at}: a different integer in every row (an identifier or a row number?) "
                      "is a feature a model can only memorise; remove the column from the file "
                      "if it is one")
        return col

    # -- applying ------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        """Names of the encoded features: numeric columns, then ``column=category``.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> TableEncoder.from_dict({"version": 1, "target": "y", "task": "regression",
        ...     "target_kind": "float", "classes": [], "target_mean": 0.0,
        ...     "target_std": 1.0, "max_categories": 1000, "impute": False,
        ...     "columns": [{"name": "c", "kind": "string", "fill": "a",
        ...                  "categories": ["a", "b"]},
        ...                 {"name": "n", "kind": "int", "fill": 1.0}]}).feature_names
        ['n', 'c=a', 'c=b']
        """
        numeric = [c["name"] for c in self.columns if c["kind"] != "string"]
        onehot = [f"{c['name']}={v}" for c in self.columns if c["kind"] == "string"
                  for v in c["categories"]]
        return numeric + onehot

    @property
    def numeric_features(self) -> list[int]:
        """Indices of the numeric features (the first ones); the rest are one-hot.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> enc = TableEncoder("y")
        >>> enc.columns = [{"name": "a", "kind": "float"}, {"name": "b", "kind": "int"}]
        >>> enc.numeric_features
        [0, 1]
        """
        return list(range(sum(c["kind"] != "string" for c in self.columns)))

    @property
    def n_features(self) -> int:
        """Number of encoded features.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> enc = TableEncoder("y")
        >>> enc.columns = [{"name": "a", "kind": "float"}]
        >>> enc.n_features
        1
        """
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        """Model outputs: the number of classes, or 1 for regression.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> TableEncoder("y", task="regression").n_outputs
        1
        """
        return len(self.classes) if self.task == "classification" else 1

    @property
    def kinds(self) -> dict[str, str]:
        """The type of every column the encoder reads (features and target), for
        `read_table`.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> enc = TableEncoder("y")
        >>> enc.columns, enc.target_kind = [{"name": "a", "kind": "float"}], "string"
        >>> enc.kinds
        {'a': 'float', 'y': 'string'}
        """
        return {**{c["name"]: c["kind"] for c in self.columns}, self.target: self.target_kind}

    def _check_missing(self, table: Table, *, impute: bool) -> None:
        """Refuse missing feature values (count and first line) unless they are filled."""
        for col in self.columns if not impute else []:
            _refuse_missing(table, col["name"], _FEATURE_MISSING)

    def transform(self, table: Table, *, target: bool = True, strict: bool = False,
                  impute: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Encode a table: float32 inputs, and the targets.

        Columns are matched by name: a missing one is refused, an extra one ignored
        (with a `TableWarning`). A category that training never saw is encoded as
        all zeros, with a `TableWarning` (refused with ``strict=True``).

        Parameters
        ----------
        table : Table
        target : bool, default True
            Encode the target column too (it must then be present). With False it is
            ignored if present.
        strict : bool, default False
            Refuse categories (and classes) that training never saw.
        impute : bool, optional
            Fill missing values with the training median / most frequent value; default:
            what the encoder was fitted with.

        Returns
        -------
        X : numpy.ndarray
            (n, n_features) float32.
        y : numpy.ndarray or None
            int64 class indices, or float32 standardized targets (regression); None when
            `target` is False.

        Raises
        ------
        TableError
            A missing column, missing values (without imputing), an unseen category
            with ``strict``, an unknown class in the target, data above the size cap.
        """
        if not self._fitted:
            raise RuntimeError("this TableEncoder is not fitted; call fit(table) first")
        wanted = [c["name"] for c in self.columns] + ([self.target] if target else [])
        absent = [name for name in wanted if name not in table.columns]
        if absent:
            what = "the target column" if absent == [self.target] else \
                "column" + ("s" if len(absent) > 1 else "")
            hint = "; to predict rows without it: xpnet predict (in Python: " \
                "transform(table, target=False))" if absent == [self.target] else ""
            raise TableError(f"{table.source}: {what} {', '.join(map(repr, absent))} the model "
                             f"was trained with {'is' if len(absent) == 1 else 'are'} missing;"
                             f" the file has: {', '.join(table.columns)}{hint}")
        extra = [n for n in table.columns if n not in wanted and n != self.target]
        if extra:
            _note(f"{table.source}: ignored column(s) the model was not trained on: "
                  f"{', '.join(extra)}")
        self._check_missing(table, impute=self.impute if impute is None else impute)
        check_data_size(table.n_rows * self.n_features, table.source)
        X = np.zeros((table.n_rows, self.n_features), dtype=np.float32)
        numeric = [c for c in self.columns if c["kind"] != "string"]
        for j, col in enumerate(numeric):
            X[:, j] = self._filled(table, col)
        start = len(numeric)
        for col in self.columns:
            if col["kind"] == "string":
                start += self._one_hot(table, col, X, start, strict)
        y = self._encode_target(table, strict) if target else None
        return X, y

    def _filled(self, table: Table, col: dict[str, Any]) -> np.ndarray:
        values, miss = table.values[col["name"]], table.missing[col["name"]]
        if miss.any():
            values = np.where(miss, col["fill"], values)
        return values

    def _one_hot(self, table: Table, col: dict[str, Any], X: np.ndarray, start: int,
                 strict: bool) -> int:
        cats = np.asarray(col["categories"], dtype=str)
        values = self._filled(table, col).astype(str)
        idx = np.searchsorted(cats, values)
        idx_c = np.minimum(idx, cats.shape[0] - 1)
        known = cats[idx_c] == values
        if not known.all():
            bad = int(np.flatnonzero(~known)[0])
            n_bad = int((~known).sum())
            if strict:
                raise TableError(f"{table.where(bad, col['name'])}: category "
                                 f"{str(values[bad])!r} was never seen in training "
                                 f"({n_bad:,} row(s) hold unseen categories); known: "
                                 f"{_shorten(col['categories'])}")
            _note(f"{table.where(bad, col['name'])}: {n_bad:,} row(s) hold categories never "
                  f"seen in training (first: {str(values[bad])!r}); encoded as all zeros")
        rows = np.flatnonzero(known)
        X[rows, start + idx_c[rows]] = 1.0
        return int(cats.shape[0])

    def _encode_target(self, table: Table, strict: bool) -> np.ndarray:
        _refuse_missing(table, self.target, _TARGET_MISSING)
        values = table.values[self.target]
        if self.task == "regression":
            if table.kinds[self.target] == "string":
                raise TableError(f"{table.where(column=self.target)}: the target holds text; "
                                 "the model predicts numbers")
            return ((values - self.target_mean) / self.target_std).astype(np.float32)
        names = [_class_name(v) for v in values.tolist()]
        lookup = {c: i for i, c in enumerate(self.classes)}
        for row, name in enumerate(names):
            if name not in lookup:
                raise TableError(f"{table.where(row, self.target)}: class {name!r} was never "
                                 f"seen in training; known: {_shorten(self.classes)}")
        return np.asarray([lookup[n] for n in names], dtype=np.int64)

    def decode(self, outputs: Any) -> np.ndarray:
        """Model outputs back in the target's terms.

        Parameters
        ----------
        outputs : array
            Class indices (classification) or the model's standardized outputs,
            shape (n,) or (n, 1) (regression), as NumPy arrays.

        Returns
        -------
        numpy.ndarray
            Class names (str), or predictions in the target's units (float64).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.datasets import TableEncoder
        >>> enc = TableEncoder("price", task="regression")
        >>> enc.target_mean, enc.target_std = 100.0, 20.0
        >>> enc.decode(np.array([[0.5], [-1.0]])).tolist()
        [110.0, 80.0]
        """
        out = np.asarray(outputs)
        if self.task == "regression":
            return out.reshape(-1).astype(np.float64) * self.target_std + self.target_mean
        return np.asarray(self.classes, dtype=str)[out.astype(np.int64)]

    # -- storing -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The encoding as a JSON-serialisable dict (see `from_dict`).

        Returns
        -------
        dict

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> sorted(TableEncoder("y").to_dict())[:4]
        ['classes', 'columns', 'impute', 'max_categories']
        """
        return {"version": _SPEC_VERSION, "target": self.target, "task": self.task,
                "target_kind": self.target_kind, "classes": list(self.classes),
                "target_mean": self.target_mean, "target_std": self.target_std,
                "max_categories": self.max_categories, "impute": self.impute,
                "columns": [dict(c) for c in self.columns]}

    @classmethod
    def from_dict(cls, spec: Any) -> TableEncoder:
        """The encoder `to_dict` described, checked.

        Parameters
        ----------
        spec : dict

        Returns
        -------
        TableEncoder
            Fitted.

        Raises
        ------
        TableError
            A field of the wrong type.

        Examples
        --------
        >>> from xpnet.datasets import TableEncoder
        >>> TableEncoder.from_dict({"target": 3})
        Traceback (most recent call last):
        ...
        xpnet.datasets.tables.TableError: table encoding: target must be a string, got int
        """
        def bad(key: str, want: str, value: Any) -> TableError:
            return TableError(f"table encoding: {key} must be {want}, got "
                              f"{type(value).__name__}")

        if not isinstance(spec, dict):
            raise bad("the encoding", "an object", spec)
        if not isinstance(spec.get("target"), str):
            raise bad("target", "a string", spec.get("target"))
        if spec.get("task") not in ("classification", "regression"):
            raise bad("task", "'classification' or 'regression'", spec.get("task"))
        columns = spec.get("columns")
        if not isinstance(columns, list) or not all(_good_column(c) for c in columns):
            raise bad("columns", "a list of {name, kind, fill, categories} objects", columns)
        classes = spec.get("classes", [])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise bad("classes", "a list of strings", classes)
        for key in ("target_mean", "target_std"):
            if not isinstance(spec.get(key), (int, float)) or isinstance(spec.get(key), bool):
                raise bad(key, "a number", spec.get(key))
        enc = cls(spec["target"], task=spec["task"],
                  max_categories=int(spec.get("max_categories", MAX_CATEGORIES)),
                  impute=bool(spec.get("impute", False)))
        enc.columns = [dict(c) for c in columns]
        enc.target_kind = str(spec.get("target_kind", "float"))
        enc.classes = list(classes)
        enc.target_mean, enc.target_std = float(spec["target_mean"]), float(spec["target_std"])
        enc._fitted = True
        return enc

    def __repr__(self) -> str:
        return (f"TableEncoder(target={self.target!r}, task={self.task!r}, "
                f"features={len(self.columns)} columns)")


def _refuse_missing(table: Table, name: str, message: str) -> None:
    """TableError at a column's first missing cell; `message` says ``{n}`` for their count."""
    miss = table.missing[name]
    if miss.any():
        first = int(np.flatnonzero(miss)[0])
        raise TableError(f"{table.where(first, name)}: " + message.format(n=f"{miss.sum():,}"))


def _good_column(c: Any) -> bool:
    if not (isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("kind") in _KINDS):
        return False
    if c["kind"] == "string":
        cats = c.get("categories")
        return isinstance(cats, list) and len(cats) > 0 and all(isinstance(v, str) for v in cats) \
            and cats == sorted(cats) and isinstance(c.get("fill"), (str, type(None)))
    return isinstance(c.get("fill"), (int, float, type(None)))


def _looks_like_an_id(name: str, values: np.ndarray, missing: np.ndarray) -> bool:
    """Unique integers in 20+ rows, counting up by one or in a column named like an id."""
    if values.shape[0] < 20 or missing.any() or np.unique(values).shape[0] != values.shape[0]:
        return False
    return bool(np.all(np.diff(values) == 1)) or _ID_NAME.search(name) is not None


def _formatted_number(categories: list[str]) -> str | None:
    """A category like '1,234', '12%' or '$5' when nearly all of them are such numbers."""
    found = [c for c in categories if _FORMATTED.fullmatch(c.strip())]
    return found[0] if found and len(found) >= 0.9 * len(categories) else None


def _class_name(v: Any) -> str:
    """A class value as its name: integers without '.0', strings as they are."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _shorten(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(map(repr, list(names)[:n]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")
