"""Flow matching: samplers on the flow path, the OT-CFM pairing, the objective, and every
sampler on every model.

Oracles: Gaussian data, whose probability-flow ODE has a closed-form solution on any path
(x_t = alpha_t mu + sqrt(alpha_t^2 s^2 + sigma_t^2) z, z fixed along the path), and the exact
velocity of a Gaussian mixture (oracles.GaussianMixture.denoiser); the straight OT map between
two Gaussians; brute force over permutations for the optimal pairing.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from denoiselab.metrics import energy_distance
from denoiselab.objectives import couple, diffusion_loss, ot_pairing, sample_times
from denoiselab.oracles import GaussianMixture, two_d_mixture
from denoiselab.prediction import PREDICTIONS, resolve, target
from denoiselab.samplers import (
    GRIDS,
    SAMPLERS,
    TWO_EVALUATIONS_PER_STEP,
    CountingModel,
    Denoiser,
    StepRecord,
    evaluations,
    sample_ddim,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
    time_grid,
)
from denoiselab.schedules import ALL_SCHEDULE_KINDS, flow_schedule, make_schedule

FLOW = flow_schedule(1000)
MU, S = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.3


def gen(seed):
    return torch.Generator().manual_seed(seed)


def noise(n, seed=0, dim=2):
    return torch.randn(n, dim, generator=gen(seed), dtype=torch.float64)


def gaussian():
    one = torch.ones(1, dtype=torch.float64)
    return GaussianMixture(MU[None], S * one, one)


def exact_ode_solution(schedule, x_start, t_start=1.0):
    """The probability-flow ODE of N(MU, S^2 I) from x at t_start down to t = 0."""
    a, s = float(schedule.alpha_at(t_start)), float(schedule.sigma_at(t_start))
    z = (x_start - a * MU) / math.sqrt(a * a * S * S + s * s)
    return MU + S * z


# --- samplers on the flow path ---------------------------------------------------------------------


def test_euler_1000_and_heun_20_recover_a_gaussian_from_its_flow_velocity():
    denoise = Denoiser(gaussian().denoiser(FLOW, "velocity"), FLOW, "velocity")
    x1 = noise(4000, 1)
    exact = exact_ode_solution(FLOW, x1)
    euler, heun = sample_euler(denoise, x1, time_grid(FLOW, 1000)), sample_heun(denoise, x1, time_grid(FLOW, 20))
    for x, tol in ((euler, 1e-3), (heun, 6e-3)):
        torch.testing.assert_close(x.mean(0), MU, rtol=0, atol=0.02)
        torch.testing.assert_close(x.std(0), torch.full((2,), S, dtype=torch.float64), rtol=0.04, atol=0)
        # ... and each point lands where the exact ODE takes it.
        err = (x - exact).norm(dim=1)
        assert err.mean() < tol and err.max() < 4 * tol, (err.mean(), err.max())


def test_heun_20_recovers_a_gaussian_mixture_on_the_flow_path():
    mix = two_d_mixture()
    denoise = Denoiser(mix.denoiser(FLOW, "velocity"), FLOW, "velocity")
    x = sample_heun(denoise, noise(3000, 2), time_grid(FLOW, 20))
    ref, ref2 = mix.sample(3000, gen(3)), mix.sample(3000, gen(4))
    assert energy_distance(x, ref) < 3 * energy_distance(ref2, ref) + 1e-3
    # Too few Euler steps visibly miss it: the check has teeth.
    coarse = sample_euler(denoise, noise(3000, 2), time_grid(FLOW, 2))
    assert energy_distance(coarse, ref) > 10 * energy_distance(ref2, ref)


def test_the_straight_ot_map_between_two_gaussians_integrates_in_one_euler_step():
    """x0 = MU + S z is the OT map from N(0, I) to N(MU, S^2 I); along its straight path
    x_t = (1 - t)(MU + S z) + t z the velocity, as a field of (x, t), is u = (1 - S) z - MU."""

    def ot_velocity(x, t, y=None):
        t = t[:, None]
        z = (x - (1 - t) * MU) / ((1 - t) * S + t)
        return (1 - S) * z - MU

    z = noise(500, 5)
    x0 = sample_euler(Denoiser(ot_velocity, FLOW, "velocity"), z, [1.0, 0.0])
    torch.testing.assert_close(x0, MU + S * z, rtol=0, atol=1e-12)
    # The marginal (independent-coupling) velocity of the same pair is not straight: one step misses.
    one_step = sample_euler(Denoiser(gaussian().denoiser(FLOW, "velocity"), FLOW, "velocity"), z, [1.0, 0.0])
    assert (one_step - (MU + S * z)).abs().max() > 0.1


@pytest.mark.parametrize("kind", ALL_SCHEDULE_KINDS)
def test_euler_is_ddim_with_eta_zero_on_every_schedule(kind):
    schedule = make_schedule(kind, 1000)
    denoise = Denoiser(two_d_mixture().denoiser(schedule, "velocity"), schedule, "velocity")
    for grid in ("trailing", "karras", "time-uniform"):
        a = sample_euler(denoise, noise(300, 6), time_grid(schedule, 12, grid))
        b = sample_ddim(denoise, noise(300, 6), time_grid(schedule, 12, grid))
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_euler_on_the_flow_path_is_the_rectified_flow_step():
    model = two_d_mixture().denoiser(FLOW, "velocity")
    records: list[StepRecord] = []
    sample_euler(Denoiser(model, FLOW, "velocity"), noise(64, 7), [1.0, 0.7, 0.2, 0.0], on_step=records.append)
    for r in records:
        u = model(r.x_t, torch.full((64,), r.t, dtype=torch.float64))
        torch.testing.assert_close(r.x_next, r.x_t + (r.t_next - r.t) * u, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["flow", "linear", "cosine"])
def test_dpm_solver_on_a_flow_model_matches_the_exact_ode_solution(kind):
    """The network predicts velocity; DPM-Solver++ reads it through the prediction conversions.
    From pure noise at t = 1 (log-SNR -inf on the flow path) to the closed-form ODE solution."""
    schedule = make_schedule(kind, 1000)
    denoise = Denoiser(gaussian().denoiser(schedule, "velocity"), schedule, "velocity")
    x1 = noise(4000, 8)
    exact = exact_ode_solution(schedule, x1)
    errors = {}
    for steps in (5, 20, 40, 100):
        x = sample_dpmpp_2m(denoise, x1, time_grid(schedule, steps, "logsnr"))
        assert torch.isfinite(x).all()
        errors[steps] = (x - exact).norm(dim=1).mean().item()
    assert errors[100] < 1e-3 and errors[40] < 4e-3, errors
    assert errors[100] < errors[40] < errors[20] < errors[5], errors  # converges
    # Second order pays: DDIM (first order) with the same 20 evaluations is further off.
    ddim = sample_ddim(denoise, x1, time_grid(schedule, 20, "logsnr"))
    assert (ddim - exact).norm(dim=1).mean().item() > 2 * errors[20]


def test_dpm_solver_after_a_step_from_minus_infinite_log_snr_takes_a_first_order_step():
    denoise = Denoiser(two_d_mixture().denoiser(FLOW, "velocity"), FLOW, "velocity")
    x1 = noise(100, 9)
    three = [1.0, 0.6, 0.3, 0.0]  # no step has usable history: order 2 is order 1
    torch.testing.assert_close(sample_dpmpp_2m(denoise, x1, three), sample_dpmpp_2m(denoise, x1, three, order=1), rtol=0, atol=1e-12)
    four = [1.0, 0.6, 0.3, 0.1, 0.0]  # 0.3 -> 0.1 has the history of 0.6 -> 0.3
    a = sample_dpmpp_2m(denoise, x1, four)
    b = sample_dpmpp_2m(denoise, x1, four, order=1)
    assert (a - b).abs().max() > 1e-4


def test_an_eps_model_cannot_be_read_where_the_flow_path_holds_no_signal():
    denoise = Denoiser(two_d_mixture().denoiser(FLOW, "eps"), FLOW, "eps")
    with pytest.raises(ValueError, match="alpha = 0"):
        sample_ddim(denoise, noise(8), time_grid(FLOW, 5))
    # Starting below t = 1 works.
    assert torch.isfinite(sample_ddim(denoise, noise(8), [0.99, 0.5, 0.0])).all()


@pytest.mark.parametrize("prediction", ["velocity", "x0", "v"])
@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_samples_a_flow_model_on_every_grid(name, grid, prediction):
    model = CountingModel(two_d_mixture().denoiser(FLOW, prediction))
    records: list[StepRecord] = []
    x = SAMPLERS[name](Denoiser(model, FLOW, prediction), noise(200, 10), time_grid(FLOW, 6, grid), generator=gen(1), on_step=records.append)
    assert torch.isfinite(x).all() and x.shape == (200, 2)
    assert model.calls == evaluations(name, 6) == (11 if name in TWO_EVALUATIONS_PER_STEP else 6)
    assert records[-1].t_next == 0.0 and len(records) == 6
    if name != "ipndm":  # iPNDM's last step extrapolates the noise estimates of the last four (ipndm.py)
        torch.testing.assert_close(records[-1].x_next, records[-1].x0, rtol=0, atol=1e-12)  # ends clean


@pytest.mark.parametrize("kind", ALL_SCHEDULE_KINDS)
def test_predictions_round_trip_at_continuous_times(kind):
    schedule = make_schedule(kind, 1000)
    t = torch.rand(64, generator=gen(11), dtype=torch.float64) * 0.999 + 0.0005
    t[0] = 1.0 if kind == "flow" else t[0]
    a, s = schedule.alpha_at(t), schedule.sigma_at(t)
    x0, eps = noise(64, 12), noise(64, 13)
    x_t = a[:, None] * x0 + s[:, None] * eps
    for kind_ in PREDICTIONS:
        if kind_ == "eps" and kind == "flow":
            continue  # alpha = 0 at t[0]
        d = resolve(target(kind_, x0, eps, a, s), kind_, x_t, a, s)
        torch.testing.assert_close(d.x0, x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(d.eps, eps, rtol=1e-9, atol=1e-9)


# --- OT-CFM pairing ----------------------------------------------------------------------------------


def _cost(x0, z, perm):
    return ((x0 - z[perm]) ** 2).sum().item()


@pytest.mark.parametrize("seed", range(5))
def test_ot_pairing_is_minimal_against_brute_force(seed):
    x0, z = noise(6, 100 + seed) * 2, noise(6, 200 + seed)
    perm = ot_pairing(x0, z)
    best = min(_cost(x0, z, list(p)) for p in itertools.permutations(range(6)))
    assert _cost(x0, z, perm) == pytest.approx(best, rel=1e-12)
    assert sorted(perm.tolist()) == list(range(6))


def test_ot_coupling_pairs_each_data_row_with_its_nearest_noise_the_right_way_round():
    """torchcfm #178 indexed the wrong side for years.  Here the answer is unambiguous: data row i
    must get noise row [2, 0, 1][i], and applying that permutation to the data instead (the
    reverse pairing) would pair every point with a far noise."""
    x0 = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 0.0]], dtype=torch.float64)
    z = torch.tensor([[0.0, 9.0], [-9.0, 0.0], [9.0, 0.0]], dtype=torch.float64)
    paired = couple(x0, z, "ot")
    torch.testing.assert_close(paired, z[[2, 0, 1]], rtol=0, atol=0)
    assert ((x0 - paired) ** 2).sum() < ((x0[[2, 0, 1]] - z) ** 2).sum()


def test_ot_coupling_keeps_labels_beside_their_points_and_pairs_within_each_label():
    x0, z = noise(40, 14) * 3, noise(40, 15)
    y = torch.tensor([0, 1, -1, 2] * 10)
    paired = couple(x0, z, "ot", y)
    for label in (-1, 0, 1, 2):
        rows = (y == label).nonzero().flatten()
        # The noise a class trains with is exactly its own draws, re-ordered ...
        got = {tuple(v) for v in paired[rows].tolist()}
        assert got == {tuple(v) for v in z[rows].tolist()}
        # ... in the cheapest order within the class.
        sub = z[rows][ot_pairing(x0[rows], z[rows])]
        torch.testing.assert_close(paired[rows], sub, rtol=0, atol=0)
    assert torch.equal(couple(x0, z, "independent", y), z)


def test_ot_coupling_works_on_images_and_lowers_the_cost():
    x0 = torch.randn(16, 1, 4, 4, generator=gen(16))
    z = torch.randn(16, 1, 4, 4, generator=gen(17))
    paired = couple(x0, z, "ot")
    assert paired.shape == z.shape
    assert ((x0 - paired) ** 2).sum() <= ((x0 - z) ** 2).sum()


# --- the objective ---------------------------------------------------------------------------------


def test_training_times_follow_their_distributions():
    n = 20000
    chain = make_schedule("linear", 1000)
    t = sample_times(chain, n, gen(18), "uniform")
    assert torch.equal(t * 1000, (t * 1000).round()) and t.min() >= 1e-3  # grid points k / T, k >= 1
    u = sample_times(FLOW, n, gen(19), "uniform")
    assert u.min() > 0 and u.max() <= 1 and stats.kstest(u.numpy(), "uniform").pvalue > 1e-3
    ln = sample_times(FLOW, n, gen(20), "logit-normal")
    # logit(t) ~ N(0, 1) (Esser et al. 2024).
    assert stats.kstest(np.log(ln.numpy() / (1 - ln.numpy())), "norm").pvalue > 1e-3
    ls = sample_times(FLOW, n, gen(21), "logsnr")
    lam = FLOW.half_log_snr_at(ls).numpy()
    assert stats.kstest((lam + math.log(999)) / (2 * math.log(999)), "uniform").pvalue > 1e-3
    with pytest.raises(ValueError, match="uniform, logsnr or edm"):
        sample_times(chain, 4, gen(0), "logit-normal")


def test_flow_matching_loss_is_lowest_at_the_exact_velocity():
    mix = two_d_mixture()
    x0 = mix.sample(4000, gen(22))
    exact = mix.denoiser(FLOW, "velocity")

    def loss(model_fn, coupling="independent"):
        return diffusion_loss(model_fn, x0, FLOW, gen(23), prediction="velocity", timesteps="uniform", coupling=coupling).item()

    best = loss(exact)
    assert best < loss(lambda x, t, y=None: 1.05 * exact(x, t)) and best < loss(lambda x, t, y=None: exact(x, t) + 0.05)
    # The conditional target eps - x0 is noisier than its mean: the loss floor is its variance, > 0.
    assert best > 0.1
    # OT pairing changes the targets (the exact marginal velocity is the regression function of
    # independent pairing only): on a batch of 256 its loss differs.
    x0 = x0[:256]
    assert loss(exact, "ot") != pytest.approx(loss(exact), rel=1e-3)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_the_times_can_be_a_list_or_a_tensor(name):
    denoise = Denoiser(two_d_mixture().denoiser(FLOW, "velocity"), FLOW, "velocity")
    grid = [1.0, 0.55, 0.2, 0.0]
    a = SAMPLERS[name](denoise, noise(50, 30), grid, generator=gen(1))
    b = SAMPLERS[name](denoise, noise(50, 30), torch.tensor(grid, dtype=torch.float64), generator=gen(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
