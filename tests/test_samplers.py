"""Samplers driven by the exact noise prediction of a known Gaussian mixture.

Oracles: the mixture itself (fractions, per-component moments, energy distance), exact
equivalences between samplers (DDIM eta = 0 == first-order DPM-Solver++, DDIM eta = 1 == DDPM
with the "small" variance), closed-form trajectories of hand-written models, and convergence
of the ODE solvers to a fine-grid reference.

One subtlety shapes the reference distribution: every sampler's last step jumps from the last
non-zero grid point k_last to k = 0 and returns the model's clean estimate E[x0 | x_{k_last}],
so even a perfect sampler outputs the mixture *denoised from noise level k_last*, whose
components are narrower than the data's when sigma_{k_last} is not small (trailing 20 steps
end at k = 50, sigma = 0.17, against component stds of 0.2..0.5).  The reference is built the
same way: fresh mixture samples, noised to k_last in closed form, denoised exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab.forward_process import q_sample
from denoiselab.oracles import two_d_mixture
from denoiselab.prediction import PREDICTIONS, resolve, target
from denoiselab.samplers import (
    SAMPLERS,
    Denoiser,
    StepRecord,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    step_grid,
    time_grid,
)
from denoiselab.schedules import make_schedule

N = 6000


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors, many steps: intra-op threads only add synchronisation (badly so on a busy
    2-core machine), so run this module single-threaded and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

MIX = two_d_mixture()
SCHED = make_schedule("linear", 1000)
EPS_MODEL = MIX.eps_model(SCHED)
EXACT = Denoiser(EPS_MODEL, SCHED)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def x_T(n: int = N, seed: int = 0, dim: int = 2) -> torch.Tensor:
    return torch.randn(n, dim, generator=gen(seed), dtype=torch.float64)


def exact_x0(x: torch.Tensor, k: int) -> torch.Tensor:
    """E[x0 | x_k] for the mixture (from the exact eps via Tweedie)."""
    t = torch.full((x.shape[0],), k / SCHED.T, dtype=x.dtype)
    return resolve(EPS_MODEL(x, t), "eps", x, float(SCHED.alphas[k]), float(SCHED.sigmas[k])).x0


def reference(n: int, k_last: int, seed: int) -> torch.Tensor:
    """What an exact sampler whose last step starts at k_last outputs: denoise(q(x_{k_last}))."""
    g = gen(seed)
    x0 = MIX.sample(n, generator=g)
    x_k = q_sample(SCHED, x0, k_last, torch.randn(x0.shape, generator=g, dtype=x0.dtype))
    return exact_x0(x_k, k_last)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Szekely's energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic)."""
    return (2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()).item()


def components(x: torch.Tensor):
    """Assign each point to the nearest component mean; (fraction, mean, std, count) per component."""
    j = torch.cdist(x, MIX.means).argmin(1)
    out = []
    for c in range(len(MIX.weights)):
        xc = x[j == c]
        # Isotropic components: pool both coordinates for the std.
        out.append(((j == c).double().mean().item(), xc.mean(0), (xc - xc.mean(0)).pow(2).mean().sqrt().item(), len(xc)))
    return out


def assert_recovers_mixture(x: torch.Tensor, k_last: int, std_rtol: float, std_low_extra: float = 0.0, seed: int = 11):
    assert x.shape == (N, 2) and torch.isfinite(x).all()
    ref = reference(N, k_last, seed)
    got, want = components(x), components(ref)
    for c, ((f, m, s, n_c), (_, _, s_ref, _), w) in enumerate(zip(got, want, MIX.weights.tolist(), strict=True)):
        # Fractions: the weights, within 4 binomial standard errors.
        assert abs(f - w) < 4 * math.sqrt(w * (1 - w) / N), (c, f, w)
        # Means: the data means (denoising keeps them), within 4 standard errors plus 0.03 of
        # discretisation slack.
        se = s_ref / math.sqrt(n_c)
        assert (m - MIX.means[c]).abs().max().item() < 4 * se + 0.03, (c, m)
        # Stds: those of the reference, within std_rtol (discretisation) plus 4 standard errors.
        tol = std_rtol + 4 / math.sqrt(4 * n_c)
        assert -tol - std_low_extra < s / s_ref - 1 < tol, (c, s, s_ref)
    # The whole distribution: energy distance at the level of two independent reference draws.
    # (on the first 2500 points, to keep the distance matrices small).
    m = 2500
    null = energy_distance(reference(N, k_last, seed + 1)[:m], ref[:m])
    assert energy_distance(x[:m], ref[:m]) < max(4 * null, 3e-3)


def grid_k(t: float) -> int:
    """The grid index k of a time t = k / T on SCHED."""
    k = round(t * SCHED.T)
    assert abs(k / SCHED.T - t) < 1e-12, t
    return k


