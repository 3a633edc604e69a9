"""The likelihood weighting (Song et al. 2021, Thm. 1; Kingma et al. 2021, Eq. 17): the schedule's
-d log SNR / dt, the density of every time distribution, and the weighted loss against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab.config import ConfigError, load_config
from denoiselab.importance import ImportanceSampler
from denoiselab.objectives import diffusion_loss, elbo_rate, sample_times, time_density
from denoiselab.prediction import PREDICTIONS, target
from denoiselab.schedules import make_schedule
from denoiselab.weighting import Weighting

pytestmark = pytest.mark.usefixtures("one_thread")

LINEAR = make_schedule("linear", 1000)
COSINE = make_schedule("cosine", 200)
FLOW = make_schedule("flow", 1000)
SCHEDULES = [LINEAR, COSINE, FLOW]
IDS = ["linear", "cosine", "flow"]
LIKELIHOOD = Weighting("likelihood")


def _log_snr(schedule, t):
    return 2.0 * schedule.half_log_snr_at(t)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_rate_is_minus_the_derivative_of_log_snr(schedule):
    """Central differences inside the pieces where log SNR is smooth (a chain's is linear in t
    between grid points: the difference is exact there); at a chain's grid point the rate is the
    slope of the interval on its left, the one its step covers."""
    if schedule.is_chain:
        T = schedule.T
        t = (torch.arange(1, T, dtype=torch.float64) + 0.5) / T  # mid-interval, k = 2..T
        h = 0.25 / T
        grid = torch.arange(2, T + 1, dtype=torch.float64) / T
        left = -(_log_snr(schedule, grid) - _log_snr(schedule, grid - 0.5 / T)) / (0.5 / T)
        torch.testing.assert_close(schedule.log_snr_rate_at(grid), left, rtol=1e-7, atol=0)
        first = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64) / T  # the first interval, sigma^2 linear in t
        hf = 1e-6 / T
        fd = -(_log_snr(schedule, first + hf) - _log_snr(schedule, first - hf)) / (2 * hf)
        torch.testing.assert_close(schedule.log_snr_rate_at(first), fd, rtol=1e-5, atol=0)
    else:
        t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
        h = 1e-6
    fd = -(_log_snr(schedule, t + h) - _log_snr(schedule, t - h)) / (2 * h)
    torch.testing.assert_close(schedule.log_snr_rate_at(t), fd, rtol=1e-6, atol=0)
    assert bool((schedule.log_snr_rate_at(t) > 0).all())


CHAIN_DRAWS = [(LINEAR, "uniform"), (LINEAR, "logsnr"), (LINEAR, "edm"), (COSINE, "logsnr"), (COSINE, "edm")]
FLOW_DRAWS = ["uniform", "logit-normal", "logsnr", "edm"]


@pytest.mark.parametrize("schedule,how", CHAIN_DRAWS, ids=[f"{s.name}-{h}" for s, h in CHAIN_DRAWS])
def test_a_chains_time_density_is_T_times_the_frequency_of_each_step(schedule, how):
    n, T = 400_000, schedule.T
    k = torch.round(sample_times(schedule, n, torch.Generator().manual_seed(0), how) * T).long()
    counts = torch.bincount(k, minlength=T + 1)[1:].double()
    p = time_density(schedule, how, torch.arange(1, T + 1, dtype=torch.float64) / T) / T
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    groups = 40  # steps in groups, so each expected count is large
    observed, expected = counts.view(groups, -1).sum(1), n * p.view(groups, -1).sum(1)
    assert bool(((observed - expected).abs() <= 5 * expected.sqrt() + 5).all()), (observed, expected)


@pytest.mark.parametrize("how", FLOW_DRAWS)
def test_the_flow_paths_time_density_matches_a_histogram_of_draws(how):
    n, bins, sub = 400_000, 50, 400
    t = sample_times(FLOW, n, torch.Generator().manual_seed(0), how)
    observed = torch.histc(t, bins=bins, min=0.0, max=1.0).double()
    mid = (torch.arange(bins * sub, dtype=torch.float64) + 0.5) / (bins * sub)  # midpoint rule inside each bin
    expected = n * time_density(FLOW, how, mid).view(bins, sub).mean(1) / bins
    assert float(expected.sum()) == pytest.approx(n, rel=2e-3)
    assert bool(((observed - expected).abs() <= 5 * expected.sqrt() + 10).all()), (observed, expected)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_the_likelihood_weight_is_the_same_loss_on_every_target(schedule):
    """On eps it is -d log SNR / dt over the density of t; on any other target, the same weight of
    the x0-error (weighting.py's table)."""
    g = torch.Generator().manual_seed(0)
    how = "uniform" if schedule.is_chain else "logsnr"
    t = sample_times(schedule, 256, g, how)
    x0, eps, x0_hat = (torch.randn(256, 3, generator=g, dtype=torch.float64) for _ in range(3))
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    a, s = alpha[:, None], sigma[:, None]
    eps_hat = (a * x0 + s * eps - a * x0_hat) / s
    rate = elbo_rate(schedule, t, how)
    torch.testing.assert_close(rate, schedule.log_snr_rate_at(t) / time_density(schedule, how, t))
    on_x0 = LIKELIHOOD.on_x0(alpha, sigma, rate) * ((x0_hat - x0) ** 2).sum(1)
    torch.testing.assert_close(on_x0, (alpha / sigma) ** 2 * rate * ((x0_hat - x0) ** 2).sum(1))
    for kind in PREDICTIONS:
        err = ((target(kind, x0_hat, eps_hat, a, s) - target(kind, x0, eps, a, s)) ** 2).sum(1)
        torch.testing.assert_close(LIKELIHOOD.on_target(kind, alpha, sigma, rate) * err, on_x0, rtol=1e-9, atol=1e-12, msg=kind)
    torch.testing.assert_close(LIKELIHOOD.on_target("eps", alpha, sigma, rate), rate)
    with pytest.raises(ValueError, match="elbo_rate"):
        LIKELIHOOD.on_target("eps", alpha, sigma)


def test_the_weight_is_finite_at_the_flow_paths_noise_end():
    t = torch.tensor([1.0, 0.5], dtype=torch.float64)
    rate = elbo_rate(FLOW, t, "uniform")
    assert math.isinf(float(rate[0]))
    for kind in ("x0", "v", "velocity"):
        w = LIKELIHOOD.on_target(kind, FLOW.alpha_at(t), FLOW.sigma_at(t), rate)
        assert float(w[0]) == 0.0 and math.isfinite(float(w[1])), kind


def _logistic_model(prediction):
    """x0 = 0 data and a network whose clean estimate is a(t) = 1 / (1 + SNR) in every
    coordinate, in ``prediction``'s units: its squared x0-error is a^2, exactly, whatever the noise."""

    def model(schedule):
        def fn(x_t, t, y=None):
            t64 = t.double()
            alpha, sigma = schedule.alpha_at(t64)[:, None], schedule.sigma_at(t64)[:, None]
            x0_hat = (sigma**2 / (alpha**2 + sigma**2)).expand_as(x_t)
            eps_hat = (x_t.double() - alpha * x0_hat) / sigma
            return target(prediction, x0_hat, eps_hat, alpha, sigma).to(x_t.dtype)

        return fn

    return model


def _mean_loss(schedule, prediction, how, batches=20, n=20_000, sampler=None):
    fn = _logistic_model(prediction)(schedule)
    x0 = torch.zeros(n, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    values = torch.tensor([
        float(diffusion_loss(fn, x0, schedule, g, prediction=prediction, timesteps=how, weighting=LIKELIHOOD, time_sampler=sampler))
        for _ in range(batches)
    ])  # fmt: skip
    return float(values.mean()), float(values.std() / math.sqrt(batches))


@pytest.mark.parametrize("prediction", ["x0", "velocity"])
@pytest.mark.parametrize("how", ["uniform", "logsnr", "importance"])
def test_the_weighted_loss_is_the_elbos_integral_on_the_flow_path(prediction, how):
    """With x0-error a^2 = 1 / (1 + SNR)^2, E_t[w a^2] = int SNR a^2 (-d log SNR) = int of the
    logistic density over the log-SNR range the times cover: 1 for all of (0, 1], and
    sigmoid(g_hi) - sigmoid(g_lo) for logsnr's [lambda(1 - 1/T), lambda(1/T)] (g = 2 lambda).
    A weight without the density of t, or without the factor 2 of log SNR = 2 lambda, misses it."""
    if how == "logsnr":
        g_lo, g_hi = (float(_log_snr(FLOW, v)) for v in (1.0 - 1.0 / FLOW.T, 1.0 / FLOW.T))
        exact = 1.0 / (1.0 + math.exp(-g_hi)) - 1.0 / (1.0 + math.exp(-g_lo))
    else:
        exact = 1.0
    sampler = ImportanceSampler(FLOW, bins=20, history=5, uniform=0.05) if how == "importance" else None
    mean, se = _mean_loss(FLOW, prediction, how, sampler=sampler)
    assert abs(mean - exact) < 5 * se + 1e-9, (mean, se, exact)
    assert se < 0.01 * exact  # a sharp test: the estimate is within a few per cent


@pytest.mark.parametrize("schedule,prediction", [(LINEAR, "eps"), (COSINE, "v"), (LINEAR, "x0")], ids=["linear-eps", "cosine-v", "linear-x0"])
@pytest.mark.parametrize("how", ["uniform", "logsnr", "importance"])
def test_the_weighted_loss_is_the_chains_sum_whatever_draws_the_steps(schedule, prediction, how):
    """On a chain the same loss is (1 / T) sum_k r_k SNR_k a_k^2 whichever distribution draws k."""
    t = torch.arange(1, schedule.T + 1, dtype=torch.float64) / schedule.T
    snr = (schedule.alpha_at(t) / schedule.sigma_at(t)) ** 2
    exact = float((schedule.log_snr_rate_at(t) * snr / (1.0 + snr) ** 2).mean())
    sampler = ImportanceSampler(schedule, bins=20, history=5, uniform=0.05) if how == "importance" else None
    mean, se = _mean_loss(schedule, prediction, how, sampler=sampler)
    assert abs(mean - exact) < 5 * se + 1e-9, (mean, se, exact)
    assert se < 0.02 * exact


def test_the_recipe_accepts_it_and_refuses_the_infinite_variance_pairs():
    cfg = load_config("spiral-flow", ["train.weighting=likelihood", "train.timesteps=logsnr"])
    assert cfg.train.weighting == "likelihood"
    assert load_config("spiral", ["train.weighting=likelihood"]).train.timesteps == "uniform"
    for how in ("edm", "logit-normal"):
        with pytest.raises(ConfigError, match=f"train.weighting: likelihood .* timesteps = {how}"):
            load_config("spiral-flow", ["train.weighting=likelihood", f"train.timesteps={how}"])
    with pytest.raises(ConfigError, match=r"train\.p2_k: is read only with train\.weighting = p2"):
        load_config("spiral", ["train.weighting=likelihood", "train.p2_k=1"])


def test_a_run_trains_with_it(tmp_path, capsys):
    """Through the command line, on the flow path with importance-sampled times (uniform q: the
    weight r at the drawn t, times q / p)."""
    from conftest import TINY, set_args

    from denoiselab import cli
    from denoiselab.runs import load_run

    out = tmp_path / "run"
    overrides = [*TINY, "train.weighting=likelihood", "train.timesteps=importance", "train.importance_bins=5", "train.importance_history=2"]
    rc = cli.main(["train", "--config", "spiral-flow", *set_args(overrides), "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.config.train.weighting == "likelihood"
    assert "likelihood weighting" in capsys.readouterr().out
