"""Tests for ``xpnet.sklearn``: scikit-learn's estimator checks, Pipeline/GridSearchCV,
Array API dispatch (array_api_strict, torch CPU, CuPy where a GPU is usable) and a
side-by-side accuracy check against ``sklearn.neural_network.MLPClassifier``.

Timings are in docs/sklearn.md, not here.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._array_api import move_estimator_to  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Checks that cannot pass, each with its reason (also listed in docs/sklearn.md): none.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


@pytest.fixture(autouse=True)
def _scipy_array_api(monkeypatch):
    """scikit-learn refuses array_api_dispatch=True unless SCIPY_ARRAY_API=1."""
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """Tiny torch matmuls spin OpenMP threads on a shared CPU (20 ms instead of 10 us)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n=300, seed=0, labels=None):
    X, y = make_blobs(n_samples=n, centers=3, n_features=5, random_state=seed)
    X = StandardScaler().fit_transform(X).astype("float32")
    if labels is not None:
        y = np.asarray(labels)[y]
    return X, y


def _quick(cls=MLPClassifier, **kw):
    params = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=40,
                  random_state=0)
    params.update(kw)
    return cls(**params)


# ---------------------------------------------------------------------------
# scikit-learn's own estimator checks
# ---------------------------------------------------------------------------
@parametrize_with_checks(
    [MLPClassifier(max_iter=60), MLPRegressor(max_iter=100)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}),
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_import_xpnet_does_not_import_sklearn():
    code = ("import sys, xpnet; assert 'sklearn' not in sys.modules; "
            "import xpnet.sklearn; assert 'sklearn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# behaviour
# ---------------------------------------------------------------------------
def test_fit_predict_string_labels_and_attributes():
    X, y = _blobs(labels=["ant", "bee", "cat"])
    clf = _quick().fit(X, y)
    assert clf.classes_.tolist() == ["ant", "bee", "cat"]
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and set(pred) <= {"ant", "bee", "cat"}
    assert clf.score(X, y) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-5)
    assert clf.n_features_in_ == 5 and clf.n_outputs_ == 3
    assert isinstance(clf.model_, xn.Sequential)
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None
    assert clf.t_ == 300 * clf.n_iter_
    assert [c.shape for c in clf.coefs_] == [(5, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (3,)] and clf.n_layers_ == 3


def _initial(cls, X, y, **kw):
    """The estimator's initial weights: the same random_state, stopped before any step."""
    est = _quick(cls, **kw)
    est.set_params(max_iter=1, learning_rate_init=1e-300, solver="sgd", momentum=0.0)
    return [np.array(w, copy=True) for w in est.fit(X, y).coefs_]


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_loss_curve_holds_the_l2_term_of_the_weights(cls):
    """One full-batch epoch: loss_curve_[0] is the initial loss plus alpha / (2 n) ||W||^2."""
    X, y = _blobs()
    X = X.astype(np.float64)
    y = y if cls is MLPClassifier else X[:, 0]
    kw = dict(max_iter=1, batch_size=300, shuffle=False)
    plain = _quick(cls, alpha=0.0, **kw).fit(X, y).loss_curve_[0]
    ridge = _quick(cls, alpha=3.0, **kw).fit(X, y).loss_curve_[0]
    w0 = _initial(cls, X, y, **kw)
    expected = 3.0 / (2 * 300) * sum(float(np.sum(w * w)) for w in w0)
    assert ridge - plain == pytest.approx(expected, rel=1e-10)
    assert expected > 0.01  # the term is not negligible here


def test_alpha_decays_weights_not_biases():
    """One full-batch SGD step: alpha adds alpha / n * W to the weights' gradient only."""
    X, y = _blobs()
    X = X.astype(np.float64)
    kw = dict(max_iter=1, batch_size=300, shuffle=False, solver="sgd", momentum=0.0,
              learning_rate_init=0.1)
    plain = _quick(alpha=0.0, **kw).fit(X, y)
    ridge = _quick(alpha=3.0, **kw).fit(X, y)
    w0 = _initial(MLPClassifier, X, y, **kw)
    for w_init, a, b in zip(w0, plain.coefs_, ridge.coefs_, strict=True):
        np.testing.assert_allclose(b - a, -0.1 * 3.0 / 300 * w_init, rtol=1e-9, atol=1e-15)
    for a, b in zip(plain.intercepts_, ridge.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_tol_stops_training_and_max_iter_warns():
    X, y = _blobs()
    clf = _quick(tol=10.0, n_iter_no_change=2, max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    # as scikit-learn: epoch 1 sets best_loss_, epochs 2-4 count 1..3 > n_iter_no_change
    assert clf.n_iter_ == 4
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    sk = SkMLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, tol=10.0,
                         n_iter_no_change=2, random_state=0).fit(X, y)
    assert sk.n_iter_ == clf.n_iter_
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        _quick(max_iter=2).fit(X, y)


def test_early_stopping_scores_and_best_weights():
    X, y = _blobs(n=400)
    clf = _quick(early_stopping=True, n_iter_no_change=3, max_iter=200).fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 200
    assert clf.best_validation_score_ == max(clf.validation_scores_) >= 0.95
    reg = _quick(MLPRegressor, early_stopping=True, n_iter_no_change=3, max_iter=200)
    reg.fit(X, X[:, 0] - X[:, 1])
    assert reg.best_validation_score_ == max(reg.validation_scores_) > 0.9
    with pytest.raises(ValueError, match="too small"):
        _quick(MLPRegressor, early_stopping=True, validation_fraction=0.01).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="validation"):
        _quick(early_stopping=True, validation_fraction=0.01).fit(X[:20], y[:20])


def test_early_stopping_puts_back_the_best_epoch():
    from sklearn.model_selection import train_test_split

    X, y = make_blobs(n_samples=400, centers=3, n_features=5, random_state=0, cluster_std=4.0)
    X = StandardScaler().fit_transform(X).astype("float32")
    clf = _quick(early_stopping=True, n_iter_no_change=3, max_iter=200, random_state=1).fit(X, y)
    # the held-out rows are scikit-learn's split drawn from random_state after the initial
    # weights (scikit-learn stratifies binary problems only)
    rs = np.random.RandomState(1)
    for fan_in, fan_out in [(5, 16), (16, 3)]:
        rs.uniform(size=fan_in * fan_out + fan_out)
    _, val = train_test_split(np.arange(400), test_size=0.1, random_state=rs)
    assert clf.validation_scores_[-1] < clf.best_validation_score_  # the last epoch was worse
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_, abs=1e-6)


