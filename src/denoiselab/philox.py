"""Counter-based random numbers: Philox4x32-10, and uniforms and normals made from its words.

A counter-based generator (Salmon, Moraes, Dror & Shaw 2011, "Parallel random numbers: as easy
as 1, 2, 3", SC11) is a keyed bijection of a 128-bit counter: the words at counter c under key k
are f_k(c), with no state to advance.  Any value of any stream can be computed on its own, in
any order, in one vectorised call over a tensor of counters; this is what lets every sample own
its random stream (samplers/noise.py) without a Python call per sample.  Philox4x32-10 is the
generator of cuRAND and of PyTorch's CUDA kernels; it passes TestU01's BigCrush (Salmon et al.,
Table 2).  The known-answer vectors of the Random123 library are checked in tests/test_noise.py.

Every operation here is exact or correctly rounded, so a value does not depend on how many values
one call computes or on where it sits in its tensor (tests/test_noise.py), and should not depend
on the device either (IEEE 754 rounds the same on a GPU; not yet checked on one):

* Philox's words are computed in int64 tensors holding 32-bit values.  Its 32 x 32 -> 64-bit
  multiplication is split into two 32 x 16-bit products (each below 2^48), so nothing overflows.
* Uniforms and normals use only +, -, *, / and sqrt (which IEEE 754 rounds correctly on every
  CPU and GPU, vectorised or not) and exact bit operations (frexp).  A library log or cos is not
  used: PyTorch's CPU kernels compute the vectorised part of a tensor with SLEEF and its tail with
  the C library, which may differ in the last bit, so a value would depend on its position.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
# Philox4x32's multipliers and Weyl key increments (Salmon et al. 2011, Sec. 4.2; Random123).
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10  # Philox4x32-10: the recommended rounds (7 already pass BigCrush; 10 keep a margin)


def _mulhilo(a: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) 32-bit halves of a * b for 32-bit a (int64 tensor) and b, without overflow."""
    high_part, low_part = a * (b >> 16), a * (b & 0xFFFF)  # a b = high_part 2^16 + low_part
    low_sum = ((high_part & 0xFFFF) << 16) + low_part
    return (high_part >> 16) + (low_sum >> 32), low_sum & MASK32


def philox4x32(counter: tuple, key: tuple[int, int], rounds: int = ROUNDS) -> tuple:
    """Philox4x32-``rounds`` of the four 32-bit counter words under the key (k0, k1): each word
    an int64 tensor or a plain int, broadcast together (a word the same for every value need not
    be a tensor); four words of 32 bits, of the broadcast shape once every word has mixed in."""
    c0, c1, c2, c3 = counter
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for _ in range(rounds):
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + _W0) & MASK32, (k1 + _W1) & MASK32
    return c0, c1, c2, c3


def uniform_from_words(words: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniforms in [0, 1), one per 32-bit word: w 2^-32 in float64 (exact); in float32 the top 24
    bits, (w >> 8) 2^-24, so that no value rounds up to 1."""
    if dtype == torch.float64:
        return words.to(torch.float64) * 2.0**-32
    return ((words >> 8).to(torch.float64) * 2.0**-24).to(dtype)


def _log(u: torch.Tensor) -> torch.Tensor:
    """ln u for u > 0 (float64) by exact range reduction and a series of + and *: u = m 2^e with
    m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) for s = (m - 1) / (m + 1),
    |s| < 0.172, so twelve terms reach double precision."""
    m, e = torch.frexp(u)  # m in [1/2, 1), exact
    low = m < math.sqrt(0.5)
    m = torch.where(low, m * 2.0, m)
    e = torch.where(low, e - 1, e).to(torch.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    series = torch.full_like(z, 1.0 / 23.0)
    for k in range(10, -1, -1):
        series = series * z + 1.0 / (2 * k + 1)
    return e * math.log(2.0) + 2.0 * s * series


def _cos_sin_quarter(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of phi in [0, pi/2) by their Taylor series to phi^22 (error < 2e-17)."""
    z = phi * phi
    cos, sin = torch.full_like(z, -1.0 / math.factorial(22)), torch.full_like(z, -1.0 / math.factorial(23))
    for k in range(10, -1, -1):  # Horner in z: sum over k of (-1)^k z^k / (2k)!, and / (2k + 1)!
        sign = -1.0 if k % 2 else 1.0
        cos = cos * z + sign / math.factorial(2 * k)
        sin = sin * z + sign / math.factorial(2 * k + 1)
    return cos, phi * sin


def normal_from_words(w0: torch.Tensor, w1: torch.Tensor, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent standard normals per pair of 32-bit words, by Box & Muller (1958):
    r = sqrt(-2 ln u1), theta = 2 pi u2, (r cos theta, r sin theta), with u1 = (w0 + 1) 2^-32 in
    (0, 1] and theta's quadrant the top 2 bits of w1 and its angle in the quadrant the other 30.
    The largest |z| is sqrt(2 ln 2^32) = 6.66: the normal's mass beyond it (3e-11) is never drawn."""
    u1 = (w0.to(torch.float64) + 1.0) * 2.0**-32
    r = torch.sqrt(_log(u1) * -2.0)
    quadrant = w1 >> 30
    phi = (w1 & (2**30 - 1)).to(torch.float64) * (2.0**-30 * math.pi / 2.0)
    c, s = _cos_sin_quarter(phi)
    # theta = quadrant pi/2 + phi: rotate (cos phi, sin phi) by the quadrant, exactly.
    cos = torch.where(quadrant == 0, c, torch.where(quadrant == 1, -s, torch.where(quadrant == 2, -c, s)))
    sin = torch.where(quadrant == 0, s, torch.where(quadrant == 1, c, torch.where(quadrant == 2, -s, -c)))
    return (r * cos).to(dtype), (r * sin).to(dtype)
