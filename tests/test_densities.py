"""The true densities of the built-in point sets (data/densities.py) against their generators.

Each density, integrated over the cells of a coarse histogram (4 x 4 Gauss-Legendre points a
cell), must predict the counts of a million draws (made as data.sources makes them, 2000 at a
time): a chi-square per degree of freedom over the cells with at least 50 expected points,
within 4 of its standard deviations sqrt(2 / cells) of 1.

The spiral's draws are not independent: the 2000 points of a draw share its scale.  Its counts
scatter more than Poisson's and together, across cells, so its chi-square takes each cell's
variance from the 500 draws themselves (cluster-robust) and its bound is 3 (seeds give 1.1 to
2.0; ten million draws give 1.12).  The point of each draw that set the scale lies on the box's
boundary, outside the density's continuous part, and is left out.  A density with the noise 10%
off, or the spiral with a fixed scale, fails by far (checked below, so the test can fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from denoiselab.data.densities import LOG_DENSITIES, entropy, log_density, mixture_log_density
from denoiselab.data.sources import DRAW_SIZE, draw
from denoiselab.data.toy import GENERATORS

DRAWS = 1_000_000
# (bins per axis, box) of each set's histogram; the checkerboard's bin edges fall on its squares.
HISTOGRAMS = {
    "spiral": (24, (-1.0, 1.0)),
    "circle": (24, (-1.0, 1.0)),
    "swiss-roll": (24, (-1.3, 1.5)),
    "moons": (24, (-1.4, 2.4)),
    "eight-gaussians": (24, (-2.5, 2.5)),
    "checkerboard": (16, (-2.0, 2.0)),
    "bimodal-1d": (60, (-3.5, 3.5)),
}
MIN_EXPECTED = 50
SPIRAL_BOUND = 3.0


def expected_counts(density, bins: int, box: tuple[float, float], dim: int, order: int = 4) -> np.ndarray:
    """DRAWS times the density's mass in each cell of the histogram (Gauss-Legendre per cell)."""
    edges = np.linspace(*box, bins + 1)
    nodes, weights = np.polynomial.legendre.leggauss(order)
    half = 0.5 * np.diff(edges)
    points = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half[:, None] * nodes[None]  # (bins, order)
    w = half[:, None] * weights[None]
    if dim == 1:
        p = np.exp(density(points.reshape(-1, 1))).reshape(bins, order)
        return DRAWS * (p * w).sum(1)
    grid = np.stack(np.meshgrid(points.ravel(), points.ravel(), indexing="ij"), -1).reshape(-1, 2)
    p = np.exp(density(grid)).reshape(bins, order, bins, order)
    return DRAWS * np.einsum("iajb,ia,jb->ij", p, w, w)


def histogram(x: np.ndarray, bins: int, box) -> np.ndarray:
    if x.shape[1] == 1:
        return np.histogram(x[:, 0], bins=bins, range=box)[0]
    return np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=[box, box])[0]


def chi_square_per_dof(name: str, density) -> tuple[float, int]:
    """(chi-square per cell, cells) of DRAWS draws of ``name`` against ``density``."""
    bins, box = HISTOGRAMS[name]
    x = draw(name, DRAWS, np.random.default_rng(123)).astype(np.float64)
    expected = expected_counts(density, bins, box, x.shape[1])
    used = expected >= MIN_EXPECTED
    if name == "spiral":
        draws = [d[np.abs(d).max(axis=1) < 1.0] for d in x.reshape(-1, DRAW_SIZE, 2)]  # the scale's own point out
        counts = np.stack([histogram(d, bins, box) for d in draws])
        observed, variance = counts.sum(0), len(draws) * counts.var(0, ddof=1)
    else:
        observed = histogram(x, bins, box)
        variance = expected
    return float(((observed - expected)[used] ** 2 / variance[used]).mean()), int(used.sum())


