"""EDM preconditioning (Karras et al. 2022, Table 1) as a network wrapper: the paper's formulas,
the plain network at identity coefficients, and Gaussian data's closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from denoiselab.builders import model_from
from denoiselab.config import ConfigError, load_config
from denoiselab.models.preconditioning import Preconditioned, edm_coefficients, edm_reference, precondition
from denoiselab.prediction import resolve, target
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.weighting import Weighting

pytestmark = pytest.mark.usefixtures("one_thread")

SD = 0.5
SCHEDULES = {"linear": make_schedule("linear", 1000), "cosine": make_schedule("cosine", 1000), "flow": flow_schedule(1000)}


class Affine(nn.Module):
    """A stand-in network: a fixed function of (x, t, y) that depends on all three."""

    def forward(self, x, t, y=None):
        shift = 0.0 if y is None else y.to(x.dtype)[:, None]
        return torch.tanh(x) * (1 + t[:, None]) + shift


class Zero(nn.Module):
    def forward(self, x, t, y=None):
        return torch.zeros_like(x)


def test_the_reference_is_table_1():
    s = torch.tensor([SD, 3 * SD])
    c_skip, c_out, c_in = edm_reference(s, SD)
    # at s = s_d: c_skip = 1/2, c_out = s_d / sqrt 2, c_in = 1 / (s_d sqrt 2)
    assert c_skip[0].item() == pytest.approx(0.5)
    assert c_out[0].item() == pytest.approx(SD / math.sqrt(2))
    assert c_in[0].item() == pytest.approx(1 / (SD * math.sqrt(2)))
    # at s = 3 s_d: s_d^2 / (10 s_d^2), 3 s_d^2 / (s_d sqrt 10), 1 / (s_d sqrt 10)
    assert c_skip[1].item() == pytest.approx(0.1)
    assert c_out[1].item() == pytest.approx(3 * SD / math.sqrt(10))
    assert c_in[1].item() == pytest.approx(1 / (SD * math.sqrt(10)))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_the_factors_on_x_t_are_table_1_in_the_scaled_coordinates(name):
    """x_t = alpha (x0 + s eps): c_skip = alpha a_skip, c_in = alpha a_in, c_out = a_out."""
    schedule = SCHEDULES[name]
    t = torch.linspace(0.01, 0.99, 25, dtype=torch.float64)
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    a_skip, a_out, a_in = edm_coefficients(SD)(alpha, sigma)
    c_skip, c_out, c_in = edm_reference(sigma / alpha, SD)
    torch.testing.assert_close(alpha * a_skip, c_skip, rtol=1e-12, atol=0)
    torch.testing.assert_close(alpha * a_in, c_in, rtol=1e-12, atol=0)
    torch.testing.assert_close(a_out, c_out, rtol=1e-12, atol=0)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "velocity"])
def test_identity_coefficients_give_the_plain_network(prediction):
    """c_skip = 0, c_out = 1, c_in = 1 and the time as c_noise: the wrapper's D is the network's
    output, read as an x0-prediction and converted to the recipe's type."""
    schedule, net = SCHEDULES["linear"], Affine()
    wrapped = Preconditioned(net, schedule, prediction, lambda a, s: (torch.zeros_like(a), torch.ones_like(a), torch.ones_like(a)))
    x, t, y = torch.randn(6, 3), torch.tensor([0.1, 0.2, 0.35, 0.5, 0.8, 1.0]), torch.arange(6)
    plain = net(x, t, y)
    out = wrapped(x, t, y)
    if prediction == "x0":
        assert torch.equal(out, plain)
    alpha, sigma = schedule.alpha_at(t.double()).float(), schedule.sigma_at(t.double()).float()
    torch.testing.assert_close(resolve(out, prediction, x, alpha, sigma).x0, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_a_zero_network_is_the_posterior_mean_of_gaussian_data(name):
    """For x0 ~ N(0, s_d^2 I) the optimal denoiser is E[x0 | x_t] = alpha s_d^2 x_t / (alpha^2 s_d^2
    + sigma^2) = c_skip x: the skip alone, so the network only has to learn what Gaussian data does not say."""
    schedule = SCHEDULES[name]
    wrapped = precondition(Zero(), "edm", schedule, "x0", SD)
    t = torch.tensor([0.001, 0.05, 0.3, 0.7, 0.999, 1.0], dtype=torch.float64)
    x = torch.randn(len(t), 4, dtype=torch.float64)
    out = wrapped(x, t)
    alpha, sigma = schedule.alpha_at(t)[:, None], schedule.sigma_at(t)[:, None]
    torch.testing.assert_close(out, alpha * SD**2 * x / (alpha**2 * SD**2 + sigma**2), rtol=1e-10, atol=1e-12)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_input_and_target_of_the_network_have_unit_variance(name):
    """EDM App. B.6: c_in makes F's input unit-variance, c_skip and c_out its effective target
    (x0 - c_skip x) / c_out, for data of standard deviation s_d, at every noise level."""
    schedule, gen = SCHEDULES[name], torch.Generator().manual_seed(0)
    n = 200_000
    for t in (0.02, 0.2, 0.5, 0.9):
        tt = torch.full((n,), t, dtype=torch.float64)
        alpha, sigma = schedule.alpha_at(tt), schedule.sigma_at(tt)
        x0 = SD * torch.randn(n, generator=gen, dtype=torch.float64)
        x_t = alpha * x0 + sigma * torch.randn(n, generator=gen, dtype=torch.float64)
        a_skip, a_out, a_in = edm_coefficients(SD)(alpha, sigma)
        assert (a_in * x_t).var().item() == pytest.approx(1.0, rel=0.02)
        assert ((x0 - a_skip * x_t) / a_out).var().item() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_edm_weight_is_unit_weight_on_the_network_error(prediction):
    """EDM's lambda(s) c_out(s)^2 = 1 (Sec. 5): with the edm weighting, every target's weighted
    loss is the raw network's squared error, at every noise level."""
    schedule = SCHEDULES["linear"]
    t = torch.linspace(0.01, 1.0, 30, dtype=torch.float64)
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    _, a_out, _ = edm_coefficients(SD)(alpha, sigma)
    weight = Weighting("edm", sigma_data=SD).on_target(prediction, alpha, sigma)
    # an error dF of the network is an error a_out dF of D, c_target a_out^2 dF^2 of the target
    x0, eps = torch.randn(30, 1, dtype=torch.float64), torch.randn(30, 1, dtype=torch.float64)
    dx0 = a_out[:, None]
    x_t = alpha[:, None] * x0 + sigma[:, None] * eps
    eps_hat = (x_t - alpha[:, None] * (x0 + dx0)) / sigma[:, None]
    err = target(prediction, x0 + dx0, eps_hat, alpha, sigma) - target(prediction, x0, eps, alpha, sigma)
    torch.testing.assert_close(weight * err[:, 0] ** 2, torch.ones_like(weight), rtol=1e-9, atol=0)


def test_the_recipe_key_wraps_the_network_and_reads_sigma_data():
    cfg = load_config("digits", ["model.precondition=edm", "model.prediction=x0", "train.sigma_data=0.5", "model.hidden=8"])
    model = model_from(cfg, 1, 10, (1, 8, 8))
    assert isinstance(model, Preconditioned) and model.prediction == "x0"
    assert all(k.startswith("net.") for k in model.state_dict())
    plain = model_from(load_config("digits", ["model.hidden=8"]), 1, 10, (1, 8, 8))
    assert not isinstance(plain, Preconditioned)
    with pytest.raises(ConfigError, match="train.sigma_data"):
        load_config("digits", ["train.sigma_data=0.5"])
    with pytest.raises(ConfigError, match="model.precondition"):
        load_config("digits", ["model.precondition=karras"])


def test_a_preconditioned_run_trains_and_samples(tmp_path):
    from denoiselab.runs import load_run, sample_points
    from denoiselab.training import train

    cfg = load_config("quick", ["model.precondition=edm", "model.prediction=x0", "train.weighting=edm", "train.timesteps=edm",
                                "train.steps=30", "train.checkpoint_every=30", "train.warmup_steps=2", "train.batch_size=32"])  # fmt: skip
    train(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    run = load_run(tmp_path / "run", device="cpu")
    assert isinstance(run.model, Preconditioned)
    samples = sample_points(run, n=16, steps=5)
    assert samples.shape == (16, 2) and torch.isfinite(torch.as_tensor(samples)).all()
