"""Guidance by gradients at test time: wrappers that steer an unconditional model function.

The convention, once for every wrapper here: **guidance is added to the noise prediction and
multiplied by sigma_t**,

    eps_guided(x_t) = eps(x_t) - s(t) * sigma_t * grad_{x_t} log p(c | x_t).

Because eps*(x_t) = -sigma_t grad log p_t(x_t) (Tweedie; oracles.py), this is the noise
prediction of p_t(x_t) p(c | x_t)^s: at s = 1 with the exact likelihood it is the exact
conditional model, and every sampler then draws from p(x_0 | c) up to its discretisation error.
This is classifier guidance as Dhariwal & Nichol (2021, Sec. 4.2, Eq. 14 and Algorithm 2) write
it: eps_hat = eps - sqrt(1 - alpha_bar) grad log p_phi(y | x_t).  Guidance by a loss L on the
clean estimate reads log p(c | x_t) as -L(x0_hat(x_t)), the gradient taken through the denoiser:
universal guidance's forward guidance (Bansal et al. 2023, Eq. 6, eps + s sqrt(1 - alpha_bar)
grad L) and, with L the Gaussian misfit of an observation, DPS (Chung et al. 2023, Eq. 16).

The guided eps (with x0 = (x_t - sigma eps) / alpha moved with it) is written back as the
model's own prediction type at the sampler's x_t (prediction.target), so a sampler, and a
multistep solver's history, sees one consistent model output.  Where the path holds no signal
(alpha = 0, t = 1 of the flow path) eps = x_t / sigma is fixed and no guidance is added.

A gradient costs a backward pass: ``GuidanceCounts`` counts model evaluations (``counted`` wraps
the model itself, so stacked wrappers count each call once), backward passes through the model
and gradients of a classifier or a loss alone (the wrappers given ``counts``).  Samplers run under
torch.no_grad(), so each wrapper turns gradients on for its own computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .prediction import Denoised, expand, resolve, target
from .samplers.noise import normal_like
from .schedules import Schedule

# A scale: one number, or a function of the times (B,) giving one per sample ("scale per step").
Scale = float | Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GuidanceCounts:
    """What guidance cost: forward calls of the model, backward passes through it, and gradients
    of a classifier or a loss on x0_hat alone (no backward through the model)."""

    evaluations: int = 0
    model_backward: int = 0
    other_gradients: int = 0

    def summary(self) -> str:
        parts = [f"{self.evaluations} model evaluations", f"{self.model_backward} backward passes through the model"]
        if self.other_gradients:
            parts.append(f"{self.other_gradients} classifier/loss gradients")
        return ", ".join(parts)


def counted(model_fn, counts: GuidanceCounts):
    """The model with each call counted in ``counts.evaluations`` (wrap the innermost model)."""

    def model(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        counts.evaluations += 1
        return model_fn(x, t, y)

    return model


def _levels(schedule: Schedule, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) at each sample's time, shape (B,), in ``like``'s dtype and device."""
    t = t.double().cpu()
    return (
        schedule.alpha_at(t).to(like.dtype).to(like.device),
        schedule.sigma_at(t).to(like.dtype).to(like.device),
    )