def test_partial_fit_classes_and_unknown_labels():
    X, y = _blobs(labels=["a", "b", "c"])
    clf = _quick()
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for _ in range(3):
        clf.partial_fit(X[:150], y[:150], classes=["a", "b", "c", "d"])
    # as scikit-learn: n_iter_ counts the last call's epochs, t_ and loss_curve_ all of them
    assert clf.classes_.tolist() == ["a", "b", "c", "d"] and clf.n_iter_ == 1
    assert clf.t_ == 450 and clf.n_outputs_ == 4
    assert len(clf.loss_curve_) == 3 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X[:5], np.array(["a", "b", "z", "a", "b"]))
    with pytest.raises(ValueError, match="early_stopping"):
        _quick(early_stopping=True).partial_fit(X, y, classes=["a", "b", "c"])
    reg = _quick(MLPRegressor)
    for _ in range(2):
        reg.partial_fit(X, X[:, 0])
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 2
    assert not hasattr(_quick(solver="lbfgs"), "partial_fit")


def test_warm_start_continues():
    X, y = _blobs()
    clf = _quick(max_iter=5, warm_start=True).fit(X, y)
    w0 = np.array(clf.coefs_[0], copy=True)
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and not np.allclose(w0, clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, y % 2)


def test_random_state_reproducible_and_seed_maps():
    X, y = _blobs()
    a = _quick(random_state=3).fit(X, y).predict_proba(X)
    b = _quick(random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert _quick(random_state=3).fit(X, y).model_.seed == 3
    c = _quick(random_state=4).fit(X, y).predict_proba(X)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("solver", ["adam", "adamw", "sgd", "rmsprop", "lbfgs"])
def test_solvers_learn(solver):
    X, y = _blobs()
    lr = {"sgd": 0.1, "rmsprop": 0.003}.get(solver, 0.01)
    clf = _quick(solver=solver, learning_rate_init=lr, alpha=0.02, batch_size=50).fit(X, y)
    assert clf.score(X, y) > 0.95
    assert clf.loss_ < 0.3


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity", "gelu"])
def test_activations(activation):
    X, y = _blobs()
    assert _quick(activation=activation, max_iter=60).fit(X, y).score(X, y) > 0.9


def test_dropout_and_float64():
    X, y = _blobs()
    clf = _quick(dropout=0.2, dtype="float64", max_iter=60).fit(X, y)
    assert clf.predict_proba(X).dtype == np.float64 and clf.score(X, y) > 0.9


def test_multilabel_and_multioutput():
    X, Y = make_multilabel_classification(n_samples=200, n_features=10, n_classes=4,
                                          random_state=0)
    X = StandardScaler().fit_transform(X)
    clf = _quick(hidden_layer_sizes=(32,), max_iter=150).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.classes_.tolist() == [0, 1, 2, 3]
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    assert clf.predict_proba(X).shape == (200, 4)
    assert (pred == Y).mean() > 0.8
    reg = _quick(MLPRegressor, max_iter=200).fit(X, X[:, :2] * 2.0)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, X[:, :2] * 2.0) > 0.9


