"""Recipes: TOML files with sections [data], [schedule], [model], [train], [sample], and for
latent diffusion [autoencoder] and [latent].

Every key has a type, a default and a check; an unknown section or key, a wrong type or an
out-of-range value raises ``ConfigError`` with one line naming the key and what was expected.
``--set section.key=value`` overrides are parsed as TOML values (so 1e-3, true, "cosine" and
bare words all work).  A run folder keeps the resolved recipe (runs/folder.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
import tomllib

from .errors import InputError
from .choices import (  # names only: a recipe is read and checked without loading torch
    ALL_SCHEDULE_KINDS,
    ARCHITECTURES,
    COUPLINGS,
    GRIDS,
    IMAGE_ARCHITECTURES,
    CONSISTENCY_OBJECTIVES,
    INTERVAL_OBJECTIVES,
    TEACHER_OBJECTIVES,
    JUMP_SAMPLER_NAMES,
    KARRAS_RHO,
    PRECONDITIONINGS,
    PRECISIONS,
    OBJECTIVES,
    PREDICTIONS,
    SAMPLER_NAMES,
    TIMESTEP_SAMPLING,
    TEXT_CONDITIONINGS,
    VARIANCES,
    WEIGHTINGS,
)


class ConfigError(InputError):
    """A recipe problem; str(error) is the one line shown to the user."""


def _opt(default, doc: str, *, choices=None, lo=None, hi=None, lo_open=False, hi_open=False):
    meta = dict(doc=doc, choices=choices, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)
    if isinstance(default, list):  # a mutable default needs a factory (and a fresh copy per Config)
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = _opt(
        "spiral",
        "a built-in point set, digits or patterns (images), or a path: N x D points in .npy/.csv/.npz, or images "
        "(.npz with x of shape N x H x W[ x C], an IDX file such as train-images-idx3-ubyte.gz, CIFAR-10's "
        "cifar-10-batches-py folder or one of its batches, a folder of PNG/JPG); "
        "a built-in name wins over a file or folder of that name (write ./spiral for the folder)",
    )
    classes: list[str] = _opt(
        [], "built-in data sets, one class each: a class-conditional model (e.g. [\"spiral\", \"circle\"]); [] = just data.name"
    )
    labels: str = _opt(
        "",
        "class labels of a .csv/.npz file: a CSV column (header name or 0-based index) or a file of labels "
        "(.npy/.txt/.csv, one per point, integers or names); empty: the .npz's y or a CSV column headed label or class",
    )
    n: int = _opt(2000, "training points drawn from a built-in generator, per class (seed 001 uses 2000); patterns: images", lo=2)
    seed: int = _opt(0, "seed of the training draw", lo=0)
    normalize: bool = _opt(True, "points: centre the data and scale it to unit variance (undone when sampling); images stay in [-1, 1]")
    upscale: int = _opt(1, "digits: enlarge the 8 x 8 images by this whole factor (bilinear)", lo=1, hi=8)
    size: int = _opt(0, "images: resize to size x size (0 = as they are; patterns: 16)", lo=0, hi=256)
    channels: str = _opt("auto", "images: grey, rgb or auto (what the data has)", choices=("auto", "grey", "rgb"))
    held_out: float = _opt(0.1, "images: share of each class held out for metrics (Frechet distance)", lo=0, hi=0.9)


@dataclass
class ScheduleConfig:
    kind: str = _opt(
        "linear", "noise schedule: a T-step DDPM chain, or flow (the straight path x_t = (1 - t) x0 + t eps of flow matching)",
        choices=ALL_SCHEDULE_KINDS,
    )
    T: int = _opt(1000, "number of diffusion steps in the chain (flow: the resolution of the step grids)", lo=1)
    beta_start: float = _opt(1e-4, "first beta (linear, quadratic, sigmoid)", lo=0, hi=1, lo_open=True, hi_open=True)
    beta_end: float = _opt(0.02, "last beta (linear, quadratic, sigmoid)", lo=0, hi=1, lo_open=True, hi_open=True)
    scale_with_T: bool = _opt(True, "multiply the beta range by 1000 / T so short chains still end in noise")


@dataclass
class ModelConfig:
    arch: str = _opt("residual-mlp", "network", choices=ARCHITECTURES)
    hidden: int = _opt(128, "hidden width (unet: channels of the first resolution)", lo=2)
    blocks: int = _opt(3, "residual blocks (residual-mlp; unet: per resolution)", lo=0)
    mults: list[int] = _opt([1, 2], "unet: channel multiplier of each resolution (one halving between levels)")
    attention: bool = _opt(True, "unet: self-attention at the lowest resolution")
    dropout: float = _opt(0.0, "unet: dropout inside the residual blocks", lo=0, hi=1, hi_open=True)
    time_dim: int = _opt(32, "sinusoidal time-embedding size (even)", lo=2)
    fourier: int = _opt(8, "Fourier-feature frequencies per input coordinate (residual-mlp; 0 = raw x)", lo=0)
    prediction: str = _opt(
        "eps", "what the network predicts: the noise eps, clean data x0, v = alpha eps - sigma x0, or velocity = eps - x0 "
        "(flow matching)", choices=PREDICTIONS,
    )
    precondition: str = _opt(
        "none", "edm: the network wrapped in EDM's c_skip, c_out and c_in (Karras et al. 2022, Table 1; train.sigma_data), "
        "its output read as model.prediction (x0 needs no conversion); none: the network's output as it is",
        choices=PRECONDITIONINGS,
    )
    magnitude_preserving: bool = _opt(
        False, "unet: EDM2's magnitude-preserving U-Net (Karras et al. 2024, Sec. 2; models/mp_unet.py): the same levels "
        "and skips, with unit-norm weights kept so by forced weight normalisation, no biases, pixel norm instead of "
        "GroupNorm, magnitude-preserving SiLU, sums and concatenation, Fourier time features, the output gain learned from 0",
    )


@dataclass
class TrainConfig:
    steps: int = _opt(8000, "optimiser steps", lo=1)
    batch_size: int = _opt(256, "points per step: the global batch, split over the processes of a multi-process run", lo=1)
    accumulate: int = _opt(
        1, "gradient accumulation: each step's batch in this many micro-batches, one backward each, then one optimiser step "
        "(the EMA and the learning rate move per optimiser step); the same loss as one pass, for batches that do not fit",
        lo=1,
    )
    timesteps: str = _opt(
        "uniform", "how training draws times: uniform, logsnr (uniform in log-SNR), logit-normal (flow only: sigmoid of N(0, 1)), "
        "edm (EDM's log-normal noise levels, ln(sigma / alpha) ~ N(-1.2, 1.2^2)), importance (by the loss per time bin, "
        "each term reweighted so the uniform-time objective is kept; Nichol & Dhariwal 2021)",
        choices=TIMESTEP_SAMPLING,
    )
    weighting: str = _opt(
        "none", "loss weight per noise level, stated on the x0-error and converted to the target (weighting.py): none (each "
        "target's simple loss), p2 (Choi et al. 2022), min-snr (Hang et al. 2023), edm (Karras et al. 2022), sigmoid "
        "(Kingma & Gao 2023), snr+1, likelihood (Song et al. 2021: -d log SNR / dt over the density of t, the ELBO; "
        "timesteps = logsnr makes it a constant)", choices=WEIGHTINGS,
    )
    p2_gamma: float = _opt(1.0, "p2 weighting: gamma in SNR / (k + SNR)^gamma on the x0-error", lo=0, lo_open=True)
    p2_k: float = _opt(1.0, "p2 weighting: k in SNR / (k + SNR)^gamma on the x0-error", lo=0, lo_open=True)
    min_snr_gamma: float = _opt(5.0, "min-snr weighting: gamma in min(SNR, gamma) on the x0-error", lo=0, lo_open=True)
    sigma_data: float = _opt(
        1.0, "edm weighting and model.precondition = edm: the data's standard deviation (points are normalised to 1; "
        "Karras et al. use 0.5 for images)",
        lo=0, lo_open=True,
    )
    sigmoid_bias: float = _opt(0.0, "sigmoid weighting: b in sigmoid(b - log SNR) on the eps loss")
    importance_bins: int = _opt(50, "importance-sampled times: bins of time (a chain's steps in groups; flow: equal intervals)", lo=1)
    importance_history: int = _opt(10, "importance-sampled times: losses remembered per bin (each bin needs this many first)", lo=1)
    importance_uniform: float = _opt(
        0.01, "importance-sampled times: share of uniform time mixed in (caps each term's weight at 1 / share)",
        lo=0, hi=1, lo_open=True,
    )
    coupling: str = _opt(
        "independent", "flow: how data and noise are paired in a batch; ot = exact minibatch optimal transport (OT-CFM)",
        choices=COUPLINGS,
    )
    objective: str = _opt(
        "denoising", "what the network learns: denoising (the target of model.prediction at one time) or meanflow (the "
        "average velocity u(z, r, t) between two times, Geng et al. 2025; flow path, velocity prediction; one-step sampling "
        "with sample.sampler = meanflow), or shortcut (a step of 2d trained to equal two of d, Frans et al. 2025; the same "
        "sampler), or consistency-distillation / consistency-training (a consistency function f(x_t, t), Song et al. 2023, "
        "Song & Dhariwal 2024; model.prediction x0, v or velocity, sample.sampler = consistency), or progressive (one DDIM step "
        "trained to equal two of the teacher's, Salimans & Ho 2022)", choices=OBJECTIVES,
    )
    meanflow_share: float = _opt(0.25, "meanflow: share of each batch trained with r < t (the rest r = t, plain flow matching)", lo=0, hi=1)
    meanflow_power: float = _opt(1.0, "meanflow: p of the adaptive loss weight 1 / (||error||^2 + 1e-3)^p (0 = plain squared error)", lo=0)
    shortcut_share: float = _opt(0.25, "shortcut: share of each batch trained for self-consistency (the rest is flow matching at d = 0)", lo=0, hi=1)
    shortcut_levels: int = _opt(128, "shortcut: the smallest step is 1 / levels (a power of 2; Frans et al.'s M = 128)", lo=2)
    consistency_steps: int = _opt(18, "consistency-distillation: N, the karras grid's points (Song et al. 2023)", lo=2)
    consistency_init: str = _opt(
        "scratch", "consistency-distillation: the student's network F starts from scratch, or from the teacher's network (teacher: "
        "a teacher trained with model.precondition = edm, whose F then gives the student f = the teacher's x0-hat at the start; "
        "Song et al. 2023, App. C)", choices=("scratch", "teacher"),
    )
    ict_start: int = _opt(10, "consistency-training: s0, the karras grid's first s0 + 1 points (Song & Dhariwal 2024, Eq. 5)", lo=1)
    ict_end: int = _opt(1280, "consistency-training: s1, the grid doubled on a schedule up to s1 + 1 points (Song & Dhariwal 2024, Eq. 5)", lo=1)
    teacher: str = _opt("", "consistency-distillation, progressive: the teacher's run folder (written by denoiselab distill)")
    progressive_steps: int = _opt(1, "progressive: N, the student's DDIM steps (its teacher takes 2N; Salimans & Ho 2022)", lo=1)
    optimizer: str = _opt("adamw", "optimiser", choices=("adamw", "adam"))
    lr: float = _opt(2e-3, "peak learning rate", lo=0, lo_open=True)
    weight_decay: float = _opt(0.0, "AdamW weight decay", lo=0)
    warmup_steps: int = _opt(100, "linear learning-rate warm-up steps", lo=0)
    lr_schedule: str = _opt("cosine", "learning rate after warm-up", choices=("cosine", "constant"))
    grad_clip: float = _opt(1.0, "clip the gradient norm to this (0 = off)", lo=0)
    label_dropout: float = _opt(
        0.1, "conditional runs: probability of training a point without its label (for classifier-free guidance)", lo=0, hi=1
    )
    ema_decay: float = _opt(0.995, "EMA decay of the weights used for sampling (0 = no EMA)", lo=0, hi=1, hi_open=True)
    ema_snapshot_every: int = _opt(
        0, "post-hoc EMA (Karras et al. 2024, EDM2): every N steps, store snapshots of two power-function EMAs "
        "(sigma_rel 0.05 and 0.10), from which `denoiselab ema RUN --length L` reconstructs the EMA of any length; 0 = off",
        lo=0,
    )
    precision: str = _opt(
        "fp32", "the loss's arithmetic: fp32, or mixed precision under torch.autocast, bf16 or fp16 (with a gradient "
        "scaler); the weights, the optimiser and the EMA stay fp32. For GPUs: on a CPU bf16 is slower than fp32",
        choices=PRECISIONS,
    )
    channels_last: bool = _opt(
        False, "image networks: weights and activations in channels-last (NHWC) memory order, which GPU convolutions "
        "prefer; the same network, other rounding"
    )
    compile: bool = _opt(
        False, "train through torch.compile(network): kernels fused by TorchInductor (a C++ compiler on a CPU); the first "
        "steps wait for the compiler; the same network, other rounding"
    )
    checkpoint_every: int = _opt(1000, "write a resumable checkpoint every N steps", lo=1)
    seed: int = _opt(0, "seed of initialisation, batches, timesteps and noise", lo=0)
    device: str = _opt("auto", "cpu, cuda, cuda:N or auto (cuda when present)")
    threads: int = _opt(0, "CPU threads for torch (0 = automatic: 1 for point networks, torch's default for images)", lo=0)


@dataclass
class SampleConfig:
    sampler: str = _opt("dpm++2m", "sampler for figures and metrics", choices=SAMPLER_NAMES + JUMP_SAMPLER_NAMES)
    steps: int = _opt(20, "sampler steps (= model evaluations; heun, edm-heun, dpm++2s: 2 x steps - 1)", lo=1)
    n: int = _opt(2000, "samples drawn for figures and metrics", lo=1)
    eta: float = _opt(0.0, "DDIM stochasticity (0 = deterministic, 1 = DDPM-like)", lo=0)
    variance: str = _opt("small", "DDPM reverse variance", choices=VARIANCES)
    grid: str = _opt("logsnr", "the time grid a sampler visits (samplers/grids.py); older recipes call it spacing", choices=GRIDS)
    rho: float = _opt(KARRAS_RHO, "karras grid: its exponent rho (Karras et al. 2022; 7 spends steps near the data)", lo=0, lo_open=True)
    seed: int = _opt(0, "seed of x_T and sampler noise", lo=0)
    clip_x0: bool = _opt(True, "clamp the model's clean estimate to the training data's box (+10%; images: [-1, 1])")
    guidance: float = _opt(1.0, "conditional runs: classifier-free guidance scale (1 = the conditional model, 0 = unconditional)", lo=0)

    @property
    def spacing(self) -> str:
        """The older name of ``grid`` (metrics.json and the playground's run details keep it)."""
        return self.grid


@dataclass
class AutoencoderConfig:
    kind: str = _opt("vae", "vae (KL-regularised, Rombach et al. 2022) or plain (no KL term)", choices=("vae", "plain"))
    latent: str = _opt("spatial", "spatial: channels x H/2^downsample x W/2^downsample (for a unet); flat: a vector of dim numbers (for a residual-mlp)",
                       choices=("spatial", "flat"))  # fmt: skip
    channels: int = _opt(2, "spatial latent: channels", lo=1)
    downsample: int = _opt(1, "halvings of the image side in the encoder (8 x 8 digits: 1 gives 4 x 4)", lo=0, hi=4)
    dim: int = _opt(2, "flat latent: dimensions (2 can be drawn as a scatter)", lo=1)
    hidden: int = _opt(32, "convolution channels", lo=1)
    kl_weight: float = _opt(1e-6, "vae: weight of KL(q(z|x) || N(0, I)) in nats against an image's summed squared error", lo=0)
    steps: int = _opt(2000, "stage one of a latent run (latent.autoencoder = \"train\"): the autoencoder's optimiser steps", lo=1)
    lr: float = _opt(2e-3, "stage one of a latent run: the autoencoder's peak learning rate", lo=0, lo_open=True)


@dataclass
class LatentConfig:
    autoencoder: str = _opt(
        "", "latent diffusion: the autoencoder run folder whose latent space is denoised, or \"train\" to train one "
        "first ([autoencoder]) into RUN/autoencoder; empty: diffusion on pixels",
    )


@dataclass
class TextConfig:
    captions: str = _opt(
        "", "text to image on your own images (data.name a .npz or a folder): a text file with one caption per image, "
        "in the images' order; data.name = \"scenes\" draws captioned scenes instead",
    )
    pairs: float = _opt(0.3, "scenes: share of scenes with two objects and a relation between them", lo=0, hi=1)
    held_out: list[str] = _opt(
        ["red triangle", "blue circle", "cross top"],
        "scenes: attribute combinations never drawn for training (each two or more of a shape, colour, size and "
        "position word), the compositional test set",
    )
    length: int = _opt(16, "tokens per caption (longer ones are cut)", lo=2, hi=256)
    width: int = _opt(64, "text encoder: width of its token vectors", lo=4)
    layers: int = _opt(2, "text encoder: transformer blocks", lo=1)
    heads: int = _opt(4, "text encoder: attention heads (divides width)", lo=1)
    clip_steps: int = _opt(600, "the text encoder's contrastive (CLIP-style) pretraining: optimiser steps", lo=1)
    clip_lr: float = _opt(1e-3, "the text encoder's contrastive pretraining: peak learning rate", lo=0, lo_open=True)
    clip_batch: int = _opt(128, "the text encoder's contrastive pretraining: pairs per batch (the N of log N)", lo=2)
    hard_negatives: bool = _opt(
        False, "scenes: the contrastive pretraining also scores each image against its two-object captions with the objects' "
        "colours, shapes or both swapped (NegCLIP's hard negatives, Yuksekgonul et al. 2023), so the text encoder must "
        "encode which attribute goes with which object",
    )
    train_encoder: bool = _opt(False, "train the text encoder further with the denoiser (false: frozen after pretraining, as in Stable Diffusion)")
    cross_levels: int = _opt(1, "cross-attention to the tokens after every block of the lowest N unet levels (1: the lowest only), and in the middle", lo=1)
    conditioning: str = _opt(
        "cross-attention",
        "how the U-Net reads the caption: cross-attention (its tokens, at text.cross_levels, and the pooled vector in the "
        "time embedding), or pooled (the pooled vector in the time embedding only, no cross-attention: the ablation that "
        "sees the words only through one averaged vector)",
        choices=TEXT_CONDITIONINGS,
    )


TEXT_DATA = "scenes"  # data.name of the built-in captioned scenes
# [text] keys that decide which captioned images there are: an autoencoder of them reads these too.
SCENE_KEYS = ("captions", "pairs", "held_out")


def check_world_size(cfg: Config, world_size: int) -> None:
    """What training in ``world_size`` processes needs of a recipe (ConfigError naming the key)."""
    parts = world_size * cfg.train.accumulate
    if cfg.train.batch_size % parts:
        raise ConfigError(
            f"train.batch_size: {cfg.train.batch_size} is the global batch, and {world_size} processes x train.accumulate "
            f"{cfg.train.accumulate} need a multiple of {parts}"
        )


def is_captioned_data(cfg: Config) -> bool:
    """Captioned images: the built-in scenes, or the user's images with a captions file."""
    return cfg.data.name == TEXT_DATA or bool(cfg.text.captions)


def is_text_run(cfg: Config) -> bool:
    """A text-to-image run: a denoiser on captioned images (a latent text run's autoencoder,
    stage one, reads the same images without their captions)."""
    return is_captioned_data(cfg) and cfg.model.arch != "autoencoder"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    text: TextConfig = field(default_factory=TextConfig)
    name: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("name")
        return d


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "name"}
_SECTION_TYPES = {
    "data": DataConfig, "schedule": ScheduleConfig, "model": ModelConfig, "train": TrainConfig, "sample": SampleConfig,
    "autoencoder": AutoencoderConfig, "latent": LatentConfig, "text": TextConfig,
}  # fmt: skip


