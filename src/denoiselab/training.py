"""One training loop for every denoiser: batches by tensor indexing, AdamW with warm-up and
cosine decay, EMA weights, atomic resumable checkpoints.

A run folder (runs/folder.py) holds config.toml, run.json, data.npy (with labels.npy for a conditional
run, held_out.npy for images), checkpoint.safetensors (model, EMA, optimiser, RNG and loss
history in one file, so they can never disagree) and model.safetensors (the weights used for
sampling).  Resuming restores all of it, so an
interrupted run ends with bit-identical weights to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from . import files, latent_training
from .builders import model_from, objective_from, pick_device, schedule_from
from .config import Config, ConfigError, dump_config
from .data import Normalization, make_source
from .data.images import is_image_data, load_image_data, split_indices
from .ema import EMA
from .errors import InputError
from .guidance import drop_labels
from .importance import ImportanceSampler
from .latent import ReconstructionObjective
from .models import IMAGE_ARCHITECTURES, POINT_ARCHITECTURES
from .runs.folder import (
    CHECKPOINT,
    HELD_OUT,
    HELD_OUT_LABELS,
    LABELS,
    WEIGHTS,
    write_run_info,
)
from .schedules import TERMINAL_SNR_WARN_DB


class CheckpointError(InputError):
    """A missing, corrupt or mismatched checkpoint; the message names the file."""


class RunFolderError(InputError):
    """A new run was asked for in a folder that already holds something."""


class TrainingInterrupted(Exception):
    def __init__(self, run_dir: Path, step: int, signum: int = signal.SIGINT):
        super().__init__(f"interrupted at step {step}; resume with: denoiselab train --resume {run_dir}")
        self.run_dir, self.step, self.signum = run_dir, step, signum


class _StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM, while training, only ask the loop to stop: the loop looks
    between optimiser steps, so a checkpoint never holds half a step.  (Python's own Ctrl-C
    raises KeyboardInterrupt wherever the loop is, e.g. after the step's batch was drawn: the
    checkpoint then held the generator past that draw but the step count before it, and the
    resumed run skipped a draw.)  A signal during a checkpoint write lets the write finish.
    Outside the main thread no handler can be set, and the signals keep Python's behaviour."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass
class TrainingData:
    """What a run trains on: points (N, D) in data units or images (N, C, H, W) in [-1, 1]."""

    name: str
    train: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    normalization: Normalization
    held_out: np.ndarray | None = None  # images: the held-out split, for metrics
    held_out_labels: np.ndarray | None = None

    @property
    def is_image(self) -> bool:
        return self.train.ndim == 4


def load_training_data(cfg: Config) -> TrainingData:
    """The recipe's data: built-in point sets (one per class with data.classes), point files,
    or image sets split into training and held-out parts (data/images.py)."""
    d = cfg.data
    if not d.classes and is_image_data(d.name):
        if cfg.model.arch not in IMAGE_ARCHITECTURES and not latent_training.is_latent(cfg):  # a latent run's network takes latents
            raise ConfigError(f"model.arch: {d.name!r} is image data; use one of {', '.join(IMAGE_ARCHITECTURES)}")
        images = load_image_data(d.name, upscale=d.upscale, size=d.size or None, n=d.n, seed=d.seed, channels=d.channels)
        train_idx, held_idx = split_indices(len(images.images), images.labels, d.held_out, d.seed)
        x = images.images.numpy().astype(np.float32)
        y = None if images.labels is None else images.labels.numpy().astype(np.int64)
        names = tuple(images.class_names or ()) if y is not None else ()
        return TrainingData(
            d.name, x[train_idx], None if y is None else y[train_idx], names, Normalization(np.zeros(1), 1.0),
            x[held_idx], None if y is None else y[held_idx],
        )  # fmt: skip
    if cfg.model.arch in IMAGE_ARCHITECTURES:
        raise ConfigError(f"model.arch: {cfg.model.arch} is for images, but {d.name!r} is point data; use residual-mlp")
    source = make_source(d.name, d.n, d.seed, classes=d.classes, labels=d.labels)
    norm = Normalization.fit(source.train) if d.normalize else Normalization.identity(source.dim)
    return TrainingData(source.name, source.train, source.labels, source.class_names, norm)


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up to lr over warmup_steps, then constant or cosine decay to 0 at the last step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.lr_schedule == "constant":
        return t.lr
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainState:
    model: torch.nn.Module
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int
    losses: list[float]
    time_sampler: ImportanceSampler | None = None  # train.timesteps = "importance": its loss history

    def sampling_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model


def _init_state(
    cfg: Config, dim: int, device: torch.device, num_classes: int = 0, shape: tuple[int, ...] | None = None, build_model=None
) -> TrainState:
    """``shape`` is one training example's shape (the autoencoder and a latent run's denoiser need
    it); ``build_model()`` replaces the recipe's denoiser (a noise-conditional classifier trains
    with this same state; classifier_training.py)."""
    torch.manual_seed(cfg.train.seed)
    model = (build_model() if build_model is not None else model_from(cfg, dim, num_classes, shape)).to(device)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    opt_cls = torch.optim.AdamW if cfg.train.optimizer == "adamw" else torch.optim.Adam
    # fused: one kernel for all parameters, about 3x faster than the per-tensor loop on a CPU,
    # which is a sixth of a small point model's step.
    optimizer = opt_cls(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    return TrainState(model, ema, optimizer, generator, 0, [])


def save_checkpoint(run_dir: Path, state: TrainState, checkpoint: str = CHECKPOINT, weights: str = WEIGHTS) -> None:
    tensors = {f"model.{k}": v for k, v in state.model.state_dict().items()}
    if state.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in state.ema.model.state_dict().items()})
    opt = state.optimizer.state_dict()
    for idx, pstate in opt["state"].items():
        for name, value in pstate.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value)
    tensors["rng"] = state.generator.get_state()
    tensors["losses"] = torch.tensor(state.losses, dtype=torch.float64)
    if state.time_sampler is not None:
        tensors.update({f"importance.{k}": v for k, v in state.time_sampler.state_dict().items()})
    meta = {
        "step": str(state.step),
        "ema_updates": str(state.ema.updates if state.ema is not None else 0),
        "param_groups": json.dumps(opt["param_groups"]),
    }
    files.write_tensors(run_dir / checkpoint, tensors, meta)
    files.write_tensors(run_dir / weights, state.sampling_model().state_dict(), {"step": str(state.step)})


def load_checkpoint(run_dir: Path, state: TrainState, checkpoint: str = CHECKPOINT) -> None:
    path = run_dir / checkpoint
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - any failure means a corrupt checkpoint
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc})") from None
    try:
        _restore(state, tensors, meta or {})
    except Exception as exc:  # noqa: BLE001 - missing keys, wrong shapes (e.g. --set model.hidden on resume)
        detail = " ".join(str(exc).split())[:300]  # load_state_dict lists every mismatch, one per line
        raise CheckpointError(f"{path}: does not match this run's model and optimiser ({type(exc).__name__}: {detail})") from None


def _restore(state: TrainState, tensors: dict, meta: dict) -> None:
    device = next(state.model.parameters()).device

    def section(prefix):
        return {k[len(prefix) :]: v.to(device) for k, v in tensors.items() if k.startswith(prefix)}

    state.model.load_state_dict(section("model."))
    if state.ema is not None:
        state.ema.model.load_state_dict(section("ema."))
        state.ema.updates = int(meta["ema_updates"])
    opt_state: dict = {}
    for key, value in section("optim.").items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value.cpu() if name == "step" else value
    state.optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    state.generator.set_state(tensors["rng"])
    state.step = int(meta["step"])
    state.losses = tensors["losses"].tolist()
    if state.time_sampler is not None:
        state.time_sampler.load_state_dict({k[len("importance.") :]: v for k, v in tensors.items() if k.startswith("importance.")})


def check_new_run_folder(run_dir: Path, allow: tuple[str, ...] = ()) -> None:
    """A new run goes into a missing or empty folder, never over something already there (but
    the names in ``allow``: a latent run's stage-one autoencoder)."""
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name not in allow for p in run_dir.iterdir())):
        raise RunFolderError(f"{run_dir}: folder exists and is not empty; choose another, or resume it")


