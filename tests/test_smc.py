"""Twisted SMC (smc.py) against closed forms: the linear-Gaussian conditional, resampling counts,
log-sum-exp weights, K = 1 against the guided DDPM sampler, and seeds."""

from __future__ import annotations

import pytest
import torch

from denoiselab.forward_process import q_posterior_at
from denoiselab.gradient_guidance import loss_guidance, paste_observed
from denoiselab.samplers import Denoiser, sample_ddpm, time_grid
from denoiselab.schedules import make_schedule
from denoiselab.smc import (
    ParticleRecord,
    effective_sample_size,
    normalized,
    observation_twist,
    posterior_scale2,
    region_twist,
    sample_smc,
    systematic_resample,
)

COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)  # data N(0, COV): x2 | x1 = a is N(0.8 a, 0.36)
OBSERVED = 1.5


def gaussian_denoiser(schedule):
    """The exact x0 prediction of data N(0, COV): E[x0 | x_t] = COV alpha (alpha^2 COV + sigma^2 I)^-1 x_t."""

    def model_fn(x, t, y=None):
        assert bool((t == t[0]).all())  # every sampler call is at one time
        return x @ _matrix(schedule, float(t[0])).T.to(x)

    return model_fn


def _matrix(schedule, t):
    a, s = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    return COV * a @ torch.linalg.inv(a * a * COV + s * s * torch.eye(2, dtype=torch.float64))


def closed_form_target(schedule, times) -> tuple[float, float]:
    """Mean and variance of x2 under the SMC target of the discretised chain: x_{t_0} ~ N(0, I),
    ancestral steps x_s = A x_t + sqrt(v) z with the exact linear denoiser to t_{N-1}, then
    x2 = x0_hat(x_{t_{N-1}})_2 conditioned on N(a; x0_hat_1, r^2) (the observation twist's ending)."""
    cov = torch.eye(2, dtype=torch.float64)
    for t, s in zip(times[:-2], times[1:-1]):
        m = _matrix(schedule, t)
        step = q_posterior_at(schedule, torch.eye(2, dtype=torch.float64) @ m.T, torch.eye(2, dtype=torch.float64), t, s)
        a = step.mean.T  # x_s = a x_t + noise: the posterior mean is linear in x_t (with x0 = m x_t)
        cov = a @ cov @ a.T + float(step.variance) * torch.eye(2, dtype=torch.float64)
    t_last = times[-2]
    m = _matrix(schedule, t_last)
    r2 = float(posterior_scale2(schedule.alpha_at(t_last), schedule.sigma_at(t_last)))
    h1, h2 = m[0], m[1]
    var_y = h1 @ cov @ h1 + r2
    c = h2 @ cov @ h1
    return float(c / var_y * OBSERVED), float(h2 @ cov @ h2 - c * c / var_y)


def smc_x2(schedule, times, particles: int, n: int, seed: int = 0, record=None):
    mask, values = torch.tensor([True, False]), torch.tensor([OBSERVED, 0.0], dtype=torch.float64)
    denoise = Denoiser(gaussian_denoiser(schedule), schedule, "x0")
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n * particles, 2, generator=g, dtype=torch.float64)
    x = sample_smc(denoise, x_T, times, twist=observation_twist(mask, values, schedule), particles=particles, generator=g, record=record)
    assert torch.all(x[:, 0] == OBSERVED)
    return x[:, 1]


@pytest.fixture(scope="module")
def setting(one_thread):
    schedule = make_schedule("linear", 1000)
    return schedule, time_grid(schedule, 40, "logsnr").tolist()


def test_many_particles_match_the_closed_form_conditional_and_the_error_falls_with_k(setting):
    schedule, times = setting
    mean, var = closed_form_target(schedule, times)
    # The target is the discretised chain's conditional: DDPM's small variance shrinks x2's
    # spread at 40 steps (0.28), and reaches the true N(1.2, 0.36) as the steps grow.
    fine = closed_form_target(schedule, time_grid(schedule, 1000, "logsnr").tolist())
    assert abs(fine[0] - 0.8 * OBSERVED) < 0.01 and abs(fine[1] - 0.36) < 0.01
    errors = {}
    for k in (1, 8, 64):
        x2 = smc_x2(schedule, times, k, n=3000)
        errors[k] = (abs(float(x2.mean()) - mean), abs(float(x2.var()) - var))
    # Monte Carlo error of n = 3000 draws: about 0.011 in the mean, 0.01 in the variance.
    assert errors[64][0] < 0.04 and errors[64][1] < 0.04
    assert errors[1][0] + errors[1][1] > 2 * (errors[64][0] + errors[64][1])


def test_one_particle_is_the_guided_ddpm_chain(setting):
    schedule, times = setting
    mask, values = torch.tensor([True, False]), torch.tensor([OBSERVED, 0.0], dtype=torch.float64)
    twist = observation_twist(mask, values, schedule)
    model = gaussian_denoiser(schedule)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    guided = Denoiser(loss_guidance(model, twist.loss, 1.0, schedule, "x0"), schedule, "x0")
    steps_ddpm, steps_smc = [], []
    ddpm = sample_ddpm(guided, x_T, times, generator=torch.Generator().manual_seed(4), on_step=steps_ddpm.append)
    x = sample_smc(Denoiser(model, schedule, "x0"), x_T, times, twist=twist, particles=1,
                   generator=torch.Generator().manual_seed(4), on_step=steps_smc.append)  # fmt: skip
    for a, b in zip(steps_ddpm[:-1], steps_smc[:-1]):
        torch.testing.assert_close(a.x_next, b.x_next, rtol=1e-9, atol=1e-9)
    # The last step: the model's own estimate at t_{N-1}, its observed coordinate the value.
    last = steps_smc[-1]
    torch.testing.assert_close(x, paste_observed(last.x0, mask, values))
    torch.testing.assert_close(last.x0, Denoiser(model, schedule, "x0")(last.x_t, last.t).x0)
    assert not torch.equal(ddpm[:, 1], x[:, 1])  # the guided chain's last step is not the model's


