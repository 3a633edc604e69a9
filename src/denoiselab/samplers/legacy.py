"""The samplers' previous signature, still answered for one release, with a DeprecationWarning:

    sampler(model_fn, x_T, schedule, steps, *, grid=None, spacing="trailing", y=None,
            prediction="eps", clip_x0=None, generator=None, on_step=None, **own)

``legacy_signature`` lets a sampler of the current contract (stepping.py) answer both calls: a
first argument that is a Denoiser is the current call; anything else is read as the old one,
whose times are ``as_grid(schedule, grid or steps, spacing)`` and whose Denoiser is built from
(model_fn, schedule, prediction, y, clip_x0).  Both give the same numbers.  ``evaluate`` is the old name of ``Denoiser(...)(x, t)``.
"""

from __future__ import annotations

import functools
import warnings

import torch

from ..prediction import Denoised
from ..schedules import Schedule
from .denoiser import Denoiser, ModelFn
from .grids import as_grid


def legacy_signature(steps: int | None):
    """Let a sampler also accept the old call; ``steps`` is its old default step count (None:
    every step of the schedule's chain, T)."""
    default_steps = steps

    def decorate(sampler):
        name = sampler.__name__

        def old_call(model_fn, x_T, schedule, steps=default_steps, *, grid=None, spacing="trailing", y=None,
                     prediction="eps", clip_x0=None, generator=None, on_step=None, **own):
            warnings.warn(
                f"{name}(model_fn, x_T, schedule, steps, ...) is deprecated and goes in the next release; call "
                f"{name}(Denoiser(model_fn, schedule, prediction, y, clip_x0), x_T, times, ...) with "
                "times = time_grid(schedule, steps, spacing) or a list of times ending at 0",
                DeprecationWarning,
                stacklevel=3,
            )
            if grid is None:
                grid = schedule.T if steps is None and default_steps is None else steps
            times = as_grid(schedule, grid, spacing)
            denoise = Denoiser(model_fn, schedule, prediction, y, clip_x0)
            return sampler(denoise, x_T, times, generator=generator, on_step=on_step, **own)

        @functools.wraps(sampler)
        def either_call(*args, **kwargs):
            first = args[0] if args else kwargs.get("denoise")
            return sampler(*args, **kwargs) if isinstance(first, Denoiser) else old_call(*args, **kwargs)

        return either_call

    return decorate


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
    """Deprecated: ``Denoiser(model_fn, schedule, prediction, y, clip_x0)(x, t)``."""
    warnings.warn(
        "evaluate(model_fn, x, schedule, t, ...) is deprecated and goes in the next release; "
        "call Denoiser(model_fn, schedule, prediction, y, clip_x0)(x, t)",
        DeprecationWarning,
        stacklevel=2,
    )
    return Denoiser(model_fn, schedule, prediction, y, clip_x0)(x, t)
