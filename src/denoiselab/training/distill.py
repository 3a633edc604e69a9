"""A new run made from a trained one (`denoiselab distill TEACHER --method reflow|consistency|progressive --out RUN`).

Consistency distillation (Song et al. 2023, Algorithm 2): consistency.py's objective, which loads
the teacher named by the student's train.teacher each time training starts or resumes
(training/teacher.py); the student is a run of its own, sampled by multistep consistency sampling.

Progressive distillation (Salimans & Ho 2022, Algorithm 2; progressive.py): R rounds, round k a
run whose student takes 2^(R - k) DDIM steps where its teacher (the original run, then the round
before) takes twice as many, each student starting from its teacher's weights; the rounds before
the last are kept inside the new run (RunFolder.distillation_round), the last is the run itself.

Reflow (Liu et al. 2023, "Flow straight and fast", Sec. 2.2-2.3, Algorithm 1 with k = 1): draw
noise x_1 ~ N(0, I), solve the teacher's probability-flow ODE from it accurately to x_0 = its
sample, and train a new rectified flow on the fixed pairs (x_0, x_1): its paths are the straight
chords between the pairs, and as the teacher's map is a transport map whose pairs do not cross,
the new flow's paths are straighter than the teacher's and need fewer steps (Theorem 3.3).  The
pairs are kept in the new run's folder (RunFolder.write_pairs) and trained on by the one training
loop with train.coupling = "reflow" (objectives.pack_pairs keeps each pair in one row), so the
new run resumes, samples, evaluates and plots like any other.

The accurate solve: Heun on a uniform time grid (PAIR_STEPS steps); its error is stated against
the same solve with twice the steps, from the same noise.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError, TrainConfig
from ..runs.complete import complete_run
from ..runs.folder import RunFolder, RunFolderError
from ..runs.load import Run, load_run
from ..runs.sampling import plan_from_options, sample
from ..runs.straightness import straightness
from .denoiser import train
from .teacher import DistillError, check_consistency_init, load_teacher

METHODS = ("reflow", "consistency", "progressive")
INITS = ("scratch", "teacher")  # consistency: where the student's network starts (training/teacher.py, start_from_teacher)
DEFAULT_ROUNDS = 4  # progressive: the teacher's DDIM at 16 steps, halved to 8, 4, 2 and 1
PAIR_SOLVER, PAIR_STEPS = "heun", 100  # 199 evaluations a pair; the error check uses 2 x PAIR_STEPS


@dataclass(frozen=True)
class Pairs:
    noise: np.ndarray  # (N, ...) model units
    samples: np.ndarray  # the teacher's solve of each noise row, model units
    solver: str
    steps: int
    error_rms: float  # RMS difference per coordinate against the solve with 2 x steps
    error_max: float
    seconds: float


def draw_pairs(teacher: Run, n: int, seed: int, steps: int = PAIR_STEPS) -> Pairs:
    """``n`` noise draws and the teacher's accurate solve of each (model units), with the solve's error."""
    start = time.perf_counter()
    plan = plan_from_options(teacher, sampler=PAIR_SOLVER, steps=steps, grid="time-uniform", n=n, seed=seed)
    drawn = sample(teacher, plan, decode=False)
    fine = sample(teacher, plan_from_options(teacher, sampler=PAIR_SOLVER, steps=2 * steps, grid="time-uniform", n=n, seed=seed), decode=False)
    diff = drawn.x - fine.x
    return Pairs(
        drawn.x_T.float().cpu().numpy(), drawn.x, PAIR_SOLVER, steps, float(np.sqrt(np.mean(diff**2))), float(np.abs(diff).max()),
        time.perf_counter() - start,
    )  # fmt: skip


def reflow_config(teacher: Config, steps: int | None) -> Config:
    """The student's recipe: the teacher's data and network, a rectified flow (flow path, velocity
    target, uniform times) on the fixed pairs, sampled by Euler in one step by default."""
    cfg = student_config(teacher, "reflow", steps, model={"prediction": "velocity"}, train={"coupling": "reflow", "objective": "denoising"},
                         sampler="euler")  # fmt: skip
    cfg.schedule = dataclasses.replace(teacher.schedule, kind="flow")
    return cfg


def consistency_config(teacher: Run, steps: int | None, init: str | None = None) -> Config:
    """The student of consistency distillation (Song et al. 2023, Alg. 2; consistency.py): the
    teacher's data, network and schedule, the network read as the consistency function f(x_t, t)
    (an x0-prediction with c_skip, c_out), trained against the EMA target (train.ema_decay = mu)
    one teacher Heun step apart on a karras grid of N = 18 (their CIFAR-10 N), sampled in one step.
    ``init`` = "teacher": the network starts from the teacher's (training/teacher.py,
    start_from_teacher), read with the teacher's sigma_data; None: from the teacher's wherever its
    network is an F (model.precondition = edm), which at the same budgets scores W2 1.43x and
    1.19x the floor at one evaluation on the spiral where the student from scratch scores 2.20x and
    1.69x (BENCHMARKS.md, "Consistency distillation from the teacher's weights"), else from scratch."""
    if init is None:
        init = "teacher" if teacher.config.model.precondition == "edm" else "scratch"
    own = {"consistency_init": init, "sigma_data": teacher.config.train.sigma_data} if init == "teacher" else {}
    return guided_student(student_config(
        teacher.config, "consistency", steps, model={"prediction": "x0", "precondition": "none"},
        train={"coupling": "independent", "objective": "consistency-distillation", "teacher": str(Path(teacher.path).resolve()), **own},
        sampler="consistency",
    ), teacher)  # fmt: skip


def progressive_config(teacher: Run, steps: int | None, student_steps: int) -> Config:
    """A round of progressive distillation (Salimans & Ho 2022, Alg. 2; progressive.py): the
    teacher's recipe, its prediction kept (eps refused: the one step is read at t = 1), a student
    of ``student_steps`` DDIM steps (euler on the time-uniform grid: DDIM with eta = 0)."""
    base = teacher.config
    cfg = student_config(
        base, "progressive", steps, model={}, sampler="euler",
        train={"coupling": "independent", "objective": "progressive", "teacher": str(Path(teacher.path).resolve()), "progressive_steps": student_steps},
    )  # fmt: skip
    cfg.name = base.name if base.train.objective == "progressive" else cfg.name
    cfg.sample.steps = student_steps
    return guided_student(cfg, teacher)


# The [train] keys that one weighting, time distribution or objective reads: a student made from
# a teacher takes their defaults (config._OWNED_KEYS), not the teacher's.
ONE_OBJECTIVE_KEYS = (
    "p2_gamma", "p2_k", "min_snr_gamma", "sigma_data", "sigmoid_bias", "importance_bins", "importance_history", "importance_uniform",
    "meanflow_share", "meanflow_power", "shortcut_share", "shortcut_levels", "consistency_steps", "consistency_init", "ict_start", "ict_end", "teacher",
    "progressive_steps",
)  # fmt: skip


def student_config(teacher: Config, method: str, steps: int | None, *, model: dict, train: dict, sampler: str) -> Config:
    """A student's recipe: the teacher's, with the ``model`` and ``train`` keys given, uniform
    times and no weighting, the keys of one objective at their defaults, ``steps`` optimiser steps
    (default: the teacher's), and ``sampler`` in one step on the time-uniform grid."""
    n = steps or teacher.train.steps
    defaults = TrainConfig()
    cfg = dataclasses.replace(teacher, name=f"{teacher.name}-{method}")
    cfg.model = dataclasses.replace(teacher.model, **model)
    cfg.train = dataclasses.replace(
        teacher.train, timesteps="uniform", weighting="none", steps=n, warmup_steps=min(teacher.train.warmup_steps, n),
        **{**{key: getattr(defaults, key) for key in ONE_OBJECTIVE_KEYS}, **train},
    )  # fmt: skip
    cfg.sample = dataclasses.replace(teacher.sample, sampler=sampler, steps=1, grid="time-uniform")
    return cfg


def guided_student(cfg: Config, teacher: Run) -> Config:
    """A student of a teacher with classes learns the guided teacher (builders.Objective.teacher_fn):
    its own conditional branch is that guided model, so it samples at guidance 1 by default
    (a scale s on the student reads uncond + s (guided - uncond))."""
    if teacher.num_classes:
        cfg.sample.guidance = 1.0
    return cfg


def distill(
    teacher_dir, out, *, method: str = "reflow", steps: int | None = None, pairs: int | None = None, rounds: int | None = None,
    init: str | None = None, progress: bool = True, log=print,
) -> Path:
    """Make ``out`` from the trained run ``teacher_dir`` by ``method`` (reflow or consistency), train and complete it;
    returns the new run folder.  ``pairs``: noise draws solved by the teacher (default: as many
    as its training points, at least 4000); ``steps``: the student's optimiser steps (default: the teacher's);
    ``init``: where a consistency student's network starts, "scratch" or "teacher" (default: the
    teacher's where its network is an F, consistency_config)."""
    if method not in METHODS:
        raise DistillError(f"--method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if pairs is not None and method != "reflow":
        raise DistillError(f"--pairs: only reflow draws (noise, sample) pairs; --method {method} trains on the teacher's data")
    if rounds is not None and (method != "progressive" or rounds < 1):
        raise DistillError(f"--rounds: expected a positive number of halvings for --method progressive, got {rounds} for --method {method}")
    if init is not None and (method != "consistency" or init not in INITS):
        raise DistillError(f"--init: expected one of {', '.join(INITS)} for --method consistency, got {init} for --method {method}")
    folder = RunFolder(out)
    try:
        folder.check_new()
    except RunFolderError as exc:
        raise DistillError(f"--out {exc}") from None
    teacher = load_teacher(teacher_dir)
    if method == "reflow" and teacher.num_classes:
        raise DistillError(
            f"TEACHER_RUN {teacher.path}: has classes; reflow's pairs carry no class yet, so distil it with --method consistency or progressive"
        )
    rounds = rounds or DEFAULT_ROUNDS
    if method == "reflow":
        cfg = reflow_config(teacher.config, steps)
    else:
        cfg = consistency_config(teacher, steps, init) if method == "consistency" else progressive_config(teacher, steps, 2 ** (rounds - 1))
    try:
        from ..config import from_dict

        from_dict(cfg.to_dict(), name=cfg.name, resolved=True)  # the student's recipe passes every check a recipe does
    except ConfigError as exc:
        raise DistillError(f"TEACHER_RUN {teacher.path}: its recipe cannot make a {method} student ({exc})") from None
    if method == "consistency":
        if cfg.train.consistency_init == "teacher":
            try:
                check_consistency_init(cfg, teacher)
            except ConfigError as exc:
                raise DistillError(f"--init {exc}".replace("train.consistency_init: ", "")) from None
        return _distill_consistency(teacher, cfg, folder, progress=progress, log=log)
    if method == "progressive":
        return _distill_progressive(teacher, folder, steps, rounds, progress=progress, log=log)
    n = pairs or max(4000, len(teacher.data))
    log(f"reflow: solving {n} noise draws with the teacher {teacher.path} ({PAIR_SOLVER}, {PAIR_STEPS} steps)")
    drawn = draw_pairs(teacher, n, seed=teacher.config.train.seed + 12345)
    log(f"pairs drawn in {drawn.seconds:.1f} s; solver error against {2 * PAIR_STEPS} steps: RMS {drawn.error_rms:.2e}, max {drawn.error_max:.2e} (model units)")
    folder.write_pairs(drawn.noise, drawn.samples)
    train(cfg, folder.path, progress=progress, log=log)
    before, after = straightness(teacher), straightness(load_run(folder.path))
    info = folder.read_info()
    info["teacher"] = {
        "method": method, "run": str(Path(teacher.path).resolve()), "sha256": teacher.folder.weights_sha256(), "pairs": n,
        "solver": drawn.solver, "solver_steps": drawn.steps, "solver_error_rms": drawn.error_rms, "solver_error_max": drawn.error_max,
        "pair_seconds": drawn.seconds, "teacher_train_seconds": float(teacher.info.get("train_seconds", 0.0)),
        "straightness_teacher": before, "straightness": after,
    }  # fmt: skip
    folder.write_info(info)
    log(f"straightness S (Liu et al. 2023; 0 = straight paths): teacher {before:.4f}, reflowed {after:.4f}")
    complete_run(folder.path, log=log)
    return folder.path


def _distill_consistency(teacher: Run, cfg: Config, folder: RunFolder, *, progress: bool, log) -> Path:
    """Train the consistency student ``cfg`` into ``folder`` (its objective loads the teacher named
    by train.teacher, training/teacher.py), record the teacher and complete the run."""
    log(f"consistency distillation from {teacher.path}: karras grid N = {cfg.train.consistency_steps}, teacher's Heun step, EMA target mu = {cfg.train.ema_decay:g}, "
        f"the network from {'the teacher' if cfg.train.consistency_init == 'teacher' else 'scratch'}")
    train(cfg, folder.path, progress=progress, log=log)
    info = folder.read_info()
    info["teacher"] = {
        "method": "consistency", "run": str(Path(teacher.path).resolve()), "sha256": teacher.folder.weights_sha256(), "init": cfg.train.consistency_init,
        "teacher_train_seconds": float(teacher.info.get("train_seconds", 0.0)),
    }  # fmt: skip
    folder.write_info(info)
    complete_run(folder.path, log=log)
    return folder.path


def _distill_progressive(teacher: Run, folder: RunFolder, steps: int | None, rounds: int, *, progress: bool, log) -> Path:
    """``rounds`` rounds of progressive distillation from ``teacher`` (its DDIM at 2^rounds steps)
    down to one step: the rounds before the last into folder.distillation_round(k), the last into
    ``folder``; records the chain and completes the run."""
    original, start = teacher, time.perf_counter()
    progressive_rounds(teacher, folder, steps, rounds, progress=progress, log=log)
    info = folder.read_info()
    info["teacher"] = {
        "method": "progressive", "run": str(Path(original.path).resolve()), "sha256": original.folder.weights_sha256(), "rounds": rounds,
        "teacher_steps": 2**rounds, "rounds_seconds": time.perf_counter() - start,
        "teacher_train_seconds": float(original.info.get("train_seconds", 0.0)),
    }  # fmt: skip
    folder.write_info(info)
    complete_run(folder.path, log=log)
    return folder.path


def progressive_rounds(teacher: Run, folder: RunFolder, steps: int | None, rounds: int, *, progress: bool = True, log=print) -> None:
    """Train the ``rounds`` rounds (Salimans & Ho 2022, Alg. 2), each student the next round's teacher."""
    for k in range(1, rounds + 1):
        student_steps = 2 ** (rounds - k)
        into = folder if k == rounds else folder.distillation_round(k)
        log(f"progressive distillation, round {k} of {rounds}: {2 * student_steps} DDIM steps of {teacher.path} -> {student_steps}, into {into.path}")
        train(progressive_config(teacher, steps, student_steps), into.path, progress=progress, log=log)
        teacher = load_teacher(into.path)
