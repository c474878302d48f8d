"""``xpnet.sklearn`` trains as ``sklearn.neural_network`` does, number for number.

From identical weights (scikit-learn's ``coefs_``/``intercepts_`` copied into xpnet),
float64 and ``shuffle=False``, the ``loss_curve_`` of SGD (every momentum and
learning-rate schedule) and Adam equals scikit-learn's to ``rtol=1e-10`` over 20
epochs, for every kind of target; L-BFGS reaches the same solution. From the same
``random_state`` the initial weights, batch order and early-stopping split are
scikit-learn's too, so whole runs match, on every backend. Sparse input gives the
dense results; dtypes follow the input. With ``sample_weight`` all of this holds
again (weighted loss, L2 term over the batch's weight sum, weighted validation
score), and bad weights get scikit-learn's errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
scipy_sparse = pytest.importorskip("scipy.sparse")

from sklearn import neural_network as sk  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_iris,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import sklearn as xs  # noqa: E402
from xpnet.sklearn import _data, _losses, _solvers  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _problem(kind: str):
    """Small float64 problems of every target kind: (estimator name, X, y, extra params)."""
    if kind in ("multiclass", "binary"):
        X, y = make_classification(n_samples=150, n_features=6, n_informative=4,
                                   n_classes=3 if kind == "multiclass" else 2, random_state=0)
        return "MLPClassifier", StandardScaler().fit_transform(X), y, {}
    if kind == "multilabel":
        X, Y = make_multilabel_classification(n_samples=150, n_features=6, n_classes=3,
                                              random_state=0)
        return "MLPClassifier", StandardScaler().fit_transform(X), Y, {}
    X, y = make_regression(n_samples=150, n_features=6, n_targets=2 if kind == "multioutput"
                           else 1, noise=5.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    if kind == "poisson":
        return "MLPRegressor", X, np.random.default_rng(0).poisson(np.exp(X[:, 0] / 2)), \
            {"loss": "poisson"}
    return "MLPRegressor", X, y / np.std(y), {}


KINDS = ["multiclass", "binary", "multilabel", "regression", "multioutput", "poisson"]
SGD_RULES = {
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.05),
    "sgd-momentum": dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False),
    "sgd-plain": dict(solver="sgd", learning_rate_init=0.1, momentum=0.0),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5,
                           power_t=0.3),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05,
                         tol=0.05, n_iter_no_change=2),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}


def _pair(name: str, **params):
    return getattr(sk, name)(**params), getattr(xs, name)(**params)


def _copy_weights(src, *dst):
    for est in dst:
        est.coefs_ = [np.array(w, copy=True) for w in src.coefs_]
        est.intercepts_ = [np.array(b, copy=True) for b in src.intercepts_]


def _from_same_weights(name, X, y, params, max_iter=20, sample_weight=None):
    """Fit scikit-learn and xpnet for ``max_iter`` epochs from the same (copied) weights."""
    base = dict(hidden_layer_sizes=(7, 5), activation="tanh", batch_size=40, shuffle=False,
                warm_start=True, max_iter=1, random_state=1, alpha=1e-3, tol=0.0,
                n_iter_no_change=np.inf)
    base.update(params)
    theirs, ours = _pair(name, **base)
    theirs.fit(X, y)
    ours.fit(X, y)  # builds the model (its own draw of the initial weights)
    rng = np.random.default_rng(3)
    theirs.coefs_ = [rng.normal(scale=0.5, size=w.shape) for w in theirs.coefs_]
    theirs.intercepts_ = [rng.normal(scale=0.1, size=b.shape) for b in theirs.intercepts_]
    _copy_weights(theirs, ours)
    for est in (theirs, ours):
        est.set_params(max_iter=max_iter)
        # warm start: a fresh optimizer from the copied weights
        est.fit(X, y, sample_weight=sample_weight)
    return theirs, ours


@pytest.mark.parametrize("rule", list(SGD_RULES))
@pytest.mark.parametrize("kind", KINDS)
def test_loss_curve_equals_sklearn_from_copied_weights(kind, rule):
    name, X, y, extra = _problem(kind)
    params = {**SGD_RULES[rule], **extra}
    if kind == "poisson" and rule == "sgd-invscaling":
        params["learning_rate_init"] = 0.1  # 0.5 diverges on the Poisson problem
    theirs, ours = _from_same_weights(name, X, y, params)
    n = len(theirs.loss_curve_)
    assert n == len(ours.loss_curve_) == 21 or rule == "sgd-adaptive"
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate,
                                                          rel=1e-12)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_adaptive_rule_really_lowers_the_learning_rate():
    name, X, y, _ = _problem("multiclass")
    theirs, ours = _from_same_weights(name, X, y, SGD_RULES["sgd-adaptive"])
    assert ours._optimizer.learning_rate < 0.05 / 4
    assert ours._optimizer.learning_rate == theirs._optimizer.learning_rate


@pytest.mark.parametrize("kind", KINDS)
def test_lbfgs_reaches_sklearns_solution(kind):
    """Converged from the same weights: the same minimum.

    The two runs take the same path until rounding differences steer the line searches
    apart, so they are compared at the solution: the loss, and the predictions. Where
    they part depends on the BLAS kernels of the CPU. Both stop where L-BFGS-B's loss
    no longer falls by more than its ``ftol`` relative to the loss (scikit-learn passes
    only ``gtol=tol``, which is not reached), so the stops differ by a few iterations,
    the losses in the 6th digit and the predictions in the 4th: the regression case with
    OpenBLAS's Haswell or Zen kernels stops after 172 and 180 iterations, 3.5e-6 apart
    in relative loss and 4.8e-4 in the predictions (targets of standard deviation 1).
    """
    name, X, y, extra = _problem(kind)
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), alpha=1.0, tol=1e-8, **extra)
    theirs, ours = _from_same_weights(name, X, y, params, max_iter=3000)
    assert theirs.n_iter_ < 3000
    assert abs(ours.n_iter_ - theirs.n_iter_) <= max(5, theirs.n_iter_ // 10)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-5)
    if name == "MLPClassifier":
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-4)
    else:
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------
# same random_state, same run
# ---------------------------------------------------------------------------
def _initial_weights(est, X, y):
    """The weights before any step (a learning rate too small to move them)."""
    est.set_params(max_iter=1, solver="sgd", momentum=0.0, learning_rate_init=1e-300)
    est.fit(X, y)
    return [np.array(w, copy=True) for w in est.coefs_ + est.intercepts_]


@pytest.mark.parametrize("activation", ["relu", "logistic"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "regression"])
def test_initial_weights_are_sklearns(kind, activation):
    name, X, y, _ = _problem(kind)
    theirs, ours = _pair(name, hidden_layer_sizes=(9, 4), activation=activation,
                         random_state=5)
    for a, b in zip(_initial_weights(ours, X, y), _initial_weights(theirs, X, y), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multioutput"])
def test_same_random_state_same_run_with_shuffling_and_early_stopping(kind, solver):
    name, X, y, _ = _problem(kind)
    params = dict(hidden_layer_sizes=(8,), solver=solver, batch_size=32, max_iter=30,
                  learning_rate_init=0.02, early_stopping=True, random_state=7,
                  n_iter_no_change=5)
    theirs, ours = _pair(name, **params)
    theirs.fit(X, y)
    ours.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_,
                                                        rel=1e-10)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9, atol=1e-12)


def test_same_run_on_every_backend(backend):
    """Float64 on NumPy, array_api_strict, torch, CuPy: scikit-learn's loss curve."""
    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=(6,), batch_size=50, max_iter=8, random_state=0,
                  learning_rate_init=0.01)
    for solver in ("sgd", "adam"):
        theirs = sk.MLPClassifier(solver=solver, **params).fit(X, y)
        ours = xs.MLPClassifier(solver=solver, backend=backend, **params).fit(X, y)
        assert ours.model_.backend.name == backend
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=1e-9, atol=1e-12)


