"""The true log-density of every built-in point data set, as data.sources draws it.

Each generator of toy.py is a known distribution, so its density is known, in closed form or
as a one-dimensional integral (the generators' own constants are repeated here; the histogram
tests in tests/test_densities.py hold the two together):

spiral           seed 001's spiral: theta = 4 pi sqrt(u) (density theta / (8 pi^2) on [0, 4 pi]),
                 the curve c(theta) = (theta / 2)(cos theta, sin theta), noise N(0, 0.3^2 I), and
                 then the whole draw of DRAW_SIZE = 2000 points divided by its largest |coordinate|.
                 For a point that is not that largest one, the divisor is M', the largest
                 |coordinate| of the other 1999, independent of the point, so on the open box
                 |x|_inf < 1
                     p(x) = E_M'[ M'^2 p_raw(M' x) ],   P(M' <= m) = F(m)^1999,
                 F(m) = P(|d|_inf <= m) of one raw point d (itself a quadrature over theta), and
                 p_raw(d) = int p(theta) N(d; c(theta), 0.3^2 I) d theta.  The expectation is the
                 Gauss quadrature of the law of M' (``gauss_rule``), the inner integral composite
                 Gauss-Legendre in theta.  The one point in 2000 that set the scale lies on the
                 box's boundary (a singular part of mass 1/2000, left out); on the boundary the
                 formula is continued as it is.
swiss-roll       t uniform on [1.5 pi, 4.5 pi], c(t) = (t cos t, t sin t) / 10, noise N(0, 0.05^2 I):
                 a quadrature over t.
circle           angle uniform, radius 0.8, noise N(0, 0.06^2 I): closed form with the modified
                 Bessel function, p = exp(-(r - R)^2 / (2 s^2)) i0e(r R / s^2) / (2 pi s^2).
moons            a fair coin between the arcs (cos a, sin a) and (1 - cos a, 0.5 - sin a), a
                 uniform on [0, pi], noise N(0, 0.1^2 I): a quadrature over a per arc.
eight-gaussians  eight N(2 (cos, sin)(2 pi j / 8), 0.1^2 I), equal weights: closed form.
bimodal-1d       (N(-2, 0.3^2) + N(2, 0.3^2)) / 2: closed form.
checkerboard     uniform, 1/8, on the 8 dark unit squares of [-2, 2]^2 (those whose lower-left
                 corner has an even coordinate sum).  A density is defined up to a set of measure
                 zero; this one takes the squares closed, so a draw rounded to float32 onto an
                 edge (x = 0.99999999 -> 1.0) still has density 1/8.

``log_density(name, x)`` gives log p for points x (n, D) in data units (-inf where p = 0);
``entropy(name, n, seed)`` the differential entropy by Monte Carlo, with its standard error
(from the means of the draws of 2000, which the spiral's shared scale makes necessary).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Callable

import numpy as np
from scipy.special import i0e, logsumexp, ndtr

from .sources import DRAW_SIZE, draw

LOG_2PI = math.log(2 * math.pi)
_CHUNK = 1024  # points per block of a quadrature (a block holds points x nodes floats)


def _gauss_legendre(lo: float, hi: float, panels: int, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [lo, hi]."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    nodes = (mid[:, None] + half[:, None] * x[None]).ravel()
    weights = (half[:, None] * w[None]).ravel()
    return nodes, weights


def _log_curve_density(x: np.ndarray, centres: np.ndarray, log_weights: np.ndarray, noise: float) -> np.ndarray:
    """log sum_j exp(log_weights_j) N(x; centres_j, noise^2 I): a quadrature of a curve's density
    (or a mixture), for points x (n, D).  |x - c|^2 is expanded as |x|^2 - 2 x.c + |c|^2 so that
    the n x J exponents come from one matrix product a block."""
    x = np.asarray(x, dtype=np.float64)
    const = -0.5 * x.shape[1] * (LOG_2PI + 2 * math.log(noise))
    bias = log_weights - (centres**2).sum(1) / (2 * noise**2)
    scaled = centres.T / noise**2
    out = np.empty(len(x))
    for lo in range(0, len(x), _CHUNK):
        block = x[lo : lo + _CHUNK]
        exponent = block @ scaled + bias  # (n, J)
        top = exponent.max(axis=1, keepdims=True)
        np.exp(exponent - top, out=exponent)
        out[lo : lo + _CHUNK] = np.log(exponent.sum(axis=1)) + top[:, 0] - (block**2).sum(1) / (2 * noise**2) + const
    return out


# -- spiral ------------------------------------------------------------------------------------------

SPIRAL_TURNS_END = 4 * math.pi  # 720 degrees
SPIRAL_NOISE = 0.3
SPIRAL_SCALE_NODES = 8  # Gauss nodes for the law of M' (6 already agree with 96 to 1e-5 nats)


@cache
def _spiral_curve() -> tuple[np.ndarray, np.ndarray]:
    """Nodes on the raw spiral (its centres c(theta)) and log(weight x p(theta)): 60 panels of 8
    Gauss-Legendre nodes, a panel about 3 noise widths of the outer turn (1e-6 nats of 80)."""
    theta, w = _gauss_legendre(0.0, SPIRAL_TURNS_END, panels=60)
    r = 0.5 * theta
    centres = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    pdf = theta / (0.5 * SPIRAL_TURNS_END**2)  # d/dtheta (theta / 4 pi)^2
    return centres, np.log(w * pdf)


def gauss_rule(points: np.ndarray, masses: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``order``-node Gauss quadrature of a discrete measure (``masses`` at ``points``): the
    Stieltjes procedure for its three-term recurrence, then Golub & Welsch (1969): the nodes are
    the eigenvalues of the Jacobi matrix, the weights the squared first components of its
    eigenvectors.  Exact for polynomials of degree 2 order - 1 under the measure."""
    w = masses / masses.sum()
    mean = float((w * points).sum())
    std = math.sqrt(float((w * (points - mean) ** 2).sum()))
    t = (points - mean) / std
    diag, off = np.zeros(order), np.zeros(order)
    p_prev, p = np.zeros_like(t), np.ones_like(t)
    for k in range(order):
        p = p / math.sqrt(float((w * p * p).sum()))
        diag[k] = (w * t * p * p).sum()
        nxt = (t - diag[k]) * p - (off[k] * p_prev if k else 0.0)
        if k + 1 < order:
            off[k + 1] = math.sqrt(float((w * nxt * nxt).sum()))
            p_prev, p = p, nxt / off[k + 1]
    values, vectors = np.linalg.eigh(np.diag(diag) + np.diag(off[1:], 1) + np.diag(off[1:], -1))
    return mean + std * values, vectors[0] ** 2


