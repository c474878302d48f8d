# NumPy is used on the host here for file I/O: reading tables and encoding their columns,
# as DESIGN.md allows.
"""Tables: CSV, TSV, Parquet and ``.npz`` files of named columns, and their encoding.

`read_table` reads a file into a [`Table`][xpnet.datasets.Table]: one array per column
and one type per column (``"int"``, ``"float"`` or ``"string"``). CSV and TSV files are
read with the standard library's `csv` module, row by row; Parquet files need pyarrow
(``pip install pyarrow``); an ``.npz`` file holding
a 2-D array ``X`` and a 1-D array ``y`` (and no ``x_train``) is the table ``x0 .. xN``,
``y``.

[`TableEncoder`][xpnet.datasets.TableEncoder] turns a table into model inputs: numeric
columns as they are (scale them inside the model, see ``docs/own-data.md``), string
columns one-hot encoded, the target as class indices or as a standardized number. What it
learns from the training table (the columns, the categories, the classes, the target's
mean and standard deviation, the values that fill missing cells) is a JSON-serialisable
dict, `TableEncoder.to_dict`, that the command stores in the run and the checkpoint and
applies again to new rows.

Every problem is a [`TableError`][xpnet.datasets.TableError] (a
[`DatasetError`][xpnet.datasets.DatasetError]) of one line naming the file and, where
there is one, the line and the column.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._core import DatasetError, check_data_size

__all__ = ["MAX_CATEGORIES", "TABLE_FORMATS", "Table", "TableEncoder", "TableError",
           "TableWarning", "is_table_file", "read_table"]

MAX_CATEGORIES = 1000
"""Default limit on the categories of one string column (``--max-categories``)."""

TABLE_FORMATS: dict[str, str] = {
    ".csv": "CSV (comma-separated, header row)",
    ".tsv": "TSV (tab-separated, header row)",
    ".parquet": "Parquet (needs pyarrow)",
    ".pq": "Parquet (needs pyarrow)",
    ".npz": "NumPy .npz holding a 2-D X and a 1-D y",
}
"""File suffix -> the table format it is read as."""

#: Cell texts read as a missing value (compared without case and surrounding spaces).
_MISSING = frozenset({"", "na", "nan", "n/a", "null"})
_INT = re.compile(r"[+-]?\d+")
_KINDS = ("int", "float", "string")
_SPEC_VERSION = 1


class TableError(DatasetError):
    """A table that cannot be read or encoded; the message names the file, line and column.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> issubclass(xds.TableError, xds.DatasetError)
    True
    """


class TableWarning(UserWarning):
    """A note about a table that was still encoded: ignored columns, unseen categories.

    Examples
    --------
    >>> import xpnet.datasets as xds
    >>> issubclass(xds.TableWarning, UserWarning)
    True
    """


@dataclass(frozen=True, eq=False, repr=False)
class Table:
    """Named columns read from a file, one type per column.

    Parameters
    ----------
    name : str
        The file's stem.
    source : str
        The file's path.
    columns : tuple of str
        Column names, in file order.
    kinds : dict of str to str
        ``"int"``, ``"float"`` or ``"string"`` per column.
    values : dict of str to numpy.ndarray
        float64 for numeric columns (NaN where missing), str for string columns
        (``""`` where missing).
    missing : dict of str to numpy.ndarray
        bool per column: where the cell was empty, ``NA``, ``nan``, ``N/A`` or ``null``.
    lines : numpy.ndarray
        The file line of each row (CSV/TSV; the header is line 1), or its row number.
    unit : str
        ``"line"`` or ``"row"``: what `lines` counts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xpnet.datasets import read_table
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "pets.csv")
    ...     _ = p.write_text("age,kind\\n3,cat\\n5.5,dog\\n")
    ...     t = read_table(p)
    >>> t.columns, t.kinds, t.n_rows
    (('age', 'kind'), {'age': 'float', 'kind': 'string'}, 2)
    """

    name: str
    source: str
    columns: tuple[str, ...]
    kinds: dict[str, str]
    values: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]
    lines: np.ndarray
    unit: str = "line"
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Number of rows (the header not counted).

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.datasets import Table
        >>> Table("t", "t.csv", ("a",), {"a": "int"}, {"a": np.zeros(3)},
        ...       {"a": np.zeros(3, bool)}, np.arange(2, 5)).n_rows
        3
        """
        return int(self.lines.shape[0])

    def where(self, row: int | None = None, column: str | None = None) -> str:
        """``"<file>, line <n>, column '<name>'"`` for messages.

        Parameters
        ----------
        row : int, optional
            0-based row index.
        column : str, optional

        Returns
        -------
        str

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.datasets import Table
        >>> t = Table("t", "t.csv", ("a",), {"a": "int"}, {"a": np.zeros(1)},
        ...           {"a": np.zeros(1, bool)}, np.array([2]))
        >>> t.where(0, "a")
        "t.csv, line 2, column 'a'"
        """
        parts = [self.source]
        if row is not None:
            parts.append(f"{self.unit} {int(self.lines[row])}")
        if column is not None:
            parts.append(f"column {column!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Table {self.source}: {self.n_rows} rows, {len(self.columns)} columns>"


# ----------------------------------------------------------------------------- reading
def is_table_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is read as a table: a ``.csv``/``.tsv``/``.parquet`` file, or an
    ``.npz`` holding ``X`` and ``y`` (and no ``x_train``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool

    Examples
    --------
    >>> from xpnet.datasets import is_table_file
    >>> is_table_file("data.csv"), is_table_file("mnist.npz")
    (True, False)
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix != ".npz":
        return suffix in TABLE_FORMATS
    keys = _npz_names(p)
    return keys is not None and {"X", "y"} <= keys and "x_train" not in {k.lower() for k in keys}


def _npz_names(path: Path) -> set[str] | None:
    """The array names in an .npz, or None when it cannot be opened."""
    try:
        with zipfile.ZipFile(path) as z:
            return {n[:-4] for n in z.namelist() if n.endswith(".npy")}
    except (OSError, zipfile.BadZipFile):
        return None


def read_table(path: str | os.PathLike[str], *, kinds: dict[str, str] | None = None
               ) -> Table:
    """Read a CSV, TSV, Parquet or ``.npz`` (``X``, ``y``) file into a `Table`.

    The type of a column is inferred from its values: ``"int"`` when every value is an
    integer, ``"float"`` when every value is a number, ``"string"`` otherwise. A column
    whose values are mostly numbers but not all is refused, naming the first line that
    is not a number. Empty cells and ``NA``, ``nan``, ``N/A``, ``null`` (any case) are
    missing values; they are kept (see `Table.missing`) for the encoder to refuse or fill.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its suffix picks the format (see `TABLE_FORMATS`).
    kinds : dict of str to str, optional
        Types to read some columns as (those of a trained model): text in a column
        given as ``"int"`` or ``"float"`` is refused, naming its line.

    Returns
    -------
    Table

    Raises
    ------
    TableError
        An unknown suffix (the message lists the formats), an empty file, a header
        without rows, an empty or repeated column name, a row with more or fewer fields
        than the header, text in a numeric column, a file that is not UTF-8, Parquet
        without pyarrow, a column type Parquet stores that is not a number or a string.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xpnet.datasets import TableError, read_table
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "bad.csv")
    ...     _ = p.write_text("a,b\\n1,2\\n3\\n")
    ...     try:
    ...         read_table(p)
    ...     except TableError as exc:
    ...         print(str(exc).replace(d, "DIR"))
    DIR/bad.csv, line 3: 1 field where the header has 2; column 'b' is missing
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise TableError(f"{p}: unknown table format {suffix or '(no suffix)'!r}; accepted: "
                         + ", ".join(f"{s} {d}" for s, d in TABLE_FORMATS.items()))
    if not p.is_file():
        raise TableError(f"{p}: no such file")
    if suffix in (".csv", ".tsv"):
        return _read_delimited(p, "\t" if suffix == ".tsv" else ",", kinds or {})
    if suffix == ".npz":
        return _read_npz(p)
    return _read_parquet(p)


def _check_header(header: list[str], p: Path) -> tuple[str, ...]:
    names = tuple(h.strip() for h in header)
    if len(names) == 1 and names[0] == "":
        raise TableError(f"{p}, line 1: the header is empty; the first line must name the "
                         "columns")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not name:
            raise TableError(f"{p}, line 1: column {i + 1} has no name; the first line must "
                             "name every column")
        if name in seen:
            raise TableError(f"{p}, line 1, column {name!r}: the name appears twice in the "
                             "header")
        seen.add(name)
    return names


def _read_delimited(p: Path, delimiter: str, kinds: dict[str, str]) -> Table:
    """CSV or TSV, streamed row by row with the csv module."""
    cells: list[list[str]] = []
    lines: list[int] = []
    names: tuple[str, ...] = ()
    line = 0
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                line = reader.line_num
                if not names:
                    if not row:
                        continue
                    names = _check_header(row, p)
                    cells = [[] for _ in names]
                    continue
                if not row or (len(row) == 1 and not row[0].strip() and len(names) > 1):
                    continue  # a blank line
                if len(row) != len(names):
                    raise TableError(_ragged(p, line, len(row), names))
                for column, value in zip(cells, row, strict=True):
                    column.append(value)
                lines.append(line)
    except UnicodeDecodeError:
        raise TableError(f"{p}, line {_first_bad_line(p)}: not UTF-8 text; save the file "
                         "as UTF-8") from None
    except csv.Error as exc:
        raise TableError(f"{p}, line {line + 1}: {exc}") from None
    if not names:
        raise TableError(f"{p}: the file is empty; a table needs a header line naming the "
                         "columns, then one line per row")
    if not lines:
        raise TableError(f"{p}: the file has a header ({', '.join(names)}) but no rows")
    line_arr = np.asarray(lines, dtype=np.int64)
    table = Table(p.stem, str(p), names, {}, {}, {}, line_arr, "line")
    for name, column in zip(names, cells, strict=True):
        kind, values, missing = _parse_column(column, name, table, kinds.get(name))
        table.kinds[name], table.values[name], table.missing[name] = kind, values, missing
    return table


def _first_bad_line(p: Path) -> int:
    """The first line of a file that is not UTF-8 (text is decoded in chunks)."""
    with open(p, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1


def _ragged(p: Path, line: int, got: int, names: tuple[str, ...]) -> str:
    fields = f"{got} field{'s' if got != 1 else ''} where the header has {len(names)}"
    if got < len(names):
        return f"{p}, line {line}: {fields}; column {names[got]!r} is missing"
    return f"{p}, line {line}: {fields}; the row goes on past the last column {names[-1]!r}"


def _parse_column(cells: list[str], name: str, table: Table, want: str | None
                  ) -> tuple[str, np.ndarray, np.ndarray]:
    """One column's type, values and missing mask, from its cell texts."""
    n = len(cells)
    texts = [c.strip() for c in cells]
    missing = np.fromiter((t.lower() in _MISSING for t in texts), dtype=bool, count=n)
    numbers = np.full(n, np.nan)
    n_num, first_text, integral = 0, -1, True
    for i, t in enumerate(texts):
        if missing[i]:
            continue
        try:
            v = float(t)
        except ValueError:
            if first_text < 0:
                first_text = i
            continue
        if not math.isfinite(v):
            raise TableError(f"{table.where(i, name)}: {t!r} is not a finite number")
        numbers[i] = v
        n_num += 1
        integral = integral and _INT.fullmatch(t) is not None
    n_text = n - int(missing.sum()) - n_num
    numeric_wanted = want in ("int", "float")
    if n_text and (numeric_wanted or n_num > n_text):
        why = "the model was trained on numbers there" if numeric_wanted else \
            f"the column's other {n_num} values are numbers"
        raise TableError(f"{table.where(first_text, name)}: {texts[first_text][:40]!r} is not "
                         f"a number ({why}); fix the value, or leave the cell empty for a "
                         "missing value")
    if want == "string" or (want is None and n_text):
        kept = [t if not m else "" for t, m in zip(texts, missing, strict=True)]
        return "string", np.asarray(kept, dtype=str), missing
    return ("int" if integral else "float"), numbers, missing


def _read_npz(p: Path) -> Table:
    """An .npz holding X (n, d) and y (n,): columns x0 .. x{d-1} and y."""
    try:
        with np.load(p, allow_pickle=False) as npz:
            if "X" not in npz.files or "y" not in npz.files:
                raise TableError(f"{p}: a table .npz holds arrays X and y; this one holds "
                                 f"{', '.join(npz.files) or 'nothing'}")
            X, y = npz["X"], npz["y"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TableError(f"{p}: cannot read arrays: {exc}") from None
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise TableError(f"{p}: X must be 2-D (rows, features) and y 1-D with one value per "
                         f"row; got X {X.shape} and y {y.shape}")
    if X.shape[0] == 0:
        raise TableError(f"{p}: X and y hold no rows")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TableError(f"{p}: X has dtype {X.dtype}; expected numbers")
    names = tuple(f"x{i}" for i in range(X.shape[1])) + ("y",)
    table = Table(p.stem, str(p), names, {}, {}, {}, np.arange(1, X.shape[0] + 1), "row")
    for i, name in enumerate(names[:-1]):
        _put_array(table, name, X[:, i])
    _put_array(table, "y", y)
    return table


def _put_array(table: Table, name: str, a: np.ndarray) -> None:
    """A column from an array: numbers (NaN missing) or strings."""
    if a.dtype.kind in "US":
        texts = a.astype(str)
        miss = np.asarray([t.strip().lower() in _MISSING for t in texts.tolist()], dtype=bool)
        table.kinds[name], table.values[name], table.missing[name] = "string", texts, miss
        return
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise TableError(f"{table.source}, column {name!r}: dtype {a.dtype} is neither a "
                         "number nor a string")
    values = a.astype(np.float64)
    if np.isinf(values).any():
        row = int(np.flatnonzero(np.isinf(values))[0])
        raise TableError(f"{table.where(row, name)}: infinite value")
    integral = a.dtype.kind in "biu"
    table.kinds[name] = "int" if integral else "float"
    table.values[name], table.missing[name] = values, np.isnan(values)


def _read_parquet(p: Path) -> Table:
    """A Parquet file through pyarrow."""
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pat
    except ImportError:
        raise TableError(f"{p}: reading Parquet needs pyarrow: "
                         "pip install pyarrow") from None
    try:
        data = pq.read_table(p)
    except Exception as exc:  # pyarrow raises its own error classes
        raise TableError(f"{p}: not a readable Parquet file ({exc})") from None
    if data.num_rows == 0:
        raise TableError(f"{p}: the file has columns ({', '.join(data.column_names)}) but no "
                         "rows")
    names = _check_header(list(data.column_names), p)
    table = Table(p.stem, str(p), names, {}, {}, {}, np.arange(1, data.num_rows + 1), "row")
    for name, col in zip(names, data.columns, strict=True):
        t = col.type
        if pat.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pat.is_string(t) or pat.is_large_string(t):
            texts = np.asarray([v if v is not None else "" for v in col.to_pylist()], dtype=str)
            miss = nulls | np.asarray([v.strip().lower() in _MISSING for v in texts.tolist()],
                                      dtype=bool)
            table.kinds[name], table.values[name], table.missing[name] = "string", texts, miss
        elif pat.is_integer(t) or pat.is_floating(t) or pat.is_boolean(t):
            values = col.cast("float64").to_numpy(zero_copy_only=False)
            _put_array(table, name, np.asarray(values, dtype=np.float64))
            table.missing[name] = table.missing[name] | nulls
            table.kinds[name] = "float" if pat.is_floating(t) else "int"
        else:
            raise TableError(f"{p}, column {name!r}: Parquet type {t} is neither a number nor "
                             "a string; convert it before training")
    return table


# ----------------------------------------------------------------------------- encoding
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
            target with ``task="classification"`` that holds non-integers; no feature
            column.
        """
        if self.target not in table.columns:
            raise TableError(f"{table.source}: no column {self.target!r} to use as the target; "
                             f"the columns are: {', '.join(table.columns)}")
        self._check_target_missing(table)
        kind = self.target_kind = table.kinds[self.target]
        if self.task is None:
            self.task = "regression" if kind == "float" else "classification"
        values = table.values[self.target]
        if self.task == "classification":
            if kind == "float" and not np.all(values == np.round(values)):
                raise TableError(f"{table.where(column=self.target)}: the target holds "
                                 "non-integer numbers; use --task regression, or round them "
                                 "to class labels")
            found = np.unique(values)
            if found.shape[0] > self.max_categories:
                raise TableError(f"{table.where(column=self.target)}: the target has "
                                 f"{found.shape[0]:,} classes, more than {self.max_categories:,}"
                                 "; for a number to predict use --task regression, or raise "
                                 "--max-categories")
            self.classes = [_class_name(v) for v in found.tolist()]
        else:
            if kind == "string":
                raise TableError(f"{table.where(column=self.target)}: regression needs a "
                                 "numeric target; this column holds text")
            self.target_mean = float(np.mean(values))
            std = float(np.std(values))
            self.target_std = std if std > 0 and math.isfinite(std) else 1.0
        self.columns = [self._fit_column(table, name) for name in table.columns
                        if name != self.target]
        if not self.columns:
            raise TableError(f"{table.source}: the table holds only the target column "
                             f"{self.target!r}; there is nothing to learn from")
        self._fitted = True
        self._check_missing(table, impute=self.impute)
        return self

    def _fit_column(self, table: Table, name: str) -> dict[str, Any]:
        kind, values, missing = table.kinds[name], table.values[name], table.missing[name]
        present = values[~missing]
        col: dict[str, Any] = {"name": name, "kind": kind, "fill": None}
        if present.shape[0] == 0:
            raise TableError(f"{table.where(column=name)}: every value is missing; drop the "
                             "column")
        if kind == "string":
            cats, counts = np.unique(present, return_counts=True)
            if cats.shape[0] > self.max_categories:
                raise TableError(f"{table.where(column=name)}: {cats.shape[0]:,} categories, "
                                 f"more than --max-categories {self.max_categories:,}; drop the "
                                 "column, group its rare values, or raise --max-categories")
            col["categories"] = cats.tolist()
            col["fill"] = str(cats[int(np.argmax(counts))])
        else:
            col["fill"] = float(np.median(present))
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

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("this TableEncoder is not fitted; call fit(table) first")

    def _check_target_missing(self, table: Table) -> None:
        miss = table.missing[self.target]
        if miss.any():
            first = int(np.flatnonzero(miss)[0])
            raise TableError(f"{table.where(first, self.target)}: the target is missing in "
                             f"{int(miss.sum()):,} row(s) (this is the first); remove those "
                             "rows")

    def _check_missing(self, table: Table, *, impute: bool) -> None:
        """Refuse missing feature values (count and first line) unless they are filled."""
        if impute:
            return
        for col in self.columns:
            miss = table.missing[col["name"]]
            if miss.any():
                first = int(np.flatnonzero(miss)[0])
                raise TableError(f"{table.where(first, col['name'])}: {int(miss.sum()):,} "
                                 f"missing value(s) in this column (this is the first); fill "
                                 "them, or pass --impute to fill numbers with the training "
                                 "median and text with the most frequent value")

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
        self._check_fitted()
        wanted = [c["name"] for c in self.columns] + ([self.target] if target else [])
        absent = [name for name in wanted if name not in table.columns]
        if absent:
            what = "the target column" if absent == [self.target] else \
                "column" + ("s" if len(absent) > 1 else "")
            raise TableError(f"{table.source}: {what} {', '.join(map(repr, absent))} the model "
                             f"was trained with {'is' if len(absent) == 1 else 'are'} missing;"
                             f" the file has: {', '.join(table.columns)}")
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
        self._check_target_missing(table)
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


def _good_column(c: Any) -> bool:
    if not (isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("kind") in _KINDS):
        return False
    if c["kind"] == "string":
        cats = c.get("categories")
        return isinstance(cats, list) and len(cats) > 0 and all(isinstance(v, str) for v in cats) \
            and cats == sorted(cats) and isinstance(c.get("fill"), (str, type(None)))
    return isinstance(c.get("fill"), (int, float, type(None)))


def _class_name(v: Any) -> str:
    """A class value as its name: integers without '.0', strings as they are."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _shorten(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(map(repr, list(names)[:n]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")
