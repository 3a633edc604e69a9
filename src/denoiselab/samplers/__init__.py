"""Samplers: plain functions ``sampler(model_fn, x_T, schedule, steps, *, grid, ...) -> x_0``.

They visit ``steps`` steps of the grid named by ``spacing``, or ``grid``: a strictly
decreasing list of times ending at 0 (grids.py; also accepted in the place of ``steps``).  Each sampler owns its loop; history (DPM-Solver++) is a local
variable, so concurrent calls never share state.  ``SAMPLERS`` maps the names the CLI and
configs use to the functions.
"""

from .ddim import sample_ddim
from .ddpm import VARIANCES, sample_ddpm
from .dpm_solver import sample_dpmpp_2m
from .grids import (
    CHAIN_GRIDS,
    GRIDS,
    KARRAS_RHO,
    check_grid,
    parse_grid,
    step_grid,
    time_grid,
)
from .ode import sample_euler, sample_heun
from .stepping import CountingModel, StepRecord, as_grid, evaluate

SAMPLERS = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpm++2m": sample_dpmpp_2m,
    "euler": sample_euler,
    "heun": sample_heun,
}
# The names of the grids a step count can be spread over (sample.spacing, --grid).
SPACINGS = GRIDS


def evaluations(sampler: str, steps: int) -> int:
    """Model evaluations a sampler makes over ``steps`` steps (Heun: two a step but the last)."""
    return 2 * steps - 1 if sampler == "heun" else steps


__all__ = [
    "CHAIN_GRIDS",
    "GRIDS",
    "KARRAS_RHO",
    "SAMPLERS",
    "SPACINGS",
    "VARIANCES",
    "CountingModel",
    "StepRecord",
    "as_grid",
    "check_grid",
    "evaluate",
    "evaluations",
    "parse_grid",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "step_grid",
    "time_grid",
]