def test_diverging_run_with_early_stopping_as_sklearn():
    """A run that blows up keeps going, scores NaN, and ends with its best finite weights."""
    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=20, activation="identity", solver="sgd",
                  learning_rate_init=1.0, max_iter=20, early_stopping=True, random_state=0)
    theirs, ours = _pair("MLPRegressor", **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs.fit(X, y)
        ours.fit(X, y)
    assert np.isnan(ours.validation_scores_[-1])
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-10)
    assert all(np.isfinite(w).all() for w in ours.coefs_)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-10)


# ---------------------------------------------------------------------------
# the objective's gradient (scikit-learn's private test_gradient, in xpnet's terms)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression",
                                  "poisson"])
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_objective_gradient_matches_finite_differences(kind, activation):
    name, X, y, extra = _problem(kind)
    est = getattr(xs, name)(hidden_layer_sizes=(5,), activation=activation, solver="lbfgs",
                            max_iter=1, alpha=0.1, random_state=1, **extra)
    est.fit(X[:20], y[:20])
    m = est.model_
    rows = _data.Rows(X[:20], m.backend, "float64", m.in_features)
    Y, _ = est._encode_targets(y[:20])
    value, grads = _solvers.loss_and_grads(est, rows.X, Y)
    eps = 1e-6
    for key, p in m.params.items():
        flat = p.reshape(-1)
        for i in range(0, flat.size, max(1, flat.size // 7)):
            old = flat[i]
            flat[i] = old + eps
            up = float(_solvers.loss_and_grads(est, rows.X, Y)[0])
            flat[i] = old - eps
            down = float(_solvers.loss_and_grads(est, rows.X, Y)[0])
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert float(grads[key].reshape(-1)[i]) == pytest.approx(numeric, rel=1e-5,
                                                                       abs=1e-8), key


@pytest.mark.parametrize("loss, target", [
    (_losses.SoftmaxLogLoss(), np.array([0, 2, 1, 2])),
    (_losses.LogisticLogLoss(), np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])),
    (_losses.HalfSquaredError(), np.array([[0.3], [-1.0], [2.0], [0.0]])),
    (_losses.HalfPoissonDeviance(), np.array([[0.0], [1.0], [3.0], [2.0]])),
])
def test_losses_gradient_checks(loss, target):
    k = 3 if target.ndim == 1 else target.shape[1]
    out = np.random.default_rng(0).normal(size=(4, k))
    errors = xn.testing.check_gradients(loss, out, target, backend="numpy")
    assert max(errors.values()) < 1e-6


