"""What a run trained to jump does with its jumps: the points each jump of 1, 2 and 4 jumps lands
on, beside the probability-flow ODE path from the same starting noise (the playground's jump view,
serve/routes_jumps.py).

A jump run is one whose sampler is a jump sampler (samplers.JUMP_SAMPLERS): MeanFlow and shortcut
models (Geng et al. 2025; Frans et al. 2025: the meanflow sampler, z_s = z_t - (t - s) u(z_t, s, t))
and consistency models (Song et al. 2023: multistep consistency sampling, Alg. 1).  A jump starts
at the sample x_t and lands

* for the meanflow sampler on z_s, the point of the flow's path at the next time s (the jump *is*
  the sampler's step, ``StepRecord.x_next``);
* for a consistency model on f(x_t, t), the end of the ODE path through x_t (``StepRecord.x0``);
  the sampler then noises the landing again to the next time, where the next jump starts.

The ODE path the jumps are meant to shortcut, drawn beside them from the same noise:

* MeanFlow and shortcut models: the run's own flow.  With r = t the average velocity is the
  instantaneous one, u(z, t, t) = v(z, t) (Geng et al., Eq. 3; Frans et al.'s d = 0), so many
  short jumps are Euler's method on the flow's ODE: PATH_STEPS steps of 1 / PATH_STEPS.
* Consistency distillation: the teacher's ODE (train.teacher), which the student learned to jump
  to the end of, solved by Heun with PATH_STEPS steps (2 PATH_STEPS - 1 evaluations).
* Consistency training has no teacher and no velocity field: no path, and the view says so.

Point runs and pixel image runs (a digits run on the two-time U-Net, model.interval; a consistency
model of images) alike: every array is in model units, the normalised units the page shows, which
for images are the pixels themselves (-1 black, 1 white).  A latent run's jumps move in its
autoencoder's latent space and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..choices import CONSISTENCY_OBJECTIVES, INTERVAL_OBJECTIVES
from ..samplers import JUMP_SAMPLERS, StepRecord
from .folder import RunError
from .load import Run, load_run
from .plan import PlanError
from .sampling import plan_from_options, sample

JUMP_COUNTS = (1, 2, 4)  # the "one, two and four steps"
PATH_STEPS = 40  # the ODE path's resolution: short enough steps that its turns show
PATH_SOLVER = "heun"  # the teacher's path (consistency distillation): 2 PATH_STEPS - 1 evaluations
# Where a jump lands, read from the sampler's step record (this module's docstring).
LANDING = {"meanflow": "x_next", "consistency": "x0"}


@dataclass(frozen=True)
class Jump:
    """One jump: from ``start`` at time ``t`` to ``landing`` (the next time ``s``, or 0 for a
    consistency model); (n, D) each."""

    t: float
    s: float
    start: np.ndarray
    landing: np.ndarray


@dataclass(frozen=True)
class Jumps:
    """One draw of ``steps`` jumps from the view's noise."""

    asked: int  # the jumps asked for (JUMP_COUNTS)
    steps: int  # the jumps made: a consistency model's times move to its grid, where two may coincide (plan.py)
    description: str  # the plan in the words every face uses (SamplingPlan.describe)
    jumps: list[Jump]
    samples: np.ndarray  # the final sample, (n, D)
    off_path: float | None  # distance of the samples from the ODE path's end (off_path_distance; None: no path)


@dataclass(frozen=True)
class JumpView:
    sampler: str
    x_T: np.ndarray  # (n, D) or (n, C, H, W): the starting noise, shared by every draw and the path
    draws: list[Jumps]  # one per JUMP_COUNTS
    path: np.ndarray | None  # (PATH_STEPS + 1, n, ...) from x_T to the path's end, or None
    path_times: list[float]
    path_source: str  # what the path is, in words (or why there is none)
    learned: str  # what the network learned to predict, one sentence


def jump_sampler(run: Run) -> str | None:
    """The run's jump sampler (its sample.sampler when that is one), or None."""
    sampler = run.config.sample.sampler
    return sampler if sampler in JUMP_SAMPLERS else None


