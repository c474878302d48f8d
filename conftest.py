"""Collection rules for the whole suite (the fixtures live in tests/conftest.py).

The examples in ``xpnet/export`` run ONNX export, which needs the optional
``xpnet[onnx]`` extra (ndonnx needs Python 3.11 or later); without it their doctests
are not collected, nor those of ``xpnet/ops/_torch.py`` without PyTorch. ``tests/test_onnx.py`` skips the same way, with the reason.

A test that needs an optional package (torch, pandas, PyYAML, an extra...) or the real
MNIST files skips, with the reason, where they are missing. ``XPNET_REQUIRE_ALL=1`` (the
second stage of ``.ci/run``, where everything is installed) turns every such skip into a
failure: a skip passes there only where its reason matches ``ALLOWED_SKIPS``, that is
where it needs a GPU, or scikit-learn's own tests try a private internal (listed in
docs/sklearn.md).
"""

import importlib.util
import os
import re

import pytest

REQUIRE_ALL = os.environ.get("XPNET_REQUIRE_ALL") == "1"

#: The skips allowed under ``XPNET_REQUIRE_ALL=1``: the CI machine has no GPU (CuPy,
#: NCCL; dpnp, XPU and MPS in scikit-learn's array-API checks), and some cases do not
#: apply: scikit-learn's ``test_mlp.py`` cases that drive its private internals or a
#: method the estimator lacks, and the mixed-library check on NumPy (it needs another
#: library than the model's).
ALLOWED_SKIPS = re.compile(
    r"cupy|\bcuda\b|\bgpus?\b|\bnccl\b|\bdpnp\b|\bxpu\b|\bmps\b"
    r"|^scikit-learn-private: "
    r"|^MLPClassifier does not have a decision_function method"
    r"|^needs a second library$",
    re.IGNORECASE,
)

collect_ignore_glob = []
if any(importlib.util.find_spec(m) is None for m in ("ndonnx", "onnx", "onnxruntime")):
    if REQUIRE_ALL:
        raise pytest.UsageError("XPNET_REQUIRE_ALL=1 but ndonnx, onnx or onnxruntime is "
                                "missing: the examples of xpnet/export would not run")
    collect_ignore_glob.append("xpnet/export/*.py")
if importlib.util.find_spec("torch") is None:  # TorchOps' example runs on PyTorch
    collect_ignore_glob.append("xpnet/ops/_torch.py")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _require(report) -> None:
    """Under ``XPNET_REQUIRE_ALL=1``, a skip whose reason is not allowed fails."""
    if not (REQUIRE_ALL and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if not ALLOWED_SKIPS.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped under XPNET_REQUIRE_ALL=1, where every test must run "
                           f"(only a missing GPU may skip): {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _require(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    # a module that skips as a whole (pytest.importorskip at its top)
    outcome = yield
    _require(outcome.get_result())