# ---------------------------------------------------------------------------
# sparse input, dtypes, assignable weights
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_gives_the_dense_results(solver, fmt, monkeypatch):
    monkeypatch.setattr(_data, "CHUNK", 64)  # several chunks per full pass
    X, y = make_classification(n_samples=300, n_features=30, random_state=0)
    X[X < 0.5] = 0.0
    Xs = scipy_sparse.csr_matrix(X).asformat(fmt)
    params = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=15, random_state=0,
                  batch_size=64)
    dense = xs.MLPClassifier(**params).fit(X, y)
    sparse = xs.MLPClassifier(**params).fit(Xs, y)
    if solver == "lbfgs":
        assert sparse.loss_ == pytest.approx(dense.loss_, rel=1e-9)
    else:
        np.testing.assert_array_equal(sparse.loss_curve_, dense.loss_curve_)
    np.testing.assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-7)
    np.testing.assert_array_equal(sparse.predict(Xs), dense.predict(X))


@pytest.mark.parametrize("data, param, expected", [
    ("float32", None, "float32"),
    ("float64", None, "float64"),
    ("int64", None, "float64"),
    ("float64", "float32", "float32"),
    ("float32", "float64", "float64"),
])
def test_dtype_follows_the_input_unless_forced(data, param, expected):
    X, y = make_regression(n_samples=60, n_features=4, random_state=0)
    X = (X * 10).astype(data)
    reg = xs.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, dtype=param).fit(X, y)
    assert {str(w.dtype) for w in reg.coefs_ + reg.intercepts_} == {expected}
    assert str(reg.predict(X).dtype) == expected
    clf = xs.MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, dtype=param).fit(X, y > 0)
    assert str(clf.predict_proba(X).dtype) == expected


