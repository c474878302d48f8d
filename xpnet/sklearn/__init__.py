"""scikit-learn estimators backed by xpnet: [`MLPClassifier`][xpnet.sklearn.MLPClassifier] and
[`MLPRegressor`][xpnet.sklearn.MLPRegressor].

Needs scikit-learn: ``pip install scikit-learn`` (or ``pip install ".[sklearn]"`` in a
clone of xpnet). ``import xpnet`` never imports
scikit-learn; only ``import xpnet.sklearn`` does.

They are drop-ins for `sklearn.neural_network`'s estimators of the same names
(scikit-learn 1.9): the same parameters and defaults, the same initial weights for
the same ``random_state``, scikit-learn's losses and L2 penalty, ``sample_weight`` in
``fit`` and ``partial_fit`` with its meaning, its SGD (with the ``learning_rate``
schedules), Adam and L-BFGS, its stopping rules, sparse input and dtype preservation.
scikit-learn's own test file for these estimators
(``sklearn/neural_network/tests/test_mlp.py``) runs against them in the test suite.

What xpnet adds: the model is an [`xpnet.Sequential`][] (``model_``) on any
backend (``backend="cupy"``, ``"torch"``...), with scikit-learn's Array API
convention under ``sklearn.set_config(array_api_dispatch=True)``: a PyTorch, CuPy or
``array_api_strict`` input trains on its own namespace and device, and array outputs
come back in that namespace ("everything follows ``X``"). Also ``dropout``, the
``"adamw"`` and ``"rmsprop"`` solvers, and ``dtype=`` to force a compute dtype.

Examples
--------
>>> import numpy as np
>>> from xpnet.sklearn import MLPClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 4)).astype("float32")
>>> y = np.where(X[:, 0] > 0, "pos", "neg")
>>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300,
...                     random_state=0).fit(X, y)
>>> clf.classes_.tolist(), clf.coefs_[0].dtype
(['neg', 'pos'], dtype('float32'))
>>> clf.score(X, y) > 0.9
True
"""

from __future__ import annotations

from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
