"""Finite-difference gradient checks in float64, for every layer, loss and a model."""

import numpy as np
import pytest

import xpnet as xn
from xpnet.testing import GradientCheckError, check_gradients

LAYERS = [
    xn.Dense(5),
    xn.Dense(4, init="glorot_uniform"),
    xn.Dense(3, bias=False),
    xn.ReLU(),
    xn.LeakyReLU(0.1),
    xn.Tanh(),
    xn.Sigmoid(),
    xn.GELU(),
    xn.Dropout(0.3),  # eval mode: identity
]


def _x(shape=(6, 4), seed=0):
    x = np.random.default_rng(seed).normal(size=shape)
    # keep ReLU-family inputs away from the kink where finite differences are undefined
    return np.where(np.abs(x) < 1e-3, 0.1, x)


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: repr(layer))
def test_layer_gradients(layer, backend):
    report = check_gradients(layer, _x(), backend=backend)
    assert "x" in report
    assert all(v < 1e-5 for v in report.values()), report


def test_dropout_backward_matches_its_mask(backend):
    b = xn.get_backend(backend)
    x = b.asarray(np.ones((50, 40)), dtype=b.xp.float64)
    layer = xn.Dropout(0.25)
    y, mask = layer.forward({}, x, train=True, rng=xn.RNG(0))
    m = xn.to_numpy(mask)
    assert set(np.unique(m)) <= {0.0, 1 / 0.75}
    assert 0.15 < np.mean(m == 0) < 0.35
    dy = b.asarray(np.full((50, 40), 2.0), dtype=b.xp.float64)
    dx, _ = layer.backward({}, mask, dy)
    np.testing.assert_allclose(xn.to_numpy(dx), 2.0 * m)
    np.testing.assert_allclose(xn.to_numpy(y), m)


LOSSES = [
    (xn.SoftmaxCrossEntropy(), lambda rng: rng.integers(0, 3, size=6)),
    (xn.SoftmaxCrossEntropy(), lambda rng: rng.dirichlet(np.ones(3), size=6)),
    (xn.MeanSquaredError(), lambda rng: rng.normal(size=(6, 3))),
    (xn.BinaryCrossEntropy(), lambda rng: rng.integers(0, 2, size=(6, 3)).astype(float)),
]


@pytest.mark.parametrize("loss,target", LOSSES, ids=["ce-labels", "ce-probs", "mse", "bce"])
def test_loss_gradients(loss, target, backend):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(6, 3))
    report = check_gradients(loss, z, target(rng), backend=backend)
    assert report["output"] < 1e-5


def _jitter_biases(m):
    # zero biases put ReLU exactly at its kink for dead rows; move them off it
    rng = np.random.default_rng(5)
    m.set_params({k: xn.to_numpy(v) + (rng.uniform(0.05, 0.2, size=v.shape) if k.endswith("b")
                                       else 0.0) for k, v in m.params.items()})


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu", "leaky_relu"])
def test_model_gradients(activation, backend):
    m = xn.MLP([4, 7, 5, 3], activation=activation, backend=backend, dtype="float64", seed=3)
    _jitter_biases(m)
    X = _x((8, 4), seed=2)
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    report = check_gradients(m, X, y)
    assert set(report) == set(m.params)


def test_model_with_dropout_and_regression_gradients(backend):
    m = xn.MLP([4, 6, 2], dropout=0.5, loss="mse", backend=backend, dtype="float64", seed=1)
    _jitter_biases(m)
    report = check_gradients(m, _x((5, 4)), np.random.default_rng(0).normal(size=(5, 2)))
    assert set(report) == set(m.params)


def test_gradient_check_catches_a_wrong_backward():
    class BadTanh(xn.Tanh):
        def backward(self, params, cache, dy):
            return dy * (1.0 - cache), {}  # wrong: should be 1 - y**2

    with pytest.raises(GradientCheckError, match="gradient of 'x' is wrong"):
        check_gradients(BadTanh(), _x(), backend="numpy")


def test_float32_model_is_refused():
    with pytest.raises(ValueError, match="float64"):
        check_gradients(xn.MLP([2, 2], backend="numpy"), np.ones((1, 2)), np.array([0]))


def test_cross_entropy_is_stable_for_huge_logits(backend):
    b = xn.get_backend(backend)
    z = b.asarray(np.array([[1e4, 0.0, -1e4], [0.0, 3e4, 0.0]]), dtype=b.xp.float32)
    y = b.asarray(np.array([0, 2]))
    loss, g = xn.SoftmaxCrossEntropy().value_and_grad(z, y)
    assert np.isfinite(float(loss)) and abs(float(loss) - 1.5e4) < 1.0
    gh = xn.to_numpy(g)
    assert np.all(np.isfinite(gh))
    np.testing.assert_allclose(gh.sum(axis=1), 0.0, atol=1e-6)
