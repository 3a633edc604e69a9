"""A small U-Net denoiser for images (N, C, H, W) with pixels in [-1, 1].

The layout is the DDPM U-Net (Ho et al. 2020, App. B), itself the PixelCNN++ U-Net
(Salimans et al. 2017) built from Wide ResNet blocks (Zagoruyko & Komodakis 2016): a down
path of residual blocks and strided convolutions, a middle with self-attention, and an up path
that concatenates the down path's activations (the skips).  Two changes follow Dhariwal &
Nichol 2021 ("Diffusion Models Beat GANs", Sec. 3):

- the time (+ label) embedding enters every residual block as a scale and a shift of the
  normalised activations, h = GroupNorm(h) * (1 + scale) + shift ("AdaGN"), instead of being
  added to h.  Seed 003 ("time embedding injected at each layer ... via scale-and-shift")
  asks for the same thing;
- the last convolution of every residual block, the attention output projection and the
  output convolution start at zero.  Every block is then the identity at initialisation and
  the untrained network predicts 0, the mean of eps, so training starts from a sensible loss.

Text conditioning (``text_dim`` > 0; Rombach et al. 2022, "High-Resolution Image Synthesis with
Latent Diffusion Models", Sec. 3.3): the text encoder's per-token vectors are the keys and values
of a cross-attention layer after each residual block at the ``cross_levels`` resolutions and after
the middle self-attention, Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V with Q from the image
and K, V from the tokens; the pooled text vector is projected and added to the time embedding.
With ``cross_attention=False`` the text enters only as its pooled vector in the time embedding:
the ablation that reads a caption as one averaged vector, with no word placed.
An image without text (a caption with no tokens: the null condition of classifier-free guidance)
skips both exactly, so it takes the unconditional path of the same network.  Without text
(``text_dim`` = 0) no layer is added and the network is the one above, parameter for parameter.

Sizes that do not halve evenly (7 x 7, 28 x 28 with three downsamplings) are padded on the
bottom and right to a multiple of 2^(levels - 1) and the output is cropped back.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..text.encoder import TextCondition
from .attention_maps import active_recorder, attention_probabilities
from .embeddings import LabelEmbedding, SinusoidalEmbedding


def group_count(channels: int, groups: int) -> int:
    """The largest g <= groups that divides ``channels``, so GroupNorm accepts any width."""
    g = max(1, min(groups, channels))
    while channels % g:
        g -= 1
    return g


def head_count(channels: int, head_dim: int = 32) -> int:
    """About ``channels / head_dim`` heads, reduced until it divides ``channels``."""
    h = max(1, channels // head_dim)
    while channels % h:
        h -= 1
    return h


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> Conv3x3 -> AdaGN(emb) -> SiLU -> Dropout -> Conv3x3 (zero), plus skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(group_count(cin, groups), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)  # -> (scale, shift)
        self.norm2 = nn.GroupNorm(group_count(cout, groups), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H * W positions, pre-GroupNorm, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.heads = head_count(channels)
        self.norm = nn.GroupNorm(group_count(channels, groups), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, head_dim)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class CrossAttention(nn.Module):
    """Multi-head attention from the H * W positions (queries) to the caption's tokens (keys and
    values), pre-GroupNorm, residual, output projection zero at initialisation.  Padding tokens
    are masked; an image whose caption has no token is left exactly as it is."""

    def __init__(self, channels: int, context_dim: int, groups: int):
        super().__init__()
        self.heads = head_count(channels)
        self.norm = nn.GroupNorm(group_count(channels, groups), channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, text: TextCondition) -> torch.Tensor:
        b, c, h, w = x.shape
        present = text.present
        q = self.q(self.norm(x)).reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
        k, v = self.kv(text.tokens).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # A caption without tokens would leave a softmax over nothing (NaN): let it see every
        # position, then drop its result below.
        keys = (text.mask | ~present[:, None])[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
        recorder = active_recorder()
        if recorder is not None:  # which pixels attend to which token (attention_maps.py); out is untouched
            recorder.record(attention_probabilities(q, k, keys), (h, w), present)
        out = x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))
        return torch.where(present[:, None, None, None], out, x)


class CrossAttendedBlock(nn.Module):
    """A residual block followed by cross-attention to the caption's tokens."""

    def __init__(self, block: ResBlock, context_dim: int, groups: int):
        super().__init__()
        self.block = block
        self.cross = CrossAttention(block.norm2.num_channels, context_dim, groups)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, text: TextCondition | None) -> torch.Tensor:
        h = self.block(x, emb)
        return h if text is None else self.cross(h, text)


