"""Which pixels attend to which word: the attention probabilities of a U-Net's cross-attention
layers (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models",
Sec. 3.3), captured while the network runs.

A cross-attention layer (models/unet.py, CrossAttention) lets every position i of the image ask
the caption's tokens for values: softmax_j(q_i . k_j / sqrt(d)) over the real tokens j.  For one
token, that probability over the H x W positions is a map of where the image reads that word
(the maps of Hertz et al. 2022, "Prompt-to-Prompt", Sec. 3.1, at the scale of this toolkit).

Capturing is a side computation: inside ``CrossAttentionRecorder`` each layer also forms its
probabilities from the queries and keys it computed anyway, and its output is the one it gives
without the recorder, bit for bit.  The recorder lives in a ContextVar, so concurrent samplings
of one shared, read-only network (the playground's server) each see only their own layers.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_RECORDER: ContextVar[CrossAttentionRecorder | None] = ContextVar("cross_attention_recorder", default=None)


def attention_probabilities(q: torch.Tensor, k: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) over the keys ``keys`` allows: q (B, heads, HW, d), k (B, heads, L,
    d), keys a bool mask broadcastable to (B, heads, HW, L) -> (B, heads, HW, L), each row summing
    to 1 over the allowed tokens (scaled_dot_product_attention's weights, written out)."""
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.softmax(logits.masked_fill(~keys, float("-inf")), dim=-1)


def active_recorder() -> CrossAttentionRecorder | None:
    """The recorder of this context, or None (then the layers compute nothing extra)."""
    return _RECORDER.get()


@dataclass(frozen=True)
class LayerRecord:
    """One cross-attention layer's probabilities in one network call, averaged over its heads."""

    probs: torch.Tensor  # (B, h * w, L)
    size: tuple[int, int]  # (h, w): the resolution the layer attends at
    present: torch.Tensor  # (B,) bool: the caption has a token (False: the null condition, no map)


class CrossAttentionRecorder:
    """``with CrossAttentionRecorder() as rec: model(x, t, ids)`` keeps every cross-attention
    layer's probabilities of the calls made inside; ``rec.maps(size)`` turns them into maps."""

    def __init__(self):
        self.layers: list[LayerRecord] = []
        self._token = None

    def __enter__(self) -> CrossAttentionRecorder:
        self._token = _RECORDER.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _RECORDER.reset(self._token)

    def record(self, probs: torch.Tensor, size: tuple[int, int], present: torch.Tensor) -> None:
        """Called by a cross-attention layer: ``probs`` (B, heads, h * w, L)."""
        self.layers.append(LayerRecord(probs.detach().float().mean(dim=1), (int(size[0]), int(size[1])), present.detach()))

    def resolutions(self) -> dict[tuple[int, int], int]:
        """(h, w) -> how many layers attended at that resolution."""
        out: dict[tuple[int, int], int] = {}
        for layer in self.layers:
            out[layer.size] = out.get(layer.size, 0) + 1
        return out

    def maps(self, image_size: tuple[int, int], resolution: tuple[int, int] | None = None) -> torch.Tensor | None:
        """(B', L, H, W): for each caption that has tokens (B' of the B rows, in order), the
        attention probability of every token at every pixel, averaged over the heads and the layers
        of ``resolution`` (default: the finest one recorded), upsampled bilinearly to
        ``image_size``; None when nothing was recorded or no caption has a token.

        At the layers' own resolution every pixel's probabilities over the tokens sum to 1;
        bilinear upsampling mixes neighbouring pixels with weights summing to 1, so they still do.
        A U-Net pads odd sizes on the bottom and right (models/unet.py): the map is upsampled to the
        padded size and cropped like the network's output."""
        if not self.layers:
            return None
        if resolution is None:
            resolution = max(self.resolutions(), key=lambda s: s[0] * s[1])
        chosen = [layer for layer in self.layers if layer.size == resolution]
        if not chosen:
            raise ValueError(f"no cross-attention layer attends at {resolution}; recorded {sorted(self.resolutions())}")
        present = chosen[0].present
        if not bool(present.any()):
            return None
        probs = torch.stack([layer.probs for layer in chosen]).mean(dim=0)[present]  # (B', h w, L)
        h, w = resolution
        grid = probs.transpose(1, 2).reshape(probs.shape[0], probs.shape[2], h, w)
        height, width = image_size
        scale = 1  # every level halves the padded size: it is h times a power of two
        while h * scale < height or w * scale < width:
            scale *= 2
        up = F.interpolate(grid, size=(h * scale, w * scale), mode="bilinear", align_corners=False)
        return up[:, :, :height, :width]
