"""What every sampler shares: the times it visits, the per-step record, the first-order step.

A sampler ``sampler(denoise, x_T, times, *, on_step=None, generator=None, **own)`` walks a
strictly decreasing sequence of times t_0 > ... > t_N = 0 (grids.py), asking ``denoise``
(denoiser.py) for the clean estimate at each point it visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..schedules import Schedule
from .denoiser import ModelFn
from .grids import check_grid
from .legacy import evaluate  # noqa: F401 - deprecated: Denoiser(...)(x, t), one release
from .noise import normal_like


def visited_times(times) -> list[float]:
    """``times`` checked once (a strictly decreasing sequence in [0, 1] ending at 0) as the
    Python floats a sampler steps between."""
    return check_grid(times, "times").tolist()


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


def gaussian_like(x: torch.Tensor, generator) -> torch.Tensor:
    """A sampler's fresh noise: normals of x's shape from ``generator``, a torch.Generator or a
    per-sample noise.SampleNoise (noise.normal_like)."""
    return normal_like(x, generator)


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