def _apply(layer: nn.Module, h: torch.Tensor, emb: torch.Tensor, text: TextCondition | None) -> torch.Tensor:
    if isinstance(layer, CrossAttendedBlock):
        return layer(h, emb, text)
    return layer(h, emb) if isinstance(layer, ResBlock) else layer(h)


class Layer(NamedTuple):
    """One layer of a U-Net's down or up path: a residual "block" from ``cin`` to ``cout`` channels
    (an up-path block's ``cin`` counts the skip it reads), or a "down" / "up" resampling of ``cin``
    channels, at resolution ``level`` (0 the finest)."""

    kind: str
    cin: int
    cout: int
    level: int


class UNetPlan(NamedTuple):
    down: list[Layer]
    middle: int  # channels of the middle blocks
    up: list[Layer]
    out: int  # channels of the up path's last activation


def unet_plan(base: int, mults: tuple[int, ...], blocks: int) -> UNetPlan:
    """The DDPM U-Net's layout (Ho et al. 2020, App. B), shared by every U-Net here (this one and the
    magnitude-preserving one, mp_unet.py): ``mults[i] * base`` channels at level i, ``blocks``
    residual blocks a level on the way down and one more on the way up, one halving between levels.
    Every down-path activation (the input convolution's first) is pushed as a skip, and every
    up-path block reads the last one pushed (``through_skips``)."""
    mults = tuple(int(m) for m in mults)
    if not mults or min(mults) < 1 or base < 1 or blocks < 0:
        raise ValueError(f"UNet needs base, mults >= 1 and blocks >= 0, got {base=}, {blocks=}, {mults=}")
    down, skips, ch = [], [base], base  # channel count of every activation pushed onto the skip stack
    for i, m in enumerate(mults):
        for _ in range(blocks):
            down.append(Layer("block", ch, base * m, i))
            ch = base * m
            skips.append(ch)
        if i < len(mults) - 1:
            down.append(Layer("down", ch, ch, i))
            skips.append(ch)
    middle, up = ch, []
    for i, m in reversed(list(enumerate(mults))):
        for _ in range(blocks + 1):
            up.append(Layer("block", ch + skips.pop(), base * m, i))
            ch = base * m
        if i > 0:
            up.append(Layer("up", ch, ch, i))
    assert not skips
    return UNetPlan(down, middle, up, ch)