@cache
def _spiral_scales() -> tuple[np.ndarray, np.ndarray]:
    """Gauss nodes m_k and weights for E[g(M')], M' the largest |coordinate| of DRAW_SIZE - 1 raw
    spiral points, whose law P(M' <= m) = F(m)^1999 is tabulated on a fine grid of m."""
    centres, log_w = _spiral_curve()
    w = np.exp(log_w)
    m = np.linspace(4.0, 10.0, 3001)

    def exceed(m_block: np.ndarray) -> np.ndarray:
        """P(|d|_inf > m) = int p(theta) (q1 + q2 - q1 q2) d theta, q_k = P(|c_k + noise| > m):
        no cancellation where it is small."""
        q = ndtr((-m_block[:, None, None] + centres[None]) / SPIRAL_NOISE) + ndtr((-m_block[:, None, None] - centres[None]) / SPIRAL_NOISE)
        return (w[None] * (q[..., 0] + q[..., 1] - q[..., 0] * q[..., 1])).sum(1)

    tail = np.concatenate([exceed(m[i : i + 500]) for i in range(0, len(m), 500)])
    cdf = np.exp((DRAW_SIZE - 1) * np.log1p(-np.minimum(tail, 1.0)))
    if not (cdf[0] < 1e-12 and cdf[-1] > 1 - 1e-12):
        raise AssertionError("the spiral's scale grid does not cover the law of its scale")
    return gauss_rule(0.5 * (m[1:] + m[:-1]), np.diff(cdf), SPIRAL_SCALE_NODES)


