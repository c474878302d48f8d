"""Losses: value and gradient w.r.t. the model output, in one pass.

Every loss returns the *mean* over the batch as a 0-d array that stays on the
device (no host sync), and its gradient already divided by the batch size.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from . import _checks
from .backends import _namespace_of as _xp
from .layers import sigmoid
from .ops import ops_of

__all__ = [
    "Loss",
    "SoftmaxCrossEntropy",
    "MeanSquaredError",
    "BinaryCrossEntropy",
    "get_loss",
    "softmax",
    "log_softmax",
    "LOSSES",
]


def log_softmax(z: Any) -> Any:
    """Stable log-softmax over the last axis.

    Parameters
    ----------
    z : array of shape (n, k)

    Returns
    -------
    array of shape (n, k)

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> np.round(xn.losses.log_softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])), 4).tolist()
    [[-0.6931, -0.6931], [0.0, -1000.0]]
    """
    xp = _xp(z)
    s = z - xp.max(z, axis=-1, keepdims=True)
    return s - xp.log(xp.sum(xp.exp(s), axis=-1, keepdims=True))


def softmax(z: Any) -> Any:
    """Stable softmax over the last axis (each row sums to one).

    Parameters
    ----------
    z : array of shape (n, k)

    Returns
    -------
    array of shape (n, k)

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.losses.softmax(np.array([[1000.0, 1000.0], [0.0, -1000.0]])).tolist()  # no overflow
    [[0.5, 0.5], [1.0, 0.0]]
    """
    xp = _xp(z)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


class Loss:
    """Base class: a loss maps (model output, target) to a scalar.

    Subclasses implement :meth:`value_and_grad`; ``__call__`` returns only
    the value. ``classification`` says whether targets are class labels.

    Attributes
    ----------
    name : str
        The loss's name in configs and checkpoints.
    classification : bool
        Whether targets are labels (the model then reports accuracy).

    Examples
    --------
    A mean absolute error loss:

    >>> import numpy as np, xpnet as xn
    >>> class L1(xn.Loss):
    ...     name = "l1"
    ...     def value_and_grad(self, output, target, *, need_grad=True):
    ...         xp = xn.backends.backend_of(output).xp
    ...         d = output - target
    ...         grad = xp.sign(d) / (d.shape[0] * d.shape[1]) if need_grad else None
    ...         return xp.mean(xp.abs(d)), grad
    >>> float(L1()(np.array([[1.0, -3.0]]), np.array([[0.0, 0.0]])))
    2.0
    >>> sorted(xn.testing.check_gradients(L1(), np.array([[1.0, -3.0]]), np.zeros((1, 2))))
    ['output']
    """

    name = "loss"
    classification = False

    def __call__(self, output: Any, target: Any) -> Any:
        """The mean loss as a 0-d array on the output's device."""
        return self.value_and_grad(output, target, need_grad=False)[0]

    def value_and_grad(self, output: Any, target: Any, *, need_grad: bool = True):
        """Return ``(loss, d_loss/d_output)``; the gradient is None if not needed.

        Parameters
        ----------
        output : array of shape (n, k)
            Raw model outputs (logits for classifiers).
        target : array
            Labels or targets, as the loss expects.
        need_grad : bool
            False skips the gradient (evaluation).

        Returns
        -------
        loss : 0-d array
            The mean over the batch, on the output's device.
        grad : array of the output's shape, or None
            Already divided by the batch size.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> loss, grad = xn.MeanSquaredError().value_and_grad(np.array([[1.0, 3.0]]),
        ...                                                   np.array([[1.0, 1.0]]))
        >>> float(loss), grad.tolist()
        (2.0, [[0.0, 2.0]])
        """
        raise NotImplementedError

    def output_transform(self, output: Any) -> Any:
        """Map raw model outputs to predictions (probabilities for classifiers).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> xn.SoftmaxCrossEntropy().output_transform(np.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
        """
        return output

    # -- the contract the model and fit rely on --------------------------------
    def check_target(self, y: Any, *, backend: Any, dtype: str, n_outputs: int,
                     name: str = "y", values: bool = True) -> Any:
        """Validate targets and return them on ``backend`` in the form this loss takes.

        The default follows :attr:`classification`: a classification loss takes
        a 1-D array of integer labels in ``[0, n_outputs)`` (returned as int64)
        or an ``(n, n_outputs)`` array of probabilities in [0, 1]; any other
        loss takes float targets of the output's shape (``(n,)`` for one
        output), cast to the model's dtype. Override it for other targets.

        Parameters
        ----------
        y : array
            1-D or 2-D, already checked for its number of rows.
        backend : Backend
            Where the model lives; NumPy inputs are moved there.
        dtype : str
            The model's float dtype name.
        n_outputs : int
            The model's number of outputs.
        name : str
            The argument's name in error messages.
        values : bool
            Also check values (label range, NaN, [0, 1]); each check of a
            device array reads a value back from the device.

        Returns
        -------
        array
            On ``backend``.

        Raises
        ------
        TypeError, ValueError
            Naming the bad value and what was expected.

        Examples
        --------
        A custom loss with ``classification = True`` takes integer labels:

        >>> import numpy as np, xpnet as xn
        >>> class MyCE(xn.SoftmaxCrossEntropy):
        ...     name = "my_ce"
        >>> be = xn.get_backend("numpy")
        >>> MyCE().check_target(np.array([0, 2]), backend=be, dtype="float32",
        ...                     n_outputs=3).dtype
        dtype('int64')
        >>> try:
        ...     MyCE().check_target(np.array([0, 3]), backend=be, dtype="float32", n_outputs=3)
        ... except ValueError as exc:
        ...     print(exc)
        y has labels in [0, 3] but the model has 3 classes (labels must be in [0, 2])
        """
        if self.classification and y.ndim == 1:
            return _checks.check_labels(y, backend, n_outputs, name, values=values)
        return _checks.check_float_targets(
            y, backend, dtype, n_outputs, name, values=values,
            unit_range=self.name if self.classification else None)

    def predict_labels(self, output: Any) -> Any:
        """Predicted class labels (int64, shape ``(n,)``) from raw outputs.

        The default, for classification losses: the index of the largest
        output of each row. Regression losses return the outputs unchanged.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> xn.SoftmaxCrossEntropy().predict_labels(np.array([[0.1, 2.0], [3.0, -1.0]])).tolist()
        [1, 0]
        """
        if not self.classification:
            return output
        xp = _xp(output)
        return xp.argmax(output, axis=1)

    def count_correct(self, output: Any, target: Any) -> Any:
        """Number of correct predictions in a batch, a 0-d array of the output's dtype.

        ``None`` for losses that are not classification losses (no accuracy).
        The default compares :meth:`predict_labels` with the labels, or with
        the most probable class of each row for ``(n, k)`` probability targets.
        ``fit`` and ``evaluate`` divide the sum over batches by the number of
        rows to report ``accuracy``.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> out = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 1.0]])
        >>> float(xn.SoftmaxCrossEntropy().count_correct(out, np.array([1, 1, 1])))
        2.0
        """
        if not self.classification:
            return None
        xp = _xp(output)
        pred = self.predict_labels(output)
        truth = target if target.ndim == 1 else xp.argmax(target, axis=1)
        return xp.sum(xp.astype(pred == truth, output.dtype))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused and stable for large logits.

    Targets are integer class labels of shape ``(n,)`` or class probabilities
    of shape ``(n, k)``. With labels the gradient is
    ``(softmax(z) - onehot(y)) / n``; where the array library has a faster route
    (:meth:`xpnet.ops.Ops.softmax_ce_labels`: NumPy corrects the label column
    in place, without a one-hot matrix) that route is taken, with the same
    results.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> z = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    >>> float(xn.SoftmaxCrossEntropy()(z, np.array([0, 1])))
    0.0
    >>> loss, grad = xn.SoftmaxCrossEntropy().value_and_grad(np.zeros((1, 2)), np.array([0]))
    >>> round(float(loss), 4), grad.tolist()  # log(2), (softmax - onehot) / n
    (0.6931, [[-0.5, 0.5]])
    """

    name = "cross_entropy"
    classification = True

    def value_and_grad(self, output, target, *, need_grad=True):
        """Mean cross-entropy of ``softmax(output)`` and its gradient w.r.t. the logits."""
        xp = _xp(output)
        n, k = output.shape
        if target.ndim == 1:
            fast = ops_of(output).softmax_ce_labels(output, target, need_grad)
            if fast is not None:
                return fast
        s = output - xp.max(output, axis=1, keepdims=True)
        e = xp.exp(s)
        sum_e = xp.sum(e, axis=1, keepdims=True)
        lse = xp.log(sum_e)
        if target.ndim == 1:
            picked = xp.take_along_axis(s, xp.reshape(target, (n, 1)), axis=1)
            loss = xp.mean(lse - picked)
            if not need_grad:
                return loss, None
            p = e / sum_e
            hit = xp.reshape(target, (n, 1)) == xp.arange(
                k, dtype=target.dtype, device=array_api_compat.device(target))
            return loss, (p - xp.astype(hit, p.dtype)) * (1.0 / n)
        logp = s - lse
        loss = -xp.sum(target * logp) / float(n)
        if not need_grad:
            return loss, None
        p = e / sum_e
        return loss, (p * xp.sum(target, axis=1, keepdims=True) - target) / float(n)

    def output_transform(self, output):
        """Class probabilities: the softmax of the logits."""
        return softmax(output)


class MeanSquaredError(Loss):
    """Mean squared error over all elements, ``mean((output - target)**2)``.

    A 1-D target is accepted for a single-output model.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> float(xn.MeanSquaredError()(np.array([[1.0], [3.0]]), np.array([1.0, 1.0])))
    2.0
    """

    name = "mse"

    def value_and_grad(self, output, target, *, need_grad=True):
        """Mean squared error and its gradient ``2 (output - target) / size``."""
        xp = _xp(output)
        if target.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
            target = xp.reshape(target, (-1, 1))
        d = output - target
        loss = xp.mean(d * d)
        if not need_grad:
            return loss, None
        return loss, d * (2.0 / math.prod(output.shape))


class BinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on logits, stable for any logit size.

    Targets are 0/1 (or probabilities) with the output's shape; a 1-D target
    is accepted for a single-output model.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> bce = xn.BinaryCrossEntropy()
    >>> float(bce(np.array([[1000.0], [-1000.0]]), np.array([1.0, 0.0])))  # no overflow
    0.0
    >>> bce.output_transform(np.array([[0.0]])).tolist()
    [[0.5]]
    """

    name = "binary_cross_entropy"
    classification = True

    def value_and_grad(self, output, target, *, need_grad=True):
        """Mean binary cross-entropy on logits and its gradient ``(sigmoid - target) / size``."""
        xp = _xp(output)
        if target.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
            target = xp.reshape(target, (-1, 1))
        target = xp.astype(target, output.dtype)
        loss = xp.mean(xp.maximum(output, 0.0) - output * target
                       + xp.log1p(xp.exp(-xp.abs(output))))
        if not need_grad:
            return loss, None
        return loss, (sigmoid(output) - target) / float(math.prod(output.shape))

    def output_transform(self, output):
        """Probabilities: the sigmoid of the logits."""
        return sigmoid(output)

    def check_target(self, y, *, backend, dtype, n_outputs, name="y", values=True):
        """0/1 labels or probabilities of the output's shape (``(n,)`` for one output)."""
        return _checks.check_float_targets(y, backend, dtype, n_outputs, name, values=values,
                                           unit_range=self.name)

    def predict_labels(self, output):
        """1 where the logit is positive, else 0 (int64, the output's shape)."""
        xp = _xp(output)
        return xp.astype(output > 0, xp.int64)

    def count_correct(self, output, target):
        """Correct 0/1 predictions; with ``k`` outputs each one counts ``1/k``."""
        xp = _xp(output)
        t = target if target.ndim == output.ndim else xp.reshape(target, output.shape)
        k = output.shape[1] if output.ndim == 2 else 1
        return xp.sum(xp.astype((output > 0) == (t > 0.5), output.dtype)) / float(k)


#: Loss names accepted by models and ``fit``.
LOSSES = {
    "cross_entropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError,
    "binary_cross_entropy": BinaryCrossEntropy,
}
_ALIASES = {
    "softmax_cross_entropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
    "mean_squared_error": "mse",
    "bce": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
}


def get_loss(loss: str | Loss) -> Loss:
    """Resolve a loss name (``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"``).

    Parameters
    ----------
    loss : str or Loss
        A name or alias (case-insensitive, e.g. ``"bce"``), or an instance,
        returned as is.

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.losses.get_loss("bce"), xn.losses.get_loss("mean_squared_error").name
    (BinaryCrossEntropy(), 'mse')
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        key = _ALIASES.get(loss.lower(), loss.lower())
        if key in LOSSES:
            return LOSSES[key]()
    raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
