"""iPNDM (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator",
Sec. 5 / App. B: improved PNDM; as implemented in Zhou et al. 2024's diff-sampler collection).

Adams-Bashforth on the probability-flow ODE in Karras et al.'s variables (EDM, Eq. 4 with
s(t) = 1): x~ = x / alpha, sigma~ = sigma / alpha, where the ODE is dx~ / dsigma~ = eps(x, t).
With the noise estimates eps_0 (now), eps_1, eps_2, eps_3 (the previous steps) and
dsigma~ = sigma~_s - sigma~_t, the fixed-coefficient multistep formulas are

    order 1   x~_s = x~_t + dsigma~ eps_0                                    (Euler = DDIM)
    order 2   x~_s = x~_t + dsigma~ (3 eps_0 - eps_1) / 2
    order 3   x~_s = x~_t + dsigma~ (23 eps_0 - 16 eps_1 + 5 eps_2) / 12
    order 4   x~_s = x~_t + dsigma~ (55 eps_0 - 59 eps_1 + 37 eps_2 - 9 eps_3) / 24

The first steps use the orders their history allows (1, 2, 3, then ``order``).  The last step,
to sigma~ = 0, is taken at full order, as in diff-sampler.

On the flow path sigma~ is infinite at t = 1: that first step is the exact first-order step
(DDIM), and the noise estimate there is not used as history (its step has no finite size).
"""

from __future__ import annotations

import torch

from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, first_order_step, visited_times

# Adams-Bashforth weights of eps_0, eps_1, ... for equal steps (divided by their sum).
ADAMS_BASHFORTH = {1: (1.0,), 2: (3.0, -1.0), 3: (23.0, -16.0, 5.0), 4: (55.0, -59.0, 37.0, -9.0)}


@legacy_signature(steps=10)
@torch.no_grad()
def sample_ipndm(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                 generator: torch.Generator | None = None, order: int = 4) -> torch.Tensor:
    """iPNDM of order ``order`` (1 to 4) from x_T over ``times`` (strictly decreasing, ending
    at 0); one model evaluation per step.  Deterministic: ``generator`` is ignored."""
    if order not in ADAMS_BASHFORTH:
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order}")
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    eps_hist: list[torch.Tensor] = []  # noise estimates of the previous steps, newest first
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        alpha_t, alpha_s = float(schedule.alpha_at(t)), float(schedule.alpha_at(s))
        if alpha_t == 0.0:  # sigma~ = inf (flow path, t = 1): the exact first-order step
            x_next = first_order_step(schedule, x, d.x0, t, s)
        else:
            eps_hist = [d.eps, *eps_hist[: order - 1]]
            weights = ADAMS_BASHFORTH[len(eps_hist)]
            slope = sum(w * e for w, e in zip(weights, eps_hist)) / sum(weights)
            dsigma = float(schedule.sigma_at(s)) / alpha_s - float(schedule.sigma_at(t)) / alpha_t
            x_next = alpha_s * (x / alpha_t + dsigma * slope)
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x
