"""Training a latent diffusion run (Rombach et al. 2022): the autoencoder first (stage one), then
the denoiser on the latents of the training images, both by the one training loop.

A latent run folder holds what a pixel run holds (data.npy are the training *images*, for the
metrics and figures) plus latents.npy, the training set encoded once with the autoencoder's
posterior mean and latent scale, which is what the loop trains on.  run.json's "latent" records
the autoencoder's folder and the sha256 of its weights file; a run whose autoencoder has changed
since is refused (its latents would mean something else).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import files
from .config import Config, ConfigError
from .latent import STAGE_ONE_FOLDER, TRAIN_FIRST, autoencoder_path, encode_images, file_sha256, is_latent
from .models import AUTOENCODER, POINT_ARCHITECTURES
from .models.autoencoder import Autoencoder

LATENTS = "latents.npy"

__all__ = ["LATENTS", "is_latent", "latents", "open_autoencoder", "recorded_autoencoder", "stage_one_config", "train_stages"]


@dataclass
class OpenAutoencoder:
    path: Path
    model: Autoencoder
    sha256: str
    recorded_as: str  # the path run.json keeps: relative to the run folder for stage one


def stage_one_names(cfg: Config) -> tuple[str, ...]:
    """What may already be in a new run's folder: the autoencoder trained as stage one."""
    return (STAGE_ONE_FOLDER,) if cfg.latent.autoencoder == TRAIN_FIRST else ()


def _load(path: Path, device: torch.device, key: str):
    from .runs.folder import RunError, load_run

    try:
        run = load_run(path, device=str(device))
    except RunError as exc:
        raise ConfigError(f"{key}: {' '.join(str(exc).split())}") from None
    if run.config.model.arch != AUTOENCODER:
        raise ConfigError(f"{key}: {path} is a {run.config.model.arch} run, not an autoencoder (model.arch = autoencoder)")
    if run.info.get("status") != "complete":
        raise ConfigError(f"{key}: the autoencoder {path} is {run.info.get('status')} (its latent scale is measured when it completes); finish it with: denoiselab train --resume {path}")
    return run


def _check_denoiser(cfg: Config, latent_shape: tuple[int, ...]) -> None:
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
    defaults = type(cfg.autoencoder)()
    for key in ARCHITECTURE_KEYS:
        ours, stated = getattr(cfg.autoencoder, key), getattr(theirs.autoencoder, key)
        if ours != stated and ours != getattr(defaults, key):
            raise ConfigError(f"autoencoder.{key}: the autoencoder {path} has {key} = {stated!r}, this recipe {ours!r}; drop the key or match it")


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
    if cfg.latent.autoencoder != TRAIN_FIRST:
        _check_same_keys(cfg, run.config, path)
    _check_denoiser(cfg, run.model.latent_shape)
    recorded = STAGE_ONE_FOLDER if cfg.latent.autoencoder == TRAIN_FIRST else str(path.resolve())
    return OpenAutoencoder(path, run.model, file_sha256(path / "model.safetensors"), recorded)


def resolve_recorded(run_dir: Path, info: dict) -> tuple[Path, str]:
    """(folder, sha256) of the autoencoder a latent run's run.json records."""
    record = info["latent"]
    path = Path(record["autoencoder"])
    return (path if path.is_absolute() else Path(run_dir) / path), record["sha256"]


def check_unchanged(path: Path, sha256: str, key: str) -> None:
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"{key}: the autoencoder {path} is missing (no {weights.name}); this run cannot decode without it")
    if file_sha256(weights) != sha256:
        raise ConfigError(f"{key}: the autoencoder {path} has changed since this run was trained on it (sha256 {sha256[:12]}...); retrain the run or restore the autoencoder")


def recorded_autoencoder(cfg: Config, run_dir: Path, info: dict, device: torch.device) -> OpenAutoencoder | None:
    """A resumed latent run's autoencoder: the one its run.json records, unchanged."""
    if "latent" not in info:
        return None
    path, sha = resolve_recorded(run_dir, info)
    check_unchanged(path, sha, "latent.autoencoder")
    run = _load(path, device, "latent.autoencoder")
    return OpenAutoencoder(path, run.model, sha, info["latent"]["autoencoder"])


