"""scikit-learn's own tests of its MLP estimators, run against ``xpnet.sklearn``.

The file is the installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py``,
read at collection time with exactly one line changed,

    from sklearn.neural_network import MLPClassifier, MLPRegressor

to ``from xpnet.sklearn import MLPClassifier, MLPRegressor``. The changed copy is written
to a temporary folder and imported under a ``test_*`` name, so pytest rewrites its
asserts as it does for any test module; its ``test_*`` functions are then collected
here. ``conftest.py`` beside this file skips the tests of scikit-learn-private internals
and marks the expected failures, each with its reason (also in docs/sklearn.md).
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")
pytest.importorskip("scipy")

ORIGINAL = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
SWAPPED = "from xpnet.sklearn import MLPClassifier, MLPRegressor"
MODULE = "test_mlp_on_xpnet"
SOURCE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"


def _load_swapped():
    """Import scikit-learn's test file with only its import line swapped."""
    if not SOURCE.exists():
        pytest.skip(f"scikit-learn's tests are not installed ({SOURCE})",
                    allow_module_level=True)
    source = SOURCE.read_text()
    if source.count(ORIGINAL) != 1:
        raise RuntimeError(f"{SOURCE} no longer has exactly one line {ORIGINAL!r}; "
                           "update ORIGINAL in this file")
    folder = Path(tempfile.mkdtemp(prefix="xpnet-sklearn-test-mlp-"))
    (folder / f"{MODULE}.py").write_text(source.replace(ORIGINAL, SWAPPED))
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop(MODULE, None)
        return importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(folder))


_upstream = _load_swapped()
globals().update({k: v for k, v in vars(_upstream).items() if k.startswith("test_")})


def test_the_swapped_file_uses_xpnet():
    """The collected tests really exercise xpnet's estimators."""
    assert _upstream.MLPClassifier.__module__.startswith("xpnet.sklearn")
    assert _upstream.MLPRegressor.__module__.startswith("xpnet.sklearn")
    assert _upstream.__file__ != str(SOURCE)
