"""Figures of the probability-flow ODE: sampling paths side by side, and the learned velocity field.

Time runs as everywhere in denoiselab (schedules.py): t = 1 is noise, t = 0 is data, and a
sampler walks t from 1 down to 0.  The velocity is the one the ODE samplers integrate
(samplers/ode.py): u = eps_hat - x0_hat, which on the flow path (alpha = 1 - t, sigma = t) is
d x_t / d t itself.  A sampler moves against it (t decreases), so the arrows drawn are -u.

``path_straightness`` and ``velocity_arrows`` are the pure computations behind the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..prediction import PREDICTIONS, resolve
from ..schedules import Schedule
from . import style
from .frames import unpack_frames
from .style import (
    BACKGROUND_ALPHA,
    DATA_COLOR,
    SAMPLE_COLOR,
    as_points,
    compute_limits,
    new_figure,
    save_figure,
    set_limits,
)

Frames = Sequence[tuple[float, np.ndarray]]

MAX_PATHS = 500  # paths drawn per panel; more turn into a solid sheet of lines
START_COLOR = "0.55"  # the noise a path starts from (grey)
PATH_COLOR = "0.35"  # the path itself: thin, translucent
HALFWAY_COLOR = style.CLASS_COLORS[1]  # purple: where each path is at t = 0.5
PATHS_DATA_ALPHA = 0.3  # the data behind the paths: faint, but the shape must show through the lines
FIELD_GRID = 20  # arrows per side of a velocity panel
FIELD_CMAP = "viridis"
# Nice time steps for the arrows' length: an arrow is the move over dt at the arrow's speed.
EPS_NOTE_RATIO = 10.0  # sigma / alpha above which a panel of an eps-prediction model says why its arrows are noisy
NICE_DT = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


# --- pure computations -------------------------------------------------------------------------


def _as_path_array(frames) -> tuple[np.ndarray, np.ndarray]:
    """frames [(t, (n, D) points)] -> (times (F,), positions (F, n, D)); every frame the same n and D."""
    ts, xs = unpack_frames(frames, as_points, what="points", timed=True, least=2)
    return np.array(ts), np.stack(xs)


def path_ratios(frames: Frames) -> np.ndarray:
    """Per point: its path length (the polyline through every frame) over the distance between
    its first and last positions.  1 for a straight path, larger the more it bends or doubles back.

    NaN for a point that does not move end to end (or has a non-finite position in any frame).
    """
    _, xs = _as_path_array(frames)
    length = np.linalg.norm(np.diff(xs, axis=0), axis=-1).sum(0)
    chord = np.linalg.norm(xs[-1] - xs[0], axis=-1)
    scale = max(float(np.nanmax(np.abs(xs[np.isfinite(xs)]), initial=0.0)), 1e-300)
    ok = np.isfinite(length) & np.isfinite(chord) & (chord > 1e-9 * scale)
    out = np.full(chord.shape, np.nan)
    out[ok] = length[ok] / chord[ok]
    return out


def path_straightness(frames: Frames) -> float:
    """Mean over points of (path length / distance between its end points): 1.00 = straight.

    ``frames`` is [(t, points (n, D))], the same n points in every frame (e.g. from noise at
    t = 1 to data at t = 0).  Points that do not move end to end, or leave the finite numbers,
    are left out of the mean; NaN if none is left.

    >>> L = [(1.0, [[0.0, 0.0]]), (0.5, [[1.0, 0.0]]), (0.0, [[1.0, 1.0]])]
    >>> round(path_straightness(L), 4)  # length 2 over a chord of sqrt(2)
    1.4142
    """
    r = path_ratios(frames)
    r = r[np.isfinite(r)]
    return float(r.mean()) if r.size else float("nan")


def velocity_arrows(model_fn, schedule: Schedule, t: float, xs, prediction: str, y=None, *, clip_x0: float | None = None) -> np.ndarray:
    """The arrows of ``plot_velocity_field`` at points ``xs`` (n, D), time ``t``: -u, where

        u = eps_hat - x0_hat,   (x0_hat, eps_hat) = resolve(model_fn(xs, t, y), prediction, xs, alpha(t), sigma(t))

    is the velocity of the probability-flow ODE in the straight-path coordinates of
    samplers/ode.py (on the flow path, u = d x_t / d t exactly).  -u is the way a sampler
    moves as t goes down towards 0.  Returns float64, shape (n, D), in the model's units.

    ``xs`` as a torch tensor is passed on in its dtype and device; a NumPy array goes as float32
    on the CPU.  ``y``: a class index for every point, an array of them, or None.  ``clip_x0``
    clamps x0_hat to [-clip_x0, clip_x0] and recomputes eps_hat from it, as the samplers do
    (samplers/stepping.py): the field they follow.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; expected one of {', '.join(PREDICTIONS)}")
    t = float(t)
    if not 0.0 < t <= 1.0:
        raise ValueError(f"t must lie in (0, 1] (at t = 0 the velocity is not defined by the model), got {t:g}")
    x = xs if isinstance(xs, torch.Tensor) else torch.as_tensor(np.asarray(xs, dtype=np.float32))
    if x.ndim != 2:
        raise ValueError(f"xs: expected points of shape (n, D), got shape {tuple(x.shape)}")
    alpha, sigma = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    if alpha == 0.0 and prediction == "eps":
        raise ValueError(f"an eps-prediction model cannot be read at t = {t:g}, where alpha = 0 ({schedule.name} path)")
    if y is not None and not isinstance(y, torch.Tensor):
        y = np.asarray(y)
        y = torch.full((x.shape[0],), int(y), dtype=torch.long) if y.ndim == 0 else torch.as_tensor(y, dtype=torch.long)
    if y is not None:
        y = y.to(x.device)
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        d = resolve(model_fn(x, tt, y), prediction, x, alpha, sigma)
        x0, eps = d.x0, d.eps
        if clip_x0 is not None:
            x0 = x0.clamp(-clip_x0, clip_x0)
            eps = (x - alpha * x0) / sigma
        arrows = x0 - eps  # -u
    return arrows.detach().cpu().double().numpy()


