"""Shortcut models (Frans et al. 2025, "One Step Diffusion via Shortcut Models"): a network of the
time and the step size jumps along the flow, trained so that one step of size 2d is two steps
of size d.

Written with MeanFlow's interval network (meanflow.py, models/mlp.py): the shortcut s(z_t, t, d)
of Frans et al. is the average velocity u(z_t, r = t - d, t), so z_{t-d} = z_t - d u(z_t, t - d, t)
and both methods share the sampler (samplers/meanflow.py).  The loss (Frans et al., Eq. 5 and
Alg. 1, in our time, t = 1 noise):

* flow matching at d = 0 for most of the batch: u(z_t, t, t) regresses e - x;
* self-consistency for a share of it (Frans et al.: a quarter): a step of 2d from t regresses
  the mean of two steps of d, z' = z_t - d u(z_t, t - d, t),
  target = sg((u(z_t, t - d, t) + u(z', t - 2d, t - d)) / 2),
  with d = 2^-k for k = 1 .. log2(levels) (Frans et al.'s M = 128 smallest steps) and t drawn
  uniformly where the two steps fit, t in [2d, 1].  At the finest level the two half steps read
  the network at step 0, the flow-matching velocity (Frans et al.'s base case: the bootstrap
  starts from what flow matching trains; the finest shortcut is then two Euler steps of the flow,
  exact to O(d), so its squared error is O(d^2)).

The exact average velocity satisfies the two-half-steps identity exactly (the mean of the
average velocities over [t - 2d, t - d] and [t - d, t] is the one over [t - 2d, t]), which
tests/test_meanflow.py checks on the Gaussian flow.  The targets come from the network being
trained, under stop-gradient (Frans et al. use the EMA weights for them, an option not built here).
"""

from __future__ import annotations

import math

import torch

from .batch_draws import BatchDraws
from .meanflow import interval_model


def _per_sample(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s.reshape(-1, *([1] * (like.ndim - 1)))


def two_half_steps_target(u_fn, z: torch.Tensor, t: torch.Tensor, d: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
    """The self-consistency target of a 2d step from (z, t): the mean of two d steps, detached.
    Where ``base`` is true the half steps read the network at step 0 (its velocity) and move by d."""
    read = d if base is None else torch.where(base, torch.zeros_like(d), d)
    with torch.no_grad():
        first = u_fn(z, t - read, t)
        second = u_fn(z - _per_sample(d, z) * first, t - d - read, t - d)
    return (first + second) / 2


def sample_half_steps(n: int, generator, levels: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, d), float64 (n,): half steps d = 2^-k, k uniform in 1 .. log2(levels), and t uniform in [2d, 1]."""
    draws = BatchDraws.of(generator, n)
    k = draws.randint(1, int(math.log2(levels)) + 1, (n,))
    d = torch.pow(2.0, -k.to(torch.float64))
    t = 2 * d + (1 - 2 * d) * draws.rand((n,))
    return t, d


def shortcut_loss(model_fn, x0: torch.Tensor, generator, *, y=None, share: float = 0.25, levels: int = 128) -> torch.Tensor:
    """One Monte Carlo estimate of the shortcut loss over a batch x0 (Frans et al. 2025, Alg. 1):
    the first round(share * B) rows self-consistency, the rest flow matching at d = 0 (B the
    global batch: a process training some of its rows keeps the split, batch_draws.py)."""
    draws = BatchDraws.of(generator, x0.shape[0])
    split = int(round(share * draws.total))
    consistency_rows, flow_rows = draws.part(0, split), draws.part(split, draws.total)
    m = consistency_rows.rows
    e = draws.randn(x0.shape, dtype=x0.dtype).to(x0.device)
    t_fm = 1.0 - flow_rows.rand((flow_rows.rows,))  # (0, 1], as flow matching draws
    t_sc, d = sample_half_steps(m, consistency_rows, levels)
    as_x = lambda s: s.to(x0.dtype).to(x0.device)  # noqa: E731
    t = as_x(torch.cat([t_sc, t_fm]))
    z = (1 - _per_sample(t, x0)) * x0 + _per_sample(t, x0) * e
    u_fn = interval_model(model_fn, y)
    d, zc, tc = as_x(d), z[:m], t[:m]
    finest = d <= 1.0 / levels
    target = torch.cat([two_half_steps_target(interval_model(model_fn, None if y is None else y[:m]), zc, tc, d, finest), (e - x0)[m:]])
    r = torch.cat([tc - 2 * d, t[m:]])
    return ((u_fn(z, r, t) - target) ** 2).mean()
