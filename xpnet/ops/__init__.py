"""Accelerated ops: every speed path of xpnet, behind one object per array library.

The rest of the package is written once against the Array API standard; where a
library does something faster, or a step needs library-specific help, that code lives
here, behind the methods of an [`Ops`][xpnet.ops.Ops]:

* [`Ops`][xpnet.ops.Ops]: the generic ops, plain Array API code (every namespace);
* [`NumpyOps`][xpnet.ops.NumpyOps]: NumPy fast paths, the flat ufunc and numba optimizer
  update, malloc tuning during ``fit``;
* [`TorchOps`][xpnet.ops.TorchOps]: NumPy's update on a CPU model's buffers;
* [`CupyOps`][xpnet.ops.CupyOps]: the fused CUDA optimizer kernels (``XPNET_CUPY_FUSED=1``)
  and a dropout sampler on the device.

[`ops_for`][xpnet.ops.ops_for] picks a backend's ops (``fit``, once),
[`ops_of`][xpnet.ops.ops_of] an array's (layers, losses and optimizers, per call: a
look-up on the array's type). The optimizer kernels are in [`xpnet.ops.kernels`][].

Environment variables: ``XPNET_JIT=0`` (no numba), ``XPNET_NUM_THREADS`` (threads of the
compiled update, default 1), ``XPNET_MALLOC_TUNING=0`` (leave glibc alone),
``XPNET_CUPY_FUSED=1`` (fused CuPy updates).

Examples
--------
>>> import numpy as np, xpnet as xn
>>> from xpnet.ops import ops_for, ops_of
>>> ops_for(xn.get_backend("numpy")).name, ops_of(np.zeros(2)).name
('numpy', 'numpy')
>>> ops_for(xn.get_backend("array_api_strict")).name
'generic'
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from ._base import Ops
from ._cupy import CupyOps
from ._numpy import NumpyOps
from ._torch import TorchOps

__all__ = ["Ops", "NumpyOps", "CupyOps", "TorchOps", "ops_for", "ops_of"]

_GENERIC = Ops()
_NUMPY = NumpyOps()
_CUPY = CupyOps()
_TORCH = TorchOps()
_BY_NAME: dict[str, Ops] = {"numpy": _NUMPY, "cupy": _CUPY, "torch": _TORCH}
_BY_TYPE: dict[type, Ops] = {np.ndarray: _NUMPY}


def ops_for(backend: Any) -> Ops:
    """The ops of a backend: the one place that decides which fast paths apply.

    Parameters
    ----------
    backend : xpnet.backends.Backend

    Returns
    -------
    Ops
        One shared object per library: [`NumpyOps`][xpnet.ops.NumpyOps],
        [`CupyOps`][xpnet.ops.CupyOps], [`TorchOps`][xpnet.ops.TorchOps], or the generic
        [`Ops`][xpnet.ops.Ops] for every other backend.

    Examples
    --------
    >>> import xpnet as xn
    >>> from xpnet.ops import ops_for
    >>> ops_for(xn.get_backend("jax")).name
    'generic'
    """
    return _BY_NAME.get(backend.name, _GENERIC)


def ops_of(a: Any) -> Ops:
    """The ops of an array's library, looked up once per array type.

    Plain ``np.ndarray`` (not a subclass such as a masked array) gets
    [`NumpyOps`][xpnet.ops.NumpyOps], CuPy and torch arrays their ops, anything else
    the generic [`Ops`][xpnet.ops.Ops].

    Parameters
    ----------
    a : array

    Returns
    -------
    Ops

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.ops import ops_of
    >>> ops_of(np.zeros(2)).name, ops_of(np.ma.zeros(2)).name
    ('numpy', 'generic')
    """
    t = type(a)
    ops = _BY_TYPE.get(t)
    if ops is None:
        ops = _CUPY if array_api_compat.is_cupy_array(a) else \
            _TORCH if array_api_compat.is_torch_array(a) else _GENERIC
        _BY_TYPE[t] = ops
    return ops