def jump_view(run: Run, *, n: int, seed: int, counts=JUMP_COUNTS) -> JumpView:
    """The jumps of ``run`` for each step count in ``counts`` and the ODE path, all from the same
    ``n`` draws of noise (seed ``seed``).  PlanError where the run does not jump or is a latent run."""
    sampler = jump_sampler(run)
    if sampler is None:
        raise PlanError(
            "run", f"samples with {run.config.sample.sampler}, not a jump sampler ({', '.join(JUMP_SAMPLERS)}); the jump view draws runs "
            "trained to jump: MeanFlow, shortcut and consistency models", of_run=True,
        )  # fmt: skip
    if run.is_latent:
        raise PlanError(
            "run", "is a latent run: its jumps move in the autoencoder's latent space; the jump view draws point runs and pixel image runs",
            of_run=True,
        )  # fmt: skip
    draws, x_T = [], None
    for steps in counts:
        records: list[StepRecord] = []
        plan = plan_from_options(run, sampler=sampler, steps=steps, n=n, seed=seed)
        drawn = sample(run, plan, on_step=records.append, decode=False)
        x_T = drawn.x_T if x_T is None else x_T
        jumps = [Jump(r.t, r.t_next if LANDING[sampler] == "x_next" else 0.0, _np(r.x_t), _np(getattr(r, LANDING[sampler]))) for r in records]
        draws.append((steps, plan.steps, plan.describe(), jumps, drawn.x))
    path, times, source = ode_path(run, n=n, seed=seed, x_T=x_T)
    end = None if path is None else path[-1]
    return JumpView(
        sampler=sampler,
        x_T=_np(x_T),
        draws=[Jumps(*draw, None if end is None else off_path_distance(draw[-1], end)) for draw in draws],
        path=path,
        path_times=times,
        path_source=source,
        learned=what_it_learned(run.config),
    )


def ode_path(run: Run, *, n: int, seed: int, x_T: torch.Tensor) -> tuple[np.ndarray | None, list[float], str]:
    """(path, its times, what it is): the ODE path from ``x_T`` (the draw of ``n`` with ``seed``)
    that the run's jumps shortcut (this module's docstring), or (None, [], why there is none)."""
    objective = run.config.train.objective
    if objective in INTERVAL_OBJECTIVES:
        source, plan = run, plan_from_options(run, sampler="meanflow", steps=PATH_STEPS, grid="time-uniform", n=n, seed=seed)
        words = f"the flow of the network's own velocity u(z, t, t): {PATH_STEPS} Euler steps of 1/{PATH_STEPS}"
    elif objective == "consistency-distillation":
        try:
            source = load_run(Path(run.config.train.teacher), device=str(run.device))
        except RunError:  # named by its folder's name: the playground never shows a path of the machine
            return None, [], f"the teacher ({Path(run.config.train.teacher).name}) cannot be loaded, so its ODE path is not drawn"
        plan = plan_from_options(source, sampler=PATH_SOLVER, steps=PATH_STEPS, grid="time-uniform", n=n, seed=seed)
        words = f"the teacher's probability-flow ODE ({Path(run.config.train.teacher).name}): {PATH_SOLVER}, {PATH_STEPS} steps"
    elif objective in CONSISTENCY_OBJECTIVES:
        return None, [], "consistency training learns without a teacher: there is no velocity field, so no ODE path to draw beside the jumps"
    else:
        return None, [], f"a {objective} run has no jumps"
    records: list[StepRecord] = []
    drawn = sample(source, plan, on_step=records.append, decode=False)
    if not torch.equal(drawn.x_T.cpu(), x_T.cpu()):  # the same seed, n and shape draw the same noise (runs/sampling.py)
        raise RuntimeError("the ODE path did not start from the jumps' noise")
    path = np.stack([_np(x_T)] + [_np(r.x_next) for r in records])
    return path, [float(t) for t in plan.times], words


def what_it_learned(cfg) -> str:
    """One sentence for the page: what the network of a jump run's recipe ``cfg`` learned to
    predict, and so what a jump is (also the Reverse view's note on the model, sample_reply.py)."""
    objective = cfg.train.objective
    if objective == "meanflow":
        return (
            "MeanFlow (Geng et al. 2025): the network learned the average velocity u(z, r, t) of the flow over a whole interval, "
            "so one jump z_r = z_t − (t − r) u lands where the flow's path is at time r; with r = t it is the instantaneous "
            "velocity, whose path the jumps shortcut."
        )
    if objective == "shortcut":
        return (
            "Shortcut model (Frans et al. 2025): the network takes the step size d and learned that one step of 2d equals two "
            "steps of d, so a step of the whole interval jumps from noise to data; at d = 0 it is the flow's velocity, whose "
            "path the jumps shortcut."
        )
    teacher = " of its teacher's probability-flow ODE" if objective == "consistency-distillation" else ", learned without a teacher"
    return (
        f"Consistency model (Song et al. 2023): the network learned f(x_t, t), the clean end of the ODE path through x_t{teacher}, "
        "so every jump lands on the data side; with more jumps the sampler noises each landing again, with fresh noise, to a "
        "lower level and jumps once more, so the samples of 2 and 4 jumps need not end where the first path does."
    )


def off_path_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far samples ``a`` land from the path's ends ``b``: for points (n, D) the RMS over the
    samples of each one's Euclidean distance; for images (n, C, H, W) the RMS over every pixel of
    every image, in pixel units (-1 black, 1 white), which does not grow with the image's size."""
    if a.ndim == 2:
        return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()
