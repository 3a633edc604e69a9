"""Text-to-image runs: their captioned data, the text encoder's CLIP-style pretraining (the run's
first stage, into RUN/text-encoder, by the one training loop), and the denoiser built around it.

Like a latent run's autoencoder stage, the text stage trains (or resumes, or reuses when it is
complete) before the run's own files are written, so the same command started again continues
where it stopped.  The stage fits the tokenizer on the training captions, trains the text encoder
and a small image encoder with the contrastive loss of Radford et al. (2021) (text/contrastive.py),
and records the zero-shot retrieval accuracy on held-out pairs (and, for the built-in scenes, on
the held-out attribute combinations).  The denoiser then takes the pretrained encoder, frozen
unless text.train_encoder (models/text_unet.py), and the captions' token ids where a conditional
run takes its labels.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import load_file

from ..builders import text_model_from
from ..config import TEXT_DATA, Config, ConfigError
from ..data.images import split_indices
from ..data.scenes import DEFAULT_SIZE, SceneSet, attribute_words, load_captioned, make_scenes
from ..runs.folder import TEXT_STAGE, RunFolder
from ..text import Tokenizer
from ..text.contrastive import ContrastiveObjective, ContrastivePair, retrieval_accuracy, swap_accuracy
from ..text.encoder import TextEncoder
from ..text.negatives import hard_negatives, value_table
from .checkpoint import init_state, load_checkpoint, save_checkpoint
from .compute import set_up_compute
from .loop import StopSignals, fit
from .parallel import Processes, data_parallel
from .step import optimiser_step

UNSEEN_PAIRS = 200  # scenes of held-out combinations drawn to measure retrieval on them
RETRIEVAL_GROUP = 100  # pairs among which each caption's image is retrieved (chance 1 / 100)


@dataclass
class CaptionedData:
    """A text-to-image run's images and captions, split into training and held-out parts."""

    name: str
    train: np.ndarray  # (N, C, H, W) in [-1, 1]
    captions: list[str]
    held_out: np.ndarray
    held_out_captions: list[str]


def load_scenes(cfg: Config) -> SceneSet:
    """The recipe's captioned images, before the split: drawn scenes or the user's files."""
    d, t = cfg.data, cfg.text
    if d.name == TEXT_DATA:
        return make_scenes(d.n, d.size or DEFAULT_SIZE, d.seed, pairs=t.pairs, held_out=t.held_out)
    return load_captioned(d.name, t.captions, size=d.size or None, channels=d.channels)


def unseen_scenes(cfg: Config, n: int = UNSEEN_PAIRS) -> SceneSet | None:
    """Scenes of the held-out attribute combinations only (None for the user's data, or without any)."""
    d, t = cfg.data, cfg.text
    if d.name != TEXT_DATA or not t.held_out:
        return None
    return make_scenes(n, d.size or DEFAULT_SIZE, d.seed + 1, pairs=t.pairs, held_out=t.held_out, unseen=True)


def load_captioned_data(cfg: Config) -> CaptionedData:
    scenes = load_scenes(cfg)
    train_idx, held_idx = split_indices(len(scenes), None, cfg.data.held_out, cfg.data.seed)
    x = scenes.images.numpy().astype(np.float32)
    return CaptionedData(
        cfg.data.name, x[train_idx], [scenes.captions[i] for i in train_idx], x[held_idx], [scenes.captions[i] for i in held_idx]
    )


def stage_config(cfg: Config) -> Config:
    """The [train] settings of the contrastive stage: text.clip_steps, clip_lr and clip_batch, no
    caption dropout, no EMA, no gradient accumulation (the contrastive loss compares every row of
    its batch with every other, so a micro-batch's loss is not a part of the batch's); the other
    keys as the run's."""
    t = cfg.text
    train = dataclasses.replace(
        cfg.train, steps=t.clip_steps, lr=t.clip_lr, batch_size=t.clip_batch, label_dropout=0.0, ema_decay=0.0,
        warmup_steps=min(cfg.train.warmup_steps, t.clip_steps), accumulate=1,
    )  # fmt: skip
    return dataclasses.replace(cfg, train=train)


