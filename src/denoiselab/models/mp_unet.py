"""The magnitude-preserving U-Net (Karras et al. 2024, EDM2, Sec. 2, Fig. 21; layers in magnitude.py):
``model.magnitude_preserving = true``.

The layout is the U-Net's own (unet.unet_plan and unet.through_skips: the same levels, blocks,
skips and middle as models/unet.py), built from EDM2's blocks instead of the DDPM ones:

- every learned layer an ``MPConv`` (no biases, unit-norm weights, forced weight normalisation);
  no group normalisation: the down path's blocks (EDM2's encoder flavour) pixel-normalise their
  main path, the middle and up path's (the decoder flavour) normalise nothing;
- a block: y = conv(mp_silu(conv(mp_silu(x))) * (1 + g emb_linear(emb))) with the learned gain g
  from 0, joined to the main path by mp_sum(x, y, 0.3) (Eq. 88, EDM2's residual balance), the
  skip's 1x1 convolution where the width changes; activations clipped to +-256 as EDM2 does;
- resampling inside a block, by a 2 x 2 box filter down and nearest-neighbour up (EDM2's [1, 1]
  filter), where models/unet.py has strided and upsampling convolutions;
- the middle's self-attention with pixel-normalised queries, keys and values (cosine attention),
  joined by mp_sum(x, y, 0.3);
- the skips joined by mp_cat(h, skip, t = 0.5) (Eq. 103);
- the time as MP Fourier features (Eq. 75) of c_noise = ln(t + 0.002) / 4 (EDM2 feeds ln(sigma) / 4;
  on the VP chains ln sigma grows as ln(t) / 2 near the data, so ln t spends the features where
  the noise level changes fastest), a label as the one-hot of C + 1 classes (the last: no label)
  times sqrt(C + 1) through an MPConv, the two joined by mp_sum(., ., 0.5), then mp_silu;
- a constant channel of ones appended to the input (EDM2: the network sees the image border),
  and the output convolution's gain learned from 0, so the untrained network predicts 0.

Not built: the second time of MeanFlow and the shortcut (``interval``), text conditioning, and
EDM2's learned uncertainty weighting of the loss; config.py refuses the first two.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import label_indices
from .magnitude import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, pixel_norm
from .unet import head_count, pad_for_levels, through_skips, unet_plan

RES_BALANCE = 0.3  # EDM2's share of the residual branch in mp_sum (Fig. 21)
ATTN_BALANCE = 0.3  # of the self-attention's
LABEL_BALANCE = 0.5  # of the label embedding against the noise embedding's
CONCAT_BALANCE = 0.5  # of the skip against the main path in mp_cat
CLIP_ACT = 256.0  # EDM2 clips every block's output to +-this
TIME_OFFSET = 0.002  # c_noise = ln(t + TIME_OFFSET) / 4: finite at t = 0


def resample(x: torch.Tensor, mode: str) -> torch.Tensor:
    """EDM2's resample with the filter [1, 1]: a 2 x 2 box average down, nearest-neighbour up."""
    if mode == "down":
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


class MPBlock(nn.Module):
    """EDM2's U-Net block (Fig. 21) without its attention (the middle's is ``MPSelfAttention``):
    ``encoder`` (the down path) pixel-normalises the main path after its skip convolution; the
    decoder flavour (middle, up path) applies the skip convolution where the branches join.
    ``resample``: "keep", "down" or "up", applied first."""

    def __init__(self, cin: int, cout: int, emb_dim: int, *, encoder: bool, resample: str = "keep", dropout: float = 0.0):
        super().__init__()
        self.encoder, self.resample = encoder, resample
        self.reads_skip = resample != "up"  # unet.through_skips: an upsampler reads no skip
        self.emb_gain = nn.Parameter(torch.zeros(()))
        self.conv_res0 = MPConv(cout if encoder else cin, cout, 3)
        self.emb_linear = MPConv(emb_dim, cout)
        self.conv_res1 = MPConv(cout, cout, 3)
        self.conv_skip = MPConv(cin, cout, 1) if cin != cout else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = resample(x, self.resample)
        if self.encoder:
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = pixel_norm(x)
        y = self.conv_res0(mp_silu(x))
        scale = self.emb_linear(emb, gain=self.emb_gain) + 1  # 1 at initialisation: the block ignores the time at first
        y = self.conv_res1(self.dropout(mp_silu(y * scale[:, :, None, None])))
        if not self.encoder and self.conv_skip is not None:
            x = self.conv_skip(x)
        return mp_sum(x, y, RES_BALANCE).clamp(-CLIP_ACT, CLIP_ACT)