def k_last(steps: int, spacing: str = "trailing") -> int:
    return int(step_grid(SCHED, steps, spacing)[-2])


# ---------------------------------------------------------------------------------------------
# Recovering the mixture
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", ["small", "large"])
def test_ddpm_1000_steps_recovers_mixture(variance):
    x = sample_ddpm(EXACT, x_T(), time_grid(SCHED, 1000), variance=variance, generator=gen(1))
    assert k_last(1000) == 1
    assert_recovers_mixture(x, 1, std_rtol=0.03)
    # At k_last = 1 the reference is the data itself: the data's own component stds come back.
    for (_, _, s, _), s_true in zip(components(x), MIX.stds.tolist(), strict=True):
        assert abs(s / s_true - 1) < 0.08


def test_ddim_50_steps_eta0_recovers_mixture():
    x = sample_ddim(EXACT, x_T(), time_grid(SCHED, 50), eta=0.0)
    assert_recovers_mixture(x, k_last(50), std_rtol=0.06)


def test_ddim_50_steps_eta1_recovers_mixture():
    # Ancestral sampling on a coarse grid under-disperses (each step plugs in E[x0 | x_k] and
    # drops Var[x0 | x_k]), by up to ~15 % for the narrowest component at 50 steps: allowed on
    # the low side only.
    x = sample_ddim(EXACT, x_T(), time_grid(SCHED, 50), eta=1.0, generator=gen(2))
    assert_recovers_mixture(x, k_last(50), std_rtol=0.04, std_low_extra=0.16)


def test_dpmpp_2m_20_steps_recovers_mixture():
    x = sample_dpmpp_2m(EXACT, x_T(), time_grid(SCHED, 20))
    assert k_last(20) == 50
    assert_recovers_mixture(x, 50, std_rtol=0.06)


def test_reference_accounts_for_final_jump():
    """The reference used above is not the data: from k_last = 50 it is measurably narrower."""
    ref = components(reference(N, 50, 3))
    for (_, _, s, _), s_true in zip(ref, MIX.stds.tolist(), strict=True):
        a, sig = SCHED.alphas[50].item(), SCHED.sigmas[50].item()
        # Per component, denoising a Gaussian shrinks its std to a s^2 / sqrt(a^2 s^2 + sigma^2).
        assert s == pytest.approx(a * s_true**2 / math.sqrt(a**2 * s_true**2 + sig**2), rel=0.06)


def test_sampler_without_noise_fails_the_mixture_check():
    """The recovery check has teeth: ancestral sampling that forgets its noise collapses."""
    def noiseless_ddpm(denoise, xt, steps):
        from denoiselab.forward_process import q_posterior

        schedule = denoise.schedule
        grid = step_grid(schedule, steps)
        x = xt
        for i in range(steps):
            k, s = int(grid[i]), int(grid[i + 1])
            d = denoise(x, k / schedule.T)
            x = q_posterior(schedule, d.x0, x, k, s).mean
        return x

    bad = noiseless_ddpm(EXACT, x_T(), 200)
    with pytest.raises(AssertionError):
        assert_recovers_mixture(bad, 1, std_rtol=0.03)


# ---------------------------------------------------------------------------------------------
# Exact equivalences
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace", "logsnr"])
@pytest.mark.parametrize("steps", [1, 2, 7, 25, 100])
def test_ddim_eta0_equals_first_order_dpm_solver(steps, spacing):
    xT, times = x_T(500, seed=3), time_grid(SCHED, steps, spacing)
    a = sample_ddim(EXACT, xT, times, eta=0.0)
    b = sample_dpmpp_2m(EXACT, xT, times, order=1)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    if steps >= 7:  # and the second-order solver really is a different method
        c = sample_dpmpp_2m(EXACT, xT, times, order=2)
        assert (c - a).abs().max().item() > 1e-4


@pytest.mark.parametrize("steps,spacing", [(10, "trailing"), (37, "leading"), (1000, "trailing")])
def test_ddim_eta1_equals_ddpm_small(steps, spacing):
    """DDIM with eta = 1 is ancestral sampling with the posterior variance (Song et al. 2021)."""
    xT, times = x_T(300, seed=4), time_grid(SCHED, steps, spacing)
    a = sample_ddim(EXACT, xT, times, eta=1.0, generator=gen(9))
    b = sample_ddpm(EXACT, xT, times, variance="small", generator=gen(9))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    c = sample_ddpm(EXACT, xT, times, variance="large", generator=gen(9))
    assert (c - a).abs().max().item() > 1e-3


# ---------------------------------------------------------------------------------------------
# The loop: grid, records, last step
# ---------------------------------------------------------------------------------------------

