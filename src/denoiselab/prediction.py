"""Conversions between what a network predicts: eps, x0, v, or a flow velocity.

Given x_t = alpha * x0 + sigma * eps (schedules.py), every target is a linear function of
(x_t, one other target).  v = alpha * eps - sigma * x0 (Salimans & Ho 2022, Sec. 4);
the flow velocity is d x_t / d t along the straight path of flow matching, u = eps - x0.
All functions broadcast alpha and sigma (scalars or per-sample tensors) over x.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .choices import PREDICTIONS  # noqa: E402, F401 - the names, importable without torch


def expand(coef: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample coefficient (shape (B,)) over a batch ``like``."""
    coef = torch.as_tensor(coef, dtype=like.dtype, device=like.device)
    if coef.ndim == 0:
        return coef
    return coef.reshape(coef.shape + (1,) * (like.ndim - coef.ndim))


@dataclass(frozen=True)
class Denoised:
    """A prediction resolved into both of its readings."""

    x0: torch.Tensor
    eps: torch.Tensor


def resolve(pred: torch.Tensor, kind: str, x_t: torch.Tensor, alpha, sigma) -> Denoised:
    """Turn a raw prediction of type ``kind`` into (x0, eps) at noise level (alpha, sigma)."""
    a, s = expand(alpha, x_t), expand(sigma, x_t)
    if kind == "eps":
        return Denoised((x_t - s * pred) / a, pred)
    if kind == "x0":
        return Denoised(pred, (x_t - a * pred) / s)
    if kind == "v":
        # For VP schedules alpha^2 + sigma^2 = 1; the general form divides by that sum.
        norm = a * a + s * s
        return Denoised((a * x_t - s * pred) / norm, (s * x_t + a * pred) / norm)
    if kind == "velocity":
        # x_t = a x0 + s eps and u = eps - x0, so x0 = (x_t - s u) / (a + s).
        x0 = (x_t - s * pred) / (a + s)
        return Denoised(x0, pred + x0)
    raise ValueError(f"unknown prediction {kind!r}; expected one of {', '.join(PREDICTIONS)}")


def target(kind: str, x0: torch.Tensor, eps: torch.Tensor, alpha, sigma) -> torch.Tensor:
    """The regression target of type ``kind`` for clean data x0 and noise eps."""
    a, s = expand(alpha, x0), expand(sigma, x0)
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return a * eps - s * x0
    if kind == "velocity":
        return eps - x0
    raise ValueError(f"unknown prediction {kind!r}; expected one of {', '.join(PREDICTIONS)}")
