"""MeanFlow's sampler (Geng et al. 2025, Alg. 2): jumps with the learned average velocity,

    z_s = z_t - (t - s) u(z_t, s, t),

exact for every step size when u is exact (meanflow.py), so one step goes from noise to data and
more steps refine it.  A shortcut model (shortcut.py) is the same network and jumps the same way.  One model evaluation a step; deterministic.  The model function takes the
(t, r) pair of each sample as a (B, 2) time (models/mlp.py's interval network).
"""

from __future__ import annotations

import torch

from .denoiser import Denoiser
from .stepping import OnStep, StepRecord, visited_times


@torch.no_grad()
def sample_meanflow(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Average-velocity jumps from x_T over ``times`` (strictly decreasing, ending at 0), on the
    flow path only.  The step record's clean estimate is the jump to t = 0 read from this step's
    u, x0 = z - t u (exact for the last step), and eps = z + (1 - t) u beside it; the clamp of
    ``denoise.clip_x0`` applies to the last jump, as it does to Euler's."""
    schedule = denoise.schedule
    if schedule.path != "flow":
        raise ValueError(f"the meanflow sampler jumps on the flow path; this schedule is {schedule.name}")
    times = visited_times(times)
    x = x_T
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        pair = torch.tensor([t, s], dtype=x.dtype, device=x.device).expand(x.shape[0], 2)
        u = denoise.model_fn(x, pair, denoise.y)
        x_next = x - (t - s) * u
        x0 = x - t * u
        if denoise.clip_x0 is not None:
            x0 = x0.clamp(-denoise.clip_x0, denoise.clip_x0)
            if s == 0:
                x_next = x0
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, x0, x + (1 - t) * u, x_next, schedule.T))
        x = x_next
    return x
