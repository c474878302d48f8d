"""JAX as a named backend: jax.numpy on the generic path, JAX arrays taken as they are,
float64 only in JAX's 64-bit mode. (Every test with the ``backend`` fixture runs on JAX
too; the checkpoint round trips and the cross-backend float64 agreement among them.)"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
ROOT = Path(__file__).resolve().parents[1]


def test_jax_is_listed_and_resolves_by_name_and_by_namespace():
    assert "jax" in xn.available_backends()
    assert xn.backends.backend_status()["jax"] is None
    for spec in ("jax", jnp, "jax:cpu", "JAX"):
        b = xn.get_backend(spec)
        assert b.name == "jax" and b.device == jax.devices()[0]
        assert b.is_host and not b.mutable and b.device_name == "cpu:0"
    with pytest.raises(xn.backends.BackendError, match="backend 'jax': no device 'tpu:3'"):
        xn.get_backend("jax", "tpu:3")


def test_jax_arrays_are_taken_without_a_device():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(64, 4)), dtype=jnp.float32)
    y = jnp.asarray((rng.normal(size=64) > 0).astype(np.int64))
    for backend in ("jax", jnp):
        m = xn.MLP([4, 8, 2], backend=backend, seed=0)
        h = m.fit(X, y, epochs=5, batch_size=16, optimizer=xn.Adam(lr=1e-2), verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0]
        loss, grads = m.loss_and_grads(X, y)
        assert all(isinstance(g, jax.Array) for g in grads.values())
        assert isinstance(m.predict(X), jax.Array) and m.evaluate(X, y)["accuracy"] > 0.5
    # arrays of another library are refused with the model's message
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="X is a torch array but the model lives on backend "
                                        "'jax'"):
        m.forward(torch.zeros((2, 4)))
    with pytest.raises(TypeError, match="X is a JAX array but the model lives on backend "
                                        "'numpy'"):
        xn.MLP([4, 2], backend="numpy").forward(X)


def test_jax_matches_numpy_in_float64_through_fit():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(120, 5)), rng.integers(0, 3, size=120)
    runs = {}
    for backend in ("numpy", "jax"):
        m = xn.MLP([5, 16, 3], backend=backend, dtype="float64", seed=3, dropout=0.1)
        h = m.fit(X, y, epochs=4, batch_size=32, seed=2, verbose=0,
                  optimizer=xn.AdamW(lr=1e-2, decay="weights"))
        runs[backend] = (h.history["loss"], m)
    np.testing.assert_allclose(runs["jax"][0], runs["numpy"][0], rtol=1e-10)
    for k, v in runs["numpy"][1].params.items():
        xn.testing.assert_close(xn.to_numpy(runs["jax"][1].params[k]), v, rtol=1e-10,
                                atol=1e-13)


def _run(code: str, x64: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_ENABLE_X64": x64, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


@pytest.mark.slow  # four fresh interpreters importing JAX
def test_float64_needs_jax_64_bit_mode_and_float32_works_without_it(tmp_path):
    code = """
        import numpy as np, xpnet as xn
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(32, 3)), rng.integers(0, 2, size=32)
        m = xn.MLP([3, 4, 2], backend="jax", seed=0)          # float32: fine, no warning
        m.fit(X, y, epochs=2, batch_size=8, verbose=0, sample_weight=np.ones(32),
              class_weight="balanced")
        print(str(m.params["0.W"].dtype), str(m.predict(X).dtype),
              float(xn.metrics.accuracy(m.backend.asarray(y), m.predict(X))) >= 0)
        path = xn.save(xn.MLP([3, 2], backend="numpy", dtype="float64"), "f64.safetensors")
        try:
            xn.load(path, backend="jax")  # the same refusal, not a CheckpointError
        except xn.backends.BackendError as exc:
            print(type(exc).__name__)
        try:
            xn.MLP([3, 2], backend="jax", dtype="float64")
        except xn.backends.BackendError as exc:
            print(exc)
    """
    off = _run(code, "0", tmp_path)
    assert off.returncode == 0, off.stderr
    first, load_error, message = off.stdout.strip().splitlines()
    assert first == "float32 int32 True" and load_error == "BackendError"
    assert message.startswith("backend 'jax' computes in float32 unless JAX's 64-bit mode is "
                              "on: set the environment variable JAX_ENABLE_X64=1")
    on = _run(code.replace('dtype="float64")\n', 'dtype="float64"); print("float64 ok")\n')
              .replace('backend="jax")  #', 'backend="jax"); print("loaded")  #'), "1", tmp_path)
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip().splitlines() == ["float32 int64 True", "loaded", "float64 ok"]
