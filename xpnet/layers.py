"""Layers: small objects with math only; parameters live in plain dicts.

The contract (see [`Layer`][xpnet.layers.Layer]) is four methods. A layer never stores its
parameters; the model passes them in, so the same layer object works for any
backend and optimizers can treat parameters as plain arrays.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._registry import Registry
from .backends import Backend, backend_of
from .backends import _namespace_of as _xp
from .initializers import get_initializer
from .ops import ops_of
from .random import RNG

__all__ = [
    "Layer",
    "Dense",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "GELU",
    "Dropout",
    "LayerNorm",
    "BatchNorm",
    "register_layer",
    "layer_from_config",
    "check_saveable",
    "ACTIVATIONS",
]

Params = dict[str, Any]


class Layer:
    """Base class and contract for every layer.

    Subclasses override the methods below. ``forward`` returns the output and
    a *cache* (anything the backward pass needs); ``backward`` receives that
    cache and the gradient of the loss w.r.t. the output and returns the
    gradient w.r.t. the input and a dict of parameter gradients with the same
    keys as ``params``.

    Attributes
    ----------
    stochastic : bool
        When True the model passes ``rng=`` (an [`xpnet.RNG`][]) to
        ``forward`` during training (used by [`Dropout`][xpnet.layers.Dropout]).
    trainable : bool
        False freezes the layer's parameters: ``fit``, ``loss_and_grads`` and
        the optimizers leave them alone (see
        [`xpnet.Sequential.freeze`][xpnet.model.Sequential.freeze]).
        Checkpoints record it.

    Examples
    --------
    A custom layer that scales its input by a learned vector:

    >>> import xpnet as xn
    >>> class Scale(xn.Layer):
    ...     def init(self, in_features, rng, *, backend, dtype):
    ...         return {"s": backend.xp.ones((in_features,), dtype=dtype, device=backend.device)}
    ...     def forward(self, params, x, *, train=False):
    ...         return x * params["s"], x
    ...     def backward(self, params, cache, dy):
    ...         xp = xn.backends.backend_of(dy).xp
    ...         return dy * params["s"], {"s": xp.sum(dy * cache, axis=0)}
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> sorted(xn.testing.check_gradients(Scale(), x, backend="numpy"))
    ['s', 'x']
    """

    stochastic = False
    trainable = True

    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """Create this layer's parameters (an empty dict for parameter-free layers).

        Parameters
        ----------
        in_features : int
            Number of input features.
        rng : RNG
            The model's generator; draw initial weights from it.
        backend : Backend
            Where the parameters live (``backend.xp``, ``backend.device``).
        dtype : dtype
            The parameters' dtype in ``backend.xp``.

        Returns
        -------
        dict of str to array

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> params = xn.Dense(3).init(2, xn.RNG(0), backend=b, dtype=b.xp.float32)
        >>> {k: v.shape for k, v in params.items()}
        {'W': (2, 3), 'b': (3,)}
        """
        return {}

    def forward(self, params: Params, x: Any, *, train: bool = False) -> tuple[Any, Any]:
        """Compute the output and the cache the backward pass needs.

        Parameters
        ----------
        params : dict of str to array
            This layer's parameters (from [`init`][xpnet.layers.Layer.init]).
        x : array of shape (n, in_features)
        train : bool
            Training mode (e.g. dropout active).

        Returns
        -------
        y : array of shape (n, out_features)
        cache : object
            Anything [`backward`][xpnet.layers.Layer.backward] needs (often ``x`` or ``y``).

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> y, cache = xn.ReLU().forward({}, np.array([[-1.0, 2.0]]))
        >>> y.tolist()
        [[0.0, 2.0]]
        """
        raise NotImplementedError

    def backward(self, params: Params, cache: Any, dy: Any) -> tuple[Any, Params]:
        """Return ``(dx, grads)`` given the cache and the output gradient ``dy``.

        Parameters
        ----------
        params : dict of str to array
        cache : object
            The cache [`forward`][xpnet.layers.Layer.forward] returned.
        dy : array of shape (n, out_features)
            Gradient of the loss w.r.t. this layer's output.

        Returns
        -------
        dx : array of shape (n, in_features)
            Gradient w.r.t. the input.
        grads : dict of str to array
            Gradient w.r.t. each parameter, same keys as ``params``.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> dense = xn.Dense(3)
        >>> params = dense.init(2, xn.RNG(0), backend=b, dtype=b.xp.float64)
        >>> y, cache = dense.forward(params, np.ones((4, 2)))
        >>> dx, grads = dense.backward(params, cache, np.ones((4, 3)))
        >>> dx.shape, {k: g.shape for k, g in grads.items()}
        ((4, 2), {'W': (2, 3), 'b': (3,)})
        """
        raise NotImplementedError

    def out_features(self, in_features: int) -> int:
        """Number of output features given the number of input features.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.ReLU().out_features(5), xn.Dense(3).out_features(5)
        (5, 3)
        """
        return in_features

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """The shapes of the parameters [`init`][xpnet.layers.Layer.init] creates for
        ``in_features`` inputs.

        The checkpoint loader compares every layer's shapes with the file's
        tensors before it allocates anything, so a file whose architecture
        does not match its tensors is refused cheaply. A layer that does not
        override [`init`][xpnet.layers.Layer.init] has no parameters (``{}``); a layer that
        overrides ``init`` but not this method returns ``None`` (not
        declared), and its tensors are checked after the model is built.

        Parameters
        ----------
        in_features : int

        Returns
        -------
        dict of str to tuple of int, or None

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.Dense(3).param_shapes(5), xn.ReLU().param_shapes(5)
        ({'W': (5, 3), 'b': (3,)}, {})
        """
        return {} if type(self).init is Layer.init else None

    def init_buffers(self, in_features: int, *, backend: Backend, dtype: Any) -> Params:
        """Create this layer's buffers: state that is not trained (an empty dict by default).

        A buffer (e.g. [`BatchNorm`][xpnet.layers.BatchNorm]'s running mean) lives in
        the model beside the parameters, in ``model.buffers`` under
        ``"<layer index>.<name>"``: it is saved in checkpoints, moved by
        ``model.to``, exported to ONNX, and never seen by optimizers, weight decay or
        gradient checks. A layer that has buffers receives them in ``forward`` as the
        keyword ``buffers=`` (a dict by short name) and says how a training step changes
        them in [`update_buffers`][xpnet.layers.Layer.update_buffers].

        Parameters
        ----------
        in_features : int
        backend : Backend
        dtype : dtype

        Returns
        -------
        dict of str to array

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> bufs = xn.BatchNorm().init_buffers(3, backend=b, dtype=b.xp.float64)
        >>> {k: v.tolist() for k, v in bufs.items()}
        {'running_mean': [0.0, 0.0, 0.0], 'running_var': [1.0, 1.0, 1.0]}
        """
        return {}

    def buffer_shapes(self, in_features: int) -> dict[str, tuple[int, ...]] | None:
        """The shapes of the buffers [`init_buffers`][xpnet.layers.Layer.init_buffers]
        creates, as [`param_shapes`][xpnet.layers.Layer.param_shapes] gives those of
        the parameters (``{}`` without buffers, ``None`` when not declared).

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.BatchNorm().buffer_shapes(4), xn.Dense(3).buffer_shapes(4)
        ({'running_mean': (4,), 'running_var': (4,)}, {})
        """
        return {} if type(self).init_buffers is Layer.init_buffers else None

    def update_buffers(self, buffers: Params, cache: Any) -> Params:
        """The buffers' new values after a training ``forward`` whose cache is ``cache``.

        Pure: returns new arrays and changes nothing. The model calls it after each
        training forward pass and assigns the result only when the step is applied:
        ``fit`` keeps the old values for a step its non-finite guard skips.

        Parameters
        ----------
        buffers : dict of str to array
            The current values, by short name.
        cache : object
            What the training ``forward`` returned as its cache.

        Returns
        -------
        dict of str to array
            The same keys and shapes as ``buffers``.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> bn = xn.BatchNorm(momentum=0.5)
        >>> bufs = bn.init_buffers(1, backend=b, dtype=b.xp.float64)
        >>> params = bn.init(1, xn.RNG(0), backend=b, dtype=b.xp.float64)
        >>> _, cache = bn.forward(params, np.array([[1.0], [3.0]]), train=True, buffers=bufs)
        >>> {k: v.tolist() for k, v in bn.update_buffers(bufs, cache).items()}
        {'running_mean': [1.0], 'running_var': [1.5]}
        """
        return buffers

    def get_config(self) -> dict:
        """Constructor arguments, JSON-serialisable, for checkpoints.

        Returns
        -------
        dict
            Keyword arguments that rebuild an equal layer
            (see [`layer_from_config`][xpnet.layers.layer_from_config]).

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.Dropout(0.25).get_config()
        {'rate': 0.25}
        """
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Parameters
    ----------
    units : int
        Number of output features.
    init : str
        Weight initializer: ``"he_normal"`` (default, for ReLU-family
        activations), ``"he_uniform"``, ``"glorot_uniform"`` (tanh/sigmoid) or
        ``"uniform"`` (U(-0.5, 0.5), the original notebook's).
    bias : bool
        Whether to learn a bias (initialised to zero).

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.Dense(10).out_features(784)
    10
    """

    def __init__(self, units: int, *, init: str = "he_normal", bias: bool = True):
        if isinstance(units, bool) or not isinstance(units, (int, numbers.Integral)) or units <= 0:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        get_initializer(init)
        self.units = int(units)  # a NumPy integer (as MLP takes sizes) becomes a Python int
        self.init_name = init
        self.bias = bias

    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """``W`` of shape ``(in_features, units)`` from the initializer; ``b`` zeros."""
        w = get_initializer(self.init_name)((in_features, self.units), rng, backend, dtype)
        params = {"W": w}
        if self.bias:
            params["b"] = backend.xp.zeros((self.units,), dtype=dtype, device=backend.device)
        return params

    def forward(self, params: Params, x: Any, *, train: bool = False) -> tuple[Any, Any]:
        """``x @ W + b``; the cache is ``x``."""
        y = x @ params["W"]
        if self.bias:
            y += params["b"]  # in place: the product is a fresh array
        return y, x

    def backward(self, params: Params, cache: Any, dy: Any, *, need_input_grad: bool = True,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """Gradients of ``W`` and ``b``; ``dx`` is None when ``need_input_grad`` is False.

        The model passes ``need_input_grad=False`` to its lowest trainable
        layer, which saves one matrix product per step, and
        ``need_param_grads=False`` to a frozen one above it (then ``grads`` is
        empty).
        """
        x = cache
        xp = _xp(dy)
        grads = {}
        if need_param_grads:
            grads["W"] = xp.matrix_transpose(x) @ dy
            if self.bias:
                grads["b"] = ops_of(dy).sum_rows(xp, dy)
        dx = dy @ xp.matrix_transpose(params["W"]) if need_input_grad else None
        return dx, grads

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]]:
        """``W``: ``(in_features, units)``; ``b``: ``(units,)`` when there is a bias."""
        shapes: dict[str, tuple[int, ...]] = {"W": (in_features, self.units)}
        if self.bias:
            shapes["b"] = (self.units,)
        return shapes

    def out_features(self, in_features: int) -> int:
        """``units``, whatever the input size."""
        return self.units

    def get_config(self) -> dict:
        """Constructor arguments: ``units``, ``init``, ``bias``."""
        return {"units": self.units, "init": self.init_name, "bias": self.bias}


