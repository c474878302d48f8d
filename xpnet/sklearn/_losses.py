"""scikit-learn's MLP losses and L2 penalty, as [`xpnet.Loss`][] objects on any backend.

scikit-learn scales its losses in its own way, and its learning rates and ``alpha``
grids only carry over with the same scaling (``sklearn/neural_network/_base.py`` and
``_multilayer_perceptron.py``, scikit-learn 1.9):

- squared error: the value is ``mean((p - y)**2) / 2`` over all elements, the
  gradient with respect to the outputs ``(p - y) / n`` (not divided by the number
  of outputs, so it is not the value's exact gradient for several outputs);
- log loss: probabilities clipped to ``[eps, 1 - eps]`` in the value, summed over
  the labels of a logistic output (binary and multilabel) and averaged over rows;
  the gradient is ``(p - y) / n`` with the unclipped ``p``;
- Poisson: half the Poisson deviance of ``exp(output)``, summed over outputs;
- the penalty ``alpha / (2 n) * sum(W**2)`` over the weight matrices only (never the
  biases), where ``n`` is the batch's number of rows; its gradient ``alpha / n * W``
  (added by `xpnet.sklearn._solvers`).

With sample weights each loss is the weighted mean of its `per_sample` values,
``sum(w * l) / sum(w)``, and the gradient with respect to the outputs ``w (p - y) /
sum(w)``: [`Loss.weighted_value_and_grad`][xpnet.Loss.weighted_value_and_grad],
scikit-learn's ``np.average`` with ``weights=``. The penalty's ``n`` is then the batch's ``sum(w)``.

The targets are prepared once by the estimator (labels, indicator matrix or float
targets on the model's device), so [`Loss.check_target`][xpnet.losses.Loss.check_target]
passes them through.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..backends import _namespace_of  # the package's namespace lookup, cached per type
from ..layers import sigmoid
from ..losses import BinaryCrossEntropy, Loss, SoftmaxCrossEntropy

__all__ = ["HalfSquaredError", "HalfPoissonDeviance", "LogisticLogLoss", "SoftmaxLogLoss",
           "OUTPUT_LOSSES", "layer_keys"]


class _PreparedTargets(Loss):
    """A loss whose targets the estimator has already checked and placed."""

    def check_target(self, y: Any, *, backend: Any, dtype: str, n_outputs: int,
                     name: str = "y", values: bool = True) -> Any:
        """Return ``y`` unchanged: the estimator prepared it once for the whole fit."""
        return y


def _in_place(a: Any) -> bool:
    """Whether ``a[rows, cols] -= v`` works in place (NumPy, CuPy, PyTorch)."""
    return (array_api_compat.is_numpy_array(a) or array_api_compat.is_cupy_array(a)
            or array_api_compat.is_torch_array(a))


def _clipped(xp: Any, p: Any) -> Any:
    eps = float(xp.finfo(p.dtype).eps)
    # minimum/maximum, not compat clip (boolean-mask writes, a sync, on CuPy)
    return xp.minimum(xp.maximum(p, eps), 1.0 - eps)


def _poisson_terms(xp: Any, output: Any, target: Any) -> tuple[Any, Any]:
    """``y log(y / p) - y + p`` element by element (0 log 0 = 0), and ``p = exp(output)``."""
    p = xp.exp(output)
    pos = target > 0
    ratio = xp.where(pos, target, xp.ones_like(target)) / p
    xlogy = xp.where(pos, target * xp.log(ratio), xp.zeros_like(target))
    return xlogy - target + p, p


def _logistic_terms(xp: Any, output: Any, target: Any) -> tuple[Any, Any]:
    """``-y log(p) - (1 - y) log(1 - p)`` (``p`` clipped), and ``p = sigmoid(output)``."""
    p = sigmoid(output)
    pc = _clipped(xp, p)
    # (y - 1) and a difference: the exact negation of y log(p) + (1 - y) log(1 - p), bit for bit
    return (target - 1.0) * xp.log(1.0 - pc) - target * xp.log(pc), p


class HalfSquaredError(_PreparedTargets):
    """scikit-learn's ``squared_error``: ``mean((p - y)**2) / 2``, gradient ``(p - y) / n``."""

    name = "sklearn_squared_error"

    def value_and_grad(self, output, target, *, need_grad=True):
        """Half the mean squared error, and ``(output - target) / n``."""
        xp = _namespace_of(output)
        d = output - target
        value = 0.5 * xp.mean(d * d)
        return value, (d / float(output.shape[0]) if need_grad else None)

    def per_sample(self, output, target):
        """Half the mean squared error of each row (over its outputs)."""
        d = output - target
        return 0.5 * _namespace_of(output).mean(d * d, axis=1)


