"""Samplers: plain functions ``sampler(model_fn, x_T, schedule, steps, *, ...) -> x_0``.

Each owns its loop; history (DPM-Solver++) is a local variable, so concurrent calls never
share state.  ``SAMPLERS`` maps the names the CLI and configs use to the functions.
"""

from .ddim import sample_ddim
from .ddpm import VARIANCES, sample_ddpm
from .dpm_solver import sample_dpmpp_2m
from .stepping import SPACINGS, StepRecord, evaluate, step_grid

SAMPLERS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "dpm++2m": sample_dpmpp_2m}

__all__ = [
    "SAMPLERS",
    "SPACINGS",
    "VARIANCES",
    "StepRecord",
    "evaluate",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "step_grid",
]