class MPSelfAttention(nn.Module):
    """Multi-head self-attention over the H * W positions with pixel-normalised q, k and v per head
    (EDM2's cosine attention), joined to its input by mp_sum(x, y, 0.3)."""

    def __init__(self, channels: int):
        super().__init__()
        self.heads = head_count(channels)
        self.qkv = MPConv(channels, 3 * channels, 1)
        self.proj = MPConv(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).reshape(b, self.heads, c // self.heads, 3, h * w)
        q, k, v = pixel_norm(qkv, dim=2).transpose(2, 4).unbind(3)  # each (B, heads, HW, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v, as EDM2's
        y = self.proj(out.transpose(-1, -2).reshape(b, c, h, w))
        return mp_sum(x, y, ATTN_BALANCE)


class MPUNet(nn.Module):
    """The magnitude-preserving image denoiser with the U-Net's contract ``forward(x, t, y=None)``
    (models/unet.py: x (B, C, H, W), t float (B,) in [0, 1] or a scalar, y None or int64 (B,) with
    -1 for no label) and the U-Net's sizes: ``mults``, ``blocks``, ``attention``, ``dropout``; the
    embedding 4 x ``base`` wide, ``time_dim`` Fourier features."""

    def __init__(
        self,
        channels: int,
        *,  # the sizes by name, as models.build_model gives them
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks: int = 1,
        time_dim: int = 64,
        num_classes: int = 0,
        attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if channels < 1:
            raise ValueError(f"MPUNet needs channels >= 1, got {channels=}")
        plan = unet_plan(base, mults, blocks)
        self.channels, self.levels, self.num_classes = channels, len(mults), num_classes
        emb_dim = 4 * base  # as models/unet.py
        self.emb_fourier = MPFourier(time_dim)
        self.emb_noise = MPConv(time_dim, emb_dim)
        self.emb_label = MPConv(num_classes + 1, emb_dim) if num_classes > 0 else None

        self.inp = MPConv(channels + 1, base, 3)  # + the channel of ones
        self.down = nn.ModuleList(
            MPBlock(l.cin, l.cout, emb_dim, encoder=True, resample="keep" if l.kind == "block" else "down", dropout=dropout) for l in plan.down
        )
        ch = plan.middle
        self.mid1 = MPBlock(ch, ch, emb_dim, encoder=False, dropout=dropout)
        self.mid_attn = MPSelfAttention(ch) if attention else nn.Identity()
        self.mid2 = MPBlock(ch, ch, emb_dim, encoder=False, dropout=dropout)
        self.up = nn.ModuleList(
            MPBlock(l.cin, l.cout, emb_dim, encoder=False, resample="keep" if l.kind == "block" else "up", dropout=dropout) for l in plan.up
        )
        self.out = MPConv(plan.out, channels, 3)
        self.out_gain = nn.Parameter(torch.zeros(()))  # learned from 0: the untrained network predicts 0

    def embedding(self, t: torch.Tensor, y: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device).to(self.emb_fourier.freqs.dtype)
        if t.ndim == 2:
            raise ValueError("MPUNet: the magnitude-preserving U-Net takes one time per sample, not (t, r) pairs")
        emb = self.emb_noise(self.emb_fourier(torch.log(t.expand(batch) + TIME_OFFSET) / 4))
        if self.emb_label is not None:
            index = label_indices(y, self.num_classes, batch, device)
            one_hot = F.one_hot(index, self.num_classes + 1).to(emb.dtype) * math.sqrt(self.num_classes + 1)  # unit magnitude
            emb = mp_sum(emb, self.emb_label(one_hot), LABEL_BALANCE)
        return mp_silu(emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"MPUNet expects (B, {self.channels}, H, W) images, got shape {tuple(x.shape)}")
        b, _, height, width = x.shape
        emb = self.embedding(t, y, b, x.device)
        h = pad_for_levels(x, self.levels)
        h = self.inp(torch.cat([h, torch.ones_like(h[:, :1])], dim=1))

        def middle(h: torch.Tensor) -> torch.Tensor:
            return self.mid2(self.mid_attn(self.mid1(h, emb)), emb)

        h = through_skips(h, self.down, middle, self.up, lambda layer, h: layer(h, emb), lambda h, skip: mp_cat(h, skip, t=CONCAT_BALANCE))
        return self.out(h, gain=self.out_gain)[:, :, :height, :width]
