"""A model's log-density: its probability-flow ODE solved as a continuous normalising flow.

``likelihood(model_fn, schedule, x, ...)`` (probability_flow.py) takes any model function (a
network, the closed-form oracles of oracles.py, a guidance wrapper) and returns log p(x) with its
parts; divergence.py has the exact divergence and Hutchinson's estimator, solvers.py the ODE
solvers (Dormand-Prince 5(4), Heun, RK4).
"""

from .divergence import PROBES, draw_probes, field_and_divergence
from .probability_flow import (
    DIVERGENCES,
    EXACT_UP_TO,
    LogDensity,
    default_times,
    gaussian_prior,
    likelihood,
    tau_at,
    time_at_tau,
)
from .solvers import FIXED_STEP_SOLVERS, SOLVERS, Solution, SolverError, solve

__all__ = [
    "DIVERGENCES",
    "EXACT_UP_TO",
    "FIXED_STEP_SOLVERS",
    "LogDensity",
    "PROBES",
    "SOLVERS",
    "Solution",
    "SolverError",
    "default_times",
    "draw_probes",
    "field_and_divergence",
    "gaussian_prior",
    "likelihood",
    "solve",
    "tau_at",
    "time_at_tau",
]
