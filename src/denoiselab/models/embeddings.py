"""Embeddings shared by every denoiser: time (sinusoidal) and class labels."""

from __future__ import annotations

import math

import torch
from torch import nn

# Networks see continuous time t in [0, 1]; the sinusoids are evaluated at t * TIME_SCALE so
# the frequencies match the transformer-style encodings the seeds use for integer steps 0..1000.
TIME_SCALE = 1000.0


class SinusoidalEmbedding(nn.Module):
    """Transformer positional encoding of a scalar (Vaswani et al. 2017, Sec. 3.5), vectorised."""

    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"time embedding dim must be even, got {dim}")
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = (t.to(self.freqs.dtype) * TIME_SCALE)[:, None] * self.freqs[None]  # a float64 network keeps float64 times
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class LabelEmbedding(nn.Module):
    """Class labels 0..C-1 plus one extra "no label" index C (used by classifier-free guidance).

    ``y`` may be None (every sample unconditional) or a LongTensor where -1 also means no label.
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        return self.table(label_indices(y, self.num_classes, batch, device))


def label_indices(y: torch.Tensor | None, num_classes: int, batch: int, device) -> torch.Tensor:
    """Labels as indices 0..C of a table of C + 1 rows: None and -1 are the "no label" index C."""
    if y is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    y = torch.as_tensor(y, device=device).long().expand(batch)
    return torch.where(y < 0, torch.full_like(y, num_classes), y)


class FourierFeatures(nn.Module):
    """[x, sin(f_j x), cos(f_j x)] per coordinate, f_j geometric from 1 to ``max_freq`` (radians
    per data unit).  Plain MLPs are biased towards smooth functions of their raw input (the
    "spectral bias" of Tancik et al. 2020); these features let a small network resolve thin
    structures such as the inner turns of a spiral.  ``n_freq = 0`` passes x through unchanged.
    """

    def __init__(self, dim: int, n_freq: int, max_freq: float = 64.0):
        super().__init__()
        freqs = torch.logspace(0, math.log10(max_freq), n_freq) if n_freq > 0 else torch.zeros(0)
        self.register_buffer("freqs", freqs, persistent=False)
        self.out_dim = dim * (1 + 2 * n_freq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freqs.numel() == 0:
            return x
        angles = (x[..., None] * self.freqs).flatten(-2)
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)