# --- sampling paths ----------------------------------------------------------------------------


def _check_panels(panels) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError("panels: expected a non-empty dict {panel title: [(t, points (n, 2)), ...]}")
    out = []
    for name, frames in panels.items():
        try:
            ts, xs = _as_path_array(frames)
        except ValueError as exc:
            raise ValueError(f"panels[{name!r}]: {exc}") from None
        if xs.shape[-1] != 2:
            raise ValueError(f"panels[{name!r}]: paths are drawn for 2D points, got dimension {xs.shape[-1]}")
        out.append((str(name), ts, xs))
    return out


def paths_figure_size(n_panels: int, limits) -> tuple[float, float]:
    """(width, height) in inches of ``plot_sampling_paths`` with ``n_panels`` equal-scale panels
    over ``limits`` (the figure is widened only if its title or legend would not fit)."""
    aspect = style.panel_aspect(style.fit_aspect(limits))
    aw = float(np.clip(3.6 / np.sqrt(aspect), 3.0, 4.4))
    return round(n_panels * (aw + 0.15) + 0.7, 2), round(aw * aspect + 2.2, 2)  # whole pixels at DPI = 100


def _halfway(ts: np.ndarray) -> int | None:
    """The frame nearest t = 0.5 (not the first or last), or None if none lies within 0.1 of it."""
    inner = np.arange(1, len(ts) - 1)
    if inner.size == 0:
        return None
    i = int(inner[np.argmin(np.abs(ts[inner] - 0.5))])
    return i if abs(ts[i] - 0.5) <= 0.1 else None


def _fmt_ratio(r: float) -> str:
    return "n/a" if not np.isfinite(r) else f"{r:.2f}"


