"""A run loaded for use: its recipe, schedule, network and training data (``load_run`` -> ``Run``).

Loading builds the schedule and network from the stored recipe (builders.py) and imports nothing
of the training loop.  A latent run gets its autoencoder too: the folder its description records,
whose weights must still have the recorded content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ..builders import model_from, pick_device, schedule_from, text_model_from
from ..config import Config, ConfigError
from ..data import Normalization
from ..schedules import Schedule
from .folder import INFO, LABELS, RunError, RunFolder, data_shape, normalization_of, sample_shape


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
    autoencoder: torch.nn.Module | None = None  # latent runs: decodes samples

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(D,) for points, (C, H, W) for images."""
        return sample_shape(self.info)

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
        return data_shape(self.info)

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

    @property
    def is_text(self) -> bool:
        """A text-to-image run: its condition is a caption's token ids (models/text_unet.py)."""
        return "text" in self.info

    def tokenizer(self):
        """A text-to-image run's tokenizer (text.Tokenizer), from its text encoder's folder."""
        from ..text import Tokenizer

        stage = self.folder.text_stage()
        try:
            return Tokenizer.from_dict(stage.read_tokenizer())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{stage.tokenizer_path}: cannot read the run's tokenizer ({exc})") from None

    def model_fn(self):
        """The network as a model function (x_t, t, y=None) -> prediction."""
        model = self.model
        return lambda x, t, y=None: model(x, t, y)


def load_run(path: str | Path, device: str | None = None) -> Run:
    folder = RunFolder(path)
    path = folder.path
    problem = folder.problem()
    if problem is not None:
        raise RunError(problem)
    try:
        info = folder.read_info()
        norm = normalization_of(info)
        dim = int(info["dim"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path / INFO}: corrupt run description ({exc})") from None
    try:
        cfg = folder.read_config()
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    dev = pick_device(device or cfg.train.device)
    if "text" in info:  # a text-to-image run: its U-Net with cross-attention and text encoder
        try:
            model = text_model_from(cfg, sample_shape(info)[0], int(info["text"]["vocab_size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"{path / INFO}: corrupt text record ({exc})") from None
    else:
        model = model_from(cfg, dim, int(info.get("num_classes", 0)), sample_shape(info))
    try:
        model.load_state_dict(load_file(str(folder.weights)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise RunError(f"{folder.weights}: cannot load weights ({type(exc).__name__}: {exc})") from None
    try:
        data = folder.read_data()
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"{folder.data_path}: cannot read ({exc})") from None
    labels = None
    if int(info.get("num_classes", 0)):
        try:
            labels = folder.read_labels().astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise RunError(f"{path / LABELS}: cannot read the class labels of a conditional run ({exc})") from None
        if labels.shape != (len(data),):
            raise RunError(f"{path / LABELS}: {labels.shape} labels for {len(data)} points")
    run = Run(path, cfg, info, schedule_from(cfg), model.to(dev).eval(), norm, data, dev, labels)
    if run.is_latent:
        attach_autoencoder(run)
    return run


def attach_autoencoder(run: Run) -> None:
    """Give a latent run its autoencoder: the folder its description records, whose weights must
    still have the recorded sha256.  Raises RunError (one line) when it is missing or has changed."""
    try:
        path, sha = run.folder.resolve_recorded(run.info)
        RunFolder(path).check_unchanged(sha, f"{run.path}")
        ae = load_run(path, device=str(run.device))
    except (KeyError, TypeError) as exc:
        raise RunError(f"{run.path / INFO}: corrupt latent record ({exc})") from None
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    if not ae.is_autoencoder:
        raise RunError(f"{run.path}: {path} is not an autoencoder run")
    run.autoencoder = ae.model
