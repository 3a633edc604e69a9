"""The U-Net's second time (models/unet.py, interval=True), so that MeanFlow and shortcut models
train on images: with the second time fixed at r = t the network is an ordinary U-Net of the same
shape (its interval embedding a constant folded into the time embedding's bias), the second time
changes the output otherwise, and a digits MeanFlow and shortcut run train 2 steps and sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denoiselab import load_config, train
from denoiselab.config import ConfigError
from denoiselab.models import UNet
from denoiselab.runs import load_run, sample_points

SHAPE = dict(base=8, mults=(1, 2), blocks=1, time_dim=16, num_classes=3)


def _pair():
    torch.manual_seed(0)
    two = UNet(1, interval=True, **SHAPE)
    one = UNet(1, **SHAPE)
    for p in two.parameters():  # every weight non-zero: the zero-initialised output layer would hide differences
        torch.nn.init.normal_(p, std=0.2)
    return two, one


def test_with_the_second_time_fixed_the_net_is_an_ordinary_unet_of_the_same_shape(one_thread):
    two, one = _pair()
    state = two.state_dict()
    extra = {k for k in state if k.startswith("interval_embed.")}
    assert extra and set(state) - extra == set(one.state_dict())  # the same layers, plus the interval's embedding
    one.load_state_dict({k: v for k, v in state.items() if k not in extra})
    with torch.no_grad():
        one.time_embed[-1].bias += two.interval_embed(torch.zeros(1))[0]  # r = t: a constant, t - r = 0
        x, t, y = torch.randn(5, 1, 8, 8), torch.rand(5), torch.tensor([0, 1, 2, -1, 1])
        ordinary = one(x, t, y)
        torch.testing.assert_close(two(x, torch.stack([t, t], dim=1), y), ordinary)
        torch.testing.assert_close(two(x, t, y), ordinary)  # one time given: r = t
        other = two(x, torch.stack([t, t * 0.5], dim=1), y)
    assert (other - ordinary).abs().max() > 1e-3  # the second time is read
    with pytest.raises(ValueError, match="one time per sample"):
        one(x, torch.stack([t, t], dim=1), y)


@pytest.mark.parametrize("objective", ["meanflow", "shortcut"])
def test_a_digits_run_of_two_times_trains_two_steps_and_samples(objective, tmp_path, one_thread):
    over = [f"train.objective={objective}", "sample.sampler=meanflow", "sample.steps=1", "train.steps=2", "train.batch_size=16",
            "model.hidden=8", "train.warmup_steps=1", "sample.n=8"]  # fmt: skip
    train(load_config("digits-flow", over), tmp_path / objective, progress=False, log=lambda *a: None)
    run = load_run(tmp_path / objective)
    assert run.model.interval_embed is not None
    for steps in (1, 2):
        x = sample_points(run, sampler="meanflow", steps=steps, n=6, seed=0, label=3)
        assert x.shape == (6, 1, 8, 8) and np.isfinite(x).all()


def test_a_network_without_a_second_time_is_refused_for_meanflow():
    with pytest.raises(ConfigError, match="residual-mlp and unet only, not simple-mlp"):
        load_config("spiral-meanflow", ["model.arch=simple-mlp"])
