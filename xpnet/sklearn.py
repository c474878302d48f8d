"""scikit-learn estimators backed by xpnet: :class:`MLPClassifier` and :class:`MLPRegressor`.

Install with ``pip install "xpnet[sklearn]"``. ``import xpnet`` never imports
scikit-learn; only ``import xpnet.sklearn`` does.

The estimators follow scikit-learn's conventions (constructor stores
parameters only, ``fit``/``predict``/``score``/``partial_fit``, fitted
attributes end in ``_``, inputs checked with :func:`sklearn.utils.validation.validate_data`)
and its Array API convention: with ``sklearn.set_config(array_api_dispatch=True)``
a PyTorch, CuPy or ``array_api_strict`` input trains on its own namespace and
device, and array outputs come back in that namespace ("everything follows
``X``"). Without dispatch, inputs are converted to NumPy as scikit-learn does
everywhere, and the ``backend`` parameter says where the arithmetic runs.

They are thin: the model is :func:`xpnet.MLP`, training is :func:`xpnet.fit`, the
arguments are checked by the package's validators, the best epoch is tracked as by
:class:`xpnet.EarlyStopping` (with scikit-learn's ``tol`` rule) and the early-stopping
split is the package's ``"stratified"`` validation-split policy.

NumPy is used on the host for the bookkeeping of string labels and for NumPy outputs.

Examples
--------
>>> import numpy as np
>>> from xpnet.sklearn import MLPClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 4)).astype("float32")
>>> y = np.where(X[:, 0] > 0, "pos", "neg")
>>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300,
...                     random_state=0).fit(X, y)
>>> clf.classes_.tolist()
['neg', 'pos']
>>> clf.score(X, y) > 0.9
True
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from typing import Any

import array_api_compat
import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._array_api import (  # scikit-learn's Array API helpers (no public alias)
    get_namespace,
    get_namespace_and_device,
)
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _checks
from ._best import BestWeights
from ._split import split_rows, take_rows
from .backends import Backend, backend_of, get_backend, to_numpy
from .callbacks import Callback
from .layers import ACTIVATIONS
from .model import MLP, Sequential
from .optimizers import SGD, Adam, AdamW, RMSprop
from .training import NonFiniteLossError
from .training import fit as _xn_fit

__all__ = ["MLPClassifier", "MLPRegressor"]


def _fallback_check_same_namespace(X, estimator, *, attribute, method):
    """scikit-learn's ``check_same_namespace`` for releases that lack it (same message)."""
    if not get_config()["array_api_dispatch"]:
        return
    a_xp, _, a_device = get_namespace_and_device(getattr(estimator, attribute))
    X_xp, _, X_device = get_namespace_and_device(X)
    if X_xp == a_xp and X_device == a_device:
        return
    if array_api_compat.is_numpy_namespace(a_xp) and array_api_compat.is_numpy_namespace(X_xp):
        return
    raise ValueError(
        f"Inputs passed to {type(estimator).__name__}.{method}() must use the same namespace "
        f"and the same device as those passed to fit(). Fit used {a_xp.__name__} on "
        f"{a_device}, {method} got {X_xp.__name__} on {X_device}."
    )


def _fallback_move_to(array, *, xp, device):
    """scikit-learn's ``move_to`` (one array) for releases that lack it."""
    if array_api_compat.array_namespace(array) == xp and array_api_compat.device(array) == device:
        return array
    return xp.asarray(to_numpy(array), device=device)


try:  # scikit-learn >= 1.8 or so; xpnet[sklearn] allows >= 1.6
    from sklearn.utils._array_api import check_same_namespace
except ImportError:  # pragma: no cover - older scikit-learn
    check_same_namespace = _fallback_check_same_namespace
try:
    from sklearn.utils._array_api import move_to
except ImportError:  # pragma: no cover - older scikit-learn
    move_to = _fallback_move_to

