"""A custom layer without ``backward`` trains on PyTorch and JAX through their autodiff,
and is refused on NumPy with a message that names the layer and what to write."""

import numpy as np
import pytest

import xpnet as xn


class Swish(xn.Layer):
    """``x * sigmoid(beta * x)`` with a learned ``beta`` per feature: forward only."""

    def init(self, in_features, rng, *, backend, dtype):
        return {"beta": backend.xp.ones((in_features,), dtype=dtype, device=backend.device)}

    def param_shapes(self, in_features):
        return {"beta": (in_features,)}

    def forward(self, params, x, *, train=False):
        xp = xn.backends.backend_of(x).xp
        return x / (1.0 + xp.exp(-params["beta"] * x)), None


class SwishWithBackward(Swish):
    """The same layer with its gradient written by hand: the oracle."""

    def forward(self, params, x, *, train=False):
        xp = xn.backends.backend_of(x).xp
        s = 1.0 / (1.0 + xp.exp(-params["beta"] * x))
        return x * s, (x, s)

    def backward(self, params, cache, dy):
        xp = xn.backends.backend_of(dy).xp
        x, s = cache
        ds = s * (1.0 - s)
        dx = dy * (s + x * ds * params["beta"])
        return dx, {"beta": xp.sum(dy * x * ds * x, axis=0)}


def _data(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    return X, (X[:, 0] + X[:, 1] > 0).astype("int64")


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_layer_without_backward_gets_autodiffs_gradients(name):
    """The gradients equal a hand-written backward's, parameters and input alike."""
    pytest.importorskip(name)
    X, y = _data()
    auto = xn.Sequential([xn.Dense(6), Swish(), xn.Dense(2)], in_features=5, backend=name,
                         seed=3, dtype="float64")
    hand = xn.Sequential([xn.Dense(6), SwishWithBackward(), xn.Dense(2)], in_features=5,
                         backend=name, seed=3, dtype="float64")
    Xb = X.astype("float64")
    la, ga, dxa = auto.loss_and_grads(Xb, y, input_grad=True)
    lh, gh, dxh = hand.loss_and_grads(Xb, y, input_grad=True)
    assert float(la) == pytest.approx(float(lh), rel=1e-12)
    assert sorted(ga) == ["0.W", "0.b", "1.beta", "2.W", "2.b"]
    for k in ga:
        np.testing.assert_allclose(xn.to_numpy(ga[k]), xn.to_numpy(gh[k]), rtol=1e-9,
                                   atol=1e-12, err_msg=k)
    np.testing.assert_allclose(xn.to_numpy(dxa), xn.to_numpy(dxh), rtol=1e-9, atol=1e-12)
    assert float(np.abs(xn.to_numpy(ga["1.beta"])).sum()) > 0


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_layer_without_backward_trains_and_passes_the_gradient_check(name):
    pytest.importorskip(name)
    X, y = _data(n=256)
    m = xn.Sequential([xn.Dense(8), Swish(), xn.Dense(2)], in_features=5, backend=name,
                      seed=0)
    beta0 = xn.to_numpy(m.params["1.beta"]).copy()
    h = m.fit(X, y, epochs=15, batch_size=32, optimizer=xn.Adam(lr=1e-2), verbose=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert m.evaluate(X, y)["accuracy"] > 0.9
    assert not np.array_equal(xn.to_numpy(m.params["1.beta"]), beta0)  # beta trained
    errors = xn.testing.check_gradients(Swish(), X[:6].astype("float64"), backend=name)
    assert max(errors.values()) < 1e-6


def test_numpy_refuses_a_layer_without_backward_naming_it():
    X, y = _data()
    m = xn.Sequential([xn.Dense(6), Swish(), xn.Dense(2)], in_features=5, backend="numpy")
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(NotImplementedError,
                       match=r"layer 1 \(Swish\) has no backward\(\), and numpy has no "
                             r"automatic differentiation.*backend='torch' or 'jax'"):
        m.fit(X, y, epochs=1, verbose=0)
    for k, v in m.params.items():
        np.testing.assert_array_equal(v, before[k])
    # prediction needs no backward
    assert m.predict(X).shape == (64,)
