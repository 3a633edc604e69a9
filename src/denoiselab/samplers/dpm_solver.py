"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), data-prediction form.

Notation: lambda = log(alpha / sigma); a step from t to s has h = lambda_s - lambda_t > 0.
First order (= DDIM with eta = 0):
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0_t
Second order, reusing the previous step's estimate x0_prev (ratio r = h_prev / h):
    D   = (1 + 1 / (2 r)) x0_t - (1 / (2 r)) x0_prev
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D
The first step has no history and the last (to sigma = 0, where h is infinite) uses first
order, as diffusers does with final_sigmas_type="zero".  e^{-h} is computed as
(sigma_s alpha_t) / (alpha_s sigma_t), so sigma_s = 0 needs no infinities.

The flow path starts at lambda = -inf (alpha = 0 at t = 1).  That first step is exact
first order (e^{-h} = 0: x_s = (sigma_s / sigma_t) x_t + alpha_s x0), but its h is infinite,
so it leaves no usable history: the step after it is first order too (r would be infinite).
"""

from __future__ import annotations

import math

import torch

from ..schedules import Schedule
from .stepping import ModelFn, OnStep, StepRecord, as_grid, evaluate


@torch.no_grad()
def sample_dpmpp_2m(
    model_fn: ModelFn,
    x_T: torch.Tensor,
    schedule: Schedule,
    steps=20,
    *,
    grid=None,
    order: int = 2,
    y=None,
    prediction: str = "eps",
    spacing: str = "trailing",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,  # unused: the solver is deterministic
    on_step: OnStep = None,
) -> torch.Tensor:
    """``steps`` of the ``spacing`` grid, or ``grid``: a list of times ending at 0 (either may be
    given as the fourth argument)."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    times = as_grid(schedule, steps if grid is None else grid, spacing).tolist()
    x = x_T
    x0_prev, h_prev = None, None
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = evaluate(model_fn, x, schedule, t, y=y, prediction=prediction, clip_x0=clip_x0)
        alpha_t, sigma_t = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
        ratio = sigma_s / sigma_t
        exp_neg_h = (sigma_s * alpha_t) / (alpha_s * sigma_t)
        h = float(schedule.log_snr_at(s) - schedule.log_snr_at(t)) if s > 0 else math.inf
        D = d.x0
        if order == 2 and x0_prev is not None and s > 0 and math.isfinite(h_prev):
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * d.x0 - (1 / (2 * r)) * x0_prev
        x_next = ratio * x - alpha_s * (exp_neg_h - 1.0) * D
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x, x0_prev, h_prev = x_next, d.x0, h
    return x