@pytest.mark.parametrize("bad, match", [
    ({"solver": "newton"}, "solver"),
    ({"learning_rate": "cosine"}, "learning_rate"),
    ({"solver": "lbfgs", "dropout": 0.5}, "dropout needs a stochastic solver"),
    ({"activation": "softplus"}, "activation"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes"),
    ({"alpha": -1.0}, "alpha"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate_init": 0.0}, "learning_rate_init"),
    ({"dtype": "float16"}, "dtype"),
    ({"dropout": 1.0}, "dropout"),
    ({"backend": "tpu"}, "tpu"),
])
def test_bad_parameters_raise_before_training(bad, match):
    X, y = _blobs(n=30)
    with pytest.raises(ValueError, match=match):
        _quick(**bad).fit(X, y)


@pytest.mark.parametrize("bad, error, match", [
    ({"alpha": np.inf}, ValueError, "alpha must be finite"),
    ({"tol": np.nan}, ValueError, "tol must be finite, got nan"),
    ({"tol": np.inf}, ValueError, "tol must be finite, got inf"),  # as scikit-learn
    ({"momentum": 1.5}, ValueError, "momentum must be <= 1.0"),  # 1.0 is allowed
    ({"power_t": -1.0}, ValueError, "power_t must be >= 0.0"),
    ({"max_fun": 0}, ValueError, "max_fun must be >= 1"),
    ({"verbose": -1}, ValueError, "verbose must be >= 0"),
    ({"validation_fraction": 0.0, "early_stopping": True}, ValueError,
     "validation_fraction must be > 0.0"),
    ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change must be >= 1"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be an int"),
    ({"hidden_layer_sizes": "wide"}, ValueError, "hidden_layer_sizes must be > 0"),
    ({"hidden_layer_sizes": None}, TypeError, "hidden_layer_sizes must be an int or a sequence"),
    ({"shuffle": 1}, TypeError, "shuffle must be a bool"),
    ({"backend": 3}, TypeError, "backend must be a string"),
])
def test_bad_parameters_named_by_the_package_validators(bad, error, match):
    X, y = _blobs(n=30)
    with pytest.raises(error, match=match):
        _quick(**bad).fit(X, y)


def test_unbounded_patience_as_scikit_learn():
    X, y = _blobs(n=60)
    # no epoch improves by tol=10, yet n_iter_no_change=inf never stops: all 7 epochs run
    assert _quick(n_iter_no_change=np.inf, tol=10.0, max_iter=7).fit(X, y).n_iter_ == 7
    assert _quick(n_iter_no_change=2, tol=10.0, max_iter=7).fit(X, y).n_iter_ == 4


@pytest.mark.parametrize("activation, layers", [
    ("logistic", ["Dense", "Sigmoid", "Dense"]),
    ("identity", ["Dense", "Dense"]),
    ("gelu", ["Dense", "GELU", "Dense"]),
])
def test_model_is_xpnet_mlp(activation, layers):
    X, y = _blobs(n=60)
    clf = _quick(activation=activation, max_iter=1, dropout=0.1, random_state=4).fit(X, y)
    name = {"logistic": "sigmoid"}.get(activation, activation)
    twin = xn.MLP([5, 16, 3], activation=name, dropout=0.1, init="glorot_uniform",
                  backend="numpy", seed=4)
    assert clf.model_.get_config() == twin.get_config()
    assert [c["class"] for c in twin.get_config()["layers"] if c["class"] != "Dropout"] == layers


def test_nonfinite_training_raises_value_error():
    X, y = _blobs(n=60)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="non-finite"):
        _quick(learning_rate_init=1e12, solver="sgd", momentum=0.0).fit(X * 1e18, y)