def test_assigned_weights_are_the_models():
    X, y = load_iris(return_X_y=True)
    clf = xs.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    new = [np.full((4, 4), 0.1), np.full((4, 3), -0.2)]
    clf.coefs_ = new
    clf.intercepts_ = [np.zeros(4, dtype=np.float32), [0.0, 1.0, 2.0]]
    assert clf.model_.params["0.W"] is clf.coefs_[0]
    np.testing.assert_array_equal(clf.coefs_[1], new[1])
    assert clf.intercepts_[0].dtype == np.float64  # cast to the model's dtype
    # every row has the same hidden units, so the output is the intercepts' softmax
    np.testing.assert_allclose(clf.predict_proba(X[:1])[0],
                               np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum())


@pytest.mark.parametrize("value, error, match", [
    ([np.zeros((4, 4))], ValueError, r"coefs_ must be a list of 2 arrays \(one per layer\)"),
    ([np.zeros((4, 4)), np.zeros((3, 4))], ValueError, r"coefs_\[1\] has shape \(3, 4\), "
                                                      r"expected \(4, 3\)"),
    ([np.zeros((4, 4)), np.full((4, 3), np.nan)], ValueError, "NaN"),
])
def test_assigned_weights_are_checked(value, error, match):
    X, y = load_iris(return_X_y=True)
    clf = xs.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    before = [np.array(w, copy=True) for w in clf.coefs_]
    with pytest.raises(error, match=match):
        clf.coefs_ = value
    for a, b in zip(before, clf.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_assigning_weights_before_fit_is_refused():
    with pytest.raises(AttributeError, match="only be assigned on a fitted estimator"):
        xs.MLPClassifier().coefs_ = [np.zeros((2, 2))]


def test_bad_targets_leave_the_estimator_as_it_was():
    X, y = make_regression(n_samples=30, n_features=3, random_state=0)
    reg = xs.MLPRegressor(loss="poisson", max_iter=2)
    with pytest.raises(ValueError, match=r"loss='poisson' needs y >= 0"):
        reg.fit(X, y)
    assert not hasattr(reg, "model_") and not hasattr(reg, "n_outputs_")
    clf = xs.MLPClassifier(solver="sgd")
    with pytest.raises(ValueError, match="has classes not in"):
        clf.partial_fit(X[:2], [1, 0], classes=[2])
    assert not hasattr(clf, "classes_")
    clf.partial_fit(X[:2], [1, 0], classes=[0, 1])  # a first call still
    assert clf.classes_.tolist() == [0, 1] and clf.n_outputs_ == 1


def test_binary_early_stopping_split_is_stratified_as_sklearn():
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    with pytest.raises(ValueError, match=r"Classes with too few members are: \['True'\]"):
        xs.MLPClassifier(early_stopping=True).fit(X, [0, 0, 0, 1])


def test_lbfgs_warns_and_counts_iterations_as_sklearn():
    X, y = load_iris(return_X_y=True)
    for cls in (sk.MLPClassifier, xs.MLPClassifier):
        with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
            est = cls(solver="lbfgs", max_iter=5, random_state=0).fit(X, y)
        assert est.n_iter_ == 5 and not hasattr(est, "loss_curve_")


# ---------------------------------------------------------------------------
# sample weights
# ---------------------------------------------------------------------------
def _weights(n: int, seed: int = 0) -> np.ndarray:
    """Non-uniform float weights with some zeros (every ninth row; no batch of 40 all zero)."""
    w = np.random.default_rng(seed).uniform(0.2, 3.0, size=n)
    w[::9] = 0.0
    return w


@pytest.mark.parametrize("rule", ["sgd-nesterov", "sgd-invscaling", "adam"])
@pytest.mark.parametrize("kind", KINDS)
def test_weighted_loss_curve_equals_sklearn_from_copied_weights(kind, rule):
    name, X, y, extra = _problem(kind)
    params = {**SGD_RULES[rule], **extra}
    if kind == "poisson" and rule == "sgd-invscaling":
        params["learning_rate_init"] = 0.1
    w = _weights(len(X))
    theirs, ours = _from_same_weights(name, X, y, params, sample_weight=w)
    assert len(ours.loss_curve_) == len(theirs.loss_curve_) == 21
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # the weights matter: the same run without them ends elsewhere
    _, plain = _from_same_weights(name, X, y, params)
    assert abs(plain.loss_curve_[-1] - ours.loss_curve_[-1]) > 1e-4 * abs(ours.loss_curve_[-1])


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_lbfgs_reaches_sklearns_solution(kind):
    """From the same weights, the same iterations to the same minimum.

    ``alpha=3`` makes the minimum well conditioned: with ``alpha=1`` the weighted
    squared-error problem has a flat valley where the two runs, parted by rounding,
    stop at points 1e-4 apart in loss (the objectives agree to 1e-12, below).
    """
    name, X, y, extra = _problem(kind)
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), alpha=3.0, tol=1e-8, **extra)
    theirs, ours = _from_same_weights(name, X, y, params, max_iter=3000,
                                      sample_weight=_weights(len(X)))
    assert ours.n_iter_ == theirs.n_iter_ < 3000
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    out = "predict_proba" if name == "MLPClassifier" else "predict"
    np.testing.assert_allclose(getattr(ours, out)(X), getattr(theirs, out)(X), rtol=1e-6,
                               atol=1e-8)