def _busy_cores(window_s: float = 0.1) -> float | None:
    """Cores kept busy by other programs right now (from /proc/stat over ``window_s``, while
    this process sleeps); None where /proc/stat is not available."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # all time (without guest), idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(window_s)
        total1, idle1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def _warn_if_cores_busy(log) -> None:
    """Torch's threads (one per core) wait on each other when another program holds a core: the
    digits U-Net then trains many times slower.  An image network keeps torch's thread count
    (auto_threads; changing it with the load would change the last bits of the weights), but
    the user is told."""
    busy, cores, threads = _busy_cores(), os.cpu_count() or 1, torch.get_num_threads()
    if busy is not None and threads > 1 and cores - busy < threads - 0.5:
        log(
            f"note: other programs keep {busy:.1f} of {cores} cores busy; torch's {threads} threads then slow "
            "each other down badly, and --set train.threads=1 is several times faster"
        )


def _optimiser_step(cfg: Config, state: TrainState, objective, x_all: torch.Tensor, y_all: torch.Tensor | None) -> tuple[float, float]:
    """One step of the loop: a batch, its loss, the update, the EMA; returns (loss, learning rate)."""
    lr = learning_rate(cfg, state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    idx = torch.randint(0, x_all.shape[0], (cfg.train.batch_size,), generator=state.generator).to(x_all.device)
    y = None
    if y_all is not None:
        # Classifier-free guidance needs the unconditional model too: the same network learns
        # it from the points whose label is dropped.
        y = drop_labels(y_all[idx], cfg.train.label_dropout, state.generator)
    loss = objective(state.model, x_all[idx], state.generator, y=y, time_sampler=state.time_sampler)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.train.grad_clip)
    state.optimizer.step()
    if state.ema is not None:
        state.ema.update(state.model)
    state.step += 1
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} at step {state.step}; lower train.lr")
    state.losses.append(value)
    return value, lr


@dataclass
class RunData:
    """What the loop trains on, as stored in the run folder."""

    info: dict  # run.json
    data: np.ndarray
    labels: np.ndarray | None
    normalization: Normalization


def auto_threads(cfg: Config) -> int | None:
    """Torch threads for ``train.threads = 0`` on a CPU: one for a point network, None (torch's
    default, one per core) for an image network.

    A point MLP's kernels are too small to share out: two threads train the default spiral at
    most 1.3x faster than one on an idle 2-core machine, and several times slower when another
    program keeps a core busy (the threads wait on each other), while one thread keeps its own
    core (benchmarks/busy_machine.py).  The count is fixed per model kind, not
    read from the load, because it changes the last bits of the weights: a seeded run gives
    the same weights every time on the same machine."""
    return 1 if cfg.model.arch in POINT_ARCHITECTURES else None


def _set_up_compute(cfg: Config, log) -> torch.device:
    device = pick_device(cfg.train.device)
    threads = cfg.train.threads or (auto_threads(cfg) if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    elif device.type == "cpu":
        _warn_if_cores_busy(log)
    return device


def _describe_schedule(schedule, objective, log) -> None:
    if isinstance(objective, ReconstructionObjective):  # an autoencoder: no noise at all
        log(objective.describe)
        return
    snr_T = schedule.terminal_snr_db()
    log(f"schedule: {schedule.name}, T={schedule.T}, terminal SNR {snr_T:.1f} dB; {objective.describe}")
    if schedule.is_chain and snr_T > TERMINAL_SNR_WARN_DB:
        log(
            f"warning: the chain ends at {snr_T:.1f} dB SNR (above {TERMINAL_SNR_WARN_DB:.0f} dB): x_T still "
            "holds data, so sampling from pure noise will be off; raise T, beta_end or set schedule.scale_with_T = true"
        )


def _read_run_folder(run_dir: Path) -> RunData:
    """An interrupted (or API-trained) run's data, to resume it."""
    info = json.loads((run_dir / "run.json").read_text())
    data = np.load(run_dir / "data.npy")
    labels = np.load(run_dir / LABELS) if int(info.get("num_classes", 0)) else None
    return RunData(info, data, labels, Normalization.from_dict(info["normalization"]))