def _scale_at(scale: Scale, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    value = scale(t) if callable(scale) else scale
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(like.shape[0])


def _is_zero(scale: Scale) -> bool:
    return not callable(scale) and float(scale) == 0.0


def shift_eps(d: Denoised, delta: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, prediction: str) -> torch.Tensor:
    """The model output of type ``prediction`` whose eps is d.eps + delta at the same x_t: x0 moves
    by -(sigma / alpha) delta.  Samples where alpha = 0 keep their output (see the module note)."""
    has_signal = expand((alpha > 0).to(x_t.dtype), x_t) > 0
    delta = torch.where(has_signal, delta, torch.zeros_like(delta))
    ratio = expand(sigma / torch.where(alpha > 0, alpha, torch.ones_like(alpha)), x_t)
    return target(prediction, d.x0 - ratio * delta, d.eps + delta, alpha, sigma)


# -- guidance by a likelihood of the noisy sample: classifier guidance -----------------------


def likelihood_guidance(
    model_fn,
    log_likelihood: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    scale: Scale,
    schedule: Schedule,
    prediction: str,
    *,
    counts: GuidanceCounts | None = None,
):
    """``eps - s sigma_t grad log p(c | x_t)`` with ``log_likelihood(x_t, t, y) -> (B,)`` any
    differentiable function of the noisy sample (a classifier, an exact likelihood).  The model is
    called with the same y and is not differentiated."""
    if _is_zero(scale):
        return model_fn

    def guided(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        out = model_fn(x, t, y)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(log_likelihood(z, t, y).sum(), z)
        if counts is not None:
            counts.other_gradients += 1
        alpha, sigma = _levels(schedule, t, x)
        d = resolve(out, prediction, x, alpha, sigma)
        s = expand(_scale_at(scale, t, x) * sigma, x)
        return shift_eps(d, -s * grad, x, alpha, sigma, prediction)

    return guided


def classifier_guidance(
    model_fn,
    classifier_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scale: Scale,
    schedule: Schedule,
    prediction: str,
    *,
    label: int | None = None,
    counts: GuidanceCounts | None = None,
):
    """Classifier guidance (Dhariwal & Nichol 2021) of an unconditional model towards ``label``
    (or the label each sampler call passes as y).  ``classifier_fn(x_t, t) -> (B, C)`` logits of
    p(y | x_t) at time t.  The model is always called without a label (a classifier-free wrapper
    then gives its unconditional branch); a call with neither a label here nor a y, or a zero
    scale, is the unguided model."""

    def unconditional(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return model_fn(x, t, None)

    if _is_zero(scale):
        return unconditional

    def log_p_label(x: torch.Tensor, t: torch.Tensor, y) -> torch.Tensor:
        wanted = torch.as_tensor(label if label is not None else y, device=x.device).long().expand(x.shape[0])
        return torch.log_softmax(classifier_fn(x, t), dim=-1).gather(1, wanted[:, None])[:, 0]

    guided = likelihood_guidance(unconditional, log_p_label, scale, schedule, prediction, counts=counts)

    def with_label(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        if label is None and y is None:
            return model_fn(x, t, None)
        return guided(x, t, y)

    return with_label


# -- guidance by a loss on the clean estimate: DPS, universal guidance -----------------------


def loss_guidance(
    model_fn,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scale: Scale,
    schedule: Schedule,
    prediction: str,
    *,
    backward_steps: int = 0,
    backward_lr: float = 0.1,
    counts: GuidanceCounts | None = None,
):
    """Guidance by ``loss(x0_hat, t) -> (B,)``, differentiable, on the model's clean estimate.

    Forward guidance (Bansal et al. 2023, Eq. 6; DPS, Chung et al. 2023, Algorithm 1 in eps
    form): eps + s(t) sigma_t grad_{x_t} L(x0_hat(x_t)), the gradient through the denoiser (one
    backward pass through the model per evaluation).  ``backward_steps`` > 0 adds universal
    guidance's backward guidance (Bansal et al. 2023, Eq. 8-9): delta = argmin L(x0_hat + delta)
    by that many gradient steps of size ``backward_lr`` on x0 alone, then eps - (alpha / sigma)
    delta, which moves x0_hat by delta.
    """
    if _is_zero(scale) and backward_steps == 0:
        return model_fn

    def guided(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        alpha, sigma = _levels(schedule, t, x)
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            d = resolve(model_fn(z, t, y), prediction, z, alpha, sigma)
            if _is_zero(scale):
                grad = torch.zeros_like(x)
            else:
                (grad,) = torch.autograd.grad(loss(d.x0, t).sum(), z)
                if counts is not None:
                    counts.model_backward += 1
        d = Denoised(d.x0.detach(), d.eps.detach())
        s = expand(_scale_at(scale, t, x) * sigma, x)
        delta = s * grad
        if backward_steps:
            x0 = d.x0 - expand(sigma / alpha.clamp_min(1e-12), x) * delta  # x0 after forward guidance
            step = _backward_guidance(loss, x0, t, backward_steps, backward_lr, counts)
            delta = delta - expand(alpha / sigma, x) * step
        return shift_eps(d, delta, x, alpha, sigma, prediction)

    return guided


def _backward_guidance(loss, x0: torch.Tensor, t: torch.Tensor, steps: int, lr: float, counts: GuidanceCounts | None) -> torch.Tensor:
    """delta minimising L(x0 + delta) by ``steps`` of gradient descent from 0 (Bansal et al. 2023, Eq. 8)."""
    delta = torch.zeros_like(x0)
    with torch.enable_grad():
        for _ in range(steps):
            v = delta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss(x0 + v, t).sum(), v)
            delta = delta - lr * g
    if counts is not None:
        counts.other_gradients += steps
    return delta.detach()


def observation_loss(mask: torch.Tensor, values: torch.Tensor, noise_std: float = 0.1):
    """DPS's Gaussian misfit of observed values (Chung et al. 2023, Eq. 16): ||mask (x0 - values)||^2
    / (2 noise_std^2) per sample; ``mask`` and ``values`` broadcast over one sample's shape."""
    if not noise_std > 0:
        raise ValueError(f"noise_std must be > 0, got {noise_std}")

    def loss(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        resid = (x0 - values.to(x0)) * mask.to(x0)
        return resid.flatten(1).pow(2).sum(1) / (2 * noise_std**2)

    return loss


# -- replacement: RePaint-style conditioning on known coordinates ----------------------------


def replacement(
    model_fn,
    mask: torch.Tensor,
    values: torch.Tensor,
    schedule: Schedule,
    prediction: str,
    *,
    generator=None,
):
    """Known coordinates replaced by the noised observation before every evaluation (Lugmayr et
    al. 2022, Eq. 8, without RePaint's resampling; Song et al. 2021, App. I.2): the model sees
    x_t with x_t[mask] = alpha_t values + sigma_t z, z fresh noise, and its output is returned
    with x0_hat[mask] = values, so the sampler's known coordinates land on the values at t = 0.
    No gradients: the unknown coordinates only feel the observation through the network.
    ``generator`` draws z: a torch.Generator or a per-sample samplers.noise.SampleNoise."""
    mask = mask.to(torch.bool)

    def guided(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        alpha, sigma = _levels(schedule, t, x)
        m, v = mask.to(x.device).expand_as(x), values.to(x).expand_as(x)
        z = normal_like(x, generator)
        noised = expand(alpha, x) * v + expand(sigma, x) * z
        x_in = torch.where(m, noised, x)
        d = resolve(model_fn(x_in, t, y), prediction, x_in, alpha, sigma)
        x0 = torch.where(m, v, d.x0)
        # eps read at the sampler's own x_t: unchanged where unknown (x_in = x there), and the
        # noise that takes the known coordinates to their values elsewhere.
        eps = torch.where(m, (x - expand(alpha, x) * v) / expand(sigma, x), d.eps)
        return target(prediction, x0, eps, alpha, sigma)

    return guided


def paste_observed(x: torch.Tensor, mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Samples with their observed coordinates set to the observed values (what every
    conditional draw returns: the observation is known, not sampled)."""
    return torch.where(mask.to(torch.bool).to(x.device).expand_as(x), values.to(x).expand_as(x), x)
