"""Exponential moving averages of a model's parameters (Polyak averaging).

Only parameters are averaged: buffers (e.g. fixed frequency tables) are copied, never mixed.
``EMA``: the decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (the schedule of
TensorFlow's ExponentialMovingAverage with num_updates), so early weights are not frozen in.
``PowerEMA``: EDM2's power-function EMA of relative length sigma_rel (posthoc_ema.py), whose
decay after update t is (1 - 1 / t)^(gamma + 1); training stores its snapshots for post-hoc EMA.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..posthoc_ema import power_beta, sigma_rel_to_gamma


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - d)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.updates += 1


class PowerEMA(EMA):
    """The power-function EMA of relative length ``sigma_rel`` (Karras et al. 2024, EDM2 Eq. 3)."""

    def __init__(self, model: nn.Module, sigma_rel: float):
        super().__init__(model, decay=0.0)
        self.sigma_rel = sigma_rel
        self.gamma = sigma_rel_to_gamma(sigma_rel)

    def current_decay(self) -> float:
        return power_beta(self.gamma, self.updates + 1)