class ReLU(Layer):
    """Rectified linear unit ``max(x, 0)``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> relu = xn.ReLU()
    >>> y, cache = relu.forward({}, np.array([[-1.0, 2.0]]))
    >>> y.tolist(), relu.backward({}, cache, np.ones((1, 2)))[0].tolist()
    ([[0.0, 2.0]], [[0.0, 1.0]])
    """

    def forward(self, params, x, *, train=False):
        """``max(x, 0)``; the cache is the output."""
        xp = _xp(x)
        y = xp.maximum(x, 0.0)
        return y, y

    def backward(self, params, cache, dy):
        """``dy`` where the output is positive, else 0."""
        return ops_of(dy).relu_grad(_xp(dy), dy, cache), {}


class LeakyReLU(Layer):
    """Leaky ReLU: ``x`` for positive inputs, ``negative_slope * x`` otherwise.

    Parameters
    ----------
    negative_slope : float
        Slope for negative inputs (default 0.01).

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.LeakyReLU(0.1).forward({}, np.array([[-1.0, 2.0]]))[0].tolist()
    [[-0.1, 2.0]]
    """

    def __init__(self, negative_slope: float = 0.01):
        if not (isinstance(negative_slope, (int, float)) and math.isfinite(negative_slope)):
            raise ValueError(f"negative_slope must be a finite float, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, params, x, *, train=False):
        """``x`` or ``negative_slope * x``; the cache is the input."""
        xp = _xp(x)
        return xp.where(x > 0, x, x * self.negative_slope), x

    def backward(self, params, cache, dy):
        """``dy`` for positive inputs, ``negative_slope * dy`` otherwise."""
        xp = _xp(dy)
        return xp.where(cache > 0, dy, dy * self.negative_slope), {}

    def get_config(self):
        """Constructor arguments: ``negative_slope``."""
        return {"negative_slope": self.negative_slope}


class Tanh(Layer):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> tanh = xn.Tanh()
    >>> y, cache = tanh.forward({}, np.array([[0.0, 100.0]]))
    >>> y.tolist(), tanh.backward({}, cache, np.ones((1, 2)))[0].tolist()
    ([[0.0, 1.0]], [[1.0, 0.0]])
    """

    def forward(self, params, x, *, train=False):
        """``tanh(x)``; the cache is the output."""
        y = _xp(x).tanh(x)
        return y, y

    def backward(self, params, cache, dy):
        """``dy * (1 - y**2)``."""
        return dy * (1.0 - cache * cache), {}


def sigmoid(x: Any) -> Any:
    """Numerically stable logistic sigmoid for any Array API array.

    Parameters
    ----------
    x : array

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.layers.sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist()  # no overflow
    [0.0, 0.5, 1.0]
    """
    xp = _xp(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Sigmoid(Layer):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (computed without overflow).

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> sig = xn.Sigmoid()
    >>> y, cache = sig.forward({}, np.array([[-1000.0, 0.0, 1000.0]]))
    >>> y.tolist(), sig.backward({}, cache, np.ones((1, 3)))[0].tolist()
    ([[0.0, 0.5, 1.0]], [[0.0, 0.25, 0.0]])
    """

    def forward(self, params, x, *, train=False):
        """The stable sigmoid of ``x``; the cache is the output."""
        y = sigmoid(x)
        return y, y

    def backward(self, params, cache, dy):
        """``dy * y * (1 - y)``."""
        return dy * cache * (1.0 - cache), {}


_GELU_C = math.sqrt(2.0 / math.pi)


class GELU(Layer):
    """Gaussian error linear unit, tanh approximation.

    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``; the Array API
    standard has no ``erf``, so the exact form is not portable. This matches
    ``torch.nn.GELU(approximate="tanh")``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> y, cache = xn.GELU().forward({}, np.array([[0.0, 1.0, 10.0]]))
    >>> np.round(y, 4).tolist()
    [[0.0, 0.8412, 10.0]]
    """

    def forward(self, params, x, *, train=False):
        """The tanh-approximate GELU of ``x``; the cache is ``(x, tanh(...))``."""
        xp = _xp(x)
        t = xp.tanh(_GELU_C * (x + 0.044715 * x * x * x))
        return 0.5 * x * (1.0 + t), (x, t)

    def backward(self, params, cache, dy):
        """``dy`` times the derivative of the tanh approximation."""
        x, t = cache
        dinner = _GELU_C * (1.0 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner), {}


class Dropout(Layer):
    """Inverted dropout: zero each input with probability ``rate`` while training.

    Kept inputs are scaled by ``1 / (1 - rate)`` so evaluation needs no change.

    Parameters
    ----------
    rate : float
        Drop probability in ``[0, 1)``.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> drop, x = xn.Dropout(0.5), np.ones((2, 4))
    >>> drop.forward({}, x)[0] is x  # evaluation: the identity
    True
    >>> y, mask = drop.forward({}, x, train=True, rng=xn.RNG(0))
    >>> sorted(set(y.ravel().tolist()))  # kept inputs are scaled by 1 / (1 - rate)
    [0.0, 2.0]
    """

    stochastic = True

    def __init__(self, rate: float = 0.5):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def forward(self, params, x, *, train=False, rng: RNG | None = None):
        """Mask and scale ``x`` in training (``rng`` required), identity otherwise."""
        if not train or self.rate == 0.0:
            return x, None
        if rng is None:
            raise ValueError("Dropout in training mode needs rng=")
        mask = rng.keep_mask(tuple(x.shape), 1.0 - self.rate, backend_of(x), x.dtype)
        return x * mask, mask

    def backward(self, params, cache, dy):
        """``dy`` times the forward pass's mask."""
        return (dy if cache is None else dy * cache), {}

    def get_config(self):
        """Constructor arguments: ``rate``."""
        return {"rate": self.rate}


def _check_norm(layer: str, eps: Any, affine: Any) -> float:
    """``eps`` as a float, after checking it and ``affine`` for the ``layer`` named."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) \
            or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"{layer} eps must be a finite float > 0, got {eps!r}")
    if not isinstance(affine, bool):
        raise TypeError(f"{layer} affine must be True or False, got {affine!r}")
    return float(eps)


class _Norm(Layer):
    """The parameters of LayerNorm and BatchNorm: a per-feature ``gamma`` and ``beta``."""

    affine = True

    def init(self, in_features: int, rng: RNG, *, backend: Backend, dtype: Any) -> Params:
        """``gamma`` ones and ``beta`` zeros, ``(in_features,)`` each (none without ``affine``)."""
        if not self.affine:
            return {}
        xp, dev = backend.xp, backend.device
        return {"gamma": xp.ones((in_features,), dtype=dtype, device=dev),
                "beta": xp.zeros((in_features,), dtype=dtype, device=dev)}

    def param_shapes(self, in_features: int) -> dict[str, tuple[int, ...]]:
        """``gamma`` and ``beta``: ``(in_features,)`` each (none without ``affine``)."""
        return {"gamma": (in_features,), "beta": (in_features,)} if self.affine else {}


def _gamma_beta_grads(dy: Any, xhat: Any, need: bool) -> Params:
    xp = _xp(dy)
    return {"gamma": xp.sum(dy * xhat, axis=0), "beta": xp.sum(dy, axis=0)} if need else {}


class LayerNorm(_Norm):
    """Layer normalization: each row to zero mean and unit variance, then scaled and shifted.

    ``gamma * xhat + beta``, with ``gamma`` and ``beta`` learned per feature (Ba et
    al., 2016; ``torch.nn.LayerNorm`` over the features). The statistics are those
    of each row alone, so training and evaluation compute the same thing and the
    batch size does not matter.

    Parameters
    ----------
    eps : float
        Added to the variance, > 0 (PyTorch's default ``1e-5``).
    affine : bool
        Learn ``gamma`` (initialised to ones) and ``beta`` (zeros), one per feature.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> norm = xn.LayerNorm()
    >>> params = norm.init(3, xn.RNG(0), backend=b, dtype=b.xp.float64)
    >>> y, _ = norm.forward(params, np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]))
    >>> np.round(y, 4).tolist()
    [[-1.2247, 0.0, 1.2247], [-0.7071, -0.7071, 1.4142]]
    """

    def __init__(self, eps: float = 1e-5, *, affine: bool = True):
        self.eps, self.affine = _check_norm("LayerNorm", eps, affine), affine

    def forward(self, params: Params, x: Any, *, train: bool = False) -> tuple[Any, Any]:
        """The normalised rows, scaled and shifted; the cache is ``(xhat, 1 / std)``."""
        xp = _xp(x)
        xc = x - xp.mean(x, axis=1, keepdims=True)
        inv = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=1, keepdims=True) + self.eps)
        xhat = xc * inv
        y = xhat * params["gamma"] + params["beta"] if self.affine else xhat
        return y, (xhat, inv)

    def backward(self, params: Params, cache: Any, dy: Any, *, need_input_grad: bool = True,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """``dx = (g - mean(g) - xhat * mean(g * xhat)) / std`` with ``g = dy * gamma``;
        ``gamma``: the column sums of ``dy * xhat``, ``beta``: those of ``dy``."""
        xhat, inv = cache
        xp = _xp(dy)
        grads = _gamma_beta_grads(dy, xhat, self.affine and need_param_grads)
        if not need_input_grad:
            return None, grads
        g = dy * params["gamma"] if self.affine else dy
        dx = inv * (g - xp.mean(g, axis=1, keepdims=True)
                    - xhat * xp.mean(g * xhat, axis=1, keepdims=True))
        return dx, grads

    def get_config(self) -> dict:
        """Constructor arguments: ``eps``, ``affine``."""
        return {"eps": self.eps, "affine": self.affine}


class BatchNorm(_Norm):
    """Batch normalization: each feature to zero mean and unit variance over the batch.

    ``torch.nn.BatchNorm1d``'s semantics (Ioffe & Szegedy, 2015). In training
    (``train=True``: ``fit`` and ``loss_and_grads``) each feature is normalised
    with the batch's mean and biased variance, and the running statistics, two
    buffers, move towards the batch's: ``running = (1 - momentum) * running +
    momentum * batch``, with the unbiased variance (``n / (n - 1)`` times the
    biased one). In evaluation (``predict``, ``evaluate``, ``forward``, ONNX export)
    the running statistics are used, so a row's output does not depend on its batch.
    ``gamma * xhat + beta`` follows, with ``gamma`` and ``beta`` learned per feature.

    The running statistics are buffers (``model.buffers``, keys ``"<i>.running_mean"``
    and ``"<i>.running_var"``): saved and loaded with the model, never trained, and
    left unchanged by a step that ``fit``'s non-finite guard skips. Under data-parallel
    training ([`xpnet.distributed`][]) each rank normalises with its own share of the
    batch and keeps its own running statistics; rank 0's are the ones a checkpoint
    holds, unless ``fit(sync_buffers=True)`` averages them over the ranks at every
    epoch's end. A training batch needs at least two rows (``fit`` refuses a
    ``batch_size`` that leaves fewer). Freezing the layer
    ([`freeze`][xpnet.model.Sequential.freeze]) stops ``gamma`` and ``beta``, not the
    running statistics, which follow the training batches as in PyTorch (where
    ``requires_grad=False`` does not stop them either).

    Parameters
    ----------
    momentum : float
        In ``[0, 1]``: the weight of each batch in the running statistics
        (PyTorch's default 0.1; Keras calls ``1 - momentum`` its momentum).
    eps : float
        Added to the variance, > 0 (PyTorch's default ``1e-5``).
    affine : bool
        Learn ``gamma`` (initialised to ones) and ``beta`` (zeros), one per feature.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> X = np.random.default_rng(0).normal(3.0, 2.0, size=(256, 4)).astype("float32")
    >>> y = (X[:, 0] > 3.0).astype("int64")
    >>> m = xn.Sequential([xn.Dense(8), xn.BatchNorm(), xn.ReLU(), xn.Dense(2)],
    ...                   in_features=4, backend="numpy", seed=0)
    >>> sorted(m.params), sorted(m.buffers)
    (['0.W', '0.b', '1.beta', '1.gamma', '3.W', '3.b'], ['1.running_mean', '1.running_var'])
    >>> h = m.fit(X, y, epochs=10, batch_size=32, optimizer=xn.Adam(lr=0.01), verbose=0)
    >>> m.buffers["1.running_mean"].shape, m.evaluate(X, y)["accuracy"] > 0.9
    ((8,), True)
    """

    _min_batch_rows = 2  # fit refuses smaller training batches before its first step

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, *, affine: bool = True):
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be a float in [0, 1], got {momentum!r}")
        self.eps, self.affine = _check_norm("BatchNorm", eps, affine), affine
        self.momentum = float(momentum)

    def init_buffers(self, in_features: int, *, backend: Backend, dtype: Any) -> Params:
        """``running_mean`` zeros and ``running_var`` ones, of shape ``(in_features,)``."""
        xp, dev = backend.xp, backend.device
        return {"running_mean": xp.zeros((in_features,), dtype=dtype, device=dev),
                "running_var": xp.ones((in_features,), dtype=dtype, device=dev)}

    def buffer_shapes(self, in_features: int) -> dict[str, tuple[int, ...]]:
        """``running_mean`` and ``running_var``: ``(in_features,)`` each."""
        return {"running_mean": (in_features,), "running_var": (in_features,)}

    def forward(self, params: Params, x: Any, *, train: bool = False,
                buffers: Params | None = None) -> tuple[Any, Any]:
        """Normalise with the batch's statistics (training) or the running ones; the
        cache is ``(xhat, 1 / std, (mean, biased variance, rows) or None)``."""
        xp = _xp(x)
        if train:
            n = x.shape[0]
            if n < 2:
                raise ValueError(
                    f"BatchNorm in training needs at least 2 rows per batch, got {n}: a "
                    "batch variance of one row is undefined. Choose a batch_size that does "
                    "not leave a last batch of one row (rows % batch_size == 1)")
            mean = xp.mean(x, axis=0)
            xc = x - mean
            var = xp.mean(xc * xc, axis=0)
            stats = (mean, var, n)
        else:
            if buffers is None:
                raise ValueError("BatchNorm in evaluation needs buffers= (its running "
                                 "statistics: init_buffers)")
            xc, var, stats = x - buffers["running_mean"], buffers["running_var"], None
        inv = 1.0 / xp.sqrt(var + self.eps)
        xhat = xc * inv
        y = xhat * params["gamma"] + params["beta"] if self.affine else xhat
        return y, (xhat, inv, stats)

    def backward(self, params: Params, cache: Any, dy: Any, *, need_input_grad: bool = True,
                 need_param_grads: bool = True) -> tuple[Any, Params]:
        """Training: ``dx = (g - mean(g) - xhat * mean(g * xhat)) / std`` over the batch
        with ``g = dy * gamma``; evaluation: ``dx = g / std``. ``gamma``: the column sums
        of ``dy * xhat``, ``beta``: those of ``dy``."""
        xhat, inv, stats = cache
        xp = _xp(dy)
        grads = _gamma_beta_grads(dy, xhat, self.affine and need_param_grads)
        if not need_input_grad:
            return None, grads
        g = dy * params["gamma"] if self.affine else dy
        if stats is None:
            return g * inv, grads
        dx = inv * (g - xp.mean(g, axis=0) - xhat * xp.mean(g * xhat, axis=0))
        return dx, grads

    def update_buffers(self, buffers: Params, cache: Any) -> Params:
        """``(1 - momentum) * running + momentum * batch`` for the mean and the unbiased
        variance of the training batch the cache is of."""
        stats = cache[2]
        if stats is None:  # an evaluation forward leaves them as they are
            return buffers
        mean, var, n = stats
        m = self.momentum
        return {"running_mean": (1.0 - m) * buffers["running_mean"] + m * mean,
                "running_var": (1.0 - m) * buffers["running_var"] + (m * n / (n - 1)) * var}

    def get_config(self) -> dict:
        """Constructor arguments: ``momentum``, ``eps``, ``affine``."""
        return {"momentum": self.momentum, "eps": self.eps, "affine": self.affine}


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
}
"""Activation names accepted by [`xpnet.MLP`][] and the CLI."""

_REGISTRY = Registry("layer", "register_layer", Layer)
for _cls in (Dense, ReLU, LeakyReLU, Tanh, Sigmoid, GELU, Dropout, LayerNorm, BatchNorm):
    _REGISTRY.add(_cls.__name__, _cls, builtin=True)


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Register a custom layer class so checkpoints that use it can be loaded.

    Usable as a decorator. Layers are stored by class name, and a name belongs
    to one class: registering a different class under a name that is taken
    (``Dense``, or another module's class of the same name) is refused, so a
    user's ``Dense`` can never change how other checkpoints load. Registering
    the same class again (or its redefinition in the same module, as when a
    notebook cell is re-run) is allowed.

    [`xpnet.save`][] refuses a model with a layer that loading could not
    rebuild: an unregistered class, or one whose ``get_config()`` does not
    return every constructor argument.

    Parameters
    ----------
    cls : type
        A [`Layer`][xpnet.layers.Layer] subclass whose ``get_config()`` returns its
        constructor keyword arguments.

    Returns
    -------
    type
        ``cls`` unchanged.

    Raises
    ------
    TypeError
        When ``cls`` is not a [`Layer`][xpnet.layers.Layer] subclass.
    ValueError
        When its name is registered for a different class.

    Examples
    --------
    >>> import xpnet as xn
    >>> @xn.register_layer
    ... class Double(xn.Layer):
    ...     def forward(self, params, x, *, train=False):
    ...         return 2 * x, None
    ...     def backward(self, params, cache, dy):
    ...         return 2 * dy, {}
    >>> xn.layers.layer_from_config({"class": "Double", "config": {}})
    Double()
    >>> class Dense(xn.Layer):  # a name taken by xpnet's Dense
    ...     pass
    >>> try:
    ...     xn.register_layer(Dense)
    ... except ValueError as exc:
    ...     print(str(exc).split(";")[0])
    layer name 'Dense' is taken by xpnet.layers.Dense
    """
    return _REGISTRY.register(cls)


def check_saveable(layer: Layer, what: str) -> dict:
    """The layer's config, after checking that
    [`layer_from_config`][xpnet.layers.layer_from_config] rebuilds it.

    Parameters
    ----------
    layer : Layer
    what : str
        How to name the layer in messages.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        For an unregistered class, or a ``get_config()`` that does not rebuild it.

    Examples
    --------
    >>> import xpnet as xn
    >>> class Scale(xn.Layer):
    ...     def __init__(self, factor=2.0):
    ...         self.factor = factor
    >>> _ = xn.register_layer(Scale)
    >>> try:
    ...     xn.layers.check_saveable(Scale(3.0), "layer 0 (Scale)")
    ... except ValueError as exc:
    ...     print(str(exc).split(": ")[1].split(";")[0])
    Scale() takes 'factor', which Scale.get_config() does not return
    """
    return _REGISTRY.check_rebuildable(layer, type(layer).__name__, what)


def layer_from_config(config: dict) -> Layer:
    """Rebuild a layer from ``{"class": name, "config": {...}}``.

    Parameters
    ----------
    config : dict
        ``{"class": name, "config": kwargs}`` as
        [`xpnet.Sequential.get_config`][xpnet.model.Sequential.get_config] lists its
        layers, with an optional ``"trainable": bool``.

    Returns
    -------
    Layer

    Raises
    ------
    ValueError
        When the class is unknown (custom layers must be registered with
        [`register_layer`][xpnet.layers.register_layer]) or the config does not fit its constructor.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.layers.layer_from_config({"class": "Dense", "config": {"units": 3}})
    Dense(units=3, init='he_normal', bias=True)
    >>> xn.layers.layer_from_config({"class": "Dense", "config": {"units": 3},
    ...                              "trainable": False}).trainable
    False
    """
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"layer config must be a dict with a 'class' key, got {config!r}")
    name, trainable = config["class"], config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError(f"layer {name}: 'trainable' must be true or false, got {trainable!r}")
    layer = _REGISTRY.build(name, config.get("config", {}), "layer class")
    if not trainable:
        layer.trainable = False
    return layer
