"""Continuous time: schedules at any t, their log-SNR inverse, and the named time grids.

Oracles: the grid tables themselves (a chain read at t = k / T must be bit-identical to them),
closed forms (the flow path; the continuous cosine of Nichol & Dhariwal), inverse round trips,
and diffusers' Karras sigmas and timesteps as a peer implementation of the karras grid and of
interpolation in log-SNR.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from denoiselab.samplers import (
    CHAIN_GRIDS,
    GRIDS,
    check_grid,
    parse_grid,
    step_grid,
    time_grid,
)
from denoiselab.schedules import (
    ALL_SCHEDULE_KINDS,
    SCHEDULE_KINDS,
    flow_schedule,
    make_schedule,
)

DENSE = torch.linspace(0.0, 1.0, 20001, dtype=torch.float64)


@pytest.mark.parametrize("T", [1, 2, 7, 50, 1000])
@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_chain_read_at_its_grid_is_its_table_bit_for_bit(kind, T):
    s = make_schedule(kind, T)
    t = torch.arange(T + 1, dtype=torch.float64) / T
    assert torch.equal(s.alpha_at(t), s.alphas)
    assert torch.equal(s.sigma_at(t), s.sigmas)
    assert torch.equal(s.half_log_snr_at(t), s.half_log_snr)
    # Python floats one at a time (what samplers pass) read the same.
    assert all(float(s.alpha_at(k / T)) == float(s.alphas[k]) for k in range(T + 1))


@pytest.mark.parametrize("T", [2, 50, 1000])
@pytest.mark.parametrize("kind", ALL_SCHEDULE_KINDS)
def test_half_log_snr_is_strictly_decreasing_and_the_path_identity_holds_everywhere(kind, T):
    s = make_schedule(kind, T)
    lam = s.half_log_snr_at(DENSE)
    assert lam[0] == math.inf and (lam.diff() < 0).all()
    a, sig = s.alpha_at(DENSE), s.sigma_at(DENSE)
    inner = slice(1, -1)
    torch.testing.assert_close(torch.log(a[inner] / sig[inner]), lam[inner], rtol=0, atol=1e-9)
    if kind == "flow":
        torch.testing.assert_close(a + sig, torch.ones_like(a), rtol=0, atol=1e-15)
        assert lam[-1] == -math.inf
    else:
        torch.testing.assert_close(a**2 + sig**2, torch.ones_like(a), rtol=0, atol=1e-12)
    assert (a.diff() <= 0).all() and (sig.diff() >= 0).all()


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_between_grid_points_the_chain_is_linear_in_half_log_snr(kind):
    s = make_schedule(kind, 100)
    for k in (1, 2, 37, 99):
        for frac in (0.25, 0.5, 0.9):
            t = (k + frac) / 100
            expected = (1 - frac) * s.half_log_snr[k] + frac * s.half_log_snr[k + 1]
            assert float(s.half_log_snr_at(t)) == pytest.approx(float(expected), rel=1e-12, abs=1e-12)
    # First interval: sigma^2 is linear in t from 0 to sigma_1^2.
    for frac in (0.1, 0.5, 0.99):
        assert float(s.sigma_at(frac / 100)) ** 2 == pytest.approx(frac * float(s.sigmas[1]) ** 2, rel=1e-12)


def test_flow_path_is_its_closed_form_at_any_time():
    s = flow_schedule(7)  # a coarse grid: values between its points are still exact
    t = torch.rand(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.alpha_at(t), 1 - t, rtol=0, atol=0)
    torch.testing.assert_close(s.sigma_at(t), t, rtol=0, atol=0)
    torch.testing.assert_close(s.half_log_snr_at(t), torch.log((1 - t) / t), rtol=1e-12, atol=1e-12)
    assert float(s.alpha_at(1.0)) == 0.0 and float(s.half_log_snr_at(1.0)) == -math.inf


def test_interpolated_cosine_chain_follows_the_continuous_cosine():
    """Nichol & Dhariwal's alpha_bar(t) = f(t) / f(0), f = cos^2((t + s) / (1 + s) pi / 2), read
    between the grid points of the T = 1000 chain (away from the clipped last step)."""
    s = make_schedule("cosine", 1000)
    t = torch.linspace(0.0005, 0.95, 997, dtype=torch.float64)
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    torch.testing.assert_close(s.alpha_at(t) ** 2, f(t) / f(torch.zeros(1, dtype=torch.float64)), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("T", [1, 2, 50, 1000])
@pytest.mark.parametrize("kind", ALL_SCHEDULE_KINDS)
def test_time_at_half_log_snr_inverts_log_snr_at(kind, T):
    s = make_schedule(kind, T)
    t = DENSE[1:-1]
    torch.testing.assert_close(s.time_at_half_log_snr(s.half_log_snr_at(t)), t, rtol=0, atol=1e-12)
    lam = torch.linspace(float(s.half_log_snr_at(1 - 1e-6)), 8.0, 501, dtype=torch.float64)
    torch.testing.assert_close(s.half_log_snr_at(s.time_at_half_log_snr(lam)), lam, rtol=1e-9, atol=1e-9)
    assert float(s.time_at_half_log_snr(math.inf)) == 0.0
    assert float(s.time_at_half_log_snr(-math.inf)) == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_times_outside_the_unit_interval_are_refused(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        make_schedule("linear", 100).alpha_at(bad)


# --- named time grids ------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 5, 20])
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("kind", ["linear", "cosine", "flow"])
def test_every_named_grid_is_strictly_decreasing_and_ends_at_zero(kind, grid, steps):
    g = time_grid(make_schedule(kind, 1000), steps, grid)
    assert g.dtype == torch.float64 and g.shape == (steps + 1,)
    assert (g.diff() < 0).all() and g[-1] == 0 and g.max() <= 1
    if grid != "leading":
        assert g[0] == 1.0


@pytest.mark.parametrize("spacing", CHAIN_GRIDS)
def test_on_a_chain_the_integer_grids_are_the_step_grids(spacing):
    s = make_schedule("linear", 1000)
    for steps in (1, 7, 20, 1000):
        assert torch.equal(time_grid(s, steps, spacing), step_grid(s, steps, spacing).double() / 1000)


def test_time_uniform_and_logsnr_on_the_flow_path():
    s = flow_schedule(1000)
    torch.testing.assert_close(time_grid(s, 10, "time-uniform"), torch.linspace(1, 0, 11, dtype=torch.float64))
    g = time_grid(s, 10, "logsnr")
    lam = s.half_log_snr_at(g[1:-1])
    # Uniform in log-SNR from t = 1 - 1/T (the mirror of 1/T) to t = 1/T; the first point is t = 1.
    expected = torch.linspace(-math.log(999), math.log(999), 10, dtype=torch.float64)[1:]
    torch.testing.assert_close(lam, expected, rtol=0, atol=1e-9)
    assert g[0] == 1.0 and float(g[-2]) == pytest.approx(1 / 1000)


@pytest.mark.parametrize("steps", [5, 10, 25])
def test_karras_grid_matches_diffusers_sigmas_and_timesteps(steps):
    """diffusers' EulerDiscreteScheduler with Karras sigmas on the same linear chain: the same
    noise levels sigma / alpha, and the same (fractional) timesteps, because its log-sigma
    interpolation over timesteps is our log-SNR interpolation."""
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", use_karras_sigmas=True
    )
    sched.set_timesteps(steps)
    g = time_grid(make_schedule("linear", 1000), steps, "karras")
    ours = torch.exp(-make_schedule("linear", 1000).half_log_snr_at(g[:-1]))
    # diffusers keeps alpha_bar in float32: its sigmas carry about 1e-4 of relative rounding.
    np.testing.assert_allclose(ours.numpy(), sched.sigmas[:-1].double().numpy(), rtol=2e-4)
    np.testing.assert_allclose((g[:-1] * 1000 - 1).numpy(), sched.timesteps.double().numpy(), atol=1e-2)  # float32 there too


def test_karras_rho_follows_the_formula():
    s = flow_schedule(1000)
    for rho in (1.0, 3.0, 7.0):
        g = time_grid(s, 8, "karras", rho=rho)
        sig = torch.exp(-s.half_log_snr_at(g[1:-1]))  # sigma / alpha, first (infinite) point moved to t = 1
        s_max, s_min = 999.0, 1 / 999.0
        ramp = torch.linspace(0, 1, 8, dtype=torch.float64)[1:]
        expected = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        torch.testing.assert_close(sig, expected, rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="rho"):
        time_grid(s, 8, "karras", rho=0)


def test_a_users_grid_is_checked():
    torch.testing.assert_close(parse_grid("1,0.6,0.3,0.1,0"), torch.tensor([1, 0.6, 0.3, 0.1, 0], dtype=torch.float64))
    for bad, match in [
        ("1,0.6,0.6,0", "strictly decreasing"),
        ("1,0.5,0.1", "last time must be 0"),
        ("1.2,0.5,0", r"\[0, 1\]"),
        ("1,nan,0", r"\[0, 1\]"),
        ("0", "at least two"),
        ("1,half,0", "'half' is not a number"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_grid(bad)
    with pytest.raises(ValueError, match="unknown grid"):
        time_grid(flow_schedule(10), 5, "cosine")
    with pytest.raises(ValueError):
        check_grid([[1.0], "x"])


def test_a_grid_file_is_read(tmp_path):
    path = tmp_path / "grid.txt"
    path.write_text("1.0\n0.5\n0.2 0.05\n0\n")
    torch.testing.assert_close(parse_grid(str(path)), torch.tensor([1.0, 0.5, 0.2, 0.05, 0.0], dtype=torch.float64))
