"""DDIM (Song, Meng & Ermon 2021, Eq. 12), with stochasticity eta, on any grid of times.

    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,
    c   = eta * sqrt(posterior variance of q(x_s | x_t, x_0))

eta = 0 is deterministic: an Euler step of the probability-flow ODE in (x / alpha, sigma / alpha),
and equally in the flow path's coordinates (x / (alpha + sigma), sigma / (alpha + sigma)), so on
the flow path it is the rectified-flow Euler step x_s = x_t + (s - t) u.
eta = 1 is DDPM ancestral sampling with the "small" variance.
"""

from __future__ import annotations

import torch

from ..forward_process import q_posterior_at
from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, gaussian_like, visited_times


@legacy_signature(steps=50)
@torch.no_grad()
def sample_ddim(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                generator: torch.Generator | None = None, eta: float = 0.0) -> torch.Tensor:
    """DDIM from x_T over ``times`` (strictly decreasing, ending at 0); ``generator`` draws the
    noise of eta > 0."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
        c2 = eta**2 * float(q_posterior_at(schedule, d.x0, x, t, s).variance) if eta > 0 else 0.0
        x_next = alpha_s * d.x0 + max(sigma_s**2 - c2, 0.0) ** 0.5 * d.eps
        if c2 > 0:
            x_next = x_next + c2**0.5 * gaussian_like(x, generator)
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x
