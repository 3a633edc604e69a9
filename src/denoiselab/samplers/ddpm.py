"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), on any grid of times.

Each step draws x_s ~ q(x_s | x_t, x0_hat): the forward-process posterior with the model's
clean estimate plugged in.  On a sub-grid (fewer steps than T) this is the same posterior
between the two visited times, as in Nichol & Dhariwal (2021, Sec. 4).

variance "small": the posterior variance sigma_{t|s}^2 sigma_s^2 / sigma_t^2 (the lower bound)
variance "large": sigma_{t|s}^2, i.e. beta_k on the full grid (the upper bound)
"""

from __future__ import annotations

import torch

from ..forward_process import q_posterior_at, transition_at
from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, gaussian_like, visited_times

from ..choices import VARIANCES  # noqa: E402, F401 - the names, importable without torch


@legacy_signature(steps=None)
@torch.no_grad()
def sample_ddpm(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                generator: torch.Generator | None = None, variance: str = "small") -> torch.Tensor:
    """Ancestral sampling from x_T over ``times`` (strictly decreasing, ending at 0; every step
    of the chain is time_grid(schedule, schedule.T)); ``generator`` draws each step's noise."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of {', '.join(VARIANCES)}")
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        post = q_posterior_at(schedule, d.x0, x, t, s)
        if s > 0:
            var = post.variance if variance == "small" else transition_at(schedule, s, t)[1]
            x_next = post.mean + float(var) ** 0.5 * gaussian_like(x, generator)
        else:
            x_next = post.mean  # sigma_0 = 0: the mean is x0_hat itself
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x
