"""Training a run's noise-conditional classifier with the denoiser's own training machinery.

The optimiser step, learning-rate schedule, state (model, optimiser, RNG, losses), checkpoint
format and run-folder lock are training.py's, so resuming is bit-exact in the same way: only the
model (models/classifiers.py), the loss (classifiers.ClassifierObjective) and the file names
(classifiers.CLASSIFIER_*) differ.  No EMA and no label dropout: the classifier is used as trained.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import files
from .builders import schedule_from
from .classifiers import (
    CLASSIFIER_CHECKPOINT,
    CLASSIFIER_INFO,
    CLASSIFIER_WEIGHTS,
    ClassifierError,
    ClassifierObjective,
    ClassifierSettings,
    build_classifier,
    read_classifier_info,
)
from .config import Config, config_from_run_file
from .training import TrainingInterrupted, TrainState, _init_state, _optimiser_step, _read_run_folder, _set_up_compute, load_checkpoint, save_checkpoint

# Noise levels at which the finished classifier's accuracy on its training data is reported.
REPORT_TIMES = (0.1, 0.3, 0.5, 0.7, 0.9)


def loop_config(run_config: Config, settings: ClassifierSettings, threads: int = 0) -> Config:
    """The run's recipe with its [train] section set for the classifier (what _optimiser_step reads)."""
    train = dataclasses.replace(
        run_config.train, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr, warmup_steps=settings.warmup_steps,
        checkpoint_every=settings.checkpoint_every, seed=settings.seed, label_dropout=0.0, ema_decay=0.0, threads=threads,
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
    takes the settings stored in classifier.json, with ``settings.steps`` if given larger."""
    run_dir = Path(run_dir)
    run = _read_run_folder(run_dir)
    if run.labels is None:
        raise ClassifierError(
            f"{run_dir}: has no class labels (labels.npy) to train a classifier on; train the run on labelled data "
            "(data.classes, data.labels or an image set), with train.label_dropout = 1 for an unconditional model"
        )
    if resume:
        stored = ClassifierSettings.from_dict(read_classifier_info(run_dir).get("settings", {}))
        settings = dataclasses.replace(stored, steps=max(stored.steps, settings.steps)) if settings is not None else stored
    settings = settings or ClassifierSettings()
    cfg = loop_config(config_from_run_file(run_dir / "config.toml"), settings, threads)
    device = _set_up_compute(cfg, log)
    schedule = schedule_from(cfg)
    shape = tuple(int(v) for v in run.info.get("shape", [run.info["dim"]]))
    num_classes = int(run.info["num_classes"])
    x_all = torch.as_tensor(run.normalization.encode(run.data), dtype=torch.float32, device=device)
    y_all = torch.as_tensor(run.labels, dtype=torch.long, device=device)
    objective = ClassifierObjective(schedule)

    lock = files.lock_run(run_dir)
    try:
        state = _init_state(cfg, shape[0], device, build_model=lambda: build_classifier(shape, num_classes, settings))
        info = {"settings": dataclasses.asdict(settings), "status": "training", "step": 0, "num_classes": num_classes}
        if resume:
            if not (run_dir / CLASSIFIER_CHECKPOINT).is_file():
                raise ClassifierError(f"{run_dir / CLASSIFIER_CHECKPOINT}: no classifier checkpoint to resume")
            load_checkpoint(run_dir, state, CLASSIFIER_CHECKPOINT)
            log(f"resuming the classifier of {run_dir} at step {state.step} of {settings.steps}")
        state.model.train()
        t_start = time.perf_counter()

        def checkpoint(status: str) -> None:
            save_checkpoint(run_dir, state, CLASSIFIER_CHECKPOINT, CLASSIFIER_WEIGHTS)
            files.write_json(run_dir / CLASSIFIER_INFO, {**info, "status": status, "step": state.step})

        bar = tqdm(total=settings.steps, initial=state.step, disable=not progress, unit="step", desc="classifier")
        try:
            while state.step < settings.steps:
                loss, _ = _optimiser_step(cfg, state, objective, x_all, y_all)
                bar.update(1)
                if state.step % 50 == 0:
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if state.step % settings.checkpoint_every == 0 and state.step < settings.steps:
                    checkpoint("training")
                if stop_at is not None and state.step >= stop_at and state.step < settings.steps:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            checkpoint("interrupted")
            raise TrainingInterrupted(run_dir, state.step) from None
        bar.close()
        state.model.eval()
        info["accuracy_by_t"] = accuracy_by_noise(state.model, schedule, x_all[:4096], y_all[:4096])
        checkpoint("trained")
        recent = float(np.mean(state.losses[-100:])) if state.losses else float("nan")
        accuracy = ", ".join(f"t={t}: {a:.0%}" for t, a in info["accuracy_by_t"].items())
        log(f"classifier trained {state.step} steps in {time.perf_counter() - t_start:.1f} s, loss {recent:.3f}; training accuracy {accuracy}")
        return state
    finally:
        lock.close()
