"""Accelerated ops: every speed path of xpnet, behind one object per array library.

The rest of the package is written once against the Array API standard. Where
a library does something faster than the standard spelling, or where a step
needs library-specific help (in-place optimizer kernels, numba, CuPy
elementwise kernels, glibc malloc tuning), that code lives here and nowhere
else, behind the methods of an [`Ops`][xpnet.ops.Ops]:

* [`Ops`][xpnet.ops.Ops]: the generic ops, plain Array API code (every namespace);
* [`NumpyOps`][xpnet.ops.NumpyOps]: NumPy fast paths, the in-place ufunc and numba optimizer
  kernels, malloc tuning during ``fit``;
* [`CupyOps`][xpnet.ops.CupyOps]: the fused CUDA optimizer kernels (``XPNET_CUPY_FUSED=1``)
  and a dropout sampler on the device.

[`ops_for`][xpnet.ops.ops_for] picks the ops of a backend (``fit`` does, once);
[`ops_of`][xpnet.ops.ops_of] picks those of an array's library (layers, losses and
optimizers do, per call; a dictionary look-up on the array's type). The
optimizer kernels are in [`xpnet.ops.kernels`][], one module per update rule.

Environment variables: ``XPNET_JIT=0`` (no numba), ``XPNET_NUM_THREADS``
(threads for the ufunc update, default 1), ``XPNET_MALLOC_TUNING=0`` (leave
glibc alone), ``XPNET_CUPY_FUSED=1`` (fused CuPy updates).

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
        [`NumpyOps`][xpnet.ops.NumpyOps] for ``"numpy"``, [`CupyOps`][xpnet.ops.CupyOps]
        for ``"cupy"``, the generic [`Ops`][xpnet.ops.Ops] for every other backend (one
        shared object each).

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

    Plain ``np.ndarray`` gets [`NumpyOps`][xpnet.ops.NumpyOps] (subclasses such as masked
    arrays get the generic ops), CuPy arrays [`CupyOps`][xpnet.ops.CupyOps], anything else
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
