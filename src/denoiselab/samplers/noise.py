"""Per-sample random streams: the noise of sample i depends on (seed, i) alone, never on the batch.

One generator seeded once and read by a batch of n samples gives sample i noise that depends on
n and on i's place in the batch, so drawing 10 000 samples in batches of 500, or over two
processes, changes every sample.  EDM (Karras et al. 2022, NVlabs/edm generate.py,
StackedRandomGenerator) gives each sample its own torch.Generator, seeded by its index: right,
but one Python call per sample per step, which on a point run costs more than the network (a
2-D spiral draw of 10 000 points: BENCHMARKS.md, "Per-sample seeds").  Here a sample's stream is
counter-based (philox.py): the words of sample i at its d-th draw, position j, are
Philox4x32-10 of the counter (i, stream, d, j) under the key seed, computed for the whole batch
in one vectorised call.  Any range of samples [start, stop) gets the numbers the full draw gives
those samples, so a batch, or a process of several, draws exactly its own share.

``SampleNoise`` is passed where a sampler takes ``generator``; ``normal_like`` (stepping's
``gaussian_like``) and ``uniform`` read it like a torch.Generator.  A draw's first dimension holds
the batch's samples, one row each or ``rows`` consecutive rows each (twisted SMC's K particles
of one requested sample are one unit: smc.py).  Every sample of a batch takes part in every draw,
so the d-th draw of a sample is the same draw in any batch: samplers must draw a fixed sequence,
not one that depends on the values (smc.py draws its resampling uniforms at every step for this).
"""

from __future__ import annotations

import math

import torch

from ..philox import normal_from_words, philox4x32, uniform_from_words

MASK64 = 2**64 - 1
# Streams of one sample: the sampler's (x_T, then every step's noise), and replacement guidance's
# noising of the known values (gradient_guidance.replacement), apart from it.
SAMPLER_STREAM = 0
REPLACEMENT_STREAM = 1


class SampleNoise:
    """The random streams of samples start, start + 1, ..., start + count - 1 of a draw seeded
    ``seed`` (count None: one sample per row of each draw, from ``start``).  Generator-like: it
    counts its own draws, so make one per batch and pass it to one sampler call."""

    def __init__(self, seed: int, start: int = 0, count: int | None = None, *, stream: int = SAMPLER_STREAM):
        if start < 0 or (count is not None and count < 1) or start + (count or 1) > 2**32:
            raise ValueError(f"sample indices [{start}, {start + (count or 1)}) must lie in [0, 2^32)")
        self.seed, self.start, self.count, self.stream = int(seed), int(start), count, int(stream)
        self.draws = 0  # draws made so far: the next one is draw number self.draws of every sample

    def spawn(self, stream: int) -> SampleNoise:
        """The same samples' stream ``stream``, from its first draw."""
        return SampleNoise(self.seed, self.start, self.count, stream=stream)

    def __repr__(self) -> str:
        stop = "" if self.count is None else self.start + self.count
        return f"SampleNoise(seed={self.seed}, samples [{self.start}, {stop}), stream {self.stream}, {self.draws} draws)"

    def _words(self, shape, device) -> tuple[torch.Tensor, tuple[int, int]]:
        """The next draw's 32-bit words, (units, blocks * 4) int64 on ``device``, one per value of
        a tensor of ``shape`` (rounded up to whole blocks of four) whose first dimension holds the
        samples' rows, and (units, values per unit)."""
        shape = tuple(int(s) for s in shape)
        units = self.count if self.count is not None else shape[0]
        if shape[0] % units:
            raise ValueError(f"a draw of {shape[0]} rows for {units} samples: expected a whole number of rows per sample")
        per_unit = math.prod(shape) // units
        blocks = -(-per_unit // 4)  # four words a block
        # The counter (sample, stream, draw, block): the sample's index down the rows, the block
        # across, the stream and the draw plain integers (philox4x32 broadcasts them).
        index = torch.arange(self.start, self.start + units, dtype=torch.int64, device=device)[:, None]
        position = torch.arange(blocks, dtype=torch.int64, device=device)[None, :]
        seed = self.seed & MASK64
        words = philox4x32((index, self.stream, self.draws, position), (seed & 0xFFFFFFFF, seed >> 32))
        self.draws += 1
        return torch.stack(torch.broadcast_tensors(*words), dim=-1).reshape(units, blocks * 4), (units, per_unit)

    def normal(self, shape, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
        """Standard normals of ``shape``: each sample's values from its own stream."""
        words, (units, per_unit) = self._words(shape, device)
        used = 2 * -(-per_unit // 2)  # a pair of words gives a pair of normals
        first, second = normal_from_words(words[:, 0:used:2], words[:, 1:used:2], dtype)
        return torch.stack((first, second), dim=-1).reshape(units, used)[:, :per_unit].reshape(tuple(shape))

    def uniform(self, shape, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """Uniforms in [0, 1) of ``shape``: each sample's values from its own stream."""
        words, (units, per_unit) = self._words(shape, device)
        return uniform_from_words(words[:, :per_unit], dtype).reshape(tuple(shape))


def normal_like(x: torch.Tensor, generator) -> torch.Tensor:
    """Standard normal noise of x's shape, dtype and device from ``generator``: a SampleNoise, a
    torch.Generator (drawn on its own device, then moved), or None (torch's global generator)."""
    if isinstance(generator, SampleNoise):
        return generator.normal(x.shape, x.dtype, x.device)
    if generator is None:
        return torch.randn(x.shape, dtype=x.dtype, device=x.device)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def uniform(shape, generator, device=None) -> torch.Tensor:
    """float64 uniforms in [0, 1) of ``shape`` on ``device`` from ``generator`` (as normal_like)."""
    if isinstance(generator, SampleNoise):
        return generator.uniform(shape, torch.float64, device)
    gen_device = "cpu" if generator is None else generator.device
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64, device=gen_device).to(device)
