"""A small transformer text encoder: token ids (B, L) -> one vector per token (B, L, width), the
padding mask (B, L) and a pooled vector (B, width).

The layout is the pre-norm transformer encoder (Vaswani et al. 2017, with the LayerNorm before
each sub-layer as in GPT-2 and CLIP's text tower): learned token and position embeddings, blocks
of multi-head self-attention and an MLP, a final LayerNorm.  PAD tokens are never attended to
(each token may also attend to itself, so an all-PAD row stays finite); the pooled vector is the
mean of the real tokens' vectors, and exactly zero for the empty caption, so "no text" is a
condition every user of the encoder can recognise and skip (``TextCondition.present``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .tokenizer import PAD


@dataclass
class TextCondition:
    """What a text-conditioned network receives: per-token vectors, which of them are real
    tokens, the pooled vector, and which captions have any token at all."""

    tokens: torch.Tensor  # (B, L, width)
    mask: torch.Tensor  # (B, L) bool, True for a real token
    pooled: torch.Tensor  # (B, width), zero for an empty caption

    @property
    def present(self) -> torch.Tensor:
        """(B,) bool: the caption has at least one token (False: the null condition)."""
        return self.mask.any(dim=1)


class _Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, h: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        b, n, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None])
        h = h + self.proj(out.transpose(1, 2).reshape(b, n, w))
        return h + self.mlp(self.norm2(h))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, length: int, width: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"text width {width} is not divisible by {heads} heads")
        self.width, self.length = width, length
        self.token_embed = nn.Embedding(vocab_size, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        self.blocks = nn.ModuleList(_Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> TextCondition:
        if ids.ndim != 2 or ids.shape[1] != self.length:
            raise ValueError(f"TextEncoder expects token ids (B, {self.length}), got shape {tuple(ids.shape)}")
        # A negative id (the label -1 that guidance.classifier_free writes for "no label") is PAD too.
        mask = ids > PAD
        h = self.token_embed(ids.clamp(min=0)) + self.position
        eye = torch.eye(self.length, dtype=torch.bool, device=ids.device)
        attend = mask[:, None, :] | eye  # (B, L, L): real keys, and each token itself
        for block in self.blocks:
            h = block(h, attend)
        h = self.norm(h)
        weights = mask.float()
        pooled = (h * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return TextCondition(h, mask, pooled)
