"""Twisted sequential Monte Carlo over the reverse process: conditional samples exact as K grows.

Gradient guidance (gradient_guidance.py) draws each step from a guided transition and returns
whatever that chain ends at: an approximation with no knob that makes it exact.  Twisted SMC
(Wu et al. 2023, "Practical and asymptotically exact conditional sampling in diffusion models",
TDS, Algorithm 1) keeps K particles per requested sample, moves them with the same guided
transition and corrects the difference with importance weights, so that the weighted population
targets the model's own conditional p_theta(x_0 | y) for any K and samples it exactly as K grows.

The pieces, on a grid t_0 > t_1 > ... > t_N = 0 (one ancestral DDPM step per interval, ddpm.py):

* the prior transition p(x_s | x_t) = N(mu(x0_hat), v): the forward-process posterior with the
  model's clean estimate plugged in (Ho et al. 2020, Eqs. 6-7; forward_process.q_posterior_at);
* a twisting function p~_t(y | x_t) = exp(-L_t(x0_hat(x_t))), L_t a loss on the clean estimate
  (``Twist``; TDS Eq. 8 reads p~_t(y | x_t) = p(y | x_0 = x0_hat(x_t)) and tempers it where the
  likelihood is degenerate, Sec. 3.3);
* the proposal q(x_s | x_t) = N(mu(x0_guided), v): the transition of loss guidance at scale 1
  (x0_guided = the x0 of eps + sigma_t grad L_t, gradient_guidance.loss_guidance), which is TDS
  Eq. 10's conditional-score step written in the sampler's (x0, eps) form;
* a twist may also read the noisy sample itself, p~_t(y | x_t) = exp(-L_t(x_t)) (``Twist.reads``
  = "x_t"): a noise-conditional classifier p_phi(y | x_t, t) estimates p(y | x_t), TDS's optimal
  twist (Sec. 3.1, Eq. 7), and its proposal eps - s sigma_t grad log p_phi(y | x_t) is
  classifier guidance (Dhariwal & Nichol 2021, Eq. 14; ``likelihood_twist``, ``classifier_twist``),
  with no backward pass through the model;
* the incremental weight (TDS Algorithm 1, line 7)
      w = p(x_s | x_t) p~_s(y | x_s) / (q(x_s | x_t) p~_t(y | x_t)),
  with the first one p~_{t_0}(y | x_{t_0}) and the last one the twist's own ending
  (``Twist.finish``): the exact likelihood over the last twist, p(y | x_0) / p~_{t_{N-1}};
* resampling, systematic (Douc & Cappe 2005), of each group of K whenever its effective sample
  size (sum w)^2 / sum w^2 falls below ``ess_threshold`` K (adaptive resampling; Del Moral et
  al. 2012), and at the end one particle per group drawn by its weight.

Weights are kept as logs and normalised by log-sum-exp, so no weight overflows.  With K = 1
nothing is resampled and no weight changes a draw: every step but the last is then exactly
ddpm.sample_ddpm's on the model wrapped by loss_guidance(model, twist.loss, 1) (likelihood_guidance
of -loss for a twist that reads x_t), and the last step
is the twist's ending applied to the model's own estimate x0_hat(x_{t_{N-1}}) (DDPM's last step,
unguided, so that the ending conditions the model rather than the proposal; tests/test_smc.py
checks the equality; tests/test_smc_classifier.py for a classifier).  The model is called once a
step on all n K particles, with one backward pass for the gradient of the twist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .forward_process import q_posterior_at, transition_at
from .gradient_guidance import shift_eps
from .prediction import Denoised, expand, resolve
from .samplers.denoiser import Denoiser
from .samplers.noise import SampleNoise, uniform
from .samplers.stepping import OnStep, StepRecord, gaussian_like, visited_times

# Resample a group when its ESS falls below this share of its K particles (a common choice;
# Doucet & Johansen 2009, Sec. 3.5).
DEFAULT_ESS_THRESHOLD = 0.5


def posterior_scale2(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """r_t^2 = sigma^2 / (alpha^2 + sigma^2): the variance of x_0 given x_t for data N(0, 1) in
    each coordinate (the model's units are the data normalised to unit variance).  It is the
    spread the Gaussian twist of an observation allows x0_hat around the observed value: about 1
    in pure noise, and 0 at t = 0, where the twist becomes the exact (degenerate) observation."""
    return sigma**2 / (alpha**2 + sigma**2)


@dataclass(frozen=True)
class Twist:
    """A twisting function and its ending, for a target p(x_0) p(y | x_0).

    ``loss(x0, t) -> (B,)`` is -log p~_t(y | x_t) read on the clean estimate x0 = x0_hat(x_t)
    (up to a constant per t, which normalised weights do not see): differentiable, it is also
    the guidance loss of the proposal.  ``finish(x0, loss_last) -> (x_0, log_w)`` is the last
    step: the samples and their incremental log-weights log p(y | x_0) + loss_last, where
    ``loss_last`` is the twist at the last visited time t_{N-1} > 0 (its -log p~)."""

    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    finish: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    describe: str = ""
    reads: str = "x0"  # what ``loss`` reads: "x0", the clean estimate x0_hat(x_t); "x_t", the noisy sample

    @property
    def through_model(self) -> bool:
        """Whether the proposal's gradient is taken through the denoiser (a backward pass of the
        model per step) rather than through the twist alone."""
        return self.reads == "x0"


def observation_twist(mask: torch.Tensor, values: torch.Tensor, schedule, *, scale2=posterior_scale2) -> Twist:
    """Noise-free observation x_0[mask] = values (model units; both of one sample's shape).

    The twist is Gaussian, p~_t = N(values; x0_hat(x_t)[mask], r_t^2 I) with r_t^2 from
    ``scale2(alpha, sigma)`` going to 0 at t = 0 (TDS, Sec. 3.3, inpainting: the observation
    read through the denoiser, with a variance that shrinks to the exact one).  The last step
    draws x_0 from the twist's own Gaussian model of p(x_0 | x_{t_{N-1}}), N(x0_hat, r^2 I),
    conditioned on x_0[mask] = values: the observed coordinates are the values by that
    conditioning, the others keep the model's estimate (DDPM's last step has no noise), and
    the incremental weight N(values; x0_hat[mask], r^2) / p~_{t_{N-1}} is 1."""
    mask = mask.to(torch.bool)

    def loss(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = _levels(schedule, t, x0)
        resid = (x0 - values.to(x0)) * mask.to(x0)
        return resid.flatten(1).pow(2).sum(1) / (2 * scale2(alpha, sigma))

    def finish(x0: torch.Tensor, loss_last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.to(x0.device).expand_as(x0)
        return torch.where(m, values.to(x0).expand_as(x0), x0), torch.zeros_like(loss_last)

    return Twist(loss, finish, "observation")


def region_twist(violation: Callable[[torch.Tensor], torch.Tensor], schedule, *, scale2=posterior_scale2) -> Twist:
    """x_0 restricted to a region, ``violation(x0) -> (B,)`` (0 inside, the distance-like amount
    outside; regions.Region in model units).  The twist is a soft indicator,
    p~_t = exp(-violation(x0_hat)^2 / (2 r_t^2)), 1 inside and falling off over r_t outside; the
    ending weights by the hard indicator: log 1[x_0 inside] + the last twist's loss (a group
    with no particle inside keeps its weights, and the caller counts it)."""

    def loss(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = _levels(schedule, t, x0)
        return violation(x0) ** 2 / (2 * scale2(alpha, sigma))

    def finish(x0: torch.Tensor, loss_last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outside = violation(x0) > 0
        return x0, torch.where(outside, torch.full_like(loss_last, -torch.inf), loss_last)

    return Twist(loss, finish, "region")


def likelihood_twist(log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scale: float = 1.0, *, reads: str = "x_t",
                     describe: str = "likelihood") -> Twist:  # fmt: skip
    """A likelihood of the condition as a twist: p~_t(y | x_t) = p(y | x_t, t)^s with
    ``log_likelihood(x, t) -> (B,)`` differentiable in x (a noise-conditional classifier's log
    p(y | x_t), an exact likelihood of the oracles).  The proposal is then the transition of
    likelihood guidance at scale s (gradient_guidance.likelihood_guidance; classifier guidance
    for a classifier), and the target p(x_0) p(y | x_0)^s: the conditional p(x_0 | y) at s = 1
    with an exact likelihood (s > 1 sharpens it, as guidance does).  The ending keeps the model's
    own last estimate and weights it by p(y | x_0, 0)^s / p~_{t_{N-1}}, the likelihood read on
    the sample itself at t = 0 (TDS Algorithm 1's final weight).

    ``reads="x0"`` is TDS's own twist for a likelihood of clean data (Eq. 8): p~_t = p(y |
    x0_hat(x_t), 0)^s, read at t = 0 on the clean estimate, its gradient through the denoiser: a
    cruder twist than a noise-conditional likelihood's, which the weights correct."""
    if reads not in ("x_t", "x0"):
        raise ValueError(f"reads must be 'x_t' or 'x0', got {reads!r}")

    def loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -scale * log_likelihood(x, t if reads == "x_t" else torch.zeros_like(t))

    def finish(x0: torch.Tensor, loss_last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zero = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        return x0, scale * log_likelihood(x0, zero).to(loss_last) + loss_last

    return Twist(loss, finish, describe, reads=reads)


def classifier_twist(
    classifier_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], labels: torch.Tensor, scale: float = 1.0, *, reads: str = "x_t"
) -> Twist:
    """Classifier guidance towards ``labels`` (one per row of the particles) as a twist
    (``likelihood_twist`` of log p_phi(y | x_t, t)), ``classifier_fn(x_t, t) -> (B, C)`` the
    logits of a noise-conditional classifier: at K = 1 it is classifier guidance's chain."""

    def log_p(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        wanted = labels.to(x.device).long()
        return torch.log_softmax(classifier_fn(x, t), dim=-1).gather(1, wanted[:, None])[:, 0]

    return likelihood_twist(log_p, scale, reads=reads, describe="classifier")


def _levels(schedule, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = t.double().cpu()
    return schedule.alpha_at(t).to(like.dtype).to(like.device), schedule.sigma_at(t).to(like.dtype).to(like.device)


# -- weights ------------------------------------------------------------------------------------


def normalized(log_w: torch.Tensor) -> torch.Tensor:
    """Normalised weights of each row (groups, K) by log-sum-exp: no overflow for any log-weights.
    A row that is -inf everywhere (no particle can carry the target) comes back uniform."""
    dead = torch.isneginf(log_w).all(dim=1, keepdim=True)
    log_w = torch.where(dead, torch.zeros_like(log_w), log_w)
    return torch.exp(log_w - torch.logsumexp(log_w, dim=1, keepdim=True))


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """(sum w)^2 / sum w^2 of each row (groups, K) = 1 / sum of the normalised weights squared:
    between 1 (one particle carries all) and K (equal weights)."""
    return 1.0 / normalized(log_w).pow(2).sum(dim=1)


def systematic_resample(log_w: torch.Tensor, generator=None) -> torch.Tensor:
    """Indices (groups, K) into each row's particles by systematic resampling (Douc & Cappe 2005;
    Kitagawa 1996): one uniform u per row, the K points (u + j) / K read through the cumulative
    weights.  Particle i is drawn floor(K w_i) or ceil(K w_i) times, K w_i on average."""
    groups, k = log_w.shape
    w = normalized(log_w.double())
    cumulative = torch.cumsum(w, dim=1)
    cumulative[:, -1] = 1.0  # rounding must not leave the last point beyond the sum
    u = uniform((groups, 1), generator, w.device)
    points = (u + torch.arange(k, dtype=torch.float64, device=w.device)) / k
    return torch.searchsorted(cumulative, points, right=True).clamp(max=k - 1)


def draw_one(weights: torch.Tensor, generator=None) -> torch.Tensor:
    """One index per row of ``weights`` (groups, K), drawn with those probabilities: by inverse
    transform of one uniform per group from a per-sample SampleNoise, else torch.multinomial."""
    if not isinstance(generator, SampleNoise):
        return torch.multinomial(weights.cpu().float(), 1, generator=generator)[:, 0]
    cumulative = torch.cumsum(weights.double(), dim=1)
    u = uniform((weights.shape[0], 1), generator, weights.device) * cumulative[:, -1:]
    return torch.searchsorted(cumulative, u, right=True)[:, 0].clamp(max=weights.shape[1] - 1)


# -- the sampler ----------------------------------------------------------------------------------


@dataclass
class ParticleRecord:
    """What the population did: the ESS of each group at each step, before any resampling
    (steps, groups), the steps that resampled, the final weights (groups, K) and the particle
    each group's sample was drawn from (groups,), for K > 1.  Made with ``weights=[]``, it also
    keeps each step's normalised weights (groups, K) of the particles that step moves (its x_t, after any
    resampling): a picture of the population needs them, a summary does not."""

    particles: int
    ess: list[torch.Tensor] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    resampled: list[int] = field(default_factory=list)
    final_ess: torch.Tensor | None = None
    final_weights: torch.Tensor | None = None
    dead_groups: int = 0  # groups whose every particle has weight 0 at the end (e.g. none inside a region)
    weights: list[torch.Tensor] | None = None  # per step, only when made with a list
    pick: torch.Tensor | None = None  # the drawn particle of each group, 0..K-1

    def ess_summary(self) -> dict:
        """The mean over groups of the ESS at each step, as its minimum and mean over the steps,
        in particles (out of K), and the final population's mean ESS."""
        per_step = torch.stack([e.mean() for e in self.ess]) if self.ess else torch.ones(1) * self.particles
        worst = int(per_step.argmin()) if self.ess else 0
        return {
            "particles": self.particles,
            "ess_min": float(per_step.min()),
            "ess_mean": float(per_step.mean()),
            "ess_min_at_t": self.times[worst] if self.times else None,
            "ess_final": float(self.final_ess.mean()) if self.final_ess is not None else float(self.particles),
            "resampling_steps": len(self.resampled),
            "dead_groups": self.dead_groups,
        }


def concatenate_records(records: list[ParticleRecord], into: ParticleRecord) -> ParticleRecord:
    """Fill ``into`` with the records of consecutive batches of groups, as one record of all the
    groups: per-group values joined in order, the steps that resampled in any batch, the dead
    groups summed.  The batches stepped the same times."""
    first = records[0]
    into.times[:] = first.times
    into.ess[:] = [torch.cat(step) for step in zip(*(r.ess for r in records))]
    into.resampled[:] = sorted(set().union(*(r.resampled for r in records)))
    if first.final_ess is not None:
        into.final_ess = torch.cat([r.final_ess for r in records])
        into.final_weights = torch.cat([r.final_weights for r in records])
        into.pick = torch.cat([r.pick for r in records])
    into.dead_groups = sum(r.dead_groups for r in records)
    if into.weights is not None:
        into.weights[:] = [torch.cat(step) for step in zip(*(r.weights for r in records))]
    return into


def _denoised(denoise: Denoiser, x: torch.Tensor, t: float):
    """The model's (x0, eps) at x unclamped, and (alpha, sigma, t) per sample."""
    tt = torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
    alpha, sigma = _levels(denoise.schedule, tt, x)
    return resolve(denoise.model_fn(x, tt, denoise.y), denoise.prediction, x, alpha, sigma), alpha, sigma, tt


def _clamp(denoise: Denoiser, x0: torch.Tensor) -> torch.Tensor:
    return x0 if denoise.clip_x0 is None else x0.clamp(-denoise.clip_x0, denoise.clip_x0)


@torch.no_grad()
def sample_smc(
    denoise: Denoiser,
    x_T: torch.Tensor,
    times,
    *,
    twist: Twist,
    particles: int,
    on_step: OnStep = None,
    generator=None,
    variance: str = "small",
    ess_threshold: float = DEFAULT_ESS_THRESHOLD,
    record: ParticleRecord | None = None,
) -> torch.Tensor:
    """Twisted SMC from x_T (n K, ...) over ``times``: n samples (n, ...), each drawn from its own
    group of ``particles`` consecutive rows of x_T.  ``variance`` is DDPM's (ddpm.py); the
    population's ESS goes into ``record``."""
    k = int(particles)
    if k < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")
    if x_T.shape[0] % k:
        raise ValueError(f"x_T holds {x_T.shape[0]} rows, not a whole number of groups of {k} particles")
    groups = x_T.shape[0] // k
    record = record if record is not None else ParticleRecord(k)
    schedule = denoise.schedule
    times = visited_times(times)
    x = x_T
    log_w = torch.zeros(groups, k, dtype=torch.float64, device=x.device)
    pending = torch.zeros_like(log_w)  # log p(x_s | x_t) - log q(x_s | x_t) + log p~_t, awaiting p~_s
    loss_t = None
    for i in range(len(times) - 1):
        t, s = times[i], times[i + 1]
        if twist.through_model:
            with torch.enable_grad():
                z = x.detach().requires_grad_(True)
                d, alpha, sigma, tt = _denoised(denoise, z, t)
                loss = twist.loss(d.x0, tt)
                (grad,) = torch.autograd.grad(loss.sum(), z)
        else:  # the twist reads x_t: the model is not differentiated
            d, alpha, sigma, tt = _denoised(denoise, x, t)
            with torch.enable_grad():
                z = x.detach().requires_grad_(True)
                loss = twist.loss(z, tt)
                (grad,) = torch.autograd.grad(loss.sum(), z)
        d, loss = Denoised(d.x0.detach(), d.eps.detach()), loss.detach()
        # TDS Algorithm 1, line 7: the pending ratio times p~_t(y | x_t) = exp(-loss).
        log_w = log_w + pending - loss.double().reshape(groups, k)
        if k > 1:
            ess = effective_sample_size(log_w)
            record.ess.append(ess.cpu())
            record.times.append(t)
            # The uniforms are drawn at every step, resampled or not, so that a group's stream
            # never depends on the other groups of its batch (samplers/noise.py).
            idx = systematic_resample(log_w, generator)
            if bool((ess < ess_threshold * k).any()):
                low = (ess < ess_threshold * k)[:, None]
                idx = torch.where(low, idx, torch.arange(k, device=idx.device).expand_as(idx))
                rows = (idx + k * torch.arange(groups, device=idx.device)[:, None]).reshape(-1)
                x, grad, loss = x[rows], grad[rows], loss[rows]
                d = Denoised(d.x0[rows], d.eps[rows])
                log_w = torch.where(low, torch.zeros_like(log_w), log_w)
                record.resampled.append(i)
            if record.weights is not None:
                record.weights.append(normalized(log_w).cpu())
        x0_prior = _clamp(denoise, d.x0)
        # The proposal's clean estimate: loss guidance at scale 1, eps + sigma grad L (the module note).
        x0_proposal = _clamp(denoise, shift_eps(d, expand(sigma, x) * grad, x, alpha, sigma, "x0"))
        post = q_posterior_at(schedule, x0_proposal, x, t, s)
        if s > 0:
            var = float(post.variance if variance == "small" else transition_at(schedule, s, t)[1])
            noise = gaussian_like(x, generator)
            x_next = post.mean + var**0.5 * noise
            # log N(x_s; mu_prior, v) - log N(x_s; mu_proposal, v) with x_s = mu_proposal + sqrt(v) z
            # and mu_proposal - mu_prior = c (x0_proposal - x0_prior): -|delta|^2 / 2v - delta.z / sqrt(v).
            shift = q_posterior_at(schedule, x0_proposal - x0_prior, torch.zeros_like(x), t, s).mean
            ratio = -(shift.pow(2).flatten(1).sum(1) / (2 * var)) - (shift * noise).flatten(1).sum(1) / var**0.5
            pending = (ratio.double() + loss.double()).reshape(groups, k)
        else:
            # The ending starts from the model's own last estimate (DDPM's last step, no noise).
            x_next, ratio_end = twist.finish(x0_prior, loss)
            log_w = log_w + ratio_end.double().reshape(groups, k)
        if on_step is not None:
            on_step(StepRecord(i, t, s, x, x0_prior, d.eps, x_next, schedule.T))
        x = x_next
    x = x.reshape(groups, k, *x.shape[1:])
    if k == 1:
        return x[:, 0]
    record.dead_groups = int(torch.isneginf(log_w).all(dim=1).sum())
    record.final_ess = effective_sample_size(log_w).cpu()
    record.final_weights = normalized(log_w).cpu()
    pick = draw_one(normalized(log_w), generator).to(x.device)
    record.pick = pick.cpu()
    return x[torch.arange(groups, device=x.device), pick]
