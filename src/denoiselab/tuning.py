"""Time grids tuned to a model: the N time points that bring a sampler's few-step output closest
to a high-accuracy solve of the same probability-flow ODE from the same noise.

At 5 to 10 model evaluations where the steps fall matters as much as the solver (Sabour et al.
2024, "Align Your Steps"; Tong et al. 2024, "LD3"; Xue et al. 2024, "Accelerating diffusion
sampling with optimized time steps").  Like LD3 this measures the error against the teacher's
own trajectories: with x_T drawn from N(0, I), the reference x_0 = ODE(x_T) comes from
``REFERENCE_STEPS`` steps of DPM-Solver++(3M) on the log-SNR grid, and the objective is the
mean over starting points of the Euclidean distance between the sampler's output on a candidate
grid and that reference (a sample's whole vector: a point, or an image's pixels).

Why the distance and not its square: a change of grid sends a few starting points near the
boundary between two modes into the other mode, a distance of the modes' spacing.  Squared,
those few points outweigh the rest, and the search chases them, which neither generalises to
held-out noise nor improves the distribution.  The mean distance counts each point's error once,
so the search improves the bulk (measured: BENCHMARKS.md, "The tuning search: objective and
time"; benchmarks/tuning_search.py).

The grid t_0 = 1 > t_1 > ... > t_{N-1} > t_N = 0 is parametrised by N log-weights w: the
softmax of w splits the log-SNR range [lambda(t_0), lambda(1 / T)] into N increments, and the
first N - 1 partial sums place t_1 .. t_{N-1}; every w gives a strictly decreasing grid, so the
search (Nelder-Mead, derivative-free, since samplers step in Python floats) needs no
constraints.  It starts from the best named grid for that count, restarts around the best point
until ``max_calls`` sampler runs are spent (``max_seconds`` caps the search's time as well, if
given) or a narrow restart finds nothing better, and, on a DDPM chain, the result is moved to the
nearest grid steps k / T, where the network was trained.  The budget is a count of sampler runs,
not seconds, so the same request gives the same grid on a fast machine and on a busy one; the two
reference solves are not part of it.  Every number reported is measured on held-out noise (a
second draw), and the search's grid is a tuned grid only if it is strictly better there than the
grid it started from (``TunedGrid.improved``); otherwise the result is the start grid itself.  The model is a ``Denoiser``
(samplers/denoiser.py): the model function with its schedule, prediction and labels, which the
search and the reference solve share.

The search knows nothing of run folders: a run keeps its tuned grids in one file, read and written
by ``runs.folder.RunFolder`` (keyed "sampler/evaluations"), and ``denoiselab sample`` and
``evaluate`` use one when it exists for their sampler and count (runs/plan.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .choices import TUNING_CALLS
from .samplers import SAMPLERS, TWO_EVALUATIONS_PER_STEP, Denoiser, check_grid, sample_dpmpp_3m, time_grid
from .samplers.grids import _strictly_decreasing
from .schedules import Schedule

REFERENCE_STEPS = 200
START_GRIDS = ("trailing", "logsnr", "karras", "time-uniform")  # the named grids that start at t = 1
STOCHASTIC = ("ddpm",)
MIN_STEPS = 2  # one step has no time point to move
MIN_SIMPLEX = 0.05  # the narrowest restart of the search, in log-weights
DEFAULT_CALLS = TUNING_CALLS  # the search's default budget in sampler runs (choices.py: measured there)


STOP_CALLS, STOP_CONVERGED, STOP_SECONDS = "calls", "converged", "seconds"


class TuningError(ValueError):
    """A request that cannot be tuned (a stochastic sampler, too few evaluations)."""


@dataclass
class TunedGrid:
    sampler: str
    evaluations: int
    grid: list[float]
    start: str  # the grid the search started from (a name, or "given")
    start_grid: list[float]
    error: float  # mean distance (per sample, Euclidean) to the reference on held-out noise
    start_error: float  # the same for the start grid
    train_error: float
    n: int
    reference: str = f"DPM-Solver++(3M), {REFERENCE_STEPS} steps, logsnr grid"
    seconds: float = 0.0  # the whole call: the reference solves, the search, the held-out checks
    reference_seconds: float = 0.0  # the two reference solves
    objective_calls: int = 0  # sampler runs of the search (the start's choice not counted)
    stopped: str = ""  # why the search ended: STOP_CALLS, STOP_CONVERGED or STOP_SECONDS
    improved: bool = False  # strictly better than the start on held-out noise: a tuned grid
    notes: list[str] = field(default_factory=list)


def steps_for(sampler: str, evaluations: int) -> int:
    """The steps that spend exactly ``evaluations`` model calls (two-call samplers: 2 N - 1)."""
    if sampler not in SAMPLERS:
        raise TuningError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if sampler in STOCHASTIC:
        raise TuningError(f"{sampler} is stochastic, so no grid brings it to one trajectory; tune a deterministic sampler ({', '.join(s for s in SAMPLERS if s not in STOCHASTIC)})")
    two = sampler in TWO_EVALUATIONS_PER_STEP
    least = 2 * MIN_STEPS - 1 if two else MIN_STEPS
    if not (isinstance(evaluations, int) and evaluations >= least):
        raise TuningError(f"{sampler} needs at least {least} model evaluations to have a time point to tune, got {evaluations}")
    if two and evaluations % 2 == 0:
        raise TuningError(f"{sampler} makes 2 x steps - 1 model evaluations, an odd count; got {evaluations} (try {evaluations - 1} or {evaluations + 1})")
    return (evaluations + 1) // 2 if two else evaluations


def _half_log_snr_range(schedule: Schedule) -> tuple[float, float]:
    """lambda at the noisy end (t = 1, or 1 - 1/T where lambda(1) = -inf) and at t = 1 / T."""
    T = schedule.T
    lam_noisy = float(schedule.half_log_snr_at(1.0))
    if not math.isfinite(lam_noisy):
        lam_noisy = float(schedule.half_log_snr_at(1.0 - 1.0 / T))
    return lam_noisy, float(schedule.half_log_snr_at(1.0 / T))


def grid_from_weights(schedule: Schedule, w: np.ndarray) -> torch.Tensor:
    """t_0 = 1, t_1..t_{N-1} from the partial sums of softmax(w) over the log-SNR range, t_N = 0."""
    lo, hi = _half_log_snr_range(schedule)
    share = np.exp(w - w.max())
    share = share / share.sum()
    lam = lo + (hi - lo) * np.cumsum(share)[:-1]
    inner = schedule.time_at_half_log_snr(torch.as_tensor(lam, dtype=torch.float64))
    return torch.cat([torch.ones(1, dtype=torch.float64), inner, torch.zeros(1, dtype=torch.float64)])


def weights_from_grid(schedule: Schedule, grid: torch.Tensor) -> np.ndarray:
    lo, hi = _half_log_snr_range(schedule)
    lam = np.clip(schedule.half_log_snr_at(grid[1:-1]).numpy(), lo, hi)
    inc = np.diff(np.concatenate([[lo], lam, [hi]]))
    return np.log(np.maximum(inc, 1e-3 * (hi - lo)))


def on_chain(schedule: Schedule, grid: torch.Tensor) -> torch.Tensor:
    """A DDPM chain's grid steps k / T nearest to the grid's points (strictly decreasing, 1..T)."""
    if not schedule.is_chain:
        return grid
    T = schedule.T
    ks = _strictly_decreasing((grid[:-1] * T).round().long().clone(), T)
    return torch.cat([ks.double() / T, torch.zeros(1, dtype=torch.float64)])


def tune_grid(
    denoise: Denoiser,
    sampler: str,
    evaluations: int,
    *,
    shape: tuple[int, ...],
    n: int = 2000,
    seed: int = 0,
    start=None,
    options: dict | None = None,
    max_calls: int = DEFAULT_CALLS,
    max_seconds: float | None = None,
    device="cpu",
    dtype=torch.float64,
) -> TunedGrid:
    """Tune the grid of ``sampler`` at ``evaluations`` model calls for the model of ``denoise``.

    ``shape``: one sample's shape; ``n`` starting points for the search and as many held out;
    ``start``: a named grid or a list of times (default: the best named grid on the search noise);
    ``options``: sampler keywords (order, variant, ...).  The Denoiser's labels (a conditional
    model) are those of the n points, used for both draws.  The search makes at most
    ``max_calls`` sampler runs (fewer when it converges), and stops after ``max_seconds`` of its
    own time when that is given; the reference solves and the choice of the start grid come
    before and count in neither.  ``result.improved`` says whether the result is a tuned grid;
    when it is False, ``result.grid`` is the start grid."""
    if not (isinstance(max_calls, int) and max_calls >= 1):
        raise TuningError(f"max_calls: expected a positive number of sampler runs, got {max_calls!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise TuningError(f"max_seconds: expected a positive number of seconds, got {max_seconds!r}")
    t0 = time.perf_counter()
    schedule = denoise.schedule
    steps = steps_for(sampler, evaluations)
    fn, options = SAMPLERS[sampler], dict(options or {})
    gen = torch.Generator().manual_seed(seed)
    x_fit = torch.randn(n, *shape, generator=gen, dtype=dtype).to(device)
    x_held = torch.randn(n, *shape, generator=gen, dtype=dtype).to(device)  # disjoint from x_fit
    reference_times = time_grid(schedule, REFERENCE_STEPS, "logsnr")
    ref = {key: sample_dpmpp_3m(denoise, x, reference_times) for key, x in (("fit", x_fit), ("held", x_held))}
    reference_seconds = time.perf_counter() - t0

    def error(grid: torch.Tensor, key: str) -> float:
        x = x_fit if key == "fit" else x_held
        out = fn(denoise, x, grid, **options)
        distance = float(((out - ref[key]).double() ** 2).flatten(1).sum(1).sqrt().mean())
        return distance if math.isfinite(distance) else math.inf

    # The start: the best named grid on the search noise, or the one given.
    if start is None:
        named = {name: on_chain(schedule, time_grid(schedule, steps, name)) for name in START_GRIDS}
        start_name = min(named, key=lambda name: error(named[name], "fit"))
        start_grid = named[start_name]
    elif isinstance(start, str) and start in START_GRIDS:
        start_name, start_grid = start, on_chain(schedule, time_grid(schedule, steps, start))
    else:
        start_name, start_grid = "given", check_grid(start, "start grid")
        if len(start_grid) != steps + 1:
            raise TuningError(f"start grid: {sampler} at {evaluations} evaluations takes {steps} steps, the grid given has {len(start_grid) - 1}")
    start_fit = error(start_grid, "fit")
    best = {"f": start_fit, "w": weights_from_grid(schedule, start_grid), "calls": 0}
    t_search = time.perf_counter()

    class _OutOfBudget(Exception):
        pass

    def objective(w: np.ndarray) -> float:
        if best["calls"] >= max_calls:
            raise _OutOfBudget(STOP_CALLS)
        if max_seconds is not None and time.perf_counter() - t_search > max_seconds:
            raise _OutOfBudget(STOP_SECONDS)
        best["calls"] += 1
        f = error(grid_from_weights(schedule, w), "fit")
        if f < best["f"]:
            best.update(f=f, w=w.copy())
        return f

    from scipy.optimize import minimize

    # Nelder-Mead restarted around the best point until the budget is spent: a wide simplex
    # first; a round that improves restarts at the same width (a fresh simplex escapes the
    # collapsed one), a round that does not narrows it, and a round at the narrowest width that
    # does not improve ends the search.  One round stops after 150 calls per dimension.
    scale, stopped = 0.5, STOP_CONVERGED
    try:
        while True:
            w0, before = best["w"], best["f"]
            simplex = np.vstack([w0, w0 + scale * np.eye(len(w0))])
            minimize(objective, w0, method="Nelder-Mead", options={"initial_simplex": simplex, "maxfev": 150 * len(w0), "xatol": 1e-3, "fatol": 1e-14, "adaptive": len(w0) > 4})
            if best["f"] < before * (1 - 1e-3):
                continue
            if scale <= MIN_SIMPLEX:
                break
            scale /= 3
    except _OutOfBudget as budget:
        stopped = budget.args[0]
    held_start = error(start_grid, "held")
    notes = []
    # A tuned grid is one the search found (better than the start on its own noise) that is also
    # strictly better on the held-out noise; anything else is the start grid, not a tuned one.
    tuned, held, improved = start_grid, held_start, False
    if best["f"] < start_fit:
        candidate = on_chain(schedule, grid_from_weights(schedule, best["w"]))
        held_candidate = error(candidate, "held")
        if held_candidate < held_start:
            tuned, held, improved = candidate, held_candidate, True
        else:
            notes.append(f"the search's best grid was no better on held-out noise ({held_candidate:.4g} against the start's {held_start:.4g})")
    else:
        notes.append(f"the search found no grid better than the start in {best['calls']} sampler runs")
    return TunedGrid(
        sampler=sampler,
        evaluations=evaluations,
        grid=tuned.tolist(),
        start=start_name,
        start_grid=start_grid.tolist(),
        error=held,
        start_error=held_start,
        train_error=error(tuned, "fit"),
        n=n,
        seconds=round(time.perf_counter() - t0, 1),
        reference_seconds=round(reference_seconds, 1),
        objective_calls=best["calls"],
        stopped=stopped,
        improved=improved,
        notes=notes,
    )


# -- the run folder's file ----------------------------------------------------------------------
