"""SGD kernels: L2 decay, momentum, Nesterov (reference rule: ``SGD._update_one``)."""

from __future__ import annotations

import numpy as np

from . import CudaKernel, RuleKernels, compiled_loop, l2_to, prange


def _arrays(opt):
    return ("momentum_buffer",) if opt.momentum > 0 else (None,)


def _hyper(opt, lr, t, wd):
    return (lr, wd, opt.momentum, wd != 0.0, opt.momentum > 0, opt.nesterov, t == 1)


def _ufunc_to(p, g, buf, p2, buf2, lr, wd, mom, has_wd, has_mom, nesterov, first, tmp):
    if has_wd:
        g = l2_to(p, g, wd, p2)
    if has_mom:
        if first:
            buf2[...] = g
        else:
            np.multiply(buf, mom, out=buf2)
            buf2 += g
        if nesterov:
            np.multiply(buf2, mom, out=tmp)
            tmp += g
        else:
            tmp[...] = buf2
        tmp *= lr
    else:
        np.multiply(g, lr, out=tmp)
    np.subtract(p, tmp, out=p2)


def _loop_to(p, g, buf, p2, buf2, lr, wd, mom, has_wd, has_mom, nesterov,
             first):  # pragma: no cover - compiled by numba
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        pi = p[i]
        if has_wd:
            gi = gi + pi * wd
        if has_mom:
            b = gi if first else buf[i] * mom + gi
            buf2[i] = b
            u = b * mom + gi if nesterov else b
            pn = pi - u * lr
            bad |= b - b != 0
        else:
            pn = pi - gi * lr
        p2[i] = pn
        bad |= pn - pn != 0  # NaN for inf and NaN
    return bad


def _flat(p, gs, s, p2, s2, pieces, h, bad):  # pragma: no cover - compiled by numba
    for j in prange(pieces.shape[0]):
        k, lo, hi, go = pieces[j, 0], pieces[j, 1], pieces[j, 2], pieces[j, 3]
        g, r = gs[k], h[k]
        bad[j] = compiled_loop(p[lo:hi], g[lo - go:hi - go], s[0][lo:hi], p2[lo:hi], s2[0][lo:hi],
                         r[0], r[1], r[2], r[3] != 0, r[4] != 0, r[5] != 0, r[6] != 0)


_HYPER = "T lr, T wd, T mom, bool has_wd, bool has_mom, bool nesterov, bool first"

_CUDA_MOMENTUM = CudaKernel(
    "xpnet_fused_sgd", ("momentum_buffer",), "T p, T g, T buf, bool keep, " + _HYPER,
    "T p2, T buf2",
    """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T u = gi;
T b = buf;
if (has_mom) {
    b = first ? gi : buf * mom + gi;
    u = nesterov ? gi + b * mom : b;
}
T pn = p - u * lr;
if (keep) { p2 = pn; buf2 = b; } else { p2 = p; buf2 = buf; }
""")

_CUDA_PLAIN = CudaKernel(
    "xpnet_fused_sgd_plain", (), "T p, T g, bool keep, " + _HYPER, "T p2",
    """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T pn = p - gi * lr;
p2 = keep ? pn : p;
""")

KERNELS = RuleKernels(("xpnet.optimizers.SGD",), _arrays, _hyper,
                      cuda=lambda opt: _CUDA_MOMENTUM if opt.momentum > 0 else _CUDA_PLAIN,
                      ufunc_to=_ufunc_to, loop_to=_loop_to, flat=_flat)
