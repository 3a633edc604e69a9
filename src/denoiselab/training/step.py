"""One optimiser step, the same for every network the loop trains: a batch drawn by tensor
indexing, its loss, the update (AdamW or Adam with linear warm-up and constant or cosine decay,
gradient clipping), the EMA.

The batch is the recipe's global batch.  Over several processes (parallel.py) and in gradient
accumulation's micro-batches, every part is drawn as rows of that one batch (batch_draws.py), so
the step's loss and gradient are the same for any split, up to float rounding; the EMA and the
learning rate move once per optimiser step, never per micro-batch."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from ..batch_draws import BatchDraws
from ..config import Config
from ..guidance import drop_labels
from .checkpoint import TrainState
from .parallel import Processes


def learning_rate(cfg: Config, step: int) -> float:
    """Linear warm-up to lr over warmup_steps, then constant or cosine decay to 0 at the last step."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.lr_schedule == "constant":
        return t.lr
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def optimiser_step(
    cfg: Config, state: TrainState, objective, x_all: torch.Tensor, y_all: torch.Tensor | None,
    *, network: torch.nn.Module | None = None, processes: Processes | None = None, stop=None,
) -> tuple[float, float]:
    """One step: a batch, its loss ``objective(model, x0, generator, y=, time_sampler=)``, the
    update, the EMA; returns (loss, learning rate).

    ``network`` is what computes the loss (DDP around ``state.model`` over several processes);
    ``processes`` says which rows of the batch this process trains, and ``stop`` (the loop's
    StopSignals) learns of a signal any process received (parallel.Processes.reduce_step)."""
    processes = processes or Processes()
    network = state.model if network is None else network
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
    state.optimizer.zero_grad(set_to_none=True)
    parts = cfg.train.accumulate
    precision = _autocast(cfg.train.precision, x_all.device)
    if parts == 1 and not processes.is_parallel:
        with precision:
            loss = objective(network, x_all[idx], state.generator, y=y, time_sampler=state.time_sampler, **context)
        _backward(loss, state)
        value = loss.item()
    else:
        value = _accumulated(network, objective, state, x_all[idx], y, processes.rows(cfg.train.batch_size, parts), processes, context, precision)
    if state.scaler is not None:
        state.scaler.unscale_(state.optimizer)  # clip the true gradient
    if cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.train.grad_clip)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)  # skipped where the scaled gradient overflowed
        state.scaler.update()
    else:
        state.optimizer.step()
    if state.ema is not None:
        state.ema.update(state.model)
    for power in state.power_emas or ():
        power.update(state.model)
    state.step += 1
    if processes.is_parallel:
        value = processes.reduce_step(value, stop)
    if not math.isfinite(value):
        raise FloatingPointError(f"loss became {value} at step {state.step}; lower train.lr")
    state.losses.append(value)
    return value, lr


def _autocast(precision: str, device: torch.device):
    """train.precision: the loss computed under torch.autocast in bf16 or fp16 (mixed precision,
    Micikevicius et al. 2018: the weights and the optimiser stay fp32), or as it is."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _backward(loss: torch.Tensor, state: TrainState) -> None:
    """fp16's gradients underflow: the loss is scaled up before the backward (GradScaler)."""
    (state.scaler.scale(loss) if state.scaler is not None else loss).backward()


def _accumulated(network, objective, state: TrainState, x: torch.Tensor, y, rows, processes: Processes, context, precision) -> float:
    """The gradient of this process's rows of the batch (x, y), one backward per micro-batch of
    ``rows``, each loss scaled by 1 / micro-batches; DDP all-reduces once, after the last.

    Every micro-batch draws the whole batch's noise and times from the step's generator state
    and keeps its own rows; the generator then stands where one draw of the whole batch leaves it.
    The importance sampler's losses are gathered from every micro-batch and process in the batch's
    row order and recorded once, as one process recording the whole batch would."""
    start_state = state.generator.get_state()
    sampler = state.time_sampler
    recorder = _Recorder(sampler) if sampler is not None else None
    total = 0.0
    for k, (start, stop) in enumerate(rows):
        generator = torch.Generator().set_state(start_state)
        draws = BatchDraws(generator, x.shape[0], start, stop, whole_x0=x, whole_y=y)
        last = k == len(rows) - 1
        with nullcontext() if last or not hasattr(network, "no_sync") else network.no_sync():
            with precision:
                loss = objective(network, x[start:stop], draws, y=None if y is None else y[start:stop], time_sampler=recorder, **context)
            _backward(loss / len(rows), state)
        total += loss.item() / len(rows)
    state.generator.set_state(generator.get_state())
    if recorder is not None:
        recorder.record(processes)
    return total


class _Recorder:
    """The importance sampler as a loss sees it during an accumulated or parallel step: draws
    go to the sampler, the terms' losses are kept until the whole batch's are known."""

    def __init__(self, sampler):
        self.sampler, self.bins, self.losses = sampler, [], []

    def draw(self, n: int, draws):
        return self.sampler.draw(n, draws)

    def update(self, bins: torch.Tensor, losses: torch.Tensor) -> None:
        self.bins.append(bins.cpu())
        self.losses.append(losses.detach().double().cpu())

    def record(self, processes: Processes) -> None:
        bins = processes.gather(torch.cat(self.bins))
        losses = processes.gather(torch.cat(self.losses))
        self.sampler.update(bins, losses)
