"""DPM-Solver++ (Lu et al. 2022, "DPM-Solver++"), data-prediction form: multistep 2M and 3M
(Algorithm 2 and its third-order extension, App. B) and singlestep 2S (Algorithm 1).

Notation: lambda = log(alpha / sigma); a step from t to s has h = lambda_s - lambda_t > 0.
First order (= DDIM with eta = 0):
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0_t
Second order, reusing the previous step's estimate x0_prev (ratio r = h_prev / h):
    D   = (1 + 1 / (2 r)) x0_t - (1 / (2 r)) x0_prev
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D
Third order (3M), with the two previous estimates m1, m2 and r0 = h_prev / h, r1 = h_prev2 / h
(the form diffusers' multistep_dpm_solver_third_order_update implements):
    D1_0 = (m0 - m1) / r0,  D1_1 = (m1 - m2) / r1
    D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1) / (r0 + r1)
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) m0
          + alpha_s ((e^{-h} - 1) / h + 1) D1 - alpha_s ((e^{-h} - 1 + h) / h^2 - 1/2) D2
The first steps have too little history and use lower orders; the last (to sigma = 0, where h is
infinite) uses first order, as diffusers does with final_sigmas_type="zero", and with fewer than
15 steps the one before it is at most second order (diffusers' lower_order_final, which Lu et al.
recommend for stability at few steps).  e^{-h} is computed as (sigma_s alpha_t) / (alpha_s
sigma_t), so sigma_s = 0 needs no infinities.

2S (singlestep) spends two evaluations per step: a first-order step to the midpoint u of the
step in lambda (lambda_u = lambda_t + h / 2), then x_s from the estimate there (D = x0_u, the
r1 = 1/2 case of Algorithm 1).  Its last step (to sigma = 0) is first order and costs one.

The flow path starts at lambda = -inf (alpha = 0 at t = 1).  That first step is exact
first order (e^{-h} = 0: x_s = (sigma_s / sigma_t) x_t + alpha_s x0), but its h is infinite,
so it leaves no usable history: the steps after it build their history afresh.  2S takes the
midpoint in t there (the lambda midpoint of an infinite step does not exist).
"""

from __future__ import annotations

import math

import torch

from ..schedules import Schedule
from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, first_order_step, visited_times

LOWER_ORDER_FINAL_BELOW = 15  # diffusers' DPMSolverMultistepScheduler: lower_order_final when steps < 15


@torch.no_grad()
def _multistep(denoise: Denoiser, x_T, times, *, order, on_step):
    schedule = denoise.schedule
    times = visited_times(times)
    n = len(times) - 1
    x = x_T
    x0_hist, h_hist = [], []  # estimates and step sizes of the previous steps, newest first
    for i in range(n):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        alpha_t, sigma_t = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
        ratio = sigma_s / sigma_t
        exp_neg_h = (sigma_s * alpha_t) / (alpha_s * sigma_t)
        h = float(schedule.half_log_snr_at(s) - schedule.half_log_snr_at(t)) if s > 0 else math.inf
        # History is usable while its step sizes are finite (not across the flow path's t = 1).
        usable = 0
        while usable < len(h_hist) and math.isfinite(h_hist[usable]):
            usable += 1
        step_order = 1 if s == 0 else min(order, usable + 1)
        if i == n - 2 and n < LOWER_ORDER_FINAL_BELOW:
            step_order = min(step_order, 2)
        D = d.x0
        if step_order == 2:
            r = h_hist[0] / h
            D = (1 + 1 / (2 * r)) * d.x0 - (1 / (2 * r)) * x0_hist[0]
        x_next = ratio * x - alpha_s * (exp_neg_h - 1.0) * D
        if step_order == 3:
            r0, r1 = h_hist[0] / h, h_hist[1] / h
            d1_0, d1_1 = (d.x0 - x0_hist[0]) / r0, (x0_hist[0] - x0_hist[1]) / r1
            d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_1 = exp_neg_h - 1.0  # e^{-h} - 1
            x_next = x_next + alpha_s * (phi_1 / h + 1.0) * d1 - alpha_s * ((phi_1 + h) / h**2 - 0.5) * d2
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
        x0_hist, h_hist = [d.x0, *x0_hist[:1]], [h, *h_hist[:1]]
    return x


@legacy_signature(steps=20)
def sample_dpmpp_2m(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                    generator: torch.Generator | None = None, order: int = 2) -> torch.Tensor:
    """DPM-Solver++(2M) from x_T over ``times`` (strictly decreasing, ending at 0).  ``order`` 1
    is DDIM.  Deterministic: ``generator`` is ignored."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    return _multistep(denoise, x_T, times, order=order, on_step=on_step)


@legacy_signature(steps=20)
def sample_dpmpp_3m(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                    generator: torch.Generator | None = None, order: int = 3) -> torch.Tensor:
    """DPM-Solver++(3M) from x_T over ``times``; ``order`` 2 is exactly DPM-Solver++(2M), 1 is
    DDIM.  Deterministic: ``generator`` is ignored."""
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    return _multistep(denoise, x_T, times, order=order, on_step=on_step)


@legacy_signature(steps=10)
@torch.no_grad()
def sample_dpmpp_2s(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver++(2S) (Lu et al. 2022, Algorithm 1 with r1 = 1/2) over ``times``: two model
    evaluations a step except the last, 2 N - 1 in all for N steps.  Deterministic:
    ``generator`` is ignored."""
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        D = d.x0
        if s > 0:
            u = _intermediate_time(schedule, t, s)
            x_u = first_order_step(schedule, x, d.x0, t, u)
            x0_u = denoise(x_u, u).x0
            lam_t = float(schedule.half_log_snr_at(t))
            if math.isfinite(lam_t):  # Algorithm 1: D = (1 - 1 / (2 r1)) x0_t + 1 / (2 r1) x0_u
                r1 = (float(schedule.half_log_snr_at(u)) - lam_t) / float(schedule.half_log_snr_at(s) - schedule.half_log_snr_at(t))
                D = (1 - 1 / (2 * r1)) * d.x0 + (1 / (2 * r1)) * x0_u
            else:  # infinite h: the estimate at u is the best one of the step
                D = x0_u
        x_next = first_order_step(schedule, x, D, t, s)
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x


def _intermediate_time(schedule: Schedule, t: float, s: float) -> float:
    """2S's intermediate point: the midpoint of the step in lambda (r1 = 1/2), moved on a DDPM
    chain to the nearest grid step k / T strictly inside the step, where a network was trained;
    the midpoint in t where lambda_t = -inf (the flow path's t = 1)."""
    lam_t = float(schedule.half_log_snr_at(t))
    if not math.isfinite(lam_t):
        return 0.5 * (t + s)
    u = float(schedule.time_at_half_log_snr(torch.tensor(0.5 * (lam_t + float(schedule.half_log_snr_at(s))), dtype=torch.float64)))
    if schedule.is_chain:
        T = schedule.T
        k = min(max(round(u * T), round(s * T) + 1), round(t * T) - 1)
        if round(s * T) < k < round(t * T):
            u = k / T
    return u
