"""FLOPs of a training step: torch's FlopCounterMode against the closed form, and run.json's record."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from denoiselab.config import load_config
from denoiselab.runs.folder import RunFolder
from denoiselab.training import train
from denoiselab.training.flops import count_flops, describe_flops, training_step_flops

pytestmark = pytest.mark.usefixtures("one_thread")

B, SIZES = 8, (5, 7, 3)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.Tanh(), nn.Linear(SIZES[1], SIZES[2]))


def matmul(i: int) -> int:
    """A (B, in) x (in, out) product: 2 B in out operations (one multiply and one add each)."""
    return 2 * B * SIZES[i] * SIZES[i + 1]


def test_forward_of_an_mlp_is_two_b_in_out_per_layer():
    net, x = mlp(), torch.randn(B, SIZES[0])
    assert count_flops(lambda: net(x)) == matmul(0) + matmul(1)


def test_forward_and_backward_is_three_products_per_layer_but_the_first():
    """Backward of y = x W: the weight's gradient x^T dy and the input's dy W^T, each a product
    of the forward's size; the input of the first layer needs no gradient, so it has two."""
    net, x = mlp(), torch.randn(B, SIZES[0])
    assert count_flops(lambda: net(x).square().sum().backward()) == 2 * matmul(0) + 3 * matmul(1)
    x.requires_grad_(True)
    assert count_flops(lambda: net(x).square().sum().backward()) == 3 * (matmul(0) + matmul(1))


def test_a_training_step_is_counted_without_touching_the_state():
    """The count runs the objective's forward and backward on a copy: the model's gradients, the
    global random state and the caller's generator are untouched."""
    net = mlp()
    x_all = torch.randn(20, SIZES[0])

    def objective(model, x0, generator, y=None, time_sampler=None):
        noise = torch.randn(x0.shape[0], SIZES[2], generator=generator)
        return (model(x0) - noise + 0.1 * torch.randn(x0.shape[0], SIZES[2])).square().mean()

    before = torch.random.get_rng_state()
    flops = training_step_flops(net, objective, x_all, None, B)
    assert flops == 2 * matmul(0) + 3 * matmul(1)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(p.grad is None for p in net.parameters())


def test_describe_flops():
    assert describe_flops(11.8e9) == "11.8 GFLOP"
    assert describe_flops(4.72e13) == "47.2 TFLOP"
    assert describe_flops(12) == "12 FLOP"


def test_train_records_the_step_flops_and_the_total(tmp_path):
    cfg = load_config("quick", ["train.steps=6", "train.checkpoint_every=3", "train.warmup_steps=1", "train.batch_size=16", "model.hidden=8"])
    lines = []
    train(cfg, tmp_path / "run", progress=False, log=lines.append)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["train_flops_per_step"] > 0
    assert info["train_flops"] == info["train_flops_per_step"] * 6
    assert any(line.startswith("one training step: ") for line in lines)
    assert describe_flops(info["train_flops"]) in lines[-1]
    assert RunFolder(tmp_path / "run").read_info()["train_flops"] == info["train_flops"]
