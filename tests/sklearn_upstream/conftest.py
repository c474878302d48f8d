"""Skips and expected failures for scikit-learn's ``test_mlp.py`` run on ``xpnet.sklearn``.

Only tests of scikit-learn-private internals are skipped; each reason is also listed in
docs/sklearn.md. Expected failures are strict: when one starts passing, the run fails
until it is removed from ``XFAIL``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

#: scikit-learn-private internals the tests drive directly, with why xpnet has no such thing.
SKIP = {
    "test_fit": "sets scikit-learn-private attributes (_coef_grads, _intercept_velocity, "
                "n_layers_...) on an unfitted estimator and expects partial_fit to run on them; "
                "xpnet's state is its model_ (a Sequential), built by fit",
    "test_gradient": "calls the private _loss_grad_lbfgs with scikit-learn's private "
                     "activation and delta buffers; the same finite-difference check of "
                     "xpnet's objective is test_objective_gradient_matches_finite_differences "
                     "in tests/test_sklearn_conformance.py",
}
#: Tests expected to fail for now, with the reason: none.
XFAIL: dict[str, str] = {}


@pytest.fixture
def global_random_seed() -> int:
    """scikit-learn's fixture: ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` (one seed) or 42."""
    return int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().parent != HERE:
            continue
        name = item.originalname or item.name
        if name in SKIP:
            item.add_marker(pytest.mark.skip(reason=f"scikit-learn-private: {SKIP[name]}"))
        elif name in XFAIL:
            item.add_marker(pytest.mark.xfail(reason=XFAIL[name], strict=True))
