"""scikit-learn's stochastic optimizers (``sgd``, ``adam``) on any backend, plus xpnet's extras.

The rules are those of ``sklearn/neural_network/_stochastic_optimizers.py``
(scikit-learn 1.9), operation for operation, so that the same gradients give the same
parameters to the last bit:

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

Updates are in place where the backend allows it (NumPy, CuPy, PyTorch) and rebind
the parameter dict's entries otherwise.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import _namespace_of  # the package's namespace lookup, cached per type
from ..optimizers import RMSprop
from ._losses import layer_keys

__all__ = ["SGDRule", "AdamRule", "RMSpropRule"]


def _zeros(params: dict) -> dict:
    return {k: _namespace_of(p).zeros_like(p) for k, p in params.items()}


class _Rule:
    """What the epoch loop needs: ``update``, ``iteration_ends``, ``trigger_stopping``."""

    def __init__(self, learning_rate_init: float, mutable: bool, lr_schedule: str = "constant",
                 power_t: float = 0.5):
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.mutable = mutable
        self.lr_schedule, self.power_t = lr_schedule, float(power_t)  # sgd's, as scikit-learn

    def update(self, params: dict, grads: dict) -> None:
        raise NotImplementedError

    def _scale_add(self, d: dict, k: str, scale: float, add: Any = None) -> Any:
        """``d[k] = scale * d[k] + add``: in place where the backend allows it, else rebinding."""
        x = d[k]
        if self.mutable:
            if scale != 1.0:
                x *= scale
            if add is not None:
                x += add
            return x
        x = x if scale == 1.0 else scale * x
        d[k] = x = x if add is None else x + add
        return x

    def iteration_ends(self, time_step: int) -> None:
        """``invscaling``: ``lr = learning_rate_init / (time_step + 1) ** power_t``."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose: Any) -> bool:
        """Stop (True), or with ``adaptive`` divide the learning rate by 5 while above 1e-6."""
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


class SGDRule(_Rule):
    """scikit-learn's ``SGDOptimizer``: momentum velocity, Nesterov, the lr schedules."""

    def __init__(self, params: dict, learning_rate_init: float, lr_schedule: str,
                 momentum: float, nesterov: bool, power_t: float, *, mutable: bool):
        super().__init__(learning_rate_init, mutable, lr_schedule, power_t)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocities = _zeros(params)

    def update(self, params: dict, grads: dict) -> None:
        """``v = momentum * v - lr * g``; add ``v`` (or ``momentum * v - lr * g``, Nesterov)."""
        mom, lr = self.momentum, self.learning_rate
        for k, g in grads.items():
            v = self._scale_add(self.velocities, k, mom, -lr * g)
            self._scale_add(params, k, 1.0, mom * v - lr * g if self.nesterov else v)


class AdamRule(_Rule):
    """scikit-learn's ``AdamOptimizer``; ``solver="adamw"`` first shrinks the weight matrices."""

    def __init__(self, params: dict, learning_rate_init: float, beta_1: float, beta_2: float,
                 epsilon: float, *, weight_decay: float = 0.0, mutable: bool):
        super().__init__(learning_rate_init, mutable)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.weight_decay = float(weight_decay)  # AdamW's: W *= 1 - lr_init * weight_decay
        self.t = 0
        self.ms = _zeros(params)
        self.vs = _zeros(params)

    def update(self, params: dict, grads: dict) -> None:
        shrink = 1.0 - self.learning_rate_init * self.weight_decay
        for k in layer_keys(params, ".W") if shrink != 1.0 else ():
            self._scale_add(params, k, shrink)
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        self.learning_rate = (self.learning_rate_init * math.sqrt(1 - b2 ** self.t)
                              / (1 - b1 ** self.t))
        xp = None
        for k, g in grads.items():
            m = self._scale_add(self.ms, k, b1, (1 - b1) * g)
            v = self._scale_add(self.vs, k, b2, (1 - b2) * (g * g))
            xp = xp or _namespace_of(v)
            self._scale_add(params, k, 1.0, -self.learning_rate * m / (xp.sqrt(v) + self.epsilon))


class RMSpropRule(_Rule):
    """``solver="rmsprop"``: xpnet.RMSprop (``alpha`` as the L2 term)."""

    def __init__(self, params: dict, learning_rate_init: float, epsilon: float):
        super().__init__(learning_rate_init, mutable=False)
        self.optimizer = RMSprop(self.learning_rate, eps=epsilon)
        self.state = self.optimizer.init(params)

    def update(self, params: dict, grads: dict) -> None:
        """One xpnet.RMSprop step, written back into `params`."""
        new, self.state = self.optimizer.update(params, grads, self.state)
        params.update(new)
