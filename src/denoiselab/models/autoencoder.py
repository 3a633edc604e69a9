"""A small convolutional autoencoder for latent diffusion (Rombach et al. 2022, "High-Resolution
Image Synthesis with Latent Diffusion Models", Sec. 3.1).

The encoder maps an image x (C, H, W) to a latent z that is either *spatial*, (c, H / f, W / f)
with f = 2^downsample (Rombach et al.'s layout: 2 x 4 x 4 for 8 x 8 digits), or a *flat* vector
of ``flat_dim`` numbers (2 dimensions can be drawn as a scatter).  The decoder maps z back.

Two kinds:

- ``variational=True``: a VAE.  The encoder gives the mean and log-variance of a diagonal
  Gaussian q(z | x); training draws z from it and adds ``kl_weight`` x KL(q(z | x) || N(0, I))
  (``gaussian_kl``) to the reconstruction error.  Rombach et al.'s "KL-reg." autoencoders use
  a weight of about 1e-6, which barely regularises the latent; larger weights give a latent
  close to N(0, I) at the price of blurrier reconstructions.
- ``variational=False``: a plain autoencoder, z = encoder(x).

``latent_scale`` (a buffer, saved with the weights) is 1 / std of the training set's latents,
measured after training (latent diffusion's ``scale_by_std``): ``encode`` multiplies by it and
``decode`` divides by it, so the diffusion model sees latents of unit variance, the variance its
noise schedule assumes (latent-diffusion issues #187, #227: unscaled latents sample as noise).
Encoding gives the posterior mean (the mode), so a data set is encoded once, deterministically.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

# Width of the fully connected layer between the convolutions and a flat latent.
FLAT_HIDDEN = 128
# Rombach et al.'s DiagonalGaussianDistribution clamps the log-variance to this range.
LOGVAR_RANGE = (-30.0, 20.0)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag(exp(logvar))) || N(0, I)) per sample, in nats, summed over all but the
    first dimension: 0.5 * sum(mean^2 + var - 1 - log var) (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


class Reconstruction(NamedTuple):
    """An autoencoder's pass over a batch: the decoded images and the posterior q(z | x) they came
    from (log-variance None for a plain autoencoder), in unscaled latent units."""

    image: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor | None


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class Autoencoder(nn.Module):
    """Conv encoder and decoder, ``downsample`` halvings of the image side; see the module text.

    ``forward(x)`` reconstructs x through the posterior mean (what the figures and metrics use),
    ``forward(x, noise)`` through a draw from the posterior (what training decodes).
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        *,
        hidden: int = 32,
        downsample: int = 1,
        latent_channels: int = 2,
        flat_dim: int = 0,
        variational: bool = True,
    ):
        super().__init__()
        channels, height, width = (int(v) for v in shape)
        factor = 2**downsample
        if height % factor or width % factor:
            raise ValueError(f"{height} x {width} images do not halve {downsample} times evenly")
        self.image_shape = (channels, height, width)
        self.variational = variational
        self.flat_dim = flat_dim
        small = (height // factor, width // factor)
        moments = 2 if variational else 1  # mean and log-variance, or z itself

        encoder: list[nn.Module] = [_conv(channels, hidden), nn.SiLU(), _conv(hidden, hidden), nn.SiLU()]
        for _ in range(downsample):
            encoder += [_conv(hidden, hidden, stride=2), nn.SiLU(), _conv(hidden, hidden), nn.SiLU()]
        if flat_dim:
            encoder += [nn.Flatten(), nn.Linear(hidden * small[0] * small[1], FLAT_HIDDEN), nn.SiLU(), nn.Linear(FLAT_HIDDEN, moments * flat_dim)]
            self.latent_shape: tuple[int, ...] = (flat_dim,)
            decoder: list[nn.Module] = [
                nn.Linear(flat_dim, FLAT_HIDDEN), nn.SiLU(), nn.Linear(FLAT_HIDDEN, hidden * small[0] * small[1]), nn.SiLU(),
                nn.Unflatten(1, (hidden, *small)),
            ]  # fmt: skip
        else:
            encoder.append(nn.Conv2d(hidden, moments * latent_channels, 1))
            self.latent_shape = (latent_channels, *small)
            decoder = [_conv(latent_channels, hidden), nn.SiLU()]
        decoder += [_conv(hidden, hidden), nn.SiLU()]
        for _ in range(downsample):
            # Nearest-neighbour x2 then Conv3x3, as the U-Net's Upsample (no checkerboard).
            decoder += [nn.Upsample(scale_factor=2.0, mode="nearest"), _conv(hidden, hidden), nn.SiLU(), _conv(hidden, hidden), nn.SiLU()]
        decoder.append(_conv(hidden, channels))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.register_buffer("latent_scale", torch.ones(()))

    @property
    def latent_dim(self) -> int:
        return math.prod(self.latent_shape)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mean, log-variance) of q(z | x) in unscaled latent units; log-variance None for a
        plain autoencoder."""
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"the autoencoder takes images of shape {self.image_shape}, got {tuple(x.shape[1:])}")
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode_unscaled(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> latents of (about) unit variance: the posterior mean times latent_scale."""
        return self.posterior(x)[0] * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (what the diffusion model samples) -> images."""
        return self.decode_unscaled(z / self.latent_scale)

    def forward(self, x: torch.Tensor, noise: Callable[..., torch.Tensor] | None = None) -> Reconstruction:
        """x encoded and decoded, with the posterior: z is its mean, or, given ``noise(shape,
        dtype=)`` and a VAE, the draw z = mean + std * noise (the reparameterisation trick, Kingma
        & Welling 2014).  Training's loss takes everything it needs from this one call, so
        DistributedDataParallel, which synchronises the gradients of what ``forward`` computed,
        sees the whole step (training/parallel.py)."""
        mean, logvar = self.posterior(x)
        z = mean
        if logvar is not None and noise is not None:
            z = mean + torch.exp(0.5 * logvar) * noise(mean.shape, dtype=mean.dtype).to(mean.device)
        return Reconstruction(self.decode_unscaled(z), mean, logvar)
