"""A plan's samples drawn by several processes (torchrun), the file or the metrics made by rank 0.

Every sample has its own seed (sampling.py), so samples [r n / W, (r + 1) n / W) drawn by process
r of W and concatenated in rank order are, to the bit, the n samples one process draws
(``draw_share``, ``gather_drawn``): `torchrun ... -m denoiselab sample` writes the file one
process writes.

A measurement (``evaluate``) draws several plans between its metrics: a sample set per repeat, a
set per class, the latent run's latents.  Rank 0 runs the measurement as one process would, with
``shared_draws``: each ``sampling.sample`` it makes is sent to the other processes, which draw
their shares of it (``serve_draws``) while rank 0 draws its own, and rank 0 scores the gathered
samples.  What does not sample (the classifier, the reference draws and their floors, the data's
entropy) is computed by rank 0 alone, so the metrics are the one-process metrics exactly.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from types import MappingProxyType

import numpy as np
import torch
import torch.distributed as dist

from ..smc import ParticleRecord, concatenate_records
from .load import Run
from .plan import SamplingPlan
from .sampling import SHARED_DRAWS, Drawn, batch_count, batch_ranges, sample_range


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Process ``rank``'s samples [start, stop) of ``n`` (empty where n < world)."""
    return n * rank // world, n * (rank + 1) // world


def draw_share(run: Run, plan: SamplingPlan, *, on_step=None, decode: bool = True, batch: int | None = None) -> Drawn | None:
    """This process's share of ``plan``'s samples (None where it has none)."""
    start, stop = share(plan.n, dist.get_rank(), dist.get_world_size())
    if start == stop:
        return None
    return sample_range(run, plan, start, stop, on_step=on_step, decode=decode, batch=batch)


def gather_drawn(drawn: Drawn | None) -> Drawn | None:
    """Every process's share of a draw, on rank 0 in sample order (None elsewhere); twisted SMC's
    particle records are a sample's own, and join as consecutive batches do."""
    mine = None if drawn is None else Drawn(drawn.x, drawn.x_T.cpu(), drawn.evaluations, drawn.particles)
    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(mine, parts, dst=0)
    if parts is None:
        return None
    parts = [p for p in parts if p is not None]
    records = [p.particles for p in parts if p.particles is not None]
    particles = None
    if records:
        particles = concatenate_records(records, into=ParticleRecord(records[0].particles, weights=None if records[0].weights is None else []))
    return Drawn(np.concatenate([p.x for p in parts]), torch.cat([p.x_T for p in parts]), parts[0].evaluations, particles)


class _SharedSampler:
    """``sampling.sample`` on rank 0 while a measurement shares its draws: the request goes to
    every process, each draws its share, rank 0 gets them all."""

    def __init__(self, run: Run):
        self.run = run

    def __call__(self, plan: SamplingPlan, *, on_step=None, decode: bool = True, batch: int | None = None) -> Drawn:
        portable = dataclasses.replace(plan, options=dict(plan.options))  # a read-only mapping does not pickle
        dist.broadcast_object_list([(portable, decode, batch)], src=0)
        counted = _Counted(on_step)
        drawn = gather_drawn(draw_share(self.run, plan, on_step=counted, decode=decode, batch=batch))
        counted.as_whole_draw(plan, batch)
        return drawn


class _Counted:
    """An on_step that also counts rank 0's own batches, and then reports the other processes'
    steps, so that a progress bar counting the whole draw's steps (evaluation.Units) reaches its end."""

    def __init__(self, on_step):
        self.on_step, self.calls = on_step, 0

    def __call__(self, record) -> None:
        self.calls += 1
        if self.on_step is not None:
            self.on_step(record)

    def as_whole_draw(self, plan: SamplingPlan, batch: int | None) -> None:
        if self.on_step is None:
            return
        mine = batch_ranges(*share(plan.n, 0, dist.get_world_size()), batch)
        per_batch = self.calls // len(mine) if mine else plan.steps
        for _ in range(max(0, per_batch * (batch_count(plan.n, batch) - len(mine)))):
            self.on_step(None)


@contextmanager
def shared_draws(run: Run):
    """On rank 0: every draw of ``run`` inside (sampling.sample) is shared among the processes,
    which ``serve_draws`` meanwhile; on leaving, the others are told the measurement is done."""
    token = SHARED_DRAWS.set((run, _SharedSampler(run)))
    try:
        yield
    finally:
        SHARED_DRAWS.reset(token)
        dist.broadcast_object_list([None], src=0)


def serve_draws(run: Run) -> None:
    """On every process but rank 0: draw this process's share of each plan rank 0 sends, until
    it says its measurement is done."""
    while True:
        request = [None]
        dist.broadcast_object_list(request, src=0)
        if request[0] is None:
            return
        plan, decode, batch = request[0]
        plan = dataclasses.replace(plan, options=MappingProxyType(plan.options))
        gather_drawn(draw_share(run, plan, decode=decode, batch=batch))
