"""log p(x) through the probability-flow ODE (denoiselab.cnf) against closed forms.

Gaussian data and Gaussian mixtures have exact denoisers (oracles.py) and exact densities at
every time, so the likelihood of the exact model must be the data's own log-density, to the
solver's tolerance, on every path and for every prediction type.
"""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab import likelihood
from denoiselab.cnf import SolverError, default_times, field_and_divergence, draw_probes, gaussian_prior, solve
from denoiselab.data import Normalization
from denoiselab.oracles import GaussianMixture, two_d_mixture
from denoiselab.samplers import CountingModel
from denoiselab.schedules import flow_schedule, make_schedule

pytestmark = pytest.mark.usefixtures("one_thread")

FLOW = flow_schedule()
LINEAR = make_schedule("linear", 1000)
COSINE = make_schedule("cosine", 1000)


def gaussian(mean=(0.5, -1.0), std=0.2) -> GaussianMixture:
    """N(mean, std^2 I) as a one-component mixture: its exact denoiser comes with it."""
    m = torch.tensor([mean], dtype=torch.float64)
    return GaussianMixture(m, torch.tensor([std], dtype=torch.float64), torch.ones(1, dtype=torch.float64))


def points(mixture: GaussianMixture, n: int = 48, seed: int = 1) -> torch.Tensor:
    return mixture.sample(n, torch.Generator().manual_seed(seed))


def exact_prior(mixture: GaussianMixture, schedule, prediction: str):
    """The exact density of x_t at the end of the solve: the noised mixture's."""
    t = default_times(schedule, prediction)[1]
    noised = mixture.noised(float(schedule.alpha_at(t)), float(schedule.sigma_at(t)))
    return noised.log_prob


# -- closed forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, prediction", [(FLOW, "velocity"), (LINEAR, "eps"), (COSINE, "v"), (FLOW, "x0")], ids=lambda v: getattr(v, "name", v)
)
def test_gaussian_data_with_its_exact_denoiser_gives_its_log_density(schedule, prediction):
    g = gaussian()
    x = points(g)
    # The Gaussian prior with the data's moments is the exact density of x_1 for Gaussian data.
    prior = gaussian_prior(schedule, 1.0, g.means[0], 0.04 * torch.eye(2, dtype=torch.float64))
    r = likelihood(g.denoiser(schedule, prediction), schedule, x, prediction=prediction, prior=prior, rtol=1e-7, atol=1e-7)
    # The solve starts at t_start > 0, where the density is the data's convolved with
    # N(0, (sigma / alpha)^2): for Gaussian data, N(mean, 0.2^2 + (sigma / alpha)^2), exactly.
    a, s = float(schedule.alpha_at(r.t_start)), float(schedule.sigma_at(r.t_start))
    assert s / a == pytest.approx(1e-3 if prediction == "x0" else 1e-5, rel=1e-6)
    widened = gaussian(std=math.sqrt(0.04 + (s / a) ** 2))
    assert float((r.log_prob - widened.log_prob(x)).abs().max()) < 1e-5
    assert float((r.log_prob - g.log_prob(x)).abs().mean()) < 1e-4  # and the data's own, nearly


def test_the_sign_and_direction_are_pinned():
    """Data far from unit variance (std 0.2): the flow spreads them by 1 / 0.2 on the way to
    the noise, so the divergence integral is +D log(1 / 0.2) = 3.2 nats (the data are denser
    than the noise they map to).  Adding it with the wrong sign, or reading the prior at the data
    end, is off by nats where the right convention is exact."""
    g = gaussian(mean=(0.0, 0.0), std=0.2)
    x = points(g)
    r = likelihood(g.denoiser(FLOW, "velocity"), FLOW, x, prediction="velocity", rtol=1e-7, atol=1e-7)
    truth = g.log_prob(x)
    assert float((r.log_prob - truth).abs().max()) < 1e-5
    assert float(r.divergence_integral.mean()) == pytest.approx(2 * math.log(1 / 0.2), abs=1e-4)
    wrong_sign = r.prior_log_prob - r.divergence_integral
    assert float((wrong_sign - truth).abs().min()) > 6.0  # off by 2 D log 5 = 6.4 nats
    noise_at_the_data_end = gaussian_prior(FLOW, 1.0)(x)
    assert float((noise_at_the_data_end - truth).abs().mean()) > 1.0
    # The end point is the noise the ODE maps x to: x / 0.2 for this Gaussian.
    assert torch.allclose(r.z_end, x / 0.2, atol=1e-5)


