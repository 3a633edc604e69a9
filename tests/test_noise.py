"""Per-sample random streams (samplers/noise.py) and the counter-based generator under them
(philox.py): Random123's known answers, exact arithmetic, the normal law, and the same numbers
for a sample in any batch or range."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from denoiselab.philox import _cos_sin_quarter, _log, normal_from_words, philox4x32, uniform_from_words
from denoiselab.samplers.noise import REPLACEMENT_STREAM, SampleNoise, normal_like, uniform

M32 = 0xFFFFFFFF


def _words(*values: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor([v], dtype=torch.int64) for v in values)


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # Random123's kat_vectors, philox4x32 with 10 rounds
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((M32, M32, M32, M32), (M32, M32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ],
)
def test_philox4x32_10_gives_random123s_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox4x32(_words(*counter), key)) == expected


def test_the_log_and_the_quarter_turn_cos_sin_are_accurate_to_double_precision():
    u = torch.tensor([2.0**-32, 1e-9, 0.3, 0.5, math.sqrt(0.5), 0.75, 1.0 - 2.0**-32, 1.0], dtype=torch.float64)
    assert torch.allclose(_log(u), torch.tensor([math.log(v) for v in u.tolist()], dtype=torch.float64), rtol=1e-15, atol=1e-16)
    phi = torch.linspace(0.0, math.pi / 2, 1001, dtype=torch.float64)[:-1]
    cos, sin = _cos_sin_quarter(phi)
    assert float((cos - torch.cos(phi)).abs().max()) < 1e-15 and float((sin - torch.sin(phi)).abs().max()) < 1e-15


def test_a_words_normals_do_not_depend_on_the_tensor_it_sits_in():
    """Vectorised and scalar kernels must not meet different rounding: the same words give the
    same normals alone, and at an odd place in a long tensor."""
    g = torch.Generator().manual_seed(0)
    words = torch.randint(0, 2**32, (2, 100_003), generator=g, dtype=torch.int64)
    z0, z1 = normal_from_words(words[0], words[1])
    for i in (0, 5, 99_999, 100_002):
        a, b = normal_from_words(words[0, i : i + 1], words[1, i : i + 1])
        assert torch.equal(a, z0[i : i + 1]) and torch.equal(b, z1[i : i + 1])


def test_the_normals_follow_the_standard_normal_law():
    z = SampleNoise(7, 0, 512).normal((512, 256), torch.float64).flatten().numpy()
    assert abs(z.mean()) < 4 / math.sqrt(len(z)) and abs(z.var() - 1) < 4 * math.sqrt(2 / len(z))
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # neighbouring samples' streams are uncorrelated
    rows = SampleNoise(7, 0, 4096).normal((4096, 8), torch.float64).numpy()
    assert abs(np.corrcoef(rows[:-1].ravel(), rows[1:].ravel())[0, 1]) < 4 / math.sqrt(rows[1:].size)


def test_uniforms_lie_in_zero_one_also_in_float32():
    top = torch.tensor([M32, 0], dtype=torch.int64)
    assert uniform_from_words(top, torch.float32).tolist() == [1.0 - 2.0**-24, 0.0]
    assert float(uniform_from_words(top).max()) == 1.0 - 2.0**-32
    u = SampleNoise(1, 0, 1000).uniform((1000, 50)).numpy()
    assert 0 <= u.min() and u.max() < 1 and stats.kstest(u.ravel(), "uniform").pvalue > 1e-3


@pytest.mark.parametrize("rows", [1, 4])
def test_a_range_of_samples_draws_the_rows_of_the_full_draw(rows):
    """Draw d of sample i is the same in any batch: three draws of samples [0, 100) against the
    batches [0, 7), [7, 71), ..., each drawing only its own samples (``rows`` per sample, as SMC's
    K particles)."""
    full = SampleNoise(11, 0, 100)
    draws = [full.normal((100 * rows, 3, 2)), full.uniform((100, 1)), full.normal((100 * rows, 5))]
    for start, stop in [(0, 7), (7, 71), (71, 100), (99, 100)]:
        part = SampleNoise(11, start, stop - start)
        got = [part.normal(((stop - start) * rows, 3, 2)), part.uniform((stop - start, 1)), part.normal(((stop - start) * rows, 5))]
        assert torch.equal(got[0], draws[0][start * rows : stop * rows])
        assert torch.equal(got[1], draws[1][start:stop])
        assert torch.equal(got[2], draws[2][start * rows : stop * rows])


def test_streams_differ_by_seed_sample_draw_and_stream():
    noise = SampleNoise(3, 0, 2)
    first, second = noise.normal((2, 16)), noise.normal((2, 16))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first, second)
    assert not torch.equal(first, SampleNoise(4, 0, 2).normal((2, 16)))
    assert not torch.equal(first, SampleNoise(3, 0, 2).spawn(REPLACEMENT_STREAM).normal((2, 16)))
    assert torch.equal(first, SampleNoise(3, 0, 2).normal((2, 16)))  # the same stream again, from its first draw
    assert torch.equal(first, SampleNoise(3, 0).normal((2, 16)))  # count None: one sample per row


def test_a_draw_with_rows_that_are_not_a_whole_number_per_sample_is_refused():
    with pytest.raises(ValueError, match="whole number of rows per sample"):
        SampleNoise(0, 0, 3).normal((4, 2))
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\^32\)"):
        SampleNoise(0, -1, 3)


def test_a_torch_generator_still_draws_as_torch_randn_does():
    x = torch.zeros(5, 3)
    assert torch.equal(normal_like(x, torch.Generator().manual_seed(2)), torch.randn(5, 3, generator=torch.Generator().manual_seed(2)))
    u = uniform((4, 1), torch.Generator().manual_seed(2))
    assert torch.equal(u, torch.rand(4, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
