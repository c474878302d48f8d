"""RMSprop kernels: centered, momentum, L2 decay (reference rule: ``RMSprop._update_one``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import CudaKernel, RuleKernels


def _arrays(opt):
    return ("square_avg", "momentum_buffer" if opt.momentum > 0 else None,
            "grad_avg" if opt.centered else None)


def _hyper(opt, lr, t, wd):
    return (lr, wd, opt.alpha, 1.0 - opt.alpha, opt.eps, opt.momentum, wd != 0.0,
            opt.momentum > 0, opt.centered)


def _ufunc(p, g, sq, buf, ga, lr, wd, a, c, eps, mom, has_wd, has_mom, centered, tmp):
    if has_wd:
        np.multiply(p, wd, out=tmp)
        g += tmp
    sq *= a
    np.multiply(g, g, out=tmp)
    tmp *= c
    sq += tmp
    if centered:
        ga *= a
        np.multiply(g, c, out=tmp)
        ga += tmp
        np.multiply(ga, ga, out=tmp)
        np.subtract(sq, tmp, out=tmp)
        np.sqrt(tmp, out=tmp)
    else:
        np.sqrt(sq, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    if has_mom:
        buf *= mom
        buf += tmp
        np.multiply(buf, lr, out=tmp)
    else:
        tmp *= lr
    p -= tmp


def _loop(p, g, sq, buf, ga, lr, wd, a, c, eps, mom, has_wd, has_mom,
          centered):  # pragma: no cover - compiled by numba
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


_CUDA = CudaKernel(
    "xpnet_fused_rmsprop", ("square_avg", "momentum_buffer", "grad_avg"),
    "T p, T g, T sq, T buf, T ga, bool keep, T lr, T wd, T a, T c, T eps, T mom, "
    "bool has_wd, bool has_mom, bool centered",
    "T p2, T sq2, T buf2, T ga2",
    """
T gi = g;
if (has_wd) { gi = gi + p * wd; }
T s = sq * a + (gi * gi) * c;
T gav = ga;
T d;
if (centered) {
    gav = ga * a + gi * c;
    d = sqrt(s - gav * gav) + eps;
} else {
    d = sqrt(s) + eps;
}
T u = gi / d;
T b = buf;
T pn;
if (has_mom) { b = buf * mom + u; pn = p - b * lr; } else { pn = p - u * lr; }
if (keep) { p2 = pn; sq2 = s; buf2 = b; ga2 = gav; }
else { p2 = p; sq2 = sq; buf2 = buf; ga2 = ga; }
""")


def _cuda(opt):
    # one kernel for every setting: slots the settings lack are passed as the parameter
    # and their outputs dropped
    return dataclasses.replace(_CUDA, arrays=_arrays(opt))


KERNELS = RuleKernels(("xpnet.optimizers.RMSprop",), _arrays, _hyper, ufunc=_ufunc,
                      loop=_loop, cuda=_cuda)