def _contrastive_model(cfg: Config, channels: int, vocab_size: int) -> ContrastivePair:
    t = cfg.text
    return ContrastivePair(TextEncoder(vocab_size, t.length, t.width, t.layers, t.heads), channels, embed=t.width)


def _retrieval(model: ContrastivePair, tokenizer: Tokenizer, images: np.ndarray, captions: list[str], device) -> dict:
    x = torch.as_tensor(images, device=device)
    ids = torch.as_tensor(tokenizer.encode_batch(captions), device=device)
    return retrieval_accuracy(model, x, ids, RETRIEVAL_GROUP)


def swap_negatives(tokenizer: Tokenizer):
    """``ids -> (negatives (B, 3, L), real (B, 3))``: each caption's colour, shape and both-swapped
    versions among the scenes' words (text/negatives.py)."""
    colour, shape = (value_table(tokenizer.vocab, attribute_words(name)) for name in ("colour", "shape"))
    return lambda ids: hard_negatives(ids, colour, shape)


def score_swaps(model: ContrastivePair, tokenizer: Tokenizer, images: np.ndarray, captions: list[str], device) -> dict:
    """The swap accuracy (text/contrastive.py) on the two-object captions among ``captions``."""
    ids = torch.as_tensor(tokenizer.encode_batch(captions), device=device)
    negatives, real = swap_negatives(tokenizer)(ids)
    keep = real.any(1)
    return swap_accuracy(model, torch.as_tensor(images, device=device)[keep], ids[keep], negatives[keep], real[keep])