def pad_for_levels(x: torch.Tensor, levels: int) -> torch.Tensor:
    """Every level halves the size: pad on the bottom and right so each halving is exact and the
    skips line up (the caller crops the output back)."""
    mult = 2 ** (levels - 1)
    pad_h, pad_w = -x.shape[-2] % mult, -x.shape[-1] % mult
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def through_skips(
    h: torch.Tensor,
    down: Iterable[nn.Module],
    middle: Callable[[torch.Tensor], torch.Tensor],
    up: Iterable[nn.Module],
    apply: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    join: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The U-Net's path (``unet_plan``): ``h`` (the input convolution's output) and every down-path
    output pushed, the middle, then every up-path layer applied to ``join(h, the last pushed)``,
    except the upsamplers (``reads_skip = False``), which read ``h`` alone."""
    stack = [h]
    for layer in down:
        h = apply(layer, h)
        stack.append(h)
    h = middle(h)
    for layer in up:
        h = apply(layer, join(h, stack.pop()) if getattr(layer, "reads_skip", True) else h)
    assert len(stack) == 0
    return h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then Conv3x3 (no transposed-convolution checkerboard, Odena et al. 2016)."""

    reads_skip = False  # through_skips: an upsampler reads no skip

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """Image denoiser with the model-function contract ``forward(x, t, y=None)``.

    ``x``: (B, C, H, W); ``t``: float (B,) in [0, 1] (a scalar is broadcast); ``y``: None, or
    int64 (B,) or a scalar, -1 meaning "no label".  ``mults[i] * base`` channels at level i,
    ``blocks`` residual blocks per level on the way down (one more on the way up, as in DDPM),
    self-attention in the middle, at the lowest resolution, when ``attention``.  ``text_dim`` > 0
    adds cross-attention to a text.encoder.TextCondition of that width at the levels
    ``cross_levels`` (default: the lowest) and in the middle; ``forward(..., text=)`` takes it.
    ``interval``: a second time, as residual-mlp's (models/mlp.py): ``t`` may be (B, 2) holding
    (t, r), MeanFlow's u(z, r, t) (meanflow.py) and the shortcut's step d = t - r (shortcut.py).
    """

    def __init__(
        self,
        channels: int,
        base: int = 32,
        mults: tuple[int, ...] = (1, 2, 2),
        blocks: int = 1,
        time_dim: int = 64,
        num_classes: int = 0,
        attention: bool = True,
        groups: int = 8,
        dropout: float = 0.0,
        text_dim: int = 0,
        cross_attention: bool = True,
        cross_levels: tuple[int, ...] | None = None,
        interval: bool = False,
    ):
        super().__init__()
        mults = tuple(int(m) for m in mults)
        if channels < 1:
            raise ValueError(f"UNet needs channels >= 1, got {channels=}")
        plan = unet_plan(base, mults, blocks)
        self.channels = channels
        self.levels = len(mults)
        emb_dim = 4 * base  # DDPM's convention: the embedding is 4x the base width
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(time_dim), nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        # The second time as residual-mlp takes it (Geng et al. 2025, Sec. 4.3: the network sees
        # (t, t - r)): an embedding of the interval t - r added to the time's, so that every block
        # reads both through the one embedding; None for a network of one time.
        self.interval_embed = (
            nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)) if interval else None
        )
        self.label_embed = LabelEmbedding(num_classes, emb_dim) if num_classes > 0 else None
        self.text_dim = int(text_dim)
        levels = (self.levels - 1,) if cross_levels is None else tuple(int(v) for v in cross_levels)
        self.cross_attention = bool(self.text_dim and cross_attention)
        levels = levels if self.cross_attention else ()
        if self.text_dim and not all(0 <= v < self.levels for v in levels):
            raise ValueError(f"UNet cross_levels must lie in 0..{self.levels - 1}, got {levels}")

        def block(cin: int, cout: int, level: int) -> nn.Module:
            res = ResBlock(cin, cout, emb_dim, groups, dropout)
            return CrossAttendedBlock(res, self.text_dim, groups) if self.text_dim and level in levels else res

        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList(block(l.cin, l.cout, l.level) if l.kind == "block" else Downsample(l.cin) for l in plan.down)
        ch = plan.middle
        self.mid1 = ResBlock(ch, ch, emb_dim, groups, dropout)
        self.mid_attn = SelfAttention(ch, groups) if attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, emb_dim, groups, dropout)
        if self.cross_attention:
            self.mid_cross = CrossAttention(ch, self.text_dim, groups)
        if self.text_dim:
            self.text_embed = nn.Linear(self.text_dim, emb_dim)  # the pooled vector joins the time embedding

        self.up = nn.ModuleList(block(l.cin, l.cout, l.level) if l.kind == "block" else Upsample(l.cin) for l in plan.up)
        ch = plan.out

        self.out = nn.Sequential(
            nn.GroupNorm(group_count(ch, groups), ch), nn.SiLU(), _zero(nn.Conv2d(ch, channels, 3, padding=1))
        )

    def _embedding(self, t: torch.Tensor, y: torch.Tensor | None, batch: int, device, text: TextCondition | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=device).float()
        r = None
        if t.ndim == 2:  # (t, r) pairs
            if self.interval_embed is None:
                raise ValueError("UNet: this network takes one time per sample; (t, r) pairs need interval=True (train.objective = meanflow or shortcut)")
            t, r = t[:, 0], t[:, 1]
        t = t.expand(batch)
        emb = self.time_embed(t)
        if self.interval_embed is not None:  # one time given: r = t, the instantaneous velocity
            emb = emb + self.interval_embed(t - (t if r is None else r.expand(batch)))
        if self.label_embed is not None:
            emb = emb + self.label_embed(y, batch, device)
        if text is not None:
            emb = torch.where(text.present[:, None], emb + self.text_embed(text.pooled), emb)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, text: TextCondition | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"UNet expects (B, {self.channels}, H, W) images, got shape {tuple(x.shape)}")
        if text is not None and not self.text_dim:
            raise ValueError("UNet: text was given to a network built without text_dim")
        b, _, height, width = x.shape
        emb = self._embedding(t, y, b, x.device, text)

        h = self.inp(pad_for_levels(x, self.levels))

        def middle(h: torch.Tensor) -> torch.Tensor:
            h = self.mid_attn(self.mid1(h, emb))
            if text is not None and self.cross_attention:
                h = self.mid_cross(h, text)
            return self.mid2(h, emb)

        h = through_skips(h, self.down, middle, self.up, lambda layer, h: _apply(layer, h, emb, text), lambda h, skip: torch.cat([h, skip], dim=1))
        return self.out(h)[:, :, :height, :width]
