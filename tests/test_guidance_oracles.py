"""The closed-form conditionals of a labelled Gaussian mixture (oracles.py), checked against
finite differences, autograd and numerical integration of the joint density."""

from __future__ import annotations

import pytest
import torch

from denoiselab.oracles import GaussianMixture, labelled_mixture

MIX = labelled_mixture()


def _points(n: int = 64, seed: int = 0) -> torch.Tensor:
    return 2.0 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _levels(n: int, alpha: float, sigma: float):
    return torch.full((n,), alpha, dtype=torch.float64), torch.full((n,), sigma, dtype=torch.float64)


def test_class_posterior_is_a_distribution_over_classes():
    x = _points()
    for alpha, sigma in ((1.0, 0.05), (0.8, 0.6), (0.1, 0.99)):
        logp = MIX.class_log_posterior(x, *_levels(len(x), alpha, sigma))
        assert logp.shape == (len(x), 2)
        torch.testing.assert_close(logp.exp().sum(1), torch.ones(len(x), dtype=torch.float64))


def test_class_posterior_gradient_matches_finite_differences_and_autograd():
    x = _points(32, seed=1)
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(2))
    h = 1e-6
    for alpha, sigma in ((0.95, 0.3), (0.6, 0.8)):
        a, s = _levels(len(x), alpha, sigma)
        grad = MIX.class_log_posterior_grad(x, a, s, y)

        def log_py(z):
            return MIX.class_log_posterior(z, a, s).gather(1, y[:, None])[:, 0]

        fd = torch.stack([(log_py(x + h * e) - log_py(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)], dim=1)
        torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-7)
        z = x.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(log_py(z).sum(), z)
        torch.testing.assert_close(grad, auto)
        assert grad.abs().max() > 0.1  # not a vacuous comparison of zeros


def test_class_conditional_is_the_sub_mixture_and_bayes_holds():
    x = _points(16, seed=3)
    one = torch.ones(len(x), dtype=torch.float64)
    log_py = MIX.class_log_posterior(x, one, 0 * one)
    for y in (0, 1):
        sub = MIX.class_conditional(y)
        prior = float(MIX.weights[MIX.labels == y].sum())
        # p(x | y) = p(y | x) p(x) / p(y)
        torch.testing.assert_close(sub.log_prob(x), log_py[:, y] + MIX.log_prob(x) - torch.log(torch.tensor(prior, dtype=torch.float64)))


def test_conditioning_on_a_coordinate_matches_the_normalised_joint_density():
    u = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    for a in (-1.5, 0.0, 0.7):
        cond = MIX.condition({0: a})
        joint = MIX.log_prob(torch.stack([torch.full_like(u, a), u], dim=1)).exp()
        numeric = joint / torch.trapezoid(joint, u)
        torch.testing.assert_close(cond.log_prob(u[:, None]).exp(), numeric, rtol=1e-6, atol=1e-9)


def test_observation_likelihood_matches_integration_over_the_unobserved_coordinate():
    # p(x0_1 = a | x_t) = integral of p(x_t | x0 = (a, u)) p(a, u) du / p_t(x_t).
    u = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    x_t = _points(6, seed=4)
    alpha, sigma, a = 0.7, 0.7141428, 0.4
    mask, values = torch.tensor([True, False]), torch.tensor([a, 0.0], dtype=torch.float64)
    exact = MIX.observation_log_likelihood(x_t, *_levels(len(x_t), alpha, sigma), mask, values)
    x0 = torch.stack([torch.full_like(u, a), u], dim=1)
    prior = MIX.log_prob(x0).exp()
    marginal = MIX.noised(alpha, sigma).log_prob(x_t).exp()
    for i in range(len(x_t)):
        kernel = torch.exp(-((x_t[i] - alpha * x0) ** 2).sum(1) / (2 * sigma**2)) / (2 * torch.pi * sigma**2)
        numeric = torch.trapezoid(kernel * prior, u) / marginal[i]
        torch.testing.assert_close(exact[i].exp(), numeric, rtol=1e-6, atol=1e-12)


def test_noised_mixture_log_prob_is_the_denoisers_marginal():
    # eps*(x_t) = -sigma grad log p_t(x_t) (Tweedie): the denoiser and the noised mixture agree.
    from denoiselab.schedules import make_schedule

    schedule = make_schedule("cosine", 1000)
    t = torch.full((8,), 0.4, dtype=torch.float64)
    alpha, sigma = float(schedule.alpha_at(0.4)), float(schedule.sigma_at(0.4))
    x = _points(8, seed=5).requires_grad_(True)
    (score,) = torch.autograd.grad(MIX.noised(alpha, sigma).log_prob(x).sum(), x)
    torch.testing.assert_close(MIX.eps_model(schedule)(x.detach(), t), -sigma * score)


def test_mixture_without_labels_refuses_class_questions():
    mix = GaussianMixture(MIX.means, MIX.stds, MIX.weights)
    with pytest.raises(ValueError, match="labels"):
        mix.class_conditional(0)
