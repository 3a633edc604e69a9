"""The discretised Gaussian decoder (Ho et al. 2020, Eq. 13) and the image variational bound.

The decoder's masses are checked against scipy's normal CDF (and, past float64's range, mpmath
at 50 digits); the bound of an exact model of a known discrete distribution against that
distribution's own -log P.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.stats import norm

from denoiselab.discretised_decoder import discretised_gaussian_nll, grid_bins, log_normal_mass
from denoiselab.oracles import GaussianMixture
from denoiselab.schedules import make_schedule
from denoiselab.variational_bound import variational_bound

pytestmark = pytest.mark.usefixtures("one_thread")


def grid(levels: int) -> torch.Tensor:
    return (-1 + 2 * torch.arange(levels, dtype=torch.float64) / (levels - 1)).double()


def random_pixels(levels: int, n: int, seed: int):
    """Pixels on the grid (a fifth of them on its two edges), means in and beyond [-1, 1], scales
    from 1e-3 to 10 (log-uniform)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, levels, n)
    k[: n // 5] = rng.choice([0, levels - 1], n // 5)
    x = grid(levels)[torch.as_tensor(k)]
    mean = torch.as_tensor(rng.uniform(-1.5, 1.5, n))
    std = torch.as_tensor(10 ** rng.uniform(-3, 1, n))
    return x, mean, std


def scipy_log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) by differences of scipy's CDFs in float64, on the side of 0 where
    they do not cancel (the CDF below, the survival function above)."""
    with np.errstate(divide="ignore"):
        below = np.log(norm.cdf(b) - norm.cdf(a))
        above = np.log(norm.sf(a) - norm.sf(b))
    return np.where(a + b <= 0, below, above)


def mpmath_log_mass(a: float, b: float) -> float:
    with mpmath.workdps(50):
        if a + b > 0:
            a, b = -b, -a
        low = mpmath.mpf(0) if a == -math.inf else mpmath.ncdf(a)
        return float(mpmath.log(mpmath.ncdf(b) - low))


@pytest.mark.parametrize("levels", [17, 256])
def test_the_log_mass_is_scipy_s_cdf_difference_and_exact_in_the_tails(levels):
    x, mean, std = random_pixels(levels, 4000, seed=levels)
    lower, upper = grid_bins(x, levels)
    a, b = ((lower - mean) / std).numpy(), ((upper - mean) / std).numpy()
    ours = -discretised_gaussian_nll(x, mean, std, levels).numpy()
    reference = scipy_log_mass(a, b)
    # Where float64's CDFs hold the mass (above exp(-700)) they are the reference ...
    held = reference > -700
    assert held.sum() > 1000 and (~held).sum() > 100  # both regimes are exercised
    assert np.allclose(ours[held], reference[held], rtol=1e-9, atol=1e-12)
    # ... including edge bins open to infinity and bins many scales from the mean.
    edges = np.isinf(a) | np.isinf(b)
    far = held & (np.minimum(np.abs(a), np.abs(b)) > 8)
    assert edges.sum() > 100 and far.sum() > 100
    # Beyond it scipy's difference underflows to log 0; mpmath at 50 digits does not.
    assert np.isneginf(reference[~held]).all() or (reference[~held] < -700).all()
    tails = np.flatnonzero(~held)[:200]
    exact = np.array([mpmath_log_mass(float(a[i]), float(b[i])) for i in tails])
    assert np.isfinite(ours[tails]).all()
    assert np.allclose(ours[tails], exact, rtol=1e-9)


def test_log_mass_of_a_narrow_bin_far_in_a_tail():
    """Bins down to a thousandth of the scale, 30 and 40 scales out, where a naive CDF difference
    is 0 - 0 or 1 - 1.  (The decoder's bins are 2 / (L - 1) wide, and s_1 is far below that.)"""
    a = torch.tensor([30.0, -40.0, 0.5, -5e-4, 30.0, -40.0, 3.0, -5e-3], dtype=torch.float64)
    b = a + torch.tensor([0.1, 0.1, 1e-3, 1e-3, 1e-3, 1e-3, 1e-2, 1e-2], dtype=torch.float64)
    exact = [mpmath_log_mass(float(u), float(v)) for u, v in zip(a, b)]
    assert np.allclose(log_normal_mass(a, b).numpy(), exact, rtol=1e-12)


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_the_masses_over_all_bins_sum_to_one(levels):
    rng = np.random.default_rng(levels)
    values = grid(levels)
    for mean, std in [(0.0, 1.0), (0.93, 1e-3), (-1.7, 0.2), (2.5, 5.0), *zip(rng.uniform(-2, 2, 5), 10 ** rng.uniform(-3, 1, 5))]:
        nll = discretised_gaussian_nll(values, torch.full_like(values, mean), float(std), levels)
        assert float(torch.logsumexp(-nll, 0)) == pytest.approx(0.0, abs=1e-12), (mean, std)


def test_a_perfect_estimate_with_a_tiny_scale_has_probability_one():
    """-log 1 = 0 at every level, the open edges included; a mean on a bin's edge keeps half."""
    values = grid(17)
    assert float(discretised_gaussian_nll(values, values, 1e-4, 17).abs().max()) < 1e-12
    half_bin = 1.0 / 16
    on_edge = discretised_gaussian_nll(values[1:-1], values[1:-1] + half_bin, 1e-4, 17)
    assert torch.allclose(on_edge, torch.full_like(on_edge, math.log(2)), atol=1e-12)


def test_a_grid_needs_two_levels():
    with pytest.raises(ValueError, match="at least 2 levels"):
        discretised_gaussian_nll(torch.zeros(3), torch.zeros(3), 1.0, 1)


# -- the image bound on a known discrete distribution --------------------------------------------


LEVELS, PIXELS = 17, 4


def discrete_images() -> tuple[GaussianMixture, torch.Tensor]:
    """Six 4-pixel images on the 17-level grid with unequal probabilities, as a mixture oracle of
    components 1e-4 wide: its exact denoiser is the discrete distribution's to within
    (1e-4)^2 / sigma_1^2 = 1e-4 of a pixel at the chain's first step."""
    g = torch.Generator().manual_seed(3)
    images = grid(LEVELS)[torch.randint(0, LEVELS, (6, PIXELS), generator=g)]
    weights = torch.tensor([0.3, 0.25, 0.2, 0.1, 0.1, 0.05], dtype=torch.float64)
    assert len({tuple(row.tolist()) for row in images}) == 6
    return GaussianMixture(images, torch.full((6,), 1e-4, dtype=torch.float64), weights), images


def test_the_image_bound_of_the_exact_model_is_above_the_discrete_nll_and_close():
    """L_vlb with the discretised decoder bounds -log P(x_0) (here -log w of the image) from
    above: the paired gap is positive beyond its Monte Carlo noise or within it, and small at
    T = 1000 with the small variance (the true reverse steps of discrete data narrow to it).
    The large variance (beta_k) is a wider step than the truth's and bounds loosely, and a
    model of the wrong images lies far above."""
    mix, images = discrete_images()
    g = torch.Generator().manual_seed(4)
    j = torch.multinomial(mix.weights, 400, replacement=True, generator=g)
    x, nll = images[j], -torch.log(mix.weights[j])
    schedule = make_schedule("linear", 1000)
    gaps = {}
    for variance in ("small", "large"):
        r = variational_bound(mix.denoiser(schedule, "eps"), schedule, x, variance=variance, levels=LEVELS)
        assert torch.allclose(r.bound, r.prior + r.steps + r.decoder)
        assert float(r.decoder.max()) < 1e-6  # the exact x0_hat(x_1) is the image: P(x_0 | x_1) = 1
        gap = r.bound - nll
        gaps[variance] = (float(gap.mean()), float(gap.std() / math.sqrt(len(gap))))
    mean, se = gaps["small"]
    assert -3 * se < mean < 0.05, gaps
    assert gaps["large"][0] > 1.0, gaps
    shifted = GaussianMixture(mix.means + 2 / (LEVELS - 1), mix.stds, mix.weights)  # one level up: x0_hat misses every pixel
    wrong = variational_bound(shifted.denoiser(schedule, "eps"), schedule, x, levels=LEVELS)
    assert float(wrong.bound.mean()) > float(nll.mean()) + 10.0


def test_the_discretised_decoder_is_the_bound_s_only_change():
    """With the same seed, every term but L_0 is the Gaussian-decoder bound's, and L_0 is the
    decoder's -log P of the pixels at x0_hat(x_1)."""
    mix, images = discrete_images()
    x = images[[0, 1, 2, 5]]
    schedule = make_schedule("linear", 50)
    shifted = GaussianMixture(mix.means + 0.05, mix.stds, mix.weights)
    model = shifted.denoiser(schedule, "eps")
    continuous = variational_bound(model, schedule, x, variance="large", seed=2)
    discrete = variational_bound(model, schedule, x, variance="large", seed=2, levels=LEVELS)
    assert torch.equal(continuous.prior, discrete.prior) and torch.equal(continuous.steps, discrete.steps)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)  # the first draw is x_1's
    x1 = schedule.alphas[1] * x + schedule.sigmas[1] * eps
    from denoiselab.samplers.denoiser import Denoiser

    x0_hat = Denoiser(model, schedule, "eps")(x1, 1 / 50).x0
    expected = discretised_gaussian_nll(x, x0_hat, math.sqrt(float(schedule.betas[0])), LEVELS).sum(1)
    assert torch.allclose(discrete.decoder, expected, atol=1e-9)
