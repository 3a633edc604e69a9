"""Training a run's noise-conditional classifier by the one training loop.

The optimiser step, learning-rate schedule, state (model, optimiser, RNG, losses), checkpoint
format, stopping on SIGINT or SIGTERM and the run folder's lock are the denoiser's, so resuming is
bit-exact in the same way: only the model (models/classifiers.py), the loss
(classifiers.ClassifierObjective) and the files (RunFolder's CLASSIFIER_*) differ.  No EMA and no
label dropout: the classifier is used as trained.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..builders import schedule_from
from ..classifiers import ClassifierError, ClassifierObjective, ClassifierSettings, build_classifier
from ..config import Config
from ..runs.classifier import read_classifier_info
from ..runs.folder import LABELS, RunFolder, sample_shape
from .checkpoint import TrainState, init_state, load_checkpoint, save_checkpoint
from .compute import CLASSIFIER_THREADS_FLAG, set_up_compute
from .loop import StopSignals, fit
from .step import optimiser_step

# Noise levels at which the finished classifier's accuracy on its training data is reported.
REPORT_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


def loop_config(run_config: Config, settings: ClassifierSettings, threads: int = 0) -> Config:
    """The run's recipe with its [train] section set for the classifier (what optimiser_step reads)."""
    train = dataclasses.replace(
        run_config.train, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, warmup_steps=settings.warmup_steps,
        checkpoint_every=settings.checkpoint_every, seed=settings.seed, label_dropout=0.0, ema_decay=0.0, threads=threads, accumulate=1,
    )  # fmt: skip
    return dataclasses.replace(run_config, train=train)


@torch.no_grad()
def accuracy_by_noise(model, schedule, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> dict[str, float]:
    gen, out = torch.Generator().manual_seed(seed), {}
    for t in REPORT_TIMES:
        alpha, sigma = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        x_t = alpha * x + sigma * torch.randn(x.shape, generator=gen).to(x.device)
        pred = model(x_t, torch.full((len(x),), t, device=x.device)).argmax(-1)
        out[f"{t:g}"] = float((pred == y).float().mean())
    return out


def check_classifiable(folder: RunFolder) -> None:
    """ClassifierError (one line) unless the run is one a classifier can guide: a run that samples
    in data units and has class labels.  An autoencoder samples nothing, and a latent run samples
    its autoencoder's latents, which a classifier of the data cannot read (runs/guided.py refuses
    guiding it)."""
    try:
        info = folder.read_info()
    except (OSError, ValueError) as exc:
        raise ClassifierError(f"{folder.info_path}: cannot read the run's description ({exc})") from None
    if folder.read_config().model.arch == "autoencoder":
        raise ClassifierError(
            f"{folder.path}: is an autoencoder run, which samples nothing for a classifier to guide; train the classifier "
            "of a run that samples (a pixel image run such as digits, or a conditional point run)"
        )
    if "latent" in info:
        raise ClassifierError(
            f"{folder.path}: is a latent run, and gradient guidance is not available for latent runs (its sampler steps in "
            "the autoencoder's latent space, a classifier reads pixels); train the classifier of a pixel image run such as digits"
        )
    if not int(info.get("num_classes", 0)):
        raise ClassifierError(
            f"{folder.path}: has no class labels ({LABELS}) to train a classifier on; train the run on labelled data "
            "(data.classes, data.labels or an image set), with train.label_dropout = 1 for an unconditional model"
        )


def train_classifier(
    run_dir: str | Path,
    settings: ClassifierSettings | None = None,
    *,
    resume: bool = False,
    threads: int = 0,
    progress: bool = True,
    stop_at: int | None = None,
    log=print,
) -> TrainState:
    """Train (or with ``resume``, continue) the classifier of the run in ``run_dir``.  Resuming
    takes the settings stored with the classifier, with ``settings.steps`` if given larger.
    SIGINT and SIGTERM stop it at a step boundary, as they stop ``train`` (TrainingInterrupted)."""
    folder = RunFolder(run_dir)
    check_classifiable(folder)
    with StopSignals(folder.path, resume=f"denoiselab train-classifier {folder.path} --resume") as stop:
        state = _train(folder, settings, resume, threads, progress, stop_at, log, stop)
    stop.raise_if_stopped(state.step)
    return state


def _train(folder: RunFolder, settings, resume: bool, threads: int, progress: bool, stop_at, log, stop: StopSignals) -> TrainState:
    run = folder.read_run_data()
    if resume:
        stored = ClassifierSettings.from_dict(read_classifier_info(folder.path).get("settings", {}))
        settings = dataclasses.replace(stored, steps=max(stored.steps, settings.steps)) if settings is not None else stored
    settings = settings or ClassifierSettings()
    cfg = loop_config(folder.read_config(), settings, threads)
    compute = set_up_compute(cfg, log, CLASSIFIER_THREADS_FLAG)
    device = compute.device
    schedule = schedule_from(cfg)
    shape = sample_shape(run.info)
    num_classes = int(run.info["num_classes"])
    x_all = torch.as_tensor(run.normalization.encode(run.data), dtype=torch.float32, device=device)
    y_all = torch.as_tensor(run.labels, dtype=torch.long, device=device)
    objective = ClassifierObjective(schedule)

    with folder.lock():
        state = init_state(cfg, shape[0], device, build_model=lambda: build_classifier(shape, num_classes, settings))
        info = {"settings": dataclasses.asdict(settings), "status": "training", "step": 0, "num_classes": num_classes}
        if resume:
            if not folder.classifier_checkpoint.is_file():
                raise ClassifierError(f"{folder.classifier_checkpoint}: no classifier checkpoint to resume")
            load_checkpoint(state, folder.classifier_checkpoint)
            log(f"resuming the classifier of {folder.path} at step {state.step} of {settings.steps}")
        t_start = time.perf_counter()

        def save(status: str) -> None:
            save_checkpoint(state, folder.classifier_checkpoint, folder.classifier_weights)
            folder.write_classifier_info({**info, "status": status, "step": state.step})

        fit(
            state, lambda s: optimiser_step(cfg, s, objective, x_all, y_all), steps=settings.steps,
            checkpoint_every=settings.checkpoint_every, save=save, stop=stop, progress=progress, desc="classifier", stop_at=stop_at,
            after_step=compute.after_step,
        )  # fmt: skip
        state.model.eval()
        info["accuracy_by_t"] = accuracy_by_noise(state.model, schedule, x_all[:4096], y_all[:4096])
        save("trained")
        recent = float(np.mean(state.losses[-100:])) if state.losses else float("nan")
        accuracy = ", ".join(f"t={t}: {a:.0%}" for t, a in info["accuracy_by_t"].items())
        log(f"classifier trained {state.step} steps in {time.perf_counter() - t_start:.1f} s, loss {recent:.3f}; training accuracy {accuracy}")
        return state
