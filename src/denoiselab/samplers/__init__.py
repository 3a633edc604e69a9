"""Samplers: plain functions ``sampler(denoise, x_T, times, *, on_step=None, generator=None,
**own) -> x_0``, in k-diffusion's shape.

``denoise`` is a ``Denoiser`` (denoiser.py): the model function, its schedule, what it predicts,
the labels and the clamp, built once; ``times`` is a strictly decreasing sequence of times
ending at 0 (grids.py: ``time_grid(schedule, steps, name)`` or any list).  Guidance wraps the
model function before the Denoiser is built, so no sampler knows about it.  ``generator`` draws
the noise of the stochastic samplers and is ignored by the deterministic ones, so callers pass it
to any; ``**own`` are a sampler's own options (eta, variance, order, variant, corrector).  Each
sampler owns its loop; history (DPM-Solver++) is a local variable, so concurrent calls never
share state.  ``SAMPLERS`` maps the names the CLI and configs use to the functions.  The
previous signature, ``sampler(model_fn, x_T, schedule, steps, *, grid, spacing, y, prediction,
clip_x0, ...)``, still works for one release, with a DeprecationWarning (legacy.py).
"""

from .consistency import sample_consistency
from .ddim import sample_ddim
from .ddpm import VARIANCES, sample_ddpm
from .denoiser import Denoiser, ModelFn
from .dpm_solver import sample_dpmpp_2m, sample_dpmpp_2s, sample_dpmpp_3m
from .grids import (
    CHAIN_GRIDS,
    GRIDS,
    KARRAS_RHO,
    as_grid,
    check_grid,
    parse_grid,
    step_grid,
    time_grid,
)
from .ipndm import sample_ipndm
from .meanflow import sample_meanflow
from .ode import sample_edm_heun, sample_euler, sample_heun
from .legacy import evaluate
from .stepping import CountingModel, StepRecord, first_order_step
from .unipc import sample_unipc

SAMPLERS = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpm++2m": sample_dpmpp_2m,
    "dpm++3m": sample_dpmpp_3m,
    "dpm++2s": sample_dpmpp_2s,
    "unipc": sample_unipc,
    "ipndm": sample_ipndm,
    "euler": sample_euler,  # = EDM's Euler (and DDIM): see ode.py
    "heun": sample_heun,
    "edm-heun": sample_edm_heun,
}
# Samplers of a network of two times u(z, r, t) (train.objective = meanflow or shortcut), and of a
# consistency function (train.objective = consistency-*), which only such a network answers: kept
# apart from SAMPLERS, which any Denoiser answers.
JUMP_SAMPLERS = {"meanflow": sample_meanflow, "consistency": sample_consistency}
# Samplers that call the model twice a step, except on the last step (to t = 0): 2 N - 1 in all.
TWO_EVALUATIONS_PER_STEP = ("heun", "edm-heun", "dpm++2s")
# The names of the grids a step count can be spread over (sample.grid, --grid).
SPACINGS = GRIDS


def evaluations(sampler: str, steps: int) -> int:
    """Model evaluations a sampler makes over ``steps`` steps (Heun, 2S: two a step but the last)."""
    return 2 * steps - 1 if sampler in TWO_EVALUATIONS_PER_STEP else steps


__all__ = [
    "CHAIN_GRIDS",
    "GRIDS",
    "JUMP_SAMPLERS",
    "KARRAS_RHO",
    "SAMPLERS",
    "SPACINGS",
    "VARIANCES",
    "CountingModel",
    "Denoiser",
    "ModelFn",
    "StepRecord",
    "TWO_EVALUATIONS_PER_STEP",
    "as_grid",
    "check_grid",
    "evaluate",
    "evaluations",
    "first_order_step",
    "parse_grid",
    "sample_consistency",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2s",
    "sample_dpmpp_3m",
    "sample_edm_heun",
    "sample_euler",
    "sample_heun",
    "sample_ipndm",
    "sample_meanflow",
    "sample_unipc",
    "step_grid",
    "time_grid",
]
