"""A run folder on disk: its files, loading it for use, its loss history.

A run folder is self-describing: config.toml (the resolved recipe), run.json (data
normalisation, sizes, classes, status), data.npy (the training points), labels.npy (their
classes, conditional runs only), held_out.npy (images) and model.safetensors are all that
``sample``, ``evaluate``, ``plot`` and the playground need; checkpoint.safetensors holds what
resuming training needs as well.  Loading a run builds its schedule and network from the
recipe (builders.py) and imports nothing of the training loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .. import files
from ..errors import InputError
from ..builders import model_from, pick_device, schedule_from
from ..config import Config, ConfigError, config_from_run_file
from ..data import Normalization
from ..schedules import Schedule

CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = files.WEIGHTS
LABELS = "labels.npy"
HELD_OUT, HELD_OUT_LABELS = "held_out.npy", "held_out_labels.npy"  # images only


class RunError(InputError):
    """A missing, incomplete or corrupt run folder; the message names the file."""


@dataclass
class Run:
    path: Path
    config: Config
    info: dict
    schedule: Schedule
    model: torch.nn.Module
    normalization: Normalization
    data: np.ndarray  # training points, data units
    device: torch.device
    labels: np.ndarray | None = None  # class of each training point (conditional runs)
    autoencoder: torch.nn.Module | None = None  # latent runs: decodes samples (runs/latent.py)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(D,) for points, (C, H, W) for images."""
        return tuple(int(v) for v in self.info.get("shape", [self.dim]))

    @property
    def is_latent(self) -> bool:
        """Diffusion in an autoencoder's latent space: the model samples latents, decoded to images."""
        return "latent" in self.info

    @property
    def is_autoencoder(self) -> bool:
        return self.config.model.arch == "autoencoder"

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one sample in data units: a latent run's decoded image, else sample_shape."""
        return tuple(self.info["latent"]["image_shape"]) if self.is_latent else self.sample_shape

    @property
    def is_image(self) -> bool:
        return len(self.data_shape) == 3

    def to_data_units(self, x: torch.Tensor) -> np.ndarray:
        """Model-space samples -> data units: decoded by the autoencoder (a latent run), else
        un-normalised."""
        if self.autoencoder is not None:
            from ..latent import decode_latents

            return decode_latents(self.autoencoder, x.float())
        return self.normalization.decode(x.float().cpu().numpy())

    @property
    def num_classes(self) -> int:
        return int(self.info.get("num_classes", 0))

    @property
    def class_names(self) -> list[str]:
        names = self.info.get("class_names") or []
        return [str(n) for n in names] if len(names) == self.num_classes else [str(i) for i in range(self.num_classes)]

    @property
    def class_weights(self) -> np.ndarray:
        """Share of each class in the training set: the mix drawn when no label is asked for."""
        return np.bincount(self.labels, minlength=self.num_classes) / len(self.labels)

    def model_fn(self):
        """The network as a model function (x_t, t, y=None) -> prediction."""
        model = self.model
        return lambda x, t, y=None: model(x, t, y)


def load_run(path: str | Path, device: str | None = None) -> Run:
    path = Path(path)
    problem = files.run_folder_problem(path)
    if problem is not None:
        raise RunError(problem)
    try:
        info = json.loads((path / "run.json").read_text())
        norm = Normalization.from_dict(info["normalization"])
        dim = int(info["dim"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path / 'run.json'}: corrupt run description ({exc})") from None
    try:
        cfg = config_from_run_file(path / "config.toml")
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    dev = pick_device(device or cfg.train.device)
    shape = tuple(int(v) for v in info.get("shape", [dim]))
    model = model_from(cfg, dim, int(info.get("num_classes", 0)), shape)
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise RunError(f"{path / WEIGHTS}: cannot load weights ({type(exc).__name__}: {exc})") from None
    try:
        data = np.load(path / "data.npy", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"{path / 'data.npy'}: cannot read ({exc})") from None
    labels = None
    if int(info.get("num_classes", 0)):
        try:
            labels = np.load(path / LABELS, allow_pickle=False).astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise RunError(f"{path / LABELS}: cannot read the class labels of a conditional run ({exc})") from None
        if labels.shape != (len(data),):
            raise RunError(f"{path / LABELS}: {labels.shape} labels for {len(data)} points")
    run = Run(path, cfg, info, schedule_from(cfg), model.to(dev).eval(), norm, data, dev, labels)
    if run.is_latent:
        from .latent import attach_autoencoder

        attach_autoencoder(run)
    return run


def write_run_info(run_dir: Path, info: dict) -> None:
    files.write_json(run_dir / "run.json", info)


def read_losses(run_dir: str | Path, max_points: int | None = None) -> np.ndarray:
    """The loss of every training step, from the run's checkpoint (empty when there is none or
    it cannot be read, e.g. while being replaced); thinned to ``max_points`` bin means."""
    from safetensors import safe_open

    path = Path(run_dir) / CHECKPOINT
    try:
        with safe_open(str(path), framework="pt") as fh:
            losses = fh.get_tensor("losses").numpy()
    except Exception:  # noqa: BLE001 - missing, being written, or corrupt: no curve
        return np.zeros(0)
    if max_points is not None and len(losses) > max_points:
        edges = np.linspace(0, len(losses), max_points + 1).astype(int)
        losses = np.add.reduceat(losses, edges[:-1]) / np.diff(edges)
    return losses
