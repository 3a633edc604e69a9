"""Classifier-free guidance as a model-function wrapper, checked on hand-written models."""

import pytest
import torch

from denoiselab.guidance import NO_LABEL, classifier_free, drop_labels
from denoiselab.models import ResidualMLP
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule


def toy_model(x, t, y=None):
    """eps = 0.1 x + (label + 1) * t for a label, 0.1 x - t without one (y None or -1)."""
    if y is None:
        y = torch.full((x.shape[0],), NO_LABEL)
    y = torch.as_tensor(y).expand(x.shape[0])
    shift = torch.where(y >= 0, (y + 1).to(x.dtype), torch.full_like(t, -1.0)) * t
    return 0.1 * x + shift[:, None]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 2, generator=g, dtype=torch.float64), torch.rand(6, generator=g, dtype=torch.float64)


def test_scale_one_is_conditional_and_zero_is_unconditional_exactly(batch):
    x, t = batch
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(classifier_free(toy_model, 1.0)(x, t, y), toy_model(x, t, y))
    assert torch.equal(classifier_free(toy_model, 0.0)(x, t, y), toy_model(x, t, None))


@pytest.mark.parametrize("s", [0.5, 2.0, 4.0, 8.0])
def test_guided_prediction_is_the_linear_combination(batch, s):
    x, t = batch
    y = torch.tensor(1)
    cond, uncond = toy_model(x, t, y), toy_model(x, t, None)
    torch.testing.assert_close(classifier_free(toy_model, s)(x, t, y), uncond + s * (cond - uncond))


def test_no_label_passes_through_unconditional(batch):
    x, t = batch
    assert torch.equal(classifier_free(toy_model, 3.0)(x, t, None), toy_model(x, t, None))


def test_negative_scale_is_rejected():
    with pytest.raises(ValueError, match="guidance scale"):
        classifier_free(toy_model, -1.0)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_accepts_the_guided_model(name):
    schedule = make_schedule("linear", 100)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(32, 2, generator=g, dtype=torch.float64)
    times, label = time_grid(schedule, 10), torch.tensor(1)
    guided = SAMPLERS[name](Denoiser(classifier_free(toy_model, 2.0), schedule, y=label), x_T, times, generator=g)
    plain = SAMPLERS[name](Denoiser(toy_model, schedule, y=label), x_T, times, generator=torch.Generator().manual_seed(0))
    assert guided.shape == x_T.shape and torch.isfinite(guided).all()
    assert not torch.allclose(guided, plain)  # guidance changed the trajectory


def test_network_treats_minus_one_as_no_label():
    torch.manual_seed(0)
    net = ResidualMLP(2, hidden=16, blocks=1, time_dim=8, num_classes=3)
    x, t = torch.randn(5, 2), torch.rand(5)
    torch.testing.assert_close(net(x, t, torch.full((5,), NO_LABEL)), net(x, t, None))
    assert not torch.allclose(net(x, t, torch.zeros(5, dtype=torch.long)), net(x, t, None))


def test_label_dropout_rate_matches_p():
    y = torch.randint(0, 3, (200_000,), generator=torch.Generator().manual_seed(1))
    dropped = drop_labels(y, 0.1, torch.Generator().manual_seed(2))
    rate = (dropped == NO_LABEL).float().mean().item()
    assert abs(rate - 0.1) < 4 * (0.1 * 0.9 / len(y)) ** 0.5  # within 4 standard errors
    kept = dropped != NO_LABEL
    assert torch.equal(dropped[kept], y[kept])  # kept labels are unchanged
    assert (drop_labels(y, 0.0) == y).all() and (drop_labels(y, 1.0) == NO_LABEL).all()
    with pytest.raises(ValueError):
        drop_labels(y, 1.5)