#: scikit-learn's activation names that xpnet spells differently.
_SKLEARN_NAMES = {"logistic": "sigmoid"}
#: Hidden-layer activations: xpnet.MLP's (``"identity"`` adds no layer) plus scikit-learn's.
_ACTIVATIONS = tuple(sorted({*ACTIVATIONS, "identity", *_SKLEARN_NAMES}))
_SOLVERS = ("adam", "adamw", "sgd", "rmsprop")
_BOOLS = ("shuffle", "warm_start", "early_stopping", "nesterovs_momentum")
#: Real parameters and their ranges (scikit-learn's).
_REALS: dict[str, dict[str, Any]] = {
    "alpha": dict(low=0.0, high=None),
    "learning_rate_init": dict(low=0.0, low_open=True, high=None),
    "tol": dict(low=0.0, high=None),
    "momentum": dict(low=0.0, high=1.0),
    "beta_1": dict(low=0.0, high=1.0),
    "beta_2": dict(low=0.0, high=1.0),
    "epsilon": dict(low=0.0, low_open=True, high=None),
    "dropout": dict(low=0.0, high=1.0),
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _is_host_output(X: Any) -> bool:
    """Whether outputs for validated ``X`` must be NumPy arrays."""
    return isinstance(X, np.ndarray)


def _as_output(a: Any, X: Any) -> Any:
    """Return model output ``a`` in the namespace scikit-learn expects for ``X``.

    NumPy ``X`` (always the case without dispatch) gets NumPy back, with one
    explicit copy from the device when the model runs elsewhere (e.g.
    ``backend="cupy"``). Non-NumPy ``X`` only reaches here under dispatch, where
    the model lives on ``X``'s own backend, so ``a`` is already there. Float
    outputs keep the compute dtype (``dtype``): upcasting float32 results would
    claim a precision they do not have.
    """
    return to_numpy(a) if _is_host_output(X) else a


def _float_dtypes(X: Any) -> tuple:
    """The float dtypes ``validate_data`` may keep, in ``X``'s namespace under dispatch."""
    xp, _ = get_namespace(X)
    return (xp.float64, xp.float32)


class _EpochMonitor(Callback):
    """Hands every epoch's logs to the estimator (loss curve, tol / n_iter_no_change)."""

    def __init__(self, estimator: _BaseMLP, val: tuple | None, n_train: int, incremental: bool):
        self.estimator = estimator
        self.val = val
        self.n_train = n_train
        self.incremental = incremental

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        stop = self.estimator._end_of_epoch(logs, self.val, self.n_train)
        if stop and not self.incremental:
            self.model.stop_training = True


# ---------------------------------------------------------------------------
# shared base
# ---------------------------------------------------------------------------
class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=0, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, dropout=0.0, backend="numpy", dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.backend = backend
        self.dtype = dtype

    # -- subclass hooks ------------------------------------------------------
    def _model_loss(self) -> str:
        """The xpnet loss of the model."""
        raise NotImplementedError

    def _loss_scale(self) -> float:
        """Factor from xpnet's epoch loss to scikit-learn's ``loss_curve_`` convention."""
        return 1.0

    def _targets(self, y: Any, *, first: bool, incremental: bool,
                 classes: Any) -> tuple[Any, np.ndarray | None]:
        """Set or check the target attributes; return (model targets, host strata or None)."""
        raise NotImplementedError

    def _device_score(self, X_val: Any, y_val: Any) -> float:
        """The validation score (accuracy or R^2) of ``model_``, computed on its device."""
        raise NotImplementedError

    # -- parameters ------------------------------------------------------------
    def _check_params(self, incremental: bool = False) -> None:
        """Check every constructor argument before any work (the package's validators)."""
        for name in _BOOLS:
            _checks.check_bool(name, getattr(self, name))
        _checks.check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        _checks.check_choice("activation", self.activation, _ACTIVATIONS)
        _checks.check_choice("solver", self.solver, _SOLVERS)
        for name, bounds in _REALS.items():
            _checks.check_float(name, getattr(self, name), **bounds)
        _checks.check_float("validation_fraction", self.validation_fraction, low=0.0,
                            high=1.0, low_open=bool(self.early_stopping))
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _checks.check_int("batch_size", self.batch_size)
        _checks.check_int("max_iter", self.max_iter)
        if not (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == math.inf):
            _checks.check_int("n_iter_no_change", self.n_iter_no_change)
        _checks.check_dtype(self.dtype)
        if not isinstance(self.backend, (str, Backend)):
            raise TypeError(
                f"backend must be a string such as 'numpy' or 'auto', got {self.backend!r}"
            )
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")

    def _resolve_backend(self, X: Any) -> Backend:
        """Where the model lives: ``X``'s backend under dispatch, else ``self.backend``."""
        if not isinstance(X, np.ndarray):
            return backend_of(X)
        return get_backend(self.backend)

    def _seeds(self) -> tuple[int, np.random.RandomState]:
        """(model seed, RandomState for the validation split) from ``random_state``."""
        rs = check_random_state(self.random_state)
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state), rs
        return int(rs.randint(np.iinfo(np.int32).max)), rs

    def _make_optimizer(self, batch_size: int):
        lr = float(self.learning_rate_init)
        alpha = float(self.alpha)
        if self.solver == "adamw":
            return AdamW(lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                         weight_decay=alpha)
        # scikit-learn's L2 term is alpha / (2 * batch) * ||W||^2, so its gradient
        # adds (alpha / batch) * W: the same as weight_decay = alpha / batch.
        wd = alpha / batch_size
        if self.solver == "adam":
            return Adam(lr, betas=(self.beta_1, self.beta_2), eps=self.epsilon,
                        weight_decay=wd)
        if self.solver == "sgd":
            return SGD(lr, momentum=float(self.momentum),
                       nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
                       weight_decay=wd)
        return RMSprop(lr, eps=self.epsilon, weight_decay=wd)

    def _build_model(self, n_in: int, n_out: int, backend: Backend, seed: int) -> Sequential:
        hidden = _checks.check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        return MLP([n_in, *hidden, n_out],
                   activation=_SKLEARN_NAMES.get(self.activation, self.activation),
                   dropout=float(self.dropout), loss=self._model_loss(), backend=backend,
                   dtype=self.dtype, seed=seed)

    def _batch_size(self, n: int) -> int:
        if isinstance(self.batch_size, str):
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going "
                "to be clipped", stacklevel=5)
        return min(int(self.batch_size), n)

    # -- training ------------------------------------------------------------
    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None):
        """``fit`` (``incremental=False``) and ``partial_fit``: checks, then :meth:`_train`."""
        self._check_params(incremental)
        first = not hasattr(self, "model_") or (not incremental and not self.warm_start)
        X, y = self._validate_xy(X, y, reset=first,
                                 method="partial_fit" if incremental else "fit")
        y_model, strata = self._targets(y, first=first, incremental=incremental,
                                        classes=classes)
        if first:
            self._record_fit_input(X)
        self._train(X, y_model, first=first, incremental=incremental, strata=strata)
        return self

    def _reset_progress(self) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        # As in scikit-learn, which of these is None depends on early_stopping, and the
        # epoch code reads only the ones that are set; hence Any rather than Optional.
        self.validation_scores_: Any
        self.best_validation_score_: Any
        self.best_loss_: Any
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -math.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = math.inf
        self._best = BestWeights("max" if self.early_stopping else "min", rule="sklearn")

    def _end_of_epoch(self, logs: dict, val: tuple | None, n_train: int) -> bool:
        """Record one epoch like scikit-learn; return True when training should stop."""
        loss = float(logs["loss"]) * self._loss_scale()
        self.n_iter_ += 1
        self.t_ += n_train
        self.loss_ = loss
        self.loss_curve_.append(loss)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
        if val is not None:
            score = self._device_score(*val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            self._best.update(score, self.model_.params)  # keeps the best epoch's weights
            self.best_validation_score_ = self._best.best
        else:
            self._best.update(loss)
            self.best_loss_ = self._best.best
        stop = self._best.should_stop
        if stop and self.verbose:
            what = ("Validation score did not improve" if val is not None
                    else "Training loss did not improve")
            print(f"{what} more than tol={self.tol:f} for {self.n_iter_no_change} "
                  "consecutive epochs. Stopping.")
        return stop

    def _split(self, X: Any, y_model: Any, strata: np.ndarray | None,
               rs: np.random.RandomState) -> tuple[Any, Any, tuple[Any, Any]]:
        """Hold out ``validation_fraction`` of the rows (stratified for classifiers)."""
        train, val = split_rows(X.shape[0], self.validation_fraction, policy="stratified",
                                seed=rs, labels=strata, name="validation_fraction")
        if len(val) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        b = self.model_.backend
        val_xy = (_checks.to_backend("X", take_rows(X, val), b),
                  _checks.to_backend("y", take_rows(y_model, val), b))
        return take_rows(X, train), take_rows(y_model, train), val_xy

    def _train(self, X: Any, y_model: Any, *, first: bool, incremental: bool,
               strata: np.ndarray | None) -> None:
        """Build (or continue) ``model_`` and run the epochs on validated ``X``/``y_model``."""
        seed, rs = self._seeds()
        if first:
            self.model_ = self._build_model(X.shape[1], self.n_outputs_,
                                            self._resolve_backend(X), seed)
            self._reset_progress()
        elif not incremental:
            self.n_iter_ = 0  # warm start: a new fit counts its own iterations
        # read anew on every fit, as scikit-learn does (set_params between warm starts)
        self._best.min_delta, self._best.patience = float(self.tol), self.n_iter_no_change
        X_tr, y_tr, val = X, y_model, None
        if self.early_stopping:
            X_tr, y_tr, val = self._split(X, y_model, strata, rs)
        n = X_tr.shape[0]
        bs = self._batch_size(n)
        model = self.model_
        reuse = incremental and model.optimizer is not None
        optimizer = model.optimizer if reuse else self._make_optimizer(bs)
        n_before = self.n_iter_
        try:
            history = _xn_fit(model, X_tr, y_tr, epochs=1 if incremental else int(self.max_iter),
                              batch_size=bs, optimizer=optimizer, shuffle=bool(self.shuffle),
                              callbacks=[_EpochMonitor(self, val, n, incremental)], verbose=0)
        except NonFiniteLossError as exc:
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                f"large values and need to be preprocessed. ({exc})"
            ) from exc
        if self._best.params is not None:  # early stopping: back to the best epoch
            model.set_params(self._best.params)
            self._best.params = None
        if (not incremental and not history.stopped_early
                and self.n_iter_ - n_before == self.max_iter):
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    # -- input checks ------------------------------------------------------------
    def _validate_xy(self, X: Any, y: Any, reset: bool, method: str) -> tuple[Any, Any]:
        """scikit-learn's checks of ``(X, y)``; a numeric ``y`` follows ``X`` under dispatch."""
        if not reset:  # continuing: the data must live where the model was fitted
            check_same_namespace(X, self, attribute="_fit_namespace_ref", method=method)
        classifier = is_classifier(self)
        X, y = validate_data(self, X, y, reset=reset, multi_output=True,
                             y_numeric=not classifier, dtype=_float_dtypes(X))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if classifier:
            check_classification_targets(y)
        xp_X, dispatch, device = get_namespace_and_device(X)
        if dispatch and not (isinstance(y, np.ndarray) and y.dtype.kind in "OUS"):
            # scikit-learn's convention: numeric targets follow X's namespace and device.
            y = move_to(y, xp=xp_X, device=device)
        return X, y

    def _record_fit_input(self, X: Any) -> None:
        """Remember the namespace/device of the fit input for ``check_same_namespace``."""
        xp, _, device = get_namespace_and_device(X)
        self._fit_namespace_ref = xp.zeros((0,), dtype=X.dtype, device=device)

    def _check_predict_input(self, X: Any, method: str) -> Any:
        check_is_fitted(self)
        check_same_namespace(X, self, attribute="_fit_namespace_ref", method=method)
        return validate_data(self, X, reset=False, dtype=_float_dtypes(X))

    def __sklearn_array_api_convert__(self, converter):
        """Support :func:`sklearn.utils._array_api.move_estimator_to`.

        Returns a copy whose array attributes, and whose model's parameters,
        were passed through ``converter`` (the optimizer state is dropped when the
        model changes namespace or device).
        """
        new = clone(self)
        for key, value in vars(self).items():
            if key == "model_":
                moved = converter(next(iter(value.params.values())))
                value = copy.deepcopy(value)
                if not value.backend.owns(moved):
                    value.to(backend_of(moved))  # drops the optimizer state (see Sequential.to)
            elif hasattr(value, "__dlpack__") or isinstance(value, np.ndarray):
                if not (isinstance(value, np.ndarray) and value.dtype.kind in "OUS"):
                    value = converter(value)
            else:
                value = copy.deepcopy(value)
            setattr(new, key, value)
        return new

    # -- read-only views in scikit-learn's layout -----------------------------
    @property
    def coefs_(self) -> list:
        """Weight matrices, ``coefs_[i]`` of shape (n_in, n_out), on the model's backend."""
        m = self.model_
        return [m.params[k] for k in m.params if k.endswith(".W")]

    @property
    def intercepts_(self) -> list:
        """Bias vectors, ``intercepts_[i]`` of shape (n_out,), on the model's backend."""
        m = self.model_
        return [m.params[k] for k in m.params if k.endswith(".b")]

    @property
    def n_layers_(self) -> int:
        """Number of layers including input and output (as in scikit-learn)."""
        return len(self.coefs_) + 1

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags


