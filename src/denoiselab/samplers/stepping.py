"""What every sampler shares: the grid of steps it visits and one model evaluation.

A sampler walks a strictly decreasing list of grid indices k_0 > k_1 > ... > k_N = 0
(schedules.py: k = 0 is clean data).  Ending at k = 0, where sigma = 0, makes the last
update return the model's clean estimate, so no sampler leaves noise behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..prediction import Denoised, resolve
from ..schedules import Schedule

ModelFn = Callable[..., torch.Tensor]  # model_fn(x_t, t, y=None) -> prediction
SPACINGS = ("trailing", "leading", "linspace", "logsnr")


def step_grid(schedule: Schedule, steps: int, spacing: str = "trailing") -> torch.Tensor:
    """The grid indices a ``steps``-step sampler visits, from noise down to 0 (length steps + 1).

    trailing  round(linspace(T, 0, steps + 1)): always starts at k = T and works for any
              step count, including ones that do not divide T (Lin et al. 2024, Sec. 3.3).
    leading   diffusers' DDIM default, j * (T // steps) + 1: starts below T when steps
              does not divide T, kept for comparison with other toolkits.
    linspace  diffusers' DPM-Solver default: round(linspace(0, T - 1, steps + 1))[1:] + 1, i.e.
              steps + 1 points with the one at 0 dropped (numpy's linspace, so .5 ties round
              exactly as diffusers does).  steps == T gives the full grid T..1, where
              diffusers would repeat a timestep.
    logsnr    uniform in log-SNR between k = T and k = 1 (Lu et al. 2022, Sec. 3.3).
    """
    T = schedule.T
    if not (isinstance(steps, int) and 1 <= steps <= T):
        raise ValueError(f"steps must be an integer in 1..{T} (the schedule's T), got {steps!r}")
    if spacing == "trailing":
        ks = torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long()
        return ks
    if spacing == "leading":
        ks = torch.arange(steps - 1, -1, -1) * (T // steps) + 1
    elif spacing == "linspace":
        if steps == T:
            ks = torch.arange(T, 0, -1)
        else:
            ks = torch.from_numpy(np.linspace(0, T - 1, steps + 1).round()[:0:-1].copy()).long() + 1
    elif spacing == "logsnr":
        lam = schedule.log_snr
        targets = torch.linspace(float(lam[T]), float(lam[1]), steps, dtype=torch.float64)
        # lambda decreases with k, so search on the reversed (increasing) array.
        ks = T - torch.searchsorted(lam[1:].flip(0).contiguous(), targets).clamp(max=T - 1)
        # Nearest indices can repeat where lambda changes fast; keep the grid strictly decreasing.
        ks = ks.clone()
        for i in range(steps - 2, -1, -1):
            ks[i] = max(int(ks[i]), int(ks[i + 1]) + 1)
        ks = ks.clamp(max=T)
        for i in range(1, steps):
            ks[i] = min(int(ks[i]), int(ks[i - 1]) - 1)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {', '.join(SPACINGS)}")
    return torch.cat([ks.long(), torch.zeros(1, dtype=torch.long)])


@dataclass(frozen=True)
class StepRecord:
    """What a sampler reports after each step (for GIFs, the playground and tests)."""

    index: int  # 0-based step number
    k: int  # grid index stepped from
    k_next: int  # grid index stepped to
    t: float  # continuous time of k (k / T)
    x_t: torch.Tensor  # the sample at k
    x0: torch.Tensor  # the model's estimate of clean data at k
    eps: torch.Tensor  # the model's estimate of the noise at k
    x_next: torch.Tensor  # the sample at k_next


OnStep = Optional[Callable[[StepRecord], None]]


def evaluate(
    model_fn: ModelFn,
    x: torch.Tensor,
    schedule: Schedule,
    k: int,
    *,
    y=None,
    prediction: str = "eps",
    clip_x0: float | None = None,
) -> Denoised:
    """Call the model at grid index k and read its output as (x0, eps).

    ``clip_x0`` clamps the clean estimate to [-clip_x0, clip_x0] (for pixel data) and
    recomputes eps from it so the two stay consistent.
    """
    t = torch.full((x.shape[0],), k / schedule.T, dtype=x.dtype, device=x.device)
    alpha, sigma = float(schedule.alphas[k]), float(schedule.sigmas[k])
    out = resolve(model_fn(x, t, y), prediction, x, alpha, sigma)
    if clip_x0 is not None:
        x0 = out.x0.clamp(-clip_x0, clip_x0)
        out = Denoised(x0, (x - alpha * x0) / sigma)
    return out


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
