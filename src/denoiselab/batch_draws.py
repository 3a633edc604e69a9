"""A training batch's random draws, made for the whole (global) batch and kept for some of its rows.

Under data parallelism (training/parallel.py) each process trains on rows [start, stop) of the
recipe's global batch.  If each process drew its own noise and times for its own rows, the noise
would depend on the number of processes (and would be the same on every rank when every rank
seeds alike: Open-Sora-Plan issue 366).  Here every process draws the noise, times and levels of
the *whole* batch from the same generator, in the same order, and keeps its rows: row i's draws
are a function of (seed, step, i) alone, so 1, 2 or 8 processes (and gradient accumulation's
micro-batches) compute the same terms of the same loss, and a generator's state after a step is
the same on every rank.  Drawing the other ranks' noise too costs a random number generator call
over the global batch, small against a network's forward and backward.

A torch.Generator (or None) is accepted wherever BatchDraws is: ``BatchDraws.of(generator, n)`` is
the whole batch, and its draws are exactly torch's (the bits a one-process run always had).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BatchDraws:
    """Draws for a batch of ``total`` rows, of which the caller trains ``rows`` (start, stop).

    ``whole_x0`` and ``whole_y`` are the global batch's data and labels when the rows are a part of
    it (None for the whole batch): a coupling of the batch's noise with its data (OT-CFM) is solved
    over the global batch, so it does not change with the number of processes."""

    generator: torch.Generator | None
    total: int
    start: int = 0
    stop: int | None = None
    whole_x0: torch.Tensor | None = None
    whole_y: torch.Tensor | None = None

    def __post_init__(self):
        if self.stop is None:
            self.stop = self.total
        if not 0 <= self.start <= self.stop <= self.total:
            raise ValueError(f"rows [{self.start}, {self.stop}) are not inside a batch of {self.total}")

    @classmethod
    def of(cls, draws: "BatchDraws | torch.Generator | None", n: int) -> "BatchDraws":
        """``draws`` itself, or the whole batch of ``n`` rows drawn from a generator."""
        if isinstance(draws, BatchDraws):
            if draws.rows != n:
                raise ValueError(f"draws for {draws.rows} rows, but the batch has {n}")
            return draws
        return cls(draws, n)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def is_whole(self) -> bool:
        return self.start == 0 and self.stop == self.total

    def keep(self, values: torch.Tensor, batch_dim: int = 0) -> torch.Tensor:
        """The caller's rows of a global draw."""
        return values if self.is_whole else values.narrow(batch_dim, self.start, self.rows)

    def _shape(self, shape, batch_dim: int) -> list[int]:
        shape = list(shape)
        if shape[batch_dim] != self.rows:
            raise ValueError(f"a draw of shape {tuple(shape)} for {self.rows} rows (dim {batch_dim})")
        shape[batch_dim] = self.total
        return shape

    def randn(self, shape, dtype=torch.float32, batch_dim: int = 0) -> torch.Tensor:
        return self.keep(torch.randn(self._shape(shape, batch_dim), generator=self.generator, dtype=dtype), batch_dim)

    def rand(self, shape, dtype=torch.float64, batch_dim: int = 0) -> torch.Tensor:
        return self.keep(torch.rand(self._shape(shape, batch_dim), generator=self.generator, dtype=dtype), batch_dim)

    def randint(self, low: int, high: int, shape) -> torch.Tensor:
        return self.keep(torch.randint(low, high, self._shape(shape, 0), generator=self.generator))

    def multinomial(self, probabilities: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` (this caller's rows) indices drawn with replacement from ``probabilities``."""
        self._shape([n], 0)
        return self.keep(torch.multinomial(probabilities, self.total, replacement=True, generator=self.generator))

    def part(self, start: int, stop: int) -> "BatchDraws":
        """Draws over the global batch's rows [start, stop) only (a sub-batch every process
        splits alike, e.g. the shortcut model's share of self-consistency rows), keeping the
        caller's rows inside it; the part's data are not carried."""
        lo, hi = max(start, self.start), min(stop, max(self.stop, start))
        lo = min(lo, hi)
        return BatchDraws(self.generator, stop - start, lo - start, hi - start)
