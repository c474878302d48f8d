"""Real data: the MNIST test set (first 8,000 images train, last 2,000 test)."""

import numpy as np
import pytest

import xpnet as xn

pytestmark = pytest.mark.slow


@pytest.mark.slow_on_jax
def test_784_256_10_adam_reaches_95_percent(backend, mnist_split):
    (X, y), (Xt, yt) = mnist_split
    m = xn.MLP([784, 256, 10], backend=backend, dtype="float32", seed=0)
    m.fit(X, y, epochs=10, batch_size=128, optimizer=xn.Adam(lr=1e-3), seed=0, verbose=0)
    acc = m.evaluate(Xt, yt)["accuracy"]
    assert acc >= 0.95, acc


def _notebook_run(X, y, init, backend="numpy"):
    m = xn.MLP([784, 10, 10], init=init, backend=backend, dtype="float32", seed=0)
    m.fit(X, y, epochs=500, batch_size=None, optimizer=xn.SGD(lr=0.1), shuffle=False,
          verbose=0, seed=0)
    return m.evaluate(X, y)["accuracy"]


def test_notebook_net_learns_with_default_init(mnist_split):
    (X, y), _ = mnist_split
    acc = _notebook_run(X, y, init=None)
    assert acc >= 0.88, acc


def test_notebook_bug_scrambled_reshape_stays_near_chance(mnist_split):
    """The notebook's x.reshape(-1, n) mixes pixels of different images: nothing to learn."""
    (X, y), _ = mnist_split
    images = X.reshape(8000, 28, 28)
    scrambled = images.reshape(-1, 8000).T.copy()  # what the notebook fed its net, transposed
    m = xn.MLP([784, 10, 10], backend="numpy", seed=0)
    m.fit(scrambled, y, epochs=100, batch_size=None, optimizer=xn.SGD(lr=0.1), shuffle=False,
          verbose=0)
    acc = m.evaluate(scrambled, y)["accuracy"]
    assert acc < 0.2, acc
    assert np.max(np.bincount(y)) / len(y) < 0.12
