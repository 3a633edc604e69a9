"""MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling"): a network learns
the *average* velocity between two times, so that one evaluation jumps the whole way.

On the flow path z_t = (1 - t) x + t e (Geng et al.'s convention is ours: t = 1 is noise, and
the velocity is v = e - x), the average velocity from r to t is (Eq. 3)

    u(z_t, r, t) = 1 / (t - r) int_r^t v(z_tau, tau) d tau,   so   z_r = z_t - (t - r) u(z_t, r, t).

Differentiating (t - r) u = int_r^t v in t gives the MeanFlow identity (Eq. 6)

    u(z_t, r, t) = v(z_t, t) - (t - r) d/dt u(z_t, r, t),
    d/dt u = v d_z u + d_t u   (Eq. 8: the total derivative along the flow, r held fixed),

whose right side is the regression target, with the conditional velocity e - x in place of v
and a stop-gradient (Eq. 9-10).  d/dt u is one Jacobian-vector product of u with the tangent
(v, 0, 1) in (z, r, t) (Alg. 1: ``jvp(fn, (z, r, t), (v, 0, 1))``); a wrong tangent gives a wrong
target without any error, which tests/test_meanflow.py checks against finite differences.

Training details (Sec. 4.3, Table 1): (t, r) are two draws of a logit-normal(-0.4, 1) time,
sorted so that t >= r, and a share of each batch has r = t (where the target is plain flow
matching's v; Geng et al.'s best share of r != t is 25%); the loss is adaptively weighted,
sg(w) ||Delta||^2 with w = 1 / (||Delta||^2 + c)^p, c = 1e-3 (Eq. 11-12 and Appendix).
"""

from __future__ import annotations

import torch

from .batch_draws import BatchDraws

# Geng et al. 2025, Table 1c: the best time distribution is logit-normal with mean -0.4, std 1.0.
LOGIT_NORMAL_MEAN, LOGIT_NORMAL_STD = -0.4, 1.0
# The adaptive loss weight's c (Geng et al. 2025, Sec. 4.3 "Adaptive loss weighting").
ADAPTIVE_C = 1e-3


def sample_interval(n: int, generator, how: str = "logit-normal", share: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """(r, t), float64 of shape (n,), 0 <= r <= t <= 1: two draws of ``how`` (uniform, or
    logit-normal(-0.4, 1)) sorted, and r set to t outside a ``share`` of the batch."""
    draws = BatchDraws.of(generator, n)
    if how == "logit-normal":
        a = torch.sigmoid(LOGIT_NORMAL_MEAN + LOGIT_NORMAL_STD * draws.randn((2, n), dtype=torch.float64, batch_dim=1))
    elif how == "uniform":
        a = draws.rand((2, n), batch_dim=1)
    else:
        raise ValueError(f"meanflow draws uniform or logit-normal times, not {how!r}")
    t, r = a.max(0).values, a.min(0).values
    apart = draws.rand((n,)) < share
    return torch.where(apart, r, t), t


def _per_sample(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.reshape(-1, *([1] * (like.ndim - 1)))


def average_velocity_target(u_fn, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, target): the network's u(z, r, t) and the MeanFlow identity's right side
    v - (t - r) (v d_z u + d_t u), detached (Geng et al. 2025, Eq. 10; Alg. 1).

    ``u_fn(z, r, t)``; the total derivative is torch.func.jvp's with tangents (v, 0, 1) for
    (z, r, t): z moves along the velocity, r stays, t moves at unit speed."""
    u, dudt = torch.func.jvp(u_fn, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
    return u, (v - _per_sample(t - r, z) * dudt).detach()


def interval_model(model_fn, y=None):
    """A model function (x, times, y) read as u(z, r, t): the network takes (t, r) per sample
    as one (B, 2) time input (models/mlp.py)."""
    return lambda z, r, t: model_fn(z, torch.stack([t, r], dim=1), y)


def meanflow_loss(
    model_fn, x0: torch.Tensor, generator, *, y=None, timesteps: str = "logit-normal", share: float = 0.25, power: float = 1.0,
    tangent_fn=None,
) -> torch.Tensor:
    """One Monte Carlo estimate of MeanFlow's adaptively weighted loss over a batch x0
    (Geng et al. 2025, Alg. 1): E sg(w) ||u(z_t, r, t) - sg(u_tgt)||^2.

    ``tangent_fn``: the same network without a wrapper that torch.func.jvp cannot trace
    (DistributedDataParallel's forward hooks); then the target's du/dt is taken through it
    without gradient, and u by a plain forward of ``model_fn``: one forward more, the same loss."""
    draws = BatchDraws.of(generator, x0.shape[0])
    r64, t64 = sample_interval(x0.shape[0], draws, timesteps, share)
    e = draws.randn(x0.shape, dtype=x0.dtype).to(x0.device)
    r, t = r64.to(x0.dtype).to(x0.device), t64.to(x0.dtype).to(x0.device)
    z = (1 - _per_sample(t, x0)) * x0 + _per_sample(t, x0) * e
    if tangent_fn is None:
        u, target = average_velocity_target(interval_model(model_fn, y), z, r, t, e - x0)
    else:
        with torch.no_grad():
            _, target = average_velocity_target(interval_model(tangent_fn, y), z, r, t, e - x0)
        u = interval_model(model_fn, y)(z, r, t)
    squared = ((u - target) ** 2).flatten(1).sum(1)
    if power == 0:
        return squared.mean()
    weight = 1.0 / (squared.detach() + ADAPTIVE_C) ** power
    return (weight * squared).mean()
