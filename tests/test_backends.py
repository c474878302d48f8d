import subprocess
import sys

import numpy as np
import pytest

import xpnet as xn


def test_import_does_not_import_gpu_or_torch():
    code = ("import sys, xpnet; print('torch' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_available_backends_lists_numpy_and_reasons():
    avail = xn.available_backends()
    assert "numpy" in avail
    status = xn.backends.backend_status()
    assert set(status) == set(xn.backends.KNOWN_BACKENDS)
    for name, why in status.items():
        assert (why is None) == (name in avail)
        if why is not None:
            assert isinstance(why, str) and why


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'.*numpy"):
        xn.get_backend("tensorflow")
    with pytest.raises(ValueError, match="unknown backend"):
        xn.MLP([3, 2], backend="jax-gpu")


def test_cupy_without_gpu_is_refused_clearly():
    if xn.backends.backend_status()["cupy"] is None:
        pytest.skip("a GPU is usable here")
    with pytest.raises(ValueError, match="backend 'cupy' is not available"):
        xn.MLP([3, 2], backend="cupy")


def test_auto_picks_cupy_only_with_gpu():
    expected = "cupy" if "cupy" in xn.available_backends() else "numpy"
    assert xn.get_backend("auto").name == expected


def test_to_numpy_any_backend(backend):
    b = xn.get_backend(backend)
    a = b.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    h = xn.to_numpy(a)
    assert isinstance(h, np.ndarray)
    np.testing.assert_array_equal(h, np.arange(6, dtype=np.float32).reshape(2, 3))


def test_backend_of_rejects_mixed_namespaces():
    if "torch" not in xn.available_backends():
        pytest.skip("torch not installed")
    import torch

    with pytest.raises(TypeError, match="different libraries"):
        xn.backends.backend_of(np.zeros(2), torch.zeros(2))


def test_foreign_array_is_refused_with_advice(backend):
    if backend == "numpy":
        other = "torch" if "torch" in xn.available_backends() else "array_api_strict"
    else:
        other = backend
        backend = "numpy"
    m = xn.MLP([3, 2], backend=backend, seed=0)
    X = xn.get_backend(other).asarray(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=f"model lives on backend '{backend}'"):
        m.predict(X)


def test_models_pickle_on_every_backend(backend, blobs):
    import pickle

    X, y = blobs
    m = xn.MLP([4, 6, 3], backend=backend, seed=0)
    m.fit(X, y, epochs=1, batch_size=64, verbose=0)
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.backend == m.backend
    assert m2.optimizer.state["step"] == m.optimizer.state["step"]
    np.testing.assert_array_equal(xn.to_numpy(m2.predict(X)), xn.to_numpy(m.predict(X)))


@pytest.mark.parametrize("bad", ["cuda:x", "gpu"])
def test_cupy_device_strings_are_parsed_or_refused(bad):
    if xn.backends.backend_status()["cupy"] is not None:
        pytest.skip("needs a usable GPU to reach device parsing")
    with pytest.raises(ValueError, match="bad device"):
        xn.get_backend("cupy", bad)


def test_backend_given_as_a_namespace_module():
    import types

    import array_api_strict

    assert xn.get_backend(array_api_strict).name == "array_api_strict"
    m = xn.MLP([3, 2], backend=array_api_strict, seed=0)
    ref = xn.MLP([3, 2], backend="array_api_strict", seed=0)
    for k in m.params:
        assert xn.to_numpy(m.params[k]).tobytes() == xn.to_numpy(ref.params[k]).tobytes()
    # a namespace xpnet does not know is used as it is (here: a plain module that forwards
    # to NumPy's standard functions; arrays stay NumPy arrays, so it can be exercised here)
    import array_api_compat.numpy as cnp

    other = types.ModuleType("othernp")
    other.__dict__.update({k: getattr(cnp, k) for k in dir(cnp) if not k.startswith("__")})
    other.__array_api_version__ = cnp.__array_api_version__
    b = xn.get_backend(other)
    assert b.xp is other and b.name == "othernp"
    assert not b.is_host and not b.mutable
    # and it trains end to end on the generic path (pure updates, device-side guard),
    # giving NumPy's numbers
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    h = xn.MLP([4, 8, 2], backend=other, seed=0).fit(X, y, epochs=3, batch_size=32,
                                                     verbose=0, seed=1)
    h_ref = xn.MLP([4, 8, 2], backend="numpy", seed=0).fit(X, y, epochs=3, batch_size=32,
                                                           verbose=0, seed=1)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)


def test_non_namespace_backend_argument_is_refused():
    with pytest.raises(TypeError, match="backend must be a name such as 'numpy'"):
        xn.get_backend(3.5)