def train_text_encoder(
    cfg: Config, folder: RunFolder, *, progress: bool = True, log=print, stop_at: int | None = None, on_step=None, processes: Processes | None = None
) -> None:
    """The text stage of a new text-to-image run in ``folder``: trained, resumed from its
    checkpoint, or left as it is when complete.  Raises TrainingInterrupted on a stop.

    Among several processes (``processes``) every one trains its rows of each batch, the
    contrastive loss over the global batch (text/contrastive.py); rank 0 alone writes."""
    processes = processes or Processes()
    stage = folder.text_stage()
    processes.barrier()  # every process looks at the stage before rank 0 writes into it
    if stage.is_run() and stage.status() == "complete":
        if Tokenizer.from_dict(stage.read_tokenizer()).length != cfg.text.length:
            raise ConfigError(f"text.length: {stage.path} holds a text encoder of another recipe; choose another --out")
        return
    data = load_captioned_data(cfg)
    tokenizer = Tokenizer.fit(data.captions, cfg.text.length)
    scfg = stage_config(cfg)
    compute = set_up_compute(scfg, log, device=processes.device if processes.device.type == "cuda" else None)
    device = compute.device
    with ExitStack() as held:
        resume = stage.has_checkpoint()
        if resume and stage.read_tokenizer() != tokenizer.to_dict():
            raise ConfigError(f"data.name: {stage.path} holds a text encoder fitted on other captions; choose another --out")
        processes.barrier()
        if processes.is_main:
            stage.path.mkdir(parents=True, exist_ok=True)
            held.enter_context(stage.lock())
            stage.write_tokenizer(tokenizer.to_dict())
        channels = data.train.shape[1]
        state = init_state(scfg, channels, device, build_model=lambda: _contrastive_model(cfg, channels, tokenizer.size))
        info = {"status": "training", "step": 0, "steps": scfg.train.steps, "train_seconds": 0.0}
        if resume:
            load_checkpoint(state, stage.checkpoint)
            info = stage.read_info()
            log(f"text stage: resuming the text encoder in {stage.path} at step {state.step} of {scfg.train.steps}")
        else:
            log(f"text stage: pretraining the text encoder (contrastive, {tokenizer.size} tokens) into {stage.path}")
        x_all = torch.as_tensor(data.train, device=device)
        ids_all = torch.as_tensor(tokenizer.encode_batch(data.captions), device=device)
        objective = ContrastiveObjective(swap_negatives(tokenizer) if cfg.text.hard_negatives else None)
        network = data_parallel(state.model, processes)
        t_start, seconds_before = time.perf_counter(), float(info.get("train_seconds", 0.0))

        def save(status: str) -> None:
            processes.check_same({"model": state.model})
            if processes.is_main:
                save_checkpoint(state, stage.checkpoint, stage.weights)
                stage.record_progress(info, status, state.step, seconds_before + time.perf_counter() - t_start)
            if status != "training":  # no process leaves before rank 0 has written the last checkpoint
                processes.barrier()

        def step(s) -> tuple[float, float]:
            return optimiser_step(scfg, s, objective, x_all, ids_all, network=network, processes=processes, stop=stop)

        again = f"run the same denoiselab train command again (same --config, --set and --out {folder.path}) to continue"
        with StopSignals(stage.path, resume=again) as stop:
            stop.shared = processes.is_parallel  # every process stops after the step they agree on
            fit(
                state, step, steps=scfg.train.steps,
                checkpoint_every=scfg.train.checkpoint_every, save=save, stop=stop, progress=progress, desc="text encoder",
                stop_at=stop_at, on_step=on_step, after_step=compute.after_step,
            )  # fmt: skip
            save("trained")
            stop.raise_if_stopped(state.step)
        if not processes.is_main:  # stage two waits for rank 0 to write the run's folder
            return
        model = state.model
        info["retrieval"] = {"held_out": _retrieval(model, tokenizer, data.held_out, data.held_out_captions, device)}
        if cfg.data.name == TEXT_DATA:  # does the encoder tell a caption from its objects' attributes swapped?
            info["swaps"] = score_swaps(model, tokenizer, data.held_out, data.held_out_captions, device)
        unseen = unseen_scenes(cfg)
        if unseen is not None:
            info["retrieval"]["unseen_combinations"] = _retrieval(model, tokenizer, unseen.images.numpy(), unseen.captions, device)
        stage.mark_complete(info)
    for kind, r in info.get("swaps", {}).items():
        log(f"text stage: held-out two-object images scoring their caption above it with the {kind} swapped: {r['accuracy']:.3f} of {r['images']} (chance 0.5)")
    for split, r in info["retrieval"].items():
        log(
            f"text stage: zero-shot retrieval on {r['pairs']} {split.replace('_', ' ')} pairs, top-1 among {round(1 / r['chance'])}: "
            f"caption -> image {r['caption_to_image']:.3f}, image -> caption {r['image_to_caption']:.3f} (chance {r['chance']:.3f})"
        )


def record_text(cfg: Config, folder: RunFolder, info: dict, data: CaptionedData) -> np.ndarray:
    """A new text-to-image run's captions in its folder (token ids, captions, the tokenizer's
    record); returns the training captions' token ids (N, L), what the loop trains on as y."""
    tokenizer = Tokenizer.from_dict(folder.text_stage().read_tokenizer())
    tokens = tokenizer.encode_batch(data.captions)
    folder.record_text(
        info, tokens=tokens, captions=data.captions, held_out_captions=data.held_out_captions, tokenizer=tokenizer.to_dict(), encoder=TEXT_STAGE,
    )  # fmt: skip
    return tokens


def text_model_builder(cfg: Config, folder: RunFolder, info: dict, channels: int):
    """``build_model()`` for init_state: the run's text-conditioned U-Net whose text encoder starts
    as the stage's pretrained one; None for a run without text."""
    if "text" not in info:
        return None
    weights = folder.text_stage().weights

    def build() -> torch.nn.Module:
        model = text_model_from(cfg, channels, int(info["text"]["vocab_size"]))
        pretrained = {k[len("text.") :]: v for k, v in load_file(str(weights)).items() if k.startswith("text.")}
        model.encoder.load_state_dict(pretrained)
        return model

    return build