def _check_value(section: str, f: dataclasses.Field, value: Any, where: str, given: str | None = None) -> Any:
    key = f"{section}.{given or f.name}"
    if f.type == "list[int]":
        if isinstance(value, str):  # --set model.mults=1,2,2
            try:
                value = [int(v) for v in value.strip("[]").split(",") if v.strip()]
            except ValueError:
                pass
        if not (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
            raise ConfigError(f"{where}{key}: expected a list of whole numbers >= 1 such as [1, 2, 2], got {value!r}")
        return list(value)
    if f.type == "list[str]":
        if isinstance(value, str):  # --set data.classes=spiral,circle
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            raise ConfigError(f"{where}{key}: expected a list of names such as [\"spiral\", \"circle\"], got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}{key}: each name may appear once, got {value!r}")
        return list(value)
    want = {"int": int, "float": float, "str": str, "bool": bool}[f.type if isinstance(f.type, str) else f.type.__name__]
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{where}{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
    if want is float and not math.isfinite(value):  # nan/inf pass every < / > range check
        raise ConfigError(f"{where}{key}: expected a finite number, got {value!r}")
    m = f.metadata
    if m["choices"] is not None and value not in m["choices"]:
        raise ConfigError(f"{where}{key}: unknown value {value!r}; expected one of {', '.join(m['choices'])}")
    lo, hi = m["lo"], m["hi"]
    if lo is not None and (value <= lo if m["lo_open"] else value < lo):
        raise ConfigError(f"{where}{key}: must be {'>' if m['lo_open'] else '>='} {lo}, got {value!r}")
    if hi is not None and (value >= hi if m["hi_open"] else value > hi):
        raise ConfigError(f"{where}{key}: must be {'<' if m['hi_open'] else '<='} {hi}, got {value!r}")
    return value


# Older names of keys, still read (run folders keep the config.toml they were trained with).
_ALIASES = {("sample", "spacing"): "grid"}


def _names_of(section: str, key: str) -> set[str]:
    """Every name of ``section.key``: itself and its older or newer name."""
    name = _ALIASES.get((section, key), key)
    return {name} | {alias for (s, alias), new in _ALIASES.items() if s == section and new == name}


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def from_dict(raw: dict[str, Any], *, name: str = "custom", where: str = "", resolved: bool = False, overrides: frozenset[str] = frozenset()) -> Config:
    """Validate a nested dict (as read from TOML) into a Config; missing keys take defaults.

    Every key in ``raw`` counts as chosen, and a chosen key that the recipe's other choices do not
    read is refused, whatever its value (``unread_keys``).  ``resolved``: ``raw`` is a run folder's
    resolved recipe, which may list every key (older runs wrote them all), so only its keys away
    from their defaults count as chosen, with the ``overrides`` ("section.key") given beside it."""
    cfg = Config(name=name)
    chosen = set(overrides)
    for section, values in raw.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(f"{where}unknown section [{section}]; expected one of {', '.join(_SECTION_TYPES)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}[{section}] must be a table of keys")
        fields = {f.name: f for f in dataclasses.fields(_SECTION_TYPES[section])}
        target = getattr(cfg, section)
        for key, value in values.items():
            name = _ALIASES.get((section, key), key)
            if name not in fields:
                raise ConfigError(f"{where}unknown key {section}.{key}; valid keys in [{section}]: {', '.join(fields)}")
            if name != key and name in values:
                raise ConfigError(f"{where}{section}.{key} and {section}.{name} name the same thing; give one")
            value = _check_value(section, fields[name], value, where, given=key)
            setattr(target, name, value)
            if not resolved or value != _default(fields[name]):
                chosen.add(f"{section}.{name}")
    _check_cross(cfg, where, frozenset(chosen))
    return cfg


def _check_cross(cfg: Config, where: str, chosen: frozenset[str]) -> None:
    kind, prediction, tr = cfg.schedule.kind, cfg.model.prediction, cfg.train
    if kind == "flow" and prediction == "eps":
        raise ConfigError(
            f"{where}model.prediction: eps cannot be read at t = 1 of schedule.kind = flow (alpha = 0 there); "
            "use velocity (flow matching), x0 or v"
        )
    if tr.coupling == "ot" and kind != "flow":
        raise ConfigError(f"{where}train.coupling: ot (OT-CFM) pairs data and noise for flow matching; it needs schedule.kind = flow, not {kind}")
    if tr.timesteps == "logit-normal" and kind != "flow":
        raise ConfigError(
            f"{where}train.timesteps: logit-normal draws continuous times of schedule.kind = flow; "
            f"a {kind} chain is trained at its T steps (uniform or logsnr)"
        )
    if tr.weighting == "likelihood" and tr.timesteps in ("edm", "logit-normal"):
        raise ConfigError(
            f"{where}train.weighting: likelihood divides by the density of t, and under timesteps = {tr.timesteps} that "
            "density's Gaussian tails make the loss's variance infinite; use timesteps = logsnr, uniform or importance"
        )
    if tr.channels_last and cfg.model.arch not in IMAGE_ARCHITECTURES and not cfg.latent.autoencoder:
        raise ConfigError(f"{where}train.channels_last: orders the channels of images; model.arch = {cfg.model.arch} has none (use false)")
    if cfg.model.magnitude_preserving:
        _check_magnitude_preserving(cfg, where)
    if tr.compile and tr.objective == "meanflow":
        raise ConfigError(f"{where}train.compile: MeanFlow differentiates its network with torch.func.jvp, which is not compiled here; use false")
    if tr.batch_size % tr.accumulate:
        raise ConfigError(f"{where}train.accumulate: must divide train.batch_size ({tr.batch_size}) into equal micro-batches, got {tr.accumulate}")
    _check_one_step(cfg, where)
    _check_unread(cfg, where, chosen)
    _check_consistency(cfg, where)
    if cfg.model.arch == "autoencoder" and cfg.latent.autoencoder:
        raise ConfigError(f"{where}latent.autoencoder: an autoencoder run (model.arch = autoencoder) has no autoencoder of its own; leave it empty")
    if is_text_run(cfg):
        _check_text(cfg, where)
    tr = cfg.train
    if tr.timesteps == "importance" and cfg.schedule.kind != "flow" and tr.importance_bins > cfg.schedule.T:
        raise ConfigError(f"{where}train.importance_bins: must be <= schedule.T ({cfg.schedule.T}) on a chain, got {tr.importance_bins}")
    if cfg.sample.steps > cfg.schedule.T:
        raise ConfigError(f"{where}sample.steps: must be <= schedule.T ({cfg.schedule.T}), got {cfg.sample.steps}")
    if cfg.model.time_dim % 2:
        raise ConfigError(f"{where}model.time_dim: must be even, got {cfg.model.time_dim}")
    if cfg.schedule.beta_start > cfg.schedule.beta_end:
        raise ConfigError(f"{where}schedule.beta_start: must be <= schedule.beta_end ({cfg.schedule.beta_end})")
    scale = 1000.0 / cfg.schedule.T if cfg.schedule.scale_with_T else 1.0
    if cfg.schedule.kind not in ("cosine", "flow") and cfg.schedule.beta_end * scale >= 1.0:
        raise ConfigError(
            f"{where}schedule.beta_end: {cfg.schedule.beta_end} x 1000/T = {cfg.schedule.beta_end * scale:g} "
            "is not below 1; lower it or set schedule.scale_with_T = false"
        )


def _check_magnitude_preserving(cfg: Config, where: str) -> None:
    """The magnitude-preserving network is a U-Net of one time, with class labels or none."""
    if cfg.model.arch != "unet":
        raise ConfigError(f"{where}model.magnitude_preserving: the magnitude-preserving network is a unet; model.arch = {cfg.model.arch} has none (use false)")
    if is_text_run(cfg):
        raise ConfigError(f"{where}model.magnitude_preserving: the text-conditioned U-Net is built without it; use false")
    if cfg.train.objective in INTERVAL_OBJECTIVES:
        raise ConfigError(f"{where}model.magnitude_preserving: {cfg.train.objective}'s second time input is not built into the magnitude-preserving U-Net; use false")


def _check_one_step(cfg: Config, where: str) -> None:
    """Reflow's fixed pairs and MeanFlow's average velocity are written on the flow path."""
    kind, tr = cfg.schedule.kind, cfg.train
    if tr.coupling == "reflow" and kind != "flow":
        raise ConfigError(f"{where}train.coupling: reflow trains a rectified flow; it needs schedule.kind = flow, not {kind}")
    if tr.objective in INTERVAL_OBJECTIVES:
        name = tr.objective
        if kind != "flow" or cfg.model.prediction != "velocity":
            raise ConfigError(f"{where}train.objective: {name} learns an average velocity on the flow path; it needs schedule.kind = flow and model.prediction = velocity")
        if tr.coupling != "independent" or tr.timesteps not in ("uniform", "logit-normal"):
            raise ConfigError(f"{where}train.objective: {name} draws its own pairs of times (train.timesteps uniform or logit-normal) with independent coupling")
        if cfg.model.arch not in ("residual-mlp", "unet"):
            raise ConfigError(f"{where}train.objective: {name}'s second time input is built into residual-mlp and unet only, not {cfg.model.arch}")
        if cfg.model.precondition != "none":
            raise ConfigError(f"{where}model.precondition: {cfg.model.precondition} scales a network of one time; {name}'s network of two times takes none")
        if tr.objective == "shortcut" and tr.shortcut_levels & (tr.shortcut_levels - 1):
            raise ConfigError(f"{where}train.shortcut_levels: must be a power of 2, got {tr.shortcut_levels}")
    if cfg.sample.sampler == "meanflow" and tr.objective not in INTERVAL_OBJECTIVES:
        raise ConfigError(f"{where}sample.sampler: meanflow jumps with an average velocity u(z, r, t); it needs train.objective = meanflow or shortcut")


def _check_consistency(cfg: Config, where: str) -> None:
    """A consistency function (consistency.py) is a clean estimate whose boundary condition is built
    into the network (read out as model.prediction); its objectives draw their own levels and pairs,
    and a progressive student draws its own times."""
    tr = cfg.train
    if tr.objective in CONSISTENCY_OBJECTIVES:
        name = tr.objective
        if cfg.model.prediction == "eps" or cfg.model.precondition != "none":
            raise ConfigError(f"{where}train.objective: {name} learns f(x_t, t), a clean estimate with c_skip and c_out built in and read at t = 1; it needs model.prediction x0, v or velocity (not eps) and model.precondition = none")
        if tr.coupling != "independent" or tr.timesteps != "uniform" or tr.weighting != "none":
            raise ConfigError(f"{where}train.objective: {name} draws its own levels on the karras grid and weights them itself; keep train.coupling = independent, train.timesteps = uniform, train.weighting = none")
        if name == "consistency-training" and tr.ict_start > tr.ict_end:
            raise ConfigError(f"{where}train.ict_start: must be <= train.ict_end ({tr.ict_end}), got {tr.ict_start}")
    if tr.objective == "progressive":
        if cfg.model.prediction == "eps":
            raise ConfigError(f"{where}model.prediction: a progressive student's one step is read at t = 1, where alpha = 0 and eps gives no clean estimate; use v, velocity or x0 (Salimans & Ho 2022, Sec. 4)")
        if tr.coupling != "independent" or tr.timesteps != "uniform" or tr.weighting != "none":
            raise ConfigError(f"{where}train.objective: progressive draws its own times t = i / N and weights by its prediction type; keep train.coupling = independent, train.timesteps = uniform, train.weighting = none")
    if cfg.sample.sampler == "consistency" and tr.objective not in CONSISTENCY_OBJECTIVES:
        raise ConfigError(f"{where}sample.sampler: consistency jumps with a consistency function f(x_t, t); it needs train.objective = consistency-distillation or consistency-training")


def _check_text(cfg: Config, where: str) -> None:
    t = cfg.text
    if cfg.model.arch != "unet":
        raise ConfigError(f"{where}model.arch: a text-to-image run needs unet (its cross-attention reads the caption), not {cfg.model.arch}")
    if cfg.data.classes:
        raise ConfigError(f"{where}data.classes: a text-to-image run is conditioned on captions, not classes; leave it empty")
    if cfg.model.precondition != "none":
        raise ConfigError(f"{where}model.precondition: the text-conditioned U-Net is built without preconditioning; use none")
    if cfg.train.ema_snapshot_every:
        raise ConfigError(f"{where}train.ema_snapshot_every: post-hoc EMA snapshots are not taken on text-to-image runs; use 0")
    if t.width % t.heads:
        raise ConfigError(f"{where}text.heads: must divide text.width ({t.width}), got {t.heads}")
    levels = len(cfg.model.mults)
    if t.conditioning == "pooled" and t.cross_levels != 1:
        raise ConfigError(f"{where}text.cross_levels: text.conditioning = pooled has no cross-attention to place; leave it at 1")
    if t.cross_levels > levels:
        raise ConfigError(f"{where}text.cross_levels: the unet has {levels} levels (model.mults), got {t.cross_levels}")


# Keys that only one weighting or time distribution reads: each is refused when a recipe or an
# override sets it (whatever its value) and its owner is not chosen, so a recipe never sets a knob
# that does nothing, and a run's resolved recipe leaves it out.
_OWNED_KEYS = {
    "p2_gamma": ("weighting", "p2"), "p2_k": ("weighting", "p2"), "min_snr_gamma": ("weighting", "min-snr"),
    "sigma_data": ("weighting", "edm"), "sigmoid_bias": ("weighting", "sigmoid"),
    "importance_bins": ("timesteps", "importance"), "importance_history": ("timesteps", "importance"),
    "importance_uniform": ("timesteps", "importance"),
    "meanflow_share": ("objective", "meanflow"), "meanflow_power": ("objective", "meanflow"),
    "shortcut_share": ("objective", "shortcut"), "shortcut_levels": ("objective", "shortcut"),
    "consistency_steps": ("objective", "consistency-distillation"), "consistency_init": ("objective", "consistency-distillation"),
    "ict_start": ("objective", "consistency-training"),
    "ict_end": ("objective", "consistency-training"), "progressive_steps": ("objective", "progressive"),
}  # fmt: skip


def unread_keys(cfg: Config) -> dict[str, str]:
    """The keys ("section.key") that ``cfg``'s choices do not read, each with the reason as the
    end of a sentence: the [train] keys of the weightings and time distributions not chosen, and
    the [autoencoder] section of a pixel-space run (neither an autoencoder nor a latent run)."""
    out = {}
    for key, (owner, value) in _OWNED_KEYS.items():
        chosen = getattr(cfg.train, owner)
        if key == "sigma_data" and (cfg.model.precondition == "edm" or cfg.train.objective in CONSISTENCY_OBJECTIVES):  # c_skip, c_out, c_in read it too
            continue
        if chosen != value:
            out[f"train.{key}"] = f"is read only with train.{owner} = {value} (here {chosen}); remove it or set train.{owner} = \"{value}\""
    if cfg.train.objective not in TEACHER_OBJECTIVES:
        out["train.teacher"] = (f"is read only by the objectives that learn from a teacher run ({' and '.join(TEACHER_OBJECTIVES)}, here "
                                f"{cfg.train.objective}); make such a run with denoiselab distill")  # fmt: skip
    if cfg.model.arch != "autoencoder" and not cfg.latent.autoencoder:  # a trained autoencoder's keys are checked against it (training/stages.py)
        for f in dataclasses.fields(AutoencoderConfig):
            out[f"autoencoder.{f.name}"] = "this is a pixel-space run; set latent.autoencoder or model.arch = autoencoder"
    if not is_captioned_data(cfg):
        for f in dataclasses.fields(TextConfig):
            out[f"text.{f.name}"] = f"this is not a text-to-image run; set data.name = \"{TEXT_DATA}\" or text.captions"
    elif not is_text_run(cfg):  # an autoencoder of captioned images reads what draws them, not the text encoder's keys
        for f in dataclasses.fields(TextConfig):
            if f.name not in SCENE_KEYS:
                out[f"text.{f.name}"] = "is read by the text-to-image denoiser, not by an autoencoder (model.arch = autoencoder)"
    elif cfg.data.name != TEXT_DATA:
        for key in ("pairs", "held_out", "hard_negatives"):
            out[f"text.{key}"] = f"is read only by the built-in scenes (data.name = \"{TEXT_DATA}\")"
    return out


def _check_unread(cfg: Config, where: str, chosen: frozenset[str]) -> None:
    """A key the recipe or an override sets is refused where the recipe's choices do not read it,
    whatever its value (at its default too: a knob that does nothing is never silently taken)."""
    unread = unread_keys(cfg)
    refused = [key for key in unread if key in chosen]
    if refused:
        raise ConfigError(f"{where}{refused[0]}: {unread[refused[0]]}")


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("denoiselab.recipes").iterdir() if p.name.endswith(".toml"))


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def load_config(name_or_path: str = "spiral", overrides: list[str] | tuple[str, ...] = (), *, resolved: bool = False) -> Config:
    """Load a shipped recipe by name (``spiral``) or a TOML file by path, then apply overrides.
    ``resolved``: the file is a run folder's resolved recipe (from_dict), as ``train --resume`` reads it."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():  # a folder named like a recipe (e.g. --out quick) is not one
        if not path.is_file():
            raise ConfigError(f"{path}: no such recipe file")
        raw = _read_toml(path)
        name = str(raw.get("name", path.stem))  # a run folder's recipe keeps its recipe's name
        where = f"{path}: "
    else:
        if name_or_path not in recipe_names():
            raise ConfigError(f"unknown recipe {name_or_path!r}; expected a .toml path or one of {', '.join(recipe_names())}")
        raw = tomllib.loads(resources.files("denoiselab.recipes").joinpath(f"{name_or_path}.toml").read_text())
        name, where = name_or_path, f"recipe {name_or_path}: "
    raw.pop("name", None)
    given = set()
    for item in overrides:
        section, key, value = parse_override(item)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"--set {item}: [{section}] is not a table")
        for same in _names_of(section, key):  # an override replaces the recipe's key by either name
            raw[section].pop(same, None)
        raw[section][key] = value
        given.add(f"{section}.{_ALIASES.get((section, key), key)}")
    return from_dict(raw, name=name, where=where, resolved=resolved, overrides=frozenset(given))


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML, else taken as a plain string."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.lr=1e-3")
    lhs, text = item.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, key, value


def dump_config(cfg: Config) -> str:
    """The resolved recipe as TOML: every key the recipe reads, with its documentation as a comment
    (the keys its choices do not read, ``unread_keys``, are named in a comment only)."""
    lines = [f"# denoiselab recipe (resolved from {cfg.name!r})", f'name = "{cfg.name}"', ""]
    unread = unread_keys(cfg)  # left out: the file reads back as a recipe, and every key in it acts
    for section, cls in _SECTION_TYPES.items():
        keys = [f for f in dataclasses.fields(cls) if f"{section}.{f.name}" not in unread]
        if not keys:
            continue
        lines.append(f"[{section}]")
        values = getattr(cfg, section)
        for f in keys:
            lines.append(f"# {f.metadata['doc']}" + (f" ({', '.join(f.metadata['choices'])})" if f.metadata["choices"] else ""))
            lines.append(tomli_w.dumps({f.name: getattr(values, f.name)}).strip())
        left_out = [f.name for f in dataclasses.fields(cls) if f"{section}.{f.name}" in unread]
        if left_out:
            lines.append(f"# left out, as this run does not read them: {', '.join(left_out)}")
        lines.append("")
    return "\n".join(lines)


def config_from_run_file(path: Path) -> Config:
    raw = _read_toml(path)
    name = raw.pop("name", "custom")
    return from_dict(raw, name=str(name), where=f"{path}: ", resolved=True)
