"""Temporary stand-in for the accelerated-ops layer (replaced by the ops subpackage)."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from .. import _jit, _malloc


class Ops:
    def __init__(self, backend: Any):
        self.backend = backend
        self.numpy = backend.name == "numpy"

    @contextlib.contextmanager
    def training(self, *, num_params: int, n_updates: int):
        tuned = False
        jit_off = False
        if self.numpy:
            tuned = _malloc.keep_freed_memory()
            jit_off = not _jit.worth_it(num_params, n_updates)
        try:
            with _jit.suspended(jit_off):
                yield
        finally:
            if tuned:
                _malloc.release()

    def all_finite(self, value: Any, grads: dict) -> bool:
        if not math.isfinite(float(value)):
            return False
        s = (lambda g: np.add.reduce(g, axis=None)) if self.numpy else self.backend.xp.sum
        return math.isfinite(sum(float(s(g)) for g in grads.values()))

    def finite_flag(self, value: Any, grads: dict) -> Any:
        xp = self.backend.xp
        gsum = None
        for g in grads.values():
            s = xp.astype(xp.sum(g), xp.float64)
            gsum = s if gsum is None else gsum + s
        return xp.isfinite(value) & xp.isfinite(gsum)


def ops_for(backend: Any) -> Ops:
    return Ops(backend)
