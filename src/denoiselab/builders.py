"""Builders: a recipe (config.Config) turned into its schedule, network, device and objective.

Training (training/) and every user of a trained run (runs/, the playground) build these
the same way from the same recipe, so they live below both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config, ConfigError
from .importance import ImportanceSampler
from .latent import ReconstructionObjective
from .models import AUTOENCODER, Autoencoder, build_model
from .models.preconditioning import precondition
from .choices import CONSISTENCY_OBJECTIVES, INTERVAL_OBJECTIVES, TEACHER_OBJECTIVES
from .guidance import classifier_free
from .consistency import clean_estimate, consistency_distillation_loss, consistency_model, consistency_training_loss, ict_discretisation
from .meanflow import meanflow_loss
from .objectives import diffusion_loss
from .progressive import progressive_loss
from .shortcut import shortcut_loss
from .schedules import TERMINAL_SNR_WARN_DB, Schedule, make_schedule
from .weighting import Weighting


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
    net = build_model(
        m.arch, dim, hidden=m.hidden, blocks=m.blocks, time_dim=m.time_dim, num_classes=num_classes, fourier=m.fourier,
        mults=tuple(m.mults), attention=m.attention, dropout=m.dropout, interval=cfg.train.objective in INTERVAL_OBJECTIVES,
        magnitude_preserving=m.magnitude_preserving,
    )  # fmt: skip
    if cfg.train.objective in CONSISTENCY_OBJECTIVES:  # the boundary condition is the network's own (consistency.py)
        return consistency_model(net, schedule_from(cfg), cfg.train.sigma_data, m.prediction)
    return precondition(net, m.precondition, schedule_from(cfg), m.prediction, cfg.train.sigma_data)


def text_model_from(cfg: Config, channels: int, vocab_size: int) -> torch.nn.Module:
    """A text-to-image recipe's network: its U-Net with cross-attention at the lowest
    text.cross_levels levels (none with text.conditioning = pooled) and its text encoder ([text])
    for a tokenizer of ``vocab_size`` ids."""
    from .models.text_unet import TextConditionedUNet
    from .models.unet import UNet
    from .text.encoder import TextEncoder

    m, t = cfg.model, cfg.text
    unet = UNet(
        channels, base=m.hidden, mults=tuple(m.mults), blocks=m.blocks, time_dim=m.time_dim, attention=m.attention,
        dropout=m.dropout, text_dim=t.width, cross_levels=tuple(range(len(m.mults) - t.cross_levels, len(m.mults))),
        cross_attention=t.conditioning == "cross-attention",
    )  # fmt: skip
    return TextConditionedUNet(unet, TextEncoder(vocab_size, t.length, t.width, t.layers, t.heads), t.train_encoder)


@dataclass(frozen=True)
class Objective:
    """The recipe's training loss as ``objective(model_fn, x0, generator, y=None, time_sampler=None)
    -> loss``.  With ``timesteps = "importance"`` the caller keeps the sampler's state
    (``new_time_sampler()``) and passes it to every call (training stores it in the checkpoint)."""

    schedule: Schedule
    prediction: str
    timesteps: str
    coupling: str
    weighting: Weighting = Weighting()
    importance_bins: int = 50
    importance_history: int = 10
    importance_uniform: float = 0.01
    kind: str = "denoising"  # train.objective: denoising, or meanflow (meanflow.py)
    meanflow_share: float = 0.25
    meanflow_power: float = 1.0
    shortcut_share: float = 0.25
    shortcut_levels: int = 128
    consistency_steps: int = 18  # consistency-distillation: N
    ict_start: int = 10  # consistency-training: s0, N(0) = s0 + 1
    ict_end: int = 1280  # consistency-training: s1, N(K) = s1 + 1
    train_steps: int = 1  # K of consistency-training's N(k)
    teacher: object = None  # consistency-distillation, progressive: the teacher's network (training/teacher.py)
    teacher_prediction: str = "eps"
    # A teacher with classes is read through classifier-free guidance at this scale (its recipe's
    # sample.guidance; training/teacher.py): the student learns the guided teacher (Meng et al.
    # 2023, "On Distillation of Guided Diffusion Models", Sec. 4.1, at one fixed w).  None: as is.
    teacher_guidance: float | None = None
    progressive_steps: int = 1  # progressive: the student's DDIM steps N

    @property
    def teacher_fn(self):
        """The teacher's model function as the student learns it: guided where it has classes.  A
        row whose label was dropped (-1) gets the unconditional teacher, since guidance leaves
        uncond + w (uncond - uncond) = uncond, so the student's null label learns that branch."""
        if self.teacher is None or self.teacher_guidance is None:
            return self.teacher
        return classifier_free(self.teacher, self.teacher_guidance)

    @property
    def reads_training_state(self) -> bool:
        """Whether a step passes ``target`` (the EMA network) and ``step`` (consistency.py)."""
        return self.kind in CONSISTENCY_OBJECTIVES

    def discretisation(self, step: int) -> int:
        """N at training step ``step``: fixed for distillation, doubled on a schedule for training."""
        if self.kind == "consistency-training":
            return ict_discretisation(step, self.train_steps, self.ict_start, self.ict_end)
        return self.consistency_steps

    def __call__(
        self, model_fn, x0: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None, time_sampler=None,
        target=None, step: int = 0,
    ) -> torch.Tensor:
        if self.kind in TEACHER_OBJECTIVES and self.teacher is None:
            raise ValueError(f"{self.kind} needs the teacher's network (training/teacher.py)")
        if self.kind == "progressive":
            return progressive_loss(
                model_fn, self.teacher_fn, self.teacher_prediction, x0, self.schedule, generator, prediction=self.prediction,
                steps=self.progressive_steps, y=y,
            )  # fmt: skip
        if self.kind == "consistency-distillation":
            f = clean_estimate(model_fn, self.schedule, self.prediction)
            aim = f if target is None else clean_estimate(target, self.schedule, self.prediction)
            return consistency_distillation_loss(
                f, aim, self.teacher_fn, self.teacher_prediction, x0, self.schedule, generator, steps=self.discretisation(step), y=y,
            )  # fmt: skip
        if self.kind == "consistency-training":
            f = clean_estimate(model_fn, self.schedule, self.prediction)
            return consistency_training_loss(f, x0, self.schedule, generator, steps=self.discretisation(step), y=y)
        if self.kind == "meanflow":
            # DistributedDataParallel (training/parallel.py) holds the bare network as .module: its
            # hooks cannot run inside torch.func.jvp, so MeanFlow takes its tangent through that.
            return meanflow_loss(
                model_fn, x0, generator, y=y, timesteps=self.timesteps, share=self.meanflow_share, power=self.meanflow_power,
                tangent_fn=getattr(model_fn, "module", None),
            )  # fmt: skip
        if self.kind == "shortcut":
            return shortcut_loss(model_fn, x0, generator, y=y, share=self.shortcut_share, levels=self.shortcut_levels)
        return diffusion_loss(
            model_fn, x0, self.schedule, generator, y=y, prediction=self.prediction, timesteps=self.timesteps,
            coupling=self.coupling, weighting=self.weighting, time_sampler=time_sampler,
        )  # fmt: skip

    def new_time_sampler(self) -> ImportanceSampler | None:
        """A fresh importance sampler for ``timesteps = "importance"``; None otherwise."""
        if self.timesteps != "importance":
            return None
        return ImportanceSampler(self.schedule, self.importance_bins, self.importance_history, self.importance_uniform)

    @property
    def describe(self) -> str:
        if self.kind == "progressive":
            return f"progressive distillation: one DDIM step of 1/{self.progressive_steps} trained to land where two of the teacher's land, {self.prediction} target"
        if self.kind == "consistency-distillation":
            return f"consistency distillation: f(x_t, t) matches the EMA target one teacher Heun step nearer the data, on a karras grid of N = {self.consistency_steps}"
        if self.kind == "consistency-training":
            return (f"improved consistency training: pseudo-Huber distance to f itself (stop-gradient) one level nearer the data, "
                    f"log-normal levels, N doubled from {self.ict_start + 1} to {self.ict_end + 1}")  # fmt: skip
        if self.kind == "meanflow":
            power = f"adaptive weight p = {self.meanflow_power:g}" if self.meanflow_power else "plain squared error"
            return f"MeanFlow: average velocity u(z, r, t), {self.timesteps} times, r < t in {self.meanflow_share:.0%} of each batch, {power}"
        if self.kind == "shortcut":
            return f"shortcut model: steps of 2d trained as two of d in {self.shortcut_share:.0%} of each batch (smallest 1/{self.shortcut_levels}), flow matching in the rest"
        if self.coupling == "reflow":
            return f"reflow: rectified flow on the teacher's fixed (noise, sample) pairs, {self.timesteps} times"
        weighting = "" if self.weighting.name == "none" else f", {self.weighting.describe}"
        if self.timesteps == "importance":
            times = f"importance-sampled times ({self.importance_bins} bins, {self.importance_uniform:g} uniform)"
        else:
            times = f"{self.timesteps} times"
        if self.schedule.is_chain:
            return f"{self.prediction} target at the chain's steps, {times}{weighting}"
        ot = ", OT-CFM pairing" if self.coupling == "ot" else ""
        return f"flow matching: {self.prediction} target, {times}{ot}{weighting}"

    def training_notes(self) -> list[str]:
        """What training says before its first step: the schedule and the loss, and a warning
        when a chain ends short of pure noise."""
        schedule, snr_T = self.schedule, self.schedule.terminal_snr_db()
        notes = [f"schedule: {schedule.name}, T={schedule.T}, terminal SNR {snr_T:.1f} dB; {self.describe}"]
        if schedule.is_chain and snr_T > TERMINAL_SNR_WARN_DB:
            notes.append(
                f"warning: the chain ends at {snr_T:.1f} dB SNR (above {TERMINAL_SNR_WARN_DB:.0f} dB): x_T still "
                "holds data, so sampling from pure noise will be off; raise T, beta_end or set schedule.scale_with_T = true"
            )
        return notes


def weighting_from(cfg: Config) -> Weighting:
    t = cfg.train
    return Weighting(t.weighting, t.p2_gamma, t.p2_k, t.min_snr_gamma, t.sigma_data, t.sigmoid_bias)


def objective_from(cfg: Config, schedule: Schedule | None = None) -> Objective | ReconstructionObjective:
    if cfg.model.arch == AUTOENCODER:
        return ReconstructionObjective(cfg.autoencoder.kl_weight, cfg.autoencoder.kind == "vae")
    t = cfg.train
    return Objective(
        schedule or schedule_from(cfg), cfg.model.prediction, t.timesteps, t.coupling, weighting_from(cfg),
        t.importance_bins, t.importance_history, t.importance_uniform, t.objective, t.meanflow_share, t.meanflow_power,
        t.shortcut_share, t.shortcut_levels, t.consistency_steps, t.ict_start, t.ict_end, t.steps,
        progressive_steps=t.progressive_steps,
    )  # fmt: skip
