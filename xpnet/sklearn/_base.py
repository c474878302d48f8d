"""The machinery [`MLPClassifier`][xpnet.sklearn.MLPClassifier] and
[`MLPRegressor`][xpnet.sklearn.MLPRegressor] share.

Parameters are checked by the package's validators before any work; the model is
[`xpnet.MLP`][] with scikit-learn's initial weights (Glorot-uniform drawn from
``random_state``, biases too); training is `xpnet.sklearn._solvers`.
NumPy is used on the host for the initial weights and index bookkeeping.
"""

from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import array_api_compat
import numpy as np
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (  # scikit-learn's own check of sample_weight
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from .. import _checks
from ..backends import Backend, backend_of, dtype_name, get_backend
from ..layers import ACTIVATIONS
from ..model import MLP, Sequential
from . import _solvers
from ._data import Rows, Samples, Weights, is_sparse
from ._losses import OUTPUT_LOSSES, layer_keys
from ._namespaces import (
    check_same_namespace,
    float_dtypes,
    get_namespace_and_device,
    move_to,
)
from ._optim import AdamRule, RMSpropRule, SGDRule

#: scikit-learn's activation names that xpnet spells differently.
SKLEARN_NAMES = {"logistic": "sigmoid"}
#: Hidden-layer activations: scikit-learn's, xpnet.MLP's and the ``"sigmoid"`` alias.
ACTIVATION_NAMES = tuple(sorted({*ACTIVATIONS, "identity", *SKLEARN_NAMES}))
STOCHASTIC = ("sgd", "adam", "adamw", "rmsprop")
SOLVERS = ("lbfgs", *STOCHASTIC)
LEARNING_RATES = ("constant", "invscaling", "adaptive")
_BOOLS = ("shuffle", "warm_start", "early_stopping", "nesterovs_momentum")
#: Real parameters and their ranges (scikit-learn's).
_REALS: dict[str, dict[str, Any]] = {
    "alpha": dict(low=0.0, high=None),
    "learning_rate_init": dict(low=0.0, low_open=True, high=None),
    "power_t": dict(low=0.0, high=None),
    "tol": dict(low=0.0, high=None),
    "momentum": dict(low=0.0, high=1.0, high_open=False),
    "beta_1": dict(low=0.0, high=1.0),
    "beta_2": dict(low=0.0, high=1.0),
    "epsilon": dict(low=0.0, low_open=True, high=None),
    "dropout": dict(low=0.0, high=1.0),
}
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain "
              "large values and need to be preprocessed.")


def average_rows(xp: Any, a: Any, w: Any = None) -> Any:
    """Mean of `a` over its rows, or ``np.average(a, axis=0, weights=w)``."""
    if w is None:
        return xp.mean(a, axis=0)
    wb = xp.reshape(w, (-1,) + (1,) * (a.ndim - 1))
    return xp.sum(a * wb, axis=0) / xp.sum(w)


def _layer_list(suffix: str, name: str, doc: str) -> property:
    """The model's `suffix` parameters in layer order; assigning a list checks, casts, moves."""

    def get(est: BaseMLP) -> list:
        return [est.model_.params[k] for k in layer_keys(est.model_.params, suffix)]

    def assign(est: BaseMLP, value: Any) -> None:
        if "model_" not in vars(est):
            raise AttributeError(f"{name} can only be assigned on a fitted estimator; call fit "
                                 "or partial_fit first")
        m = est.model_
        keys = layer_keys(m.params, suffix)
        value = list(value)
        if len(value) != len(keys):
            raise ValueError(f"{name} must be a list of {len(keys)} arrays (one per layer), "
                             f"got {len(value)}")
        new = dict(m.params)
        for i, (k, v) in enumerate(zip(keys, value, strict=True)):
            v = v if array_api_compat.is_array_api_obj(v) else np.asarray(v, dtype=float)
            if tuple(v.shape) != tuple(m.params[k].shape):
                raise ValueError(f"{name}[{i}] has shape {tuple(v.shape)}, expected "
                                 f"{tuple(m.params[k].shape)}")
            new[k] = v
        m.set_params(new)

    return property(get, assign, doc=doc)


