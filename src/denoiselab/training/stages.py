"""Latent diffusion's stages (Rombach et al. 2022): stage one trains the autoencoder, stage two the
denoiser on the training images encoded by it, both by the one training loop.

What the denoiser's training (denoiser.train) asks of a latent recipe before its loop starts:
the stage-one recipe and folder (latent.autoencoder = "train": the autoencoder is trained into the
run's own folder first), the checks that the autoencoder fits the recipe (a complete autoencoder
run on the same pixel data, whose latent the recipe's network takes), and the training set
encoded once with the autoencoder's posterior mean and latent scale.  The latents are kept in the
run folder, which the loop trains on; the run's description records the autoencoder's folder and
the sha256 of its weights, and a run whose autoencoder has changed since is refused (its latents
would mean something else).  The run folder's data stays the training *images*, for the metrics
and figures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import SCENE_KEYS, Config, ConfigError, is_captioned_data, is_text_run
from ..latent import encode_images
from ..models import AUTOENCODER, POINT_ARCHITECTURES
from ..models.autoencoder import Autoencoder
from ..runs.folder import STAGE_ONE, TEXT_STAGE, RunError, RunFolder
from ..runs.load import Run, load_run

# Value of latent.autoencoder that trains the autoencoder as stage one, into the run's STAGE_ONE folder.
TRAIN_FIRST = "train"


def is_latent(cfg: Config) -> bool:
    return bool(cfg.latent.autoencoder)


def trains_stage_one(cfg: Config) -> bool:
    return cfg.latent.autoencoder == TRAIN_FIRST


def stage_one_names(cfg: Config) -> tuple[str, ...]:
    """What may already be in a new run's folder: the autoencoder trained as stage one, a
    text-to-image run's text encoder (text_stage.py)."""
    return ((STAGE_ONE,) if trains_stage_one(cfg) else ()) + ((TEXT_STAGE,) if is_text_run(cfg) else ())


def autoencoder_path(cfg: Config, run_dir: Path) -> Path:
    """Where a latent run's autoencoder is: the run's stage-one folder for one trained first, else
    the folder named by latent.autoencoder (absolute, or relative to the working directory)."""
    return RunFolder(run_dir).stage_one().path if trains_stage_one(cfg) else Path(cfg.latent.autoencoder).expanduser()


def stage_one_config(cfg: Config) -> Config:
    """The autoencoder's recipe of a latent run that trains it first: the same data, the
    [autoencoder] section, its steps and learning rate; the other [train] keys as the run's."""
    ae = dataclasses.replace(cfg, name=f"{cfg.name}-autoencoder")
    ae.model = dataclasses.replace(cfg.model, arch=AUTOENCODER)
    ae.train = dataclasses.replace(
        cfg.train, steps=cfg.autoencoder.steps, lr=cfg.autoencoder.lr, warmup_steps=min(cfg.train.warmup_steps, cfg.autoencoder.steps),
        ema_snapshot_every=0,  # post-hoc EMA is the denoiser's
    )
    ae.latent = dataclasses.replace(cfg.latent, autoencoder="")
    ae.autoencoder = dataclasses.replace(cfg.autoencoder)
    return ae


def planned_latent_shape(cfg: Config) -> tuple[int, ...]:
    """The latent stage one will produce, as far as the recipe says: () for a spatial one (its
    size is known once the images are), (dim,) for a flat one."""
    return () if cfg.autoencoder.latent == "spatial" else (cfg.autoencoder.dim,)


def check_denoiser(cfg: Config, latent_shape: tuple[int, ...]) -> None:
    """The recipe's network must take the latent: a U-Net a spatial one, an MLP a flat one."""
    arch = cfg.model.arch
    shape = " x ".join(map(str, latent_shape)) if latent_shape else "autoencoder.channels x H / 2^downsample x W / 2^downsample"
    if len(latent_shape) in (0, 3):  # (): spatial, size not known yet (before stage one)
        if arch != "unet":
            raise ConfigError(f"model.arch: the autoencoder's latent is spatial ({shape}); it needs unet, not {arch}")
        halvings, side = len(cfg.model.mults) - 1, min(latent_shape[1:], default=2**16)
        if side < 2**halvings:
            raise ConfigError(f"model.mults: {len(cfg.model.mults)} levels halve the {shape} latent {halvings} times; a side of {side} allows at most {side.bit_length()} levels")
    elif arch not in POINT_ARCHITECTURES:
        raise ConfigError(f"model.arch: the autoencoder's latent is a flat vector of {shape}; it needs one of {', '.join(POINT_ARCHITECTURES)}, not {arch}")


