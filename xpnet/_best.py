"""Best-value tracking shared by [`xpnet.EarlyStopping`][] and the scikit-learn estimators.

One object holds the best value of a monitored metric, a copy of the parameters at that
point and the number of epochs since the last improvement. Two comparison rules exist,
because the two callers promise their users two different published conventions:

``rule="keras"`` ([`xpnet.EarlyStopping`][], as Keras' ``EarlyStopping``)
    An epoch improves when it beats ``best`` by more than ``min_delta``; only then do
    ``best`` and the saved parameters move, and the wait counter restarts.
``rule="sklearn"`` (``xpnet.sklearn`` estimators, as ``sklearn.neural_network``'s
``tol``/``n_iter_no_change``)
    An epoch restarts the wait counter unless it falls short of ``best`` by ``min_delta``
    (so with ``min_delta=0`` a tie counts as an improvement), and ``best`` with the saved
    parameters moves on every strictly better value, even a smaller step than
    ``min_delta``.

In both, training should stop once ``wait > patience``.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from . import _checks

__all__ = ["BestWeights"]

RULES = ("keras", "sklearn")


class BestWeights:
    """Best value of a metric, copies of the parameters then (``params``) and ``wait`` since."""

    def __init__(self, mode: str = "min", *, min_delta: float = 0.0,
                 patience: int | float = 0, rule: str = "keras"):
        self.mode = _checks.check_choice("mode", mode, ("min", "max"))
        self.rule = _checks.check_choice("rule", rule, RULES)
        self.min_delta = _checks.check_float("min_delta", min_delta, low=0.0, high=None)
        if not (isinstance(patience, float) and patience == math.inf):
            patience = _checks.check_int("patience", patience, minimum=0)
        self.patience = patience
        self._sign = 1.0 if self.mode == "max" else -1.0
        self.reset()

    def reset(self) -> None:
        self.best = -self._sign * math.inf
        self.params: dict[str, Any] | None = None
        self.wait = 0

    def update(self, value: float, params: dict[str, Any] | None = None) -> bool:
        """Record one epoch's value, copying `params` at a new best; return whether it improved."""
        # compare in "higher is better" units; negation is exact, NaN stays NaN
        v, b = self._sign * value, self._sign * self.best
        if self.rule == "keras":
            improved = new_best = v > b + self.min_delta
        else:
            improved, new_best = not v < b + self.min_delta, v > b
        if new_best:
            self.best = value
            if params is not None:
                xp = array_api_compat.array_namespace(*params.values())
                self.params = {k: xp.asarray(a, copy=True) for k, a in params.items()}
        self.wait = 0 if improved else self.wait + 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Whether more than ``patience`` epochs in a row brought no improvement."""
        return self.wait > self.patience
