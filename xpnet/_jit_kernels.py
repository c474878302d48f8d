"""numba kernels behind :mod:`xpnet._jit` (imported only when numba is installed).

Each kernel mirrors the NumPy ufunc sequence of the optimizer's ``_kernel``
one rounding at a time; see :mod:`xpnet._jit` for why.
"""

from __future__ import annotations

import numba
import numpy as np

# nogil: the update may run beside other threads; cache: compiled once per machine;
# error_model="numpy": no ZeroDivisionError checks (they block vectorisation);
# fastmath=False: no reassociation and no multiply-add contraction (bitwise equality)


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
def sgd(p, g, buf, lr, wd, mom, has_wd, has_mom, nesterov, first):  # pragma: no cover
    for i in range(p.shape[0]):
        gi = g[i]
        if has_wd:
            gi = gi + p[i] * wd
        if has_mom:
            b = gi if first else buf[i] * mom + gi
            buf[i] = b
            u = b * mom + gi if nesterov else b
            p[i] = p[i] - u * lr
        else:
            p[i] = p[i] - gi * lr


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
def adam(p, g, m, v, b1, b2, c1, c2, step_size, eps_scaled, wd, decay, has_wd,
         decoupled):  # pragma: no cover
    for i in range(p.shape[0]):
        gi = g[i]
        pi = p[i]
        if has_wd:
            if decoupled:
                pi = pi * decay
            else:
                gi = gi + pi * wd
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        m[i] = mi
        v[i] = vi
        d = np.sqrt(vi) + eps_scaled
        p[i] = pi - (mi / d) * step_size


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
def rmsprop(p, g, sq, buf, ga, lr, wd, a, c, eps, mom, has_wd, has_mom,
            centered):  # pragma: no cover
    for i in range(p.shape[0]):
        gi = g[i]
        if has_wd:
            gi = gi + p[i] * wd
        s = sq[i] * a + (gi * gi) * c
        sq[i] = s
        if centered:
            gav = ga[i] * a + gi * c
            ga[i] = gav
            d = np.sqrt(s - gav * gav) + eps
        else:
            d = np.sqrt(s) + eps
        u = gi / d
        if has_mom:
            b = buf[i] * mom + u
            buf[i] = b
            p[i] = p[i] - b * lr
        else:
            p[i] = p[i] - u * lr
