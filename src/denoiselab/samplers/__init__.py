"""Samplers: plain functions ``sampler(model_fn, x_T, schedule, steps, *, grid, ...) -> x_0``.

They visit ``steps`` steps of the grid named by ``spacing``, or ``grid``: a strictly
decreasing list of times ending at 0 (grids.py; also accepted in the place of ``steps``).  Each sampler owns its loop; history (DPM-Solver++) is a local
variable, so concurrent calls never share state.  ``SAMPLERS`` maps the names the CLI and
configs use to the functions.
"""

from .ddim import sample_ddim
from .ddpm import VARIANCES, sample_ddpm
from .dpm_solver import sample_dpmpp_2m, sample_dpmpp_2s, sample_dpmpp_3m
from .grids import (
    CHAIN_GRIDS,
    GRIDS,
    KARRAS_RHO,
    check_grid,
    parse_grid,
    step_grid,
    time_grid,
)
from .ipndm import sample_ipndm
from .ode import sample_edm_heun, sample_euler, sample_heun
from .stepping import CountingModel, StepRecord, as_grid, evaluate, first_order_step
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
# Samplers that call the model twice a step, except on the last step (to t = 0): 2 N - 1 in all.
TWO_EVALUATIONS_PER_STEP = ("heun", "edm-heun", "dpm++2s")
# The names of the grids a step count can be spread over (sample.spacing, --grid).
SPACINGS = GRIDS


def evaluations(sampler: str, steps: int) -> int:
    """Model evaluations a sampler makes over ``steps`` steps (Heun, 2S: two a step but the last)."""
    return 2 * steps - 1 if sampler in TWO_EVALUATIONS_PER_STEP else steps


__all__ = [
    "CHAIN_GRIDS",
    "GRIDS",
    "KARRAS_RHO",
    "SAMPLERS",
    "SPACINGS",
    "VARIANCES",
    "CountingModel",
    "StepRecord",
    "TWO_EVALUATIONS_PER_STEP",
    "as_grid",
    "check_grid",
    "evaluate",
    "evaluations",
    "first_order_step",
    "parse_grid",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2s",
    "sample_dpmpp_3m",
    "sample_edm_heun",
    "sample_euler",
    "sample_heun",
    "sample_ipndm",
    "sample_unipc",
    "step_grid",
    "time_grid",
]