def _paths_figure(panels, *, data=None, title=None, units="data units"):
    panels = _check_panels(panels)
    data = None if data is None else as_points(data, "data")
    if data is not None and data.shape[1] != 2:
        raise ValueError(f"data: expected 2D points like the paths, got dimension {data.shape[1]}")
    # One set of limits for every panel: the starts (noise), the ends (samples) and the data.
    ends = [p for _, _, xs in panels for p in (xs[0], xs[-1])]
    limits = style.fit_aspect(compute_limits(*ends, data))
    n = len(panels)
    fig = new_figure(paths_figure_size(n, limits), layout="compressed")
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True))
    any_mid = False
    same_start = all(xs[0].shape == panels[0][2][0].shape and np.array_equal(xs[0], panels[0][2][0]) for _, _, xs in panels)
    for j, ((name, ts, xs), ax) in enumerate(zip(panels, axes)):
        if data is not None:
            idx = style.shown_subset(data, max_points=style.MAX_BACKGROUND)
            ax.scatter(data[idx, 0], data[idx, 1], s=style.marker_size(len(idx)), c=DATA_COLOR,
                       alpha=PATHS_DATA_ALPHA, lw=0, rasterized=True, zorder=1)  # fmt: skip
        keep = np.flatnonzero(np.isfinite(xs).all(axis=(0, 2)))
        if len(keep) > MAX_PATHS:
            keep = np.sort(np.random.default_rng(0).choice(keep, MAX_PATHS, replace=False))
        paths = np.transpose(xs[:, keep], (1, 0, 2))  # (paths, frames, 2)
        lw, alpha = (0.6, 0.35) if len(keep) > 100 else (0.9, 0.6)
        ax.add_collection(LineCollection(paths, colors=PATH_COLOR, linewidths=lw, alpha=alpha, zorder=2, rasterized=True))
        ax.scatter(xs[0, keep, 0], xs[0, keep, 1], s=3, c=START_COLOR, lw=0, zorder=3, rasterized=True)
        mid = _halfway(ts)
        if mid is not None:  # a path that doubles back looks straight: its halfway point gives it away
            ax.scatter(xs[mid, keep, 0], xs[mid, keep, 1], s=3, c=HALFWAY_COLOR, lw=0, zorder=3, rasterized=True)
            any_mid = True
        ax.scatter(xs[-1, keep, 0], xs[-1, keep, 1], s=7, c=SAMPLE_COLOR, lw=0, zorder=4, rasterized=True)
        frames = list(zip(ts, xs))
        ratio = path_straightness(frames)
        ratios = path_ratios(frames)
        median = float(np.median(ratios[np.isfinite(ratios)])) if np.isfinite(ratios).any() else float("nan")
        steps = len(ts) - 1
        ax.set_title(f"{name}\n{steps} step{'s' * (steps != 1)}, {xs.shape[1]} paths", fontsize=10)
        ax.text(
            0.03, 0.97, f"straightness {_fmt_ratio(ratio)}\n(median {_fmt_ratio(median)}; 1.00 = straight)",
            transform=ax.transAxes, fontsize=8, va="top", ha="left", color="0.15",
            bbox=dict(fc="white", ec="0.75", alpha=0.85, pad=2),
        )  # fmt: skip
        ax.tick_params(labelsize=8)
        style.label_axes(ax, 2, left=j == 0, units=units)
        hidden = style.hidden_points_note(xs[-1], limits)
        if hidden:
            ax.text(0.97, 0.03, f"ends: {hidden}", transform=ax.transAxes, fontsize=7, color="0.3", va="bottom", ha="right",
                    bbox=dict(fc="white", ec="none", alpha=0.7, pad=1))  # fmt: skip
    for ax in axes:
        set_limits(ax, limits)
    dot = dict(marker="o", lw=0, markersize=5)
    handles = [
        Line2D([], [], color=START_COLOR, **dot),
        Line2D([], [], color=PATH_COLOR, lw=1.2),
        Line2D([], [], color=SAMPLE_COLOR, **dot),
    ]
    if any_mid:
        handles.insert(2, Line2D([], [], color=HALFWAY_COLOR, **dot))
    t_first, t_last = {round(float(ts[0]), 2) for _, ts, _ in panels}, {round(float(ts[-1]), 2) for _, ts, _ in panels}
    at_first = f" at t = {t_first.pop():.2f}" if len(t_first) == 1 else ""
    at_last = f" at t = {t_last.pop():.2f}" if len(t_last) == 1 else ""
    labels = [f"start: noise{at_first}" + (" (the same in every panel)" if same_start and n > 1 else ""),
              "path through every sampler step", f"end: generated sample{at_last}"]  # fmt: skip
    if any_mid:
        labels.insert(2, "halfway (t ≈ 0.5)")
    if data is not None:
        handles.append(Line2D([], [], color=DATA_COLOR, alpha=0.4, **dot))
        labels.append("training data (faint)")
    leg = style.legend(fig, handles, labels, loc="outside lower center", ncol=3, fontsize=9, markerscale=1.2)
    head = title or "Sampling paths: noise (t = 1) → data (t = 0)"
    head = fig.suptitle(
        f"{head}\nstraightness = mean over paths of (path length / distance from start to end); 1.00 = straight."
        "\nA path that doubles back along itself looks straight but counts both ways: its purple halfway dot lies outside its ends",
        fontsize=11,
    )
    style.widen_to_fit(fig, head, leg)
    return fig