def _write_run_folder(cfg: Config, run_dir: Path, source: TrainingData) -> RunData:
    """A new run's data, recipe and description (run.json), written before the first step."""
    data, labels, norm = source.train, source.labels, source.normalization
    num_classes = len(source.class_names) if labels is not None else 0
    files.write_array(run_dir / "data.npy", data)
    if labels is not None:
        files.write_array(run_dir / LABELS, labels)
    if source.held_out is not None:
        files.write_array(run_dir / HELD_OUT, source.held_out)
        if source.held_out_labels is not None:
            files.write_array(run_dir / HELD_OUT_LABELS, source.held_out_labels)
    files.write_text(run_dir / "config.toml", dump_config(cfg))
    info = {
        "format": 1,
        "status": "training",
        "step": 0,
        "steps": cfg.train.steps,
        "dim": int(data.shape[1]),
        # (D,) for points, (C, H, W) for images: the shape of one sample.
        "shape": [int(v) for v in data.shape[1:]],
        "n_train": int(len(data)),
        "n_held_out": 0 if source.held_out is None else int(len(source.held_out)),
        "normalization": norm.to_dict(),
        # Box for sample.clip_x0: pixels live in [-1, 1]; points get 10% beyond the
        # largest |coordinate| of the normalised data.
        "x0_bound": 1.0 if source.is_image else float(1.1 * np.abs(norm.encode(data)).max()),
        "data": source.name,
        "num_classes": num_classes,
        "class_names": list(source.class_names) if num_classes else [],
        "class_counts": [] if labels is None else np.bincount(labels, minlength=num_classes).tolist(),
        "train_seconds": 0.0,
    }
    write_run_info(run_dir, info)
    return RunData(info, data, labels, norm)


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    log=print,
    on_step=None,
) -> TrainState:
    """Train ``cfg`` into ``run_dir`` (created; or continued with ``resume=True``).

    ``stop_at`` ends the loop after that step as if interrupted (used to test resume).
    ``on_step(step, loss)`` is called after every optimiser step (the playground's live loss
    curve); raising KeyboardInterrupt from it stops the run like Ctrl-C: a resumable checkpoint
    is written and TrainingInterrupted is raised.  SIGINT and SIGTERM stop the run the same way
    at the end of the step they arrive in (_StopSignals).
    """
    run_dir = Path(run_dir)
    if not resume:
        check_new_run_folder(run_dir, latent_training.stage_one_names(cfg))
    with _StopSignals() as stop:
        state = _train(cfg, run_dir, resume, progress, stop_at, log, on_step, stop)
    if stop.signum is not None:  # after the last step: trained, but the caller should stop too
        raise TrainingInterrupted(run_dir, state.step, stop.signum)
    return state


