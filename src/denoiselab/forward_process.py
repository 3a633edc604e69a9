"""The forward (noising) process q: step by step, in closed form, and its posterior.

Notation as in schedules.py: grid index k, x_k = alpha_k x_0 + sigma_k eps.  For two grid
points s < k the transition q(x_k | x_s) is Gaussian with
    alpha_{k|s} = alpha_k / alpha_s,   sigma_{k|s}^2 = sigma_k^2 - alpha_{k|s}^2 sigma_s^2
(Kingma et al. 2021, "Variational Diffusion Models", Eq. 33), which for s = k - 1 on a DDPM
chain is sqrt(1 - beta_k) and beta_k (Ho et al. 2020, Eq. 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .prediction import expand
from .schedules import Schedule


def _at(values: torch.Tensor, k, like: torch.Tensor) -> torch.Tensor:
    """Read a schedule array at grid index k (int or per-sample tensor), broadcast over ``like``."""
    k = torch.as_tensor(k, device=values.device)
    return expand(values[k].to(like.dtype).to(like.device) if k.ndim else values[k].item(), like)


def q_sample(schedule: Schedule, x0: torch.Tensor, k, eps: torch.Tensor) -> torch.Tensor:
    """Closed form q(x_k | x_0): x_k = alpha_k x_0 + sigma_k eps (Ho et al. 2020, Eq. 4)."""
    return _at(schedule.alphas, k, x0) * x0 + _at(schedule.sigmas, k, x0) * eps


def transition(schedule: Schedule, s, k) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_{k|s}, sigma_{k|s}^2) of q(x_k | x_s) for grid indices s < k."""
    a_s, a_k = schedule.alphas[s], schedule.alphas[k]
    sig_s, sig_k = schedule.sigmas[s], schedule.sigmas[k]
    a_ks = a_k / a_s
    return a_ks, (sig_k**2 - a_ks**2 * sig_s**2).clamp(min=0.0)


def q_step(schedule: Schedule, x_prev: torch.Tensor, k: int, eps: torch.Tensor) -> torch.Tensor:
    """One step of the chain q(x_k | x_{k-1}) = N(sqrt(1 - beta_k) x_{k-1}, beta_k I)."""
    a, var = transition(schedule, k - 1, k)
    return float(a) * x_prev + float(var) ** 0.5 * eps


def q_chain(schedule: Schedule, x0: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """Run the chain step by step from x_0 to x_k; returns the list [x_0, x_1, ..., x_k]."""
    xs = [x0]
    for j in range(1, k + 1):
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        xs.append(q_step(schedule, xs[-1], j, eps))
    return xs


@dataclass(frozen=True)
class Posterior:
    mean: torch.Tensor
    variance: torch.Tensor  # per grid pair; broadcast over x


def q_posterior(schedule: Schedule, x0: torch.Tensor, x_k: torch.Tensor, k: int, s: int) -> Posterior:
    """q(x_s | x_k, x_0) for s < k (Ho et al. 2020, Eqs. 6-7, generalised to any s < k).

    mean = alpha_{k|s} sigma_s^2 / sigma_k^2 * x_k + alpha_s sigma_{k|s}^2 / sigma_k^2 * x_0
    var  = sigma_{k|s}^2 sigma_s^2 / sigma_k^2
    """
    a_ks, var_ks = transition(schedule, s, k)
    sig_s2, sig_k2 = schedule.sigmas[s] ** 2, schedule.sigmas[k] ** 2
    c_xk = float(a_ks * sig_s2 / sig_k2)
    c_x0 = float(schedule.alphas[s] * var_ks / sig_k2)
    var = var_ks * sig_s2 / sig_k2
    return Posterior(c_xk * x_k + c_x0 * x0, var.to(x0.dtype))
