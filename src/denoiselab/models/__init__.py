"""Networks.  ``build_model(config, dim, num_classes)`` picks one by the recipe's name."""

from __future__ import annotations

from torch import nn

from .embeddings import FourierFeatures, LabelEmbedding, SinusoidalEmbedding
from .mlp import ResidualMLP, SimpleMLP

ARCHITECTURES = ("residual-mlp", "simple-mlp")


def build_model(
    arch: str, dim: int, *, hidden: int, blocks: int, time_dim: int, num_classes: int = 0, fourier: int = 0
) -> nn.Module:
    if arch == "residual-mlp":
        return ResidualMLP(dim, hidden=hidden, blocks=blocks, time_dim=time_dim, num_classes=num_classes, fourier=fourier)
    if arch == "simple-mlp":
        return SimpleMLP(dim, hidden=hidden, num_classes=num_classes)
    raise ValueError(f"unknown model {arch!r}; expected one of {', '.join(ARCHITECTURES)}")


__all__ = ["ARCHITECTURES", "FourierFeatures", "LabelEmbedding", "ResidualMLP", "SimpleMLP", "SinusoidalEmbedding", "build_model"]
