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
    """The best value of a metric so far, the parameters at that point, and the wait since.

    Parameters
    ----------
    mode : {"min", "max"}
        Whether a lower or a higher value is better.
    min_delta : float
        Change that counts as an improvement (``tol`` in scikit-learn); ``>= 0``.
    patience : int or math.inf
        Epochs without improvement tolerated; `should_stop` is ``wait > patience``.
    rule : {"keras", "sklearn"}
        Which convention decides "improved" and "new best" (see the module docstring).

    Attributes
    ----------
    best : float
        Best value so far (``inf`` for ``"min"``, ``-inf`` for ``"max"`` before any).
    params : dict or None
        Copies of the parameters passed with the best value; None when none were passed.
    wait : int
        Epochs since the last improvement.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet._best import BestWeights
    >>> tracker = BestWeights("min", min_delta=0.1, patience=1)
    >>> [tracker.update(v, {"w": np.asarray([v])}) for v in (1.0, 0.95, 0.7, 0.72, 0.71)]
    [True, False, True, False, False]
    >>> tracker.best, tracker.params["w"].tolist(), tracker.wait, tracker.should_stop
    (0.7, [0.7], 2, True)
    """

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
        """Forget everything: no best value, no parameters, no wait.

        Examples
        --------
        >>> from xpnet._best import BestWeights
        >>> t = BestWeights("max")
        >>> _ = t.update(0.5); t.reset(); t.best
        -inf
        """
        self.best = -self._sign * math.inf
        self.params: dict[str, Any] | None = None
        self.wait = 0

    def update(self, value: float, params: dict[str, Any] | None = None) -> bool:
        """Record one epoch's ``value``; copy ``params`` when it is a new best.

        Parameters
        ----------
        value : float
            The monitored metric for this epoch.
        params : dict of str to array, optional
            The model's parameters now; copied (on their own device) when ``value``
            becomes the new best. Pass None to track the value only.

        Returns
        -------
        bool
            Whether the epoch counts as an improvement (the wait counter restarted).

        Examples
        --------
        >>> from xpnet._best import BestWeights
        >>> keras, sk = BestWeights("max"), BestWeights("max", rule="sklearn")
        >>> [keras.update(v) for v in (0.5, 0.5)], [sk.update(v) for v in (0.5, 0.5)]
        ([True, False], [True, True])
        """
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
