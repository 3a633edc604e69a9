"""Closed-form denoisers for data whose distribution is known exactly.

For an isotropic Gaussian mixture p(x_0) = sum_j w_j N(mu_j, s_j^2 I), the noisy marginal
at (alpha, sigma) is again a mixture, sum_j w_j N(alpha mu_j, (alpha^2 s_j^2 + sigma^2) I),
so the exact clean estimate E[x_0 | x_t] is a responsibility-weighted sum of Gaussian
posterior means, and eps*(x_t) = (x_t - alpha E[x_0 | x_t]) / sigma = -sigma grad log p_t(x_t)
(Tweedie / the score identity of Song et al. 2021).  Any other prediction (v, the flow
velocity) follows from these two.  Samplers driven by it should reproduce p(x_0) up to
discretisation error, which makes it an oracle for testing samplers without training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .prediction import target
from .schedules import Schedule


@dataclass(frozen=True)
class GaussianMixture:
    means: torch.Tensor  # (J, D)
    stds: torch.Tensor  # (J,)
    weights: torch.Tensor  # (J,), sums to 1

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        j = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[j] + self.stds[j, None] * noise

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_0) of each row of ``x`` (B, D): log sum_j w_j N(x; mu_j, s_j^2 I)."""
        means, stds, w = (v.to(x.dtype) for v in (self.means, self.stds, self.weights))
        sq = ((x[:, None, :] - means[None]) ** 2).sum(-1)  # (B, J)
        log_n = -0.5 * sq / stds**2 - self.dim * (torch.log(stds) + 0.5 * math.log(2 * math.pi))
        return torch.logsumexp(torch.log(w) + log_n, dim=1)

    def denoiser(self, schedule: Schedule, prediction: str = "eps"):
        """A model function ``(x_t, t, y=None) -> prediction`` exact for this mixture under
        ``schedule`` at any t in (0, 1], for any prediction type (eps, x0, v, velocity)."""

        def model_fn(x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
            alpha = schedule.alpha_at(t.double()).to(x_t.dtype)
            sigma = schedule.sigma_at(t.double()).to(x_t.dtype)
            x0 = self.posterior_mean(x_t, alpha, sigma)
            # eps from x0: finite where alpha = 0 (t = 1 on the flow path, eps = x_t there).
            eps = (x_t - alpha[:, None] * x0) / sigma[:, None]
            return target(prediction, x0, eps, alpha, sigma)

        return model_fn

    def eps_model(self, schedule: Schedule):
        """The exact noise prediction (``denoiser(schedule, "eps")``)."""
        return self.denoiser(schedule, "eps")

    def posterior_mean(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] at per-sample (alpha, sigma) (shape (B,)): each component's Gaussian
        posterior mean mu_j + alpha s_j^2 / (alpha^2 s_j^2 + sigma^2) (x_t - alpha mu_j),
        weighted by the posterior probability of the component."""
        means, stds, w = (v.to(x_t.dtype) for v in (self.means, self.stds, self.weights))
        a, s = alpha[:, None, None], sigma[:, None, None]  # (B, 1, 1)
        var = a**2 * stds[None, :, None] ** 2 + s**2  # (B, J, 1): variance of x_t given component j
        diff = x_t[:, None, :] - a * means[None]  # (B, J, D)
        log_r = torch.log(w)[None] - 0.5 * (diff**2 / var).sum(-1) - 0.5 * self.dim * torch.log(var[..., 0])
        resp = torch.softmax(log_r, dim=1)[..., None]  # (B, J, 1) posterior over components
        comp_mean = means[None] + a * stds[None, :, None] ** 2 / var * diff
        return (resp * comp_mean).sum(1)


def two_d_mixture() -> GaussianMixture:
    """A small 2D test mixture: three well-separated, unequal components."""
    return GaussianMixture(
        means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
        stds=torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64),
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
    )


def ring_mixture(modes: int = 8, radius: float = 2.0, std: float = 0.05, centre_std: float = 0.4, centre_weight: float = 0.2) -> GaussianMixture:
    """A hard 2D mixture: ``modes`` narrow components (std 0.05) evenly on a ring, unequal in
    weight (1, 2, 1, 2, ...), around one wide centre component.  Few-step samplers blur the
    narrow modes and mis-share mass between them and the centre."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    ring = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    ring_w = torch.tensor([1.0 + (j % 2) for j in range(modes)], dtype=torch.float64)
    ring_w = (1 - centre_weight) * ring_w / ring_w.sum()
    return GaussianMixture(
        means=torch.cat([ring, torch.zeros(1, 2, dtype=torch.float64)]),
        stds=torch.cat([torch.full((modes,), std, dtype=torch.float64), torch.tensor([centre_std], dtype=torch.float64)]),
        weights=torch.cat([ring_w, torch.tensor([centre_weight], dtype=torch.float64)]),
    )