SAMPLER_CASES = [
    ("ddpm", {"variance": "small"}, 40),
    ("ddpm", {"variance": "large"}, 13),
    ("ddim", {"eta": 0.0}, 17),
    ("ddim", {"eta": 0.5}, 9),
    ("dpm++2m", {}, 12),
    ("dpm++2m", {"order": 1}, 3),
]


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace", "logsnr"])
@pytest.mark.parametrize("name,kwargs,steps", SAMPLER_CASES)
def test_on_step_records_form_the_grid_and_end_clean(name, kwargs, steps, spacing):
    records: list[StepRecord] = []
    xT = x_T(64, seed=5)
    out = SAMPLERS[name](EXACT, xT, time_grid(SCHED, steps, spacing), generator=gen(0), on_step=records.append, **kwargs)
    grid = step_grid(SCHED, steps, spacing).tolist()
    assert len(records) == steps
    assert [r.index for r in records] == list(range(steps))
    assert [grid_k(r.t) for r in records] == grid[:-1]
    assert [grid_k(r.t_next) for r in records] == grid[1:]
    assert grid_k(records[-1].t_next) == 0
    assert records[0].x_t is xT
    for r, nxt in zip(records, records[1:], strict=False):
        assert grid_k(r.t_next) == grid_k(nxt.t)
        assert nxt.x_t is r.x_next  # the chain is one trajectory
        assert r.t == pytest.approx(grid_k(r.t) / SCHED.T)
    for r in records:
        # x0 and eps are the two readings of one prediction at (alpha_k, sigma_k).
        a, s = float(SCHED.alphas[grid_k(r.t)]), float(SCHED.sigmas[grid_k(r.t)])
        torch.testing.assert_close(a * r.x0 + s * r.eps, r.x_t, rtol=1e-9, atol=1e-9)
    # The last step lands on sigma = 0 and returns the clean estimate: no noise left.
    torch.testing.assert_close(records[-1].x_next, records[-1].x0, rtol=0, atol=1e-12)
    assert out is records[-1].x_next


def test_plain_lambda_model_and_closed_form_trajectory():
    """With eps == 0 every deterministic step rescales: x_s = (alpha_s / alpha_k) x_k, so x_0 = x_T / alpha_T."""
    seen_t = []

    def model_fn(x, t, y=None):
        seen_t.append(t)
        assert y == "label"
        return torch.zeros_like(x)

    xT = x_T(16, seed=6, dim=3)
    for name, kwargs in [("ddim", {}), ("dpm++2m", {})]:
        seen_t.clear()
        out = SAMPLERS[name](Denoiser(model_fn, SCHED, y="label"), xT, time_grid(SCHED, 10), **kwargs)
        torch.testing.assert_close(out, xT / SCHED.alphas[-1].item(), rtol=1e-10, atol=0)
        grid = step_grid(SCHED, 10)
        assert len(seen_t) == 10
        for t, k in zip(seen_t, grid[:-1].tolist(), strict=True):
            assert t.shape == (16,) and t.dtype == xT.dtype
            assert torch.all(t == k / SCHED.T)
    # A lambda works too, with any input shape (here image-like).
    img = torch.randn(2, 3, 4, 4, generator=gen(7), dtype=torch.float64)
    out = sample_ddpm(Denoiser(lambda x, t, y=None: 0.1 * x, SCHED), img, time_grid(SCHED, 20), generator=gen(8))
    assert out.shape == img.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name,kwargs", [("ddpm", {"variance": "small"}), ("ddpm", {"variance": "large"}), ("ddim", {"eta": 1.0})])
def test_generator_makes_stochastic_samplers_reproducible(name, kwargs):
    xT, times = x_T(200, seed=7), time_grid(SCHED, 25)
    fn = SAMPLERS[name]
    a = fn(EXACT, xT, times, generator=gen(123), **kwargs)
    b = fn(EXACT, xT, times, generator=gen(123), **kwargs)
    c = fn(EXACT, xT, times, generator=gen(124), **kwargs)
    assert torch.equal(a, b)
    assert (a - c).abs().max().item() > 1e-3


@pytest.mark.parametrize("name", ["ddim", "dpm++2m"])
def test_deterministic_samplers_ignore_the_generator(name):
    xT = x_T(200, seed=8)
    a = SAMPLERS[name](EXACT, xT, time_grid(SCHED, 25), generator=gen(1))
    b = SAMPLERS[name](EXACT, xT, time_grid(SCHED, 25), generator=gen(2))
    assert torch.equal(a, b)