# [autoencoder] keys that describe the trained network (steps and lr only say how stage one trains).
ARCHITECTURE_KEYS = ("kind", "latent", "channels", "downsample", "dim", "hidden", "kl_weight")


def _check_same_keys(cfg: Config, theirs: Config, path: Path) -> None:
    """A recipe that names a trained autoencoder must agree with it on the pixel data (so its
    held-out images are held out of the autoencoder too) and on the [autoencoder] it states."""
    ours_data, theirs_data = dataclasses.asdict(cfg.data), dataclasses.asdict(theirs.data)
    for key in ours_data:
        if ours_data[key] != theirs_data[key]:
            raise ConfigError(
                f"data.{key}: the autoencoder {path} was trained with data.{key} = {theirs_data[key]!r}, this recipe has "
                f"{ours_data[key]!r}; a latent run uses its autoencoder's pixel data (and held-out split)"
            )
    for key in SCENE_KEYS if is_captioned_data(cfg) else ():
        ours, stated = getattr(cfg.text, key), getattr(theirs.text, key)
        if ours != stated:
            raise ConfigError(
                f"text.{key}: the autoencoder {path} was trained on images drawn with text.{key} = {stated!r}, this recipe has "
                f"{ours!r}; a latent run uses its autoencoder's pixel data (and held-out split)"
            )
    defaults = type(cfg.autoencoder)()
    for key in ARCHITECTURE_KEYS:
        ours, stated = getattr(cfg.autoencoder, key), getattr(theirs.autoencoder, key)
        if ours != stated and ours != getattr(defaults, key):
            raise ConfigError(f"autoencoder.{key}: the autoencoder {path} has {key} = {stated!r}, this recipe {ours!r}; drop the key or match it")


@dataclass
class OpenAutoencoder:
    path: Path
    model: Autoencoder
    sha256: str
    recorded_as: str  # the path the run's description keeps: relative to the run folder for stage one


def _load(path: Path, device: torch.device, key: str) -> Run:
    try:
        run = load_run(path, device=str(device))
    except RunError as exc:
        raise ConfigError(f"{key}: {' '.join(str(exc).split())}") from None
    if run.config.model.arch != AUTOENCODER:
        raise ConfigError(f"{key}: {path} is a {run.config.model.arch} run, not an autoencoder (model.arch = autoencoder)")
    if run.info.get("status") != "complete":
        raise ConfigError(f"{key}: the autoencoder {path} is {run.info.get('status')} (its latent scale is measured when it completes); finish it with: denoiselab train --resume {path}")
    return run


def open_autoencoder(cfg: Config, run_dir: Path, source, device: torch.device) -> OpenAutoencoder | None:
    """A new latent run's autoencoder, checked against the recipe: a complete autoencoder run,
    trained on the same data keys (so the held-out images are held out of it too), whose latent
    the recipe's network takes.  None for a pixel run.  Raises ConfigError (one line)."""
    if not is_latent(cfg):
        return None
    if not source.is_image:
        raise ConfigError(f"latent.autoencoder: latent diffusion is for image data; {cfg.data.name!r} is point data")
    path = autoencoder_path(cfg, run_dir)
    run = _load(path, device, "latent.autoencoder")
    if not trains_stage_one(cfg):
        _check_same_keys(cfg, run.config, path)
    check_denoiser(cfg, run.model.latent_shape)
    recorded = STAGE_ONE if trains_stage_one(cfg) else str(path.resolve())
    return OpenAutoencoder(path, run.model, run.folder.weights_sha256(), recorded)


def recorded_autoencoder(folder: RunFolder, info: dict, device: torch.device) -> OpenAutoencoder | None:
    """A resumed latent run's autoencoder: the one its description records, unchanged."""
    if "latent" not in info:
        return None
    path, sha = folder.resolve_recorded(info)
    RunFolder(path).check_unchanged(sha, "latent.autoencoder")
    run = _load(path, device, "latent.autoencoder")
    return OpenAutoencoder(path, run.model, sha, info["latent"]["autoencoder"])


def encode_training_set(autoencoder: OpenAutoencoder, folder: RunFolder, info: dict, images: np.ndarray) -> np.ndarray:
    """A new latent run's training set in latent space, encoded once and kept in the run folder
    (whose description then records the latent's shape, its x0 clipping box and the autoencoder)."""
    z = encode_images(autoencoder.model, images).astype(np.float32)
    folder.record_latents(
        info, z, autoencoder=autoencoder.recorded_as, sha256=autoencoder.sha256, image_shape=images.shape[1:],
        latent_scale=float(autoencoder.model.latent_scale),
    )  # fmt: skip
    return z
