"""Noise-conditional classifiers p(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, Sec. 4).

Both take time like the denoisers (the sinusoidal embedding of t in [0, 1]) and return logits
(B, C).  Points: the residual MLP of the point denoiser with C outputs.  Images: the U-Net's
residual blocks with the time embedding as scale and shift (AdaGN), two resolutions, global
average pooling and a linear head: the downsampling half of Dhariwal & Nichol's classifier
without its attention pooling, at the size of 8 x 8 to 32 x 32 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import SinusoidalEmbedding
from .mlp import ResidualMLP
from .unet import ResBlock, group_count


class PointClassifier(nn.Module):
    def __init__(self, dim: int, num_classes: int, hidden: int = 128, blocks: int = 2, time_dim: int = 32, fourier: int = 0):
        super().__init__()
        self.net = ResidualMLP(dim, hidden=hidden, blocks=blocks, time_dim=time_dim, fourier=fourier, out_dim=num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t)


class ImageClassifier(nn.Module):
    def __init__(self, channels: int, num_classes: int, hidden: int = 32, time_dim: int = 64, groups: int = 8):
        super().__init__()
        emb = 4 * hidden
        self.time_embed = nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.conv_in = nn.Conv2d(channels, hidden, 3, padding=1)
        self.block1 = ResBlock(hidden, hidden, emb, groups, 0.0)
        self.block2 = ResBlock(hidden, 2 * hidden, emb, groups, 0.0)
        self.norm = nn.GroupNorm(group_count(2 * hidden, groups), 2 * hidden)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(t)
        h = self.block1(self.conv_in(x), emb)
        h = self.block2(F.avg_pool2d(h, 2, ceil_mode=True), emb)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))
