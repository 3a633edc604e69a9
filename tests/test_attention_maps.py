"""Cross-attention maps (models/attention_maps.py, runs/prompt_attention.py): what is captured are
probabilities (every pixel's attention over the tokens sums to 1, padding gets none), capturing
changes no output bit, and a map lies where the image reads the word, the right way round after
upsampling (a transposed or flipped map would put the left object's word at the top or right)."""

from __future__ import annotations

import pytest
import torch

from denoiselab.guidance import classifier_free
from denoiselab.models.attention_maps import CrossAttentionRecorder
from denoiselab.models.text_unet import TextConditionedUNet
from denoiselab.models.unet import CrossAttention, UNet
from denoiselab.runs.prompt_attention import AttentionOverSteps
from denoiselab.samplers import SAMPLERS, Denoiser
from denoiselab.schedules import make_schedule
from denoiselab.text.encoder import TextCondition, TextEncoder

LENGTH = 8


def _text_unet(seed: int = 0) -> TextConditionedUNet:
    torch.manual_seed(seed)
    unet = UNet(3, base=8, mults=(1, 2, 2), time_dim=16, text_dim=16, cross_levels=(1, 2))
    model = TextConditionedUNet(unet, TextEncoder(vocab_size=20, length=LENGTH, width=16, layers=1, heads=2))
    # The attention projections, the blocks' last convolutions and the output start at zero (an
    # untrained U-Net predicts 0 whatever it reads): give them weights, so the attention really
    # reaches the output and any change to it would show.
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def _ids() -> torch.Tensor:
    """Two captions of 5 and 3 tokens (PAD = 0 after them) and an empty one (the null condition)."""
    return torch.tensor([[5, 6, 7, 8, 9, 0, 0, 0], [4, 3, 2, 0, 0, 0, 0, 0], [0] * LENGTH])


def test_captured_maps_are_probabilities_over_the_tokens(one_thread):
    model, ids = _text_unet(), _ids()
    x, t = torch.randn(3, 3, 16, 16), torch.full((3,), 0.5)
    with torch.no_grad(), CrossAttentionRecorder() as recorder:
        model(x, t, ids)
    # Cross-attention after the blocks of levels 1 and 2 (8 x 8, 4 x 4) and in the middle (4 x 4).
    assert recorder.resolutions() == {(8, 8): 3, (4, 4): 4}
    real = ids > 0
    for layer in recorder.layers:
        assert layer.present.tolist() == [True, True, False]
        kept = layer.probs[layer.present]  # (2, h w, L)
        torch.testing.assert_close(kept.sum(-1), torch.ones(kept.shape[:2]), atol=1e-6, rtol=0)
        assert torch.all(kept.masked_select(~real[:2, None, :].expand_as(kept)) == 0)  # no attention to padding
    maps = recorder.maps((16, 16))
    assert maps.shape == (2, LENGTH, 16, 16)  # the empty caption has no map
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 16, 16), atol=1e-5, rtol=0)
    coarse = recorder.maps((16, 16), resolution=(4, 4))
    torch.testing.assert_close(coarse.sum(1), torch.ones(2, 16, 16), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"no cross-attention layer attends at \(2, 2\)"):
        recorder.maps((16, 16), resolution=(2, 2))


def test_the_recorder_sees_only_its_own_calls(one_thread):
    model, ids = _text_unet(), _ids()
    x, t = torch.randn(3, 3, 16, 16), torch.full((3,), 0.5)
    with torch.no_grad():
        model(x, t, ids)  # outside any recorder: nothing is kept anywhere
        with CrossAttentionRecorder() as outer:
            with CrossAttentionRecorder() as inner:
                model(x, t, ids)
            assert len(inner.layers) == 7 and outer.layers == []
            model(x, t, ids)
        assert len(outer.layers) == 7


@pytest.mark.parametrize("sampler", ["ddpm", "heun"])
def test_capturing_does_not_change_the_sample(sampler, one_thread):
    """Bit for bit, under classifier-free guidance (the conditional and unconditional rows in one
    call), with the sampler's own noise (ddpm) and with two calls per step (heun)."""
    model, schedule = _text_unet(), make_schedule("linear", 1000)
    ids = _ids()[:2]
    times = torch.linspace(1, 0, 6, dtype=torch.float64) * 0.999
    times[-1] = 0.0

    def draw(capture):
        model_fn = classifier_free(lambda x, t, y=None: model(x, t, y), 3.0)
        records = []
        on_step = records.append
        if capture is not None:
            model_fn = capture.wrap(model_fn)
            on_step = lambda r: (records.append(r), capture.step_done(r))  # noqa: E731
        x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            x0 = SAMPLERS[sampler](Denoiser(model_fn, schedule, "eps", ids), x_T, times, on_step=on_step, generator=torch.Generator().manual_seed(2))
        return x0, records

    plain, plain_records = draw(None)
    capture = AttentionOverSteps((16, 16))
    captured, captured_records = draw(capture)
    assert torch.equal(plain, captured)
    assert all(torch.equal(a.x_t, b.x_t) and torch.equal(a.x0, b.x0) for a, b in zip(plain_records, captured_records))
    assert len(capture.steps) == len(times) - 1 and capture.resolution == (8, 8) and capture.layers == 3
    for maps in capture.steps:
        assert maps.shape == (2, LENGTH, 16, 16)  # the conditional rows only
        torch.testing.assert_close(maps.sum(1), torch.ones(2, 16, 16), atol=1e-5, rtol=0)


