"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), data-prediction form.

Notation: lambda = log(alpha / sigma); a step from k to s has h = lambda_s - lambda_k > 0.
First order (= DDIM with eta = 0):
    x_s = (sigma_s / sigma_k) x_k - alpha_s (e^{-h} - 1) x0_k
Second order, reusing the previous step's estimate x0_prev (ratio r = h_prev / h):
    D   = (1 + 1 / (2 r)) x0_k - (1 / (2 r)) x0_prev
    x_s = (sigma_s / sigma_k) x_k - alpha_s (e^{-h} - 1) D
The first step has no history and the last (to sigma = 0, where h is infinite) uses first
order, as diffusers does with final_sigmas_type="zero".
e^{-h} is computed as (sigma_s alpha_k) / (alpha_s sigma_k) so sigma_s = 0 needs no infinities.
"""

from __future__ import annotations

import torch

from ..schedules import Schedule
from .stepping import ModelFn, OnStep, StepRecord, evaluate, step_grid


@torch.no_grad()
def sample_dpmpp_2m(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps: int = 20,
    *,
    order: int = 2,
    y=None,
    prediction: str = "eps",
    spacing: str = "trailing",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,  # unused: the solver is deterministic
    on_step: OnStep = None,
) -> torch.Tensor:
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    grid = step_grid(schedule, steps, spacing)
    alphas, sigmas, lam = schedule.alphas, schedule.sigmas, schedule.log_snr
    x = x_T
    x0_prev, h_prev = None, None
    for i in range(len(grid) - 1):
        k, s = int(grid[i]), int(grid[i + 1])
        d = evaluate(model_fn, x, schedule, k, y=y, prediction=prediction, clip_x0=clip_x0)
        alpha_s, sigma_s = float(alphas[s]), float(sigmas[s])
        ratio = sigma_s / float(sigmas[k])
        exp_neg_h = (sigma_s * float(alphas[k])) / (alpha_s * float(sigmas[k]))
        h = float(lam[s] - lam[k])
        D = d.x0
        if order == 2 and x0_prev is not None and s > 0:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * d.x0 - (1 / (2 * r)) * x0_prev
        x_next = ratio * x - alpha_s * (exp_neg_h - 1.0) * D
        if on_step is not None:
            on_step(StepRecord(i, k, s, k / schedule.T, x, d.x0, d.eps, x_next))
        x, x0_prev, h_prev = x_next, d.x0, h
    return x
