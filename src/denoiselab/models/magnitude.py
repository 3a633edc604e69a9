"""Magnitude-preserving layers (Karras et al. 2024, "Analyzing and Improving the Training Dynamics
of Diffusion Models", EDM2, Sec. 2 and App. B; equation numbers are the paper's).

The magnitude of a tensor is the root mean square of its elements, M[x] = ||x|| / sqrt(numel)
(Eq. 5 on a batch of activations).  Every layer here maps input of unit magnitude to output of unit
magnitude in expectation, at initialisation and throughout training, so the activations neither
grow nor shrink with depth and nothing needs a data-dependent normalisation (EDM2's configs D, F
and G, Table 1):

- ``MPConv``: a convolution or linear layer without bias whose effective weight has unit norm per
  output channel, w_i / ||w_i|| (Eq. 47: the weight normalisation that makes a unit-variance,
  uncorrelated input give a unit-variance output), and whose stored weight is itself put back to
  unit norm after each optimiser step ("forced weight normalisation", Eq. 66; EDM2's code does it
  in the next training forward), so the weights cannot grow and the effective learning rate does
  not decay (EDM2 Sec. 2.3, config E).
- ``mp_silu`` (Eq. 81), ``mp_sum`` (Eq. 88), ``mp_cat`` (Eq. 103): the fixed-function layers
  rescaled to unit magnitude (config G).
- ``MPFourier``: Fourier features of the noise level with random frequencies, scaled by sqrt(2)
  (Eq. 75).
- ``pixel_norm``: every pixel's channel vector scaled to unit magnitude, in place of group
  normalisation (config F).

Where this departs from the reference code (NVlabs/edm2, training/networks_edm2.py): the stored
weight rows have unit L2 norm, where EDM2 stores unit-variance elements (norm sqrt(fan_in)) and
divides by sqrt(fan_in) in the forward.  The effective weight is the same; only the optimiser sees
a different scale.  Adam's step is about the learning rate in every element, so a stored row moves
by about lr / (its elements' size) a step: EDM2's, of unit elements at lr 1e-2, by 0.01; rows of
unit norm at this project's lr 1e-3 (elements 1 / sqrt(fan_in), fan_in 144 to 576 here) by 0.012
to 0.024, where rows stored at norm sqrt(fan_in) would move 0.001, ten times slower than EDM2's.
Measured on the digits (BENCHMARKS.md, issue 28), this network still wanted lr 1e-2, not the
recipe's 1e-3 (not measured why; one guess: the scalar gains, learned from 0, move by about the learning rate a step whatever
the rows' scale).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

EPS = 1e-4  # EDM2's epsilon of every normalisation
SILU_MAGNITUDE = 0.596  # M[silu(x)] for x ~ N(0, 1) (Eq. 81)


def _at_least_float32(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)  # norms of bf16 / fp16 in fp32, of fp64 in fp64


def unit_rows(w: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``w`` with every output channel (first axis) scaled to unit L2 norm (Eq. 47's w_i / ||w_i||)."""
    norm = torch.linalg.vector_norm(w, dim=tuple(range(1, w.ndim)), keepdim=True, dtype=_at_least_float32(w))
    return w / (eps + norm).to(w.dtype)


def pixel_norm(x: torch.Tensor, dim: int = 1, eps: float = EPS) -> torch.Tensor:
    """Every pixel's vector of C channels (axis ``dim``) scaled to unit magnitude, ||x|| = sqrt(C)
    (EDM2 config F)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=_at_least_float32(x)) / math.sqrt(x.shape[dim])
    return x / (eps + norm).to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU divided by its output magnitude on unit-normal input (Eq. 81)."""
    return F.silu(x) / SILU_MAGNITUDE


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """(1 - t) a + t b over sqrt((1 - t)^2 + t^2): a weighted sum of two uncorrelated unit-magnitude
    tensors that keeps unit magnitude (Eq. 88); t is b's share (EDM2's residual balance 0.3)."""
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t**2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Concatenation along ``dim`` that keeps unit magnitude and gives b a share t of it whatever
    the two widths N_a, N_b (Eq. 103): a scaled by C (1 - t) / sqrt(N_a), b by C t / sqrt(N_b),
    C = sqrt((N_a + N_b) / ((1 - t)^2 + t^2))."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t**2))
    return torch.cat([a * (c * (1 - t) / math.sqrt(na)), b * (c * t / math.sqrt(nb))], dim=dim)


class MPFourier(nn.Module):
    """sqrt(2) cos(2 pi (f c + phi)) per channel, f ~ N(0, bandwidth^2), phi ~ U[0, 1), fixed at
    initialisation (stored with the weights): Fourier features of unit magnitude (Eq. 75)."""

    def __init__(self, channels: int, bandwidth: float = 1.0):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(channels))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return (c.to(self.freqs.dtype)[:, None] * self.freqs[None] + self.phases).cos() * math.sqrt(2)


class UnitRowsParameter(nn.Parameter):
    """A weight that forced weight normalisation keeps at unit norm per output channel: every
    optimiser step that updates it puts it back (EDM2 Eq. 66, ``_force_weight_normalisation``).
    A subclass of Parameter, so that a copy of a network (the EMA's, the FLOP counter's) keeps it."""


@torch.no_grad()
def _force_weight_normalisation(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """After every optimiser step (of any optimiser, fused ones included): the stored rows of each
    UnitRowsParameter it updates back to unit norm (Eq. 66).  The checkpoint, the EMA and the next
    forward all see the normalised weight, so a resumed run goes on exactly as an uninterrupted one."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if isinstance(p, UnitRowsParameter):
                p.copy_(unit_rows(p))


register_optimizer_step_post_hook(_force_weight_normalisation)


class MPConv(nn.Module):
    """A convolution (``kernel`` > 0, odd, padded to keep the size) or a linear layer (``kernel`` =
    0), no bias, with the effective weight gain * w_i / ||w_i|| (Eq. 47) whatever the stored
    weight's scale, and (``forced``) the stored weight kept at unit rows by forced weight
    normalisation (Eq. 66; ``UnitRowsParameter``).  ``gain`` (a learned scalar where the caller
    passes one) scales the output."""

    def __init__(self, cin: int, cout: int, kernel: int = 0, *, forced: bool = True):
        super().__init__()
        shape = (cout, cin, kernel, kernel) if kernel else (cout, cin)
        weight = unit_rows(torch.randn(shape))
        self.weight = UnitRowsParameter(weight) if forced else nn.Parameter(weight)

    def effective_weight(self, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        return unit_rows(self.weight) * gain

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.effective_weight(gain).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)
