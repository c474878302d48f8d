# NumPy is used on the host here only to recognise NumPy scalars when writing JSON and to
# print host floats with the digits their dtype carries.
"""What the ``xpnet`` command prints: rich consoles, styled text and JSON.

Human-readable text goes through a `console` (markup off); machine-readable results
go through `jsonable`, which turns everything into plain JSON types.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["console", "safe_text", "styled", "fit", "print_fitted", "jsonable", "print_json",
           "print_json_rows", "write_json", "fmt_secs", "same_decimals", "carried"]


def console(*, stderr: bool, quiet: bool = False) -> Console:
    """A rich console that prints text as given.

    Parameters
    ----------
    stderr : bool
        Print to standard error (progress, summaries) instead of standard output
        (results).
    quiet : bool, optional
        Print nothing (``--quiet``).

    Returns
    -------
    rich.console.Console
        A console with markup and highlighting off, since paths, class names and messages
        may hold ``[brackets]``.

    Examples
    --------
    >>> from xpnet.cli._output import console
    >>> console(stderr=False).print("model [1] saved")
    model [1] saved
    """
    from rich.console import Console

    class _SafeConsole(Console):
        """Every string printed (table cells included) goes through `safe_text`."""

        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(safe_text(text), **kwargs)

    # markup off: paths, class names and messages may hold [brackets]
    return _SafeConsole(stderr=stderr, quiet=quiet, highlight=False, markup=False,
                        soft_wrap=True)


# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    r"""`text` with the characters that drive a terminal shown as escapes instead.

    Class names, file names and messages come from files anyone may have written: an
    ``ESC`` in them (``\x1b[2J`` clears the screen), another C0 or C1 control
    character, or a bidirectional override would act on the terminal. Each is written as
    its escape (``\x1b``, ``\u202e``); tab and newline are kept.

    Parameters
    ----------
    text : str
        Text about to be printed.

    Returns
    -------
    str
        The same text, each control character replaced by its escape.

    Examples
    --------
    >>> from xpnet.cli._output import safe_text
    >>> print(safe_text("cat\x1b[2J\rdog\x9b"))
    cat\x1b[2J\x0ddog\x9b
    """
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROLS.sub(escape, text)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text made of plain strings and ``(text, style)`` pairs.

    Parameters
    ----------
    *parts : str or (str, str)
        Pieces in order; a pair gives a rich style such as ``"bold"`` or ``"red"``.

    Returns
    -------
    rich.text.Text
        The assembled text.

    Examples
    --------
    >>> from xpnet.cli._output import styled
    >>> styled("backend ", ("numpy", "bold")).plain
    'backend numpy'
    """
    from rich.text import Text

    return Text.assemble(*(safe_text(p) if isinstance(p, str) else (safe_text(p[0]), p[1])
                           for p in parts))


def fit(text: str | Text, width: int, indent: int = 0) -> list[Text]:
    """`text` broken at spaces into lines that fit `width` columns, never inside a word.

    Lines after the first start with `indent` spaces, so a labelled line keeps its
    value column. A word longer than a line (a long path) is kept whole on its line.

    Parameters
    ----------
    text : str or rich.text.Text
        One line, styled or not.
    width : int
        The terminal's width (``Console().width``).
    indent : int, optional
        Spaces before every line after the first (default 0); at most half of `width`.

    Returns
    -------
    list of rich.text.Text
        The lines, styles kept, without trailing spaces.

    Examples
    --------
    >>> from xpnet.cli._output import fit
    >>> [t.plain for t in fit("data     digits: 1437 train / 360 test images", 30, 9)]
    ['data     digits: 1437 train /', '         360 test images']
    """
    from rich.text import Text

    text = Text(safe_text(text)) if isinstance(text, str) else text.copy()
    indent = indent if indent <= width // 2 else min(2, width // 2)
    lines: list[Text] = []
    pad = ""
    while True:
        avail = width - len(pad)
        plain = text.plain
        if len(plain) <= avail:
            break
        # on the first line a break inside the label gains nothing: the rest is indented
        cut = plain.rfind(" ", indent + 1 if not pad else 1, avail + 1)
        if cut < 0:  # the first word is longer than the line: keep it whole
            cut = plain.find(" ", avail)
            if cut < 0:
                break
        head = text[:cut]
        head.rstrip()
        lines.append(Text(pad) + head)
        rest = plain[cut:]
        text = text[cut + len(rest) - len(rest.lstrip(" ")):]
        pad = " " * indent
    if text.plain or not lines:
        lines.append(Text(pad) + text)
    return lines


def print_fitted(con: Console, text: str | Text, indent: int = 0) -> None:
    """Print `text` on `con`, broken at spaces to fit its width (see `fit`).

    Parameters
    ----------
    con : rich.console.Console
        Where to print; its ``width`` is the terminal's.
    text : str or rich.text.Text
        One line, styled or not.
    indent : int, optional
        Spaces before every line after the first.

    Examples
    --------
    >>> from rich.console import Console
    >>> from xpnet.cli._output import print_fitted
    >>> print_fitted(Console(width=20), "model    64 → 512 → 256 → 10", indent=9)
    model    64 → 512 →
             256 → 10
    """
    for line in fit(text, con.width, indent):
        con.print(line)


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types; non-finite floats become None (JSON has no NaN).

    Parameters
    ----------
    obj : object
        Dicts, lists, tuples, scalars (Python or NumPy), paths; anything else becomes its
        ``str``.

    Returns
    -------
    object
        The same structure of dicts (with string keys), lists, str, int, float, bool and
        None.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.cli._output import jsonable
    >>> jsonable({1: (np.int64(2), float("nan"))})
    {'1': [2, None]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def print_json(obj: Any) -> None:
    """Write `obj` to standard output as one line of JSON (see `jsonable`).

    Parameters
    ----------
    obj : object
        The result of a command.

    Raises
    ------
    CLIError
        Exit status 3 when standard output cannot be written (a full disk); later calls
        then print nothing, so the error is reported once, on standard error.

    Examples
    --------
    >>> from xpnet.cli._output import print_json
    >>> print_json({"accuracy": 0.5})
    {"accuracy": 0.5}
    """
    _write_stdout([json.dumps(jsonable(obj), allow_nan=False) + "\n"])


def print_json_rows(obj: dict[str, Any], key: str, rows: Iterable[Any],
                    chunk: int = 1024) -> None:
    """Write `obj` with ``obj[key] = list(rows)`` as `print_json` would, row by row.

    The rows are turned into JSON and written `chunk` at a time, so a million of them
    never stand in memory together, as dicts or as text; the line written is the same,
    byte for byte, as ``print_json({**obj, key: list(rows)})`` when `key` is new to `obj`.

    Parameters
    ----------
    obj : dict
        The fields before the rows.
    key : str
        The name of the list of rows, written last.
    rows : iterable
        The rows, each anything `jsonable` accepts whose dict keys are strings;
        consumed once.
    chunk : int, optional
        Rows turned into text and written at a time (default 1024).

    Raises
    ------
    CLIError
        Exit status 3 when standard output cannot be written, as for `print_json`.

    Examples
    --------
    >>> from xpnet.cli._output import print_json_rows
    >>> print_json_rows({"model": "m"}, "predictions", ({"label": i} for i in range(2)))
    {"model": "m", "predictions": [{"label": 0}, {"label": 1}]}
    """
    def pieces() -> Iterator[str]:
        head = json.dumps(jsonable(obj), allow_nan=False)[:-1]
        yield head + (", " if obj else "") + json.dumps(str(key)) + ": ["
        batch: list[Any] = []
        first = True
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                yield ("" if first else ", ") + _dumps_rows(batch)
                batch, first = [], False
        if batch:
            yield ("" if first else ", ") + _dumps_rows(batch)
        yield "]}\n"

    _write_stdout(pieces())


def _dumps_rows(rows: list[Any]) -> str:
    """`rows` as JSON without the brackets: as is when already plain, else via `jsonable`."""
    try:  # plain types with finite floats (the common case) need no jsonable walk
        text = json.dumps(rows, allow_nan=False)
    except (TypeError, ValueError):  # NumPy scalars, paths, NaN: as print_json writes them
        text = json.dumps(jsonable(rows), allow_nan=False)
    return text[1:-1]


def _write_stdout(pieces: Iterable[str]) -> None:
    """Write `pieces` to standard output and flush; a failed write is one CLIError."""
    global _stdout_failed
    if _stdout_failed:
        return
    try:
        for piece in pieces:
            sys.stdout.write(piece)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except OSError as exc:  # e.g. standard output on a full disk: one error, exit status 3
        _stdout_failed = True
        _silence_stdout()
        from ._args import EXIT_DATA, CLIError

        raise CLIError(f"cannot write to standard output: {exc.strerror or exc}",
                       EXIT_DATA) from None


_stdout_failed = False


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the flush at exit cannot fail."""
    import os

    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured output)
        pass


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically (temp file, fsync, os.replace).

    Parameters
    ----------
    path : pathlib.Path
        The file to (re)write.
    obj : object
        Anything `jsonable` accepts.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from xpnet.cli._output import write_json
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_json(Path(d) / "run.json", {"epochs": 3})
    ...     print((Path(d) / "run.json").read_text(), end="")
    {
      "epochs": 3
    }
    """
    from .._files import atomic_write_text

    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def fmt_secs(s: float) -> str:
    """A duration for people: ``'4.2 s'``, or minutes and seconds from two minutes on.

    Parameters
    ----------
    s : float
        Seconds.

    Returns
    -------
    str
        The duration.

    Examples
    --------
    >>> from xpnet.cli._output import fmt_secs
    >>> fmt_secs(4.21), fmt_secs(125.0)
    ('4.2 s', '2 min 5 s')
    """
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


def same_decimals(values: Iterable[float], digits: int = 4) -> list[str]:
    """Numbers printed side by side with the same decimals: ``digits`` significant
    digits for the largest in magnitude, as many decimals for the others.

    Parameters
    ----------
    values : iterable of float
        Numbers in one unit (MAE and RMSE in the target's units).
    digits : int
        Significant digits of the largest.

    Returns
    -------
    list of str
        One string per value (``nan``, ``inf`` as Python writes them).

    Examples
    --------
    >>> from xpnet.cli._output import same_decimals
    >>> same_decimals([46.6, 58.49])
    ['46.60', '58.49']
    >>> same_decimals([0.0012, 0.00034]), same_decimals([123456.7, 98.1])
    (['0.001200', '0.000340'], ['123457', '98'])
    """
    values = [float(v) for v in values]
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    top = math.floor(math.log10(max(finite))) if finite else 0
    decimals = max(0, digits - 1 - top)
    return [f"{v:.{decimals}f}" if math.isfinite(v) else str(v) for v in values]


def carried(values: Any) -> np.ndarray:
    """Float64 values that print (``repr``, JSON) with the digits their dtype carries.

    A float32 value becomes the float64 nearest to its shortest decimal repr
    (``0.1237`` rather than ``0.12369685620069504``), so it still reads back as
    the same float32; float64 values are returned as they are.

    Parameters
    ----------
    values : array_like
        A NumPy array of floats (float16, float32 or float64).

    Returns
    -------
    numpy.ndarray
        float64, same shape.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.cli._output import carried
    >>> carried(np.array([0.12369686, 3.0, 1e-8], dtype=np.float32)).tolist()
    [0.12369686, 3.0, 1e-08]
    >>> float(np.float32(0.12369686))
    0.12369686365127563
    """
    a = np.asarray(values)
    x = a.astype(np.float64)
    if a.dtype.itemsize >= 8 or a.dtype.kind != "f":
        return x
    flat, want = x.reshape(-1), a.reshape(-1)
    todo = np.flatnonzero(np.isfinite(flat) & (flat != 0))
    with np.errstate(all="ignore"):
        exp = np.floor(np.log10(np.abs(flat[todo])))
        far = np.abs(exp) > 12  # 10**k beyond 1e22 is inexact: NumPy's repr, one by one
        for i in todo[far].tolist():
            flat[i] = float(str(want[i]))
        todo, exp = todo[~far], exp[~far]
        for p in range(1, 10):  # significant digits: float32 needs at most 9
            if todo.size == 0:
                break
            k = p - 1 - exp  # decimals; an exact power of ten divides correctly rounded
            scale = 10.0 ** np.abs(k)
            r = np.rint(flat[todo] * scale) / scale
            big = k < 0
            if big.any():
                r[big] = np.rint(flat[todo[big]] / scale[big]) * scale[big]
            ok = r.astype(a.dtype) == want[todo]
            flat[todo[ok]] = r[ok]
            todo, exp = todo[~ok], exp[~ok]
    return flat.reshape(a.shape)
