"""Testing helpers: cross-backend ``assert_close`` and finite-difference gradient checks.

Values are compared on the host (NumPy), after the namespace, dtype and device
have been checked; this is the one place tests copy device arrays to the host.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import array_api_compat
import numpy as np

from . import _autodiff
from .backends import Backend, backend_of, dtype_name, get_backend, to_numpy
from .blocks import key_trainable, sublayers
from .layers import Layer
from .losses import Loss
from .model import Sequential, _check_layer_grads
from .random import RNG

__all__ = ["assert_close", "check_gradients", "GradientCheckError"]

_DEFAULT_RTOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-10}


def assert_close(actual: Any, desired: Any, *, rtol: float | None = None, atol: float = 0.0,
                 check_dtype: bool = True, check_namespace: bool = True,
                 err_msg: str = "") -> None:
    """Assert two arrays are close, after checking namespace, dtype and device.

    Parameters
    ----------
    actual : array
        The array under test, on any backend.
    desired : array
        Expected values. A NumPy array is compared by value only (namespace
        and device checks apply when ``desired`` is on the same kind of
        backend as ``actual``).
    rtol : float, optional
        Relative tolerance; defaults by dtype (float32 1e-5, float64 1e-10).
    atol : float
    check_dtype, check_namespace : bool
    err_msg : str
        Prefix for the failure message.

    Raises
    ------
    AssertionError

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.testing.assert_close(np.float32([1, 2]), np.float32([1, 2.00001]), rtol=1e-5)
    """
    prefix = f"{err_msg}: " if err_msg else ""
    a_is, d_is = (array_api_compat.is_array_api_obj(v) for v in (actual, desired))
    actual = actual if a_is else np.asarray(actual)  # lists and scalars compared as NumPy
    desired = desired if d_is else np.asarray(desired)
    if check_namespace and a_is and d_is and not isinstance(desired, np.ndarray):
        ba, bd = backend_of(actual), backend_of(desired)
        if ba.name != bd.name:
            raise AssertionError(f"{prefix}namespaces differ: {ba.name} vs {bd.name}")
        if str(ba.device) != str(bd.device):
            raise AssertionError(f"{prefix}devices differ: {ba.device} vs {bd.device}")
    da, dd = dtype_name(actual.dtype), dtype_name(desired.dtype)
    if check_dtype and da != dd:
        raise AssertionError(f"{prefix}dtypes differ: {da} vs {dd}")
    if tuple(actual.shape) != tuple(desired.shape):
        raise AssertionError(f"{prefix}shapes differ: {tuple(actual.shape)} vs "
                             f"{tuple(desired.shape)}")
    if rtol is None:
        rtol = max(_DEFAULT_RTOL.get(da, 0.0), _DEFAULT_RTOL.get(dd, 0.0))
    np.testing.assert_allclose(to_numpy(actual), to_numpy(desired), rtol=rtol, atol=atol,
                               err_msg=prefix)


class GradientCheckError(AssertionError):
    """Analytic and numerical gradients disagree beyond tolerance.

    Examples
    --------
    A layer whose backward pass forgets a factor of two:

    >>> import numpy as np, xpnet as xn
    >>> class Double(xn.Layer):
    ...     def forward(self, params, x, *, train=False):
    ...         return 2 * x, None
    ...     def backward(self, params, cache, dy):
    ...         return dy, {}  # wrong: should be 2 * dy
    >>> try:
    ...     xn.testing.check_gradients(Double(), np.ones((2, 3)), backend="numpy")
    ... except xn.testing.GradientCheckError as exc:
    ...     print(str(exc).split(" at ")[0])
    gradient of 'x' is wrong
    """


def _numeric_grad(f, x0: np.ndarray, eps: float) -> np.ndarray:
    g = np.zeros_like(x0)
    flat = x0.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f(x0)
        flat[i] = orig - eps
        fm = f(x0)
        flat[i] = orig
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, rtol: float, atol: float,
             report: dict, what: str = "") -> None:
    if analytic.shape != numeric.shape:  # never broadcast one against the other
        raise GradientCheckError(
            f"{what}gradient of {name!r} has shape {analytic.shape}, the value it is the "
            f"gradient of has shape {numeric.shape}")
    err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    bad = err > atol + rtol * scale
    report[name] = float(np.max(err / np.maximum(scale, 1e-12))) if err.size else 0.0
    if bad.any():
        i = int(np.argmax(err - (atol + rtol * scale)))
        raise GradientCheckError(
            f"gradient of {name!r} is wrong at flat index {i}: analytic "
            f"{analytic.reshape(-1)[i]:.10g}, numerical {numeric.reshape(-1)[i]:.10g} "
            f"({int(bad.sum())} of {bad.size} entries outside rtol={rtol}, atol={atol})"
        )


def check_gradients(obj: Any, x: Any, y: Any = None, *, params: dict | None = None,
                    backend: str | Backend | None = None, eps: float = 1e-6,
                    rtol: float = 1e-5, atol: float = 1e-8, seed: int = 0,
                    train: bool = False) -> dict[str, float]:
    """Compare analytic gradients with central finite differences in float64.

    Every gradient must have the shape of what it is the gradient of, and a layer's
    ``backward`` must return one gradient per parameter ``init`` made, under its
    name: otherwise a `GradientCheckError` names the layer, the key and the shapes.

    Parameters
    ----------
    obj : Layer, Loss or Sequential
        * a layer: checks d/dx and d/dparams of ``sum(forward(x) * R)`` for a
          fixed random ``R`` (dropout is checked in eval mode unless
          you build your own mask);
        * a loss: checks d/d(output) of ``loss(x, y)`` and, for a loss that defines
          ``per_sample``, that it has shape ``(n,)`` and that its mean is
          ``value_and_grad``'s value (within ``rtol``/``atol``; reported as
          ``"per_sample"``), as sample weights rely on both;
        * a model: checks every (trainable) parameter gradient of ``loss_and_grads(x, y,
          train=False)``; the model must be float64. With ``backend`` other than the
          model's, a copy moved there is checked (the model is left as it is).
    x : array
        Input (host NumPy or the backend's array), float64.
    y : array, optional
        Targets for a loss or a model.
    params : dict, optional
        Layer parameters; by default the layer's ``init`` in float64.
    backend : str or Backend, optional
        Where to compute; defaults to the backend of ``x`` (or of the model).
    eps : float
        The finite-difference step: ``(f(v + eps) - f(v - eps)) / (2 eps)``.
    rtol : float
        Relative tolerance: an entry fails when its error exceeds
        ``atol + rtol * max(|analytic|, |numerical|)``.
    atol : float
        Absolute tolerance, added to ``rtol``'s.
    seed : int
        Seeds a layer's ``init`` (when ``params`` is not given) and the random ``R``.
    train : bool
        Check the training-mode forward pass instead (e.g.
        [`BatchNorm`][xpnet.layers.BatchNorm] normalising with the batch's statistics);
        for a forward pass that is the same at every call (not dropout's). A layer or
        model with buffers is given its buffers (a layer its ``init_buffers``), and
        the buffers are left as they are.

    Returns
    -------
    dict
        The maximum relative error for each checked quantity.

    Raises
    ------
    GradientCheckError
        When any entry is outside tolerance; the message names it.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> sorted(xn.testing.check_gradients(xn.Dense(2), x, backend="numpy"))
    ['W', 'b', 'x']
    """
    report: dict[str, float] = {}
    host_x = to_numpy(x).astype(np.float64)
    if isinstance(obj, Sequential):
        if backend is not None:
            be = get_backend(backend)
            if (be.name, str(be.device)) != (obj.backend.name, str(obj.backend.device)):
                obj = copy.deepcopy(obj).to(be)  # a twin on that backend; obj stays as it is
        _check_model(obj, host_x, y, eps, rtol, atol, report, train)
        return report
    be = get_backend(backend) if backend is not None else (
        backend_of(x) if not isinstance(x, np.ndarray) else get_backend("numpy"))
    if isinstance(obj, Loss):
        _check_loss(obj, be, host_x, y, eps, rtol, atol, report)
    elif isinstance(obj, Layer):
        _check_layer(obj, be, host_x, params, seed, eps, rtol, atol, report, train)
    else:
        raise TypeError(f"check_gradients expects a Layer, Loss or Sequential, got {type(obj)}")
    return report


def _check_model(obj: Any, host_x: np.ndarray, y: Any, eps: float, rtol: float, atol: float,
                 report: dict, train: bool = False) -> None:
    if obj.dtype_name != "float64":
        raise ValueError("check_gradients needs a float64 model (dtype='float64')")
    be = obj.backend
    if y is None:
        raise ValueError("checking a model's gradients needs targets y")
    xb, yb = be.asarray(host_x, dtype=be.xp.float64), be.asarray(to_numpy(y))
    _, grads, _ = obj.loss_and_grads(xb, yb, train=train, return_buffers=True)
    original = {k: to_numpy(v).copy() for k, v in obj.params.items()}
    for k in grads:  # the trainable parameters (frozen ones have no gradient)
        def f(p, k=k):
            obj.params = {**obj.params, k: be.asarray(p, dtype=be.xp.float64)}
            return float(obj.loss(obj._forward(xb, train=train)[0], yb))
        try:
            num = _numeric_grad(f, original[k].copy(), eps)
        finally:  # the model's own values back after each probe, whatever happened
            obj.params = {kk: be.asarray(v, dtype=be.xp.float64) for kk, v in original.items()}
        _compare(k, to_numpy(grads[k]), num, rtol, atol, report)


def _check_loss(obj: Any, be: Any, host_x: np.ndarray, y: Any, eps: float, rtol: float,
                atol: float, report: dict) -> None:
    if y is None:
        raise ValueError("checking a loss needs targets y")
    f64 = be.xp.float64
    host_y = to_numpy(y)
    yb = be.asarray(host_y if host_y.dtype.kind in "iu" else host_y.astype(np.float64))
    _, g = obj.value_and_grad(be.asarray(host_x, dtype=f64), yb)

    def floss(z):
        return float(obj(be.asarray(z, dtype=f64), yb))

    what = f"{type(obj).__name__}: "
    _compare("output", to_numpy(g), _numeric_grad(floss, host_x.copy(), eps), rtol, atol,
             report, what)
    if obj.has_per_sample:
        _check_per_sample(obj, be.asarray(host_x, dtype=f64), yb, rtol, atol, report, what)


def _check_per_sample(obj: Any, z: Any, yb: Any, rtol: float, atol: float, report: dict,
                      what: str) -> None:
    """``per_sample`` is one value per row, and their mean is ``value_and_grad``'s value."""
    rows = to_numpy(obj.per_sample(z, yb))
    n = z.shape[0]
    if rows.shape != (n,):
        raise GradientCheckError(f"{what}per_sample returned shape {rows.shape}, not ({n},) "
                                 "(one loss per row)")
    mean, value = float(np.mean(rows)), float(to_numpy(obj.value_and_grad(z, yb)[0]))
    err = abs(mean - value)
    report["per_sample"] = err / max(abs(mean), abs(value), 1e-12)
    if err > atol + rtol * max(abs(mean), abs(value)):
        raise GradientCheckError(
            f"{what}the mean of per_sample is {mean:.10g}, value_and_grad's value "
            f"{value:.10g}: sample weights would train another loss (rtol={rtol}, "
            f"atol={atol})")


def _check_layer(obj: Any, be: Any, host_x: np.ndarray, params: dict | None, seed: int,
                 eps: float, rtol: float, atol: float, report: dict,
                 train: bool = False) -> None:
    f64 = be.xp.float64
    if params is None:
        params = obj.init(host_x.shape[-1], RNG(seed), backend=be, dtype=f64)
    params = {k: to_numpy(v).astype(np.float64) for k, v in params.items()}
    dev = {k: be.asarray(v, dtype=f64) for k, v in params.items()}
    xb = be.asarray(host_x, dtype=f64)
    buffers = obj.init_buffers(host_x.shape[-1], backend=be, dtype=f64)
    kw = {"buffers": buffers} if buffers else {}
    auto = _autodiff.needs(obj)  # no backward: the library's autodiff (torch, JAX)
    out, cache = _autodiff.forward(obj, dev, xb, train, kw) if auto else \
        obj.forward(dev, xb, train=train, **kw)
    R = np.random.default_rng(seed + 1).normal(size=tuple(out.shape))
    dy = be.asarray(R, dtype=f64)
    dx, grads = _autodiff.backward(type(obj).__name__, obj, cache, dy) if auto else \
        obj.backward(dev, cache, dy)
    what = f"{type(obj).__name__}: "
    # a frozen layer held inside `obj` (a Block's) has no gradients: its keys are not checked
    trained = {k: v for k, v in params.items() if key_trainable(obj, k)} \
        if obj.trainable and sublayers(obj) else params
    _check_grad_keys(what, trained, grads)

    def probe(v: np.ndarray, k: str | None) -> float:
        # sum(forward * R) with the input (k None) or parameter k set to v
        a = be.asarray(v, dtype=f64)
        o, _ = obj.forward(*((dev, a) if k is None else ({**dev, k: a}, xb)), train=train, **kw)
        return float(np.sum(to_numpy(o) * R))

    checks = [("x", dx, host_x, None), *((k, grads[k], params[k], k) for k in trained)]
    for name, g, v, k in checks:
        num = _numeric_grad(functools.partial(probe, k=k), v.copy(), eps)
        _compare(name, to_numpy(g), num, rtol, atol, report, what)


def _check_grad_keys(what: str, params: dict, grads: Any) -> None:
    """The model's check of a layer's gradient keys and shapes, as a GradientCheckError."""
    try:
        _check_layer_grads(what.removesuffix(": "), params, grads)
    except (TypeError, ValueError) as exc:
        raise GradientCheckError(str(exc)) from None
