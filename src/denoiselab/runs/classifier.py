"""A run's noise-conditional classifier loaded for classifier guidance (its files: RunFolder; its
network and settings: classifiers.py; training it: training/classifier.py)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from ..classifiers import ClassifierError, ClassifierSettings, build_classifier
from .folder import CLASSIFIER_WEIGHTS, RunFolder
from .load import Run


def read_classifier_info(run_dir) -> dict:
    """The classifier's description (settings, status, step, accuracy by noise level)."""
    folder = RunFolder(run_dir)
    try:
        return folder.read_classifier_info()
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{folder.classifier_info_path}: cannot read the classifier's description ({exc})") from None


def load_classifier(run: Run):
    """The run's classifier as ``classifier_fn(x_t, t) -> logits (B, C)``, on the run's device."""
    folder = run.folder
    if not folder.has_classifier():
        raise ClassifierError(f"{run.path}: has no classifier ({CLASSIFIER_WEIGHTS}); train one with: denoiselab train-classifier {run.path}")
    info = read_classifier_info(run.path)
    model = build_classifier(run.sample_shape, run.num_classes, ClassifierSettings.from_dict(info.get("settings", {})))
    try:
        model.load_state_dict(load_file(str(folder.classifier_weights)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise ClassifierError(f"{folder.classifier_weights}: cannot load ({type(exc).__name__}: {exc})") from None
    model = model.to(run.device).eval()
    for p in model.parameters():
        p.requires_grad_(False)  # guidance differentiates with respect to x_t only

    def classifier_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x_t.float(), t.float()).to(x_t.dtype)

    return classifier_fn
