"""Schedules and the step grids samplers walk.

Oracles: the beta formulas re-derived with numpy (independently of the torch code under test),
the identities alpha^2 + sigma^2 = 1 and SNR = alpha^2 / sigma^2, and terminal SNRs of the
well-known short chains.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from denoiselab.samplers import CHAIN_GRIDS, step_grid
from denoiselab.schedules import (
    MAX_BETA,
    SCHEDULE_KINDS,
    TERMINAL_SNR_WARN_DB,
    flow_schedule,
    make_schedule,
)

TS = (1, 2, 50, 1000)


def numpy_betas(kind: str, T: int, beta_start=1e-4, beta_end=0.02, scale_with_T=True) -> np.ndarray:
    """The four beta schedules written out again in numpy, from the papers' formulas."""
    if kind == "cosine":
        # Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2).
        f = lambda k: np.cos((k / T + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        k = np.arange(1, T + 1, dtype=np.float64)
        return np.minimum(1.0 - f(k) / f(k - 1), 0.999)
    scale = 1000.0 / T if scale_with_T else 1.0
    lo, hi = beta_start * scale, min(beta_end * scale, 0.999)
    if kind == "linear":
        return np.linspace(lo, hi, T)
    if kind == "quadratic":
        return np.linspace(math.sqrt(lo), math.sqrt(hi), T) ** 2
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, T))) * (hi - lo) + lo
    raise AssertionError(kind)


def numpy_terminal_snr_db(betas: np.ndarray) -> float:
    ab = np.prod(1.0 - betas)
    return 10.0 * math.log10(ab / (1.0 - ab))


# ---------------------------------------------------------------------------------------------
# make_schedule: invariants for every kind and size
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale_with_T", [True, False])
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_schedule_invariants(kind, T, scale_with_T):
    sch = make_schedule(kind, T, scale_with_T=scale_with_T)
    assert sch.T == T
    assert sch.alphas.shape == (T + 1,) and sch.sigmas.shape == (T + 1,)
    assert sch.alphas.dtype == torch.float64 and sch.sigmas.dtype == torch.float64
    # k = 0 is clean data.
    assert sch.alphas[0].item() == 1.0
    assert sch.sigmas[0].item() == 0.0
    # Variance preserving.
    torch.testing.assert_close(sch.alphas**2 + sch.sigmas**2, torch.ones(T + 1, dtype=torch.float64), rtol=0, atol=1e-12)
    # alpha_bar strictly decreasing, sigma strictly increasing.
    assert (sch.alpha_bars.diff() < 0).all()
    assert (sch.sigmas.diff() > 0).all()
    # Betas are valid variances of one step, and never above the clip.
    betas = sch.betas
    assert betas.shape == (T,)
    assert (betas > 0).all() and (betas < 1).all()
    assert betas.max().item() <= MAX_BETA + 1e-12


