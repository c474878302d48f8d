# NumPy is used on the host here for the plotted values (matplotlib takes NumPy arrays).
"""The PNG plots of the ``xpnet`` command: training curves and confusion matrices.

matplotlib is optional: `require_matplotlib` is called before any work when a plot
is asked for, so a missing matplotlib fails at once instead of after training. Figures
are drawn without pyplot (no GUI backend, no global state) and saved atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._args import EXIT_USAGE, CLIError

__all__ = ["require_matplotlib", "save_figure", "plot_curves", "plot_confusion"]


def require_matplotlib() -> None:
    """Refuse (exit 2, with the install command) before any work when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise CLIError("--plot needs matplotlib: pip install matplotlib", EXIT_USAGE) from None


def save_figure(fig: Any, path: Path) -> None:
    """Write `fig` as PNG atomically; on error an earlier `path` is left as it was."""
    import io

    from .._files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(history: dict[str, Any], path: Path, title: str) -> None:
    """Loss (log scale) and accuracy per epoch, train and validation; short series left out."""
    from matplotlib.figure import Figure

    epochs = history.get("epoch", [])
    fig = Figure(figsize=(10, 4), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "-s")):
            values = history.get(prefix + key)
            if values and len(values) == len(epochs):
                ys = [np.nan if v is None else v for v in values]
                ax.plot(epochs, ys, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title)
    save_figure(fig, path)


def plot_confusion(cm: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """A confusion matrix coloured by the fraction of each true class."""
    from matplotlib.figure import Figure

    k = cm.shape[0]
    size = max(4.0, min(0.5 * k + 2, 16.0))
    fig = Figure(figsize=(size + 1, size), dpi=110, layout="constrained")
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(k), labels=names, rotation=45 if max(map(len, names)) > 2 else 0,
                  ha="right" if max(map(len, names)) > 2 else "center")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i, j in zip(*np.nonzero(cm), strict=True):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title)
    save_figure(fig, path)