def spiral_log_density(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    centres, log_w = _spiral_curve()
    scales, weights = _spiral_scales()
    parts = [math.log(wk) + 2 * math.log(mk) + _log_curve_density(mk * x, centres, log_w, SPIRAL_NOISE) for mk, wk in zip(scales, weights)]
    out = logsumexp(np.stack(parts), axis=0)
    return np.where(np.abs(x).max(axis=1) <= 1.0, out, -np.inf)


# -- the other curves ----------------------------------------------------------------------------------


def _uniform_curve(curve: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and log weights of a curve whose parameter is uniform on [lo, hi]."""
    t, w = _gauss_legendre(lo, hi, panels)
    return curve(t), np.log(w / (hi - lo))


@cache
def _swiss_roll_curve():
    return _uniform_curve(lambda t: np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 10.0, 1.5 * math.pi, 4.5 * math.pi, panels=80)


def swiss_roll_log_density(x: np.ndarray) -> np.ndarray:
    centres, log_w = _swiss_roll_curve()
    return _log_curve_density(x, centres, log_w, 0.05)


@cache
def _moons_curve():
    upper = _uniform_curve(lambda a: np.stack([np.cos(a), np.sin(a)], axis=1), 0.0, math.pi, panels=24)
    lower = _uniform_curve(lambda a: np.stack([1 - np.cos(a), 0.5 - np.sin(a)], axis=1), 0.0, math.pi, panels=24)
    return np.concatenate([upper[0], lower[0]]), np.concatenate([upper[1], lower[1]]) + math.log(0.5)


def moons_log_density(x: np.ndarray) -> np.ndarray:
    centres, log_w = _moons_curve()
    return _log_curve_density(x, centres, log_w, 0.1)


def circle_log_density(x: np.ndarray, radius: float = 0.8, noise: float = 0.06) -> np.ndarray:
    r = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    return -((r - radius) ** 2) / (2 * noise**2) + np.log(i0e(r * radius / noise**2)) - LOG_2PI - 2 * math.log(noise)


def eight_gaussians_log_density(x: np.ndarray) -> np.ndarray:
    angles = 2 * math.pi * np.arange(8) / 8
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _log_curve_density(x, centres, np.full(8, math.log(1 / 8)), 0.1)


def bimodal_1d_log_density(x: np.ndarray) -> np.ndarray:
    return _log_curve_density(x, np.array([[-2.0], [2.0]]), np.full(2, math.log(0.5)), 0.3)


def checkerboard_log_density(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    inside = (np.abs(x) <= 2.0).all(axis=1)
    dark = np.zeros(len(x), dtype=bool)
    lower = np.floor(x)
    # The closed squares: a point on an edge or corner belongs to every square that touches it.
    for d1 in (0, 1):
        for d2 in (0, 1):
            corner = lower - np.array([d1, d2])
            touches = ((x - corner) <= 1.0).all(axis=1) & (corner >= -2).all(axis=1) & (corner <= 1).all(axis=1)
            dark |= touches & (corner.sum(axis=1) % 2 == 0)
    return np.where(inside & dark, math.log(1 / 8), -np.inf)


LOG_DENSITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "spiral": spiral_log_density,
    "circle": circle_log_density,
    "swiss-roll": swiss_roll_log_density,
    "bimodal-1d": bimodal_1d_log_density,
    "moons": moons_log_density,
    "eight-gaussians": eight_gaussians_log_density,
    "checkerboard": checkerboard_log_density,
}


def log_density(name: str, x: np.ndarray) -> np.ndarray:
    """log p(x) of built-in data set ``name`` for points x (n, D), in data units."""
    if name not in LOG_DENSITIES:
        raise ValueError(f"no known density for {name!r}; the built-in sets are {', '.join(LOG_DENSITIES)}")
    return LOG_DENSITIES[name](np.asarray(x))


def mixture_log_density(names, weights, x: np.ndarray) -> np.ndarray:
    """log sum_c w_c p_c(x): a conditional run's classes mixed in proportion ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    parts = [math.log(wc) + log_density(name, x) for name, wc in zip(names, w / w.sum()) if wc > 0]
    return logsumexp(np.stack(parts), axis=0)


def entropy(name: str, n: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """The differential entropy H = -E[log p(x)] of data set ``name`` in nats, by Monte Carlo over
    n fresh draws (in the draws of DRAW_SIZE that data.sources makes), and its standard error."""
    x = draw(name, n, np.random.default_rng([seed, 7]))
    return monte_carlo_mean(-log_density(name, x))


def monte_carlo_mean(values: np.ndarray) -> tuple[float, float]:
    """The mean of per-point values over draws made DRAW_SIZE at a time, and its standard error
    from the means of those draws (cluster-robust: the spiral's points of one draw share its
    scale, so they are not independent); from the points themselves when there is one draw."""
    values = np.asarray(values, dtype=np.float64)
    draws = len(values) // DRAW_SIZE
    if draws < 2:
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))
    means = values[: draws * DRAW_SIZE].reshape(draws, DRAW_SIZE).mean(axis=1)
    return float(values.mean()), float(means.std(ddof=1) / math.sqrt(draws))


__all__ = ["LOG_DENSITIES", "entropy", "log_density", "mixture_log_density", "monte_carlo_mean"]
