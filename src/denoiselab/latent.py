"""Latent diffusion's autoencoder: its training objective, the latent scale, and the few helpers
the training stages and run folders share (batched encoding and decoding, PSNR).

The objective has the training loop's shape, ``objective(model, x, generator, y=None) -> loss``,
so an autoencoder is trained by the same loop as every denoiser (EMA, checkpoints, resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .batch_draws import BatchDraws
from .models.autoencoder import Autoencoder, gaussian_kl

# Images per forward pass when a whole data set is encoded or decoded.
BATCH = 512
# Pixels live in [-1, 1]: the peak-to-peak range of PSNR.
PIXEL_RANGE = 2.0


def reconstruction_loss(model: Autoencoder, x: torch.Tensor, generator: torch.Generator | None, kl_weight: float) -> torch.Tensor:
    """(summed squared error of each image + kl_weight * KL(q(z|x) || N(0, I))) / pixels, over
    the batch.

    A VAE decodes z = mean + std * eps, eps ~ N(0, I) (the reparameterisation trick, Kingma &
    Welling 2014); its loss is the negative ELBO of a Gaussian decoder up to constants when
    kl_weight = 2 sigma_decoder^2, and Rombach et al.'s "KL-reg." regime at kl_weight ~ 1e-6.
    Dividing by the pixel count keeps the loss on the scale of a per-pixel MSE, so learning rates
    carry over between image sizes.  A plain autoencoder decodes the encoder's z (no KL term).
    """
    # The noise of the batch's rows (batch_draws.py), drawn in the forward pass: a VAE's only draw.
    out = model(x, BatchDraws.of(generator, x.shape[0]).randn)
    kl = torch.zeros((), device=x.device) if out.logvar is None else gaussian_kl(out.mean, out.logvar).mean()
    squared_error = (out.image - x).pow(2).flatten(1).sum(1).mean()
    return (squared_error + kl_weight * kl) / x[0].numel()


@dataclass(frozen=True)
class ReconstructionObjective:
    """The autoencoder's training loss as ``objective(model, x, generator, y=None, time_sampler=None)
    -> loss``, the shape training.optimiser_step calls (labels and times are not used)."""

    kl_weight: float
    variational: bool

    def __call__(self, model, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None, time_sampler=None) -> torch.Tensor:
        return reconstruction_loss(model, x, generator, self.kl_weight if self.variational else 0.0)

    def new_time_sampler(self) -> None:
        """No time is drawn, so there is no importance sampler to keep in the checkpoint."""
        return None

    @property
    def describe(self) -> str:
        if not self.variational:
            return "plain autoencoder: squared reconstruction error"
        return f"VAE: squared reconstruction error + {self.kl_weight:g} x KL(q(z|x) || N(0, I))"

    def training_notes(self) -> list[str]:
        """What training says before its first step: the loss (an autoencoder adds no noise)."""
        return [self.describe]


@torch.no_grad()
def encode_images(model: Autoencoder, images, device: torch.device | None = None, *, scaled: bool = True) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1] -> latents (N, *latent_shape), posterior means, times the
    stored latent_scale unless ``scaled`` is False; in batches, in eval mode."""
    device = device or next(model.parameters()).device
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    out = []
    for i in range(0, len(x), BATCH):
        z = model.posterior(x[i : i + BATCH].to(device))[0]
        out.append((z * model.latent_scale if scaled else z).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, *model.latent_shape), np.float32)


@torch.no_grad()
def decode_latents(model: Autoencoder, z) -> np.ndarray:
    """Scaled latents -> images clamped to the pixel range [-1, 1]."""
    device = next(model.parameters()).device
    z = torch.as_tensor(z, dtype=torch.float32)
    out = [model.decode(z[i : i + BATCH].to(device)).clamp(-1.0, 1.0).cpu() for i in range(0, len(z), BATCH)]
    return torch.cat(out).numpy()


def measure_latent_scale(model: Autoencoder, images) -> float:
    """1 / std of the unscaled latents of ``images`` over every entry (latent diffusion's
    scale_by_std: Rombach et al. 2022, Sec. 4.3.2 and App. G), so scaled latents have unit
    variance, the variance of x_T that the noise schedule ends at."""
    z = encode_images(model, images, scaled=False)
    std = float(np.std(z.astype(np.float64)))
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"the training set's latents have standard deviation {std}; the autoencoder collapsed")
    return 1.0 / std


def reconstruct(model: Autoencoder, images) -> np.ndarray:
    """Images through the autoencoder alone (encode, decode), clamped to [-1, 1]."""
    return decode_latents(model, encode_images(model, images))


def reconstruction_error(images: np.ndarray, reconstructions: np.ndarray) -> dict:
    """Per-pixel MSE and PSNR (dB, peak-to-peak range 2) of reconstructions."""
    mse = float(np.mean((np.asarray(images, np.float64) - np.asarray(reconstructions, np.float64)) ** 2))
    psnr = 10.0 * math.log10(PIXEL_RANGE**2 / mse) if mse > 0 else float("inf")
    return {"reconstruction_mse": mse, "reconstruction_psnr": psnr}
