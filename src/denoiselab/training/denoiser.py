"""Training a recipe's network into a run folder: a point or image denoiser, an autoencoder (model.arch
= autoencoder), or a latent run's denoiser (stages.py), each by the one loop (loop.fit).

A new run's folder gets its data, recipe and description before the first step (RunFolder); a
latent run's training set is encoded into latents before the loop starts, so the loop trains on
one array whatever the run.  The folder's training lock is held from the first write to the last.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..builders import objective_from, schedule_from
from ..config import Config, ConfigError, check_world_size, is_captioned_data, is_text_run
from ..data import Normalization, make_source
from ..data.images import is_image_data, load_image_data, split_indices
from ..models import IMAGE_ARCHITECTURES
from ..runs.complete import complete_run
from ..objectives import pack_pairs
from ..runs.folder import PAIRS, ROUNDS, RunData, RunFolder
from .stages import check_denoiser, encode_training_set, is_latent, open_autoencoder, planned_latent_shape, recorded_autoencoder, stage_one_config, stage_one_names, trains_stage_one
from .checkpoint import TrainState, init_state, load_checkpoint, save_checkpoint
from .text_stage import CaptionedData, load_captioned_data, record_text, text_model_builder, train_text_encoder
from ..reproducible import reproducibility
from .compute import set_up_compute
from .flops import describe_flops, training_step_flops
from .loop import StopSignals, fit
from .parallel import Processes, data_parallel
from .step import optimiser_step
from .teacher import start_from_teacher, with_teacher


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
    captioned: CaptionedData | None = None  # text-to-image runs: the captions (text_stage.py)

    @property
    def is_image(self) -> bool:
        return self.train.ndim == 4


def load_training_data(cfg: Config) -> TrainingData:
    """The recipe's data: built-in point sets (one per class with data.classes), point files,
    or image sets split into training and held-out parts (data/images.py)."""
    d = cfg.data
    if is_captioned_data(cfg):  # a text run's, or (captions unread) its autoencoder's
        c = load_captioned_data(cfg)
        return TrainingData(c.name, c.train, None, (), Normalization(np.zeros(1), 1.0), c.held_out, None, c if is_text_run(cfg) else None)
    if not d.classes and is_image_data(d.name):
        if cfg.model.arch not in IMAGE_ARCHITECTURES and not is_latent(cfg):  # a latent run's network takes latents
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


def train(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
    log=print,
    on_step=None,
    processes: Processes | None = None,
    resume_command: str | None = None,
    figures: bool = True,
) -> TrainState:
    """Train ``cfg`` into ``run_dir`` (created; or continued with ``resume=True``).

    ``processes``: this process's place among torchrun's (parallel.py); every process calls
    ``train`` alike, rank 0 alone writes the folder and logs.  ``resume_command`` is the command
    a stop's message tells the user to resume with (default ``denoiselab train --resume RUN``).

    A latent recipe with latent.autoencoder = "train" trains its autoencoder first (stage one:
    trained, or resumed, or reused when complete, into the run's stage-one folder, and completed:
    latent scale, metrics, figures), so the same command started again continues where it stopped.

    ``figures``: whether the completed first stage draws its figures (the denoiser's own are
    drawn by runs.complete_run or render_figures, which this function does not call).

    ``stop_at`` ends the loop after that step as if interrupted (used to test resume).
    ``on_step(step, loss)`` is called after every optimiser step (the playground's live loss
    curve); raising KeyboardInterrupt from it stops the run like Ctrl-C: a resumable checkpoint
    is written and TrainingInterrupted is raised.  SIGINT and SIGTERM stop the run the same way
    at the end of the step they arrive in (loop.StopSignals).
    """
    folder = RunFolder(run_dir)
    processes = processes or Processes()
    if processes.is_parallel:
        check_world_size(cfg, processes.world_size)
        if not processes.is_main:
            log, progress, on_step = _silent, False, None
    if cfg.train.coupling == "reflow" and not folder.has_pairs():
        raise ConfigError(
            "train.coupling: reflow trains on a teacher's (noise, sample) pairs; make the run with: "
            "denoiselab distill TEACHER_RUN --method reflow --out RUN"
        )
    if not resume:
        if processes.is_main:  # the others would find the folder rank 0 has begun
            folder.check_new(stage_one_names(cfg) + distilled_names(cfg))
        if trains_stage_one(cfg):
            _stage_one(cfg, folder, figures, progress=progress, log=log, stop_at=stop_at, on_step=on_step, processes=processes)
        if is_text_run(cfg):
            if is_latent(cfg) and not trains_stage_one(cfg):  # a named autoencoder is checked before the text stage trains
                open_autoencoder(cfg, folder.path, load_training_data(cfg), torch.device("cpu"))
            train_text_encoder(cfg, folder, progress=progress, log=log, stop_at=stop_at, on_step=on_step, processes=processes)
    with StopSignals(folder.path, resume_command) as stop:
        state = _train(cfg, folder, resume, progress, stop_at, log, on_step, stop, processes)
    stop.raise_if_stopped(state.step)
    return state


def _stage_one(cfg: Config, folder: RunFolder, figures: bool, **options) -> None:
    """Latent diffusion's first stage: the autoencoder trained (or resumed, or reused when it is
    complete) into the run's stage-one folder, and completed (by rank 0 among several processes,
    which all train it)."""
    # Before stage one: the denoiser must take the kind of latent it will produce.
    check_denoiser(cfg, planned_latent_shape(cfg))
    log, processes = options["log"], options["processes"]
    ae_cfg, ae = stage_one_config(cfg), folder.stage_one()
    if processes.is_parallel:  # a stop inside stage one: resumed by as many processes
        options = {**options, "resume_command": f"denoiselab train --nproc {processes.world_size} --resume {ae.path}"}
    finish = complete_run if processes.is_main else _silent  # the latent scale, metrics, figures: rank 0's
    processes.barrier()  # every process looks at the stage-one folder before rank 0 writes into it
    begun = ae.config_text() is not None
    # The values, not the text (a resolved recipe's comments and layout may change), and
    # whatever train.threads the user asks for now.
    if begun and _with_threads(ae.read_config(), ae_cfg.train.threads) != ae_cfg:
        raise ConfigError(f"latent.autoencoder: {ae.path} holds an autoencoder of another recipe; choose another --out")
    complete = begun and ae.status() == "complete"
    processes.barrier()
    if begun and not complete:
        log(f"stage one: resuming the autoencoder in {ae.path}")
        train(ae_cfg, ae.path, resume=True, **options)
        finish(ae.path, log=log, figures=figures)
    elif not begun:
        log(f"stage one: training the autoencoder into {ae.path}")
        train(ae_cfg, ae.path, **options)
        finish(ae.path, log=log, figures=figures)
    log(f"stage two: the denoiser in the autoencoder's latent space, into {folder.path}")


def _with_threads(cfg: Config, threads: int) -> Config:
    """``cfg`` with another train.threads: the thread count says how a network trains, not which
    (stage one resumes with the count asked for now, e.g. after the busy-cores hint)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=threads))


