"""nox sessions: tests per backend, lint, docs, types, benchmarks."""

import nox

nox.options.sessions = ["tests", "lint", "docs"]
PY = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PY, reuse_venv=True)
def tests(session):
    """All tests on every backend installed (numpy, array_api_strict, torch if present)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session(name="tests-numpy", reuse_venv=True)
def tests_numpy(session):
    """Tests on the NumPy backend only."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"XPNET_TEST_BACKENDS": "numpy"})


@nox.session(name="tests-strict", reuse_venv=True)
def tests_strict(session):
    """Tests on array_api_strict only: catches anything outside the standard."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"XPNET_TEST_BACKENDS": "array_api_strict"})


@nox.session(name="tests-torch", reuse_venv=True)
def tests_torch(session):
    """Tests on PyTorch (CPU, or CUDA when available)."""
    session.install("-e", ".[test]", "torch")
    session.run("pytest", *session.posargs, env={"XPNET_TEST_BACKENDS": "torch"})


@nox.session(name="tests-cupy", reuse_venv=True)
def tests_cupy(session):
    """Tests on CuPy; needs a CUDA GPU (pass the extra, e.g. `-- cuda13`)."""
    extra = session.posargs[0] if session.posargs else "cuda12"
    session.install("-e", f".[test,{extra}]")
    session.run("pytest", env={"XPNET_TEST_BACKENDS": "numpy,cupy"})


@nox.session(reuse_venv=True)
def gpu(session):
    """On a CUDA machine, one command: the suite with CuPy, then benchmarks/bench_gpu.py.

    Installs xpnet with the CuPy extra (``-- cuda13`` for CUDA 13; default cuda12) and
    PyTorch (the benchmark's peer); the benchmark writes benchmarks/results/gpu.json.
    On a machine without network access run ``bash benchmarks/gpu_session.sh`` instead.
    """
    extra = session.posargs[0] if session.posargs else "cuda12"
    session.install("-e", f".[test,{extra}]", "torch")
    session.run("pytest", "-q", "-n", "4", "tests", env={"XPNET_TEST_BACKENDS": "numpy,cupy"})
    session.run("python", "benchmarks/bench_gpu.py")


@nox.session(reuse_venv=True)
def lint(session):
    """ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "xpnet", "tests", "benchmarks", "examples")


@nox.session(reuse_venv=True)
def docs(session):
    """Build the documentation site strictly (warnings are errors)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")


@nox.session(reuse_venv=True)
def types(session):
    """mypy on the package."""
    session.install("-e", ".", "mypy>=1.10")
    session.run("mypy")


@nox.session(reuse_venv=True)
def bench(session):
    """CPU benchmarks against the GEMM floor, NumPy, PyTorch and scikit-learn."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench_cpu.py", *session.posargs)
    session.run("python", "benchmarks/bench_scaling.py")