def _left_reader() -> CrossAttention:
    """A cross-attention layer built by hand: its queries are the (normalised) brightness of the
    pixel, token 0's key points the same way and token 1's the opposite way, so bright pixels
    attend to token 0 and dark ones to token 1."""
    layer = CrossAttention(channels=4, context_dim=4, groups=1)
    with torch.no_grad():
        layer.q.weight.zero_()
        layer.q.weight[:, 0, 0, 0] = 3.0
        layer.q.bias.zero_()
        layer.kv.weight.zero_()
        layer.kv.weight[:4] = torch.eye(4)
        layer.kv.bias.zero_()
    return layer


def test_a_word_map_lies_where_the_image_reads_the_word(one_thread):
    """An object in the two left columns of a 4 x 4 grid: token 0's map, upsampled to 16 x 16,
    holds nearly all its mass in the left half and splits evenly between top and bottom."""
    x = torch.full((1, 4, 4, 4), 0.0)
    x[0, 0] = -1.0
    x[0, 0, :, :2] = 1.0  # bright on the left
    tokens = torch.stack([torch.ones(4), -torch.ones(4), torch.zeros(4)])[None]
    text = TextCondition(tokens, torch.tensor([[True, True, False]]), tokens[:, :2].mean(1))
    with torch.no_grad(), CrossAttentionRecorder() as recorder:
        _left_reader()(x, text)
    maps = recorder.maps((16, 16))[0]  # (3 tokens, 16, 16)
    word, other = maps[0], maps[1]
    # At 4 x 4 the maps are 1 on their two columns and 0 (e^-24) on the others; bilinear
    # upsampling ramps the edge over the 4 pixel columns around it (7/8, 5/8 | 3/8, 1/8 on each
    # row), so 15/16 of the mass stays on the object's side.
    torch.testing.assert_close(word[:, :8].sum() / word.sum(), torch.tensor(15 / 16), atol=1e-6, rtol=0)
    torch.testing.assert_close(other[:, 8:].sum() / other.sum(), torch.tensor(15 / 16), atol=1e-6, rtol=0)
    torch.testing.assert_close(word[:8].sum() / word.sum(), torch.tensor(0.5), atol=1e-6, rtol=0)
    assert torch.all(maps[2] == 0)  # the padding token


def test_odd_sizes_are_cropped_as_the_network_crops_them(one_thread):
    """A 7 x 7 image is padded to 8 x 8 for two halvings: the 2 x 2 maps are upsampled to 8 x 8 and
    cropped back, so the left column of the 2 x 2 grid still covers the left 4 pixel columns."""
    recorder = CrossAttentionRecorder()
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])[None, None]  # (1, 1 head, 4 positions, 2 tokens)
    recorder.record(probs, (2, 2), torch.tensor([True]))
    maps = recorder.maps((7, 7))
    assert maps.shape == (1, 2, 7, 7)
    assert torch.all(maps[0, 0, :, 0] == 1) and torch.all(maps[0, 0, :, 6] == 0)


def test_concurrent_recorders_of_one_network_keep_their_own_layers(one_thread):
    """The playground samples one shared network from several threads: each recorder holds the
    layers of its own thread's calls only (their batch sizes tell them apart)."""
    import threading

    model, ids = _text_unet(), _ids()
    start = threading.Barrier(2)

    def calls(batch: int) -> list[int]:
        start.wait()
        with torch.no_grad(), CrossAttentionRecorder() as recorder:
            for _ in range(3):
                model(torch.randn(batch, 3, 16, 16), torch.full((batch,), 0.5), ids[:batch])
        return [layer.probs.shape[0] for layer in recorder.layers]

    results = {}
    threads = [threading.Thread(target=lambda b=b: results.__setitem__(b, calls(b))) for b in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {1: [1] * 21, 2: [2] * 21}
