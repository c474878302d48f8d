"""nox sessions: tests per backend, lint, docs, types, benchmarks, the release build."""

import glob
import os
import tempfile
import zipfile

import nox

nox.options.sessions = ["tests", "lint", "docs"]
PY = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PY, reuse_venv=True)
def tests(session):
    """The README's tests on every backend installed (`-- -m ""` adds the slow ones)."""
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


@nox.session(name="tests-jax", reuse_venv=True)
def tests_jax(session):
    """The tests on JAX (CPU; the test extra installs jax)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"XPNET_TEST_BACKENDS": "jax"})


@nox.session(name="tests-cupy", reuse_venv=True)
def tests_cupy(session):
    """Tests on CuPy; needs a CUDA GPU (pass the extra, e.g. `-- cuda13`)."""
    extra = session.posargs[0] if session.posargs else "cuda12"
    session.install("-e", f".[test,{extra}]")
    session.run("pytest", "-m", "", env={"XPNET_TEST_BACKENDS": "numpy,cupy"})  # slow ones too


@nox.session(reuse_venv=True)
def gpu(session):
    """On a CUDA machine, one command: the suite with CuPy, then benchmarks/bench_gpu.py.

    Installs xpnet with the CuPy extra (``-- cuda13`` for CUDA 13; default cuda12) and
    PyTorch (the benchmark's peer); the benchmark writes benchmarks/results/gpu.json.
    On a machine without network access run ``bash benchmarks/gpu_session.sh`` instead.
    """
    extra = session.posargs[0] if session.posargs else "cuda12"
    session.install("-e", f".[test,{extra}]", "torch")
    session.run("pytest", "-q", "-n", "4", "-m", "", "tests",
                env={"XPNET_TEST_BACKENDS": "numpy,cupy"})
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
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(name="docs-outputs", reuse_venv=True)
def docs_outputs(session):
    """Regenerate the outputs the docs show (`-- --check` only compares them)."""
    session.install("-e", ".[test]", "torch")
    session.run("python", "docs/generate.py", *session.posargs)


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


# Run inside the fresh virtual environment, outside the source tree: the installed
# wheel must carry everything (bundled data, py.typed) and every public module imports.
_WHEEL_CHECK = """
import importlib, pkgutil, sys
from pathlib import Path
import xpnet
root = Path(xpnet.__file__).parent
assert "site-packages" in str(root), f"xpnet imported from {root}, not the wheel"
for f in ("py.typed", "datasets/_data/digits.npz"):
    assert (root / f).is_file(), f"{f} is missing from the installed package"
names = [m.name for m in pkgutil.walk_packages(xpnet.__path__, "xpnet.")
         if not any(part.startswith("_") for part in m.name.split("."))]
extras = {"xpnet.sklearn": "sklearn"}     # modules that need an optional extra
skipped = [n for n in names if n in extras and "--all" not in sys.argv]
for name in ["xpnet", *names]:
    if name not in skipped:
        importlib.import_module(name)
print(f"xpnet {xpnet.__version__}: imported {len(names) + 1 - len(skipped)} public modules"
      + (f" (not {', '.join(skipped)}: needs an extra)" if skipped else ""))
print(f"digits: {xpnet.datasets.load('digits').summary()}")
"""


@nox.session(reuse_venv=True)
def build(session):
    """Build the sdist and wheel, check them, and install the wheel into a fresh venv.

    The wheel is built from the sdist (so the sdist is complete), `twine check`
    validates the metadata and README, then a new virtual environment outside the
    source tree installs the wheel, runs `xpnet train`, and imports every public
    module (`xpnet.sklearn` after installing the `sklearn` extra). Pass another
    interpreter for that environment as `nox -s build -- python3.13`.
    """
    session.install("build>=1", "twine>=5")
    dist = os.path.abspath("dist")
    for old in glob.glob(os.path.join(dist, "xpnet-*")):
        os.remove(old)
    session.run("python", "-m", "build", "--outdir", dist)
    files = sorted(glob.glob(os.path.join(dist, "xpnet-*")))
    session.run("twine", "check", "--strict", *files)
    wheel = next(f for f in files if f.endswith(".whl"))
    with zipfile.ZipFile(wheel) as zf:
        missing = {"xpnet/py.typed", "xpnet/datasets/_data/digits.npz"} - set(zf.namelist())
    if missing:
        session.error(f"the wheel lacks {sorted(missing)}")

    interpreter = session.posargs[0] if session.posargs else "python"
    work = tempfile.mkdtemp(prefix="xpnet-wheel-")
    venv = os.path.join(work, "venv")
    session.run(interpreter, "-m", "venv", venv, external=True)
    bindir = os.path.join(venv, "Scripts" if os.name == "nt" else "bin")
    py = os.path.join(bindir, "python")
    # Nothing from the source tree or the outer environment may leak in.
    env = {"PYTHONPATH": None, "VIRTUAL_ENV": venv, "XPNET_DATA_DIR": None}
    session.chdir(work)
    session.run(py, "-m", "pip", "install", "-q", "-U", "pip", external=True, env=env)
    session.run(py, "-m", "pip", "install", "-q", wheel, external=True, env=env)
    session.run(os.path.join(bindir, "xpnet"), "train", "--out", "run", external=True, env=env)
    session.run(py, "-c", _WHEEL_CHECK, external=True, env=env)
    session.run(py, "-m", "pip", "install", "-q", f"{wheel}[sklearn]", external=True, env=env)
    session.run(py, "-c", _WHEEL_CHECK, "--all", external=True, env=env)
