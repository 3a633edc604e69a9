"""What training keeps between steps (``TrainState``) and its checkpoint.

One checkpoint file holds the model, the EMA, the optimiser, the batch generator's state, the loss
history and the importance sampler's history, so they can never disagree; resuming restores all
of it, and an interrupted run ends with bit-identical weights to an uninterrupted one on the same
machine.  Beside it, the weights used for sampling (the EMA's when there is one) are written in a
file of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from .. import files
from ..builders import model_from
from ..config import Config
from ..errors import InputError
from ..importance import ImportanceSampler
from ..posthoc_ema import TRACKED_SIGMA_RELS
from .ema import EMA, PowerEMA


class CheckpointError(InputError):
    """A missing, corrupt or mismatched checkpoint; the message names the file."""


@dataclass
class TrainState:
    model: torch.nn.Module
    ema: EMA | None
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int
    losses: list[float]
    time_sampler: ImportanceSampler | None = None  # train.timesteps = "importance": its loss history
    power_emas: list[PowerEMA] | None = None  # train.ema_snapshot_every > 0: the EMAs whose snapshots post-hoc EMA reads
    scaler: torch.amp.GradScaler | None = None  # train.precision = "fp16": the loss scale (Micikevicius et al. 2018)

    def sampling_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model


def init_state(
    cfg: Config, dim: int, device: torch.device, num_classes: int = 0, shape: tuple[int, ...] | None = None, build_model=None
) -> TrainState:
    """A fresh state for recipe ``cfg``, seeded by train.seed.  ``shape`` is one training example's
    shape (the autoencoder and a latent run's denoiser need it); ``build_model()`` replaces the
    recipe's network (the noise-conditional classifier trains with this same state)."""
    torch.manual_seed(cfg.train.seed)
    model = (build_model() if build_model is not None else model_from(cfg, dim, num_classes, shape)).to(device)
    if cfg.train.channels_last:  # before the EMA and the optimiser's state copy its parameters' layout
        model.to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    opt_cls = torch.optim.AdamW if cfg.train.optimizer == "adamw" else torch.optim.Adam
    # fused: one kernel for all parameters, about 3x faster than the per-tensor loop on a CPU,
    # which is a sixth of a small point model's step.
    optimizer = opt_cls(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    power_emas = [PowerEMA(model, s) for s in TRACKED_SIGMA_RELS] if cfg.train.ema_snapshot_every > 0 and build_model is None else None
    scaler = torch.amp.GradScaler(device.type) if cfg.train.precision == "fp16" else None
    return TrainState(model, ema, optimizer, generator, 0, [], power_emas=power_emas, scaler=scaler)


def save_checkpoint(state: TrainState, checkpoint: Path, weights: Path) -> None:
    """The whole state into ``checkpoint``, the sampling model's weights into ``weights``."""
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
    for i, power in enumerate(state.power_emas or ()):
        tensors.update({f"power_ema{i}.{k}": v for k, v in power.model.state_dict().items()})
    meta = {
        "step": str(state.step),
        "ema_updates": str(state.ema.updates if state.ema is not None else 0),
        "param_groups": json.dumps(opt["param_groups"]),
    }
    if state.scaler is not None:
        meta["grad_scaler"] = json.dumps(state.scaler.state_dict())
    files.write_tensors(checkpoint, tensors, meta)
    files.write_tensors(weights, state.sampling_model().state_dict(), {"step": str(state.step)})


def load_checkpoint(state: TrainState, checkpoint: Path) -> None:
    """Restore ``state`` from ``checkpoint`` (CheckpointError, naming the file, when it cannot)."""
    try:
        with safe_open(str(checkpoint), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - any failure means a corrupt checkpoint
        raise CheckpointError(f"{checkpoint}: cannot read checkpoint ({exc})") from None
    try:
        _restore(state, tensors, meta or {})
    except Exception as exc:  # noqa: BLE001 - missing keys, wrong shapes (e.g. --set model.hidden on resume)
        detail = " ".join(str(exc).split())[:300]  # load_state_dict lists every mismatch, one per line
        raise CheckpointError(f"{checkpoint}: does not match this run's model and optimiser ({type(exc).__name__}: {detail})") from None


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """The optimiser's moments in their parameters' memory layout (train.channels_last), as the
    uninterrupted run creates them: a file holds them contiguous, and the fused update rounds
    differently when the layouts differ."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape:
                    optimizer.state[p][name] = torch.empty_like(p).copy_(value)


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
    _match_layouts(state.optimizer)
    state.generator.set_state(tensors["rng"])
    if state.scaler is not None and "grad_scaler" in meta:
        state.scaler.load_state_dict(json.loads(meta["grad_scaler"]))
    state.step = int(meta["step"])
    state.losses = tensors["losses"].tolist()
    for i, power in enumerate(state.power_emas or ()):
        power.model.load_state_dict(section(f"power_ema{i}."))
        power.updates = state.step  # updated once a step from the first
    if state.time_sampler is not None:
        state.time_sampler.load_state_dict({k[len("importance.") :]: v for k, v in tensors.items() if k.startswith("importance.")})
