"""Time grids: the strictly decreasing times t_0 > t_1 > ... > t_N = 0 a sampler visits.

Every sampler takes such a grid (schedules.py: t = 0 is clean data).  Ending at t = 0, where
sigma = 0, makes the last update return the model's clean estimate, so no sampler leaves
noise behind (the failure of diffusers #5689, whose grids can stop above 0).

Named grids (``time_grid``):

trailing      t = round(linspace(T, 0, N + 1)) / T: starts at t = 1, works for any N,
              including ones that do not divide T (Lin et al. 2024, Sec. 3.3).
leading       diffusers' DDIM default, k = j * (T // N) + 1 (starts below 1 when N does not
              divide T); kept to compare with other toolkits.
linspace      diffusers' DPM-Solver default: round(linspace(0, T - 1, N + 1))[1:] + 1.
logsnr        uniform in log-SNR from t = 1 down to t = 1 / T (Lu et al. 2022, Sec. 3.3).
              On a DDPM chain each point is moved to the nearest grid step k / T, where the
              network was trained.
karras        Karras et al. 2022, Eq. 5: sigma_i = (s_max^(1/rho) + i / (N - 1)
              (s_min^(1/rho) - s_max^(1/rho)))^rho in the noise level sigma / alpha, between
              t = 1 and t = 1 / T; rho = 7 by default.
time-uniform  t = linspace(1, 0, N + 1), not rounded to any grid.

On the flow path log-SNR is -inf at t = 1 (sigma / alpha is infinite): logsnr and karras take
their range from t = 1 - 1 / T, the mirror of t = 1 / T, and their first point is t = 1 itself.
A user's grid is a list of times (``parse_grid``: "1,0.6,0.3,0.1,0" or a file of numbers).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..schedules import Schedule

from ..choices import GRIDS, KARRAS_RHO  # noqa: E402 - the names, importable without torch

CHAIN_GRIDS = GRIDS[:4]  # defined on the integer steps k of a T-step chain (step_grid)


def step_grid(schedule: Schedule, steps: int, spacing: str = "trailing") -> torch.Tensor:
    """Integer grid indices k (t = k / T) of the grids defined on a T-step chain: trailing,
    leading, linspace and logsnr (rounded), from k = T (or below, for leading) down to 0."""
    T = schedule.T
    _check_steps(steps, T)
    if spacing == "trailing":
        return torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long()
    if spacing == "leading":
        ks = torch.arange(steps - 1, -1, -1) * (T // steps) + 1
    elif spacing == "linspace":
        if steps == T:
            ks = torch.arange(T, 0, -1)
        else:  # numpy's linspace, so .5 ties round exactly as diffusers does
            ks = torch.from_numpy(np.linspace(0, T - 1, steps + 1).round()[:0:-1].copy()).long() + 1
    elif spacing == "logsnr":
        lam = schedule.half_log_snr
        targets = torch.linspace(float(lam[T]), float(lam[1]), steps, dtype=torch.float64)
        # lambda decreases with k, so search on the reversed (increasing) array.
        ks = T - torch.searchsorted(lam[1:].flip(0).contiguous(), targets).clamp(max=T - 1)
        ks = _strictly_decreasing(ks.clone(), T)
    else:
        raise ValueError(f"unknown grid {spacing!r} for integer steps; expected one of {', '.join(CHAIN_GRIDS)}")
    return torch.cat([ks.long(), torch.zeros(1, dtype=torch.long)])


def _strictly_decreasing(ks: torch.Tensor, T: int) -> torch.Tensor:
    """Nearest indices can repeat where lambda changes fast; push them apart, within 1..T."""
    n = len(ks)
    for i in range(n - 2, -1, -1):
        ks[i] = max(int(ks[i]), int(ks[i + 1]) + 1)
    ks = ks.clamp(max=T)
    for i in range(1, n):
        ks[i] = min(int(ks[i]), int(ks[i - 1]) - 1)
    return ks


def _check_steps(steps, T: int | None = None) -> None:
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1 and (T is None or steps <= T)):
        limit = f" in 1..{T} (the schedule's T)" if T is not None else " >= 1"
        raise ValueError(f"steps must be an integer{limit}, got {steps!r}")


def time_grid(schedule: Schedule, steps: int, kind: str = "trailing", *, rho: float = KARRAS_RHO) -> torch.Tensor:
    """The ``steps + 1`` times of a named grid (float64), from t_0 (1 for all but leading) to 0."""
    if kind not in GRIDS:
        raise ValueError(f"unknown grid {kind!r}; expected one of {', '.join(GRIDS)}")
    T = schedule.T
    if kind in ("trailing", "leading", "linspace") or (kind == "logsnr" and schedule.is_chain):
        return step_grid(schedule, steps, kind).to(torch.float64) / T
    _check_steps(steps)
    if kind == "time-uniform":
        return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    # logsnr / karras: spaced in lambda between the noisy end and t = 1 / T.
    t_lo = 1.0 / T
    lam_lo = float(schedule.half_log_snr_at(t_lo))  # the clean end (large lambda)
    lam_hi_t = 1.0 if math.isfinite(float(schedule.half_log_snr_at(1.0))) else 1.0 - t_lo
    lam_hi = float(schedule.half_log_snr_at(lam_hi_t))  # the noisy end (small lambda)
    if kind == "logsnr":
        lam = torch.linspace(lam_hi, lam_lo, steps, dtype=torch.float64)
    else:
        if not (isinstance(rho, (int, float)) and rho > 0):
            raise ValueError(f"rho must be > 0, got {rho!r}")
        # sigma / alpha = exp(-lambda): Karras's noise level of the variance-exploding form.
        s_max, s_min = math.exp(-lam_hi), math.exp(-lam_lo)
        ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
        sig = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        lam = -torch.log(sig)
    ts = schedule.time_at_half_log_snr(lam)
    ts[0] = 1.0  # the noisy end is t = 1 exactly (the flow path's is moved there from 1 - 1/T)
    return check_grid(torch.cat([ts, torch.zeros(1, dtype=torch.float64)]), f"the {kind} grid")


def as_grid(schedule: Schedule, grid, spacing: str = "trailing") -> torch.Tensor:
    """The times a sampler visits: ``grid`` itself (a sequence or tensor of times), or, for an
    integer, that many steps of the named grid ``spacing``."""
    if isinstance(grid, int) and not isinstance(grid, bool):
        return time_grid(schedule, grid, spacing)
    if grid is None or isinstance(grid, (bool, float, str)):
        raise ValueError(f"steps must be an integer >= 1 or a list of times ending at 0, got {grid!r}")
    return check_grid(grid)


def check_grid(grid, what: str = "grid") -> torch.Tensor:
    """A user's grid as a float64 tensor: at least two times in [0, 1], strictly decreasing,
    the last one 0."""
    try:
        g = torch.as_tensor(grid, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what}: expected a list of times in [0, 1], got {grid!r}") from None
    if g.numel() < 2:
        raise ValueError(f"{what}: expected at least two times (a start and 0), got {g.tolist()}")
    if not bool(torch.isfinite(g).all()) or g.min() < 0 or g.max() > 1:
        raise ValueError(f"{what}: every time must lie in [0, 1], got {_short(g)}")
    if not bool((g.diff() < 0).all()):
        raise ValueError(f"{what}: times must be strictly decreasing, got {_short(g)}")
    if g[-1] != 0:
        raise ValueError(f"{what}: the last time must be 0 (clean data), got {float(g[-1]):g}")
    return g


def _short(g: torch.Tensor) -> str:
    values = [f"{v:g}" for v in g.tolist()]
    return ",".join(values if len(values) <= 12 else values[:6] + ["..."] + values[-3:])


def parse_grid(text: str) -> torch.Tensor:
    """A grid from the command line: comma-separated times ("1,0.6,0.3,0.1,0") or a file of
    times (separated by commas, spaces or new lines)."""
    source = text
    if not any(c in text for c in ",") and Path(text).is_file():
        try:
            source = Path(text).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"grid file {text}: cannot read ({exc})") from None
    parts = source.replace(",", " ").split()
    try:
        values = [float(v) for v in parts]
    except ValueError:
        bad = next(v for v in parts if not _is_float(v))
        raise ValueError(f"grid: {bad!r} is not a number; expected times such as 1,0.6,0.3,0.1,0") from None
    return check_grid(values, "grid")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
