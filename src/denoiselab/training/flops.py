"""What one training step costs in floating-point operations, counted once before training.

torch's FlopCounterMode counts the operations of the matrix products and convolutions that a
piece of code dispatches (2 per multiply-add: a (B, n) x (n, m) product is 2 B n m), in the
forward pass and in the backward pass alike; elementwise work (activations, normalisation,
the optimiser's update) is not counted, and is small beside them for these networks.  One
optimiser step's forward and backward on the recipe's batch is counted on a copy of the
model and of the time sampler, with a generator of its own and torch's global random state
restored, so counting changes nothing that the training that follows draws: a seeded run
stays bit-exact.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """The floating-point operations torch's FlopCounterMode counts while ``fn()`` runs."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def training_step_flops(model: torch.nn.Module, objective, x_all: torch.Tensor, y_all: torch.Tensor | None, batch_size: int, *, time_sampler=None, seed: int = 0) -> int:
    """The operations of one training step (the loss's forward and backward) on ``batch_size``
    examples of ``x_all``: ``objective(model, x0, generator, y=, time_sampler=)`` as the
    training step calls it.  Nothing of the caller's state is touched."""
    model = copy.deepcopy(model).train()
    sampler = copy.deepcopy(time_sampler)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=generator).to(x_all.device)
    y = None if y_all is None else y_all[idx]

    def step() -> None:
        objective(model, x_all[idx], generator, y=y, time_sampler=sampler).backward()

    with torch.random.fork_rng(devices=[x_all.device] if x_all.device.type == "cuda" else []):
        return count_flops(step)


def describe_flops(flops: float) -> str:
    """``flops`` in the unit that keeps it readable: 11.8 GFLOP, 47.2 TFLOP."""
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.0f} FLOP"
