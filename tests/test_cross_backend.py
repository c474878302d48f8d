"""Same seed, same experiment: identical initial parameters and agreeing losses everywhere."""

import numpy as np
import pytest

import xpnet as xn


def _reference(dtype, **kw):
    return xn.MLP([6, 16, 8, 3], backend="numpy", dtype=dtype, seed=7, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_initial_params_bitwise_identical(backend, dtype):
    ref = _reference(dtype)
    m = xn.MLP([6, 16, 8, 3], backend=backend, dtype=dtype, seed=7)
    assert list(m.params) == list(ref.params)
    for k in ref.params:
        a, b = xn.to_numpy(m.params[k]), ref.params[k]
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes(), k


def test_batch_order_identical(backend):
    b = xn.get_backend(backend)
    perm = xn.to_numpy(xn.RNG(3).permutation(100, b))
    np.testing.assert_array_equal(perm, xn.RNG(3).host_permutation(100))


def _losses_after_steps(backend, dtype, steps=20):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 6))
    y = rng.integers(0, 3, size=256)
    m = xn.MLP([6, 16, 8, 3], backend=backend, dtype=dtype, seed=7)
    opt = xn.Adam(lr=1e-2)
    state = opt.init(m.params)
    b = m.backend
    Xd = b.asarray(X, dtype=m.dtype)
    yd = b.asarray(y)
    losses = []
    for i in range(steps):
        sl = slice((i * 32) % 256, (i * 32) % 256 + 32)
        loss, grads = m.loss_and_grads(Xd[sl, ...], yd[sl])
        m.params, state = opt.update(m.params, grads, state)
        losses.append(float(loss))
    return np.array(losses), m


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 1e-4)])
def test_losses_agree_after_20_steps(backend, dtype, rtol):
    ref, mref = _losses_after_steps("numpy", dtype)
    got, m = _losses_after_steps(backend, dtype)
    np.testing.assert_allclose(got, ref, rtol=rtol)
    for k in mref.params:
        xn.testing.assert_close(xn.to_numpy(m.params[k]), mref.params[k],
                                rtol=rtol * 10, atol=rtol * 1e-2)


def test_fit_histories_agree(backend, blobs):
    X, y = blobs
    hs = []
    for name in ("numpy", backend):
        m = xn.MLP([4, 12, 3], backend=name, dtype="float64", seed=1, dropout=0.0)
        hs.append(m.fit(X, y, epochs=3, batch_size=50, seed=4, verbose=0).history["loss"])
    np.testing.assert_allclose(hs[1], hs[0], rtol=1e-10)


def test_to_moves_weights_exactly(backend):
    m = xn.MLP([5, 4, 2], backend="numpy", dtype="float32", seed=2)
    before = {k: v.copy() for k, v in m.params.items()}
    m.to(backend)
    assert m.backend.name == backend
    for k, v in m.params.items():
        assert xn.backends.backend_of(v).name == backend
        assert xn.to_numpy(v).tobytes() == before[k].tobytes()
    X = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    p = xn.to_numpy(m.predict_proba(X))
    m.to("numpy")
    np.testing.assert_allclose(p, m.predict_proba(X), rtol=1e-5)
