"""The discretised Gaussian decoder: the likelihood of pixels on a grid under a Gaussian.

A DDPM chain on images ends in a decoder that turns its last continuous step into a probability
of the discrete pixels (Ho et al. 2020, Eq. 13; Nichol & Dhariwal 2021's
``discretized_gaussian_log_likelihood``).  Pixels lie on the grid of L levels in [-1, 1], spacing
delta = 2 / (L - 1); each pixel's bin is [x - delta/2, x + delta/2], except that the lowest bin
opens to -inf and the highest to +inf, so the masses over the L bins sum to 1:

    p(x0 | x1) = prod_i  integral over bin(x0_i) of N(u; mu_i, s^2) du
               = prod_i  Phi((upper_i - mu_i) / s) - Phi((lower_i - mu_i) / s).

The difference of CDFs cancels catastrophically in the tails (both near 0 or both near 1), so it
is taken in log space: log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b)))
with the accurate log-CDF (torch.special.log_ndtr) on the side of 0 where the bin's mass mostly
lies, reflected (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)) on the other.  improved-diffusion
approximates Phi by a tanh and clamps the CDFs at 1e-12; this is exact to float64 in every tail.
"""

from __future__ import annotations

import math

import torch


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(d)) for d <= 0, accurate near 0 and far below (Maechler 2012)."""
    return torch.where(d > -math.log(2.0), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def log_normal_mass(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """log(Phi(upper) - Phi(lower)) of the standard normal, elementwise, for lower < upper (either
    may be infinite, not both)."""
    ndtr = torch.special.log_ndtr
    left = lower + upper <= 0  # the bin's mass lies mostly below 0: the CDF side is accurate
    high = torch.where(left, upper, -lower)
    low = torch.where(left, lower, -upper)
    top = ndtr(high)
    return top + log1mexp(ndtr(low) - top)


def grid_bins(x0: torch.Tensor, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bin [lower, upper] of each pixel of ``x0`` on the grid of ``levels`` levels in [-1, 1],
    the edge bins open to -inf and +inf."""
    if levels < 2:
        raise ValueError(f"a pixel grid needs at least 2 levels, got {levels}")
    half = 1.0 / (levels - 1)  # half the spacing 2 / (L - 1)
    lower = torch.where(x0 < -1 + half, torch.full_like(x0, -math.inf), x0 - half)
    upper = torch.where(x0 > 1 - half, torch.full_like(x0, math.inf), x0 + half)
    return lower, upper


def discretised_gaussian_nll(x0: torch.Tensor, mean: torch.Tensor, std: float | torch.Tensor, levels: int) -> torch.Tensor:
    """-log p(x0 | mean, std) of each pixel (same shape as ``x0``, nats, float64): the Gaussian
    N(mean, std^2) mass over the pixel's bin on the grid of ``levels`` levels (module docstring).
    ``x0`` must lie on the grid."""
    x0, mean = x0.double(), mean.double()
    std = torch.as_tensor(std, dtype=torch.float64, device=x0.device)
    lower, upper = grid_bins(x0, levels)
    return -log_normal_mass((lower - mean) / std, (upper - mean) / std)
