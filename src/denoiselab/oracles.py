"""Closed-form denoisers for data whose distribution is known exactly.

For an isotropic Gaussian mixture p(x_0) = sum_j w_j N(mu_j, s_j^2 I), the noisy marginal
at (alpha, sigma) is again a mixture, sum_j w_j N(alpha mu_j, (alpha^2 s_j^2 + sigma^2) I),
so the exact clean estimate E[x_0 | x_t] is a responsibility-weighted sum of Gaussian
posterior means, and eps*(x_t) = (x_t - alpha E[x_0 | x_t]) / sigma = -sigma grad log p_t(x_t)
(Tweedie / the score identity of Song et al. 2021).  Any other prediction (v, the flow
velocity) follows from these two.  Samplers driven by it should reproduce p(x_0) up to
discretisation error, which makes it an oracle for testing samplers without training.

Conditionals are closed-form too, which makes the mixture an oracle for guidance
(gradient_guidance.py).  With a class label per component:

    p(y | x_t)      = sum_{j in class y} r_j(x_t),   r_j the responsibility of component j at (alpha, sigma)
    p(x_0 | y)      = the sub-mixture of class y's components, weights renormalised
    p(x_B | x_A = a) = sum_j w_j' N(mu_j,B, s_j^2 I),  w_j' proportional to w_j N(a; mu_j,A, s_j^2 I)

(the last because an isotropic Gaussian's coordinates are independent: conditioning one
component only reweights it).  And the exact likelihood of an observation at time t,
p(x_0,A = a | x_t) = sum_j r_j(x_t) N(a; m_j,A(x_t), v_j I), with m_j, v_j the component's Gaussian
posterior mean and variance: its gradient is the exact guidance term for inpainting.
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
    labels: torch.Tensor | None = None  # (J,) class of each component (long), for the classifier oracles

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else int(self.labels.max()) + 1

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        j = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[j] + self.stds[j, None] * noise

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x_0) for points x (B, D)."""
        one = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        log_joint, _, _ = self._components_given(x, one, 0 * one)
        return torch.logsumexp(log_joint, dim=1)

    def noised(self, alpha: float, sigma: float) -> "GaussianMixture":
        """The marginal of x_t = alpha x_0 + sigma eps: components N(alpha mu_j, (alpha^2 s_j^2 + sigma^2) I)."""
        return GaussianMixture(alpha * self.means, (alpha**2 * self.stds**2 + sigma**2).sqrt(), self.weights, self.labels)

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

    def _components_given(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        """Per component j at per-sample (alpha, sigma) (shape (B,)): log w_j + log N(x_t; alpha mu_j,
        var_j I) (B, J), var_j = alpha^2 s_j^2 + sigma^2 (B, J, 1), and x_t - alpha mu_j (B, J, D)."""
        means, stds, w = (v.to(x_t.dtype) for v in (self.means, self.stds, self.weights))
        a, s = alpha[:, None, None], sigma[:, None, None]  # (B, 1, 1)
        var = a**2 * stds[None, :, None] ** 2 + s**2  # (B, J, 1): variance of x_t given component j
        diff = x_t[:, None, :] - a * means[None]  # (B, J, D)
        log_joint = (
            torch.log(w)[None] - 0.5 * (diff**2 / var).sum(-1) - 0.5 * self.dim * torch.log(2 * torch.pi * var[..., 0])
        )
        return log_joint, var, diff

    def posterior_mean(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] at per-sample (alpha, sigma) (shape (B,)): each component's Gaussian
        posterior mean mu_j + alpha s_j^2 / (alpha^2 s_j^2 + sigma^2) (x_t - alpha mu_j),
        weighted by the posterior probability of the component."""
        log_joint, var, diff = self._components_given(x_t, alpha, sigma)
        resp = torch.softmax(log_joint, dim=1)[..., None]  # (B, J, 1) posterior over components
        a, stds = alpha[:, None, None], self.stds.to(x_t.dtype)
        comp_mean = self.means.to(x_t.dtype)[None] + a * stds[None, :, None] ** 2 / var * diff
        return (resp * comp_mean).sum(1)

    # -- classes -------------------------------------------------------------------------------

    def _class_labels(self) -> torch.Tensor:
        if self.labels is None:
            raise ValueError("this mixture has no class labels (GaussianMixture(labels=...))")
        return self.labels.long()

    def class_log_posterior(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """log p(y | x_t) for every class, (B, C): the log of the responsibilities summed per class."""
        log_joint, _, _ = self._components_given(x_t, alpha, sigma)
        log_resp = torch.log_softmax(log_joint, dim=1)  # (B, J)
        onehot = torch.nn.functional.one_hot(self._class_labels(), self.num_classes).to(x_t.dtype)  # (J, C)
        # log sum_{j in y} r_j, as a log-sum-exp over the class's components (-inf elsewhere).
        masked = log_resp[:, :, None] + torch.log(onehot)[None]  # (B, J, C)
        return torch.logsumexp(masked, dim=1)

    def class_log_posterior_grad(self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """grad_x log p(y | x_t) in closed form, (B, D).  With g_j = -(x_t - alpha mu_j) / var_j the
        score of component j, log p(y | x_t) = log sum_{j in y} w_j N_j - log sum_j w_j N_j, so the
        gradient is (mean of g_j under the responsibilities within class y) - (mean under all)."""
        log_joint, var, diff = self._components_given(x_t, alpha, sigma)
        g = -diff / var  # (B, J, D)
        in_class = self._class_labels()[None, :] == torch.as_tensor(y, device=x_t.device).long().reshape(-1, 1)
        resp_all = torch.softmax(log_joint, dim=1)
        resp_class = torch.softmax(log_joint.masked_fill(~in_class, float("-inf")), dim=1)
        return ((resp_class - resp_all)[..., None] * g).sum(1)

    def classifier(self, schedule: Schedule):
        """The exact noisy classifier as ``classifier_fn(x_t, t) -> log p(y | x_t)`` of shape (B, C)."""

        def classifier_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            alpha = schedule.alpha_at(t.double()).to(x_t.dtype)
            sigma = schedule.sigma_at(t.double()).to(x_t.dtype)
            return self.class_log_posterior(x_t, alpha, sigma)

        return classifier_fn

    def class_conditional(self, y: int) -> "GaussianMixture":
        """p(x_0 | y): the components of class y, their weights renormalised."""
        keep = self._class_labels() == int(y)
        if not bool(keep.any()):
            raise ValueError(f"class {y} has no component; classes are 0..{self.num_classes - 1}")
        w = self.weights[keep]
        return GaussianMixture(self.means[keep], self.stds[keep], w / w.sum(), self.labels[keep])

    # -- observed coordinates ------------------------------------------------------------------

    def condition(self, observed: dict[int, float]) -> "GaussianMixture":
        """p(x_rest | x_A = a): a mixture over the coordinates not in ``observed`` (0-based index
        -> value), each component reweighted by w_j N(a; mu_j,A, s_j^2 I) and otherwise unchanged."""
        obs = sorted(observed)
        if not obs or obs[0] < 0 or obs[-1] >= self.dim or len(obs) == self.dim:
            raise ValueError(f"observe between 1 and {self.dim - 1} of coordinates 0..{self.dim - 1}, got {obs}")
        rest = [i for i in range(self.dim) if i not in observed]
        a = torch.tensor([observed[i] for i in obs], dtype=self.means.dtype)
        diff = a[None] - self.means[:, obs]  # (J, |A|)
        log_w = torch.log(self.weights) - 0.5 * (diff**2).sum(-1) / self.stds**2 - len(obs) * torch.log(self.stds)
        return GaussianMixture(self.means[:, rest], self.stds, torch.softmax(log_w, 0), self.labels)

    def observation_log_likelihood(
        self, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, mask: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """log p(x_0,A = values_A | x_t), (B,), with A the coordinates where ``mask`` (D,) is true:
        the components' Gaussian posteriors N(m_j, v_j I), m_j = mu_j + alpha s_j^2 / var_j (x_t -
        alpha mu_j) and v_j = s_j^2 sigma^2 / var_j, read at A and mixed by the responsibilities."""
        log_joint, var, diff = self._components_given(x_t, alpha, sigma)
        stds = self.stds.to(x_t.dtype)[None, :, None]
        m = self.means.to(x_t.dtype)[None] + alpha[:, None, None] * stds**2 / var * diff  # (B, J, D)
        v = stds**2 * sigma[:, None, None] ** 2 / var  # (B, J, 1)
        mask = mask.to(torch.bool)
        resid = (values.to(x_t.dtype) - m)[..., mask]  # (B, J, |A|)
        k = int(mask.sum())
        log_obs = -0.5 * (resid**2 / v).sum(-1) - 0.5 * k * torch.log(2 * torch.pi * v[..., 0])  # (B, J)
        return torch.logsumexp(torch.log_softmax(log_joint, dim=1) + log_obs, dim=1)

    def observation_likelihood(self, schedule: Schedule, mask: torch.Tensor, values: torch.Tensor):
        """``log_likelihood(x_t, t) -> (B,)``: the exact log p(x_0,A = values_A | x_t) under ``schedule``."""

        def log_likelihood(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            alpha = schedule.alpha_at(t.double()).to(x_t.dtype)
            sigma = schedule.sigma_at(t.double()).to(x_t.dtype)
            return self.observation_log_likelihood(x_t, alpha, sigma, mask, values)

        return log_likelihood


def two_d_mixture() -> GaussianMixture:
    """A small 2D test mixture: three well-separated, unequal components."""
    return GaussianMixture(
        means=torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
        stds=torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64),
        weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
    )


def labelled_mixture() -> GaussianMixture:
    """A 2D mixture of two classes whose components overlap in x1, so p(x2 | x1 = a) is
    multimodal for some a and p(x | y) differs visibly from p(x): class 0 is two blobs on the
    left and top, class 1 two on the right and bottom."""
    return GaussianMixture(
        means=torch.tensor([[-1.5, 0.0], [0.0, 1.5], [1.5, 0.0], [0.0, -1.5]], dtype=torch.float64),
        stds=torch.tensor([0.35, 0.3, 0.35, 0.3], dtype=torch.float64),
        weights=torch.tensor([0.3, 0.2, 0.3, 0.2], dtype=torch.float64),
        labels=torch.tensor([0, 0, 1, 1]),
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
