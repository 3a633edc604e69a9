"""The variational bound of a DDPM chain: an upper bound of its negative log-likelihood.

The chain's generative model p(x_T) prod_k p(x_{k-1} | x_k) with Gaussian steps
p(x_{k-1} | x_k) = N(mu(x_k), s_k^2 I), mu the posterior mean q(x_{k-1} | x_k, x0) at the
model's clean estimate x0_hat(x_k) (Ho et al. 2020, Eq. 7 and 11), bounds each point's
negative log-likelihood by (Ho et al. 2020, Eq. 5; Sohl-Dickstein et al. 2015):

    -log p(x_0) <= L_T + sum_{k=2}^{T} L_{k-1} + L_0,
    L_T     = KL(q(x_T | x_0) || N(0, I))                                    (closed form)
    L_{k-1} = E_q KL(q(x_{k-1} | x_k, x_0) || p(x_{k-1} | x_k))
            = E_q [ D/2 (log(s_k^2 / v_k) + v_k / s_k^2 - 1) + c_k^2 |x_0 - x0_hat(x_k)|^2 / (2 s_k^2) ],
    L_0     = E_q [ -log N(x_0; x0_hat(x_1), s_1^2 I) ]                       (a Gaussian decoder)

with v_k the posterior variance, c_k = alpha_{k-1} beta_k / sigma_k^2 the weight of x_0 in the
posterior mean (forward_process.q_posterior), and s_k^2 = v_k ("small") or beta_k ("large"), the
two variances DDPM's sampler offers.  At k = 1, v_1 = 0: "small" takes v_2 there, as
improved-diffusion clips its log-variance.  Every term is summed (T model calls a point), each
expectation by one draw of x_k from q(x_k | x_0), seeded; the sum is an unbiased estimate of the
bound.  The decoder's mean is the posterior mean at k = 1, which is x0_hat(x_1) itself (c_1 = 1,
and x_1's weight is 0 since sigma_0 = 0).

Points are continuous (model units), and the bound is of their density.  Pixels on a grid of
``levels`` levels in [-1, 1] are discrete: L_0 is then the discretised Gaussian decoder's
-log P(x_0 | x_1), the N(x0_hat(x_1), s_1^2) mass over each pixel's bin (Ho et al. 2020, Eq. 13;
discretised_decoder.py), and the bound is Nichol & Dhariwal's (2021) L_vlb, an upper bound of
the discrete -log P(x_0): no dequantisation enters it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .discretised_decoder import discretised_gaussian_nll
from .samplers.denoiser import Denoiser, ModelFn
from .schedules import Schedule

VARIANCES = ("small", "large")


@dataclass(frozen=True)
class VariationalBound:
    """Per point (B,), nats, model units: the bound and its three parts."""

    bound: torch.Tensor
    prior: torch.Tensor  # L_T
    steps: torch.Tensor  # sum of L_{k-1}, k = 2..T
    decoder: torch.Tensor  # L_0
    evaluations: int  # model calls a point (T)


def variational_bound(
    model_fn: ModelFn, schedule: Schedule, x0: torch.Tensor, *, prediction: str = "eps", y: torch.Tensor | None = None,
    variance: str = "small", seed: int = 0, levels: int | None = None, clip_x0: float | None = None,
) -> VariationalBound:  # fmt: skip
    """The DDPM bound of each point of ``x0`` (B, ...) under ``model_fn`` on the chain ``schedule``:
    of its density, or with ``levels`` of its pixels on that grid (the discretised decoder).
    ``clip_x0`` clamps the clean estimate as the run's sampler does (any mean gives a bound)."""
    if not schedule.is_chain:
        raise ValueError(f"the variational bound is a DDPM chain's; the {schedule.name} path has no chain of Gaussian steps")
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of {', '.join(VARIANCES)}")
    T, dim = schedule.T, x0[0].numel()
    flat = x0.reshape(len(x0), -1)
    alphas, sigmas, betas = schedule.alphas.tolist(), schedule.sigmas.tolist(), [0.0, *schedule.betas.tolist()]
    # Posterior variance v_k and the weight c_k of x_0 in the posterior mean, k = 1..T.
    v = [0.0] + [betas[k] * sigmas[k - 1] ** 2 / sigmas[k] ** 2 for k in range(1, T + 1)]
    c = [0.0] + [alphas[k - 1] * betas[k] / sigmas[k] ** 2 for k in range(1, T + 1)]
    if variance == "small":
        s2 = [0.0, v[2] if T > 1 else betas[1]] + v[2:]
    else:
        s2 = betas
    denoise = Denoiser(model_fn, schedule, prediction, y, clip_x0)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    a_T, var_T = alphas[T], sigmas[T] ** 2
    prior = 0.5 * ((var_T + a_T**2 * flat**2 - 1.0 - math.log(var_T)).sum(1))
    steps = torch.zeros(len(flat), dtype=flat.dtype, device=flat.device)
    decoder = torch.zeros_like(steps)
    with torch.no_grad():
        for k in range(1, T + 1):
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
            x_k = alphas[k] * x0 + sigmas[k] * eps
            x0_hat = denoise(x_k, k / T).x0
            error = ((x0 - x0_hat).reshape(len(flat), -1) ** 2).sum(1)
            if k == 1 and levels is not None:
                pixels = discretised_gaussian_nll(x0, x0_hat, math.sqrt(s2[1]), levels)
                decoder = pixels.reshape(len(flat), -1).sum(1).to(flat.dtype)
            elif k == 1:
                decoder = error / (2 * s2[1]) + 0.5 * dim * math.log(2 * math.pi * s2[1])
            else:
                steps = steps + 0.5 * dim * (math.log(s2[k] / v[k]) + v[k] / s2[k] - 1.0) + c[k] ** 2 * error / (2 * s2[k])
    return VariationalBound(prior + steps + decoder, prior, steps, decoder, T)
