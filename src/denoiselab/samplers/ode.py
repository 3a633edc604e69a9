"""Euler and Heun on the probability-flow ODE, written on the straight flow path.

Any path x_t = alpha x0 + sigma eps is the flow path rescaled (schedules.py): with

    tau = sigma / (alpha + sigma),     z = x_t / (alpha + sigma),

z = (1 - tau) x0 + tau eps, and the probability-flow ODE (Song et al. 2021, Eq. 13) reads
dz / dtau = eps_hat - x0_hat, the flow-matching velocity (Lipman et al. 2023; Liu et al. 2023).
These coordinates stay finite at t = 1 on the flow path (tau = 1), where lambda = -inf and
sigma / alpha is infinite; on the flow path tau = t and z = x, so these are rectified flow's
own Euler and Heun in t.

euler  z_s = z_t + (tau_s - tau_t) u(z_t)                  one evaluation per step.
       It equals DDIM with eta = 0 exactly, on every schedule.
heun   Heun's second-order method (Karras et al. 2022, Algorithm 1, in tau):
       z' = z_t + (tau_s - tau_t) u_t,  z_s = z_t + (tau_s - tau_t) (u_t + u(z', s)) / 2,
       two evaluations per step, except the last (to t = 0), which is an Euler step: the
       model is never called at sigma = 0.

edm-heun  Heun in Karras et al.'s own variables (EDM, Algorithm 1 with s(t) = 1, sigma(t) = t, as
       their VP experiments and diffusers' HeunDiscreteScheduler use it): x~ = x / alpha,
       sigma~ = sigma / alpha, dx~ / dsigma~ = eps_hat.  Its predictor is the same Euler step
       (DDIM), but the corrector averages slopes in other coordinates, so it differs from heun
       by O(dsigma~^2) per step.  On the flow path sigma~ is infinite at t = 1; that one step is
       taken in the flow coordinates above.

EDM's Euler is euler: Euler steps in (sigma~, x~) and in (tau, z) both give DDIM exactly.
"""

from __future__ import annotations

import torch

from ..schedules import Schedule
from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, visited_times


def _flow_coordinates(schedule: Schedule, t: float) -> tuple[float, float]:
    """(alpha + sigma, tau) at time t."""
    a, s = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    return a + s, s / (a + s)


def _edm_coordinates(schedule: Schedule, t: float) -> tuple[float, float]:
    """(alpha, sigma / alpha) at time t: Karras et al.'s x~ = x / alpha and sigma~."""
    a = float(schedule.alpha_at(t))
    return a, float(schedule.sigma_at(t)) / a


def _flow_velocity(d) -> torch.Tensor:
    return d.eps - d.x0  # dz / dtau


def _edm_velocity(d) -> torch.Tensor:
    return d.eps  # dx~ / dsigma~


@torch.no_grad()
def _solve(denoise: Denoiser, x_T, times, *, heun, on_step, edm=False):
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        in_edm = edm and float(schedule.alpha_at(t)) > 0.0  # sigma~ is finite
        coordinates, velocity = (_edm_coordinates, _edm_velocity) if in_edm else (_flow_coordinates, _flow_velocity)
        scale_t, tau_t = coordinates(schedule, t)
        scale_s, tau_s = coordinates(schedule, s)
        d = denoise(x, t)
        z, u = x / scale_t, velocity(d)
        z_next = z + (tau_s - tau_t) * u
        if heun and s > 0:
            d2 = denoise(z_next * scale_s, s)
            z_next = z + (tau_s - tau_t) * 0.5 * (u + velocity(d2))
        x_next = z_next * scale_s
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x


@legacy_signature(steps=20)
def sample_euler(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Euler from x_T over ``times`` (strictly decreasing, ending at 0): DDIM with eta = 0.
    Deterministic: ``generator`` is ignored."""
    return _solve(denoise, x_T, times, heun=False, on_step=on_step)


@legacy_signature(steps=10)
def sample_heun(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Heun in the flow coordinates from x_T over ``times`` (strictly decreasing, ending at 0).
    N steps cost 2 N - 1 model evaluations.  Deterministic: ``generator`` is ignored."""
    return _solve(denoise, x_T, times, heun=True, on_step=on_step)


@legacy_signature(steps=10)
def sample_edm_heun(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Karras et al.'s Heun in (sigma~, x~) from x_T over ``times``.  N steps cost 2 N - 1
    model evaluations.  Deterministic: ``generator`` is ignored."""
    return _solve(denoise, x_T, times, heun=True, edm=True, on_step=on_step)