def plot_sampling_paths(panels: Mapping[str, Frames], out_path, *, data=None, title=None, units: str | None = "data units") -> Path:
    """Sampling paths of several samplers (or models) side by side, on the same axes limits.

    ``panels`` is an ordered dict {panel title: [(t, points (n, 2)), ...]} whose frames run from
    t = 1 (noise) to t = 0 (data), in data units, e.g. ``runs.records_to_frames``.  Each path is
    a thin line through every frame, from a small grey dot (its noise) to an orange dot (its
    sample), so straight paths show as straight lines.  Each panel notes its mean
    ``path_straightness`` (1.00 = straight); ``data`` is drawn faintly behind.  At most
    MAX_PATHS paths are drawn per panel; the straightness is over all of them.  ``units``
    names the axes' units (None: no units in the labels).
    """
    return save_figure(_paths_figure(panels, data=data, title=title, units=units), out_path)


# --- velocity field ----------------------------------------------------------------------------


def _check_lims(lims) -> np.ndarray:
    try:
        arr = np.asarray(lims, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != (2, 2) or not np.isfinite(arr).all() or not (arr[:, 1] > arr[:, 0]).all():
        raise ValueError(f"lims: expected [[x1_min, x1_max], [x2_min, x2_max]] with min < max, got {lims!r}")
    return arr


def _check_times(times) -> list[float]:
    try:
        ts = [float(t) for t in times]
    except (TypeError, ValueError):
        raise ValueError(f"times: expected a list of times in (0, 1], got {times!r}") from None
    if not ts or any(not 0.0 < t <= 1.0 for t in ts):
        raise ValueError(f"times: expected a non-empty list of times in (0, 1], got {times!r}")
    return ts


def field_figure_size(n_panels: int, lims, *, legend: bool = False) -> tuple[float, float]:
    """(width, height) in inches of ``plot_velocity_field`` with ``n_panels`` panels over ``lims``,
    with the data's legend row when ``legend`` (the figure is widened only if its title would not fit)."""
    aspect = style.panel_aspect(_check_lims(lims))
    aw = float(np.clip(3.3 / np.sqrt(aspect), 2.6, 4.0))
    return round(n_panels * (aw + 0.15) + 1.6, 2), round(aw * aspect + 1.6 + 0.35 * legend, 2)  # whole pixels at DPI = 100


def field_grid(lims, n: int = FIELD_GRID) -> np.ndarray:
    """An n x n grid of points inside ``lims`` (cell centres), shape (n * n, 2)."""
    lims = _check_lims(lims)
    axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n for lo, hi in lims]
    g1, g2 = np.meshgrid(*axes)
    return np.stack([g1.ravel(), g2.ravel()], axis=1)


def _data_arrows(model_fn, schedule, t, grid, prediction, y, normalization, device, clip_x0=None) -> np.ndarray:
    """velocity_arrows at ``grid`` (given in data units when ``normalization`` is set), in those units."""
    if normalization is None:
        x = torch.as_tensor(grid, dtype=torch.float32, device=device)
        return velocity_arrows(model_fn, schedule, t, x, prediction, y, clip_x0=clip_x0)
    xn = np.asarray(normalization.encode(grid.astype(np.float32)), dtype=np.float32)
    a = velocity_arrows(model_fn, schedule, t, torch.as_tensor(xn, device=device), prediction, y, clip_x0=clip_x0)
    # An affine decode maps a displacement a at xn to decode(xn + a) - decode(xn).
    return np.asarray(normalization.decode(xn + a), dtype=np.float64) - np.asarray(normalization.decode(xn), dtype=np.float64)


