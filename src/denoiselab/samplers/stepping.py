"""What every sampler shares: its time grid, one model evaluation, the per-step record.

A sampler walks a strictly decreasing grid of times t_0 > ... > t_N = 0 (grids.py).  It is
given either that grid or a step count and the name of a grid (``as_grid``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..prediction import Denoised, resolve
from ..schedules import Schedule
from .grids import check_grid, time_grid

ModelFn = Callable[..., torch.Tensor]  # model_fn(x_t, t, y=None) -> prediction


def as_grid(schedule: Schedule, grid, spacing: str = "trailing") -> torch.Tensor:
    """The times a sampler visits: ``grid`` itself (a sequence or tensor of times), or, for an
    integer, that many steps of the named grid ``spacing``."""
    if isinstance(grid, int) and not isinstance(grid, bool):
        return time_grid(schedule, grid, spacing)
    if grid is None or isinstance(grid, (bool, float, str)):
        raise ValueError(f"steps must be an integer >= 1 or a list of times ending at 0, got {grid!r}")
    return check_grid(grid)


@dataclass(frozen=True)
class StepRecord:
    """What a sampler reports after each step (for GIFs, the playground and tests)."""

    index: int  # 0-based step number
    t: float  # time stepped from
    t_next: float  # time stepped to
    x_t: torch.Tensor  # the sample at t
    x0: torch.Tensor  # the model's estimate of clean data at t
    eps: torch.Tensor  # the model's estimate of the noise at t
    x_next: torch.Tensor  # the sample at t_next
    T: int = 0  # the schedule's grid size, for k and k_next

    @property
    def k(self) -> int | float:
        """Grid position t * T: the step k of a T-step chain when t is on its grid."""
        return _grid_position(self.t, self.T)

    @property
    def k_next(self) -> int | float:
        return _grid_position(self.t_next, self.T)


def _grid_position(t: float, T: int) -> int | float:
    pos = t * T
    return round(pos) if abs(pos - round(pos)) <= 1e-9 else pos


OnStep = Optional[Callable[[StepRecord], None]]


def evaluate(
    model_fn: ModelFn,
    x: torch.Tensor,
    schedule: Schedule,
    t: float,
    *,
    y=None,
    prediction: str = "eps",
    clip_x0: float | None = None,
) -> Denoised:
    """Call the model at time t and read its output as (x0, eps).

    ``clip_x0`` clamps the clean estimate to [-clip_x0, clip_x0] and recomputes eps from it so
    the two stay consistent.
    """
    t = float(t)
    alpha, sigma = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    if alpha == 0.0 and prediction == "eps":
        # x0 = (x - sigma eps) / alpha has no value where the path holds no signal.
        raise ValueError(
            f"an eps-prediction model cannot be read at t = {t:g}, where alpha = 0 ({schedule.name} path); "
            "start the grid below 1 or predict velocity, x0 or v"
        )
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    out = resolve(model_fn(x, tt, y), prediction, x, alpha, sigma)
    if clip_x0 is not None:
        x0 = out.x0.clamp(-clip_x0, clip_x0)
        out = Denoised(x0, (x - alpha * x0) / sigma)
    return out


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


class CountingModel:
    """A model function that counts its calls: the evaluations a sampler really made."""

    def __init__(self, model_fn: ModelFn):
        self.model_fn, self.calls = model_fn, 0

    def __call__(self, x, t, y=None):
        self.calls += 1
        return self.model_fn(x, t, y)


def first_order_step(schedule: Schedule, x: torch.Tensor, x0: torch.Tensor, t: float, s: float) -> torch.Tensor:
    """The exact solution of the probability-flow ODE from t to s for a constant clean estimate
    (DDIM with eta = 0; DPM-Solver++ first order, Lu et al. 2022 Eq. 9):
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0, with e^{-h} computed as
    (sigma_s alpha_t) / (alpha_s sigma_t) so that sigma_s = 0 and alpha_t = 0 need no infinities."""
    alpha_t, sigma_t = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    alpha_s, sigma_s = float(schedule.alpha_at(s)), float(schedule.sigma_at(s))
    return (sigma_s / sigma_t) * x - alpha_s * ((sigma_s * alpha_t) / (alpha_s * sigma_t) - 1.0) * x0
