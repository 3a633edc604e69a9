"""A run's noise-conditional classifier: its settings, its network and its loss.

``denoiselab train-classifier RUN`` (training/classifier.py) trains p(y | x_t, t) on the run's
own training data and labels, noised by the run's own schedule, into the run folder (its
description, the weights used for guidance and a resumable checkpoint: RunFolder's
CLASSIFIER_* files).  Loading it for guidance (runs/classifier.py) imports nothing of the
training loop.

The loss is the cross-entropy of the label at x_t = alpha(t) x_0 + sigma(t) eps with t drawn as
the denoiser's training draws it (Dhariwal & Nichol 2021, Sec. 4: "trained on noisy images").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .forward_process import q_sample_at
from .models.classifiers import ImageClassifier, PointClassifier
from .objectives import sample_times
from .schedules import Schedule

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
    time_sampler=None) -> loss``, the shape training.optimiser_step calls (times are uniform:
    the classifier has no importance sampler, so ``time_sampler`` is always None here)."""

    schedule: Schedule

    def __call__(self, model, x0: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None, time_sampler=None) -> torch.Tensor:
        t = sample_times(self.schedule, x0.shape[0], generator)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = q_sample_at(self.schedule, x0, t, eps).to(x0.dtype)
        return torch.nn.functional.cross_entropy(model(x_t, t.to(x0.device).float()), y)