def test_dpmpp_2m_is_a_better_ode_solver_than_ddim():
    """Against a 1000-step DDIM solution of the probability-flow ODE from the same x_T.

    Compared at the last non-zero grid point k_last, before the final jump to k = 0: that jump
    is the same first-order denoising step for both solvers and would mask the ODE error.
    """
    xT = x_T(1000, seed=9)
    ref: dict[int, torch.Tensor] = {}
    sample_ddim(EXACT, xT, time_grid(SCHED, 1000), on_step=lambda r: ref.__setitem__(grid_k(r.t), r.x_t))

    def err(sampler, steps):
        last = {}
        sampler(EXACT, xT, time_grid(SCHED, steps), on_step=lambda r: last.update(k=grid_k(r.t), x=r.x_t))
        assert last["k"] == k_last(steps)
        return (last["x"] - ref[last["k"]]).norm(dim=1).mean().item()

    e_ddim10, e_ddim20 = err(sample_ddim, 10), err(sample_ddim, 20)
    e_dpm10, e_dpm20, e_dpm40 = err(sample_dpmpp_2m, 10), err(sample_dpmpp_2m, 20), err(sample_dpmpp_2m, 40)
    assert e_dpm10 < 0.6 * e_ddim10
    assert e_dpm20 < 0.35 * e_ddim20
    # Both converge as the grid is refined; DDIM at first order (error halves when steps double).
    assert e_dpm40 < e_dpm20 < e_dpm10
    assert 1.6 < e_ddim10 / e_ddim20 < 2.6
    assert e_dpm10 / e_dpm20 > 3


# ---------------------------------------------------------------------------------------------
# Prediction types
# ---------------------------------------------------------------------------------------------


def wrap_as(kind: str):
    """The exact eps model re-expressed as a model predicting ``kind``."""

    def model_fn(x, t, y=None):
        k = torch.round(t.double() * SCHED.T).long()
        a, s = SCHED.alphas[k], SCHED.sigmas[k]
        d = resolve(EPS_MODEL(x, t, y), "eps", x, a, s)
        return target(kind, d.x0, d.eps, a, s)

    return model_fn


@pytest.mark.parametrize("kind", [p for p in PREDICTIONS if p != "eps"])
@pytest.mark.parametrize("name,kwargs,steps", [("ddpm", {}, 30), ("ddim", {"eta": 0.0}, 30), ("ddim", {"eta": 0.7}, 30), ("dpm++2m", {}, 15)])
def test_prediction_types_give_the_same_samples(kind, name, kwargs, steps):
    xT, times = x_T(300, seed=10), time_grid(SCHED, steps)
    fn = SAMPLERS[name]
    base = fn(Denoiser(EPS_MODEL, SCHED, "eps"), xT, times, generator=gen(4), **kwargs)
    other = fn(Denoiser(wrap_as(kind), SCHED, kind), xT, times, generator=gen(4), **kwargs)
    torch.testing.assert_close(other, base, rtol=1e-8, atol=1e-8)
    # Reading the prediction with the wrong type gives a different answer.
    wrong = fn(Denoiser(wrap_as(kind), SCHED, "eps"), xT, times, generator=gen(4), **kwargs)
    assert not torch.allclose(wrong, base, atol=1e-3)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm++2m"])
def test_clip_x0_clamps_the_estimate_and_keeps_eps_consistent(name):
    records: list[StepRecord] = []
    xT = 3 * x_T(200, seed=12)  # wide enough that unclipped estimates leave [-1, 1]
    SAMPLERS[name](Denoiser(EPS_MODEL, SCHED, clip_x0=1.0), xT, time_grid(SCHED, 20), generator=gen(0), on_step=records.append)
    assert max(r.x0.abs().max().item() for r in records) <= 1.0
    assert any((r.x0.abs() == 1.0).any() for r in records)  # the clamp was active
    for r in records:
        a, s = float(SCHED.alphas[grid_k(r.t)]), float(SCHED.sigmas[grid_k(r.t)])
        torch.testing.assert_close(a * r.x0 + s * r.eps, r.x_t, rtol=1e-9, atol=1e-9)


def test_bad_arguments_raise():
    xT, times = x_T(4), time_grid(SCHED, 10)
    with pytest.raises(ValueError):
        sample_ddpm(EXACT, xT, times, variance="medium")
    with pytest.raises(ValueError):
        sample_ddim(EXACT, xT, times, eta=-0.1)
    with pytest.raises(ValueError):
        sample_dpmpp_2m(EXACT, xT, times, order=3)
    with pytest.raises(ValueError):
        sample_ddim(Denoiser(EPS_MODEL, SCHED, "score"), xT, times)
    with pytest.raises(ValueError):
        time_grid(SCHED, 1001)
    for bad in ([0.5, 0.7, 0.0], [1.0, 0.5], [1.0], [1.5, 0.0]):  # not decreasing, not ending at 0, one time, outside [0, 1]
        with pytest.raises(ValueError, match="times"):
            sample_ddim(EXACT, xT, bad)