def _nice_dt(speed: float, spacing: float) -> float:
    """The largest nice time step dt at which an arrow of this speed moves at most one grid spacing."""
    if not np.isfinite(speed) or speed <= 0:
        return NICE_DT[2]
    fit = [dt for dt in NICE_DT if dt * speed <= spacing]
    return fit[-1] if fit else NICE_DT[0]


def _velocity_figure(model_fn, schedule, *, prediction, times, lims, y=None, data=None, title=None,
                     normalization=None, units=None, device=None, clip_x0=None):  # fmt: skip
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule: expected a denoiselab Schedule, got {type(schedule).__name__}")
    ts = _check_times(times)
    lims = _check_lims(lims)
    data = None if data is None else as_points(data, "data")
    if data is not None and data.shape[1] != 2:
        raise ValueError(f"data: the velocity field is drawn for 2D points, got dimension {data.shape[1]}")
    units = units if units is not None else ("data units" if normalization is not None else None)
    grid = field_grid(lims)
    arrows = [_data_arrows(model_fn, schedule, t, grid, prediction, y, normalization, device, clip_x0) for t in ts]
    speeds = [np.linalg.norm(a, axis=1) for a in arrows]
    pooled = np.concatenate(speeds)
    pooled = pooled[np.isfinite(pooled)]
    # One colour scale and one arrow scale for every panel.  Colours span up to the 95th
    # percentile speed, so a few very fast arrows (near t = 1, far from the data) do not wash out
    # the rest; an arrow of the 75th percentile speed is about one grid spacing long, so the
    # slow panels keep arrows that show a direction (the fastest ones may overlap).
    top = float(np.percentile(pooled, 95)) if pooled.size else 1.0
    top = top if top > 0 else 1.0
    typical = float(np.percentile(pooled, 75)) if pooled.size else top
    spacing = float(np.min(np.ptp(lims, axis=1))) / FIELD_GRID
    dt = _nice_dt(typical if typical > 0 else top, 1.2 * spacing)
    # Speed in a few bands of round values: easier to read off than a gradient, and the bands
    # keep their exact colours when a busy PNG is stored with a palette (style._write_png).
    levels = MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]).tick_values(0.0, top)
    levels = levels[levels >= 0]
    over = bool((pooled > levels[-1]).any())
    cmap = colormaps[FIELD_CMAP].resampled(len(levels) - 1 + over)
    norm = BoundaryNorm(levels, cmap.N, extend="max" if over else "neither")

    n = len(ts)
    fig = new_figure(field_figure_size(n, lims, legend=data is not None), layout="compressed")
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True))
    quiv = None
    for j, (t, a, sp, ax) in enumerate(zip(ts, arrows, speeds, axes)):
        if data is not None:
            idx = style.shown_subset(data, max_points=style.MAX_BACKGROUND)
            ax.scatter(data[idx, 0], data[idx, 1], s=style.marker_size(len(idx)), c=DATA_COLOR,
                       alpha=BACKGROUND_ALPHA, lw=0, rasterized=True, zorder=1)  # fmt: skip
        ok = np.isfinite(a).all(axis=1)
        quiv = ax.quiver(
            grid[ok, 0], grid[ok, 1], a[ok, 0], a[ok, 1], sp[ok], cmap=cmap, norm=norm,
            angles="xy", scale_units="xy", scale=1.0 / dt, width=0.006, headwidth=3.5, headlength=4.0,
            headaxislength=3.5, zorder=2,
        )  # fmt: skip
        alpha_t, sigma_t = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        ax.set_title(f"t = {t:.2f}\n(α = {alpha_t:.2f}, σ = {sigma_t:.2f})", fontsize=10)
        ax.tick_params(labelsize=8)
        style.label_axes(ax, 2, left=j == 0, units=units)
        notes = []
        if prediction == "eps" and sigma_t > EPS_NOTE_RATIO * alpha_t:
            # x0_hat = (x - sigma eps_hat) / alpha: the network's errors in eps, times sigma / alpha.
            notes.append(f"eps-prediction: errors of ε̂ are\nmultiplied by σ/α = {sigma_t / alpha_t:.0f} in x̂₀")
        if (~ok).any():
            notes.append(f"{int((~ok).sum())} non-finite arrows not drawn")
        if notes:
            ax.text(0.03, 0.03, "\n".join(notes), transform=ax.transAxes, fontsize=7.5, color="0.15", va="bottom",
                    bbox=dict(fc="white", ec="0.75", alpha=0.85, pad=2), zorder=5)  # fmt: skip
    for ax in axes:
        ax.set_xlim(*lims[0])
        ax.set_ylim(*lims[1])
        ax.set_aspect("equal", adjustable="box")
    per = f"{units} per unit of t" if units else "per unit of t"
    flow = schedule.path == "flow"
    cb = fig.colorbar(quiv, ax=list(axes), shrink=0.85, pad=0.02, ticks=levels)
    cb.set_label(f"arrow colour: speed |u| ({per})" if flow else "arrow colour: speed |u| = |dz/dτ|", fontsize=9)
    cb.ax.tick_params(labelsize=8)
    head = title or "Learned velocity of the probability-flow ODE"
    sub = "arrows: −u, the direction of travel as t goes from 1 to 0"
    if flow:
        sub += f"\nu = dx/dt = ε̂ − x̂₀ (predicted noise − predicted data); arrow length: the distance moved in Δt = {dt:g}"
    else:
        sub += (f"\nu = ε̂ − x̂₀ = dz/dτ on the straight path z = x/(α+σ), τ = σ/(α+σ); arrow length: the move of z in Δτ = {dt:g}"
                f"\n({schedule.name} schedule: x = (α+σ) z also shrinks or grows as α+σ changes)")  # fmt: skip
    suptitle = fig.suptitle(f"{head}\n{sub}", fontsize=11)
    leg = None
    if data is not None:
        dot = Line2D([], [], marker="o", lw=0, markersize=5, color=DATA_COLOR, alpha=0.4)
        leg = style.legend(fig, [dot], ["training data (faint): where the paths end, at t = 0"], loc="outside lower center",
                           fontsize=9, markerscale=1.2)  # fmt: skip
    style.widen_to_fit(fig, suptitle, leg)
    return fig


