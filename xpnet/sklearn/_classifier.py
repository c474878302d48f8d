"""``MLPClassifier``: scikit-learn's multilayer perceptron classifier, trained by xpnet.

NumPy is used on the host for string labels and NumPy outputs.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target

from ..backends import to_numpy
from ._base import BaseMLP, average_rows
from ._data import on_device
from ._namespaces import as_output, move_to

__all__ = ["MLPClassifier"]


def _unique_sorted(y: Any) -> Any:
    if isinstance(y, np.ndarray):
        return np.unique(y)
    xp = array_api_compat.array_namespace(y)
    return xp.sort(xp.unique_values(y))


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's, on every xpnet backend.

    A drop-in for `sklearn.neural_network.MLPClassifier` (scikit-learn 1.9):
    the same parameters with the same defaults and meaning, the same initial weights
    for the same ``random_state``, the same losses, solvers and stopping rules, so the
    same training. It runs on NumPy by default, on CuPy or PyTorch through
    ``backend=``, and on any Array API namespace under
    ``sklearn.set_config(array_api_dispatch=True)``. See the scikit-learn estimators
    page of the documentation for what differs.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu", "gelu"}, default="relu"
        Hidden-layer activation (``"sigmoid"`` is an alias of ``"logistic"``;
        ``"leaky_relu"`` and ``"gelu"`` are xpnet extensions).
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop"}, default="adam"
        scikit-learn's Adam, SGD (momentum, Nesterov, ``learning_rate`` schedules) and
        L-BFGS (`scipy.optimize.minimize`, full batch); ``"adamw"`` and
        ``"rmsprop"`` are xpnet extensions.
    alpha : float, default=1e-4
        L2 strength, as scikit-learn: ``alpha / (2 n) * sum(W**2)`` over the weight
        matrices (not the biases) is added to each batch's loss, ``n`` its rows (with
        ``sample_weight``, the sum of its weights).
        For ``"adamw"`` the decoupled weight decay of the weight matrices instead.
    batch_size : int or "auto", default="auto"
        Rows per step; ``"auto"`` is ``min(200, n_samples)``. Not used by lbfgs.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        scikit-learn's schedules for ``solver="sgd"``.
    learning_rate_init : float, default=1e-3
        Initial learning rate (sgd, adam, adamw, rmsprop).
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Maximum epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default=True
        Reshuffle the rows every epoch (scikit-learn's order for the same ``random_state``).
    random_state : int, RandomState instance or None, default=None
        Initial weights, batch order and the early-stopping split, drawn as scikit-learn does.
    tol : float, default=1e-4
        Improvement that counts (training loss, or validation score with
        ``early_stopping``); for lbfgs, the gradient tolerance ``gtol``.
    verbose : bool or int, default=False
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        Continue from the previous fit's weights (with a fresh optimizer, as scikit-learn).
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``, in [0, 1].
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (stratified for binary problems, as
        scikit-learn), stop when the accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and put the best epoch's weights back.
    validation_fraction : float, default=0.1
        Held-out fraction for ``early_stopping``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and epsilon (epsilon is also RMSprop's).
    n_iter_no_change : int or inf, default=10
        Epochs without a ``tol`` improvement before stopping.
    max_fun : int, default=15000
        Maximum loss evaluations of lbfgs.
    dropout : float, default=0.0
        xpnet extension: dropout rate after each hidden activation (stochastic solvers).
    backend : str, default="numpy"
        xpnet extension: where NumPy (or sparse) input is trained: ``"numpy"``,
        ``"auto"`` (CuPy when a GPU is usable), ``"cupy"``, ``"torch"``... Outputs for
        NumPy input are NumPy. Under array API dispatch a non-NumPy ``X`` decides instead.
    device : optional
        xpnet extension: the device on ``backend`` (e.g. ``"cuda:1"`` for torch).
    dtype : {None, "float32", "float64"}, default=None
        xpnet extension: the parameter and compute dtype. None follows the input as
        scikit-learn does (float32 stays float32, everything else is float64).

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
        Class labels; in ``X``'s namespace for numeric labels under dispatch,
        NumPy otherwise. For multilabel targets ``arange(n_labels)``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    model_ : xpnet.Sequential
        The trained xpnet model (its outputs are logits).
    loss_ : float
        Last epoch's mean training loss, L2 term included (lbfgs: the final loss).
    loss_curve_ : list of float
        ``loss_`` of every epoch (stochastic solvers).
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Validation accuracy of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs (iterations for lbfgs) run by the last ``fit`` or ``partial_fit`` call.
    t_ : int
        Training samples seen.
    n_outputs_ : int
        Output units: 1 for binary problems, else the number of classes or labels.
    out_activation_ : str
        ``"softmax"`` (multiclass) or ``"logistic"`` (binary and multilabel).
    coefs_, intercepts_ : list of arrays
        The model's weights in scikit-learn's layout; assignable.
    n_layers_ : int

    See Also
    --------
    MLPRegressor
    sklearn.neural_network.MLPClassifier

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from xpnet.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0)
    >>> clf.fit(X, y).predict(X[:3]).tolist()
    [0, 0, 0]
    >>> clf.coefs_[0].dtype, clf.n_outputs_, clf.out_activation_
    (dtype('float64'), 3, 'softmax')
    """

    # -- labels ----------------------------------------------------------------
    @property
    def _softmax(self) -> bool:
        return self.out_activation_ == "softmax"

    def _set_classes(self, y: Any, classes: Any = None) -> None:
        """Define ``classes_`` and the output layout from ``y`` (or ``classes``)."""
        kind = type_of_target(y)
        self._multilabel = kind == "multilabel-indicator"
        if self._multilabel:
            xp = array_api_compat.array_namespace(y)
            self.classes_ = xp.arange(y.shape[1], device=array_api_compat.device(y))
            self.n_outputs_ = int(y.shape[1])
            self.out_activation_ = "logistic"
            return
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {kind!r}")
        source = y if classes is None else classes
        if classes is not None and not isinstance(y, np.ndarray):
            xp = array_api_compat.array_namespace(y)
            source = move_to(xp.asarray(classes) if not hasattr(classes, "shape")
                             else classes, xp=xp, device=array_api_compat.device(y))
        elif classes is not None:
            source = np.asarray(classes)
        self.classes_ = _unique_sorted(source)
        k = int(self.classes_.shape[0])
        self.n_outputs_ = k if k > 2 else 1
        self.out_activation_ = "softmax" if k > 2 else "logistic"

    def _set_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> None:
        """New classes, or a warm start's labels checked (unknown labels: `_indices` refuses)."""
        if first:
            self._set_classes(y, classes if incremental else None)
        elif self.warm_start and not self._multilabel:
            given = to_numpy(_unique_sorted(y))
            if set(given.tolist()) != set(to_numpy(self.classes_).tolist()):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes as in the "
                    f"previous call to fit. Previously got {self.classes_}, `y` has {given}")

    def _indices(self, y: Any) -> Any:
        """Class indices of ``y`` in ``classes_``; ValueError for unknown labels."""
        classes = self.classes_
        y = to_numpy(y) if isinstance(classes, np.ndarray) else y  # string labels: on the host
        xp, last = array_api_compat.array_namespace(classes), classes.shape[0] - 1
        idx = xp.searchsorted(classes, y)
        idx = xp.clip(idx, 0, last) if hasattr(xp, "clip") else xp.minimum(idx, last)
        if bool(xp.any(xp.take(classes, idx) != y)):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{classes}. 'y' has {_unique_sorted(y)}.")
        return idx

    def _encode_targets(self, y: Any) -> tuple[Any, Any]:
        """Device targets as the loss takes them, and the split's strata (binary) or None."""
        m = self.model_
        b, xp = m.backend, m.xp
        if self._multilabel:
            if y.ndim != 2 or y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {y.shape[1] if y.ndim == 2 else 1} labels, the model "
                                 f"was fitted with {self.n_outputs_}")
            return on_device(b, y, m.dtype), None
        idx = on_device(b, self._indices(y), xp.int64)
        if self._softmax:
            return idx, None
        Y = xp.reshape(xp.astype(idx == 1, m.dtype), (-1, 1))
        strata = to_numpy(Y) > 0.5 if self.early_stopping else None
        return Y, strata

    def _score_outputs(self, out: Any, Y: Any, w: Any = None) -> float:
        """Accuracy (subset accuracy for multilabel), ``accuracy_score(sample_weight=w)``."""
        xp = self.model_.xp
        d = self._decide(self._sk_loss().output_transform(out))  # what predict would say
        ok = d == Y if self._softmax else xp.all(d == xp.astype(Y > 0.5, xp.int64), axis=1)
        return float(average_rows(xp, xp.astype(ok, self.model_.dtype), w))

    def _decide(self, p: Any) -> Any:
        """Class indices (softmax), else int64 0/1 per output (all 0 for a single class)."""
        xp = self.model_.xp
        if self._softmax:
            return xp.argmax(p, axis=1)
        d = xp.astype(p > 0.5, xp.int64)
        return xp.zeros_like(d) if not self._multilabel and self.classes_.shape[0] == 1 else d

    # -- public API ------------------------------------------------------------
    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Run one epoch over ``(X, y)``, continuing from the current state.

        Not available for ``solver="lbfgs"``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Per-row weights, as for `fit`.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole problem; required on the first call (not for
            multilabel targets); must be the same on later calls.

        Returns
        -------
        self : MLPClassifier
        """
        if getattr(self, "classes_", None) is None:
            if classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None:
            given = np.unique(to_numpy(classes))
            if not np.array_equal(given, to_numpy(self.classes_)):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                                 f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        proba : array of shape (n_samples, n_classes)
            Same namespace and device as ``X`` (NumPy for NumPy, sparse or list input).
        """
        return self._proba_columns(X, "predict_proba")

    def _proba_columns(self, X: Any, method: str) -> Any:
        X, p = self._predict(X, method)
        if not self._softmax and not self._multilabel:
            p = self.model_.xp.concat([1.0 - p, p], axis=1)
        return as_output(p, X)

    def predict_log_proba(self, X):
        """Logarithm of [`predict_proba`][xpnet.sklearn.MLPClassifier.predict_proba].

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        log_proba : array of shape (n_samples, n_classes)
        """
        p = self._proba_columns(X, "predict_log_proba")
        xp = array_api_compat.array_namespace(p)
        with np.errstate(divide="ignore"):
            return xp.log(p)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``; in ``X``'s namespace for numeric labels,
            NumPy for string labels.
        """
        X, p = self._predict(X, "predict")
        d = self._decide(p)
        if self._multilabel:
            return as_output(d, X)
        idx = d if self._softmax else d[:, 0]
        classes = self.classes_
        if isinstance(classes, np.ndarray):
            return classes[to_numpy(idx)]
        cxp = array_api_compat.array_namespace(classes)
        return cxp.take(classes, as_output(idx, X), axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