def _silent(*args, **kwargs) -> None:
    """The log of every process but rank 0's."""


def _train(
    cfg: Config, folder: RunFolder, resume: bool, progress: bool, stop_at, log, on_step, stop: StopSignals, processes: Processes
) -> TrainState:
    compute = set_up_compute(cfg, log, device=processes.device if processes.device.type == "cuda" else None)
    device = compute.device
    objective = with_teacher(cfg, objective_from(cfg, schedule_from(cfg)), device)
    for note in objective.training_notes():
        log(note)
    # The run folder's training lock is held until this function returns, raises, or its
    # process dies; it is taken before the first write into the folder.
    with ExitStack() as lock:
        if not processes.is_main:  # rank 0 writes a new run's folder; the others read what it wrote
            processes.barrier()
            run = _resumed(folder, device)
        elif resume:
            lock.enter_context(folder.lock())
            run = _resumed(folder, device)
        else:
            run = _new(cfg, folder, device, lock)
        if processes.is_main:
            processes.barrier()
        info = run.info
        x_all = torch.as_tensor(run.normalization.encode(run.data), dtype=torch.float32, device=device)
        y_all = None if run.labels is None else torch.as_tensor(run.labels, dtype=torch.long, device=device)
        build = text_model_builder(cfg, folder, info, x_all.shape[1])
        state = init_state(cfg, x_all.shape[1], device, int(info.get("num_classes", 0)), tuple(x_all.shape[1:]), build_model=build)
        if cfg.train.coupling == "reflow":
            x_all = reflow_rows(folder, device)
        state.time_sampler = objective.new_time_sampler()
        if not resume:
            start_from_teacher(cfg, objective, state)
        else:
            load_checkpoint(state, folder.checkpoint)
            if state.step >= cfg.train.steps:
                log(f"{folder.path} is already trained to step {state.step} (train.steps = {cfg.train.steps}); nothing to train")
                return state
            if processes.is_main:
                folder.write_config(cfg)  # e.g. a raised train.steps
            log(f"resuming {folder.path} at step {state.step} of {cfg.train.steps}")
            trained_by = int(info.get("world_size", 1))
            if trained_by != processes.world_size:
                log(
                    f"note: trained so far by {trained_by} process{'es' if trained_by > 1 else ''}, resumed by {processes.world_size}: "
                    "the same batches, noise and loss, but the gradients' sums are added in another order, so the weights are "
                    "not bit-identical to a run that keeps one world size"
                )
        info["steps"] = cfg.train.steps
        info["world_size"] = processes.world_size
        info["reproducible"] = reproducibility(device, compute.threads, processes.world_size)
        if "train_flops_per_step" not in info and processes.is_main:
            flops = training_step_flops(state.model, objective, x_all, y_all, cfg.train.batch_size, time_sampler=state.time_sampler)
            folder.record_step_flops(info, flops)
        per_step = int(info.get("train_flops_per_step", 0))
        if processes.is_parallel:
            log(
                f"{processes.world_size} processes, each training {cfg.train.batch_size // processes.world_size} rows of the "
                f"global batch of {cfg.train.batch_size} (DistributedDataParallel, {'NCCL' if device.type == 'cuda' else 'gloo'})"
            )
        network = data_parallel(state.model, processes)
        if cfg.train.compile:
            network = torch.compile(network)
        stop.shared = processes.is_parallel  # every process stops after the step they agree on
        log(f"one training step: {describe_flops(per_step)} (forward and backward, torch's FlopCounterMode); "
            f"{cfg.train.steps} steps: {describe_flops(per_step * cfg.train.steps)}")
        t_start, seconds_before = time.perf_counter(), float(info.get("train_seconds", 0.0))

        def save(status: str) -> None:
            processes.check_same(_trained_modules(state))
            if processes.is_main:
                save_checkpoint(state, folder.checkpoint, folder.weights)
                folder.record_progress(info, status, state.step, seconds_before + time.perf_counter() - t_start)
            if status != "training":  # no process leaves before rank 0 has written the last checkpoint
                processes.barrier()

        def step(s: TrainState) -> tuple[float, float]:
            result = optimiser_step(cfg, s, objective, x_all, y_all, network=network, processes=processes, stop=stop)
            if processes.is_main and s.power_emas and (s.step % cfg.train.ema_snapshot_every == 0 or s.step == cfg.train.steps):
                folder.write_ema_snapshot(s.step, [p.model.state_dict() for p in s.power_emas], [p.sigma_rel for p in s.power_emas])
            return result

        smooth = fit(
            state, step, steps=cfg.train.steps,
            checkpoint_every=cfg.train.checkpoint_every, save=save, stop=stop, progress=progress, stop_at=stop_at, on_step=on_step,
            after_step=compute.after_step,
        )  # fmt: skip
        save("trained")
        if processes.is_main:
            log(f"trained {state.step} steps in {info['train_seconds']:.1f} s ({describe_flops(info['train_flops'])}), final loss {smooth:.4f}")
        return state


