"""Networks.  ``build_model(config, dim, num_classes)`` picks one by the recipe's name."""

from __future__ import annotations

from torch import nn

from .autoencoder import Autoencoder
from .embeddings import FourierFeatures, LabelEmbedding, SinusoidalEmbedding
from .mlp import ResidualMLP, SimpleMLP
from .mp_unet import MPUNet
from .unet import UNet

# The autoencoder of latent diffusion is built by builders.model_from from the recipe's
# [autoencoder] section (it needs the image size), not by build_model.
from ..choices import ARCHITECTURES, AUTOENCODER, IMAGE_ARCHITECTURES, POINT_ARCHITECTURES  # noqa: E402 - importable without torch


def build_model(
    arch: str,
    dim: int,
    *,
    hidden: int,
    blocks: int,
    time_dim: int,
    num_classes: int = 0,
    fourier: int = 0,
    mults: tuple[int, ...] = (1, 2, 2),
    attention: bool = True,
    dropout: float = 0.0,
    interval: bool = False,
    magnitude_preserving: bool = False,
) -> nn.Module:
    """``dim`` is the point dimension for the MLPs and the number of image channels for "unet"
    (whose ``hidden`` is the base width); ``mults``, ``attention`` and ``dropout`` are U-Net only;
    ``interval``: residual-mlp and unet take a second time r (MeanFlow's u(z, r, t), meanflow.py);
    ``magnitude_preserving``: "unet" built as EDM2's magnitude-preserving U-Net (mp_unet.py)."""
    if magnitude_preserving and (arch != "unet" or interval):
        raise ValueError(f"the magnitude-preserving network is a unet of one time, not {arch!r}{' with interval' if interval else ''}")
    if arch == "residual-mlp":
        return ResidualMLP(dim, hidden=hidden, blocks=blocks, time_dim=time_dim, num_classes=num_classes, fourier=fourier, interval=interval)
    if arch == "simple-mlp":
        return SimpleMLP(dim, hidden=hidden, num_classes=num_classes)
    if arch == "unet" and magnitude_preserving:
        return MPUNet(
            dim, base=hidden, mults=tuple(mults), blocks=blocks, time_dim=time_dim, num_classes=num_classes,
            attention=attention, dropout=dropout,
        )
    if arch == "unet":
        return UNet(
            dim, base=hidden, mults=tuple(mults), blocks=blocks, time_dim=time_dim, num_classes=num_classes,
            attention=attention, dropout=dropout, interval=interval,
        )
    raise ValueError(f"unknown model {arch!r}; expected one of {', '.join(ARCHITECTURES)}")


__all__ = [
    "ARCHITECTURES",
    "AUTOENCODER",
    "Autoencoder",
    "IMAGE_ARCHITECTURES",
    "POINT_ARCHITECTURES",
    "FourierFeatures",
    "LabelEmbedding",
    "MPUNet",
    "ResidualMLP",
    "SimpleMLP",
    "SinusoidalEmbedding",
    "UNet",
    "build_model",
]
