"""The magnitude-preserving layers and U-Net (Karras et al. 2024, EDM2, Sec. 2; models/magnitude.py,
models/mp_unet.py): every layer keeps unit magnitude (root mean square) on unit-magnitude input
where its plain counterpart does not, forced weight normalisation keeps the stored weights at unit
norm through optimiser steps, the whole network stays O(1) at initialisation, and a run with
model.magnitude_preserving trains, resumes to the bit and samples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from denoiselab.config import ConfigError, load_config
from denoiselab.models import MPUNet, UNet, build_model
from denoiselab.models.magnitude import MPConv, MPFourier, mp_cat, mp_silu, mp_sum, pixel_norm
from denoiselab.models.mp_unet import MPBlock, MPSelfAttention

N = 100_000  # samples behind every magnitude


def magnitude(x: torch.Tensor) -> float:
    """EDM2's magnitude: the root mean square of the elements."""
    return x.double().pow(2).mean().sqrt().item()


def unit_normal(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_mp_linear_and_convolution_keep_unit_magnitude_where_torch_defaults_do_not():
    torch.manual_seed(0)
    x = unit_normal(N // 64 * 4, 256)
    assert magnitude(MPConv(256, 64)(x)) == pytest.approx(1, rel=0.05)
    assert magnitude(nn.Linear(256, 64, bias=False)(x)) < 0.7  # kaiming-uniform(a = sqrt 5): 1 / sqrt 3
    images = unit_normal(8, 16, 32, 32)
    inner = lambda y: y[:, :, 1:-1, 1:-1]  # noqa: E731 - the zero padding lowers the border's magnitude
    assert magnitude(inner(MPConv(16, 32, 3)(images))) == pytest.approx(1, rel=0.05)
    assert magnitude(inner(nn.Conv2d(16, 32, 3, padding=1, bias=False)(images))) < 0.7
    # the learned gain scales the output, and the stored weight's scale does not matter (Eq. 47)
    layer = MPConv(256, 64)
    before = layer.eval()(x[:100])
    with torch.no_grad():
        layer.weight.mul_(3.0)
    assert torch.allclose(layer(x[:100]), before, rtol=1e-3, atol=1e-4)  # up to the epsilon of the norm
    assert torch.allclose(layer(x[:100], gain=2.5), 2.5 * layer(x[:100]), atol=1e-5)


def test_mp_silu_sum_and_fourier_keep_unit_magnitude_where_the_plain_ones_do_not():
    x, y = unit_normal(N), unit_normal(N, seed=1)
    assert magnitude(mp_silu(x)) == pytest.approx(1, rel=0.05)
    assert magnitude(F.silu(x)) == pytest.approx(0.596, rel=0.05)  # Eq. 81's constant
    for t in (0.3, 0.5, 0.8):
        assert magnitude(mp_sum(x, y, t)) == pytest.approx(1, rel=0.05)
        assert magnitude(torch.lerp(x, y, t)) < 0.9
    assert magnitude(x + y) > 1.3
    c = unit_normal(N // 32, seed=2)
    assert magnitude(MPFourier(32)(c)) == pytest.approx(1, rel=0.05)
    assert magnitude(MPFourier(32)(c) / math.sqrt(2)) == pytest.approx(math.sqrt(0.5), rel=0.05)  # plain cosines


def test_mp_cat_keeps_unit_magnitude_and_gives_each_part_its_share_whatever_the_widths():
    a, b = unit_normal(N // 16, 16), unit_normal(N // 16, 48, seed=1)
    for t in (0.3, 0.5):
        joined = mp_cat(a, b, dim=1, t=t)
        assert magnitude(joined) == pytest.approx(1, rel=0.05)
        share = joined[:, 16:].pow(2).sum() / joined.pow(2).sum()  # b's share of the squared magnitude
        assert share.item() == pytest.approx(t**2 / ((1 - t) ** 2 + t**2), rel=0.05)  # Eq. 103
    plain = torch.cat([a, b], dim=1)
    assert (plain[:, 16:].pow(2).sum() / plain.pow(2).sum()).item() == pytest.approx(0.75, rel=0.05)  # by width, not by t


def test_pixel_norm_gives_every_pixel_unit_magnitude_over_its_channels():
    x = 3.0 * unit_normal(4, 16, 8, 8)
    assert magnitude(x) == pytest.approx(3, rel=0.05)
    per_pixel = pixel_norm(x).pow(2).mean(dim=1).sqrt()
    assert torch.allclose(per_pixel, torch.ones_like(per_pixel), atol=1e-3)


@pytest.mark.parametrize("encoder, resample, cin", [(True, "keep", 16), (True, "down", 32), (False, "keep", 48), (False, "up", 32)])
def test_an_mp_block_keeps_unit_magnitude(encoder, resample, cin):
    torch.manual_seed(0)
    block = MPBlock(cin, 32, 64, encoder=encoder, resample=resample)
    with torch.no_grad():  # at initialisation: the embedding's gain is 0 (EDM2 keeps unit magnitude only there)
        x = unit_normal(16, cin, 32, 32)
        out = block(x, mp_silu(unit_normal(16, 64, seed=1)))
    assert magnitude(out[:, :, 2:-2, 2:-2]) == pytest.approx(1, rel=0.05)


def test_mp_self_attention_joins_its_branch_by_the_magnitude_preserving_sum():
    """Attention over uncorrelated positions averages the values, so its branch y is small at
    initialisation (EDM2 does not correct this); mp_sum(x, y, 0.3) gives sqrt((0.49 + 0.09 M[y]^2)
    / 0.58) (Eq. 88 for uncorrelated x, y), where the plain residual x + y would keep 1."""
    torch.manual_seed(0)
    layer = MPSelfAttention(64)
    branch = []
    layer.proj.register_forward_hook(lambda m, i, o: branch.append(magnitude(o)))
    with torch.no_grad():
        out = layer(unit_normal(16, 64, 16, 16))
    assert branch[0] < 0.2
    assert magnitude(out) == pytest.approx(math.sqrt((0.7**2 + 0.3**2 * branch[0] ** 2) / 0.58), rel=0.02)


@pytest.mark.parametrize("fused", [True, False])
def test_forced_weight_normalisation_keeps_the_stored_weights_at_unit_norm_through_optimiser_steps(fused):
    """EDM2 Eq. 66: after every optimiser step (fused, as training's, or not) the stored rows are
    back at unit norm; without it (weight normalisation only in the forward, Eq. 47) they grow,
    which is what makes the effective learning rate decay (EDM2 Sec. 2.3)."""
    x, target = unit_normal(256, 32), unit_normal(256, 16, seed=1)

    def train(forced: bool) -> MPConv:
        torch.manual_seed(0)
        layer = MPConv(32, 16, forced=forced)
        optimiser = torch.optim.AdamW(layer.parameters(), lr=0.05, fused=fused)
        for _ in range(20):
            loss = (layer(x) - target).pow(2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if forced:
                assert torch.allclose(layer.weight.norm(dim=1), torch.ones(16), atol=2e-4)  # 1 / (1 + EPS)
        return layer

    forced, free = train(True), train(False)
    assert free.weight.norm(dim=1).min() > 1.05
    for layer in (forced, free):  # the effective weight has unit rows either way
        assert torch.allclose(layer.effective_weight().norm(dim=1), torch.ones(16), atol=1e-3)


def test_a_copy_of_the_network_keeps_its_forced_weights():
    """The EMA's and the FLOP counter's copies are deep copies: the weight stays a UnitRowsParameter."""
    import copy

    from denoiselab.models.magnitude import UnitRowsParameter

    net = copy.deepcopy(MPUNet(1, base=8, mults=(1, 2), time_dim=8, num_classes=3))
    forced = [p for p in net.parameters() if isinstance(p, UnitRowsParameter)]
    assert len(forced) == sum(1 for p in net.parameters() if p.ndim >= 2)  # every weight; the gains are free


def test_the_mp_unet_is_order_one_at_initialisation_and_predicts_zero():
    torch.manual_seed(0)
    net = MPUNet(3, base=16, mults=(1, 2, 2), blocks=2, time_dim=32, num_classes=10)
    outputs = []
    for module in net.modules():
        if isinstance(module, (MPBlock, MPSelfAttention)):
            module.register_forward_hook(lambda m, i, o: outputs.append(magnitude(o)))
    x, t, y = unit_normal(32, 3, 16, 16), torch.rand(32), torch.randint(-1, 10, (32,))
    with torch.no_grad():
        assert torch.equal(net(x, t, y), torch.zeros_like(x))  # the output gain starts at 0
        assert len(outputs) == 8 + 3 + 11 and all(0.5 < m < 2 for m in outputs), outputs  # down, middle, up
        net.out_gain.fill_(1.0)
        assert 0.3 < magnitude(net(x, t, y)) < 2
        assert 0.3 < magnitude(net(x[:, :, :13, :11], t, y)) < 2  # padded to the levels and cropped back
    assert net(x, t, y).shape == x.shape


def test_the_key_builds_the_mp_unet_and_leaves_the_plain_unet_alone():
    from denoiselab.builders import model_from

    mp = model_from(load_config("digits", ["model.hidden=8", "model.magnitude_preserving=true"]), 1, 10, (1, 8, 8))
    plain = model_from(load_config("digits", ["model.hidden=8"]), 1, 10, (1, 8, 8))
    assert isinstance(mp, MPUNet) and isinstance(plain, UNet)
    assert not any(isinstance(m, nn.GroupNorm) or getattr(m, "bias", None) is not None for m in mp.modules())
    with pytest.raises(ValueError, match="magnitude-preserving network is a unet"):
        build_model("residual-mlp", 2, hidden=8, blocks=1, time_dim=8, magnitude_preserving=True)


@pytest.mark.parametrize(
    "recipe, overrides, message",
    [
        ("spiral", [], "model.magnitude_preserving: the magnitude-preserving network is a unet; model.arch = residual-mlp"),
        ("scenes-text", [], "model.magnitude_preserving: the text-conditioned U-Net is built without it"),
        ("digits", ["schedule.kind=flow", "model.prediction=velocity", "train.objective=meanflow", "train.timesteps=logit-normal",
                    "sample.sampler=meanflow", "sample.grid=time-uniform", "sample.steps=1"], "meanflow's second time input"),
    ],
)  # fmt: skip
def test_the_key_is_refused_where_there_is_no_mp_network_to_build(recipe, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(recipe, [*overrides, "model.magnitude_preserving=true"])


def test_the_cli_refuses_it_in_one_line(tmp_path, capsys):
    from conftest import assert_refused_in_one_line

    out = tmp_path / "run"
    args = ["train", "--config", "spiral", "--set", "model.magnitude_preserving=true", "--out", str(out), "--no-progress"]
    assert_refused_in_one_line(args, capsys, "model.magnitude_preserving: the magnitude-preserving network is a unet", out)


TINY_MP = ["model.magnitude_preserving=true", "model.hidden=8", "model.time_dim=16", "train.batch_size=32", "train.threads=1"]


def test_a_run_with_the_key_trains_resumes_bit_exactly_and_samples(tmp_path, one_thread):
    from conftest import assert_resumes_bit_exactly

    from denoiselab.runs import load_run, sample_points
    from denoiselab.runs.folder import RunFolder

    cfg = load_config("digits", [*TINY_MP, "train.steps=60", "train.checkpoint_every=20", "train.warmup_steps=5", "train.lr=5e-3"])
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=25)
    run = load_run(tmp_path / "A", device="cpu")
    assert isinstance(run.model, MPUNet)
    assert run.model.out_gain.item() != 0  # the output gain learned from 0
    losses = RunFolder(tmp_path / "A").read_losses()
    assert len(losses) == 60 and losses[-20:].mean() < 0.8 * losses[:5].mean()  # it learns (eps loss ~1 at the start)
    x = sample_points(run, n=6, steps=4, label=3, seed=0)
    assert x.shape[0] == 6 and torch.isfinite(torch.as_tensor(x)).all()
    for conv in (m for m in run.model.modules() if isinstance(m, MPConv)):  # the EMA of unit rows: near unit rows
        norms = torch.linalg.vector_norm(conv.weight.detach().flatten(1), dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=0.05), norms