def latents(autoencoder: OpenAutoencoder, run_dir: Path, info: dict, images: np.ndarray, *, new: bool) -> np.ndarray:
    """The training set in latent space: encoded now and kept in latents.npy (a new run; run.json
    then describes the latent: its shape, the x0 clipping box, the autoencoder), or read back
    (a resumed one, so resuming does not depend on encoding again)."""
    from .runs.folder import write_run_info

    if not new:
        return np.load(run_dir / LATENTS, allow_pickle=False)
    z = encode_images(autoencoder.model, images).astype(np.float32)
    files.write_array(run_dir / LATENTS, z)
    info.update(
        dim=int(z.shape[1]),
        shape=[int(v) for v in z.shape[1:]],
        # sample.clip_x0 in latent space: 10% beyond the largest |latent| of the training set.
        x0_bound=float(1.1 * np.abs(z).max()),
        latent={
            "autoencoder": autoencoder.recorded_as,
            "sha256": autoencoder.sha256,
            "image_shape": [int(v) for v in images.shape[1:]],
            "latent_scale": float(autoencoder.model.latent_scale),
        },
    )
    write_run_info(run_dir, info)
    return z


def stage_one_config(cfg: Config) -> Config:
    """The autoencoder's recipe of a latent run that trains it first: the same data, the
    [autoencoder] section, its steps and learning rate; the other [train] keys as the run's."""
    ae = dataclasses.replace(cfg, name=f"{cfg.name}-autoencoder")
    ae.model = dataclasses.replace(cfg.model, arch=AUTOENCODER)
    ae.train = dataclasses.replace(cfg.train, steps=cfg.autoencoder.steps, lr=cfg.autoencoder.lr, warmup_steps=min(cfg.train.warmup_steps, cfg.autoencoder.steps))
    ae.latent = dataclasses.replace(cfg.latent, autoencoder="")
    ae.autoencoder = dataclasses.replace(cfg.autoencoder)
    return ae


def train_stages(cfg: Config, run_dir: Path, *, resume: bool = False, progress: bool = True, log=print, **kwargs):
    """``training.train``, preceded for latent.autoencoder = "train" by stage one: the
    autoencoder trained (or resumed, or reused when complete) into RUN/autoencoder and completed
    (latent scale, metrics, figures).  The same command started again continues where it stopped."""
    from .config import dump_config
    from .runs.evaluation import complete_run
    from .training import check_new_run_folder, train

    run_dir = Path(run_dir)
    if cfg.latent.autoencoder == TRAIN_FIRST and not resume:
        check_new_run_folder(run_dir, stage_one_names(cfg))
        # Before stage one: the denoiser must take the kind of latent it will produce.
        _check_denoiser(cfg, () if cfg.autoencoder.latent == "spatial" else (cfg.autoencoder.dim,))
        ae_cfg, ae_dir = stage_one_config(cfg), run_dir / STAGE_ONE_FOLDER
        if (ae_dir / "config.toml").is_file():
            if (ae_dir / "config.toml").read_text() != dump_config(ae_cfg):
                raise ConfigError(f"latent.autoencoder: {ae_dir} holds an autoencoder of another recipe; choose another --out")
            status = _status(ae_dir)
            if status != "complete":
                log(f"stage one: resuming the autoencoder in {ae_dir}")
                train(ae_cfg, ae_dir, resume=True, progress=progress, log=log, **kwargs)
                complete_run(ae_dir, log=log)
        else:
            log(f"stage one: training the autoencoder into {ae_dir}")
            train(ae_cfg, ae_dir, progress=progress, log=log, **kwargs)
            complete_run(ae_dir, log=log)
        log(f"stage two: the denoiser in the autoencoder's latent space, into {run_dir}")
    return train(cfg, run_dir, resume=resume, progress=progress, log=log, **kwargs)


def _status(run_dir: Path) -> str | None:
    import json

    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None
