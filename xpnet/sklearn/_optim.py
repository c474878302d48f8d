"""scikit-learn's stochastic optimizers (``sgd``, ``adam``) on any backend, plus xpnet's extras.

The rules are those of ``sklearn/neural_network/_stochastic_optimizers.py``
(scikit-learn 1.9), operation for operation, so that the same gradients give the same
parameters to the last bit. Their arithmetic is not that of ``xn.SGD`` / ``xn.Adam``
(PyTorch's), so each is a core [`Optimizer`][xpnet.optimizers.Optimizer] with its own
``_update_one``; the core does the rest (slots in the model's store, in-place updates
where the backend allows them, rebinding otherwise, AdamW's decoupled decay):

- SGD keeps a *velocity* ``v = momentum * v - lr * g`` and adds ``v`` (Nesterov:
  ``momentum * v - lr * g`` with the new ``v``). ``xn.SGD`` keeps PyTorch's buffer
  instead, which is the same only while the learning rate is constant.
- Adam folds the bias corrections into the step size and adds ``epsilon`` to
  ``sqrt(v)`` itself: ``-lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + eps)``.
  ``xn.Adam`` adds ``eps`` to the bias-corrected ``sqrt(v_hat)``, which differs in
  early steps.
- ``learning_rate="invscaling"`` sets ``lr = learning_rate_init / (t + 1)**power_t`` at
  the end of each epoch, ``t`` the number of samples seen; ``"adaptive"`` divides it by
  5 each time the no-improvement counter runs out, and stops below ``1e-6``. Both are
  scikit-learn's and apply to ``sgd`` only.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import _namespace_of
from ..optimizers import Optimizer, RMSprop

__all__ = ["Rule", "make_rule"]


class _SGD(Optimizer):
    """scikit-learn's ``SGDOptimizer`` update (momentum may be 1, as scikit-learn allows)."""

    slots = ("velocity",)

    def __init__(self, lr: Any, momentum: float, nesterov: bool):
        super().__init__(lr)
        self.mu, self.nesterov = float(momentum), bool(nesterov)

    def _update_one(self, p, g, slots, lr, t):
        v = self.mu * slots["velocity"] - lr * g
        return p + (self.mu * v - lr * g if self.nesterov else v), {"velocity": v}


class _Adam(Optimizer):
    """scikit-learn's ``AdamOptimizer``; with ``weight_decay``, AdamW on the weight matrices."""

    slots = ("m", "v")
    nonnegative_slots = ("v",)
    decoupled = True

    def __init__(self, lr: float, beta_1: float, beta_2: float, epsilon: float,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay=weight_decay, decay="weights")
        self.b1, self.b2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def step_size(self, lr: float, t: int) -> float:
        return lr * math.sqrt(1 - self.b2 ** t) / (1 - self.b1 ** t)

    def _update_one(self, p, g, slots, lr, t):
        m = self.b1 * slots["m"] + (1 - self.b1) * g
        v = self.b2 * slots["v"] + (1 - self.b2) * (g * g)
        step = -self.step_size(lr, t) * m / (_namespace_of(v).sqrt(v) + self.epsilon)
        return p + step, {"m": m, "v": v}


class Rule:
    """The estimators' ``_optimizer``: a core optimizer, its state, scikit-learn's epoch hooks.

    ``learning_rate`` is scikit-learn's attribute: the rate of the next SGD step (the
    SGD optimizer's schedule reads it), Adam's bias-corrected step size of the last one.
    """

    def __init__(self, learning_rate_init: float, lr_schedule: str = "constant",
                 power_t: float = 0.5):
        self.learning_rate_init = self.learning_rate = float(learning_rate_init)
        self.lr_schedule, self.power_t = lr_schedule, float(power_t)
        self.opt: Any = None
        self.state: dict = {}

    def start(self, opt: Optimizer, params: dict) -> Rule:
        # slots outside the model's store: one path (per parameter) before and after a pickle
        self.opt, self.state = opt, opt.init(dict(params))
        return self

    def __call__(self, step: int) -> float:
        """The SGD optimizer's schedule: the current ``learning_rate``."""
        return self.learning_rate

    def update(self, params: dict, grads: dict) -> None:
        self.opt.update_(params, grads, self.state)
        if isinstance(self.opt, _Adam):
            self.learning_rate = self.opt.step_size(self.learning_rate_init, self.state["step"])

    def iteration_ends(self, time_step: int) -> None:
        """End of an epoch; ``time_step`` is the number of training samples seen so far."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose: Any) -> bool:
        """The no-improvement counter ran out: stop (True), or, ``adaptive``, lower the rate."""
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


def make_rule(est: Any) -> Rule:
    """A fresh ``_optimizer`` for ``est.model_.params`` from the estimator's settings."""
    lr = float(est.learning_rate_init)
    opt: Optimizer
    if est.solver == "sgd":
        rule = Rule(lr, est.learning_rate, est.power_t)
        opt = _SGD(rule, est.momentum, est.nesterovs_momentum)  # its schedule: the rule
    else:
        rule = Rule(lr)
        if est.solver == "rmsprop":  # xpnet.RMSprop (alpha is the loss's L2 term)
            opt = RMSprop(lr, eps=est.epsilon)
        else:
            wd = float(est.alpha) if est.solver == "adamw" else 0.0
            opt = _Adam(lr, est.beta_1, est.beta_2, est.epsilon, weight_decay=wd)
    return rule.start(opt, est.model_.params)
