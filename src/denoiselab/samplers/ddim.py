"""DDIM (Song, Meng & Ermon 2021, Eq. 12), with stochasticity eta.

    x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z,
    c   = eta * sqrt(posterior variance of q(x_s | x_k, x_0))

eta = 0 is deterministic (an Euler step of the probability-flow ODE in (x / alpha, sigma / alpha));
eta = 1 is DDPM ancestral sampling with the "small" variance.
"""

from __future__ import annotations

import torch

from ..forward_process import q_posterior
from ..schedules import Schedule
from .stepping import ModelFn, OnStep, StepRecord, evaluate, gaussian_like, step_grid


@torch.no_grad()
def sample_ddim(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps: int = 50,
    *,
    eta: float = 0.0,
    y=None,
    prediction: str = "eps",
    spacing: str = "trailing",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    on_step: OnStep = None,
) -> torch.Tensor:
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    grid = step_grid(schedule, steps, spacing)
    x = x_T
    for i in range(len(grid) - 1):
        k, s = int(grid[i]), int(grid[i + 1])
        d = evaluate(model_fn, x, schedule, k, y=y, prediction=prediction, clip_x0=clip_x0)
        alpha_s, sigma_s = float(schedule.alphas[s]), float(schedule.sigmas[s])
        c2 = eta**2 * float(q_posterior(schedule, d.x0, x, k, s).variance) if eta > 0 else 0.0
        x_next = alpha_s * d.x0 + max(sigma_s**2 - c2, 0.0) ** 0.5 * d.eps
        if c2 > 0:
            x_next = x_next + c2**0.5 * gaussian_like(x, generator)
        if on_step is not None:
            on_step(StepRecord(i, k, s, k / schedule.T, x, d.x0, d.eps, x_next))
        x = x_next
    return x