def plot_velocity_field(
    model_fn,
    schedule: Schedule,
    out_path,
    *,
    prediction: str,
    times: Sequence[float] = (0.9, 0.6, 0.3, 0.05),
    lims,
    y=None,
    data=None,
    title=None,
    normalization=None,
    units: str | None = None,
    device=None,
    clip_x0: float | None = None,
) -> Path:
    """The learned velocity of the probability-flow ODE as arrows on a 20 x 20 grid, one panel per t.

    At each grid point the arrow is ``velocity_arrows``: -u with u = eps_hat - x0_hat (on the
    flow path u = d x_t / d t), the direction a sampler moves as t goes from 1 to 0.  Every
    panel shares one arrow scale (an arrow is the move over a stated time step) and one colour
    scale of the speed |u| (colourbar).  ``lims`` is [[x1_min, x1_max], [x2_min, x2_max]];
    ``data`` is drawn faintly behind.

    ``normalization`` (e.g. ``run.normalization``: affine ``encode``/``decode`` between data and
    model units): ``lims``, ``data`` and the arrows are then in data units, and grid points are
    encoded before the model sees them.  Without it everything is in the model's own units.
    ``units`` names the axes' units (default "data units" with a normalization, none without).
    ``device``: where ``model_fn`` expects its inputs (e.g. ``run.device``; default CPU).
    ``clip_x0`` (model units, e.g. ``run.info["x0_bound"]``): clamp x0_hat as the samplers do.
    """
    figure = _velocity_figure(model_fn, schedule, prediction=prediction, times=times, lims=lims, y=y, data=data,
                              title=title, normalization=normalization, units=units, device=device,
                              clip_x0=clip_x0)  # fmt: skip
    return save_figure(figure, out_path)
