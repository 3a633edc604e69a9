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
from ..schedules import Schedule
from .stepping import ModelFn, OnStep, StepRecord, as_grid, evaluate, gaussian_like


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps=50,
    *,
    grid=None,
    eta: float = 0.0,
    y=None,
    prediction: str = "eps",
    spacing: str = "trailing",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    on_step: OnStep = None,
) -> torch.Tensor:
    """``steps`` of the ``spacing`` grid, or ``grid``: a list of times ending at 0 (either may be
    given as the fourth argument)."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    times = as_grid(schedule, steps if grid is None else grid, spacing).tolist()
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = evaluate(model_fn, x, schedule, t, y=y, prediction=prediction, clip_x0=clip_x0)
        alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
        c2 = eta**2 * float(q_posterior_at(schedule, d.x0, x, t, s).variance) if eta > 0 else 0.0
        x_next = alpha_s * d.x0 + max(sigma_s**2 - c2, 0.0) ** 0.5 * d.eps
        if c2 > 0:
            x_next = x_next + c2**0.5 * gaussian_like(x, generator)
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x
