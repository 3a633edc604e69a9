"""Networks: shapes for 1D/2D points, label conditioning, embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab.models import (
    POINT_ARCHITECTURES,
    FourierFeatures,
    LabelEmbedding,
    ResidualMLP,
    SimpleMLP,
    SinusoidalEmbedding,
    build_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(batch, dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g), torch.rand(batch, generator=g)


@pytest.mark.parametrize("arch", POINT_ARCHITECTURES)
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_output_shape(arch, dim, batch):
    torch.manual_seed(0)
    model = build_model(arch, dim, hidden=16, blocks=2, time_dim=8)
    x, t = _inputs(batch, dim)
    out = model(x, t)
    assert out.shape == (batch, dim) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("fourier", [0, 3])
def test_residual_mlp_depends_on_x_and_t(fourier):
    torch.manual_seed(0)
    model = ResidualMLP(2, hidden=16, blocks=1, time_dim=8, fourier=fourier)
    x, t = _inputs(5, 2)
    base = model(x, t)
    assert not torch.allclose(model(x, t + 0.1), base)
    assert not torch.allclose(model(x + 0.1, t), base)
    # rows are independent (no batch statistics)
    torch.testing.assert_close(model(x[:2], t[:2]), base[:2])


def test_blocks_zero_and_build_model_errors():
    out = ResidualMLP(2, hidden=8, blocks=0, time_dim=4)(*_inputs(3, 2))
    assert out.shape == (3, 2)
    with pytest.raises(ValueError, match="unknown model 'transformer'"):
        build_model("transformer", 2, hidden=8, blocks=1, time_dim=4)


@pytest.mark.parametrize("cls", [ResidualMLP, SimpleMLP])
@pytest.mark.parametrize("dim", [1, 2])
def test_labels(cls, dim):
    torch.manual_seed(0)
    kwargs = dict(hidden=16, num_classes=3) | ({"time_dim": 8} if cls is ResidualMLP else {})
    model = cls(dim, **kwargs)
    x, t = _inputs(6, dim)
    uncond = model(x, t)  # y None: the "no label" embedding
    assert uncond.shape == (6, dim)
    torch.testing.assert_close(model(x, t, torch.full((6,), -1)), uncond)  # -1 means no label
    torch.testing.assert_close(model(x, t, torch.full((6,), 3)), uncond)  # index C is "no label" too
    y = torch.tensor([0, 1, 2, -1, 0, 1])
    mixed = model(x, t, y)
    assert mixed.shape == (6, dim)
    torch.testing.assert_close(mixed[3], uncond[3])
    assert not torch.allclose(mixed[0], uncond[0])
    assert not torch.allclose(model(x, t, torch.zeros(6, dtype=torch.long)), model(x, t, torch.ones(6, dtype=torch.long)))
    # a single label broadcasts over the batch
    torch.testing.assert_close(model(x, t, torch.tensor(1)), model(x, t, torch.ones(6, dtype=torch.long)))


def test_unconditional_model_has_no_label_table():
    assert ResidualMLP(2, hidden=8, time_dim=4).label_embed is None
    assert SimpleMLP(2, hidden=8).label_embed is None
    table = LabelEmbedding(4, 5)
    assert table(None, 3, "cpu").shape == (3, 5)
    assert table.table.num_embeddings == 5


def test_fourier_features():
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    ff = FourierFeatures(2, 4, max_freq=8.0)
    out = ff(x)
    assert ff.out_dim == 2 * (1 + 2 * 4) == out.shape[1]
    freqs = torch.logspace(0, math.log10(8.0), 4)
    torch.testing.assert_close(ff.freqs, freqs)
    angles = (x[:, :, None] * freqs).flatten(1)  # coordinate-major: x0 f0..f3, x1 f0..f3
    torch.testing.assert_close(out, torch.cat([x, torch.sin(angles), torch.cos(angles)], 1))
    # n_freq = 0 passes x through unchanged
    ident = FourierFeatures(2, 0)
    assert ident.out_dim == 2 and ident(x) is x
    # 1D data
    assert FourierFeatures(1, 3)(torch.zeros(5, 1)).shape == (5, 7)
    # buffers, not parameters (so EMA copies them and checkpoints skip them)
    assert not list(ff.parameters()) and "freqs" not in ff.state_dict()


def test_sinusoidal_embedding():
    emb = SinusoidalEmbedding(8)
    t = torch.tensor([0.0, 0.5, 1.0])
    out = emb(t)
    assert out.shape == (3, 8)
    torch.testing.assert_close(out[0], torch.cat([torch.zeros(4), torch.ones(4)]))  # sin 0, cos 0
    # frequency 1 at t = k / T with TIME_SCALE = 1000: sin(500)
    assert out[1, 0].item() == pytest.approx(math.sin(500.0), abs=1e-4)
    torch.testing.assert_close(out[:, :4] ** 2 + out[:, 4:] ** 2, torch.ones(3, 4))
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)
    with pytest.raises(ValueError, match="even"):
        ResidualMLP(2, time_dim=5)