def test_verbose_prints_iterations(capsys):
    X, y = _blobs(n=60)
    _quick(max_iter=2, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


def test_pickle_round_trip():
    X, y = _blobs(labels=["a", "b", "c"])
    clf = _quick().fit(X, y)
    clf2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clf.predict_proba(X), clf2.predict_proba(X))
    clf.partial_fit(X, y)  # the optimizer state travelled too: the same step on both
    clf2.partial_fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), clf2.predict_proba(X))
    assert clf2.loss_curve_ == clf.loss_curve_


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])
def test_pickle_round_trip_under_dispatch(name):
    xp, device = _namespace(name)
    X, y = _blobs()
    Xa, ya = _to(xp, device, X), _to(xp, device, y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = _quick(max_iter=5).fit(Xa, ya)
        back = pickle.loads(pickle.dumps(clf))
        assert back.model_.backend.name == clf.model_.backend.name
        np.testing.assert_array_equal(xn.to_numpy(back.predict_proba(Xa)),
                                      xn.to_numpy(clf.predict_proba(Xa)))
        back.partial_fit(Xa, ya)  # parameters, optimizer and generator state travelled
        clf.partial_fit(Xa, ya)
        np.testing.assert_array_equal(xn.to_numpy(back.predict_proba(Xa)),
                                      xn.to_numpy(clf.predict_proba(Xa)))


def test_feature_names_in_from_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = _blobs()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = _quick().fit(df, y)
    assert clf.feature_names_in_.tolist() == list(df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X)


# ---------------------------------------------------------------------------
# Pipeline and GridSearchCV
# ---------------------------------------------------------------------------
def test_pipeline_and_grid_search():
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), _quick())
    assert pipe.fit(X, y).score(X, y) > 0.95
    grid = GridSearchCV(
        pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__alpha"}
    assert grid.best_score_ > 0.9 and grid.score(X, y) > 0.9
    reg = GridSearchCV(_quick(MLPRegressor), {"learning_rate_init": [0.003, 0.01]}, cv=3)
    assert reg.fit(X, X[:, 0] + X[:, 1]).best_score_ > 0.8


# ---------------------------------------------------------------------------
# Array API dispatch
# ---------------------------------------------------------------------------
def _namespace(name):
    if name == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")
        return xp, None
    if name == "torch":
        torch = pytest.importorskip("torch")
        return torch, "cpu"
    why = xn.backends.backend_status()["cupy"]
    if why is not None:
        pytest.skip(f"cupy: {why}")
    import cupy

    return cupy, None


def _to(xp, device, a):
    return xp.asarray(a) if device is None else xp.asarray(a, device=device)


def _ns_name(a):
    return type(a).__module__.split(".")[0]


@pytest.mark.parametrize("name", ["array_api_strict", "torch", "cupy"])
def test_array_api_dispatch_classifier(name):
    xp, device = _namespace(name)
    X, y = _blobs(n=300, seed=1)
    ref = _quick().fit(X, y)
    Xa, ya = _to(xp, device, X), _to(xp, device, y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = _quick().fit(Xa, ya)
        pred, proba = clf.predict(Xa), clf.predict_proba(Xa)
        score = clf.score(Xa, ya)
    assert clf.model_.backend.name == xn.backends.backend_of(Xa).name
    for arr in (clf.classes_, pred, proba):
        assert _ns_name(arr) == _ns_name(Xa)
    assert str(proba.device) == str(Xa.device)
    acc = float(xn.to_numpy(pred == ya).mean())
    assert acc == pytest.approx(ref.score(X, y), abs=0.02) and acc > 0.9
    assert score == pytest.approx(acc)
    # same seed, same batch order: the run matches NumPy's within float32 noise
    np.testing.assert_allclose(xn.to_numpy(proba), ref.predict_proba(X), atol=1e-3)
    # the fitted estimator refuses inputs of another namespace under dispatch
    with sklearn.config_context(array_api_dispatch=True):
        with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same"):
            clf.predict(X)
        clf.partial_fit(Xa, ya)
        with pytest.raises(ValueError, match=r"partial_fit\(\) must use the same namespace"):
            clf.partial_fit(X, y)


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])
def test_array_api_dispatch_strings_regressor_early_stopping(name):
    xp, device = _namespace(name)
    X, y = _blobs(n=300, seed=2)
    Xa = _to(xp, device, X)
    labels = np.array(["x", "y", "z"])[y]
    target = X[:, 0] - 0.5 * X[:, 1]
    with sklearn.config_context(array_api_dispatch=True):
        clf = _quick(early_stopping=True).fit(Xa, labels)
        pred = clf.predict(Xa)  # string labels can only be NumPy
        proba = clf.predict_proba(Xa)
        reg = _quick(MLPRegressor, max_iter=100).fit(Xa, _to(xp, device, target))
        out = reg.predict(Xa)
    assert isinstance(pred, np.ndarray) and (pred == labels).mean() > 0.9
    assert _ns_name(proba) == _ns_name(Xa) and clf.validation_scores_
    assert _ns_name(out) == _ns_name(Xa) and out.shape == (300,)
    assert 1 - np.mean((xn.to_numpy(out) - target) ** 2) / np.var(target) > 0.9


