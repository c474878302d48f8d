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
