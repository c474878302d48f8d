"""RMSprop kernels: centered, momentum, L2 decay (reference rule: ``RMSprop._update_one``)."""

from __future__ import annotations

import numpy as np

from . import CudaKernel, RuleKernels, compiled_loop, l2_to, prange


def _arrays(opt):
    return ("square_avg", "momentum_buffer" if opt.momentum > 0 else None,
            "grad_avg" if opt.centered else None)


def _hyper(opt, lr, t, wd):
    return (lr, wd, opt.alpha, 1.0 - opt.alpha, opt.eps, opt.momentum, wd != 0.0,
            opt.momentum > 0, opt.centered)


def _ufunc_to(p, g, sq, buf, ga, p2, sq2, buf2, ga2, lr, wd, a, c, eps, mom, has_wd, has_mom,
              centered, tmp):
    if has_wd:
        g = l2_to(p, g, wd, p2)
    np.multiply(sq, a, out=sq2)
    np.multiply(g, g, out=tmp)
    tmp *= c
    sq2 += tmp
    if centered:
        np.multiply(ga, a, out=ga2)
        np.multiply(g, c, out=tmp)
        ga2 += tmp
        np.multiply(ga2, ga2, out=tmp)
        np.subtract(sq2, tmp, out=tmp)
        np.sqrt(tmp, out=tmp)
    else:
        np.sqrt(sq2, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    if has_mom:
        np.multiply(buf, mom, out=buf2)
        buf2 += tmp
        np.multiply(buf2, lr, out=tmp)
    else:
        tmp *= lr
    np.subtract(p, tmp, out=p2)


def _loop_to(p, g, sq, buf, ga, p2, sq2, buf2, ga2, lr, wd, a, c, eps, mom, has_wd, has_mom,
             centered):  # pragma: no cover - compiled by numba
    bad = False
    for i in range(p.shape[0]):
        gi = g[i]
        pi = p[i]
        if has_wd:
            gi = gi + pi * wd
        s = sq[i] * a + (gi * gi) * c
        sq2[i] = s
        bad |= s - s != 0
        if centered:
            gav = ga[i] * a + gi * c
            ga2[i] = gav
            bad |= gav - gav != 0
            d = np.sqrt(s - gav * gav) + eps
        else:
            d = np.sqrt(s) + eps
        u = gi / d
        if has_mom:
            b = buf[i] * mom + u
            buf2[i] = b
            bad |= b - b != 0
            pn = pi - b * lr
        else:
            pn = pi - u * lr
        p2[i] = pn
        bad |= pn - pn != 0  # NaN for inf and NaN
    return bad


def _flat(p, gs, s, p2, s2, pieces, h, bad):  # pragma: no cover - compiled by numba
    for j in prange(pieces.shape[0]):
        k, lo, hi, go = pieces[j, 0], pieces[j, 1], pieces[j, 2], pieces[j, 3]
        g, r = gs[k], h[k]
        bad[j] = compiled_loop(p[lo:hi], g[lo - go:hi - go], s[0][lo:hi], s[1][lo:hi], s[2][lo:hi],
                         p2[lo:hi], s2[0][lo:hi], s2[1][lo:hi], s2[2][lo:hi], r[0], r[1], r[2],
                         r[3], r[4], r[5], r[6] != 0, r[7] != 0, r[8] != 0)


def _cuda(opt):
    """One kernel per setting, reading and writing only the slots the setting has."""
    mom, centered = opt.momentum > 0, opt.centered
    arrays = tuple(s for s in _arrays(opt) if s is not None)
    ins = "T p, T g, T sq" + (", T buf" if mom else "") + (", T ga" if centered else "")
    outs = "T p2, T sq2" + (", T buf2" if mom else "") + (", T ga2" if centered else "")
    body = ["T gi = g;", "if (has_wd) { gi = gi + p * wd; }", "T s = sq * a + (gi * gi) * c;"]
    if centered:
        body += ["T gav = ga * a + gi * c;", "T d = sqrt(s - gav * gav) + eps;"]
    else:
        body += ["T d = sqrt(s) + eps;"]
    body += ["T u = gi / d;"]
    body += ["T b = buf * mom + u;", "T pn = p - b * lr;"] if mom else ["T pn = p - u * lr;"]
    new = ["p2 = pn;", "sq2 = s;"] + (["buf2 = b;"] if mom else []) \
        + (["ga2 = gav;"] if centered else [])
    old = ["p2 = p;", "sq2 = sq;"] + (["buf2 = buf;"] if mom else []) \
        + (["ga2 = ga;"] if centered else [])
    body += [f"if (keep) {{ {' '.join(new)} }} else {{ {' '.join(old)} }}"]
    name = "xpnet_fused_rmsprop" + ("_momentum" if mom else "") + ("_centered" if centered else "")
    return CudaKernel(name, arrays,
                      ins + ", bool keep, T lr, T wd, T a, T c, T eps, T mom, bool has_wd, "
                      "bool has_mom, bool centered", outs, "\n".join(body) + "\n")


KERNELS = RuleKernels(("xpnet.optimizers.RMSprop",), _arrays, _hyper, cuda=_cuda,
                      ufunc_to=_ufunc_to, loop_to=_loop_to, flat=_flat)
