"""Closed-form denoisers for data whose distribution is known exactly.

For an isotropic Gaussian mixture p(x_0) = sum_j w_j N(mu_j, s_j^2 I), the noisy marginal
at (alpha, sigma) is again a mixture, sum_j w_j N(alpha mu_j, (alpha^2 s_j^2 + sigma^2) I),
so the exact noise prediction is eps*(x_t) = -sigma * grad log p_t(x_t) (Tweedie / the score
identity of Song et al. 2021).  Samplers driven by it should reproduce p(x_0) up to
discretisation error, which makes it an oracle for testing samplers without training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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

    def eps_model(self, schedule: Schedule):
        """A model function ``(x_t, t, y=None) -> eps`` exact for this mixture under ``schedule``."""

        def model_fn(x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
            k = torch.round(t.double() * schedule.T).long()
            alpha = schedule.alphas[k].to(x_t.dtype)[:, None, None]  # (B, 1, 1)
            sigma = schedule.sigmas[k].to(x_t.dtype)[:, None, None]
            means, stds, w = (v.to(x_t.dtype) for v in (self.means, self.stds, self.weights))
            var = alpha**2 * stds[None, :, None] ** 2 + sigma**2  # (B, J, 1)
            diff = x_t[:, None, :] - alpha * means[None]  # (B, J, D)
            log_r = torch.log(w)[None] - 0.5 * (diff**2 / var).sum(-1) - 0.5 * self.dim * torch.log(var[..., 0])
            resp = torch.softmax(log_r, dim=1)[..., None]  # (B, J, 1) posterior over components
            score = -(resp * diff / var).sum(1)
            return -sigma[:, 0] * score

        return model_fn


def two_d_mixture() -> GaussianMixture:
    """A small 2D test mixture: three well-separated, unequal components."""
    return GaussianMixture(
        means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
        stds=torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64),
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
    )