def _sklearn_objective(est, X, Y, w, theta):
    """scikit-learn's private L-BFGS objective (value, flat gradient) at ``theta``."""
    units = [X.shape[1], *[c.shape[1] for c in est.coefs_]]
    activations = [X] + [None] * (len(units) - 1)
    deltas = [None] * (len(units) - 1)
    coef_grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:], strict=True)]
    intercept_grads = [np.empty(b) for b in units[1:]]
    return est._loss_grad_lbfgs(theta.copy(), X, Y, w, activations, deltas, coef_grads,
                                intercept_grads)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_weighted_objective_is_sklearns(kind, sparse, monkeypatch):
    """The weighted loss plus L2 term, and its gradient, at random points: to 1e-12."""
    monkeypatch.setattr(_data, "CHUNK", 64)  # sparse rows: three chunks
    name, X, y, extra = _problem(kind)
    params = dict(solver="lbfgs", hidden_layer_sizes=(5,), activation="tanh", alpha=0.3,
                  max_iter=1, random_state=0, **extra)
    w = _weights(len(X))
    theirs, ours = _pair(name, **params)
    Xin = scipy_sparse.csr_matrix(X) if sparse else X
    theirs.fit(Xin, y, sample_weight=w)
    ours.fit(Xin, y, sample_weight=w)
    m = ours.model_
    Y, _ = ours._encode_targets(y)
    data = _data.Samples(_data.Rows(Xin, m.backend, "float64", m.in_features), Y,
                         _data.Weights(w, m.backend, "float64"))
    Y_sk = (theirs._label_binarizer.transform(y) if name == "MLPClassifier"
            else y.reshape(len(y), -1))
    layout = _solvers._layout(m.params)
    rng = np.random.default_rng(0)
    for _ in range(3):
        theta = rng.normal(scale=0.5, size=layout[-1][2])
        for k, lo, hi, shape in layout:
            m.params[k] = theta[lo:hi].reshape(shape).copy()
        value, grads = _solvers._full_loss_grad(ours, data)
        grad = np.concatenate([grads[k].ravel() for k, *_ in layout])
        want_value, want_grad = _sklearn_objective(theirs, Xin, Y_sk, w, theta)
        assert float(value) == pytest.approx(want_value, rel=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "multioutput"])
