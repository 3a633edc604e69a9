"""Initial-value solvers for a batch of ODEs dy/ds = f(s, y), y of shape (B, n), from s0 to s1.

rk45   Dormand & Prince's embedded 5(4) pair (Dormand & Prince 1980; Hairer, Norsett & Wanner,
       "Solving Ordinary Differential Equations I", Sec. II.5, Table 5.2), advanced with the
       5th-order solution, first-same-as-last (6 evaluations a step after the first), and the
       step-size control of Hairer et al. Sec. II.4 (Eq. 4.11-4.13): a step is accepted when

           err = max_b || (y5 - y4) / (atol + rtol max(|y0|, |y1|)) ||  <= 1,

       the next step h * min(10, max(0.2, 0.9 err^(-1/5))).  The norm is taken per batch row
       (each row is one point's ODE), as torchdiffeq's mixed norm: the RMS over each group of
       columns that ``groups`` names, and the largest of those (the log-density column is its own
       group, so its error is not diluted by the D columns of the point), then the largest over
       rows: every point meets the tolerance, not only their average.  The first step is
       Hairer et al.'s starting step (Sec. II.4, "Starting step size").
heun   the explicit trapezoidal rule, 2 evaluations a step, fixed step (order 2).
rk4    the classical Runge-Kutta method, 4 evaluations a step, fixed step (order 4).

Every solver returns the state at s1 and the number of evaluations of f it made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

ODEFunction = Callable[[float, torch.Tensor], torch.Tensor]

SOLVERS = ("rk45", "heun", "rk4")
FIXED_STEP_SOLVERS = ("heun", "rk4")
DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-5
MAX_STEPS = 10_000  # accepted or rejected steps of rk45 before it gives up (unless given a budget)

# Dormand-Prince 5(4) tableau (Hairer et al., Table 5.2).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))


class SolverError(RuntimeError):
    """The adaptive solver could not reach the end within its step budget."""


@dataclass(frozen=True)
class Solution:
    y: torch.Tensor  # the state at s1
    evaluations: int  # calls of f
    steps: int  # accepted steps
    rejected: int = 0  # rejected steps (rk45)


def solve(
    f: ODEFunction, y0: torch.Tensor, s0: float, s1: float, *, method: str = "rk45", rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL, steps: int | None = None, groups: Sequence[slice] | None = None,
    max_evaluations: int | None = None,
) -> Solution:  # fmt: skip
    """Integrate dy/ds = f(s, y) from s0 to s1 (either direction).  ``method`` is rk45 (with
    ``rtol``, ``atol``, the column ``groups`` of the error norm, default one group, and at most
    ``max_evaluations`` calls of f, else SolverError) or a fixed-step solver (heun, rk4) with
    ``steps`` equal steps."""
    if method == "rk45":
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")
        budget = 2 + 6 * MAX_STEPS if max_evaluations is None else int(max_evaluations)
        return _dopri5(f, y0, s0, s1, rtol, atol, groups or (slice(None),), budget)
    if method in FIXED_STEP_SOLVERS:
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"{method}: steps must be an integer >= 1, got {steps!r}")
        return _fixed(f, y0, s0, s1, steps, _heun_step if method == "heun" else _rk4_step)
    raise ValueError(f"unknown solver {method!r}; expected one of {', '.join(SOLVERS)}")


def _heun_step(f, s, y, h):
    k1 = f(s, y)
    k2 = f(s + h, y + h * k1)
    return y + 0.5 * h * (k1 + k2), 2


def _rk4_step(f, s, y, h):
    k1 = f(s, y)
    k2 = f(s + 0.5 * h, y + 0.5 * h * k1)
    k3 = f(s + 0.5 * h, y + 0.5 * h * k2)
    k4 = f(s + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 4


def _fixed(f, y, s0, s1, steps, step) -> Solution:
    grid = [s0 + (s1 - s0) * i / steps for i in range(steps + 1)]
    grid[-1] = s1
    evaluations = 0
    for s, s_next in zip(grid[:-1], grid[1:]):
        y, n = step(f, s, y, s_next - s)
        evaluations += n
    return Solution(y, evaluations, steps)


def _error_norm(scaled: torch.Tensor, groups: Sequence[slice]) -> float:
    """max over rows of (max over column groups of the group's RMS)."""
    per_group = [scaled[:, g].pow(2).mean(dim=1).sqrt() for g in groups]
    return float(torch.stack(per_group, dim=1).amax())


def _initial_step(f, s0, y0, f0, direction, span, rtol, atol, groups) -> tuple[float, int]:
    """Hairer et al. Sec. II.4's starting step for order 5: h0 from the sizes of y0 and f0,
    refined by one Euler step's estimate of the second derivative, never past the end of the
    interval (``span``).  Returns (h, evaluations)."""
    scale = atol + rtol * y0.abs()
    d0, d1 = _error_norm(y0 / scale, groups), _error_norm(f0 / scale, groups)
    h0 = min(span, 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1)
    f1 = f(s0 + direction * h0, y0 + direction * h0 * f0)
    d2 = _error_norm((f1 - f0) / scale, groups) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1, span), 1


def _dopri5(f, y, s0, s1, rtol, atol, groups, budget) -> Solution:
    span = s1 - s0
    if span == 0:
        return Solution(y, 0, 0)
    direction = math.copysign(1.0, span)
    k = [f(s0, y)]
    evaluations = 1
    h, n = _initial_step(f, s0, y, k[0], direction, abs(span), rtol, atol, groups)
    evaluations += n
    s, accepted, rejected = s0, 0, 0
    while direction * (s1 - s) > 0:
        if evaluations + 6 > budget:
            raise SolverError(f"rk45 made {evaluations} evaluations without reaching s = {s1:g} (at s = {s:g}); loosen rtol/atol")
        last = h >= abs(s1 - s) * (1 - 1e-12)
        if last:
            h = abs(s1 - s)
        signed = direction * h
        k = k[:1]
        for i in range(1, 7):
            y_stage = y + signed * sum(a * ki for a, ki in zip(_A[i], k) if a != 0.0)
            k.append(f(s + _C[i] * signed, y_stage))
        evaluations += 6
        y_new = y + signed * sum(b * ki for b, ki in zip(_B5, k) if b != 0.0)
        error = signed * sum(e * ki for e, ki in zip(_E, k) if e != 0.0)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        err = _error_norm(error / scale, groups)
        if not math.isfinite(err):
            raise SolverError(f"rk45: the state is not finite at s = {s:g}")
        if err <= 1.0:
            s = s1 if last else s + signed
            y, k = y_new, [k[6]]  # first same as last
            accepted += 1
        else:
            rejected += 1
        factor = 10.0 if err == 0 else min(10.0, max(0.2, 0.9 * err ** (-1 / 5)))
        if err > 1.0:
            factor = min(factor, 1.0)
        h = h * factor
    return Solution(y, evaluations, accepted, rejected)
