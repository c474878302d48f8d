"""BestWeights: the one best-value tracker of EarlyStopping and the scikit-learn estimators.

Each rule is checked against the code it replaced, written out here as the reference:
EarlyStopping's comparison (Keras' rule) and the estimators' copy of scikit-learn's
``_update_no_improvement_count`` (``tol`` / ``n_iter_no_change``).
"""

import math

import numpy as np
import pytest

import xpnet as xn
from xpnet.callbacks import _BestWeights as BestWeights


def _keras_reference(values, mode, min_delta, patience):
    """The former EarlyStopping.on_epoch_end: (improved?, best, wait, stop) per epoch."""
    best, wait, out = (math.inf if mode == "min" else -math.inf), 0, []
    for v in values:
        better = v < best - min_delta if mode == "min" else v > best + min_delta
        if better:
            best, wait = v, 0
        else:
            wait += 1
        out.append((better, best, wait, wait > patience))
    return out


def _sklearn_reference(values, mode, tol, n_iter_no_change):
    """The estimators' former _end_of_epoch (scikit-learn's rule), same tuple per epoch."""
    best, count, out = (math.inf if mode == "min" else -math.inf), 0, []
    for v in values:
        if mode == "max":
            count = count + 1 if v < best + tol else 0
            best = v if v > best else best
        else:
            count = count + 1 if v > best - tol else 0
            best = v if v < best else best
        out.append((count == 0, best, count, count > n_iter_no_change))
    return out


def _tracked(values, mode, min_delta, patience, rule):
    t = BestWeights(mode, min_delta=min_delta, patience=patience, rule=rule)
    out = []
    for v in values:
        improved = t.update(v)
        out.append((improved, t.best, t.wait, t.should_stop))
    return out


@pytest.mark.parametrize("rule, reference", [("keras", _keras_reference),
                                             ("sklearn", _sklearn_reference)])
@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("min_delta", [0.0, 0.05, 10.0])
def test_rules_match_the_code_they_replaced(rule, reference, mode, min_delta):
    rng = np.random.default_rng(0)
    # ties, plateaus, small and large steps, NaN and infinities, on a coarse grid
    values = [float(v) for v in np.round(rng.normal(size=300).cumsum() * 0.2, 1)]
    values[50:55] = [values[49]] * 5
    values[100:103] = [math.nan, math.inf, -math.inf]
    for patience in (0, 2, math.inf):
        got = _tracked(values, mode, min_delta, patience, rule)
        want = reference(values, mode, min_delta, patience)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same_best = g[1] == w[1] or (math.isnan(g[1]) and math.isnan(w[1]))
            assert (g[0], g[2], g[3]) == (w[0], w[2], w[3]) and same_best, (i, g, w)


def test_rules_differ_where_documented():
    # a tie: an improvement for scikit-learn (tol=0), not for Keras
    keras, sk = BestWeights("max"), BestWeights("max", rule="sklearn")
    assert [keras.update(v) for v in (0.5, 0.5)] == [True, False]
    assert [sk.update(v) for v in (0.5, 0.5)] == [True, True]
    # a step smaller than min_delta: scikit-learn still moves best (and the weights)
    keras = BestWeights("min", min_delta=0.1)
    sk = BestWeights("min", min_delta=0.1, rule="sklearn")
    for t in (keras, sk):
        t.update(1.0, {"w": np.array([1.0])})
        assert t.update(0.95, {"w": np.array([0.95])}) is False
    assert (keras.best, keras.params["w"][0]) == (1.0, 1.0)
    assert (sk.best, sk.params["w"][0]) == (0.95, 0.95)


def test_params_are_copied_on_their_own_namespace(backend):
    b = xn.get_backend(backend)
    params = {"0.W": b.asarray([[1.0, 2.0]], dtype=b.dtype("float32"))}
    t = BestWeights("min")
    t.update(1.0, params)
    params["0.W"] = params["0.W"] * 0  # the caller's arrays move on; the copy does not
    kept = t.params["0.W"]
    assert b.owns(kept)
    xn.testing.assert_close(kept, b.asarray([[1.0, 2.0]], dtype=b.dtype("float32")))
    assert t.update(2.0, params) is False and xn.to_numpy(t.params["0.W"]).tolist() == [[1, 2]]
    t.reset()
    assert (t.best, t.params, t.wait) == (math.inf, None, 0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode="auto"), ValueError, "mode must be one of"),
    (dict(rule="torch"), ValueError, "rule must be one of"),
    (dict(min_delta=-0.1), ValueError, "min_delta must be >= 0.0"),
    (dict(min_delta=math.nan), ValueError, "min_delta must be finite, got nan"),
    (dict(patience=-1), ValueError, "patience must be >= 0"),
    (dict(patience=1.5), TypeError, "patience must be an int"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BestWeights(**kwargs)


def test_early_stopping_keeps_weights_only_when_restoring(blobs):
    X, y = blobs
    for restore in (True, False):
        m = xn.MLP([4, 8, 3], backend="numpy", seed=0)
        es = xn.EarlyStopping(patience=0, min_delta=10.0, restore_best_weights=restore)
        m.fit(X, y, epochs=5, validation_split=0.25, callbacks=[es], verbose=0, seed=0)
        assert (es._tracker.params is not None) == restore
        assert (es.best_epoch, es.stopped_epoch, es.wait) == (0, 1, 1)
