"""Training objectives: regress what the network predicts at a noised point.

One Monte Carlo estimate serves diffusion and flow matching alike: draw a time t, noise eps
and x_t = alpha(t) x0 + sigma(t) eps (schedules.py), and regress the network's output on the
target of its prediction type (eps, x0, v or velocity; prediction.py) by mean squared error.

* DDPM's simple objective (Ho et al. 2020, Eq. 14, Algorithm 1): on a T-step chain, t = k / T
  with k ~ U{1..T} and (usually) the eps target.
* Flow matching (Lipman et al. 2023, Eq. 23; Liu et al. 2023, rectified flow): the straight
  path alpha = 1 - t, sigma = t, t continuous in (0, 1], and the velocity target
  u = d x_t / d t = eps - x0.  (The papers' t runs from noise at 0 to data at 1; ours is
  1 minus theirs, and their velocity x1 - x0 is minus ours.)
* Weightings (weighting.py): each term's squared error times a weight w(lambda) stated on the
  x0-error and converted to the network's target, averaged per sample, then over the batch.
* Time distributions: uniform, log-SNR-uniform, logit-normal (flow), EDM's log-normal noise
  levels, and importance sampling by the loss (importance.py; Nichol & Dhariwal 2021, Sec. 3.3),
  whose per-term reweighting keeps the uniform-time objective in expectation.
* Reflow (Liu et al. 2023, Sec. 2.2-2.3): the coupling is fixed in advance, the noise each
  training row was solved from by a teacher (``pack_pairs``; `denoiselab distill`), so a new
  rectified flow learns the teacher's straightened map.
* OT-CFM (Tong et al. 2023, "Improving and generalizing flow-based generative models with
  minibatch optimal transport", Alg. 3): before noising, the batch's noise is re-paired with
  its data by the exact optimal assignment of squared distances, so the paths cross less.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .batch_draws import BatchDraws
from .choices import COUPLINGS, TIMESTEP_SAMPLING  # the names, importable without torch
from .forward_process import q_sample_at
from .prediction import resolve, target
from .schedules import Schedule
from .weighting import Weighting

# EDM's log-normal training noise levels (Karras et al. 2022, Table 1, "Training": ln sigma ~
# N(P_mean, P_std^2)), with sigma = sigma(t) / alpha(t) the noise level of x_t / alpha(t).
EDM_P_MEAN, EDM_P_STD = -1.2, 1.2


def sample_timesteps(schedule: Schedule, n: int, generator, how: str = "uniform") -> torch.Tensor:
    """Grid indices k in 1..T of a T-step chain for a training batch.

    uniform  k ~ U{1..T}, DDPM's choice (Ho et al. 2020, Algorithm 1).
    logsnr   log-SNR lambda uniform between lambda_1 and lambda_T, then the nearest k: spends
             the batch evenly across noise *levels* rather than steps, so the near-clean
             range, where a linear schedule has few steps per decibel, is trained as much as
             the near-noise range (the importance-sampling idea of Nichol & Dhariwal 2021,
             Sec. 3.3, in its simplest fixed form; Kingma et al. 2021 on weighting by lambda).
    """
    draws = BatchDraws.of(generator, n)
    if how == "uniform":
        return draws.randint(1, schedule.T + 1, (n,))
    if how == "logsnr":
        lam = schedule.half_log_snr[1:]  # decreasing in k
        u = draws.rand((n,))
        return _step_at_half_log_snr(schedule, lam[-1] + u * (lam[0] - lam[-1]))
    if how == "edm":
        return _step_at_half_log_snr(schedule, edm_half_log_snr(n, draws))
    raise ValueError(f"unknown timestep sampling {how!r} on a T-step chain; expected uniform, logsnr or edm")


def _step_at_half_log_snr(schedule: Schedule, lam: torch.Tensor) -> torch.Tensor:
    """The first chain step k in 1..T whose half log-SNR lambda falls below ``lam`` (clamped to the chain)."""
    idx = torch.searchsorted(schedule.half_log_snr[1:].flip(0).contiguous(), lam)  # on the increasing reversed array
    return (schedule.T - idx).clamp(1, schedule.T)


def edm_half_log_snr(n: int, generator) -> torch.Tensor:
    """EDM's training noise levels as schedules' lambda = log(alpha / sigma): ln s ~ N(P_mean, P_std^2)
    with s = sigma / alpha, so lambda = -ln s."""
    return -(EDM_P_MEAN + EDM_P_STD * BatchDraws.of(generator, n).randn((n,), dtype=torch.float64))


def sample_times(schedule: Schedule, n: int, generator, how: str = "uniform") -> torch.Tensor:
    """Training times t (float64, shape (n,)): grid points k / T of a chain (sample_timesteps),
    or continuous times in (0, 1] on the flow path:

    uniform       t ~ U(0, 1] (Lipman et al. 2023).
    logit-normal  t = sigmoid(n), n ~ N(0, 1): more weight on the middle of the path (Esser et
                  al. 2024, "Scaling rectified flow transformers", Sec. 3.1, m = 0, s = 1).
    logsnr        lambda uniform between lambda(1 - 1/T) and lambda(1/T).
    edm           EDM's log-normal noise level (edm_half_log_snr); on a chain the nearest step.

    (``importance`` is stateful: importance.ImportanceSampler draws those times.)
    """
    if how not in TIMESTEP_SAMPLING or how == "importance":
        raise ValueError(f"unknown timestep sampling {how!r}; expected one of {', '.join(TIMESTEP_SAMPLING)}")
    draws = BatchDraws.of(generator, n)
    if schedule.is_chain:
        return sample_timesteps(schedule, n, draws, how).to(torch.float64) / schedule.T
    if how == "uniform":
        return 1.0 - draws.rand((n,))  # (0, 1]: never clean data
    if how == "logit-normal":
        return torch.sigmoid(draws.randn((n,), dtype=torch.float64))
    if how == "edm":
        return schedule.time_at_half_log_snr(edm_half_log_snr(n, draws))  # sigmoid(-lambda): in (0, 1) for finite lambda
    lo, hi = (float(schedule.half_log_snr_at(v)) for v in (1.0 - 1.0 / schedule.T, 1.0 / schedule.T))
    u = draws.rand((n,))
    return schedule.time_at_half_log_snr(lo + u * (hi - lo))


def time_density(schedule: Schedule, how: str, t: torch.Tensor) -> torch.Tensor:
    """The density per unit of t of ``sample_times(schedule, n, generator, how)`` at the times t
    (float64).  On a chain, T times the probability of the step k = t T: the weight 1 / T of the
    chain's sum over steps, as uniform k gives 1.

    A chain's logsnr and edm times draw lambda (schedules' half log-SNR) and take the step k with
    lambda_{k+1} < lambda <= lambda_k (k = 1 takes every lambda above lambda_2, k = T every one
    at or below lambda_T), so P(k) is the distribution function's rise between those knots.  On
    the flow path a density of lambda becomes one of t through |d lambda / d t| = r / 2
    (Schedule.log_snr_rate_at)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if how == "uniform":
        return torch.ones_like(t)
    if how not in ("logsnr", "edm", "logit-normal"):
        raise ValueError(f"no density for timestep sampling {how!r}; expected uniform, logsnr, logit-normal or edm")
    if schedule.is_chain:
        if how == "logit-normal":
            raise ValueError("logit-normal times are continuous: the flow path's, not a chain's")
        knots = schedule.half_log_snr  # knots[k] = lambda_k, decreasing, knots[0] = +inf
        lam_lo, lam_hi = knots[-1], knots[1]

        def cdf(lam):
            if how == "logsnr":  # lambda uniform on [lambda_T, lambda_1] (sample_timesteps)
                return ((lam - lam_lo) / (lam_hi - lam_lo)).clamp(0.0, 1.0)
            return _normal_cdf((-lam - EDM_P_MEAN) / EDM_P_STD, upper=True)  # lambda = -(P_mean + P_std n)

        k = torch.round(t * schedule.T).long().clamp(1, schedule.T)
        upper = torch.where(k == 1, torch.ones_like(t), cdf(knots[k]))
        lower = torch.where(k == schedule.T, torch.zeros_like(t), cdf(knots[(k + 1).clamp(max=schedule.T)]))
        return schedule.T * (upper - lower)
    if how == "logit-normal":  # t = sigmoid(n), n ~ N(0, 1)
        n = torch.log(t) - torch.log1p(-t)
        return torch.exp(-0.5 * n**2) / math.sqrt(2 * math.pi) / (t * (1.0 - t))
    lam_per_t = 0.5 * schedule.log_snr_rate_at(t)
    lam = schedule.half_log_snr_at(t)
    if how == "edm":
        z = (-lam - EDM_P_MEAN) / EDM_P_STD
        return torch.exp(-0.5 * z**2) / (math.sqrt(2 * math.pi) * EDM_P_STD) * lam_per_t
    lo, hi = (float(schedule.half_log_snr_at(v)) for v in (1.0 - 1.0 / schedule.T, 1.0 / schedule.T))
    inside = (lam >= lo) & (lam <= hi)
    return torch.where(inside, lam_per_t / (hi - lo), torch.zeros_like(t))