@pytest.mark.parametrize("scale_with_T", [True, False])
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_schedule_matches_numpy_formula(kind, T, scale_with_T):
    sch = make_schedule(kind, T, scale_with_T=scale_with_T)
    betas = numpy_betas(kind, T, scale_with_T=scale_with_T)
    np.testing.assert_allclose(sch.betas.numpy(), betas, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sch.alpha_bars[1:].numpy(), np.cumprod(1.0 - betas), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(sch.alphas.numpy() ** 2, np.concatenate([[1.0], np.cumprod(1.0 - betas)]), rtol=1e-10)


@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_snr_consistent_with_alphas_and_sigmas(kind, T):
    sch = make_schedule(kind, T)
    a, s = sch.alphas.numpy(), sch.sigmas.numpy()
    snr = a[1:] ** 2 / s[1:] ** 2
    np.testing.assert_allclose(sch.snr[1:].numpy(), snr, rtol=1e-12)
    np.testing.assert_allclose(sch.snr_db[1:].numpy(), 10 * np.log10(snr), rtol=1e-10, atol=1e-10)
    # lambda = log(alpha / sigma) is half the natural log of the SNR.
    np.testing.assert_allclose(sch.half_log_snr[1:].numpy(), 0.5 * np.log(snr), rtol=1e-10, atol=1e-10)
    assert math.isinf(sch.snr_db[0].item()) and sch.snr_db[0].item() > 0
    assert (sch.snr_db[1:].diff() < 0).all()
    assert sch.terminal_snr_db() == pytest.approx(10 * math.log10(snr[-1]), rel=1e-12)


@pytest.mark.parametrize("T", [1, 50, 1000])
def test_cosine_betas_clipped_at_0999(T):
    sch = make_schedule("cosine", T)
    # Unclipped, the last beta is 1 - f(T)/f(T-1) = 1 (f(T) = cos^2(pi/2) ~ 0): the clip must bite there.
    assert sch.betas[-1].item() == pytest.approx(0.999, abs=1e-9)
    assert sch.betas.max().item() <= 0.999 + 1e-12
    # And the terminal alpha_bar is the previous one times (1 - 0.999), not zero.
    assert sch.alpha_bars[-1].item() == pytest.approx(sch.alpha_bars[-2].item() * 1e-3, rel=1e-9)
    assert sch.alpha_bars[-1].item() > 0
    # Below the clip, the betas are Nichol & Dhariwal's; the range arguments are ignored.
    other = make_schedule("cosine", T, beta_start=0.3, beta_end=0.5)
    torch.testing.assert_close(other.alphas, sch.alphas)


# ---------------------------------------------------------------------------------------------
# Terminal SNR of the classic short chains
# ---------------------------------------------------------------------------------------------


def test_linear_T50_unscaled_ends_near_plus_2_db():
    sch = make_schedule("linear", 50, scale_with_T=False)
    exact = numpy_terminal_snr_db(np.linspace(1e-4, 0.02, 50))
    assert sch.terminal_snr_db() == pytest.approx(exact, abs=1e-9)
    assert 1.5 < sch.terminal_snr_db() < 2.5  # "T = 50 with beta in [1e-4, 0.02] ends at +2 dB SNR"
    assert sch.terminal_snr_db() > TERMINAL_SNR_WARN_DB


def test_linear_T100_and_T200_unscaled_terminal_snr():
    # T = 100 (the 1D lesson's default) ends at -2.4 dB; the interactive lesson shows
    # alpha_bar_T = 0.3679 = e^-1 and -2.35 dB, the sum-of-betas approximation of the same number.
    sch100 = make_schedule("linear", 100, scale_with_T=False)
    exact100 = numpy_terminal_snr_db(np.linspace(1e-4, 0.02, 100))
    assert sch100.terminal_snr_db() == pytest.approx(exact100, abs=1e-9)
    assert sch100.terminal_snr_db() == pytest.approx(-2.35, abs=0.15)
    assert sch100.alpha_bars[-1].item() == pytest.approx(math.exp(-1), abs=0.01)
    # T = 200 is the chain that ends near -8 dB.
    sch200 = make_schedule("linear", 200, scale_with_T=False)
    exact200 = numpy_terminal_snr_db(np.linspace(1e-4, 0.02, 200))
    assert sch200.terminal_snr_db() == pytest.approx(exact200, abs=1e-9)
    assert sch200.terminal_snr_db() == pytest.approx(-8.0, abs=0.5)


def test_scale_with_T_reaches_noise():
    scaled = make_schedule("linear", 50, scale_with_T=True)
    assert scaled.terminal_snr_db() < -20.0
    assert scaled.terminal_snr_db() < TERMINAL_SNR_WARN_DB
    exact = numpy_terminal_snr_db(np.linspace(1e-4 * 20, 0.02 * 20, 50))
    assert scaled.terminal_snr_db() == pytest.approx(exact, abs=1e-9)
    # At T = 1000 the scale is 1, so both settings are the same schedule.
    torch.testing.assert_close(make_schedule("linear", 1000, scale_with_T=True).alphas,
                               make_schedule("linear", 1000, scale_with_T=False).alphas)
    # Scaling multiplies the beta range by 1000 / T.
    b = make_schedule("linear", 100, scale_with_T=True).betas
    assert b[0].item() == pytest.approx(1e-3) and b[-1].item() == pytest.approx(0.2)


def test_scaled_beta_end_clipped_to_max_beta():
    # T = 10: 0.02 * 100 = 2 would be an invalid beta; it is clipped to 0.999.
    sch = make_schedule("linear", 10, scale_with_T=True)
    assert sch.betas[-1].item() == pytest.approx(MAX_BETA)
    assert (sch.betas < 1).all()


# ---------------------------------------------------------------------------------------------
# make_schedule errors
# ---------------------------------------------------------------------------------------------


def test_unknown_kind_raises_and_lists_choices():
    with pytest.raises(ValueError, match="cosine"):
        make_schedule("exponential", 100)


@pytest.mark.parametrize("T", [0, -1, 2.5, "100"])
def test_bad_T_raises(T):
    with pytest.raises(ValueError):
        make_schedule("linear", T)


@pytest.mark.parametrize(
    "beta_start,beta_end,scale_with_T,T",
    [
        (0.0, 0.02, False, 100),  # beta = 0 is no noise at all
        (-1e-4, 0.02, False, 100),
        (1e-4, -0.02, False, 100),
        (1.5, 2.0, False, 100),
        (1.0, 0.02, False, 100),
        (0.2, 0.5, True, 10),  # 0.2 * 100 = 20 after scaling
    ],
)
@pytest.mark.parametrize("kind", ["linear", "quadratic", "sigmoid"])
def test_betas_outside_unit_interval_raise(kind, beta_start, beta_end, scale_with_T, T):
    with pytest.raises(ValueError):
        make_schedule(kind, T, beta_start=beta_start, beta_end=beta_end, scale_with_T=scale_with_T)


# ---------------------------------------------------------------------------------------------
# flow_schedule and Schedule.time
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 7, 1000])
def test_flow_schedule(T):
    sch = flow_schedule(T)
    t = np.arange(T + 1) / T
    assert sch.T == T
    assert sch.alphas[0].item() == 1.0 and sch.sigmas[0].item() == 0.0
    assert sch.alphas[-1].item() == 0.0 and sch.sigmas[-1].item() == 1.0
    np.testing.assert_allclose(sch.alphas.numpy(), 1.0 - t, atol=1e-15)
    np.testing.assert_allclose(sch.sigmas.numpy(), t, atol=1e-15)
    np.testing.assert_allclose((sch.alphas + sch.sigmas).numpy(), 1.0, atol=1e-15)
    assert sch.snr_db[-1].item() == -math.inf


