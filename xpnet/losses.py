"""Losses: value and gradient w.r.t. the model output, in one pass.

Every loss returns the *mean* over the batch as a 0-d array that stays on the
device (no host sync), and its gradient already divided by the batch size.
``per_sample`` gives the loss of each row (the mean is their mean), and
``weighted_value_and_grad`` the weighted mean ``sum(w * l) / sum(w)`` built
on both.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from . import _checks
from ._registry import Registry
from .backends import _namespace_of as _xp
from .backends import backend_of
from .layers import sigmoid
from .ops import ops_of

__all__ = [
    "Loss",
    "SoftmaxCrossEntropy",
    "MeanSquaredError",
    "BinaryCrossEntropy",
    "get_loss",
    "register_loss",
    "loss_from_config",
    "check_saveable",
    "softmax",
    "log_softmax",
    "LOSSES",
]


def _check_same_backend(output: Any, target: Any) -> None:
    """Refuse an output and a target of two array libraries, naming both."""
    if type(output) is type(target):
        return
    try:
        ob, tb = backend_of(output).name, backend_of(target).name
    except (TypeError, ValueError):
        return  # not arrays of a known library: the loss's own checks speak
    if ob != tb:
        raise TypeError(f"the output is a {ob} array, the target a {tb} one; a loss needs "
                        f"both on one backend (the model's methods move NumPy targets for "
                        f"you: model.evaluate(X, y), or xn.get_backend({ob!r}).asarray(y))")


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

    Subclasses implement [`value_and_grad`][xpnet.losses.Loss.value_and_grad], and
    [`per_sample`][xpnet.losses.Loss.per_sample] to train with sample weights;
    ``__call__`` returns only the value. ``classification`` says whether targets are
    class labels. A loss with constructor arguments returns them from
    [`get_config`][xpnet.losses.Loss.get_config], and a loss of your own is registered
    with [`register_loss`][xpnet.losses.register_loss] under its own ``name`` so that
    checkpoints rebuild it.

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
        _check_same_backend(output, target)
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

    def per_sample(self, output: Any, target: Any) -> Any:
        """The loss of each row, shape ``(n,)``;
        [`value_and_grad`][xpnet.losses.Loss.value_and_grad]'s value is their mean.

        Parameters
        ----------
        output : array of shape (n, k)
        target : array
            As [`value_and_grad`][xpnet.losses.Loss.value_and_grad] takes it.

        Returns
        -------
        array of shape (n,)

        Raises
        ------
        NotImplementedError
            For a loss that does not define it (it cannot then take sample weights).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> xn.MeanSquaredError().per_sample(np.array([[1.0, 3.0], [0.0, 0.0]]),
        ...                                  np.array([[1.0, 1.0], [0.0, 1.0]])).tolist()
        [2.0, 0.5]
        """
        raise NotImplementedError(f"{type(self).__name__} does not define per_sample(output, "
                                  "target), the loss of each row; define it to use "
                                  "per-sample losses and sample weights")

    @property
    def has_per_sample(self) -> bool:
        """Whether this loss defines [`per_sample`][xpnet.losses.Loss.per_sample]
        (and so takes sample weights).

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.SoftmaxCrossEntropy().has_per_sample, xn.Loss().has_per_sample
        (True, False)
        """
        return type(self).per_sample is not Loss.per_sample

    def weighted_value_and_grad(self, output: Any, target: Any, sample_weight: Any, *,
                                need_grad: bool = True):
        """Weighted mean ``sum(w * per_sample) / sum(w)`` and its gradient.

        Built on [`per_sample`][xpnet.losses.Loss.per_sample] (the value) and
        [`value_and_grad`][xpnet.losses.Loss.value_and_grad] (its gradient is each row's
        gradient over ``n``, so row ``i`` is scaled by ``n * w_i / sum(w)``). Integer
        weights give the loss and gradient of the batch with each row repeated ``w_i``
        times. A batch whose weights are all zero gives a zero loss and a zero gradient.

        Parameters
        ----------
        output : array of shape (n, k)
        target : array
        sample_weight : array of shape (n,)
            Non-negative, of the output's dtype and device.
        need_grad : bool

        Returns
        -------
        loss : 0-d array
        grad : array of the output's shape, or None

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> out, y = np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]])
        >>> loss, grad = xn.MeanSquaredError().weighted_value_and_grad(
        ...     out, y, np.array([3.0, 1.0]))
        >>> float(loss), grad.tolist()       # (3 * 1 + 1 * 9) / 4; 2 * w * d / sum(w)
        (3.0, [[1.5], [1.5]])
        """
        _check_same_backend(output, target)
        xp = _xp(output)
        n = output.shape[0]
        total = xp.sum(sample_weight)
        total = xp.where(total > 0, total, xp.ones_like(total))  # all zero: loss 0, grad 0
        rows = self.per_sample(output, target)
        if tuple(getattr(rows, "shape", ())) != (n,):
            raise ValueError(
                f"{type(self).__name__}.per_sample returned shape "
                f"{tuple(getattr(rows, 'shape', ()))} for {n} rows; it must be ({n},), one "
                "loss per row (a sum with keepdims=True broadcasts against the weights)")
        value = xp.sum(rows * sample_weight) / total
        if not need_grad:
            return value, None
        _, grad = self.value_and_grad(output, target)
        scale = sample_weight * (float(n) / total)
        return value, grad * xp.reshape(scale, (n,) + (1,) * (grad.ndim - 1))

    def get_config(self) -> dict:
        """Constructor arguments, JSON-serialisable, for checkpoints (none by default).

        Returns
        -------
        dict

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.SoftmaxCrossEntropy().get_config()
        {}
        """
        return {}

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

        The default follows `classification`: a classification loss takes
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
        if self.classification and n_outputs > 1 and y.ndim == 2 and y.shape[1] == 1:
            n = y.shape[0]
            raise ValueError(f"{name} has shape ({n}, 1), a column, but class labels go in a "
                             f"1-D array of shape ({n},): pass y[:, 0] (a pandas DataFrame: "
                             f"y.iloc[:, 0]; or a ({n}, {n_outputs}) array of class "
                             "probabilities)")
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
        The default compares [`predict_labels`][xpnet.losses.Loss.predict_labels] with
        the labels, or with the most probable class of each row for ``(n, k)``
        probability targets. ``fit`` and ``evaluate`` divide the sum over batches by the
        number of rows to report ``accuracy``.

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
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused and stable for large logits.

    Targets are integer class labels of shape ``(n,)`` or class probabilities
    of shape ``(n, k)``. With labels the gradient is
    ``(softmax(z) - onehot(y)) / n``; where the array library has a faster route
    ([`xpnet.ops.Ops.softmax_ce_labels`][]: NumPy corrects the label column
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

    def per_sample(self, output, target):
        """Cross-entropy of each row, from labels ``(n,)`` or probabilities ``(n, k)``."""
        xp = _xp(output)
        n = output.shape[0]
        logp = log_softmax(output)
        if target.ndim == 1:
            return xp.reshape(xp.take_along_axis(logp, xp.reshape(target, (n, 1)), axis=1),
                              (n,)) * -1.0
        return -xp.sum(target * logp, axis=1)

    def output_transform(self, output):
        """Class probabilities: the softmax of the logits."""
        return softmax(output)


def _as_output_shape(xp: Any, output: Any, target: Any) -> Any:
    """A 1-D target as the column of a single-output model; any other target as it is."""
    if target.ndim == 1 and output.ndim == 2 and output.shape[1] == 1:
        return xp.reshape(target, (-1, 1))
    return target


def _bce_terms(xp: Any, output: Any, target: Any) -> tuple[Any, Any]:
    """(target as output, elementwise BCE on logits ``max(z,0) - z t + log1p(exp(-|z|))``)."""
    target = xp.astype(_as_output_shape(xp, output, target), output.dtype)
    return target, (xp.maximum(output, 0.0) - output * target
                    + xp.log1p(xp.exp(-xp.abs(output))))


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
        d = output - _as_output_shape(xp, output, target)
        loss = xp.mean(d * d)
        if not need_grad:
            return loss, None
        return loss, d * (2.0 / math.prod(output.shape))

    def per_sample(self, output, target):
        """Mean squared error of each row (over its outputs)."""
        xp = _xp(output)
        d = output - _as_output_shape(xp, output, target)
        return xp.mean(d * d, axis=1)


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
        target, terms = _bce_terms(xp, output, target)
        loss = xp.mean(terms)
        if not need_grad:
            return loss, None
        return loss, (sigmoid(output) - target) / float(math.prod(output.shape))

    def per_sample(self, output, target):
        """Binary cross-entropy of each row (the mean over its outputs)."""
        xp = _xp(output)
        return xp.mean(_bce_terms(xp, output, target)[1], axis=1)

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
        return xp.astype(output > 0, backend_of(output).index_dtype)

    def count_correct(self, output, target):
        """Correct 0/1 predictions; with ``k`` outputs each one counts ``1/k``."""
        xp = _xp(output)
        t = target if target.ndim == output.ndim else xp.reshape(target, output.shape)
        k = output.shape[1] if output.ndim == 2 else 1
        return xp.sum(xp.astype((output > 0) == (t > 0.5), output.dtype)) / float(k)


LOSSES = {
    "cross_entropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError,
    "binary_cross_entropy": BinaryCrossEntropy,
}
"""Loss names accepted by models and ``fit`` (built-in ones; see
[`register_loss`][xpnet.losses.register_loss])."""
_ALIASES = {
    "softmax_cross_entropy": "cross_entropy",
    "categorical_crossentropy": "cross_entropy",
    "sparse_categorical_crossentropy": "cross_entropy",
    "mean_squared_error": "mse",
    "bce": "binary_cross_entropy",
    "binary_crossentropy": "binary_cross_entropy",
}
_REGISTRY = Registry("loss", "register_loss", Loss)
for _name, _cls in LOSSES.items():
    _REGISTRY.add(_name, _cls, builtin=True)


def register_loss(cls: type[Loss]) -> type[Loss]:
    """Register a loss class under its ``name`` so that checkpoints rebuild it.

    It works as [`register_layer`][xpnet.layers.register_layer] does (a decorator
    that returns ``cls``; one class per name, the same class again is allowed;
    [`xpnet.save`][] refuses a loss that loading could not rebuild), but the name
    is the class attribute ``name``, not the class name. A registered name also
    works wherever a loss name does (``MLP(..., loss="my_name")``).

    Parameters
    ----------
    cls : type
        A [`Loss`][xpnet.losses.Loss] subclass with a lower-case ``name`` of its own:
        not the base's ``"loss"``, nor a built-in name or alias.

    Raises
    ------
    TypeError
        When ``cls`` is not a [`Loss`][xpnet.losses.Loss] subclass.
    ValueError
        When its ``name`` is missing, not lower case, a built-in alias, or registered
        for another class.

    Examples
    --------
    >>> import xpnet as xn
    >>> @xn.register_loss
    ... class Smoothed(xn.SoftmaxCrossEntropy):
    ...     name = "smoothed_example"
    ...     def __init__(self, smoothing=0.1):
    ...         self.smoothing = smoothing
    ...     def get_config(self):
    ...         return {"smoothing": self.smoothing}
    >>> xn.losses.loss_from_config({"name": "smoothed_example", "config": {"smoothing": 0.2}})
    Smoothed(smoothing=0.2)
    >>> class Mine(xn.SoftmaxCrossEntropy):   # keeps the built-in name
    ...     pass
    >>> try:
    ...     xn.register_loss(Mine)
    ... except ValueError as exc:
    ...     print(str(exc).split(";")[0])
    loss name 'cross_entropy' is taken by xpnet.losses.SoftmaxCrossEntropy
    """
    _REGISTRY.check_class(cls)
    name = cls.name
    if not isinstance(name, str) or name in ("", Loss.name):
        raise ValueError(f"{cls.__name__} needs a name of its own: set the class attribute "
                         f"name = '...' (got {name!r})")
    if name.lower() != name:
        raise ValueError(f"loss names are lower case (names are looked up case-insensitively), "
                         f"got {name!r}")
    if name in _ALIASES:
        raise ValueError(f"loss name {name!r} is an alias of the built-in "
                         f"{_ALIASES[name]!r}; give {cls.__name__} a name of its own")
    _REGISTRY.add(name, cls)
    return cls


def get_loss(loss: str | Loss) -> Loss:
    """Resolve a loss name (``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"``).

    Parameters
    ----------
    loss : str or Loss
        A name or alias (case-insensitive, e.g. ``"bce"``), a name registered
        with [`register_loss`][xpnet.losses.register_loss], or an instance, returned as is.

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
        cls = _REGISTRY.get(key)
        if cls is not None:
            return cls()
    raise ValueError(f"unknown loss {loss!r}; choose one of: {', '.join(_REGISTRY.names())}")


def loss_from_config(config: str | dict) -> Loss:
    """Rebuild a loss from a model config's ``"loss"`` entry.

    Parameters
    ----------
    config : str or dict
        A name (a loss without constructor arguments), or
        ``{"name": name, "config": kwargs}``.

    Returns
    -------
    Loss

    Raises
    ------
    ValueError
        For an unknown name (a custom loss must be registered with
        [`register_loss`][xpnet.losses.register_loss]) or a config that does not fit
        its constructor.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.losses.loss_from_config("mse"), xn.losses.loss_from_config({"name": "mse"})
    (MeanSquaredError(), MeanSquaredError())
    """
    if isinstance(config, str):
        return get_loss(config)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise ValueError(f"loss config must be a name or a dict with a 'name', got {config!r}")
    name, kwargs = config["name"], config.get("config", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"loss {name}: config must be a dict, got {kwargs!r}")
    return _REGISTRY.build(name, kwargs, "loss")


def check_saveable(loss: Loss) -> str | dict:
    """The loss's entry in a model config, after checking that loading rebuilds it.

    Parameters
    ----------
    loss : Loss

    Returns
    -------
    str or dict
        The name alone for a loss without constructor arguments, else
        ``{"name": ..., "config": ...}``.

    Raises
    ------
    ValueError
        For a class that is not registered under its name, or a
        ``get_config()`` that does not rebuild it.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.losses.check_saveable(xn.MeanSquaredError())
    'mse'
    """
    cfg = _REGISTRY.check_rebuildable(loss, loss.name, f"loss {type(loss).__name__}")
    return loss.name if not cfg else {"name": loss.name, "config": cfg}


def loss_config(loss: Loss) -> str | dict:
    """A loss's entry in a model config, unchecked (see
    [`check_saveable`][xpnet.losses.check_saveable]).

    Parameters
    ----------
    loss : Loss

    Returns
    -------
    str or dict

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.losses.loss_config(xn.SoftmaxCrossEntropy())
    'cross_entropy'
    """
    cfg = loss.get_config()
    return loss.name if not cfg else {"name": loss.name, "config": cfg}
