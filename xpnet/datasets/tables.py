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
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._core import DatasetError, _load_npz, _npz_members

__all__ = ["MAX_CATEGORIES", "TABLE_FORMATS", "Table", "TableError", "TableWarning",
           "is_table_file", "read_table"]

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
    try:
        with zipfile.ZipFile(p) as z:
            keys = set(_npz_members(z))
    except (OSError, zipfile.BadZipFile):
        return False
    return {"X", "y"} <= keys and "x_train" not in {k.lower() for k in keys}


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
            hint = {0: " (pandas writes its index there: df.to_csv(path, index=False))",
                    len(names) - 1: " (it ends with a separator; remove it, and the one ending "
                    "each row if any)"}.get(i, "")
            raise TableError(f"{p}, line 1: column {i + 1} has no name; the first line must "
                             f"name every column{hint}")
        if name in seen:
            raise TableError(f"{p}, line 1, column {name!r}: the name appears twice in the "
                             "header")
        seen.add(name)
    return names


def _read_delimited(p: Path, delimiter: str, kinds: dict[str, str]) -> Table:
    """CSV or TSV, streamed row by row with the csv module."""
    rows: list[list[str]] = []
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
                    _check_separator(names, p, delimiter)
                    continue
                if not row or (len(row) == 1 and not row[0].strip() and len(names) > 1):
                    continue  # a blank line
                if len(row) != len(names):
                    raise TableError(_ragged(p, line, len(row), names))
                rows.append(row)
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
    table = Table(p.stem, str(p), names, {}, {}, {}, np.asarray(lines, dtype=np.int64), "line")
    columns = list(zip(*rows, strict=True))  # rows to columns, at C speed
    del rows
    for name, column in zip(names, columns, strict=True):
        kind, values, missing = _parse_column(column, name, table, kinds.get(name))
        table.kinds[name], table.values[name], table.missing[name] = kind, values, missing
    return table


def _check_separator(names: tuple[str, ...], p: Path, delimiter: str) -> None:
    """Refuse a one-column header that another separator (``;``, tab, ``|``) would split."""
    if len(names) != 1:
        return
    for sep, label in ((";", "';'"), ("\t", "tabs"), ("|", "'|'"), (",", "','")):
        if sep != delimiter and len([n for n in names[0].split(sep) if n.strip()]) > 1:
            if {sep, delimiter} == {",", "\t"}:
                fix = "name it " + (".tsv" if sep == "\t" else ".csv")
            else:
                fix = "save it with " + ("tabs" if delimiter == "\t" else "commas")
            raise TableError(f"{p}, line 1: the header is one column {names[0][:60]!r}, "
                             f"separated by {label}; a {p.suffix} file is read with "
                             f"{'tabs' if delimiter == chr(9) else 'commas'} between fields: "
                             f"{fix}")


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


def _parse_column(cells: Sequence[str], name: str, table: Table, want: str | None
                  ) -> tuple[str, np.ndarray, np.ndarray]:
    """One column's type, values and missing mask, from its cell texts."""
    texts = [c.strip() for c in cells]
    if want != "string":
        try:  # the common case, a column of numbers: one pass at C speed
            values = np.array([float(t) for t in texts], dtype=np.float64)
        except ValueError:
            values = None  # text, or missing cells other than nan: cell by cell below
        if values is not None:
            missing = np.isnan(values)
            if np.isinf(values).any():
                row = int(np.argmax(np.isinf(values)))
                raise TableError(f"{table.where(row, name)}: {texts[row]!r} is not a finite "
                                 "number")
            joined = "".join(texts)
            integral = not ("." in joined or "e" in joined or "E" in joined)
            return ("int" if integral else "float"), values, missing
    return _cell_by_cell(texts, name, table, want)


def _cell_by_cell(texts: list[str], name: str, table: Table, want: str | None
                  ) -> tuple[str, np.ndarray, np.ndarray]:
    """A column with text or missing cells as numbers or text (refused where numbers are due)."""
    n = len(texts)
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
    if want != "string" and n_text and (numeric_wanted or n_num > n_text):
        why = "the model was trained on numbers there" if numeric_wanted else \
            f"the column's other {n_num} values are numbers"
        raise TableError(f"{table.where(first_text, name)}: {texts[first_text][:40]!r} is not "
                         f"a number ({why}); fix the value, or leave the cell empty for a "
                         "missing value")
    if want == "string" or n_text:
        kept = [t if not m else "" for t, m in zip(texts, missing, strict=True)]
        return "string", np.asarray(kept, dtype=str), missing
    return ("int" if integral else "float"), numbers, missing


def _read_npz(p: Path) -> Table:
    """An .npz holding X (n, d) and y (n,): columns x0 .. x{d-1} and y."""
    def pick(members: dict[str, zipfile.ZipInfo]) -> dict[str, str]:
        if "X" not in members or "y" not in members:
            raise TableError(f"{p}: a table .npz holds arrays X and y; this one holds "
                             f"{', '.join(members) or 'nothing'}")
        return {"X": "X", "y": "y"}

    arrays = _load_npz(p, pick, ("X",), TableError)
    X, y = arrays["X"], arrays["y"]
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
        if pat.is_string(t) or pat.is_large_string(t):  # a null is an empty, missing cell
            _put_array(table, name, np.asarray([v or "" for v in col.to_pylist()], dtype=str))
        elif pat.is_integer(t) or pat.is_floating(t) or pat.is_boolean(t):  # a null: NaN
            _put_array(table, name, col.cast("float64").to_numpy(zero_copy_only=False))
            table.kinds[name] = "float" if pat.is_floating(t) else "int"
        else:
            raise TableError(f"{p}, column {name!r}: Parquet type {t} is neither a number nor "
                             "a string; convert it before training")
    return table
