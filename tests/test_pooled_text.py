"""text.conditioning = pooled: the U-Net reads the caption only through its pooled vector in the
time embedding (no cross-attention layer at all), so the words' own vectors cannot reach it; the
recipe key is checked like every other."""

from __future__ import annotations

import pytest
import torch

from denoiselab.builders import text_model_from
from denoiselab.config import ConfigError, load_config
from denoiselab.models.unet import CrossAttention, UNet
from denoiselab.text.encoder import TextCondition


def _unet(cross_attention: bool) -> UNet:
    torch.manual_seed(0)
    net = UNet(3, base=8, mults=(1, 2), time_dim=16, text_dim=8, cross_attention=cross_attention)
    with torch.no_grad():  # the zero-initialised layers get weights, so every path reaches the output
        for p in net.parameters():
            if not p.any():
                torch.nn.init.normal_(p, std=0.2)
    return net.eval()


def test_pooled_only_reads_the_pooled_vector_and_nothing_else(one_thread):
    tokens = torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    pooled = torch.randn(2, 8)
    other_tokens = tokens + torch.randn(2, 4, 8)  # other words, the same pooled vector
    x, t = torch.randn(2, 3, 8, 8), torch.full((2,), 0.3)
    pooled_net, cross_net = _unet(False), _unet(True)
    assert not any(isinstance(m, CrossAttention) for m in pooled_net.modules())
    with torch.no_grad():
        a = pooled_net(x, t, text=TextCondition(tokens, mask, pooled))
        b = pooled_net(x, t, text=TextCondition(other_tokens, mask, pooled))
        c = pooled_net(x, t, text=TextCondition(tokens, mask, pooled + 1))
        assert torch.equal(a, b) and not torch.allclose(a, c)
        # The cross-attention U-Net reads the words themselves.
        assert not torch.allclose(cross_net(x, t, text=TextCondition(tokens, mask, pooled)), cross_net(x, t, text=TextCondition(other_tokens, mask, pooled)))


def test_the_recipe_key_builds_the_network_without_cross_attention():
    cfg = load_config("scenes-text", ["text.conditioning=pooled", "model.hidden=8"])
    model = text_model_from(cfg, 3, vocab_size=30)
    assert not any(isinstance(m, CrossAttention) for m in model.modules()) and model.unet.text_embed.in_features == cfg.text.width
    with pytest.raises(ConfigError, match="text.conditioning"):
        load_config("scenes-text", ["text.conditioning=tokens"])
    with pytest.raises(ConfigError, match=r"text.cross_levels: text.conditioning = pooled has no cross-attention to place; leave it at 1"):
        load_config("scenes-text", ["text.conditioning=pooled", "text.cross_levels=2"])