def test_time_is_k_over_T():
    sch = make_schedule("linear", 250)
    assert sch.time(0).item() == 0.0
    assert sch.time(250).item() == 1.0
    torch.testing.assert_close(sch.time(torch.tensor([1, 50, 125])), torch.tensor([1, 50, 125], dtype=torch.float64) / 250)


# ---------------------------------------------------------------------------------------------
# step_grid
# ---------------------------------------------------------------------------------------------

GRID_CASES = [(1000, 1), (1000, 7), (1000, 20), (1000, 333), (1000, 1000), (300, 7), (300, 300), (1, 1), (50, 49), (50, 3)]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T,steps", GRID_CASES)
@pytest.mark.parametrize("spacing", CHAIN_GRIDS)
def test_step_grid_properties(spacing, T, steps, kind):
    sch = make_schedule(kind, T)
    g = step_grid(sch, steps, spacing)
    assert g.dtype == torch.long
    assert g.shape == (steps + 1,)
    assert (g.diff() < 0).all(), g
    assert g[-1].item() == 0
    assert g.min().item() >= 0 and g.max().item() <= T
    if spacing in ("trailing", "linspace", "logsnr"):
        assert g[0].item() == T
    if steps == T:  # the only strictly decreasing grid with T + 1 points
        torch.testing.assert_close(g, torch.arange(T, -1, -1))


@pytest.mark.parametrize("T,steps", GRID_CASES)
def test_step_grid_leading_formula(T, steps):
    g = step_grid(make_schedule("linear", T), steps, "leading")
    expected = [j * (T // steps) + 1 for j in range(steps - 1, -1, -1)] + [0]
    assert g.tolist() == expected


@pytest.mark.parametrize("T,steps", [(1000, 10), (1000, 50), (1000, 1000), (300, 30), (300, 7), (1000, 7), (50, 3)])
def test_step_grid_trailing_formula(T, steps):
    g = step_grid(make_schedule("linear", T), steps, "trailing")
    # round(T - i T / steps) with exact rational arithmetic (no .5 ties occur in these cases).
    expected = [round((T * (steps - i)) / steps) for i in range(steps + 1)]
    assert g.tolist() == expected
    if T % steps == 0:
        assert (g.diff() == -(T // steps)).all()


@pytest.mark.parametrize("T,steps", [(1000, 10), (1000, 7), (1000, 20), (300, 7), (50, 49)])
def test_step_grid_linspace_formula(T, steps):
    g = step_grid(make_schedule("linear", T), steps, "linspace")
    # diffusers' DPMSolverMultistepScheduler: steps + 1 points over [0, T - 1], the one at 0 dropped, +1.
    expected = [round((T - 1) * i / steps) + 1 for i in range(steps, 0, -1)] + [0]
    assert g.tolist() == expected


@pytest.mark.parametrize("kind", ["linear", "quadratic", "sigmoid"])
def test_step_grid_logsnr_hits_uniform_log_snr_targets(kind):
    sch = make_schedule(kind, 1000)
    steps = 20
    g = step_grid(sch, steps, "logsnr")
    lam = sch.half_log_snr
    targets = torch.linspace(lam[1000].item(), lam[1].item(), steps, dtype=torch.float64)
    for i in range(steps):
        k = int(g[i])
        # Each visited point is within one grid cell of its target log-SNR.
        lo = lam[min(k + 1, 1000)].item()
        hi = lam[k - 1].item() if k > 1 else lam[1].item()
        assert lo - 1e-12 <= targets[i].item() <= hi + 1e-12, (i, k)


@pytest.mark.parametrize("spacing", CHAIN_GRIDS)
@pytest.mark.parametrize("steps", [0, -3, 1001, 10.0, None])
def test_step_grid_bad_steps_raise(spacing, steps):
    with pytest.raises(ValueError):
        step_grid(make_schedule("linear", 1000), steps, spacing)


def test_step_grid_unknown_spacing_raises():
    with pytest.raises(ValueError, match="trailing"):
        step_grid(make_schedule("linear", 100), 10, "karras-ish")
