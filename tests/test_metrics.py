import numpy as np
import pytest

import xpnet as xn


def test_metrics_on_every_backend(backend):
    b = xn.get_backend(backend)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=50)
    pred = np.where(rng.random(50) < 0.7, y, (y + 1) % 4)
    scores = rng.normal(size=(50, 4))
    scores[np.arange(50), pred] += 10  # top-1 equals pred
    yt, yp, sc = b.asarray(y), b.asarray(pred), b.asarray(scores, dtype=b.xp.float64)
    assert float(xn.metrics.accuracy(yt, yp)) == pytest.approx(np.mean(y == pred))
    assert float(xn.metrics.top_k_accuracy(yt, sc, k=1)) == pytest.approx(np.mean(y == pred))
    order = np.argsort(-scores, axis=1)
    top2 = np.mean([y[i] in order[i, :2] for i in range(50)])
    assert float(xn.metrics.top_k_accuracy(yt, sc, k=2)) == pytest.approx(top2)
    cm = xn.to_numpy(xn.metrics.confusion_matrix(yt, yp, 4))
    ref = np.zeros((4, 4), int)
    np.add.at(ref, (y, pred), 1)
    np.testing.assert_array_equal(cm, ref)
    proba = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    ll = float(xn.metrics.log_loss(yt, b.asarray(proba, dtype=b.xp.float64)))
    assert ll == pytest.approx(-np.mean(np.log(proba[np.arange(50), y])))


def test_metric_argument_errors():
    with pytest.raises(ValueError, match="shape"):
        xn.metrics.accuracy(np.zeros(3, int), np.zeros(4, int))
    with pytest.raises(ValueError, match="k must be in"):
        xn.metrics.top_k_accuracy(np.zeros(3, int), np.zeros((3, 2)), k=3)
