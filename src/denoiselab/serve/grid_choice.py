"""Which time grid a playground request samples on: a named grid, or the run's tuned grid.

The same rule as ``denoiselab sample`` / ``evaluate`` (cli._use_tuned_grid): a run folder's
``tuned_grids.json`` (written by ``denoiselab tune-steps``, tuning.py) holds grids keyed by
sampler and model evaluations, and one is used when it exists for the request's sampler and
count and the request names no grid.  A tuned grid was tuned on the run's own class mix and
guidance, so a request for one class or another guidance scale keeps the named grid unless it
asks for the tuned one (``tuned_grid: true``).  ``tuned_grid: false`` never uses one.
"""

from __future__ import annotations

from pathlib import Path

import torch
from fastapi import HTTPException

from ..samplers import evaluations
from ..tuning import TuningError, read_tuned_grids, tuned_grid


def choose_tuned_grid(run, name: str, sampler: str, steps: int, req) -> torch.Tensor | None:
    """The run's tuned grid this request samples on, or None for the named grid."""
    if req.tuned_grid and req.spacing is not None:
        raise HTTPException(422, "tuned_grid: give either spacing (a named grid) or tuned_grid, not both")
    if req.tuned_grid is None:
        # Not asked either way: the tuned grid, unless the request names a grid or departs from
        # the class mix and guidance the grid was tuned with.
        default_guidance = getattr(run.config.sample, "guidance", None)
        departs = req.label is not None or req.labels is not None or (req.guidance is not None and req.guidance != default_guidance)
        if req.spacing is not None or departs:
            return None
    elif not req.tuned_grid:
        return None
    count = evaluations(sampler, steps)
    try:
        grid = tuned_grid(run.path, sampler, count)
    except TuningError:
        # The file's own message names a server path; the page gets the run's name instead.
        raise HTTPException(
            409, f"tuned_grid: run {name!r} has a tuned_grids.json that cannot be read; delete it or run denoiselab tune-steps again"
        ) from None
    if req.tuned_grid and grid is None:
        have = ", ".join(f"{e['sampler']} at {e['evaluations']}" for e in tuned_grid_list(run.path)) or "none"
        raise HTTPException(
            422,
            f"tuned_grid: run {name!r} has no tuned grid for {sampler} at {count} model evaluations (it has: {have}); "
            f"make one with: denoiselab tune-steps RUN --sampler {sampler} --nfe {count}",
        )
    return grid


def tuned_grid_list(run_dir: Path) -> list[dict]:
    """The run's tuned grids for the page: sampler, evaluations and steps ([] when none, or when
    the file cannot be read: sampling then says why)."""
    try:
        grids = read_tuned_grids(run_dir)
    except TuningError:
        return []
    out = []
    for key, entry in grids.items():  # keyed "sampler/evaluations" (tuning.grid_key)
        sampler, _, count = key.partition("/")
        out.append({"sampler": sampler, "evaluations": int(count) if count.isdigit() else count, "steps": len(entry["grid"]) - 1})
    return sorted(out, key=lambda e: (e["sampler"], str(e["evaluations"]).zfill(6)))
