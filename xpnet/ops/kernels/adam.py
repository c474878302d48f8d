"""Adam and AdamW kernels (reference rule: ``Adam._update_one`` in [`xpnet.optimizers`][]).

torch's ``p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)`` is computed, as in the
reference, as ``p -= (lr/bc1*sqrt(bc2)) * (m / (sqrt(v) + eps*sqrt(bc2)))``.
"""

from __future__ import annotations

import math

import numpy as np

from . import CudaKernel, RuleKernels, compiled_loop, l2_to, prange


def _arrays(opt):
    return ("exp_avg", "exp_avg_sq")


def _hyper(opt, lr, t, wd):
    b1, b2 = opt.betas
    sqrt_bc2 = math.sqrt(1.0 - b2**t)
    # the same arithmetic as Adam._update_one
    return (b1, b2, 1.0 - b1, 1.0 - b2, lr / (1.0 - b1**t) * sqrt_bc2, opt.eps * sqrt_bc2,
            wd, 1.0 - lr * wd, wd != 0.0, opt.decoupled)


def _ufunc_to(p, g, m, v, p2, m2, v2, b1, b2, c1, c2, step_size, eps_scaled, wd, decay, has_wd,
              decoupled, tmp):
    if has_wd and not decoupled:
        g = l2_to(p, g, wd, p2)
    np.multiply(m, b1, out=m2)
    np.multiply(g, c1, out=tmp)
    m2 += tmp
    np.multiply(v, b2, out=v2)
    np.multiply(g, g, out=tmp)
    tmp *= c2
    v2 += tmp
    np.sqrt(v2, out=tmp)
    tmp += eps_scaled
    np.divide(m2, tmp, out=tmp)
    tmp *= step_size
    if has_wd and decoupled:
        # last, so that p2 may be g (no longer read) or p (read by nothing above)
        np.multiply(p, decay, out=p2)
        p2 -= tmp
    else:
        np.subtract(p, tmp, out=p2)


def _loop_to(p, g, m, v, p2, m2, v2, b1, b2, c1, c2, step_size, eps_scaled, wd, decay, has_wd,
             decoupled):  # pragma: no cover - compiled by numba
    bad = False
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
        m2[i] = mi
        v2[i] = vi
        d = np.sqrt(vi) + eps_scaled
        pn = pi - (mi / d) * step_size
        p2[i] = pn
        bad |= (pn - pn != 0) | (mi - mi != 0) | (vi - vi != 0)  # NaN for inf and NaN
    return bad


def _flat(p, gs, s, p2, s2, pieces, h, bad):  # pragma: no cover - compiled by numba
    for j in prange(pieces.shape[0]):
        k, lo, hi, go = pieces[j, 0], pieces[j, 1], pieces[j, 2], pieces[j, 3]
        g, r = gs[k], h[k]
        bad[j] = compiled_loop(p[lo:hi], g[lo - go:hi - go], s[0][lo:hi], s[1][lo:hi], p2[lo:hi],
                         s2[0][lo:hi], s2[1][lo:hi], r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                         r[7], r[8] != 0, r[9] != 0)


_CUDA = CudaKernel(
    "xpnet_fused_adam", ("exp_avg", "exp_avg_sq"),
    "T p, T g, T m, T v, bool keep, T b1, T b2, T c1, T c2, T step_size, T eps_scaled, "
    "T wd, T decay, bool has_wd, bool decoupled",
    "T p2, T m2, T v2",
    """
T gi = g;
T pi = p;
if (has_wd) {
    if (decoupled) { pi = pi * decay; } else { gi = gi + pi * wd; }
}
T mi = m * b1 + gi * c1;
T vi = v * b2 + (gi * gi) * c2;
T d = sqrt(vi) + eps_scaled;
T pn = pi - (mi / d) * step_size;
if (keep) { p2 = pn; m2 = mi; v2 = vi; } else { p2 = p; m2 = m; v2 = v; }
""")

KERNELS = RuleKernels(("xpnet.optimizers.Adam", "xpnet.optimizers.AdamW"), _arrays, _hyper,
                      cuda=lambda opt: _CUDA, ufunc_to=_ufunc_to, loop_to=_loop_to,
                      flat=_flat)
