"""A network evaluated in calls of one fixed shape, aligned to the samples' indices.

Per-sample noise (noise.py) makes a sample's random numbers the same in any batch; its arithmetic
may still differ.  A matrix product's kernel is chosen by the shape of the call, and the rows of a
small or ragged call are summed in another order than those of a large one: on one CPU thread
the spiral's MLP gives the row of a 1-row call a result 3.6e-7 away from the same row in a
2000-row call (on two threads a 7-row call differs too), and 20 dpm++2m steps carry that to
5.8e-4 (BENCHMARKS.md, "Per-sample seeds").  This is
the batch dependence that He et al. (2025, "Defeating nondeterminism in LLM inference",
Thinking Machines) trace in LLM serving; they make every kernel batch-invariant.  Here the kernels
stay as they are and the shape is fixed instead: the rows are laid on a grid of ``rows`` per
call, aligned to the global row index (sample index x rows per sample), and each call is one
cell of the grid, padded with copies of a real row where the batch does not fill it.  A row
then meets the same kernel, at the same place in its call, whatever batch or process it is drawn
in, and rows never mix in a denoiser (no batch statistics), so its result is the same to the bit.
The price is the padding: a batch smaller than ``rows`` evaluates a whole call.  Only the
denoiser's network is called so: a classifier of classifier guidance and a latent run's decoder
see the batch as it is.
"""

from __future__ import annotations

import torch

# Rows per network call.  On one thread the spiral's MLP and the digits' U-Net cost no more per
# row in calls of 256 than in one call of the whole draw (BENCHMARKS.md, "Per-sample seeds"); a
# draw of fewer rows uses its own size.
ROWS_PER_CALL = 256


def fixed_shape(model_fn, first_row: int, rows: int):
    """``model_fn(x, t, y=None)`` evaluated in calls of exactly ``rows`` rows on the grid of
    global rows k * rows, where the call's rows are global rows first_row, first_row + 1, ..."""
    if rows < 1:
        raise ValueError(f"rows per call must be >= 1, got {rows}")

    def padded(v, lo: int, hi: int, offset: int, n: int):
        """Rows lo..hi-1 of the grid, from v's n rows offset.. (None, scalars and tensors of
        another length, such as one label for all, pass through)."""
        if not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] != n:
            return v
        start, stop = max(lo, offset), min(hi, offset + v.shape[0])
        part = v[start - offset : stop - offset]
        before, after = part[:1].expand(start - lo, *v.shape[1:]), part[-1:].expand(hi - stop, *v.shape[1:])
        return torch.cat([before, part, after]) if start > lo or stop < hi else part

    def evaluated(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        n = x.shape[0]
        lo = (first_row // rows) * rows
        outs = []
        for cell in range(lo, first_row + n, rows):
            out = model_fn(*(padded(v, cell, cell + rows, first_row, n) for v in (x, t, y)))
            start, stop = max(cell, first_row), min(cell + rows, first_row + n)
            outs.append(out[start - cell : stop - cell])
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    return evaluated
