"""``MLPRegressor``: scikit-learn's multilayer perceptron regressor, trained by xpnet."""

from __future__ import annotations

from typing import Any

from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if

from .. import _checks
from ._base import BaseMLP, average_rows
from ._data import on_device
from ._namespaces import as_output

__all__ = ["MLPRegressor"]

LOSSES = ("squared_error", "poisson")


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's, on every xpnet backend.

    A drop-in for `sklearn.neural_network.MLPRegressor` (scikit-learn 1.9),
    with the same parameters, defaults, initial weights, losses and solvers; see
    [`MLPClassifier`][xpnet.sklearn.MLPClassifier] for the parameters they share.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        Half the squared error (identity output), or half the Poisson deviance of an
        exponential output (``y >= 0``).
    hidden_layer_sizes : int or sequence of int, default=(100,)
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu", "gelu"}, default="relu"
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop"}, default="adam"
    alpha : float, default=1e-4
    batch_size : int or "auto", default="auto"
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
    learning_rate_init : float, default=1e-3
    power_t : float, default=0.5
    max_iter : int, default=200
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
    tol : float, default=1e-4
    verbose : bool or int, default=False
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Stop on the held-out R^2 score instead of the training loss.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
    n_iter_no_change : int or inf, default=10
    max_fun : int, default=15000
    dropout : float, default=0.0
    backend : str, default="numpy"
    device : optional
    dtype : {None, "float32", "float64"}, default=None

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    model_ : xpnet.Sequential
        The trained xpnet model (outputs on the log scale for ``loss="poisson"``).
    loss_ : float
        Last epoch's mean loss in scikit-learn's units (half squared error, or half
        Poisson deviance), L2 term included.
    loss_curve_ : list of float
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Held-out R^2 of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
    t_ : int
    n_outputs_ : int
    out_activation_ : str
        ``"identity"`` (``"exp"`` for ``loss="poisson"``).
    coefs_, intercepts_ : list of arrays
        Assignable, as for [`MLPClassifier`][xpnet.sklearn.MLPClassifier].
    n_layers_ : int

    See Also
    --------
    MLPClassifier
    sklearn.neural_network.MLPRegressor

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.sklearn import MLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(300, 2))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99, reg.predict(X[:2]).dtype
    (True, dtype('float64'))
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, backend="numpy", device=None, dtype=None):
        self._set_init_params(locals())

    def _check_params(self, incremental: bool = False) -> None:
        _checks.check_choice("loss", self.loss, LOSSES)
        super()._check_params(incremental)

    def _set_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> None:
        """The number of outputs is set on the first fit and kept after."""
        k = 1 if y.ndim == 1 else int(y.shape[1])
        if first:
            self.n_outputs_ = k
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif k != self.n_outputs_:
            raise ValueError(f"y has {k} outputs, the model was fitted with {self.n_outputs_}")

    def _encode_targets(self, y: Any) -> tuple[Any, None]:
        """``y`` as an ``(n, n_outputs)`` float array on the model's device."""
        m = self.model_
        b, xp = m.backend, m.xp
        Y = xp.reshape(on_device(b, y, m.dtype), (y.shape[0], -1))
        if self.out_activation_ == "exp" and bool(xp.any(Y < 0)):
            raise ValueError("loss='poisson' needs y >= 0; y has negative values "
                             f"(the smallest is {float(xp.min(Y)):g})")
        return Y, None

    def _score_outputs(self, out: Any, Y: Any, w: Any = None) -> float:
        """R^2 over outputs (NaN for non-finite predictions), ``r2_score(sample_weight=w)``."""
        xp = self.model_.xp
        pred = xp.exp(out) if self.out_activation_ == "exp" else out
        if not bool(xp.all(xp.isfinite(pred))):
            return float("nan")
        wc = 1.0 if w is None else xp.reshape(w, (-1, 1))  # r2_score's weight: 1.0 unweighted
        num = xp.sum(wc * (Y - pred) ** 2, axis=0)
        den = xp.sum(wc * (Y - average_rows(xp, Y, w)) ** 2, axis=0)
        safe = xp.where(den > 0, den, xp.ones_like(den))
        r2 = xp.where(den > 0, 1.0 - num / safe, xp.astype(num == 0, num.dtype))
        return float(xp.mean(r2))

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over ``(X, y)``, continuing from the current state.

        Not available for ``solver="lbfgs"``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Per-row weights, as for `fit`.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            In the model's dtype; same namespace and device as ``X`` (NumPy for
            NumPy, sparse or list input).
        """
        X, out = self._predict(X, "predict")
        if self.n_outputs_ == 1:
            out = self.model_.xp.reshape(out, (-1,))
        return as_output(out, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
