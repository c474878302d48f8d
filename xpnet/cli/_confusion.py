# NumPy is used on the host here for the confusion matrix and per-class counts, which are
# output anyway, as DESIGN.md allows.
"""The per-class counts and confusion matrix of ``xpnet evaluate`` (images and tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._output import styled, table
from ._plots import plot_confusion

__all__ = ["DENSE_CONFUSION_MAX", "confusion", "per_class", "report", "print_report"]


#: Up to this many classes the confusion matrix is built, printed (--json) and plotted;
#: above it only the per-class table is (it is computed from the sparse pairs).
DENSE_CONFUSION_MAX = 1000


def confusion(y: np.ndarray, pred: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Per true class: support, correct, most frequent wrong label (-1: none); cm when small."""
    pairs, counts = np.unique(y.astype(np.int64) * k + pred.astype(np.int64),
                              return_counts=True)
    true, guess = np.divmod(pairs, k)
    support = np.bincount(y, minlength=k)
    correct = np.bincount(y[y == pred], minlength=k)
    wrong = true != guess
    t, g, c = true[wrong], guess[wrong], counts[wrong]
    order = np.lexsort((g, -c, t))  # by true class, then most frequent, then lowest label
    rows, first = np.unique(t[order], return_index=True)
    confused = np.full(k, -1, dtype=np.int64)
    confused[rows] = g[order][first]
    cm = None
    if k <= DENSE_CONFUSION_MAX:
        cm = np.zeros((k, k), dtype=np.int64)
        cm[true, guess] = counts
    return support, correct, confused, cm


def per_class(support: np.ndarray, correct: np.ndarray, confused: np.ndarray,
              names: list[str]) -> list[dict[str, Any]]:
    """Support, correct count, accuracy and most frequent confusion of each true class."""
    counts = zip(support.tolist(), correct.tolist(), confused.tolist(), strict=True)
    return [{"label": c, "class": names[c], "support": n, "correct": ok,
             "accuracy": ok / n if n else None,
             "most_confused_with": None if other < 0 else names[other]}
            for c, (n, ok, other) in enumerate(counts)]


def report(y: np.ndarray, pred: np.ndarray, names: list[str], plot_path: Path | None,
           title: str) -> tuple[dict[str, Any], np.ndarray | None]:
    """``evaluate``'s per_class, confusion_matrix and plot (drawn here), and the dense matrix."""
    support, correct, confused, cm = confusion(y, pred, len(names))
    plot = None
    if plot_path is not None and cm is not None:
        plot_confusion(cm, names, plot_path, title)
        plot = str(plot_path.resolve())
    return {"per_class": per_class(support, correct, confused, names),
            "confusion_matrix": None if cm is None else cm.tolist(), "plot": plot}, cm


def print_report(con: Any, cm: np.ndarray | None, names: list[str], plot: str | None) -> None:
    """The confusion matrix as a table, up to 20 classes, and where its plot was written."""
    k = len(names)
    if cm is None or k > 20:
        more = " or --plot" if cm is not None else ""
        con.print(f"(confusion matrix of {k} classes not shown; use --json{more})")
    else:
        cmt = table("confusion matrix (rows: true class, columns: predicted)",
                    ("true \\ pred", {"style": "bold"}),
                    *((name, {"justify": "right"}) for name in names))
        for i, name in enumerate(names):
            cmt.add_row(name, *[styled((str(v), "bold" if i == j else "dim" if v == 0 else ""))
                                for j, v in enumerate(cm[i].tolist())])
        con.print(cmt)
    if plot is not None:
        con.print(f"confusion matrix plot: {plot}")
