"""Multistep consistency sampling (Song et al. 2023, "Consistency Models", Algorithm 1).

A consistency function f(x_t, t) (consistency.py) maps any point of a probability-flow ODE
trajectory to the trajectory's start at the smallest noise level eps, so one evaluation at t = 1
is a sample.  More steps trade evaluations for quality: from the clean estimate x0 = f(x, t) the
sampler noises again to the next time s of the grid and jumps once more,

    x_s = alpha_s x0 + sqrt(sigma_s^2 - alpha_s^2 eps^2) z,     z ~ N(0, I),

which is Algorithm 1's x_tau = x + sqrt(tau^2 - eps^2) z written on x_t = alpha (x0 + s n): x0 is
already noised to level eps, so only the rest of the variance is added.  Stochastic: the noise
comes from ``generator``.  One model evaluation a step; the last step (to t = 0) returns x0.
"""

from __future__ import annotations

import math

import torch

from ..schedules import Schedule
from .denoiser import Denoiser
from .stepping import OnStep, StepRecord, gaussian_like, visited_times


def boundary_level(schedule: Schedule) -> float:
    """eps of Song et al. 2023: the noise level sigma / alpha at t = 1 / T, the smallest time of
    the consistency grid (consistency.consistency_grid), where f(x, t) = x / alpha by construction."""
    t = 1.0 / schedule.T
    return float(schedule.sigma_at(t)) / float(schedule.alpha_at(t))


@torch.no_grad()
def sample_consistency(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Jumps with the consistency function ``denoise`` (its clean estimate is f) from x_T over ``times``
    (strictly decreasing, ending at 0), re-noising to each intermediate time (Algorithm 1)."""
    schedule = denoise.schedule
    eps = boundary_level(schedule)
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        if s > 0:
            alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
            x_next = alpha_s * d.x0 + math.sqrt(max(sigma_s**2 - (alpha_s * eps) ** 2, 0.0)) * gaussian_like(x, generator)
        else:
            x_next = d.x0
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x
