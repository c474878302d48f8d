"""Run every script in examples/ with --fast and check its exit code and key output.

Each example runs in a fresh interpreter, as a user would run it; the checks read
the line that matters (an accuracy, a gradient check, the match with ``fit``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xpnet as xn

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
TIMEOUT = 600  # seconds; each example takes a few seconds on an idle laptop


def run_example(name: str, *args: str, expect_rc: int = 0) -> str:
    """Run ``examples/<name>`` with ``args``; return its standard output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=env,
    )
    assert proc.returncode == expect_rc, (
        f"{name} {' '.join(args)} exited with {proc.returncode}, expected {expect_rc}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return proc.stdout


def number_after(label: str, text: str) -> float:
    """The number printed after ``label`` (e.g. ``"test accuracy:"``), last occurrence."""
    found = re.findall(re.escape(label) + r"\s*([0-9.eE+-]+)", text)
    assert found, f"no {label!r} line in the output:\n{text}"
    return float(found[-1])


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"example_data.py"}
    assert scripts == {"cpu_mnist.py", "gpu_mnist.py", "custom_loop.py", "custom_layer.py",
                       "notebook_config.py", "fit_by_hand.py", "distributed_digits.py",
                       "residual_digits.py"}


def test_distributed_digits_fast_on_one_process():
    # under mpiexec it is tested in tests/test_distributed_cli.py
    out = run_example("distributed_digits.py", "--fast")
    assert "ranks: 1, global batch: 32" in out
    assert number_after("test accuracy:", out) > 0.85


def test_cpu_mnist_fast():
    out = run_example("cpu_mnist.py", "--fast")
    assert "bundled 8x8 digits" in out
    assert number_after("test accuracy:", out) > 0.90
    assert "reloaded model gives the same predictions: True" in out


@pytest.mark.slow
def test_cpu_mnist_on_real_mnist_test_files():
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found in {MNIST_DIR}")
    out = run_example("cpu_mnist.py", "--data-dir", str(MNIST_DIR), "--epochs", "2")
    assert "MNIST" in out.splitlines()[0]
    assert number_after("test accuracy:", out) > 0.90


def test_cpu_mnist_without_mnist_falls_back_to_digits(tmp_path):
    out = run_example("cpu_mnist.py", "--data-dir", str(tmp_path), "--epochs", "3")
    assert "using the bundled 8x8 digits" in out
    assert number_after("test accuracy:", out) > 0.5


def test_gpu_mnist_fast_allow_cpu():
    out = run_example("gpu_mnist.py", "--fast", "--allow-cpu")
    assert "initial parameters bitwise identical to NumPy's: True" in out
    if "cupy" not in xn.available_backends():
        assert "the cupy backend is not available" in out
        assert "running the same code on the numpy backend" in out
    acc = number_after("test accuracy:", out)
    assert acc > 0.90
    assert number_after("after model.to('numpy'): test accuracy", out) == pytest.approx(acc,
                                                                                          abs=0.01)


def test_gpu_mnist_without_gpu_stops_with_a_clear_message():
    if "cupy" in xn.available_backends():
        pytest.skip("a GPU is usable here; the no-GPU path does not run")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "gpu_mnist.py"), "--fast"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert proc.returncode == 2
    assert "the cupy backend is not available" in proc.stdout
    assert "--allow-cpu" in proc.stderr


def test_custom_loop_fast_matches_fit():
    out = run_example("custom_loop.py", "--fast")
    assert number_after("test accuracy:", out) > 0.85
    assert number_after("largest difference from fit()'s parameters:", out) < 1e-5


def test_fit_by_hand_matches_fit_bit_for_bit():
    out = run_example("fit_by_hand.py", "--fast")
    assert number_after("largest difference from fit()'s parameters:", out) == 0.0
    assert "same loss, accuracy and val_loss history as fit(): True" in out
    assert "fit(resume=...) continued the run to epoch 4" in out
    assert number_after("test accuracy:", out) > 0.7


def test_custom_layer_fast():
    out = run_example("custom_layer.py", "--fast")
    assert "gradient check passed" in out
    assert "model gradient check passed" in out
    assert number_after("test accuracy:", out) > 0.85
    assert "reloaded PReLU with identical slopes: True" in out


def test_residual_digits_fast():
    pytest.importorskip("onnxruntime")
    out = run_example("residual_digits.py", "--fast", "--backends", "numpy,torch")
    assert "1.0   LayerNorm" in out and "parameter keys: 0.W, 0.b, 1.0.gamma" in out
    for backend in ("numpy", "torch"):
        if f"{backend}: skipped" in out:
            continue
        assert number_after(f"{backend}: test accuracy:", out) > 0.9
        assert f"{backend}: reloaded model gives identical predictions: True" in out
        assert f"{backend}: onnxruntime agrees with predict: True" in out
    assert "all checks passed" in out


@pytest.mark.slow
def test_notebook_config_fast():
    out = run_example("notebook_config.py", "--fast")
    assert "iteration   0" in out
    assert number_after("train accuracy:", out) > 0.75
    assert number_after("test accuracy:", out) > 0.75


@pytest.mark.slow
def test_notebook_config_scrambled_stays_near_chance():
    out = run_example("notebook_config.py", "--fast", "--scrambled")
    assert number_after("train accuracy:", out) < 0.3
