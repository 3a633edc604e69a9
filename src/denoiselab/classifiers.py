"""A run's noise-conditional classifier: its settings, its loss, its files, loading it for guidance.

``denoiselab train-classifier RUN`` (classifier_training.py) trains p(y | x_t, t) on the run's
own training data and labels, noised by the run's own schedule, into the run folder:

    classifier.json                  settings, status, step, accuracy by noise level
    classifier.safetensors           the weights used for guidance
    classifier-checkpoint.safetensors  what resuming needs (the training loop's checkpoint)

The loss is the cross-entropy of the label at x_t = alpha(t) x_0 + sigma(t) eps with t drawn as
the denoiser's training draws it (Dhariwal & Nichol 2021, Sec. 4: "trained on noisy images").
Loading one (``load_classifier``) imports nothing of the training loop.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from .forward_process import q_sample_at
from .models.classifiers import ImageClassifier, PointClassifier
from .objectives import sample_times
from .schedules import Schedule

CLASSIFIER_INFO = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"
CLASSIFIER_CHECKPOINT = "classifier-checkpoint.safetensors"


class ClassifierError(ValueError):
    """No classifier, no labels to train one on, or a corrupt classifier file; names the file."""


@dataclass(frozen=True)
class ClassifierSettings:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    warmup_steps: int = 100
    hidden: int = 0  # 0: 128 for points, 32 for images
    blocks: int = 2  # points only
    checkpoint_every: int = 500
    seed: int = 0

    def width(self, is_image: bool) -> int:
        return self.hidden or (32 if is_image else 128)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def build_classifier(shape: tuple[int, ...], num_classes: int, settings: ClassifierSettings) -> torch.nn.Module:
    """A point classifier for shape (D,), an image classifier for (C, H, W)."""
    if len(shape) == 3:
        return ImageClassifier(shape[0], num_classes, hidden=settings.width(True))
    return PointClassifier(shape[0], num_classes, hidden=settings.width(False), blocks=settings.blocks)


@dataclass(frozen=True)
class ClassifierObjective:
    """Cross-entropy of the label at a noised sample: ``objective(model, x0, generator, y,
    time_sampler=None) -> loss``, the shape training._optimiser_step calls (times are uniform:
    the classifier has no importance sampler, so ``time_sampler`` is always None here)."""

    schedule: Schedule

    def __call__(self, model, x0: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None, time_sampler=None) -> torch.Tensor:
        t = sample_times(self.schedule, x0.shape[0], generator)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = q_sample_at(self.schedule, x0, t, eps).to(x0.dtype)
        return torch.nn.functional.cross_entropy(model(x_t, t.to(x0.device).float()), y)


def has_classifier(run_dir: str | Path) -> bool:
    return (Path(run_dir) / CLASSIFIER_WEIGHTS).is_file() and (Path(run_dir) / CLASSIFIER_INFO).is_file()


def read_classifier_info(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CLASSIFIER_INFO
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{path}: cannot read the classifier's description ({exc})") from None


def load_classifier(run):
    """The run's classifier as ``classifier_fn(x_t, t) -> logits (B, C)``, on the run's device."""
    if not has_classifier(run.path):
        raise ClassifierError(f"{run.path}: has no classifier ({CLASSIFIER_WEIGHTS}); train one with: denoiselab train-classifier {run.path}")
    info = read_classifier_info(run.path)
    model = build_classifier(run.sample_shape, run.num_classes, ClassifierSettings.from_dict(info.get("settings", {})))
    try:
        model.load_state_dict(load_file(str(Path(run.path) / CLASSIFIER_WEIGHTS)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise ClassifierError(f"{Path(run.path) / CLASSIFIER_WEIGHTS}: cannot load ({type(exc).__name__}: {exc})") from None
    model = model.to(run.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # guidance differentiates with respect to x_t only

    def classifier_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x_t.float(), t.float()).to(x_t.dtype)

    return classifier_fn