class BaseMLP(BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor (their docstrings document it)."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, backend="numpy", device=None, dtype=None):
        self._set_init_params(locals())

    def _set_init_params(self, args: dict) -> None:
        """Store each constructor argument under its own name, as scikit-learn requires."""
        for name, value in args.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- subclass hooks ------------------------------------------------------
    def _sk_loss(self) -> Any:
        """scikit-learn's training loss for ``out_activation_`` (``_losses.OUTPUT_LOSSES``)."""
        return OUTPUT_LOSSES[self.out_activation_][1]

    def _set_targets(self, y: Any, *, first: bool, incremental: bool, classes: Any) -> None:
        """Set (or check) the target attributes: ``n_outputs_``, ``out_activation_``..."""
        raise NotImplementedError

    def _encode_targets(self, y: Any) -> tuple[Any, Any]:
        """The targets on the model's device as the loss takes them, and the strata or None."""
        raise NotImplementedError

    def _score_outputs(self, out: Any, Y: Any, w: Any = None) -> float:
        """scikit-learn's validation score (accuracy or R^2) of raw outputs, `w`-weighted."""
        raise NotImplementedError

    # -- parameters ------------------------------------------------------------
    def _check_params(self, incremental: bool = False) -> None:
        """Check every constructor argument before any work (the package's validators)."""
        for name in _BOOLS:
            _checks.check_bool(name, getattr(self, name))
        _checks.check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        _checks.check_choice("activation", self.activation, ACTIVATION_NAMES)
        _checks.check_choice("solver", self.solver, SOLVERS)
        _checks.check_choice("learning_rate", self.learning_rate, LEARNING_RATES)
        for name, bounds in _REALS.items():
            _checks.check_float(name, getattr(self, name), **bounds)
        _checks.check_float("validation_fraction", self.validation_fraction, low=0.0,
                            high=1.0, low_open=bool(self.early_stopping))
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _checks.check_int("batch_size", self.batch_size)
        _checks.check_int("max_iter", self.max_iter)
        _checks.check_int("max_fun", self.max_fun)
        if not (isinstance(self.verbose, (bool, np.bool_))):
            _checks.check_int("verbose", self.verbose, minimum=0)
        if not (isinstance(self.n_iter_no_change, float) and self.n_iter_no_change == math.inf):
            _checks.check_int("n_iter_no_change", self.n_iter_no_change)
        if self.dtype is not None:
            _checks.check_dtype(self.dtype)
        if not isinstance(self.backend, (str, Backend)):
            raise TypeError(
                f"backend must be a string such as 'numpy' or 'auto', got {self.backend!r}")
        if self.solver == "lbfgs" and self.dropout > 0:
            raise ValueError("dropout needs a stochastic solver ('adam', 'sgd', 'adamw' or "
                             f"'rmsprop'); solver='lbfgs' got dropout={self.dropout}")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")

    def _check_solver(self) -> bool:
        """``partial_fit`` exists only for the stochastic solvers (as in scikit-learn)."""
        if self.solver not in STOCHASTIC:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- the model -----------------------------------------------------------
    def _resolve_backend(self, X: Any) -> Backend:
        """Where the model lives: ``X``'s backend under dispatch, else ``backend``/``device``."""
        if not isinstance(X, np.ndarray) and not is_sparse(X):
            return backend_of(X)
        return get_backend(self.backend, self.device)

    def _compute_dtype(self, X: Any) -> str:
        """``dtype`` when given, else the input's float dtype (scikit-learn's rule)."""
        if self.dtype is not None:
            return _checks.check_dtype(self.dtype)
        name = dtype_name(X.dtype)
        return name if name in _checks.FLOAT_DTYPES else "float64"

    def _model_seed(self) -> int:
        """The xpnet model's seed (its dropout draws): ``random_state`` when it is an int."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        if self.dropout > 0:  # an extension: its seed comes from the same RandomState
            return int(self._random_state.randint(np.iinfo(np.int32).max))
        return 0

    def _initialize(self, X: Any) -> None:
        """Build ``model_`` with scikit-learn's initial weights; reset the progress."""
        hidden = _checks.check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        units = [int(X.shape[1]), *hidden, int(self.n_outputs_)]
        model = MLP(units, activation=SKLEARN_NAMES.get(self.activation) or self.activation,
                    dropout=float(self.dropout), loss=OUTPUT_LOSSES[self.out_activation_][0],
                    init="glorot_uniform", backend=self._resolve_backend(X),
                    dtype=self._compute_dtype(X), seed=self._model_seed())
        self._set_initial_weights(model, units)
        self.model_ = model
        self.n_iter_ = 0
        self.t_ = 0
        self._optimizer: Any = None
        self._best: Any = None  # a BestWeights once a stochastic solver runs

    def _set_initial_weights(self, model: Sequential, units: list[int]) -> None:
        """scikit-learn's ``_init_coef`` draws (biases too) from ``random_state``, in float64."""
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        rs, dt = self._random_state, model.dtype_name
        new, p = {}, model.params
        for i, (kw, kb) in enumerate(zip(layer_keys(p, ".W"), layer_keys(p, ".b"), strict=True)):
            fan_in, fan_out = units[i], units[i + 1]
            bound = np.sqrt(factor / (fan_in + fan_out))
            new[kw] = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dt, copy=False)
            new[kb] = rs.uniform(-bound, bound, fan_out).astype(dt, copy=False)
        model.set_params(new)

    def _make_optimizer(self) -> Any:
        """A fresh optimizer for ``model_.params`` (scikit-learn's rules for sgd and adam)."""
        params, mutable = self.model_.params, self.model_.backend.mutable
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            return SGDRule(params, lr, self.learning_rate, self.momentum,
                           self.nesterovs_momentum, self.power_t, mutable=mutable)
        if self.solver in ("adam", "adamw"):
            return AdamRule(params, lr, self.beta_1, self.beta_2, self.epsilon, mutable=mutable,
                            weight_decay=float(self.alpha) if self.solver == "adamw" else 0.0)
        return RMSpropRule(params, lr, self.epsilon)

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` and ``y``.

        Parameters
        ----------
        X : array-like or scipy sparse matrix of shape (n_samples, n_features)
            Training data (NumPy, a DataFrame, a sparse matrix, or, under array API
            dispatch, an array of any supported namespace).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (numbers or strings) or a multilabel indicator matrix for
            the classifier; real targets for the regressor.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Per-row weights, with scikit-learn's meaning: each batch's loss is the
            weighted mean over its rows, the L2 term is divided by the sum of the
            batch's weights, and the ``early_stopping`` score is weighted.

        Returns
        -------
        self : object
            The fitted estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from xpnet.sklearn import MLPRegressor
        >>> X = np.linspace(-1, 1, 40).reshape(-1, 1)
        >>> w = np.r_[np.zeros(20), np.ones(20)]   # only the right half counts
        >>> reg = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0)
        >>> reg.fit(X, np.abs(X[:, 0]), sample_weight=w).n_iter_ > 0
        True
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, *, incremental: bool,
             classes: Any = None):
        """``fit`` (``incremental=False``) and ``partial_fit``: checks, then a solver."""
        self._check_params(incremental)
        first = not hasattr(self, "model_") or (not incremental and not self.warm_start)
        X, y = self._validate_xy(X, y, reset=first,
                                 method="partial_fit" if incremental else "fit")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        data, strata = self._prepare(X, y, sample_weight, first=first,
                                     incremental=incremental, classes=classes)
        if self.solver == "lbfgs":
            _solvers.fit_lbfgs(self, data)
        else:
            _solvers.fit_stochastic(self, data, strata, incremental)
        xp = self.model_.xp
        if not all(bool(xp.all(xp.isfinite(p))) for p in self.model_.params.values()):
            raise ValueError(NON_FINITE)
        return self

    def _prepare(self, X: Any, y: Any, sample_weight: Any, *, first: bool, incremental: bool,
                 classes: Any) -> tuple[Samples, Any]:
        """Targets, model and device data for a fit; on a bad ``y`` the estimator is unchanged."""
        before = dict(vars(self))
        try:
            self._set_targets(y, first=first, incremental=incremental, classes=classes)
            self._random_state = check_random_state(self.random_state)
            if first:
                self._record_fit_input(X)
                self._initialize(X)
            model = self.model_
            rows = Rows(X, model.backend, model.dtype_name, model.in_features)
            Y, strata = self._encode_targets(y)
            weights = (None if sample_weight is None
                       else Weights(sample_weight, model.backend, model.dtype_name))
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        return Samples(rows, Y, weights), strata

    # -- input checks ------------------------------------------------------------
    def _validate_xy(self, X: Any, y: Any, reset: bool, method: str) -> tuple[Any, Any]:
        """scikit-learn's checks of ``(X, y)``; a numeric ``y`` follows ``X`` under dispatch."""
        if not reset:  # continuing: the data must live where the model was fitted
            check_same_namespace(X, self, attribute="_fit_namespace_ref", method=method)
        classifier = is_classifier(self)
        X, y = validate_data(self, X, y, reset=reset, accept_sparse="csr", multi_output=True,
                             y_numeric=not classifier, dtype=float_dtypes(X))
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if classifier:
            check_classification_targets(y)
        if is_sparse(X):
            return X, y
        xp_X, dispatch, device = get_namespace_and_device(X)
        if dispatch and not (isinstance(y, np.ndarray) and y.dtype.kind in "OUS"):
            # scikit-learn's convention: numeric targets follow X's namespace and device.
            y = move_to(y, xp=xp_X, device=device)
        return X, y

    def _record_fit_input(self, X: Any) -> None:
        """Remember the namespace/device of the fit input for ``check_same_namespace``."""
        ref = X.data if is_sparse(X) else X  # a CSR matrix's values: a NumPy array
        self._fit_namespace_ref = array_api_compat.array_namespace(ref).zeros(
            (0,), dtype=ref.dtype, device=array_api_compat.device(ref))

    def _predict(self, X: Any, method: str) -> tuple[Any, Any]:
        """Validated ``X`` and the predictions of the output layer (``output_transform``)."""
        check_is_fitted(self)
        if not is_sparse(X):
            check_same_namespace(X, self, attribute="_fit_namespace_ref", method=method)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=float_dtypes(X))
        m = self.model_
        out = self._outputs(Rows(X, m.backend, m.dtype_name, None), split=True)
        return X, self._sk_loss().output_transform(out)

    def _outputs(self, rows: Rows, split: bool = False) -> Any:
        """Raw model outputs for every row, one forward pass per chunk (`Rows.chunks`)."""
        parts = [self.model_.forward(block) for _, block in rows.chunks(split)]
        return parts[0] if len(parts) == 1 else self.model_.xp.concat(parts, axis=0)

    def __sklearn_array_api_convert__(self, converter):
        """A moved copy for ``move_estimator_to``, without optimizer state or best weights."""
        new = clone(self)
        for key, value in vars(self).items():
            if key == "model_":
                moved = converter(next(iter(value.params.values())))
                value = copy.deepcopy(value)
                if not value.backend.owns(moved):
                    value.to(backend_of(moved))
            elif key == "_optimizer":
                value = None
            elif key == "_best":
                value = copy.copy(value)
                if value is not None:
                    value.params = None
            elif hasattr(value, "__dlpack__") or isinstance(value, np.ndarray):
                if not (isinstance(value, np.ndarray) and value.dtype.kind in "OUS"):
                    value = converter(value)
            else:
                value = copy.deepcopy(value)
            setattr(new, key, value)
        return new

    # -- scikit-learn's layout of the parameters -------------------------------
    coefs_ = _layer_list(".W", "coefs_", "Weight matrices (n_in, n_out) on the model's "
                         "backend; assignable (cast, moved).")
    intercepts_ = _layer_list(".b", "intercepts_", "Bias vectors (n_out,) on the model's "
                              "backend; assignable like `coefs_`.")

    @property
    def n_layers_(self) -> int:
        """Number of layers including input and output (as in scikit-learn)."""
        return len(self.coefs_) + 1

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.input_tags.sparse = True
        return tags