def bound(name: str, cells: int) -> float:
    return SPIRAL_BOUND if name == "spiral" else 1 + 4 * math.sqrt(2 / cells)


@pytest.mark.parametrize("name", sorted(HISTOGRAMS))
def test_density_predicts_the_histogram_of_its_generator(name):
    chi2, cells = chi_square_per_dof(name, lambda x: log_density(name, x))
    assert cells >= 40
    assert chi2 < bound(name, cells)


def test_the_histogram_test_can_fail():
    from denoiselab.data import densities

    wrong_noise = lambda x: densities.circle_log_density(x, noise=0.066)  # noqa: E731 - 10% too wide
    chi2, cells = chi_square_per_dof("circle", wrong_noise)
    assert chi2 > 5 * bound("circle", cells)

    def fixed_scale(x):  # the spiral divided by the median of its scale, as if it were a constant
        centres, log_w = densities._spiral_curve()
        m = 6.92
        return 2 * math.log(m) + densities._log_curve_density(m * x, centres, log_w, densities.SPIRAL_NOISE)

    assert chi_square_per_dof("spiral", fixed_scale)[0] > 2 * SPIRAL_BOUND


def test_every_generator_has_a_density():
    assert set(LOG_DENSITIES) == set(GENERATORS) == set(HISTOGRAMS)


@pytest.mark.parametrize("name", ["spiral", "swiss-roll", "moons", "circle", "eight-gaussians"])
def test_densities_integrate_to_one(name):
    """The spiral's continuous part holds 1999 / 2000 of the mass: the point of each draw of 2000
    that set its scale lies on the box's boundary."""
    lo, hi = {"spiral": (-1.0, 1.0), "swiss-roll": (-1.5, 1.7), "moons": (-1.6, 2.6)}.get(name, (-2.8, 2.8))
    g = np.linspace(lo, hi, 161)
    w = np.full(len(g), g[1] - g[0])
    w[[0, -1]] *= 0.5
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = float((np.exp(log_density(name, grid)) * np.outer(w, w).ravel()).sum())
    assert mass == pytest.approx(1999 / 2000 if name == "spiral" else 1.0, abs=3e-4)


def test_spiral_and_checkerboard_vanish_outside_their_support():
    assert np.isneginf(log_density("spiral", np.array([[1.01, 0.0], [0.0, -1.2]]))).all()
    board = log_density("checkerboard", np.array([[-1.5, 0.5], [-1.5, -0.5], [2.1, 0.0], [1.0, 0.5], [0.0, 0.0]]))
    # dark, light, outside, on the edge between a dark and a light square, a corner of dark ones
    assert board[0] == board[3] == board[4] == pytest.approx(math.log(1 / 8))
    assert np.isneginf(board[[1, 2]]).all()


@pytest.mark.parametrize(
    "name, closed_form",
    [
        ("checkerboard", math.log(8)),
        # Well-separated Gaussian components: log(components) + the entropy of one Gaussian.
        ("eight-gaussians", math.log(8) + 1 + math.log(2 * math.pi * 0.01)),
        ("bimodal-1d", math.log(2) + 0.5 * (1 + math.log(2 * math.pi * 0.09))),
    ],
)
def test_entropy_by_monte_carlo_agrees_with_closed_forms(name, closed_form):
    h, se = entropy(name, n=20_000)
    assert abs(h - closed_form) <= max(4 * se, 1e-9)


def test_mixture_of_classes():
    x = draw("moons", 50, np.random.default_rng(0))
    mixed = mixture_log_density(["moons", "circle"], [3, 1], x)
    by_hand = np.log(0.75 * np.exp(log_density("moons", x)) + 0.25 * np.exp(log_density("circle", x)))
    assert np.allclose(mixed, by_hand)


def test_unknown_set_is_refused():
    with pytest.raises(ValueError, match="no known density for 'digits'"):
        log_density("digits", np.zeros((1, 2)))
