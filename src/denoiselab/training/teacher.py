"""The teacher of a distilled run: a trained diffusion or flow run (`denoiselab distill TEACHER`),
checked once, and, for consistency and progressive distillation (consistency.py, progressive.py),
loaded into the student's objective each time its training starts or resumes (train.teacher names
its folder); a progressive student starts from its teacher's weights."""

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
    """A trained run that can teach: trained or complete, unconditional, not latent or an
    autoencoder, and a diffusion or flow model (train.objective = denoising, or a progressive
    student, which samples like one)."""
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
    if run.is_autoencoder or run.is_latent or run.num_classes or is_text_run(run.config):
        raise DistillError(
            f"TEACHER_RUN {folder.path}: distillation is built for unconditional pixel or point runs, not an autoencoder, latent, conditional or text-to-image run"
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
    teacher.model.eval().requires_grad_(False)
    return dataclasses.replace(objective, teacher=teacher.model, teacher_prediction=teacher.config.model.prediction)


def start_from_teacher(objective, state) -> None:
    """A new progressive student starts from its teacher's weights (Salimans & Ho 2022, Alg. 2:
    theta <- eta), its EMA too."""
    if not isinstance(objective, Objective) or objective.kind != "progressive":
        return
    weights = objective.teacher.state_dict()
    state.model.load_state_dict(weights)
    if state.ema is not None:
        state.ema.model.load_state_dict(weights)