def _trained_modules(state: TrainState) -> dict[str, torch.nn.Module]:
    """The networks that must be identical on every process: the model and its EMAs."""
    modules = {"model": state.model}
    if state.ema is not None:
        modules["ema"] = state.ema.model
    modules.update({f"power_ema{i}": p.model for i, p in enumerate(state.power_emas or ())})
    return modules


def distilled_names(cfg: Config) -> tuple[str, ...]:
    """What a new distilled run's folder already holds: the pairs `denoiselab distill` drew for
    reflow, the earlier rounds of a progressive distillation."""
    return (PAIRS,) if cfg.train.coupling == "reflow" else (ROUNDS,) if cfg.train.objective == "progressive" else ()


def reflow_rows(folder: RunFolder, device: torch.device) -> torch.Tensor:
    """A reflow run's training rows: each teacher sample beside its own noise (objectives.pack_pairs)."""
    noise, samples = folder.read_pairs()
    return pack_pairs(torch.as_tensor(noise, device=device), torch.as_tensor(samples, device=device))


def _new(cfg: Config, folder: RunFolder, device: torch.device, lock: ExitStack) -> RunData:
    """A new run's folder written (under the lock, taken here) and what its loop trains on: the
    data, or a latent run's training images encoded by its autoencoder."""
    source = load_training_data(cfg)
    # A latent run checks its autoencoder before anything is written.
    autoencoder = open_autoencoder(cfg, folder.path, source, device)
    folder.path.mkdir(parents=True, exist_ok=True)
    lock.enter_context(folder.lock())
    info = folder.write_new(
        cfg, data_name=source.name, data=source.train, labels=source.labels, class_names=source.class_names,
        normalization=source.normalization, held_out=source.held_out, held_out_labels=source.held_out_labels,
    )  # fmt: skip
    x = source.train if autoencoder is None else encode_training_set(autoencoder, folder, info, source.train)
    if source.captioned is not None:  # the captions' token ids are what the loop trains on as y
        return RunData(info, x, record_text(cfg, folder, info, source.captioned), source.normalization)
    return RunData(info, x, source.labels, source.normalization)


def _resumed(folder: RunFolder, device: torch.device) -> RunData:
    """An interrupted (or API-trained) run's data, as stored; a latent run's latents, once its
    recorded autoencoder is found unchanged."""
    run = folder.read_run_data()
    x = run.data if recorded_autoencoder(folder, run.info, device) is None else folder.read_latents()
    labels = folder.read_tokens() if "text" in run.info else run.labels
    return RunData(run.info, x, labels, run.normalization)
