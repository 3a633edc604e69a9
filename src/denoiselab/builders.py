"""Builders: a recipe (config.Config) turned into its schedule, network, device and objective.

Training (training.py) and every user of a trained run (runs/, the playground) build these
the same way from the same recipe, so they live below both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config, ConfigError
from .latent import ReconstructionObjective
from .models import AUTOENCODER, Autoencoder, build_model
from .objectives import diffusion_loss
from .schedules import Schedule, make_schedule


def schedule_from(cfg: Config) -> Schedule:
    s = cfg.schedule
    return make_schedule(s.kind, s.T, s.beta_start, s.beta_end, s.scale_with_T)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}; expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise ConfigError(f"train.device: {name!r} is not available on this machine; use cpu or auto")
    return device


def model_from(cfg: Config, dim: int, num_classes: int = 0, shape: tuple[int, ...] | None = None) -> torch.nn.Module:
    """The recipe's network; ``dim`` is the point dimension, or the channel count for images;
    ``shape`` the shape of one training sample (the autoencoder needs the image size)."""
    m = cfg.model
    if m.arch == AUTOENCODER:
        a = cfg.autoencoder
        if shape is None or len(shape) != 3:
            raise ConfigError(f"model.arch: the autoencoder takes images (C, H, W), got samples of shape {shape}")
        try:
            return Autoencoder(
                tuple(shape), hidden=a.hidden, downsample=a.downsample, latent_channels=a.channels,
                flat_dim=a.dim if a.latent == "flat" else 0, variational=a.kind == "vae",
            )  # fmt: skip
        except ValueError as exc:
            raise ConfigError(f"autoencoder.downsample: {exc}") from None
    return build_model(
        m.arch, dim, hidden=m.hidden, blocks=m.blocks, time_dim=m.time_dim, num_classes=num_classes, fourier=m.fourier,
        mults=tuple(m.mults), attention=m.attention, dropout=m.dropout,
    )  # fmt: skip


@dataclass(frozen=True)
class Objective:
    """The recipe's training loss as ``objective(model_fn, x0, generator, y=None) -> loss``."""

    schedule: Schedule
    prediction: str
    timesteps: str
    coupling: str

    def __call__(self, model_fn, x0: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None) -> torch.Tensor:
        return diffusion_loss(
            model_fn, x0, self.schedule, generator, y=y, prediction=self.prediction, timesteps=self.timesteps, coupling=self.coupling
        )

    @property
    def describe(self) -> str:
        if self.schedule.is_chain:
            return f"{self.prediction} target at the chain's steps ({self.timesteps})"
        ot = ", OT-CFM pairing" if self.coupling == "ot" else ""
        return f"flow matching: {self.prediction} target, {self.timesteps} times{ot}"


def objective_from(cfg: Config, schedule: Schedule | None = None) -> Objective | ReconstructionObjective:
    if cfg.model.arch == AUTOENCODER:
        return ReconstructionObjective(cfg.autoencoder.kl_weight, cfg.autoencoder.kind == "vae")
    t = cfg.train
    return Objective(schedule or schedule_from(cfg), cfg.model.prediction, t.timesteps, t.coupling)
