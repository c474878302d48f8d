"""Shared fixtures: the ``backend`` fixture runs a test on every installed backend.

``XPNET_TEST_BACKENDS=numpy,torch`` narrows the set. Backends that are not
installed (or CuPy without a usable GPU) skip with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import xpnet as xn

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "cupy")

# JAX makes float32 arrays of float64 requests unless its 64-bit mode is on, and the
# suite checks float64 agreement across backends; the mode must be set before jax is
# imported (xpnet imports it lazily). tests/test_jax.py checks the mode off in a
# subprocess.
os.environ.setdefault("JAX_ENABLE_X64", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several test workers share the cores: one BLAS thread each avoids the
    # oversubscription that makes OpenBLAS's spinning threads 10x slower.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def _selected() -> tuple[str, ...]:
    env = os.environ.get("XPNET_TEST_BACKENDS")
    if not env:
        return ALL_BACKENDS
    names = tuple(n.strip() for n in env.split(",") if n.strip())
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"XPNET_TEST_BACKENDS has unknown names: {sorted(unknown)}")
    return names


SLOW_ON_JAX = ("slow on jax: JAX compiles each fit's step and runs everything else eagerly, "
               "several times NumPy's time on small MLPs (docs/backends.md); what this test "
               "checks runs on every other "
               "backend, and JAX's agreement with them is checked by test_cross_backend and "
               "test_jax; XPNET_TEST_SLOW_JAX=1 runs it")


@pytest.fixture(params=_selected())
def backend(request) -> str:
    """Name of a usable backend; skips with the reason when it cannot run here.

    Tests marked ``slow_on_jax`` (the few that train longest) skip on JAX, with the
    reason, unless ``XPNET_TEST_SLOW_JAX=1``.
    """
    name = request.param
    why = xn.backends.backend_status()[name]
    if why is not None:
        pytest.skip(f"backend {name} unavailable: {why}")
    if name == "jax" and request.node.get_closest_marker("slow_on_jax") \
            and os.environ.get("XPNET_TEST_SLOW_JAX") != "1":
        pytest.skip(SLOW_ON_JAX)
    return name


@pytest.fixture
def blobs():
    """A small, learnable 3-class problem as host arrays (float64 X, int64 y)."""
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0, 0.0, 1.0], [-2.0, 1.0, 0.0, 0.0], [0.0, -2.0, 1.5, 0.0]])
    y = rng.integers(0, 3, size=300)
    X = centers[y] + rng.normal(scale=0.7, size=(300, 4))
    return X, y.astype(np.int64)


@pytest.fixture(scope="session")
def mnist_split():
    """Real MNIST test set: first 8,000 images as train, last 2,000 as test."""
    images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    labels = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip(f"real MNIST files not found in {MNIST_DIR}")
    import gzip

    with gzip.open(images, "rb") as f:
        raw = f.read()
    X = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(10000, 784).astype(np.float32) / 255
    with gzip.open(labels, "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return (X[:8000], y[:8000]), (X[8000:], y[8000:])