def test_same_seed_same_samples(setting):
    schedule, times = setting
    a, b = smc_x2(schedule, times, 8, n=50, seed=7), smc_x2(schedule, times, 8, n=50, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, smc_x2(schedule, times, 8, n=50, seed=8))


def test_record_reports_the_ess_and_resampling(setting):
    schedule, times = setting
    record = ParticleRecord(16)
    smc_x2(schedule, times, 16, n=40, record=record)
    summary = record.ess_summary()
    assert len(record.ess) == len(times) - 1 and record.ess[0].shape == (40,)
    assert 1.0 <= summary["ess_min"] <= summary["ess_mean"] <= 16.0
    assert record.final_weights.shape == (40, 16)
    torch.testing.assert_close(record.final_weights.sum(1), torch.ones(40, dtype=torch.float64))


def test_systematic_resampling_keeps_the_weights_mean(one_thread):
    w = torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    k, trials = 4, 4000
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros_like(w)
    for _ in range(trials):
        idx = systematic_resample(w.log(), g)
        one = torch.zeros_like(w).scatter_add_(1, idx, torch.ones_like(w))
        # Systematic resampling draws particle i floor(K w_i) or ceil(K w_i) times.
        assert torch.all(one >= torch.floor(k * w)) and torch.all(one <= torch.ceil(k * w))
        counts += one
    torch.testing.assert_close(counts / trials, k * w, atol=0.03, rtol=0)
    assert torch.all(counts[1] == trials)  # equal weights: every particle exactly once


def test_ess_and_weights_from_huge_log_weights_do_not_overflow():
    log_w = torch.tensor([[1e4, 1e4, 1e4 - 50.0, -1e4], [-1e4, -1e4, -1e4, -1e4]], dtype=torch.float64)
    ess = effective_sample_size(log_w)
    torch.testing.assert_close(ess, torch.tensor([2.0, 4.0], dtype=torch.float64))
    assert torch.isfinite(normalized(log_w)).all()
    dead = torch.full((1, 3), -torch.inf, dtype=torch.float64)
    torch.testing.assert_close(normalized(dead), torch.full((1, 3), 1 / 3, dtype=torch.float64))


def test_region_twist_ends_inside_the_region(setting):
    schedule, times = setting
    denoise = Denoiser(gaussian_denoiser(schedule), schedule, "x0")
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(200 * 16, 2, generator=g, dtype=torch.float64)
    twist = region_twist(lambda x: torch.relu(x[:, 0] - x[:, 1] - 1.0), schedule)  # inside: x1 - x2 < 1
    record = ParticleRecord(16)
    x = sample_smc(denoise, x_T, times, twist=twist, particles=16, generator=g, record=record)
    assert record.dead_groups == 0
    assert bool((x[:, 0] - x[:, 1] < 1.0).all())


def test_record_keeps_each_steps_weights_and_the_drawn_particle(setting):
    """With weights=[] the record keeps, per step, the normalised weights of the particles that
    step moves: they give the ESS the record reports wherever the step did not resample, and are
    equal within every group it resampled; ``pick`` names the particle each sample is."""
    schedule, times = setting
    record, steps = ParticleRecord(8, weights=[]), []
    mask, values = torch.tensor([True, False]), torch.tensor([OBSERVED, 0.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(30 * 8, 2, generator=g, dtype=torch.float64)
    x = sample_smc(Denoiser(gaussian_denoiser(schedule), schedule, "x0"), x_T, times, twist=observation_twist(mask, values, schedule),
                   particles=8, generator=g, record=record, on_step=steps.append)  # fmt: skip
    assert len(record.weights) == len(record.ess) == len(times) - 1
    resampled = set(record.resampled)
    assert resampled and len(resampled) < len(times) - 1  # both kinds of step are checked below
    for i, (w, ess) in enumerate(zip(record.weights, record.ess)):
        torch.testing.assert_close(w.sum(1), torch.ones(30, dtype=torch.float64))
        if i not in resampled:
            torch.testing.assert_close(1.0 / w.pow(2).sum(1), ess)
        else:  # the groups that fell below half of K were resampled to equal weights
            low = ess < 0.5 * 8
            assert low.any()
            torch.testing.assert_close(w[low], torch.full_like(w[low], 1 / 8))
    last = steps[-1].x_next.reshape(30, 8, 2)
    torch.testing.assert_close(x, last[torch.arange(30), record.pick])
    assert bool((record.final_weights[torch.arange(30), record.pick] > 0).all())
    plain = ParticleRecord(8)
    smc_x2(schedule, times, 8, n=30, record=plain)
    assert plain.weights is None and plain.pick.shape == (30,)  # no per-step weights unless asked for
