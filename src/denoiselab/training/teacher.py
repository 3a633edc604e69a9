"""The teacher of a distilled run: a trained diffusion or flow run (`denoiselab distill TEACHER`),
checked once, and, for consistency and progressive distillation (consistency.py, progressive.py),
loaded into the student's objective each time its training starts or resumes (train.teacher names
its folder); a progressive student starts from its teacher's weights, and so does a consistency
student with train.consistency_init = "teacher" (``start_from_teacher``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..builders import Objective
from ..choices import TEACHER_OBJECTIVES
from ..config import Config, ConfigError, is_text_run
from ..errors import InputError
from ..runs.folder import RunError, RunFolder
from ..runs.load import Run, load_run


class DistillError(InputError):
    """A teacher or a request that cannot be distilled; one line."""


def load_teacher(path: str | Path, device: str | None = None) -> Run:
    """A trained run that can teach: trained or complete, not latent, text-to-image or an
    autoencoder, and a diffusion or flow model (train.objective = denoising, or a progressive
    student, which samples like one).  A run with classes teaches through classifier-free
    guidance at its sample.guidance (``teacher_guidance``)."""
    folder = RunFolder(path)
    problem = folder.problem()
    if problem is not None:
        raise DistillError(f"TEACHER_RUN {problem}")
    status = folder.read_info().get("status")
    if status not in ("trained", "complete"):
        raise DistillError(f"TEACHER_RUN {folder.path}: is {status}, not a trained run; finish it with: denoiselab train --resume {folder.path}")
    try:
        run = load_run(folder.path, device=device)
    except RunError as exc:
        raise DistillError(f"TEACHER_RUN {exc}") from None
    if run.is_autoencoder or run.is_latent or is_text_run(run.config):
        raise DistillError(
            f"TEACHER_RUN {folder.path}: distillation is built for pixel or point runs (with classes or without), not an autoencoder, latent or text-to-image run"
        )
    if run.num_classes and run.config.train.label_dropout <= 0:
        raise DistillError(
            f"TEACHER_RUN {folder.path}: has classes but was trained without label dropout (train.label_dropout = 0), so it has no "
            "unconditional branch to guide with; distil a run trained with label_dropout > 0"
        )
    if run.config.train.objective not in ("denoising", "progressive"):
        raise DistillError(
            f"TEACHER_RUN {folder.path}: is a {run.config.train.objective} run; a teacher is a diffusion or flow run (train.objective = denoising) "
            "whose probability-flow ODE the student learns to jump"
        )
    return run


def with_teacher(cfg: Config, objective, device: torch.device):
    """``objective`` with the teacher's network where it distils from one (train.teacher)."""
    if not isinstance(objective, Objective) or cfg.train.objective not in TEACHER_OBJECTIVES:
        return objective
    method = "consistency" if cfg.train.objective == "consistency-distillation" else "progressive"
    if not cfg.train.teacher:
        raise ConfigError(
            f"train.teacher: train.objective = {cfg.train.objective} learns from a trained run; make the run with: "
            f"denoiselab distill TEACHER_RUN --method {method} --out RUN"
        )
    try:
        teacher = load_teacher(cfg.train.teacher, device=str(device))
    except DistillError as exc:
        raise ConfigError(f"train.teacher: {exc}") from None
    if teacher.config.schedule != cfg.schedule:
        raise ConfigError(f"train.teacher: {teacher.path} was trained on another schedule; the student steps along its teacher's ODE, so it takes the teacher's [schedule]")
    if cfg.train.objective == "consistency-distillation" and cfg.train.consistency_init == "teacher":
        check_consistency_init(cfg, teacher)
    teacher.model.eval().requires_grad_(False)
    return dataclasses.replace(
        objective, teacher=teacher.model, teacher_prediction=teacher.config.model.prediction, teacher_guidance=teacher_guidance(teacher),
    )  # fmt: skip


def teacher_guidance(teacher: Run) -> float | None:
    """The classifier-free guidance scale a student learns its teacher at: the teacher's
    sample.guidance where it has classes (a progressive round's student records 1, the guided
    teacher it learned), None for an unconditional teacher."""
    return float(teacher.config.sample.guidance) if teacher.num_classes else None


def check_consistency_init(cfg: Config, teacher: Run) -> None:
    """ConfigError where the consistency student ``cfg`` cannot start from ``teacher``'s network
    (``start_from_teacher``): the teacher's raw network must be an F of EDM's preconditioning, with
    the student's c_in (the same sigma_data) and the student's network."""
    where = f"train.consistency_init: teacher starts the student's F from the teacher's network, but {teacher.path}"
    if teacher.config.model.precondition != "edm":
        raise ConfigError(
            f"{where} has model.precondition = {teacher.config.model.precondition}: its network predicts {teacher.config.model.prediction} "
            "from x_t, not EDM's F; distil a teacher trained with model.precondition = edm, or use consistency_init = scratch"
        )
    if teacher.config.train.sigma_data != cfg.train.sigma_data:
        raise ConfigError(f"{where} reads its input at train.sigma_data = {teacher.config.train.sigma_data:g}, the student at {cfg.train.sigma_data:g}; give the student the teacher's")
    if dataclasses.replace(teacher.config.model, prediction="x0", precondition="none") != dataclasses.replace(cfg.model, prediction="x0", precondition="none"):
        raise ConfigError(f"{where} has another network ([model]); the student takes the teacher's [model] section")


def start_from_teacher(cfg: Config, objective, state) -> None:
    """A new student that starts from its teacher's weights, its EMA too.

    Progressive distillation (Salimans & Ho 2022, Alg. 2: theta <- eta): the student is the
    teacher's network, trained further.

    Consistency distillation with train.consistency_init = "teacher" (Song et al. 2023, Sec. 6 and
    App. C: the consistency model is initialised from the pretrained diffusion model).  The student
    is f = c_skip x + c_out F(c_in x, t) (consistency.py) and an EDM-preconditioned teacher is
    D = c_skip' x + c_out' F'(c_in x, t) (models/preconditioning.py) with the same c_in; F starts as
    the teacher's raw network output F', so at the start

        f = a_skip x_t + (a_out / a_out') (D - a_skip' x_t),

    where D is the teacher's x0-hat, the posterior mean E[x0 | x_t].  The two sets of factors differ
    only by the boundary shift s - eps (eps = the level at t = 1 / T, 1e-3 on the flow path), so f
    starts as the teacher's denoiser.  That is a good start: at the boundary it is already the
    consistency function (both are x_t / alpha there), and elsewhere it is the average of where x_t
    could have come from, which the student only has to sharpen into the one place x_t's ODE path
    ends; a network that already reads the noise level and the data's shape does that in fewer
    steps (BENCHMARKS.md, "Consistency distillation from the teacher's weights").  From scratch, f
    starts as c_skip x_t plus the initialisation's noise."""
    if not isinstance(objective, Objective):
        return
    if objective.kind == "progressive" or (objective.kind == "consistency-distillation" and cfg.train.consistency_init == "teacher"):
        weights = objective.teacher.state_dict()
        state.model.load_state_dict(weights)
        if state.ema is not None:
            state.ema.model.load_state_dict(weights)
