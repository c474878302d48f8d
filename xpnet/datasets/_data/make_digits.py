"""Regenerate ``digits.npz`` from scikit-learn's copy of the UCI digits set.

This script is not imported by xpnet. It was run once to make the bundled file:

    python xpnet/datasets/_data/make_digits.py

Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten
Digits" (E. Alpaydin and C. Kaynak), licensed CC BY 4.0, as shipped with
scikit-learn (``sklearn.datasets.load_digits``): 1,797 images of 8x8 pixels,
grey levels 0..16, labels 0..9.

The output stores ``images`` (uint8, shape (1797, 8, 8)) and ``labels``
(uint8, shape (1797,)) with ``numpy.savez_compressed``; no pickled objects.
"""

# NumPy is used on the host here: this is a one-off data-preparation script.
from __future__ import annotations

from pathlib import Path

import numpy as np


def main() -> Path:
    """Write ``digits.npz`` beside this script and return its path."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images)
    labels = np.asarray(bunch.target)
    if images.shape != (1797, 8, 8) or labels.shape != (1797,):
        raise SystemExit(f"unexpected shapes {images.shape} and {labels.shape}")
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise SystemExit("expected integer grey levels in 0..16")
    out = Path(__file__).resolve().with_name("digits.npz")
    np.savez_compressed(
        out,
        images=images.astype(np.uint8),
        labels=labels.astype(np.uint8),
    )
    return out


if __name__ == "__main__":
    path = main()
    print(f"wrote {path} ({path.stat().st_size} bytes)")
