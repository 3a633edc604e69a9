"""The image U-Net: shapes for even and odd sizes, zero initialisation, conditioning on t and y,
gradients to every parameter, and that it can fit a fixed batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from denoiselab.models import ARCHITECTURES, UNet, build_model
from denoiselab.models.unet import SelfAttention, group_count

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(base=16, mults=(1, 2, 2), blocks=1, time_dim=16)


def _batch(batch, channels, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, size, size, generator=g)
    return x, torch.rand(batch, generator=g), torch.randn(batch, channels, size, size, generator=g)


def _train(model, x, t, eps, steps, y=None, lr=2e-3):
    """A few Adam steps on the eps-regression loss of one fixed batch; returns the losses."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(x, t, y), eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _unzero(model, seed=0):
    """Random weights in the zero-initialised layers, so every path carries gradient at once."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.abs().any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 16), (1, 28), (3, 32), (1, 7), (3, 5), (1, 13)])
def test_output_shape_even_and_odd_sizes(channels, size):
    torch.manual_seed(0)
    model = _unzero(UNet(channels, num_classes=3, **SMALL))
    x, t, _ = _batch(2, channels, size)
    out = model(x, t, torch.tensor([0, 2]))
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_default_config_and_three_levels_at_28():
    model = UNet(1)  # base 32, mults (1, 2, 2): 28 -> 14 -> 7
    x, t, _ = _batch(2, 1, 28)
    assert model(x, t).shape == x.shape
    assert any(isinstance(m, SelfAttention) for m in model.modules())
    assert not any(isinstance(m, SelfAttention) for m in UNet(1, attention=False).modules())


def test_untrained_predicts_exactly_zero_then_learns():
    torch.manual_seed(0)
    model = UNet(1, **SMALL)
    x, t, eps = _batch(4, 1, 8)
    assert torch.equal(model(x, t), torch.zeros_like(x))  # zero-initialised output conv
    _train(model, x, t, eps, steps=1)
    assert model(x, t).abs().max() > 0


def test_rows_are_independent():
    """GroupNorm, not BatchNorm: a sample's prediction does not depend on its batch mates."""
    torch.manual_seed(0)
    model = _unzero(UNet(1, **SMALL)).eval()
    x, t, _ = _batch(5, 1, 8)
    torch.testing.assert_close(model(x[:2], t[:2]), model(x, t)[:2], rtol=1e-5, atol=1e-6)


def test_time_and_label_conditioning_after_training():
    torch.manual_seed(0)
    model = UNet(1, num_classes=4, **SMALL)
    x, t, eps = _batch(4, 1, 8)
    y = torch.tensor([0, 1, 2, 3])
    # Three steps: the output conv moves first, the zero-initialised block convs next, and only
    # then do the FiLM scale/shift (time and label) reach the output.
    _train(model, x, t, eps, steps=3, y=y)
    model.eval()
    with torch.no_grad():
        base = model(x, t, y)
        assert (model(x, t, (y + 1) % 4) - base).abs().max() > 1e-4  # the label is wired
        assert (model(x, (t + 0.3) % 1, y) - base).abs().max() > 1e-4  # so is time
        unconditional = model(x, t, None)
        torch.testing.assert_close(model(x, t, torch.full((4,), -1)), unconditional, rtol=0, atol=0)
        torch.testing.assert_close(model(x, t, torch.tensor(-1)), unconditional, rtol=0, atol=0)
        assert (unconditional - base).abs().max() > 1e-4
        torch.testing.assert_close(model(x, t, torch.tensor(2)), model(x, t, torch.full((4,), 2)))
        # a scalar t is broadcast over the batch
        torch.testing.assert_close(model(x, torch.tensor(0.5), y), model(x, torch.full((4,), 0.5), y))


@pytest.mark.parametrize("attention", [True, False])
def test_gradient_reaches_every_parameter(attention):
    torch.manual_seed(0)
    model = _unzero(UNet(1, num_classes=3, attention=attention, **SMALL))
    x, t, eps = _batch(3, 1, 8)
    F.mse_loss(model(x, t, torch.tensor([0, 1, -1])), eps).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().any()]
    assert not unused


def test_build_model_unet():
    assert "unet" in ARCHITECTURES
    model = build_model("unet", 3, hidden=8, blocks=2, time_dim=8, num_classes=10, mults=(1, 2), attention=False)
    assert isinstance(model, UNet) and model.levels == 2 and model.label_embed is not None
    assert not any(isinstance(m, SelfAttention) for m in model.modules())
    x, t, _ = _batch(2, 3, 6)
    assert model(x, t, torch.tensor([3, -1])).shape == x.shape


def test_any_base_width_and_input_validation():
    assert group_count(12, 8) == 6 and group_count(3, 8) == 3 and group_count(64, 8) == 8
    model = UNet(1, base=12, mults=(1, 3), time_dim=8)  # 12 and 36 channels: not multiples of 8
    assert model(*_batch(2, 1, 8)[:2]).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"expects \(B, 1, H, W\)"):
        model(torch.zeros(2, 3, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="mults"):
        UNet(1, mults=())


def test_fits_one_noisy_batch():
    """Overfitting a single fixed (x_t, t, eps) batch: the loss falls tenfold in 100 steps."""
    torch.manual_seed(0)
    model = UNet(1, **SMALL)
    x, t, eps = _batch(8, 1, 8)
    losses = _train(model, x, t, eps, steps=100, lr=3e-3)
    assert losses[0] == pytest.approx(F.mse_loss(torch.zeros_like(eps), eps).item())  # starts at E[eps^2]
    assert min(losses[-5:]) < losses[0] / 10
