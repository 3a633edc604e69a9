"""The forward process q and the prediction conversions.

Oracles: Ho et al. (2020) Eqs. 2, 4, 6-7 written out again from numpy betas; Monte Carlo with
tolerances set from the sampling error; exact round trips between prediction targets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from denoiselab.forward_process import q_chain, q_posterior, q_sample, q_step, transition
from denoiselab.prediction import PREDICTIONS, expand, resolve, target
from denoiselab.schedules import flow_schedule, make_schedule


def numpy_betas(kind: str, T: int) -> np.ndarray:
    """Betas of make_schedule(kind, T, scale_with_T=False) from the papers' formulas."""
    if kind == "linear":
        return np.linspace(1e-4, 0.02, T)
    if kind == "cosine":
        f = lambda k: np.cos((k / T + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        k = np.arange(1, T + 1, dtype=np.float64)
        return np.minimum(1.0 - f(k) / f(k - 1), 0.999)
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------
# q_sample and q_step
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_step_is_ho_eq_2(kind):
    T = 200
    sch = make_schedule(kind, T, scale_with_T=False)
    betas = numpy_betas(kind, T)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    for k in (1, 2, 57, T - 1, T):
        b = betas[k - 1]  # our k is the paper's 1-based t, numpy index k - 1
        expected = math.sqrt(1 - b) * x + math.sqrt(b) * eps
        torch.testing.assert_close(q_step(sch, x, k, eps), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_q_sample_is_ho_eq_4(kind):
    T = 100
    sch = make_schedule(kind, T, scale_with_T=False)
    ab = np.concatenate([[1.0], np.cumprod(1 - numpy_betas(kind, T))])
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 2, generator=g, dtype=torch.float64)
    for k in (0, 1, 33, T):
        expected = math.sqrt(ab[k]) * x0 + math.sqrt(1 - ab[k]) * eps
        torch.testing.assert_close(q_sample(sch, x0, k, eps), expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(q_sample(sch, x0, 0, eps), x0)
    # Per-sample k broadcasts over the trailing dimensions.
    ks = torch.tensor([0, 5, 50, 100])
    per_sample = q_sample(sch, x0, ks, eps)
    for i, k in enumerate(ks.tolist()):
        torch.testing.assert_close(per_sample[i], q_sample(sch, x0[i : i + 1], k, eps[i : i + 1])[0])
    images = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float32)
    out = q_sample(sch, images, ks, torch.zeros_like(images))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, images * torch.tensor(np.sqrt(ab[ks.numpy()]), dtype=torch.float32)[:, None, None, None])


def test_q_chain_matches_closed_form_in_distribution():
    """Running the chain k steps and jumping there in closed form give the same law.

    x0 is a fixed non-Gaussian set (three atoms); per atom, the chain's mean and variance must
    match alpha_k x0 and sigma_k^2 within ~5 standard errors, and the standardised residuals
    must pass a KS test against N(0, 1).
    """
    T, k, n = 50, 30, 20000
    sch = make_schedule("linear", T, scale_with_T=True)  # betas up to 0.4: every step matters
    atoms = torch.tensor([-4.0, 0.5, 3.0], dtype=torch.float64)
    x0 = atoms.repeat_interleave(n)[:, None]
    g = torch.Generator().manual_seed(1234)
    xs = q_chain(sch, x0, k, generator=g)
    assert len(xs) == k + 1 and xs[0] is x0
    x_k = xs[-1][:, 0]
    a, s = sch.alphas[k].item(), sch.sigmas[k].item()
    for j, atom in enumerate(atoms.tolist()):
        xj = x_k[j * n : (j + 1) * n]
        assert abs(xj.mean().item() - a * atom) < 5 * s / math.sqrt(n)
        assert abs(xj.var().item() - s**2) < 5 * s**2 * math.sqrt(2 / (n - 1))
        assert stats.kstest(((xj - a * atom) / s).numpy(), "norm").pvalue > 1e-3
    # Every intermediate x_j has the marginal of q(x_j | x0) too (checked on the largest atom).
    big = slice(0, n)
    for j in (1, 10, 20):
        xj = xs[j][big, 0]
        aj, sj = sch.alphas[j].item(), sch.sigmas[j].item()
        assert abs(xj.mean().item() - aj * -4.0) < 5 * sj / math.sqrt(n)
        assert abs(xj.std().item() / sj - 1) < 5 / math.sqrt(2 * n)


def test_transition_composes():
    """q(x_k | x_r) = q(x_k | x_s) o q(x_s | x_r) for r < s < k (Kingma et al. 2021, Eq. 33)."""
    sch = make_schedule("cosine", 1000)
    for r, s, k in [(0, 1, 2), (0, 400, 1000), (3, 500, 999), (10, 11, 700)]:
        a_sr, v_sr = transition(sch, r, s)
        a_ks, v_ks = transition(sch, s, k)
        a_kr, v_kr = transition(sch, r, k)
        assert (a_ks * a_sr).item() == pytest.approx(a_kr.item(), rel=1e-12)
        assert (a_ks**2 * v_sr + v_ks).item() == pytest.approx(v_kr.item(), rel=1e-9)
    # One step of the DDPM chain is (sqrt(1 - beta_k), beta_k).
    a, v = transition(sch, 9, 10)
    beta = sch.betas[9].item()
    assert a.item() == pytest.approx(math.sqrt(1 - beta), rel=1e-12)
    assert v.item() == pytest.approx(beta, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# The posterior q(x_s | x_k, x_0)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,T", [("linear", 1000), ("cosine", 1000), ("linear", 50), ("cosine", 30)])
def test_posterior_one_step_is_ho_eq_7(kind, T):
    sch = make_schedule(kind, T, scale_with_T=False)
    betas = numpy_betas(kind, T)
    ab = np.concatenate([[1.0], np.cumprod(1 - betas)])
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x_k = torch.randn(6, 2, generator=g, dtype=torch.float64)
    for k in sorted({1, 2, 3, T // 2, T - 1, T}):
        b, ab_k, ab_prev = betas[k - 1], ab[k], ab[k - 1]
        beta_tilde = (1 - ab_prev) / (1 - ab_k) * b
        mu_tilde = math.sqrt(ab_prev) * b / (1 - ab_k) * x0 + math.sqrt(1 - b) * (1 - ab_prev) / (1 - ab_k) * x_k
        post = q_posterior(sch, x0, x_k, k, k - 1)
        torch.testing.assert_close(post.mean, mu_tilde, rtol=1e-9, atol=1e-12)
        assert post.variance.item() == pytest.approx(beta_tilde, rel=1e-8, abs=1e-15)
    # From k = 1 the posterior is a point mass at x0.
    post = q_posterior(sch, x0, x_k, 1, 0)
    torch.testing.assert_close(post.mean, x0, rtol=0, atol=1e-12)
    assert post.variance.item() == 0.0


@pytest.mark.parametrize("k,s", [(1000, 500), (700, 1), (300, 250), (1000, 0), (20, 5)])
def test_posterior_skipped_step_moments_exact(k, s):
    """Marginalising x_k out of q(x_s | x_k, x0) gives back q(x_s | x0): exact algebra."""
    sch = make_schedule("cosine", 1000)
    x0 = torch.tensor([[1.0, -3.0, 0.25]], dtype=torch.float64)
    # The posterior mean is linear in x_k: c_xk x_k + c_x0 x0.  Read c_xk off two evaluations.
    m0 = q_posterior(sch, x0, torch.zeros_like(x0), k, s)
    m1 = q_posterior(sch, x0, torch.ones_like(x0), k, s)
    c_xk = (m1.mean - m0.mean)[0, 0].item()
    a_k, s_k, a_s, s_s = (sch.alphas[k].item(), sch.sigmas[k].item(), sch.alphas[s].item(), sch.sigmas[s].item())
    # E[x_s] = c_xk alpha_k x0 + c_x0 x0 = alpha_s x0 and Var = c_xk^2 sigma_k^2 + var = sigma_s^2.
    torch.testing.assert_close(m0.mean + c_xk * a_k * x0, a_s * x0, rtol=1e-10, atol=1e-12)
    assert c_xk**2 * s_k**2 + m0.variance.item() == pytest.approx(s_s**2, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("kind,k,s", [("linear", 1000, 400), ("cosine", 800, 100), ("linear", 60, 10)])
def test_posterior_skipped_step_monte_carlo(kind, k, s):
    """x_k ~ q(x_k | x0), then x_s ~ q(x_s | x_k, x0): x_s must be distributed as q(x_s | x0)."""
    sch = make_schedule(kind, 1000)
    n = 40000
    atoms = torch.tensor([-2.0, 3.0], dtype=torch.float64)
    x0 = atoms.repeat_interleave(n)[:, None]
    g = torch.Generator().manual_seed(7)
    x_k = q_sample(sch, x0, k, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    post = q_posterior(sch, x0, x_k, k, s)
    x_s = post.mean + post.variance.sqrt() * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    a_s, s_s = sch.alphas[s].item(), sch.sigmas[s].item()
    for j, atom in enumerate(atoms.tolist()):
        xj = x_s[j * n : (j + 1) * n, 0]
        assert abs(xj.mean().item() - a_s * atom) < 5 * s_s / math.sqrt(n)
        assert abs(xj.var().item() / s_s**2 - 1) < 5 * math.sqrt(2 / (n - 1))
        assert stats.kstest(((xj - a_s * atom) / s_s).numpy(), "norm").pvalue > 1e-3


# ---------------------------------------------------------------------------------------------
# prediction.py
# ---------------------------------------------------------------------------------------------


ROUND_TRIP_CASES = {
    "linear": (lambda: make_schedule("linear", 1000), [1, 10, 500, 999, 1000]),
    "cosine": (lambda: make_schedule("cosine", 1000), [1, 300, 990]),
    "flow": (lambda: flow_schedule(1000), [1, 10, 500, 999]),  # k = T has alpha = 0: x0 unreadable from eps
}


@pytest.mark.parametrize("kind", PREDICTIONS)
@pytest.mark.parametrize("name", list(ROUND_TRIP_CASES))
def test_prediction_round_trip(kind, name):
    make, ks = ROUND_TRIP_CASES[name]
    sch = make()
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(len(ks), 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(len(ks), 3, 4, 4, generator=g, dtype=torch.float64)
    idx = torch.tensor(ks)
    a, s = sch.alphas[idx], sch.sigmas[idx]  # per-sample coefficients, shape (B,)
    x_t = expand(a, x0) * x0 + expand(s, x0) * eps
    pred = target(kind, x0, eps, a, s)
    d = resolve(pred, kind, x_t, a, s)
    torch.testing.assert_close(d.x0, x0, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(d.eps, eps, rtol=1e-8, atol=1e-8)
    # Scalar coefficients give the same answer sample by sample.
    for i in range(len(ks)):
        di = resolve(pred[i : i + 1], kind, x_t[i : i + 1], float(a[i]), float(s[i]))
        torch.testing.assert_close(di.x0, d.x0[i : i + 1])
        torch.testing.assert_close(di.eps, d.eps[i : i + 1])


def test_targets_are_the_textbook_definitions():
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(8, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 2, generator=g, dtype=torch.float64)
    a, s = 0.6, 0.8
    assert torch.equal(target("eps", x0, eps, a, s), eps)
    assert torch.equal(target("x0", x0, eps, a, s), x0)
    torch.testing.assert_close(target("v", x0, eps, a, s), a * eps - s * x0)  # Salimans & Ho 2022
    torch.testing.assert_close(target("velocity", x0, eps, a, s), eps - x0)
    # v is the derivative of x along the VP circle (alpha, sigma) = (cos phi, sin phi): dx/dphi.
    phi, dphi = math.atan2(s, a), 1e-6
    x = lambda p: math.cos(p) * x0 + math.sin(p) * eps  # noqa: E731
    torch.testing.assert_close((x(phi + dphi) - x(phi - dphi)) / (2 * dphi), target("v", x0, eps, a, s), rtol=1e-6, atol=1e-8)


def test_flow_velocity_is_dx_dt():
    T = 100
    sch = flow_schedule(T)
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 2, generator=g, dtype=torch.float64)
    for k in (0, 37, 99):
        dx = (q_sample(sch, x0, k + 1, eps) - q_sample(sch, x0, k, eps)) * T
        torch.testing.assert_close(dx, target("velocity", x0, eps, sch.alphas[k], sch.sigmas[k]), rtol=1e-9, atol=1e-9)


def test_unknown_prediction_raises():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="velocity"):
        resolve(x, "score", x, 0.5, 0.5)
    with pytest.raises(ValueError, match="eps"):
        target("sample", x, x, 0.5, 0.5)
