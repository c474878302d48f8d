"""A user-written layer trains and gradient-checks like a built-in one."""

import numpy as np
import pytest

import xpnet as xn


class Scale(xn.Layer):
    """y = x * s with a learned per-feature scale."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"s": rng.uniform((in_features,), 0.5, 1.5, backend, dtype)}

    def forward(self, params, x, *, train=False):
        return x * params["s"], x

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        return dy * params["s"], {"s": xp.sum(dy * cache, axis=0)}


def test_custom_layer_gradients(backend):
    report = check = xn.testing.check_gradients(
        Scale(), np.random.default_rng(0).normal(size=(5, 3)), backend=backend)
    assert set(check) == {"x", "s"} and max(report.values()) < 1e-6


@pytest.mark.slow_on_jax
def test_custom_layer_in_a_model_trains(backend, blobs):
    X, y = blobs
    m = xn.Sequential([xn.Dense(16), xn.ReLU(), Scale(), xn.Dense(3)], in_features=4,
                      backend=backend, seed=0)
    before = m.evaluate(X.astype(np.float32), y)["loss"]
    m.fit(X.astype(np.float32), y, epochs=15, batch_size=32, verbose=0, seed=0,
          optimizer=xn.Adam(lr=1e-2))
    after = m.evaluate(X.astype(np.float32), y)
    assert after["loss"] < 0.5 * before
    assert after["accuracy"] > 0.9
    xn.testing.check_gradients(
        xn.Sequential([xn.Dense(3), Scale(), xn.Tanh(), xn.Dense(2)], in_features=4,
                      backend=backend, dtype="float64"),
        X[:6], y[:6] % 2)
