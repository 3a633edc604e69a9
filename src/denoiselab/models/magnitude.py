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
  unit norm at the first training forward after each optimiser step ("forced weight
  normalisation", Eq. 66), so the weights cannot grow and the effective learning rate does not
  decay (EDM2 Sec. 2.3, config E).
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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

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


class MPConv(nn.Module):
    """A convolution (``kernel`` > 0, odd, padded to keep the size) or a linear layer (``kernel`` =
    0), no bias, with the effective weight gain * w_i / ||w_i|| (Eq. 47) and forced weight
    normalisation of the stored weight (Eq. 66; see ``force_normalise``).  ``gain`` (a learned
    scalar where the caller passes one) scales the output."""

    def __init__(self, cin: int, cout: int, kernel: int = 0):
        super().__init__()
        shape = (cout, cin, kernel, kernel) if kernel else (cout, cin)
        self.weight = nn.Parameter(unit_rows(torch.randn(shape)))
        self._normalised_version: int | None = None  # the weight's version counter after the last forced normalisation

    @property
    def fan_in(self) -> int:
        return self.weight[0].numel()

    @torch.compiler.disable
    @torch.no_grad()
    def force_normalise(self) -> None:
        """Put the stored weight back to unit norm per output channel (Eq. 66), once after every
        change of it: the optimiser's step bumps the weight's version counter, and later forwards
        of the same step (accumulated micro-batches, a second call of the network) leave it, and
        the graphs they saved, alone.  A run resumed from a checkpoint normalises at its first
        forward as the uninterrupted run does after the step it saved."""
        if self.weight._version != self._normalised_version:
            self.weight.copy_(unit_rows(self.weight))
            self._normalised_version = self.weight._version

    def effective_weight(self, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        return unit_rows(self.weight) * gain

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        if self.training:
            self.force_normalise()
        w = self.effective_weight(gain).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)
