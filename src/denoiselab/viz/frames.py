"""Frames of a reverse process: the list of snapshots that strips, GIFs and path figures draw.

A frame list runs from noise (t = 1) to data (t = 0).  Each frame is a ``(t, x)`` pair, as
``frames_from_records`` gives, or (for images, with ``times`` given separately) a plain array
``x``.  ``unpack_frames`` is the one check of such a list: every figure module reads its frames
through it, with its own array check (points or images).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def frames_from_records(records) -> list[tuple[float, np.ndarray]]:
    """Sampler StepRecords -> [(t, x)] from the first record's x_t to the last record's x_next.

    The first frame is (records[0].t, records[0].x_t), then (t_next, x_next) for each record,
    so a sampler that ends at t = 0 gives a last frame with t = 0.
    """
    records = list(records)
    if not records:
        raise ValueError("records: empty (pass on_step=records.append to a sampler)")

    def arr(x):
        return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)

    frames = [(records[0].t, arr(records[0].x_t))]
    frames += [(r.t_next, arr(r.x_next)) for r in records]
    return frames


def pick_frames(n_frames: int, n_panels: int) -> list[int]:
    """n_panels indices spread evenly over n_frames, always the first and the last."""
    if not (isinstance(n_panels, (int, np.integer)) and n_panels >= 1):
        raise ValueError(f"n_panels must be an integer >= 1, got {n_panels!r}")
    if n_panels == 1:
        return [n_frames - 1]
    return sorted({int(i) for i in np.round(np.linspace(0, n_frames - 1, min(n_panels, n_frames)))})


def _is_pair(frame) -> bool:
    """A (t, x) pair, t a scalar; an array frame (even of two rows) is not one."""
    return isinstance(frame, (tuple, list)) and len(frame) == 2 and np.ndim(frame[0]) == 0


def _as_times(times, count: int) -> list[float]:
    if hasattr(times, "detach"):
        times = times.detach().cpu().numpy()
    times = [float(t) for t in np.asarray(times, dtype=np.float64).ravel()]
    if len(times) != count:
        raise ValueError(f"times: expected one t per frame ({count}), got {len(times)}")
    if not all(math.isfinite(t) for t in times):
        raise ValueError("times: must be finite")
    return times


def unpack_frames(
    frames,
    as_array: Callable[[object, str], np.ndarray],
    *,
    what: str,
    times=None,
    timed: bool = False,
    least: int = 1,
) -> tuple[list[float] | None, list[np.ndarray]]:
    """Check a frame list and split it into (times, arrays).

    ``frames``: a list of ``(t, x)`` pairs or of plain arrays ``x`` (not a mix), or one stacked
    array of frames.  ``as_array(x, name)`` checks and converts one frame (``style.as_points``,
    ``images.as_images``); ``what`` names its contents in messages ("points", "images").
    ``times``: one t per plain frame (not with pairs); every t must be finite.  ``timed``: the frames must carry a t
    (pairs, or plain frames with ``times``).  ``least``: the fewest frames that make sense.
    Every frame must have one shape: a frame list is one trajectory.  Returns (times or None
    when the frames carry none, arrays).
    """
    if hasattr(frames, "detach") or isinstance(frames, np.ndarray):
        frames = list(frames)  # a stacked (F, ...) array
    frames = list(frames)
    if not frames:
        raise ValueError(f"frames: empty; expected a list of (t, {what}) frames from noise to data")
    if len(frames) < least:
        raise ValueError(f"frames: need at least {least} (t, {what}) frames, got {len(frames)}")
    pairs = [_is_pair(f) for f in frames]
    if any(pairs):
        if not all(pairs):
            raise ValueError(f"frames: mix of (t, {what}) pairs and plain arrays")
        if times is not None:
            raise ValueError(f"times: frames are (t, {what}) pairs already; pass one or the other")
        times = [float(t) for t, _ in frames]
        frames = [x for _, x in frames]
    elif timed and times is None:
        raise ValueError(f"frames: expected (t, {what}) pairs")
    xs = [as_array(x, f"frames[{i}]") for i, x in enumerate(frames)]
    if len({x.shape for x in xs}) > 1:
        raise ValueError(f"frames: every frame must hold the same {what}; got shapes {sorted({x.shape for x in xs})}")
    return (None if times is None else _as_times(times, len(xs))), xs
