"""Cross-attention in the U-Net: the null caption is the unconditional path, guidance at s = 1 is
the conditional model, and a U-Net without text is unchanged (tests/test_golden.py)."""

from __future__ import annotations

import pytest
import torch

from denoiselab.guidance import classifier_free, drop_labels
from denoiselab.models.text_unet import TextConditionedUNet
from denoiselab.models.unet import CrossAttendedBlock, UNet
from denoiselab.text.encoder import TextEncoder

LENGTH = 6


def _model(seed: int = 0) -> TextConditionedUNet:
    torch.manual_seed(seed)
    net = TextConditionedUNet(UNet(3, base=8, mults=(1, 2), time_dim=16, text_dim=16), TextEncoder(12, LENGTH, width=16, layers=1, heads=2))
    with torch.no_grad():  # the zero-initialised projections would hide the text path: make every weight count
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def _inputs(batch: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 8, 8, generator=g)
    t = torch.rand(batch, generator=g)
    ids = torch.tensor([[2, 3, 4, 0, 0, 0], [5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 11, 2], [3, 0, 0, 0, 0, 0]])[:batch]
    return x, t, ids


def test_the_text_reaches_the_output():
    net = _model()
    x, t, ids = _inputs()
    assert not torch.allclose(net(x, t, ids), net(x, t, None), atol=1e-4)
    assert any(isinstance(m, CrossAttendedBlock) for m in net.unet.up)


@pytest.mark.parametrize("null", [0, -1])
def test_an_all_masked_caption_is_the_unconditional_path(null):
    """All PAD (0) or all "no label" (-1): bit for bit the U-Net called without text."""
    net = _model()
    x, t, ids = _inputs()
    empty = torch.full_like(ids, null)
    assert torch.equal(net(x, t, empty), net(x, t, None))
    # Mixed in one batch with real captions, the empty rows stay the unconditional ones.
    mixed = ids.clone()
    mixed[1] = null
    out, uncond = net(x, t, mixed), net(x, t, None)
    assert torch.equal(out[1], uncond[1]) and not torch.allclose(out[0], uncond[0], atol=1e-4)


def test_classifier_free_guidance_on_text():
    """s = 1 is the conditional model exactly, s = 0 the unconditional one; s = 3 follows Ho & Salimans (2022), Eq. 6."""
    net = _model()
    x, t, ids = _inputs()
    cond, uncond = net(x, t, ids), net(x, t, None)
    assert torch.equal(classifier_free(net, 1.0)(x, t, ids), cond)
    assert torch.equal(classifier_free(net, 0.0)(x, t, ids), uncond)
    assert torch.allclose(classifier_free(net, 3.0)(x, t, ids), uncond + 3 * (cond - uncond), atol=1e-5)


def test_one_prompt_is_broadcast_over_the_batch():
    net = _model()
    x, t, ids = _inputs()
    assert torch.equal(classifier_free(net, 1.0)(x, t, ids[:1]), net(x, t, ids[:1].expand(4, -1)))


def test_caption_dropout_drops_whole_captions():
    ids = torch.arange(1, 1 + 200 * LENGTH).reshape(200, LENGTH)
    dropped = drop_labels(ids, 0.3, torch.Generator().manual_seed(0))
    gone = (dropped == -1).all(1)
    assert ((dropped == -1).any(1) == gone).all() and torch.equal(dropped[~gone], ids[~gone])
    assert 0.15 < gone.float().mean() < 0.45


def test_the_encoder_is_frozen_unless_asked():
    net = _model()
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for p in net.unet.parameters())
    trained = TextConditionedUNet(UNet(3, base=8, mults=(1, 2), text_dim=16), TextEncoder(12, LENGTH, width=16), train_encoder=True)
    assert all(p.requires_grad for p in trained.encoder.parameters())


def test_a_unet_without_text_refuses_text_and_builds_no_text_layers():
    plain = UNet(3, base=8, mults=(1, 2))
    assert not any("cross" in name or "text" in name for name, _ in plain.named_parameters())
    net = _model()
    x, t, ids = _inputs()
    with pytest.raises(ValueError, match="without text_dim"):
        plain(x, t, text=net.encoder(ids))
