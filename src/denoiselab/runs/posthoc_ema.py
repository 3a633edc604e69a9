"""A run's EMA of any length, reconstructed after training from its stored snapshots
(posthoc_ema.py: EDM2's least-squares combination of power-function EMA profiles).

``reconstruct(folder, sigma_rel)`` combines every snapshot up to the last; a length the stored
profiles cannot reproduce to within MAX_PROFILE_ERROR (relative L2 error of the profile) is
refused, naming the range they do reproduce.  ``reconstruct_into_run`` writes the weights
atomically (the run's sampling weights, or another file) and records the length in run.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import files
from ..errors import InputError
from ..posthoc_ema import MAX_SIGMA_REL, fit_profile, sigma_rel_to_gamma
from .folder import RunError, RunFolder

# The largest relative L2 error of the reconstructed profile that is accepted: any weight's error is
# at most this times the target profile's norm times its trajectory's norm (posthoc_ema.py).
MAX_PROFILE_ERROR = 0.1
_SCAN = np.round(np.arange(0.005, MAX_SIGMA_REL, 0.005), 3)  # the lengths the reported range is read from


class EMALengthError(InputError):
    """An EMA length the run's snapshots cannot reconstruct."""


@dataclass(frozen=True)
class Reconstruction:
    state: dict[str, torch.Tensor]
    sigma_rel: float
    step: int
    relative_error: float
    coefficients: np.ndarray


def _snapshot_profiles(folder: RunFolder, steps: list[int]) -> tuple[list[int], list[float]]:
    """(step, sigma_rel) of every stored EMA, in file order, read from the snapshots' metadata."""
    profile_steps, sigma_rels = [], []
    for step in steps:
        _, rels = folder.read_ema_snapshot(step)
        profile_steps += [step] * len(rels)
        sigma_rels += rels
    return profile_steps, sigma_rels


def reconstructable_range(profile_steps, sigma_rels, step: int) -> tuple[float, float] | None:
    """The lengths (on a 0.005 grid) whose profile the stored ones reproduce within MAX_PROFILE_ERROR."""
    gammas = [sigma_rel_to_gamma(s) for s in sigma_rels]
    ok = [v for v in _SCAN if fit_profile(profile_steps, gammas, step, sigma_rel_to_gamma(float(v))).relative_error <= MAX_PROFILE_ERROR]
    return (float(min(ok)), float(max(ok))) if ok else None


def reconstruct(folder: RunFolder, sigma_rel: float) -> Reconstruction:
    """The EMA of relative length ``sigma_rel`` at the last stored snapshot."""
    steps = folder.ema_snapshot_steps()
    if not steps:
        raise RunError(f"{folder.path}: no post-hoc EMA snapshots; train with train.ema_snapshot_every > 0 to store them")
    _check_complete(folder, steps)
    step = steps[-1]
    profile_steps, sigma_rels = _snapshot_profiles(folder, steps)
    if not 0.0 < sigma_rel < MAX_SIGMA_REL:
        raise EMALengthError(f"EMA length {sigma_rel:g}: sigma_rel lies in (0, {MAX_SIGMA_REL:.3f}); {_range_text(profile_steps, sigma_rels, step)}")
    gammas = [sigma_rel_to_gamma(s) for s in sigma_rels]
    fit = fit_profile(profile_steps, gammas, step, sigma_rel_to_gamma(sigma_rel))
    if fit.relative_error > MAX_PROFILE_ERROR:
        raise EMALengthError(
            f"EMA length {sigma_rel:g}: outside what the stored snapshots reconstruct (profile error {fit.relative_error:.0%}, "
            f"more than {MAX_PROFILE_ERROR:.0%}); {_range_text(profile_steps, sigma_rels, step)}"
        )
    state: dict[str, torch.Tensor] = {}
    k = 0
    for snap_step in steps:
        states, _ = folder.read_ema_snapshot(snap_step)
        for snapshot in states:
            x = float(fit.coefficients[k])
            k += 1
            for name, value in snapshot.items():
                term = value.double() * x
                state[name] = term if name not in state else state[name] + term
    last, _ = folder.read_ema_snapshot(steps[-1])
    # Integer tensors are not averaged: they are the last snapshot's.
    out = {name: (state[name].to(v.dtype) if v.is_floating_point() else v) for name, v in last[0].items()}
    return Reconstruction(out, sigma_rel, step, fit.relative_error, fit.coefficients)


def _range_text(profile_steps, sigma_rels, step) -> str:
    span = reconstructable_range(profile_steps, sigma_rels, step)
    if span is None:
        return "the stored snapshots reconstruct no length within that error"
    return f"the stored snapshots reconstruct lengths from {span[0]:g} to {span[1]:g}"


def _check_complete(folder: RunFolder, steps: list[int]) -> None:
    """Every snapshot the recipe stored up to the last one is there (one missing would silently
    change the profiles the least-squares fit combines)."""
    try:
        every = folder.read_config().train.ema_snapshot_every
    except Exception:  # noqa: BLE001 - load_run has already read the recipe where it matters
        return
    if every <= 0:
        return
    expected = set(range(every, steps[-1] + 1, every))
    missing = sorted(expected - set(steps))
    if missing:
        raise RunError(f"{folder.ema_snapshot_path(missing[0])}: missing post-hoc EMA snapshot; the run cannot reconstruct EMA lengths without it")


def reconstruct_into_run(run_dir: str | Path, sigma_rel: float, out: str | Path | None = None) -> Reconstruction:
    """Reconstruct the EMA of length ``sigma_rel`` and write its weights atomically: into ``out``,
    or, by default, as the run's sampling weights (recorded in run.json's posthoc_ema)."""
    folder = RunFolder(run_dir)
    result = reconstruct(folder, sigma_rel)
    target = Path(out) if out is not None else folder.weights
    files.write_tensors(target, result.state, {"step": str(result.step), "posthoc_ema_sigma_rel": repr(sigma_rel)})
    if out is None:
        folder.record_posthoc_ema(folder.read_info(), sigma_rel, result.step, result.relative_error)
    return result
