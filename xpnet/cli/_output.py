# NumPy is used on the host here only to recognise NumPy scalars when writing JSON and to
# print host floats with the digits their dtype carries.
"""What the ``xpnet`` command prints: rich consoles, styled text and JSON.

Human-readable text goes through a `console` (markup off); machine-readable results
go through `jsonable`, which turns everything into plain JSON types.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._files import atomic_write_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["console", "safe_text", "styled", "fit", "print_fitted", "table", "kv_table", "jsonable",
           "print_json", "print_json_rows", "write_stdout", "write_json", "fmt_secs",
           "same_decimals", "carried", "print_scores"]


def console(*, stderr: bool, quiet: bool = False) -> Console:
    """A rich console with markup and highlighting off: paths may hold [brackets]."""
    from rich.console import Console

    class _SafeConsole(Console):
        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(safe_text(text), **kwargs)

    # markup off: paths, class names and messages may hold [brackets]
    return _SafeConsole(stderr=stderr, quiet=quiet, highlight=False, markup=False,
                        soft_wrap=True)


# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    r"""`text` with C0/C1 controls and bidi overrides as escapes (\x1b); tab, newline kept."""
    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROLS.sub(escape, text)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text made of plain strings and ``(text, style)`` pairs, each made safe."""
    from rich.text import Text

    return Text.assemble(*(safe_text(p) if isinstance(p, str) else (safe_text(p[0]), p[1])
                           for p in parts))


def fit(text: str | Text, width: int, indent: int = 0) -> list[Text]:
    """`text` broken at spaces into lines of `width`, later ones indented; words kept whole."""
    from rich.text import Text

    text = Text(safe_text(text)) if isinstance(text, str) else text.copy()
    indent = indent if indent <= width // 2 else min(2, width // 2)
    lines: list[Text] = []
    pad = ""
    while len(plain := text.plain) > (avail := width - len(pad)):
        # on the first line a break inside the label gains nothing: the rest is indented
        cut = plain.rfind(" ", indent + 1 if not pad else 1, avail + 1)
        if cut < 0:  # the first word is longer than the line: keep it whole
            cut = plain.find(" ", avail)
            if cut < 0:
                break
        head = text[:cut]
        head.rstrip()
        lines.append(Text(pad) + head)
        text = text[len(plain) - len(plain[cut:].lstrip(" ")):]  # the spaces at the cut go
        pad = " " * indent
    if text.plain or not lines:
        lines.append(Text(pad) + text)
    return lines


def print_fitted(con: Console, text: str | Text, indent: int = 0) -> None:
    for line in fit(text, con.width, indent):
        con.print(line)


def table(title: str, *columns: str | tuple[str, dict[str, Any]], **options: Any) -> Any:
    """A rich table titled `title` (left); each column a header or (header, its options)."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", **options)
    for column in columns:
        header, column_options = (column, {}) if isinstance(column, str) else column
        t.add_column(header, **column_options)
    return t


def kv_table(title: str, rows: Iterable[tuple[Any, ...]], **value: Any) -> Any:
    """A rich table of names (bold) and values, no header; `value`: the value column's options."""
    t = table(title, ("", {"style": "bold"}), ("", value), show_header=False)
    for row in rows:
        t.add_row(*row)
    return t


def print_scores(out: dict[str, Any], model: Any, model_file: Any, data: str,
                 rows: list[tuple[str, str]]) -> None:
    """``evaluate``'s model and `data` lines, then its metrics: `rows` and the samples."""
    con = console(stderr=False)
    # broken between words to the terminal's width, continued under the value
    print_fitted(con, f"model  {model_file}  ({model.num_params:,} parameters, backend "
                      f"{out['backend']} {out['device']})", 7)
    print_fitted(con, f"data   {data}", 7)
    con.print(kv_table("metrics", [*rows, ("samples", f"{out['samples']:,}")], justify="right"))


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types (str keys); non-finite floats become None."""
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
    return str(obj)  # a Path, an enum...


def print_json(obj: Any) -> None:
    """Write `obj` as one JSON line; an unwritable stdout is one CLIError (exit 3)."""
    write_stdout([json.dumps(jsonable(obj), allow_nan=False) + "\n"])


def print_json_rows(obj: dict[str, Any], key: str, rows: Iterable[Any],
                    chunk: int = 1024) -> None:
    """`print_json({**obj, key: list(rows)})`, byte for byte, written `chunk` rows at a time."""
    def pieces() -> Iterator[str]:
        head = json.dumps(jsonable(obj), allow_nan=False)[:-1]
        yield head + (", " if obj else "") + json.dumps(str(key)) + ": ["
        it, sep = iter(rows), ""
        while batch := list(itertools.islice(it, chunk)):
            try:  # plain types with finite floats (the common case) need no jsonable walk
                text = json.dumps(batch, allow_nan=False)
            except (TypeError, ValueError):  # NumPy scalars, paths, NaN: as print_json has them
                text = json.dumps(jsonable(batch), allow_nan=False)
            yield sep + text[1:-1]
            sep = ", "
        yield "]}\n"

    write_stdout(pieces())


def write_stdout(pieces: Iterable[str]) -> None:
    """Write `pieces` to stdout; an unwritable stdout is one CLIError (exit 3), then silenced."""
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
        # stdout to the null device, so that the flush at exit cannot fail (captured output
        # has no file descriptor)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        from ._args import EXIT_DATA, CLIError

        raise CLIError(f"cannot write to standard output: {exc.strerror or exc}",
                       EXIT_DATA) from None


_stdout_failed = False


def write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def fmt_secs(s: float) -> str:
    """``'4.2 s'``, or ``'2 min 5 s'`` from two minutes on."""
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:.0f} s"


def same_decimals(values: Iterable[float], digits: int = 4) -> list[str]:
    """Numbers with the same decimals: `digits` significant digits for the largest in magnitude."""
    values = [float(v) for v in values]
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    top = math.floor(math.log10(max(finite))) if finite else 0
    decimals = max(0, digits - 1 - top)
    return [f"{v:.{decimals}f}" if math.isfinite(v) else str(v) for v in values]


def carried(values: Any) -> np.ndarray:
    """Float64 values nearest the shortest decimal that reads back as the same float32."""
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
