"""The program outputs the docs show are current: rerun them and compare.

Each target of ``docs/generate.py`` (see its docstring) is rerun into a temporary
folder, as ``python docs/generate.py --check TARGET`` would, and compared with the
committed file: timings and temporary paths are masked, and the backends table must
keep its orders of magnitude. When a change is intended, ``python docs/generate.py``
regenerates the files.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import xpnet as xn

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))
generate = importlib.import_module("generate")
sys.path.remove(str(DOCS))


def check(target: str) -> None:
    problems = generate.check((target,))
    assert not problems, ("\n\n".join(problems)
                          + f"\n\nIf intended: python docs/generate.py {target}")


@pytest.mark.slow  # reruns every example script
def test_examples_outputs_are_current():
    check("examples")


@pytest.mark.slow  # reruns the CLI sessions the docs show
def test_cli_outputs_are_current():
    check("cli")


def test_api_index_is_current():
    # the API pages are listed in mkdocs.yml, read with PyYAML (the docs extra)
    pytest.importorskip("yaml", reason="PyYAML is not installed (the docs extra: "
                                       'pip install -e ".[docs]")')
    check("api")


def test_backends_table_is_current():
    missing = [b for b in ("array_api_strict", "torch") if b not in xn.available_backends()]
    if missing:
        pytest.skip(f"the table compares with {missing}, not installed here")
    check("backends")


@pytest.mark.slow
def test_notebook_measurements_are_current():
    if generate.mnist_test_dir() is None:
        pytest.skip("MNIST's t10k-* files not found (set XPNET_MNIST_TEST_DIR)")
    check("notebook")


def test_masking_ignores_timings_paths_and_the_cupy_reason_only():
    shown = ("epoch 1/2  loss 0.5000  0.04s  32,911 samples/s\n"
             "trained in 0.7 s; saved to /tmp/tmpab12cd/m.safetensors\n"
             "the cupy backend is not available: cupy is not installed\n")
    fresh = ("epoch 1/2  loss 0.5000  1.25s  1,203 samples/s\n"
             "trained in 12.3 s; saved to /tmp/tmpzz99yy/m.safetensors\n"
             "the cupy backend is not available: disabled by XPNET_DISABLE_CUPY\n")
    assert generate.compare("x.txt", shown, fresh) == []
    changed = fresh.replace("loss 0.5000", "loss 0.5001")
    assert generate.compare("x.txt", shown, changed)


def test_backends_table_tolerates_a_factor_of_10_and_keeps_zeros():
    shown = "| `torch` | float32 | bitwise identical | 2.4e-7 | 0 |"
    assert generate.same_magnitudes(shown, shown.replace("2.4e-7", "9.9e-7")) == []
    assert generate.same_magnitudes(shown, shown.replace("2.4e-7", "3.0e-6"))
    assert generate.same_magnitudes(shown, shown.replace("| 0 |", "| 1.0e-9 |"))
    assert generate.same_magnitudes(shown, shown.replace("bitwise identical", "**differ**"))


@pytest.mark.slow
def test_onnx_outputs_are_current():
    if not generate.onnx_installed():
        pytest.skip("ndonnx, onnx or onnxruntime not installed (the onnx extra)")
    check("onnx")


def test_performance_tables_are_current():
    check("performance")


def test_recorded_tables_are_compared_exactly():
    row = "| **xpnet** | 2.40 s | 2.25 s – 2.56 s | 2.17 | 2.16 – 2.18 | 1.00 |\n"
    assert generate.compare("performance/W2.md", row, row) == []
    assert generate.compare("performance/W2.md", row, row.replace("2.40 s", "2.41 s"))
    assert generate.compare("W2.md", row, row.replace("2.40 s", "2.41 s")) == []  # masked
