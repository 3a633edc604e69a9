"""Denoisers for points (1D and 2D data).

ResidualMLP is seed 001's denoiser: sinusoidal time embedding through a small MLP, an input
projection, residual blocks (LayerNorm -> Linear -> SiLU -> Linear) and a LayerNorm'd output
head.  The time (and optional label) embedding is added to the hidden state.
SimpleMLP is seed 000's: three ReLU layers on [x, t].
"""

from __future__ import annotations

import torch
from torch import nn

from .embeddings import FourierFeatures, LabelEmbedding, SinusoidalEmbedding


class ResidualMLP(nn.Module):
    def __init__(
        self, dim: int, hidden: int = 256, blocks: int = 3, time_dim: int = 32, num_classes: int = 0, fourier: int = 0,
        out_dim: int | None = None, interval: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.features = FourierFeatures(dim, fourier)
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(time_dim), nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        # MeanFlow's second time (Geng et al. 2025, Sec. 4.3: the network sees (t, t - r)): an
        # embedding of the interval t - r added like the time's; None for a one-time network.
        self.interval_embed = (
            nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)) if interval else None
        )
        self.label_embed = LabelEmbedding(num_classes, hidden) if num_classes > 0 else None
        self.input_proj = nn.Linear(self.features.out_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(blocks)
        )
        self.head = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden // 2), nn.SiLU(), nn.Linear(hidden // 2, out_dim or dim)
        )  # out_dim: the classes of a noise-conditional classifier (models/classifiers.py)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``t`` of shape (B,), or (B, 2) holding (t, r) for an interval network (meanflow.py);
        an interval network given one time reads r = t, its instantaneous velocity."""
        r = t
        if t.ndim == 2:
            if self.interval_embed is None:
                raise ValueError("this network takes one time per sample; (t, r) pairs need model interval=True (train.objective = meanflow or shortcut)")
            t, r = t[:, 0], t[:, 1]
        h = self.input_proj(self.features(x)) + self.time_embed(t)
        if self.interval_embed is not None:
            h = h + self.interval_embed(t - r)
        if self.label_embed is not None:
            h = h + self.label_embed(y, x.shape[0], x.device)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class SimpleMLP(nn.Module):
    """Seed 000's network: Linear-ReLU-Linear-ReLU-Linear on the concatenation [x, t]."""

    def __init__(self, dim: int, hidden: int = 128, num_classes: int = 0):
        super().__init__()
        self.label_embed = LabelEmbedding(num_classes, hidden) if num_classes > 0 else None
        self.inp = nn.Linear(dim + 1, hidden)
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(torch.cat([x, t[:, None].to(x.dtype)], dim=-1))
        if self.label_embed is not None:
            h = h + self.label_embed(y, x.shape[0], x.device)
        return self.net(h)