@pytest.mark.parametrize("name", ["array_api_strict", "torch"])
def test_array_api_dispatch_sample_weight(name):
    """Weights in X's namespace train there, as scikit-learn's run on NumPy (float64)."""
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor

    xp, device = _namespace(name)
    X, _ = _blobs(n=200, seed=3)
    X = X.astype("float64")
    y = X[:, 0] - 0.5 * X[:, 1]
    w = np.random.default_rng(0).uniform(0.0, 2.0, size=200)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=32, max_iter=6,
                  learning_rate_init=0.05, early_stopping=True, random_state=0)
    theirs = SkMLPRegressor(**params).fit(X, y, sample_weight=w)
    Xa, ya, wa = (_to(xp, device, a) for a in (X, y, w))
    with sklearn.config_context(array_api_dispatch=True):
        ours = MLPRegressor(**params).fit(Xa, ya, sample_weight=wa)
        more = MLPRegressor(**params).set_params(early_stopping=False)
        more.partial_fit(Xa, ya, sample_weight=wa).partial_fit(Xa, ya, sample_weight=wa)
    assert ours.model_.backend.name == xn.backends.backend_of(Xa).name
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=1e-10)
    ref = SkMLPRegressor(**params).set_params(early_stopping=False)
    ref.partial_fit(X, y, sample_weight=w).partial_fit(X, y, sample_weight=w)
    np.testing.assert_allclose(more.loss_curve_, ref.loss_curve_, rtol=1e-10)


def test_array_api_dispatch_off_converts_to_numpy():
    torch = pytest.importorskip("torch")
    X, y = _blobs()
    clf = _quick().fit(torch.asarray(X), torch.asarray(y))
    assert clf.model_.backend.name == "numpy"
    assert isinstance(clf.predict(torch.asarray(X)), np.ndarray)
    assert isinstance(clf.classes_, np.ndarray)


def test_backend_parameter_keeps_numpy_outputs():
    pytest.importorskip("torch")
    X, y = _blobs()
    clf = _quick(backend="torch").fit(X, y)
    assert clf.model_.backend.name == "torch"
    proba = clf.predict_proba(X)
    assert isinstance(proba, np.ndarray)
    np.testing.assert_allclose(proba, _quick().fit(X, y).predict_proba(X), atol=1e-4)
    with sklearn.config_context(array_api_dispatch=True):
        assert isinstance(clf.predict(X), np.ndarray)


def test_move_estimator_to_and_pickle_on_torch():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as txp

    X, y = _blobs()
    clf = _quick().fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        moved = move_estimator_to(clf, txp, torch.device("cpu"))
        pred = moved.predict(torch.asarray(X))
        back = pickle.loads(pickle.dumps(moved))
        pred2 = back.predict(torch.asarray(X))
    assert moved.model_.backend.name == "torch" and clf.model_.backend.name == "numpy"
    assert isinstance(pred, torch.Tensor) and isinstance(pred2, torch.Tensor)
    np.testing.assert_array_equal(pred.numpy(), clf.predict(X))
    np.testing.assert_array_equal(pred2.numpy(), clf.predict(X))


# ---------------------------------------------------------------------------
# side by side with scikit-learn's MLPClassifier
# ---------------------------------------------------------------------------
def _digits():
    try:
        ds = xn.datasets.load("digits")
        return ds.x_train, ds.y_train, ds.x_test, ds.y_test
    except Exception:  # the bundled digits are not there: scikit-learn's copy
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split((X / 16).astype("float32"), y, test_size=360,
                                              random_state=0)
        return Xtr, ytr, Xte, yte


def test_accuracy_matches_sklearn_mlp_on_digits():
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from threadpoolctl import threadpool_limits

    Xtr, ytr, Xte, yte = _digits()
    params = dict(hidden_layer_sizes=(128,), solver="adam", batch_size=128, max_iter=15,
                  learning_rate_init=2e-3, n_iter_no_change=1000, random_state=0)
    # one BLAS thread: on a loaded shared CPU, spinning BLAS threads cost 10x the time
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
        theirs = SkMLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
    assert ours >= 0.95 and theirs >= 0.95
    assert abs(ours - theirs) < 0.03


def test_clone_keeps_params_only():
    clf = _quick(backend="numpy", dropout=0.1)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "model_")