def _normal_cdf(z: torch.Tensor, upper: bool = False) -> torch.Tensor:
    """P(N(0, 1) <= z), or with ``upper`` P(N(0, 1) >= z), each accurate in its own tail."""
    return 0.5 * torch.erfc((z if upper else -z) / math.sqrt(2.0))


def elbo_rate(schedule: Schedule, t: torch.Tensor, timesteps: str) -> torch.Tensor:
    """-d log SNR / d t over the density of the training times at t: the likelihood weighting's
    weight on the eps loss (weighting.py).  Importance-sampled times are weighted back to uniform
    time by their own q / p factor, so the uniform density is theirs here."""
    density = time_density(schedule, "uniform" if timesteps == "importance" else timesteps, t)
    return schedule.log_snr_rate_at(t) / density


def ot_pairing(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The permutation ``perm`` minimising sum_i ||x0[i] - noise[perm[i]]||^2 (exact, by scipy's
    linear_sum_assignment): data row i is paired with noise row perm[i].  The data keep their
    order (and so their labels); only the noise is re-ordered."""
    a = x0.detach().flatten(1).double().cpu().numpy()
    b = noise.detach().flatten(1).double().cpu().numpy()
    cost = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    rows, cols = linear_sum_assignment(cost)
    assert (rows == np.arange(len(a))).all()  # square problem: one noise row per data row, in order
    return torch.as_tensor(cols, device=noise.device)


def couple(x0: torch.Tensor, noise: torch.Tensor, coupling: str = "independent", y: torch.Tensor | None = None) -> torch.Tensor:
    """The noise paired with each data row.  ``ot`` solves the assignment within each label
    (label -1, a dropped label, is a group of its own), so the noise a class is trained with is
    still a draw of N(0, I) for that class and the conditional flows stay correct."""
    if coupling == "independent":
        return noise
    if coupling != "ot":
        raise ValueError(f"unknown coupling {coupling!r}; expected one of {', '.join(COUPLINGS)}")
    if y is None:
        return noise[ot_pairing(x0, noise)]
    paired = noise.clone()
    for label in torch.unique(y):
        rows = torch.nonzero(y == label).flatten()
        paired[rows] = noise[rows][ot_pairing(x0[rows], noise[rows])]
    return paired


def batch_noise(x0: torch.Tensor, draws: BatchDraws, coupling: str = "independent", y: torch.Tensor | None = None) -> torch.Tensor:
    """The noise of the caller's rows of a batch, coupled with their data (``couple``).  OT-CFM's
    coupling is solved over the global batch (draws.whole_x0) and the caller keeps its rows: a
    coupling per process would pair each process's smaller batch less well, so the trained flow
    would change with the number of processes."""
    if coupling != "ot" or draws.is_whole:
        return couple(x0, draws.randn(x0.shape, dtype=x0.dtype).to(x0.device), coupling, y)
    if draws.whole_x0 is None:
        raise ValueError("OT coupling of a part of a batch needs the whole batch's data (BatchDraws.whole_x0)")
    whole = torch.randn((draws.total, *x0.shape[1:]), generator=draws.generator, dtype=x0.dtype).to(x0.device)
    return draws.keep(couple(draws.whole_x0, whole, coupling, draws.whole_y))


def pack_pairs(noise: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Reflow's coupling (Liu et al. 2023, "Flow straight and fast", Sec. 2.2-2.3): each row holds
    a sample and the noise it was solved from, side by side along dim 1, so that a batch drawn by
    row index (training/step.py) keeps every pair together: never re-paired, never shuffled."""
    return torch.cat([samples, noise], dim=1)


def unpack_pairs(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples, their noise) of rows built by ``pack_pairs``."""
    samples, noise = rows.chunk(2, dim=1)
    return samples, noise


def diffusion_loss(
    model_fn,
    x0: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    *,
    y: torch.Tensor | None = None,
    prediction: str = "eps",
    timesteps: str = "uniform",
    coupling: str = "independent",
    weighting: Weighting | None = None,
    time_sampler=None,
) -> torch.Tensor:
    """Monte Carlo estimate of E_{t, eps} w(t) || model(x_t, t, y) - target ||^2 over a batch x0.

    ``weighting`` (weighting.py) gives w(t) in the target's units; None or "none" is the simple
    loss.  ``timesteps = "importance"`` draws t from ``time_sampler`` (importance.ImportanceSampler),
    multiplies each term by q(t) / p(t) so that the estimate's expectation is the uniform-time
    objective, and feeds the terms' losses (weighted, before that factor) back to the sampler.

    Randomness is drawn on the generator's device (CPU by default) and moved to x0's device,
    so a seed gives the same run on every device.  ``generator`` may be a BatchDraws: the draws
    of a global batch of which x0 is some rows (batch_draws.py; training under data parallelism).
    """
    draws = BatchDraws.of(generator, x0.shape[0])
    if timesteps == "importance":
        if time_sampler is None:
            raise ValueError("timesteps 'importance' needs the run's time_sampler (importance.ImportanceSampler)")
        draw = time_sampler.draw(x0.shape[0], draws)
        t = draw.t
    else:
        t = sample_times(schedule, x0.shape[0], draws, timesteps)
    if coupling == "reflow":
        x0, eps = unpack_pairs(x0)
    else:
        eps = batch_noise(x0, draws, coupling, y)
    x_t = q_sample_at(schedule, x0, t, eps)
    alpha64, sigma64 = schedule.alpha_at(t), schedule.sigma_at(t)
    alphas = alpha64.to(x0.dtype).to(x0.device)
    sigmas = sigma64.to(x0.dtype).to(x0.device)
    pred = model_fn(x_t, t.to(x0.dtype).to(x0.device), y)
    squared = (pred - target(prediction, x0, eps, alphas, sigmas)) ** 2
    plain = weighting is None or weighting.name == "none"
    if plain and timesteps != "importance":
        # L_simple (Ho et al. 2020): one mean over every element.  The per-sample path below sums
        # in another order (other rounding), so it serves weighted and importance-sampled losses only.
        return torch.mean(squared)
    per_sample = squared.flatten(1).mean(1)
    if not plain:
        rate = elbo_rate(schedule, t, timesteps) if weighting.needs_elbo_rate else None
        per_sample = per_sample * weighting.on_target(prediction, alpha64, sigma64, rate).to(x0.dtype).to(x0.device)
    if timesteps != "importance":
        return per_sample.mean()
    time_sampler.update(draw.bins, per_sample.detach())
    return (per_sample * draw.weights.to(x0.dtype).to(x0.device)).mean()


@torch.no_grad()
def x0_error_by_noise_level(
    model_fn, x0: torch.Tensor, schedule: Schedule, prediction: str, half_log_snrs: torch.Tensor, generator, y: torch.Tensor | None = None
) -> torch.Tensor:
    """The unweighted mean squared x0-error per coordinate, E ||x0_hat - x0||^2 / D, at each level
    of ``half_log_snrs`` (schedules' lambda = log(alpha / sigma)), over the batch x0 with fresh noise at
    every level.  Stated on x0 whatever the network predicts (prediction.resolve) and without
    the run's weighting, so runs of different targets and weightings can be compared on it."""
    errors = []
    times = schedule.time_at_half_log_snr(half_log_snrs).clamp(min=1e-6)  # never t = 0, as in training
    for t in times:
        t_batch = t.expand(x0.shape[0]).to(torch.float64)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x_t = q_sample_at(schedule, x0, t_batch, eps)
        alpha = schedule.alpha_at(t_batch).to(x0.dtype).to(x0.device)
        sigma = schedule.sigma_at(t_batch).to(x0.dtype).to(x0.device)
        pred = model_fn(x_t, t_batch.to(x0.dtype).to(x0.device), y)
        errors.append(torch.mean((resolve(pred, prediction, x_t, alpha, sigma).x0 - x0).double() ** 2))
    return torch.stack(errors).cpu()