# ---------------------------------------------------------------------------
# classifier
# ---------------------------------------------------------------------------
class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by xpnet (softmax cross-entropy).

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` (stochastic
    solvers) that runs on NumPy by default, on CuPy/PyTorch through
    ``backend=``, and on any Array API namespace under
    ``sklearn.set_config(array_api_dispatch=True)``.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer.
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu", "gelu"}, default="relu"
        Hidden-layer activation (``"sigmoid"`` is an alias of ``"logistic"``).
    solver : {"adam", "adamw", "sgd", "rmsprop"}, default="adam"
        xpnet optimizer. ``"lbfgs"`` is not available.
    alpha : float, default=1e-4
        L2 strength, as scikit-learn's ``alpha``: its gradient ``alpha / batch_size * W``
        is xpnet's ``weight_decay = alpha / batch_size`` for adam, sgd and rmsprop.
        For ``"adamw"`` it is the decoupled decay rate (``weight_decay = alpha``).
        Unlike scikit-learn, biases are decayed too.
    batch_size : int or "auto", default="auto"
        Rows per step; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate_init : float, default=1e-3
        Constant learning rate.
    max_iter : int, default=200
        Maximum number of epochs.
    shuffle : bool, default=True
        Reshuffle the rows every epoch.
    random_state : int, RandomState instance or None, default=None
        An int is used as xpnet's seed (``random_state=0`` gives the same initial
        weights as the same layers built with ``seed=0``); other values draw a seed.
    tol : float, default=1e-4
        Improvement that counts (training loss, or validation accuracy with
        ``early_stopping``); see ``n_iter_no_change``.
    verbose : int, default=0
        Print the loss (and validation score) of every epoch.
    warm_start : bool, default=False
        Continue from the previous fit instead of starting over.
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``.
    nesterovs_momentum : bool, default=True
        Nesterov momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), stop when its
        accuracy has not improved by ``tol`` for ``n_iter_no_change`` epochs and
        restore the best weights.
    validation_fraction : float, default=0.1
        Held-out fraction for ``early_stopping``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam/AdamW moments and epsilon (epsilon is also RMSprop's).
    n_iter_no_change : int or inf, default=10
        Epochs without a ``tol`` improvement before stopping.
    dropout : float, default=0.0
        Dropout rate after each hidden activation (xpnet extension).
    backend : str, default="numpy"
        Where NumPy input is trained: ``"numpy"``, ``"auto"`` (CuPy when a GPU is
        usable), ``"cupy"``, ``"torch"``, ``"torch:cuda"``... Outputs for NumPy
        input are always NumPy. Under array API dispatch a non-NumPy ``X``
        decides instead (the model is built on its namespace and device).
    dtype : {"float32", "float64"}, default="float32"
        Parameter and compute dtype; float outputs come in this dtype.

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
        Class labels; in ``X``'s namespace for numeric labels under dispatch,
        NumPy otherwise. For multilabel targets ``arange(n_labels)``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    model_ : xpnet.Sequential
        The trained xpnet model.
    loss_ : float
        Last epoch's mean training loss (log-loss, without the L2 term).
    loss_curve_ : list of float
        Training loss of every epoch.
    best_loss_ : float or None
        Lowest training loss (None with ``early_stopping``).
    validation_scores_ : list of float or None
        Validation accuracy of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    n_iter_ : int
        Epochs run by the last ``fit`` (cumulative over ``partial_fit`` calls).
    t_ : int
        Training samples seen.
    n_outputs_ : int
        Output units.
    out_activation_ : str
        ``"softmax"`` (``"logistic"`` for multilabel targets).
    coefs_, intercepts_ : list of arrays
        Read-only views of ``model_``'s weights, in scikit-learn's layout.

    See Also
    --------
    MLPRegressor
    sklearn.neural_network.MLPClassifier

    Notes
    -----
    Binary problems use two softmax outputs (scikit-learn uses one logistic
    unit); the models are equivalent. ``loss_curve_`` is the data term only.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from xpnet.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                     max_iter=300, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).tolist()
    [0, 0, 0]
    """

    # -- labels ----------------------------------------------------------------
    def _model_loss(self) -> str:
        return "binary_cross_entropy" if self._multilabel else "cross_entropy"

    def _loss_scale(self) -> float:
        # xpnet's BCE averages over labels too; scikit-learn sums over them.
        return float(self.n_outputs_) if self._multilabel else 1.0

    @staticmethod
    def _unique_sorted(y: Any) -> Any:
        if isinstance(y, np.ndarray):
            return np.unique(y)
        xp = array_api_compat.array_namespace(y)
        return xp.sort(xp.unique_values(y))

    def _set_classes(self, y: Any, classes: Any = None) -> None:
        """Define ``classes_`` (and the target kind) from ``y`` or ``classes``."""
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
        self.classes_ = self._unique_sorted(source)
        self.n_outputs_ = int(self.classes_.shape[0])
        self.out_activation_ = "softmax"

    def _check_same_classes(self, y: Any, classes: Any, incremental: bool) -> None:
        """A continued fit must keep ``classes_`` (multilabel targets are not checked)."""
        if self._multilabel:
            return
        if incremental and classes is not None:
            given = np.unique(np.asarray(classes) if isinstance(classes, (list, tuple))
                              else to_numpy(classes))
            if not np.array_equal(given, to_numpy(self.classes_)):
                raise ValueError(
                    f"`classes={given}` is not the same as on the first call to partial_fit, "
                    f"which was {self.classes_}")
        elif not incremental and not np.array_equal(to_numpy(self._unique_sorted(y)),
                                                    to_numpy(self.classes_)):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, `y` has "
                f"{self._unique_sorted(y)}")

    def _targets(self, y: Any, *, first: bool, incremental: bool,
                 classes: Any) -> tuple[Any, np.ndarray | None]:
        """Class indices of ``y``, and the host labels to stratify the split on."""
        if first:
            if incremental and classes is None and type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._set_classes(y, classes)
        else:
            self._check_same_classes(y, classes, incremental)
        y_enc = self._encode(y)
        strata = to_numpy(y_enc) if self.early_stopping and not self._multilabel else None
        return y_enc, strata

    def _encode(self, y: Any) -> Any:
        """Class indices (int64) of ``y`` in ``classes_``; ValueError for unknown labels."""
        if self._multilabel:
            if y.ndim != 2 or y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {y.shape[1] if y.ndim == 2 else 1} labels, the model was fitted "
                    f"with {self.n_outputs_}")
            return y
        classes = self.classes_
        k = classes.shape[0]
        if isinstance(classes, np.ndarray):
            y_h = y if isinstance(y, np.ndarray) else to_numpy(y)
            idx = np.searchsorted(classes, y_h)
            bad = np.asarray(classes[np.minimum(idx, k - 1)] != y_h)
            if bad.any():
                unknown = np.unique(y_h[bad])
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {classes}. "
                    f"'y' has {unknown}.")
            return idx.astype(np.int64)
        xp = array_api_compat.array_namespace(classes)
        idx = xp.searchsorted(classes, y)
        clipped = xp.minimum(xp.maximum(idx, 0), k - 1)  # no compat clip: it syncs on CuPy
        if bool(xp.any(xp.take(classes, clipped) != y)):
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has {classes}.")
        return xp.astype(clipped, xp.int64)

    def _device_score(self, X_val: Any, y_val: Any) -> float:
        m = self.model_
        xp = m.xp
        pred = m.predict(X_val)
        if self._multilabel:
            ok = xp.all(pred == xp.astype(y_val, pred.dtype), axis=1)
        else:
            ok = pred == y_val
        return float(xp.mean(xp.astype(ok, m.dtype)))

    # -- public API ------------------------------------------------------------
    def fit(self, X, y):
        """Fit the model to ``X`` and labels ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (NumPy, a DataFrame, or, under array API dispatch,
            an array of any supported namespace).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (numbers or strings), or a multilabel indicator matrix.

        Returns
        -------
        self : MLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """Run one epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole problem; required on the first call (not
            needed for multilabel targets), ignored afterwards when equal.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : array of shape (n_samples, n_classes)
            Same namespace and device as ``X`` (NumPy for NumPy/array-like input).
        """
        X = self._check_predict_input(X, "predict_proba")
        return _as_output(self.model_.predict_proba(X), X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : array of shape (n_samples, n_classes)
        """
        X = self._check_predict_input(X, "predict_log_proba")
        p = _as_output(self.model_.predict_proba(X), X)
        xp = array_api_compat.array_namespace(p)
        with np.errstate(divide="ignore"):
            return xp.log(p)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``; in ``X``'s namespace for numeric labels,
            NumPy for string labels.
        """
        X = self._check_predict_input(X, "predict")
        idx = self.model_.predict(X)
        if self._multilabel:
            return _as_output(idx, X)
        classes = self.classes_
        if isinstance(classes, np.ndarray):
            return classes[to_numpy(idx)]
        xp = array_api_compat.array_namespace(classes)
        return xp.take(classes, _as_output(idx, X), axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


# ---------------------------------------------------------------------------
# regressor
# ---------------------------------------------------------------------------
class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by xpnet (squared error).

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` (stochastic
    solvers, squared error) on every xpnet backend; see :class:`MLPClassifier`
    for the parameters, which are the same.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
    activation : {"relu", "tanh", "logistic", "identity", "leaky_relu", "gelu"}, default="relu"
    solver : {"adam", "adamw", "sgd", "rmsprop"}, default="adam"
    alpha : float, default=1e-4
        L2 strength (``weight_decay = alpha / batch_size``; decoupled for adamw).
    batch_size : int or "auto", default="auto"
    learning_rate_init : float, default=1e-3
    max_iter : int, default=200
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
    tol : float, default=1e-4
    verbose : int, default=0
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Stop on the held-out R^2 score instead of the training loss.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
    n_iter_no_change : int or inf, default=10
    dropout : float, default=0.0
    backend : str, default="numpy"
    dtype : {"float32", "float64"}, default="float32"

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    model_ : xpnet.Sequential
    loss_ : float
        Last epoch's half mean squared error (scikit-learn's convention; xpnet's
        ``"mse"`` loss is twice this), without the L2 term.
    loss_curve_ : list of float
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Held-out R^2 of every epoch with ``early_stopping``.
    best_validation_score_ : float or None
    n_iter_ : int
    t_ : int
    n_outputs_ : int
    out_activation_ : str
        ``"identity"``.
    coefs_, intercepts_ : list of arrays

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
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01,
    ...                    max_iter=500, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    def _model_loss(self) -> str:
        return "mse"

    def _loss_scale(self) -> float:
        return 0.5  # xpnet's mse is mean((p - y)**2); scikit-learn reports half of it

    def _targets(self, y: Any, *, first: bool, incremental: bool,
                 classes: Any) -> tuple[Any, None]:
        """``y`` itself; the number of outputs is set on the first fit and kept after."""
        k = 1 if y.ndim == 1 else int(y.shape[1])
        if first:
            self.n_outputs_ = k
            self.out_activation_ = "identity"
        elif k != self.n_outputs_:
            raise ValueError(f"y has {k} outputs, the model was fitted with {self.n_outputs_}")
        return y, None

    def _device_score(self, X_val: Any, y_val: Any) -> float:
        """R^2 (uniform average over outputs) on the device, as ``sklearn.metrics.r2_score``."""
        m = self.model_
        xp = m.xp
        pred = m.predict(X_val)
        yv = xp.astype(y_val, pred.dtype)
        if yv.ndim == 1:
            yv = xp.reshape(yv, (-1, 1))
        num = xp.sum((yv - pred) ** 2, axis=0)
        den = xp.sum((yv - xp.mean(yv, axis=0)) ** 2, axis=0)
        one = xp.ones_like(num)
        safe = xp.where(den > 0, den, one)
        r2 = xp.where(den > 0, 1.0 - num / safe, xp.where(num == 0, one, xp.zeros_like(num)))
        return float(xp.mean(r2))

    def fit(self, X, y):
        """Fit the model to ``X`` and targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """Run one epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            Same namespace and device as ``X`` (NumPy for NumPy/array-like input).
        """
        X = self._check_predict_input(X, "predict")
        out = self.model_.predict(X)
        if self.n_outputs_ == 1:
            xp = self.model_.xp
            out = xp.reshape(out, (-1,))
        return _as_output(out, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
