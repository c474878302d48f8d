"""Private helpers' behaviour that no public call pins down on its own (these were
examples in their docstrings)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@posix_only
def test_create_temp_names_the_file_after_its_target_and_follows_the_umask(tmp_path):
    from xpnet._files import create_temp

    old = os.umask(0o027)
    try:
        fd, tmp = create_temp(tmp_path / "data.gz", ".part")
    finally:
        os.umask(old)
    os.close(fd)
    assert tmp.parent == tmp_path and tmp.name.startswith(".data.gz.")
    assert tmp.suffix == ".part" and oct(tmp.stat().st_mode & 0o777) == "0o640"


def test_sklearn_adamw_rule_decays_only_the_weight_matrices_before_its_step():
    pytest.importorskip("sklearn")
    from xpnet.sklearn._optim import AdamRule

    p = {"0.W": np.array([1.0]), "0.b": np.array([1.0])}
    opt = AdamRule(p, 0.1, 0.9, 0.999, 1e-8, weight_decay=0.5, mutable=True)
    opt.update(p, {"0.W": np.array([0.0]), "0.b": np.array([0.0])})
    # a zero gradient: only the decay acts, 1 - 0.1 * 0.5, and not on the bias
    assert p["0.W"].tolist() == [0.95] and p["0.b"].tolist() == [1.0]


def test_sklearn_rmsprop_rule_writes_its_step_back_into_the_params():
    pytest.importorskip("sklearn")
    from xpnet.sklearn._optim import RMSpropRule

    p = {"w": np.ones(2)}
    RMSpropRule(p, 0.01, 1e-8).update(p, {"w": np.ones(2)})
    assert np.round(p["w"], 6).tolist() == [0.9, 0.9]
