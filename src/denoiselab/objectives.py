"""Training objectives.

``diffusion_loss`` is the simple DDPM objective (Ho et al. 2020, Eq. 14, Algorithm 1):
draw k ~ U{1..T}, eps ~ N(0, I), form x_k in closed form and regress the network's output on
the target of its prediction type (eps, x0 or v; prediction.py), with mean squared error.
"""

from __future__ import annotations

import torch

from .forward_process import q_sample
from .prediction import target
from .schedules import Schedule


TIMESTEP_SAMPLING = ("uniform", "logsnr")


def sample_timesteps(schedule: Schedule, n: int, generator, how: str = "uniform") -> torch.Tensor:
    """Grid indices k in 1..T for a training batch.

    uniform  k ~ U{1..T}, DDPM's choice (Ho et al. 2020, Algorithm 1).
    logsnr   log-SNR lambda uniform between lambda_1 and lambda_T, then the nearest k: spends
             the batch evenly across noise *levels* rather than steps, so the near-clean
             range, where a linear schedule has few steps per decibel, is trained as much as
             the near-noise range (the importance-sampling idea of Nichol & Dhariwal 2021,
             Sec. 3.3, in its simplest fixed form; Kingma et al. 2021 on weighting by lambda).
    """
    if how == "uniform":
        return torch.randint(1, schedule.T + 1, (n,), generator=generator)
    if how == "logsnr":
        lam = schedule.log_snr[1:]  # decreasing in k
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        target = lam[-1] + u * (lam[0] - lam[-1])
        # first k whose lambda falls below the target, on the increasing reversed array
        idx = torch.searchsorted(lam.flip(0).contiguous(), target)
        return (schedule.T - idx).clamp(1, schedule.T)
    raise ValueError(f"unknown timestep sampling {how!r}; expected one of {', '.join(TIMESTEP_SAMPLING)}")


def diffusion_loss(
    model_fn,
    x0: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    *,
    y: torch.Tensor | None = None,
    prediction: str = "eps",
    timesteps: str = "uniform",
) -> torch.Tensor:
    """Monte Carlo estimate of E_{k, eps} || model(x_k, k/T, y) - target ||^2 over a batch x0.

    Randomness is drawn on the generator's device (CPU by default) and moved to x0's device,
    so a seed gives the same run on every device.
    """
    b = x0.shape[0]
    k = sample_timesteps(schedule, b, generator, timesteps)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    k = k.to(x0.device)
    x_t = q_sample(schedule, x0, k, eps)
    alphas = schedule.alphas.to(x0.device)[k]
    sigmas = schedule.sigmas.to(x0.device)[k]
    pred = model_fn(x_t, k.to(x0.dtype) / schedule.T, y)
    return torch.mean((pred - target(prediction, x0, eps, alphas, sigmas)) ** 2)
