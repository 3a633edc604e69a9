"""One optimiser step, the same for every network the loop trains: a batch drawn by tensor
indexing, its loss, the update (AdamW or Adam with linear warm-up and constant or cosine decay,
gradient clipping), the EMA."""

from __future__ import annotations

import math

import torch

from ..config import Config
from ..guidance import drop_labels
from .checkpoint import TrainState


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up to lr over warmup_steps, then constant or cosine decay to 0 at the last step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.lr_schedule == "constant":
        return t.lr
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def optimiser_step(cfg: Config, state: TrainState, objective, x_all: torch.Tensor, y_all: torch.Tensor | None) -> tuple[float, float]:
    """One step: a batch, its loss ``objective(model, x0, generator, y=, time_sampler=)``, the
    update, the EMA; returns (loss, learning rate)."""
    lr = learning_rate(cfg, state.step)
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    idx = torch.randint(0, x_all.shape[0], (cfg.train.batch_size,), generator=state.generator).to(x_all.device)
    y = None
    if y_all is not None:
        # Classifier-free guidance needs the unconditional model too: the same network learns
        # it from the points whose label is dropped.
        y = drop_labels(y_all[idx], cfg.train.label_dropout, state.generator)
    # Consistency models (consistency.py) read the EMA network as their target and the step (N grows with it).
    context = dict(target=state.sampling_model(), step=state.step) if getattr(objective, "reads_training_state", False) else {}
    loss = objective(state.model, x_all[idx], state.generator, y=y, time_sampler=state.time_sampler, **context)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.train.grad_clip)
    state.optimizer.step()
    if state.ema is not None:
        state.ema.update(state.model)
    for power in state.power_emas or ():
        power.update(state.model)
    state.step += 1
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} at step {state.step}; lower train.lr")
    state.losses.append(value)
    return value, lr