def test_weighted_early_stopping_run_as_sklearn(kind, solver):
    """The same split of rows and weights; the validation score (accuracy, R^2) weighted."""
    name, X, y, _ = _problem(kind)
    params = dict(hidden_layer_sizes=(8,), solver=solver, batch_size=32, max_iter=30,
                  learning_rate_init=0.02, early_stopping=True, random_state=7,
                  n_iter_no_change=5)
    w = _weights(len(X), seed=1)
    theirs, ours = _pair(name, **params)
    theirs.fit(X, y, sample_weight=w)
    ours.fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], rtol=1e-9, atol=1e-12)
    # the weighted score is not the plain one
    plain = _pair(name, **params)[1].fit(X, y)
    assert plain.validation_scores_[:3] != ours.validation_scores_[:3]


@pytest.mark.parametrize("kind, solver", [("multiclass", "sgd"), ("regression", "adam"),
                                          ("binary", "adam")])
def test_weighted_partial_fit_as_sklearn(kind, solver):
    name, X, y, _ = _problem(kind)
    w = _weights(len(X), seed=2)
    theirs, ours = _pair(name, hidden_layer_sizes=(8,), solver=solver, batch_size=32,
                         learning_rate_init=0.05, random_state=3)
    extra = {"classes": np.unique(y)} if name == "MLPClassifier" else {}
    for _ in range(6):
        for est in (theirs, ours):
            est.partial_fit(X, y, sample_weight=w, **extra)
    assert ours.n_iter_ == theirs.n_iter_ == 1 and ours.t_ == theirs.t_ == 6 * len(X)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("name, solver", [("MLPClassifier", "adam"), ("MLPRegressor", "sgd"),
                                          ("MLPClassifier", "lbfgs")])
def test_integer_weights_are_repeated_rows(name, solver):
    """With one batch per epoch (scikit-learn's condition too), ``w`` equals ``w`` copies.

    Batches of several rows cut the repeated data elsewhere, so then neither library
    gives the same run.
    """
    kind = "multiclass" if name == "MLPClassifier" else "regression"
    _, X, y, _ = _problem(kind)
    X, y = X[:60], y[:60]
    w = np.random.default_rng(4).integers(0, 4, size=60)
    assert w.sum() <= 200 and (w == 0).any()  # one batch ("auto" is min(200, n)) both ways
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w, axis=0)
    params = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=25, random_state=0,
                  learning_rate_init=0.01, alpha=1e-2, tol=0.0, n_iter_no_change=np.inf)
    for lib in (sk, xs):
        weighted = getattr(lib, name)(**params).fit(X, y, sample_weight=w)
        repeated = getattr(lib, name)(**params).fit(Xr, yr)
        if solver == "lbfgs":
            assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-6)
        else:
            np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)
        out = "predict_proba" if name == "MLPClassifier" else "predict"
        np.testing.assert_allclose(getattr(weighted, out)(X), getattr(repeated, out)(X),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.ones(149), r"sample_weight.shape == \(149,\), expected \(150,\)!"),
    (np.ones((150, 1)), "Sample weights must be 1D array or scalar, got 2D array"),
    (np.r_[np.nan, np.ones(149)], "Input sample_weight contains NaN"),
    (np.r_[np.inf, np.ones(149)], "Input sample_weight contains infinity"),
    (np.zeros(150), "Sample weights must contain at least one non-zero number"),
    (["a"] * 150, "could not convert string to float"),
])
def test_bad_sample_weight_gets_sklearns_error(bad, match):
    name, X, y, _ = _problem("regression")
    messages = []
    for est in _pair(name, max_iter=2):
        with pytest.raises(ValueError, match=match) as info:
            est.fit(X, y, sample_weight=bad)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert not hasattr(est, "model_")  # refused before any work
    partial = xs.MLPRegressor(max_iter=2).fit(X, y)
    before = [np.array(c, copy=True) for c in partial.coefs_]
    with pytest.raises(ValueError, match=match):
        partial.partial_fit(X, y, sample_weight=bad)
    for a, b in zip(before, partial.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_scalar_and_negative_weights_as_sklearn():
    """scikit-learn takes a scalar weight and does not refuse negative ones; neither does xpnet."""
    name, X, y, _ = _problem("regression")
    w = _weights(len(X))
    w[5::11] = -0.5
    for sw in (2.5, w):
        theirs, ours = _from_same_weights(name, X, y, SGD_RULES["sgd-plain"], sample_weight=sw)
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)


