"""The forward (noising) process q: step by step, in closed form, and its posterior.

Notation as in schedules.py: x_t = alpha(t) x_0 + sigma(t) eps.  For two times s < t the
transition q(x_t | x_s) is Gaussian with
    alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
(Kingma et al. 2021, "Variational Diffusion Models", Eq. 33), which for s = (k - 1) / T,
t = k / T on a DDPM chain is sqrt(1 - beta_k) and beta_k (Ho et al. 2020, Eq. 2).  It holds
for the flow path too (alpha_1 = 0 gives alpha_{1|s} = 0, sigma_{1|s} = 1).

The ``*_at`` functions take times t in [0, 1]; the others take grid indices k of a chain
(t = k / T) and read the same values.
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


def q_sample_at(schedule: Schedule, x0: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """Closed form q(x_t | x_0) at times t (a float, or one per sample, shape (B,))."""
    t = torch.as_tensor(t, dtype=torch.float64)
    alpha = schedule.alpha_at(t).to(x0.dtype).to(x0.device)
    sigma = schedule.sigma_at(t).to(x0.dtype).to(x0.device)
    return expand(alpha, x0) * x0 + expand(sigma, x0) * eps


def transition(schedule: Schedule, s, k) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_{k|s}, sigma_{k|s}^2) of q(x_k | x_s) for grid indices s < k."""
    return _transition(schedule.alphas[s], schedule.alphas[k], schedule.sigmas[s], schedule.sigmas[k])


def transition_at(schedule: Schedule, s: float, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha_{t|s}, sigma_{t|s}^2) of q(x_t | x_s) for times s < t."""
    a_s, a_t = schedule.alpha_at(s), schedule.alpha_at(t)
    return _transition(a_s, a_t, schedule.sigma_at(s), schedule.sigma_at(t))


def _transition(a_s, a_t, sig_s, sig_t):
    a_ts = a_t / a_s
    return a_ts, (sig_t**2 - a_ts**2 * sig_s**2).clamp(min=0.0)


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
    return _posterior(a_ks, var_ks, schedule.alphas[s], schedule.sigmas[s] ** 2, schedule.sigmas[k] ** 2, x0, x_k)


def q_posterior_at(schedule: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: float, s: float) -> Posterior:
    """q(x_s | x_t, x_0) for times s < t (the same formula as q_posterior)."""
    a_ts, var_ts = transition_at(schedule, s, t)
    return _posterior(a_ts, var_ts, schedule.alpha_at(s), schedule.sigma_at(s) ** 2, schedule.sigma_at(t) ** 2, x0, x_t)


def _posterior(a_ts, var_ts, alpha_s, sig_s2, sig_t2, x0, x_t) -> Posterior:
    c_xt = float(a_ts * sig_s2 / sig_t2)
    c_x0 = float(alpha_s * var_ts / sig_t2)
    var = var_ts * sig_s2 / sig_t2
    return Posterior(c_xt * x_t + c_x0 * x0, var.to(x0.dtype))
