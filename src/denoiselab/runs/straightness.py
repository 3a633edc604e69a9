"""How straight a run's sampling paths are: Liu et al. 2023 ("Flow straight and fast"), Sec. 2.2,

    S(Z) = int_0^1 E || (Z_1 - Z_0) - v(Z_t, t) ||^2 dt,

zero exactly when every path is a straight line walked at constant speed, which one Euler step
then follows exactly.  Measured on the run's own ODE, solved by Euler on a uniform grid in time
from fresh noise: the integral is the mean over the steps (the left rule that Euler itself
uses), ||.||^2 the squared norm of one sample in model units, averaged over the samples.
"""

from __future__ import annotations

import torch

from .load import Run
from .sampling import plan_from_options, sample


def straightness(run: Run, *, n: int = 2000, steps: int = 100, seed: int = 0) -> float:
    """S of ``run``'s probability-flow ODE (Euler, ``steps`` time-uniform steps, ``n`` paths)."""
    velocities: list[torch.Tensor] = []

    def on_step(record) -> None:
        velocities.append((record.x_t - record.x_next) / (record.t - record.t_next))  # dx/dt along the path

    plan = plan_from_options(run, sampler="euler", steps=steps, grid="time-uniform", n=n, seed=seed)
    drawn = sample(run, plan, on_step=on_step, decode=False)
    chord = drawn.x_T - torch.as_tensor(drawn.x, device=drawn.x_T.device)  # Z_1 - Z_0: noise minus sample
    return float(torch.stack([((chord - v) ** 2).flatten(1).sum(1).mean() for v in velocities]).mean())