class _SummedTerms(_PreparedTargets):
    """Its `_terms` summed over outputs, averaged over rows; gradient ``(p - y) / n``."""

    _terms: Any  # (xp, output, target) -> (elementwise terms, predictions p)

    def value_and_grad(self, output, target, *, need_grad=True):
        """The sum of the terms over the batch divided by its rows, and ``(p - target) / n``."""
        xp = _namespace_of(output)
        n = float(output.shape[0])
        terms, p = self._terms(xp, output, target)
        return xp.sum(terms) / n, ((p - target) / n if need_grad else None)

    def per_sample(self, output, target):
        """Each row's terms, summed over its outputs."""
        xp = _namespace_of(output)
        return xp.sum(self._terms(xp, output, target)[0], axis=1)


class HalfPoissonDeviance(_SummedTerms):
    """scikit-learn's ``poisson``: half the deviance of ``exp(output)``, summed over outputs."""

    name = "sklearn_poisson"
    _terms = staticmethod(_poisson_terms)

    def output_transform(self, output):
        """Predictions: ``exp(output)``."""
        return _namespace_of(output).exp(output)


class LogisticLogLoss(_SummedTerms, BinaryCrossEntropy):
    """scikit-learn's clipped log loss on logistic outputs (0/1 targets), summed over outputs."""

    name = "sklearn_logistic_log_loss"
    _terms = staticmethod(_logistic_terms)


class SoftmaxLogLoss(_PreparedTargets, SoftmaxCrossEntropy):
    """scikit-learn's clipped log loss on a softmax output, integer labels as targets."""

    name = "sklearn_softmax_log_loss"

    def value_and_grad(self, output, target, *, need_grad=True):
        """Clipped log loss of the softmax, and ``(softmax(output) - onehot(target)) / n``."""
        xp = _namespace_of(output)
        n, k = output.shape
        p, logs = self._probabilities_and_logs(xp, output, target)
        value = -xp.mean(logs)
        if not need_grad:
            return value, None
        device = array_api_compat.device(p)
        if _in_place(p):  # subtract 1 at each row's label: no one-hot matrix
            p[xp.arange(n, device=device), target] -= 1.0
            p /= float(n)
            return value, p
        classes = xp.arange(k, dtype=target.dtype, device=device)
        hit = xp.astype(xp.reshape(target, (n, 1)) == classes, p.dtype)
        return value, (p - hit) / float(n)

    def _probabilities_and_logs(self, xp: Any, output: Any, target: Any) -> tuple[Any, Any]:
        """The softmax, and the log of each row's clipped probability of its label, (n, 1)."""
        p = self.output_transform(output)
        picked = xp.take_along_axis(p, xp.reshape(target, (output.shape[0], 1)), axis=1)
        return p, xp.log(_clipped(xp, picked))

    def per_sample(self, output, target):
        """The clipped log loss of each row."""
        xp = _namespace_of(output)
        return -xp.reshape(self._probabilities_and_logs(xp, output, target)[1], (-1,))


#: Each ``out_activation_``: the xpnet loss ``model_`` is built with, and scikit-learn's
#: training loss (the losses hold no state, so one instance serves every estimator).
OUTPUT_LOSSES: dict[str, tuple[str, Loss]] = {
    "softmax": ("cross_entropy", SoftmaxLogLoss()),
    "logistic": ("binary_cross_entropy", LogisticLogLoss()),
    "identity": ("mse", HalfSquaredError()),
    "exp": ("mse", HalfPoissonDeviance()),
}


def layer_keys(params: dict, suffix: str) -> list[str]:
    """The keys ending in `suffix` in layer order: ``".W"`` (what ``alpha`` decays) or ``".b"``."""
    return [k for k in params if k.endswith(suffix)]