def test_batch_whose_weights_sum_to_zero_raises_as_sklearn():
    """scikit-learn's ``np.average`` raises in that batch's step; xpnet before the epoch."""
    name, X, y, _ = _problem("regression")
    w = np.ones(len(X))
    w[40:80] = 0.0  # the second batch of 40
    for est in _pair(name, batch_size=40, shuffle=False, max_iter=3):
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero, can't be normalized"):
            est.fit(X, y, sample_weight=w)
    assert est.loss_curve_ == [] and est.t_ == 0  # xpnet: not a step taken
    with pytest.raises(ZeroDivisionError, match=r"batch 1 \(rows 40 to 79"):
        est.fit(X, y, sample_weight=w)


def test_validation_weights_all_zero_raise_as_sklearn():
    """Early stopping: held-out rows of zero weight leave the weighted score undefined."""
    from sklearn.model_selection import train_test_split

    name, X, y, _ = _problem("regression")
    rs = np.random.RandomState(0)  # scikit-learn's draws: the initial weights, then the split
    for fan_in, fan_out in [(6, 5), (5, 1)]:
        rs.uniform(size=(fan_in, fan_out))
        rs.uniform(size=fan_out)
    _, val = train_test_split(np.arange(len(X)), random_state=rs, test_size=0.1)
    w = np.ones(len(X))
    w[val] = 0.0
    for est in _pair(name, hidden_layer_sizes=(5,), early_stopping=True, random_state=0,
                     max_iter=3):
        with pytest.raises(ValueError, match="Sample weights must contain at least one "
                                             "non-zero number"):
            est.fit(X, y, sample_weight=w)
    assert est.loss_curve_ == []  # xpnet refuses before the first epoch
    w[val[0]] = 1.0
    est.fit(X, y, sample_weight=w)  # one held-out row of weight: a defined score
    assert len(est.validation_scores_) == 3


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_with_weights_gives_the_dense_results(solver, monkeypatch):
    monkeypatch.setattr(_data, "CHUNK", 64)  # several chunks per full pass
    X, y = make_classification(n_samples=300, n_features=30, random_state=0)
    X[X < 0.5] = 0.0
    Xs = scipy_sparse.csr_matrix(X)
    w = _weights(300, seed=5)
    params = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=15, random_state=0,
                  batch_size=64, early_stopping=solver != "lbfgs")
    dense = xs.MLPClassifier(**params).fit(X, y, sample_weight=w)
    sparse = xs.MLPClassifier(**params).fit(Xs, y, sample_weight=w)
    theirs = sk.MLPClassifier(**params).fit(Xs, y, sample_weight=w)
    if solver == "lbfgs":
        assert sparse.loss_ == pytest.approx(dense.loss_, rel=1e-9)
        assert sparse.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    else:
        np.testing.assert_array_equal(sparse.loss_curve_, dense.loss_curve_)
        np.testing.assert_array_equal(sparse.validation_scores_, dense.validation_scores_)
        np.testing.assert_allclose(sparse.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-7)


def test_weighted_run_on_every_backend(backend):
    """Float64 on NumPy, array_api_strict, torch, CuPy: scikit-learn's weighted run."""
    X, y = load_iris(return_X_y=True)
    w = _weights(len(X), seed=6)
    params = dict(hidden_layer_sizes=(6,), batch_size=50, max_iter=8, random_state=0,
                  learning_rate_init=0.01, early_stopping=True, validation_fraction=0.2)
    for solver in ("sgd", "adam", "lbfgs"):
        theirs = sk.MLPClassifier(solver=solver, **params).fit(X, y, sample_weight=w)
        ours = xs.MLPClassifier(solver=solver, backend=backend, **params)
        ours.fit(X, y, sample_weight=w)
        assert ours.model_.backend.name == backend
        if solver == "lbfgs":
            assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
        else:
            np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
            np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                                       rtol=1e-10)
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                                   rtol=1e-8, atol=1e-12)