def _train(cfg: Config, run_dir: Path, resume: bool, progress: bool, stop_at, log, on_step, stop: _StopSignals) -> TrainState:
    device = _set_up_compute(cfg, log)
    schedule = schedule_from(cfg)
    objective = objective_from(cfg, schedule)
    _describe_schedule(schedule, objective, log)

    # The run folder's training lock is held until this function returns, raises, or its
    # process dies (files.lock_run); it is taken before the first write into the folder.
    locks: list = []
    try:
        if resume:
            locks.append(files.lock_run(run_dir))
            run = _read_run_folder(run_dir)
            autoencoder = latent_training.recorded_autoencoder(cfg, run_dir, run.info, device)
        else:
            source = load_training_data(cfg)
            # A latent run checks its autoencoder before anything is written.
            autoencoder = latent_training.open_autoencoder(cfg, run_dir, source, device)
            run_dir.mkdir(parents=True, exist_ok=True)
            locks.append(files.lock_run(run_dir))
            run = _write_run_folder(cfg, run_dir, source)
        if autoencoder is not None:  # train on the latents: encoded once, kept in the run folder
            run = RunData(run.info, latent_training.latents(autoencoder, run_dir, run.info, run.data, new=not resume), run.labels, run.normalization)
        info = run.info
        x_all = torch.as_tensor(run.normalization.encode(run.data), dtype=torch.float32, device=device)
        y_all = None if run.labels is None else torch.as_tensor(run.labels, dtype=torch.long, device=device)
        state = _init_state(cfg, x_all.shape[1], device, int(info.get("num_classes", 0)), tuple(x_all.shape[1:]))
        state.time_sampler = objective.new_time_sampler()
        if resume:
            load_checkpoint(run_dir, state)
            if state.step >= cfg.train.steps:
                log(f"{run_dir} is already trained to step {state.step} (train.steps = {cfg.train.steps}); nothing to train")
                return state
            files.write_text(run_dir / "config.toml", dump_config(cfg))  # e.g. a raised train.steps
            log(f"resuming {run_dir} at step {state.step} of {cfg.train.steps}")
        info["steps"] = cfg.train.steps

        state.model.train()
        bar = tqdm(
            total=cfg.train.steps,
            initial=state.step,
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            desc="train",
            # In a log file (CI, nohup) a redrawn bar becomes thousands of lines: update every 10 s.
            mininterval=0.1 if sys.stderr.isatty() else 10.0,
        )
        t_start, seconds_before = time.perf_counter(), float(info.get("train_seconds", 0.0))
        smooth = None

        def checkpoint(status: str) -> None:
            save_checkpoint(run_dir, state)
            info.update(status=status, step=state.step, train_seconds=seconds_before + time.perf_counter() - t_start)
            write_run_info(run_dir, info)

        try:
            while state.step < cfg.train.steps:
                if stop.signum is not None:
                    raise KeyboardInterrupt
                value, lr = _optimiser_step(cfg, state, objective, x_all, y_all)
                smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
                bar.update(1)
                if on_step is not None:
                    on_step(state.step, value)
                if state.step % 50 == 0 or state.step == cfg.train.steps:
                    bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.1e}", refresh=False)  # the bar redraws on its own interval
                if state.step % cfg.train.checkpoint_every == 0 and state.step < cfg.train.steps:
                    checkpoint("training")
                if stop_at is not None and state.step >= stop_at and state.step < cfg.train.steps:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            checkpoint("interrupted")
            raise TrainingInterrupted(run_dir, state.step, stop.signum or signal.SIGINT) from None
        bar.close()
        checkpoint("trained")
        log(f"trained {state.step} steps in {info['train_seconds']:.1f} s, final loss {smooth:.4f}")
        return state
    finally:
        for lock in locks:
            lock.close()
