"""A U-Net conditioned on a caption: the model-function contract ``forward(x, t, y=None)`` with
``y`` the caption's token ids (B, L) (text.tokenizer), so guidance, samplers and the training loop
pass a prompt where they would pass a class label.

The text encoder turns the ids into per-token vectors and a pooled vector (text.encoder), which
the U-Net reads by cross-attention and in its time embedding (models/unet.py).  An empty caption
(all PAD, or the label -1 that guidance.classifier_free writes for "no label") is the null
condition: the U-Net's unconditional path, exactly.  The encoder, pretrained CLIP-style, is
frozen unless ``train_encoder`` (Stable Diffusion keeps its CLIP text encoder frozen too).
"""

from __future__ import annotations

import torch
from torch import nn

from ..text.encoder import TextEncoder
from .unet import UNet


class TextConditionedUNet(nn.Module):
    def __init__(self, unet: UNet, encoder: TextEncoder, train_encoder: bool = False):
        super().__init__()
        if unet.text_dim != encoder.width:
            raise ValueError(f"the U-Net reads text of width {unet.text_dim}, the encoder gives {encoder.width}")
        self.unet, self.encoder = unet, encoder
        self.train_encoder = train_encoder
        encoder.requires_grad_(train_encoder)

    @property
    def channels(self) -> int:
        return self.unet.channels

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            return self.unet(x, t)
        ids = torch.as_tensor(y, device=x.device).long()
        if ids.ndim != 2:
            raise ValueError(f"a text-conditioned U-Net takes token ids (B, {self.encoder.length}) as y, got shape {tuple(ids.shape)}")
        return self.unet(x, t, text=self.encoder(ids.expand(x.shape[0], -1)))
