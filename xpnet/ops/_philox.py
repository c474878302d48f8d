"""Philox4x32-10 uniform draws: the CUDA source of the CuPy dropout sampler, and the
same numbers computed with NumPy on the host.

A counter-based generator (Salmon et al., "Parallel random numbers: as easy as
1, 2, 3", SC 2011; the Random123 library) needs no state on the device: draw
``counter`` of a stream with key ``key`` gives element ``i`` the first output
words of ``philox4x32_10(ctr=(i, counter), key)``. One elementwise kernel per
draw, no generator object (CuPy's ``default_rng`` allocates about 13 MB of
XORWOW states per generator), nothing that cannot be pickled, and a stream
that resumes exactly from two integers
([`xpnet.RNG.device_stream`][xpnet.random.RNG.device_stream]).

Words become floats as NumPy does: ``(w0 >> 8) * 2**-24`` in float32,
``((w0 >> 5) * 2**26 + (w1 >> 6)) * 2**-53`` in float64, both exact, in
``[0, 1)``.

`uniform_host` computes the same numbers with NumPy; the test suite
compiles `PREAMBLE` and `BODY` with the host C++ compiler and
compares them bit for bit, and checks `philox4x32` against Random123's
known-answer vectors.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PREAMBLE", "IN_PARAMS", "OUT_PARAMS", "BODY", "NAME", "philox4x32", "split_key",
           "uniform_host"]

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = 0xFFFFFFFF

NAME = "xpnet_philox_uniform"
PREAMBLE = """
__device__ inline void xpnet_philox4x32_10(unsigned int c[4], unsigned int k0,
                                           unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
        unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
        unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
        unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        unsigned int n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
    }
}
"""
IN_PARAMS = "uint32 k0, uint32 k1, uint32 s0, uint32 s1"
OUT_PARAMS = "T u"
BODY = """
unsigned long long idx = (unsigned long long)i;
unsigned int c[4] = {(unsigned int)idx, (unsigned int)(idx >> 32), s0, s1};
xpnet_philox4x32_10(c, k0, k1);
if (sizeof(T) == 4) {
    u = (T)(c[0] >> 8) * (T)5.9604644775390625e-08;
} else {
    u = ((T)(c[0] >> 5) * (T)67108864.0 + (T)(c[1] >> 6)) * (T)1.1102230246251565e-16;
}
"""


def split_key(key: int, counter: int) -> tuple[int, int, int, int]:
    """``(k0, k1, s0, s1)``: the 32-bit words of a 64-bit key and counter."""
    return key & _MASK, (key >> 32) & _MASK, counter & _MASK, (counter >> 32) & _MASK


def philox4x32(ctr: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 of uint32 counters `ctr` (shape (4, n)) under `key`."""
    c = [np.asarray(w, dtype=np.uint64) for w in ctr]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m0, m1, w0, w1 = (np.uint64(v) for v in (_M0, _M1, _W0, _W1))
    mask, s32 = np.uint64(_MASK), np.uint64(32)
    for r in range(10):
        if r:
            k0, k1 = (k0 + w0) & mask, (k1 + w1) & mask
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [(p1 >> s32) ^ c[1] ^ k0, p1 & mask, (p0 >> s32) ^ c[3] ^ k1, p0 & mask]
    return np.stack(c).astype(np.uint32)


def uniform_host(key: int, counter: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The draws the CuPy sampler makes for ``(key, counter)``, computed with NumPy."""
    k0, k1, s0, s1 = split_key(key, counter)
    n = int(np.prod(shape, dtype=np.int64))
    idx = np.arange(n, dtype=np.uint64)
    ctr = np.stack([idx & np.uint64(_MASK), idx >> np.uint64(32),
                    np.full(n, s0, np.uint64), np.full(n, s1, np.uint64)])
    w = philox4x32(ctr, (k0, k1))
    if np.dtype(dtype) == np.float32:
        u = (w[0] >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    else:
        u = ((w[0] >> np.uint32(5)).astype(np.float64) * 67108864.0
             + (w[1] >> np.uint32(6)).astype(np.float64)) * 2.0**-53
    return u.reshape(shape)