def moments(mix: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and covariance of a mixture."""
    w = mix.weights[:, None]
    mean = (w * mix.means).sum(0)
    centred = mix.means - mean
    cov = (w[:, :, None] * (centred[:, :, None] * centred[:, None, :])).sum(0) + (mix.weights * mix.stds**2).sum() * torch.eye(mix.dim, dtype=mean.dtype)
    return mean, cov


def test_mixture_oracle_gives_the_mixture_log_density_within_1e_3_nats():
    """At the default tolerances.  The linear chain ends at alpha_1 = 0.0064, not 0: its prior is
    the Gaussian of the data's moments (what a run uses).  The N(0, I) prior misses alpha_1 m . x_1
    there (m the data's mean): 2e-3 nats a point here, but 0 on average."""
    mix = two_d_mixture()
    x = points(mix, 64)
    truth = mix.log_prob(x)
    flow = likelihood(mix.denoiser(FLOW, "velocity"), FLOW, x, prediction="velocity")
    assert float((flow.log_prob - truth).abs().mean()) < 1e-3
    model = mix.denoiser(LINEAR, "eps")
    chain = likelihood(model, LINEAR, x, prediction="eps", prior=gaussian_prior(LINEAR, 1.0, *moments(mix)))
    assert float((chain.log_prob - truth).abs().mean()) < 1e-3
    standard = likelihood(model, LINEAR, x, prediction="eps")
    assert abs(float((standard.log_prob - truth).mean())) < 1e-3


def test_flow_and_diffusion_with_the_same_closed_form_model_agree():
    mix = two_d_mixture()
    x = points(mix, 48, seed=2)
    results = {
        (s.name, p): likelihood(mix.denoiser(s, p), s, x, prediction=p, prior=exact_prior(mix, s, p), rtol=1e-7, atol=1e-7).log_prob
        for s, p in ((FLOW, "velocity"), (FLOW, "eps"), (LINEAR, "eps"), (LINEAR, "v"), (COSINE, "x0"))
    }
    flow = results[("flow", "velocity")]
    assert float((flow - mix.log_prob(x)).abs().max()) < 1e-5
    for key, lp in results.items():
        # eps on the flow path stops at t = 0.999, x0 starts at t = 1e-3: a few 1e-5 nats each.
        assert float((lp - flow).abs().max()) < 1e-4, key


def test_fixed_step_solvers_converge_to_the_adaptive_answer():
    mix = two_d_mixture()
    x = points(mix, 32)
    truth = mix.log_prob(x)
    model = mix.denoiser(FLOW, "velocity")
    errors = {}
    for method in ("heun", "rk4"):
        for steps in (8, 16):
            r = likelihood(model, FLOW, x, prediction="velocity", method=method, steps=steps)
            errors[method, steps] = float((r.log_prob - truth).abs().mean())
            assert r.evaluations == steps * (2 if method == "heun" else 4)
    assert errors["rk4", 16] < errors["rk4", 8] / 8  # order 4 (16x in the limit)
    assert errors["heun", 16] < errors["heun", 8] / 2.5  # order 2 (4x in the limit)
    assert errors["rk4", 16] < 1e-3


def test_data_units_add_the_normalisation_jacobian():
    g = gaussian(mean=(0.3, 0.1), std=0.5)
    norm = Normalization(mean=torch.tensor([4.0, -2.0]).numpy(), scale=3.0)
    x_model = points(g)
    x_data = x_model * 3.0 + torch.tensor([4.0, -2.0], dtype=torch.float64)
    r = likelihood(g.denoiser(FLOW, "velocity"), FLOW, x_data, prediction="velocity", normalization=norm, rtol=1e-7, atol=1e-7)
    # In data units the data are N(4 + 3 * 0.3, (3 * 0.5)^2) x N(-2 + 3 * 0.1, ...).
    data_units = gaussian(mean=(4.9, -1.7), std=1.5)
    assert float((r.log_prob - data_units.log_prob(x_data)).abs().max()) < 1e-5
    assert r.log_jacobian == pytest.approx(2 * math.log(3.0))


def test_image_shaped_points_and_batches():
    """(B, C, H, W) points are flattened for the divergence and the prior; batches are solved
    one by one and give the same answer."""
    g = GaussianMixture(torch.zeros(1, 4, dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    flat_model = g.denoiser(FLOW, "velocity")

    def image_model(x, t, y=None):
        return flat_model(x.reshape(len(x), 4), t).reshape(x.shape)

    x = g.sample(20, torch.Generator().manual_seed(0))
    images = x.reshape(20, 1, 2, 2)
    whole = likelihood(image_model, FLOW, images, prediction="velocity", rtol=1e-7, atol=1e-7)
    batched = likelihood(image_model, FLOW, images, prediction="velocity", rtol=1e-7, atol=1e-7, batch_size=7)
    assert float((whole.log_prob - g.log_prob(x)).abs().max()) < 1e-5
    assert float((batched.log_prob - whole.log_prob).abs().max()) < 1e-5
    assert whole.z_end.shape == images.shape


def test_conditional_model_reads_its_labels():
    """A labelled mixture: log p(x | y) of each class is the class's sub-mixture's density."""
    from denoiselab.oracles import labelled_mixture

    mix = labelled_mixture()
    per_class = [mix.class_conditional(c) for c in (0, 1)]

    def conditional(x, t, y=None):
        outs = [m.denoiser(FLOW, "velocity")(x, t) for m in per_class]
        return torch.where(y[:, None] == 0, outs[0], outs[1])

    x = points(mix, 40)
    y = torch.arange(40) % 2
    r = likelihood(conditional, FLOW, x, prediction="velocity", y=y)
    truth = torch.where(y == 0, per_class[0].log_prob(x), per_class[1].log_prob(x))
    assert float((r.log_prob - truth).abs().mean()) < 1e-3


def test_evaluations_are_the_model_calls():
    mix = two_d_mixture()
    counting = CountingModel(mix.denoiser(FLOW, "velocity"))
    r = likelihood(counting, FLOW, points(mix, 16), prediction="velocity", rtol=1e-4, atol=1e-4)
    assert r.evaluations == counting.calls
    assert r.vector_jacobian_products == 2 * counting.calls  # exact divergence: D per call


# -- the divergence --------------------------------------------------------------------------------


def linear_field(dim: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_exact_divergence_is_the_trace_of_a_linear_field():
    A = linear_field()
    z = torch.randn(3, 5, dtype=torch.float64)
    out, div = field_and_divergence(lambda v: v @ A.T, z)
    assert torch.allclose(out, z @ A.T)
    assert torch.allclose(div, torch.full((3,), float(A.trace()), dtype=torch.float64))
    # 8 dimensions and more: the batched backward pass gives the same trace.
    B = linear_field(12)
    _, div12 = field_and_divergence(lambda v: v @ B.T, torch.randn(3, 12, dtype=torch.float64))
    assert torch.allclose(div12, torch.full((3,), float(B.trace()), dtype=torch.float64))


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_variance_falling_as_one_over_k(kind):
    """Each of R = 20000 rows is one independent estimate (its own probes) of tr(A) for the same
    point: their mean is tr(A) within 4 standard errors, and their variance is the closed form
    2 (||A_s||_F^2 - [rademacher] sum_i A_ii^2) / K within 5% at K = 1, 4, 16 (an estimator
    that summed its K probes instead of averaging them would be K tr(A))."""
    A = linear_field()
    sym = 0.5 * (A + A.T)
    var_one = 2 * float((sym**2).sum() - (torch.diagonal(A) ** 2).sum() * (kind == "rademacher"))
    rows = 20_000
    z = torch.zeros(rows, 5, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    for k in (1, 4, 16):
        probes = draw_probes(k, (rows, 5), kind, generator, torch.float64)
        _, estimates = field_and_divergence(lambda v: v @ A.T, z, probes)
        assert abs(float(estimates.mean()) - float(A.trace())) < 4 * math.sqrt(var_one / k / rows)
        assert float(estimates.var()) == pytest.approx(var_one / k, rel=0.05)


def test_hutchinson_likelihood_is_unbiased_against_the_exact_one():
    mix = two_d_mixture()
    x = points(mix, 64)
    model = mix.denoiser(FLOW, "velocity")
    exact = likelihood(model, FLOW, x, prediction="velocity")
    estimates = [likelihood(model, FLOW, x, prediction="velocity", divergence="hutchinson", probes=2, seed=s) for s in range(2)]
    assert all(e.divergence == "hutchinson" and e.probes == 2 for e in estimates)
    diff = torch.stack([e.log_prob - exact.log_prob for e in estimates])
    assert float(diff.std()) > 1e-3  # an estimate: it scatters point by point ...
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(diff.numel())  # ... around the exact value
    same_seed = likelihood(model, FLOW, x, prediction="velocity", divergence="hutchinson", probes=2, seed=0)
    assert torch.equal(same_seed.log_prob, estimates[0].log_prob)  # probes from the seed, fixed per solve


# -- the solvers -----------------------------------------------------------------------------------


def test_rk45_meets_its_tolerance_and_counts_its_evaluations():
    """dy/ds = [y2, -y1] (a rotation) from s = 0 to 6: y(6) = (cos 6, -sin 6) per row."""
    calls = 0

    def f(s, y):
        nonlocal calls
        calls += 1
        return torch.stack([y[:, 1], -y[:, 0]], dim=1)

    y0 = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    errors = []
    for tol in (1e-4, 1e-7):
        calls = 0
        sol = solve(f, y0, 0.0, 6.0, rtol=tol, atol=tol)
        truth = y0[:, :1] * torch.tensor([[math.cos(6.0), -math.sin(6.0)]], dtype=torch.float64)
        errors.append(float((sol.y - truth).abs().max()))
        assert sol.evaluations == calls == 2 + 6 * (sol.steps + sol.rejected)
        assert errors[-1] < 100 * tol
    assert errors[1] < errors[0] / 100
    back = solve(f, sol.y, 6.0, 0.0, rtol=1e-9, atol=1e-9)  # the other direction
    assert torch.allclose(back.y, y0, atol=1e-6)


def test_rk45_refuses_to_loop_forever():
    with pytest.raises(SolverError):
        solve(lambda s, y: y / (1.0 - s), torch.ones(1, 1, dtype=torch.float64), 0.0, 1.0)  # blows up at s = 1


@pytest.mark.parametrize(
    "options, words",
    [
        ({"divergence": "hutchinson", "probes": 0}, "probes"),
        ({"rtol": 0.0}, "rtol"),
        ({"atol": -1.0}, "atol"),
        ({"method": "euler"}, "unknown solver"),
        ({"method": "rk4"}, "give steps"),
        ({"method": "rk4", "steps": 0}, "steps"),
        ({"divergence": "trace"}, "unknown divergence"),
        ({"probe_kind": "sphere", "divergence": "hutchinson"}, "unknown probe kind"),
        ({"t_start": 0.5, "t_end": 0.5}, "t_start < t_end"),
    ],
)
def test_bad_options_are_refused(options, words):
    mix = two_d_mixture()
    with pytest.raises(ValueError, match=words):
        likelihood(mix.denoiser(FLOW, "velocity"), FLOW, points(mix, 4), prediction="velocity", **options)


# -- the DDPM variational bound --------------------------------------------------------------------


def test_the_variational_bound_is_an_upper_bound_of_the_exact_model_nll():
    """On the mixture oracle the exact model's NLL is the mixture's (above); the DDPM bound of the
    same model lies above it, by more for fewer steps and for the small variance (whose Gaussian
    steps are narrower than the true reverse transitions), and a wrong model's bound lies higher."""
    from denoiselab.variational_bound import variational_bound

    mix = two_d_mixture()
    x = points(mix, 400)
    nll = -mix.log_prob(x)
    gaps = {}
    for T, variance in ((20, "large"), (100, "large"), (100, "small")):
        schedule = make_schedule("linear", T)
        r = variational_bound(mix.denoiser(schedule, "eps"), schedule, x, variance=variance)
        assert r.evaluations == T and torch.allclose(r.bound, r.prior + r.steps + r.decoder)
        gap = r.bound - nll
        gaps[T, variance] = (float(gap.mean()), float(gap.std() / math.sqrt(len(gap))))
    # Above the NLL beyond the Monte Carlo noise of the bound's estimate (one draw of x_k a term);
    # at 100 large steps the gap (about 0.1 nats) is within that noise for 400 points: not below.
    for key in ((20, "large"), (100, "small")):
        assert gaps[key][0] > 3 * gaps[key][1], key
    assert gaps[100, "large"][0] > -3 * gaps[100, "large"][1]
    assert gaps[20, "large"][0] > gaps[100, "large"][0] + 0.2
    assert gaps[100, "small"][0] > gaps[100, "large"][0]
    schedule = make_schedule("linear", 100)
    wrong = GaussianMixture(mix.means + 0.3, mix.stds, mix.weights)
    assert float(variational_bound(wrong.denoiser(schedule, "eps"), schedule, x).bound.mean()) > float(nll.mean()) + gaps[100, "small"][0] + 1.0


def test_the_variational_bound_is_a_chain_s_only():
    from denoiselab.variational_bound import variational_bound

    mix = two_d_mixture()
    with pytest.raises(ValueError, match="DDPM chain"):
        variational_bound(mix.denoiser(FLOW, "velocity"), FLOW, points(mix, 4), prediction="velocity")
