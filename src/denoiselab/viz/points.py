"""Figures of point sets: data vs samples, the forward process, the reverse process (strip, GIF).

Every function takes NumPy arrays in data units, shape (N, 1) for 1D data (drawn as density
histograms) or (N, 2) for 2D data (drawn as scatter plots), writes ``path`` atomically and
returns it.  Colours mean the same everywhere: training data blue, generated samples orange.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from ..forward_process import q_sample
from ..schedules import Schedule
from . import gif, style
from .frames import pick_frames, unpack_frames
from .style import (
    BACKGROUND_ALPHA,
    DATA_COLOR,
    REFERENCE_COLOR,
    SAMPLE_COLOR,
    as_labels,
    as_points,
    compute_limits,
    density,
    hist_edges,
    label_axes,
    marker_size,
    new_figure,
    point_alpha,
    same_dim,
    save_figure,
    set_limits,
    shown_subset,
)

Frames = Sequence[tuple[float, np.ndarray]]


# --- drawing helpers ---------------------------------------------------------------------------


def _n_note(x: np.ndarray) -> str:
    return f"n = {len(x)}"


def _class_name(k, class_names) -> str:
    return class_names[int(k)] if class_names is not None else f"class {k}"


def _scatter(ax, x, color, label, *, labels=None, faint=False, seed=0, class_names=None):
    """Scatter a 2D set (subsampled beyond MAX_SCATTER); by class when ``labels`` is given."""
    idx = shown_subset(x, max_points=style.MAX_BACKGROUND if faint else style.MAX_SCATTER, seed=seed)
    s = marker_size(len(idx))
    alpha = BACKGROUND_ALPHA if faint else point_alpha(len(idx))
    if labels is None:
        return [ax.scatter(x[idx, 0], x[idx, 1], s=s, c=color, alpha=alpha, lw=0, label=label, rasterized=True)]
    out = []
    for k in np.unique(labels[idx]):
        sel = idx[labels[idx] == k]
        out.append(
            ax.scatter(x[sel, 0], x[sel, 1], s=s, c=style.class_color(k), alpha=alpha, lw=0, label=_class_name(k, class_names), rasterized=True)
        )
    return out


def _hist(ax, x, edges, color, label, *, labels=None, filled=True, lw=1.5, class_names=None):
    """Density histogram(s) over fixed edges; by class (each weighted by its share) with labels."""
    if labels is None:
        dens = density(x, edges)
        if filled:
            ax.stairs(dens, edges, fill=True, color=color, alpha=0.35, lw=0)
        ax.stairs(dens, edges, color=color, lw=lw, label=label)
        return dens.max(initial=0.0)
    top = 0.0
    for k in np.unique(labels):
        sel = labels == k
        dens = density(x[sel], edges, weight=sel.mean())
        ax.stairs(dens, edges, fill=True, color=style.class_color(k), alpha=0.25, lw=0)
        ax.stairs(dens, edges, color=style.class_color(k), lw=lw, label=_class_name(k, class_names))
        top = max(top, dens.max(initial=0.0))
    return top


def _layout(dim: int) -> str:
    """Constrained layout; "compressed" for 2D panels, whose equal-aspect axes shrink inside
    their grid cells: plain constrained layout then misplaces the titles and labels around
    them (a row's titles run into the row above, labels fall off the figure)."""
    return "compressed" if dim == 2 else "constrained"


def _legend(ax, **kwargs):
    return style.legend(ax, fontsize=8, framealpha=0.85, **kwargs)


def _outside_note(ax, x, limits, *, fontsize=8):
    text = style.hidden_points_note(x, limits)
    if text:
        # Bottom left in a scatter (usually empty); top left above the bars of a histogram.
        y, va = (0.03, "bottom") if x.shape[1] == 2 else (0.97, "top")
        ax.text(
            0.03, y, text, transform=ax.transAxes, fontsize=fontsize,
            color="0.3", va=va, ha="left", bbox=dict(fc="white", ec="none", alpha=0.7, pad=1),
        )  # fmt: skip


# --- data vs samples ---------------------------------------------------------------------------


# The outline of a guidance region and the line of an observed coordinate: black, dashed, drawn
# over both panels (the data's share inside against the samples').
GUIDE_COLOR = "black"


def _draw_region(ax, inside, limits, dim: int, label: str | None, *, resolution: int = 400) -> None:
    """The boundary of a region: 2D, the 0.5 contour of its indicator on a grid over the axes;
    1D, its inside intervals shaded."""
    xs = np.linspace(limits[0, 0], limits[0, 1], resolution)
    if dim == 1:
        mask = np.asarray(inside(xs[:, None]), dtype=bool)
        ax.fill_between(xs, 0, 1, where=mask, transform=ax.get_xaxis_transform(), color="0.5", alpha=0.15, lw=0, label=label)
        return
    ys = np.linspace(limits[1, 0], limits[1, 1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    mask = np.asarray(inside(np.stack([gx.ravel(), gy.ravel()], axis=1)), dtype=float).reshape(gx.shape)
    if mask.min() == mask.max():  # the region holds all or none of the axes: no boundary to draw
        return
    ax.contour(gx, gy, mask, levels=[0.5], colors=GUIDE_COLOR, linewidths=1.2, linestyles="--")
    ax.plot([], [], "--", color=GUIDE_COLOR, lw=1.2, label=label)  # the contour's legend entry


def _draw_observed(ax, observed: dict[int, float]) -> None:
    """Observed coordinates of 2D points: x1 = a as a vertical line, x2 = b as a horizontal one."""
    for i, value in sorted(observed.items()):
        line = ax.axvline if i == 0 else ax.axhline
        line(value, color=GUIDE_COLOR, lw=1.0, ls=":", label=f"observed x{i + 1} = {value:g}")


def _conditional_panel(ax, samples, observed: dict[int, float], conditional: tuple[np.ndarray, str], limits, units) -> None:
    """The free coordinate of samples drawn with one observed coordinate, as a density histogram,
    against a reference of the true conditional (values, words saying what they are)."""
    ((i, value),) = observed.items()
    free = 1 - i
    reference, words = conditional
    edges = np.linspace(limits[free, 0], limits[free, 1], 61)
    ax.hist(samples[:, free], bins=edges, density=True, color=SAMPLE_COLOR, alpha=0.6, label=f"generated samples ({_n_note(samples)})")
    ax.hist(reference, bins=edges, density=True, histtype="step", color=DATA_COLOR, lw=1.5, label=f"{words} (n = {len(reference)})")
    ax.set_xlim(*limits[free])
    unit = f" ({units})" if units else ""
    ax.set_xlabel(f"$x_{free + 1}${unit}, given $x_{i + 1}$ = {value:g}")
    ax.set_ylabel("density")
    ax.set_title(f"$x_{free + 1}$ of the samples against the truth", fontsize=11)
    style.legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, framealpha=0.85)


def _samples_figure(
    data, samples, *, title=None, labels=None, data_labels=None, class_names=None, units=None, region=None, region_label=None, observed=None, conditional=None
):
    data, samples = as_points(data, "data"), as_points(samples, "samples")
    dim = same_dim(data, samples, names=("data", "samples"))
    labels = as_labels(labels, len(samples), "labels")
    data_labels = as_labels(data_labels, len(data), "data_labels")
    limits = style.fit_aspect(compute_limits(data, samples))
    head = title or "Training data vs generated samples"

    if dim == 1 and labels is None and data_labels is None and region is None:
        fig = new_figure((7.0, 4.2), layout="constrained")
        ax = fig.subplots()
        edges = hist_edges(limits)
        top = _hist(ax, data, edges, DATA_COLOR, f"training data ({_n_note(data)})")
        top = max(top, _hist(ax, samples, edges, SAMPLE_COLOR, f"generated ({_n_note(samples)})", filled=False, lw=2.0))
        set_limits(ax, limits, ymax=style.HIST_HEADROOM * top if top > 0 else 1.0)
        label_axes(ax, 1, units=units)
        _legend(ax, loc="upper right")
        _outside_note(ax, samples, limits)
        style.widen_to_fit(fig, ax.set_title(head, fontsize=12))
        return fig

    third = conditional is not None and dim == 2 and observed is not None and len(observed) == 1
    if dim == 2:
        # Two equal-scale panels sized to the data's shape, so no band of the figure is left empty.
        aspect = style.panel_aspect(limits)
        aw = float(np.clip(4.2 / aspect, 3.0, 5.0))
        size = ((3 if third else 2) * aw + 1.4, aw * aspect + (1.6 if third else 1.05))
    else:
        size = (11.0, 4.2)
    fig = new_figure(size, layout=_layout(dim))
    if third:  # the conditional's histogram has its own axes: x_free against density
        *axes, extra = fig.subplots(1, 3)
        axes[1].sharex(axes[0])
        axes[1].sharey(axes[0])
        _conditional_panel(extra, samples, observed, conditional, limits, units)
    else:
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = (
        (axes[0], data, data_labels, DATA_COLOR, "training data"),
        (axes[1], samples, labels, SAMPLE_COLOR, "generated samples"),
    )
    edges = hist_edges(limits)
    top = 0.0
    for i, (ax, x, lab, color, name) in enumerate(panels):
        if dim == 2:
            _scatter(ax, x, color, name, labels=lab, seed=i, class_names=class_names)
        else:
            top = max(top, _hist(ax, x, edges, color, name, labels=lab, class_names=class_names))
        share = "" if region is None else f"\n{100 * np.mean(region(x)):.1f} % inside the region"
        ax.set_title(f"{name} ({_n_note(x)}){share}", fontsize=11)
        label_axes(ax, dim, left=i == 0, units=units)
        if region is not None:
            _draw_region(ax, region, limits, dim, region_label)
        if observed and dim == 2:
            _draw_observed(ax, observed)
        _legend(ax, loc="upper right")
        _outside_note(ax, x, limits)
    for ax in axes:
        set_limits(ax, limits, ymax=style.HIST_HEADROOM * top if top > 0 else 1.0)
    style.widen_to_fit(fig, fig.suptitle(head, fontsize=13))
    return fig


def plot_samples(
    data, samples, path, *, title=None, labels=None, data_labels=None, class_names=None, units=None, region=None, region_label=None, observed=None,
    conditional=None,
) -> Path:  # fmt: skip
    """Training data beside generated samples, on the same axes limits.

    2D: two scatter panels (data blue, samples orange).  1D: overlaid density histograms in
    one panel.  ``labels`` / ``data_labels`` (integer class per point) colour points by class,
    with a legend of ``class_names`` (or "class k"; 1D then uses two panels as well).
    ``units`` (e.g. "data units") is appended to the coordinate axis labels.

    Guided samples: ``region`` (points (M, D) -> M booleans, inside) is outlined on both panels
    (2D: a dashed boundary; 1D: its intervals shaded), named ``region_label`` in the legend;
    ``observed`` ({0-based coordinate: value}) draws each observed coordinate of 2D points as
    a dotted line.  Both panels are then drawn side by side in 1D too.  ``conditional`` (values,
    words) with one observed coordinate of 2D points adds a third panel: the free coordinate of
    the samples as a histogram against those values of the true conditional.
    """
    figure = _samples_figure(
        data, samples, title=title, labels=labels, data_labels=data_labels, class_names=class_names, units=units,
        region=region, region_label=region_label, observed=observed, conditional=conditional,
    )  # fmt: skip
    return save_figure(figure, path)


# --- forward process ---------------------------------------------------------------------------


def default_forward_ks(T: int) -> list[int]:
    """0, ~T/10, T/4, T/2, 3T/4, T as integers (duplicates dropped for tiny T)."""
    return sorted({0, round(T / 10), round(T / 4), round(T / 2), round(3 * T / 4), T})


def _fmt_fraction(v: float) -> str:
    return f"{v:.3f}" if v >= 0.001 or v == 0 else f"{v:.1e}"


def _forward_figure(schedule: Schedule, data, *, ks=None, seed=0, units=None, note=None):
    x0 = as_points(data, "data")
    x0 = x0[style.finite_rows(x0)]
    if len(x0) == 0:
        raise ValueError("data: no finite points")
    T = schedule.T
    ks = default_forward_ks(T) if ks is None else list(ks)
    if not ks:
        raise ValueError("ks: need at least one grid index")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= T:
            raise ValueError(f"ks: grid indices must be integers in 0..{T} (the schedule's T), got {k!r}")
    ks = [int(k) for k in ks]
    dim = x0.shape[1]

    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x0_t = torch.from_numpy(x0)
    # One noise draw for all panels: each point moves continuously from panel to panel.
    xs = [q_sample(schedule, x0_t, k, eps).numpy() for k in ks]
    limits = style.fit_aspect(compute_limits(*xs))

    n = len(ks)
    ncols = n if n <= 4 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    if dim == 2:
        # Panels at equal axis scales, shaped like the data; at least 2.6 in wide for the titles.
        aspect = style.panel_aspect(limits)
        aw = max(2.6, 2.8 / math.sqrt(aspect))
        size = (ncols * aw + 0.15 * (ncols - 1) + 1.0, nrows * (aw * aspect + 0.52) + 0.9)
    else:
        size = (3.6 * ncols, 2.9 * nrows + 0.5)
    fig = new_figure(size, layout=_layout(dim))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)

    edges = hist_edges(limits)
    top = 0.0
    alpha_bars = schedule.alpha_bars
    snr_db = schedule.snr_db
    for i, (k, x, ax) in enumerate(zip(ks, xs, flat)):
        ab = float(alpha_bars[k])
        snr = "+∞ dB (clean data)" if k == 0 else style.fmt_db(float(snr_db[k]))
        if schedule.is_chain:
            detail = f"ᾱ = {_fmt_fraction(ab)}"
        else:  # the flow path is not variance preserving: show both coefficients
            detail = f"α = {float(schedule.alphas[k]):.2f}, σ = {float(schedule.sigmas[k]):.2f}"
        # Three short lines: side by side, "SNR = ..., alpha = ..., sigma = ..." ran into the next title.
        ax.set_title(f"k = {k}  (t = k/T = {k / T:.2f})\nSNR = {snr}\n{detail}", fontsize=10)
        if dim == 2:
            _scatter(ax, x, DATA_COLOR, None)
        else:
            top = max(top, _hist(ax, x, edges, DATA_COLOR, None))
        row, col = divmod(i, ncols)
        label_axes(ax, dim, left=col == 0, units=units)
        if row < nrows - 1 and (row + 1) * ncols + col < n:  # a panel below shows the x label
            ax.set_xlabel("")
        elif row < nrows - 1:  # nothing below (an odd panel count): this panel shows the x axis
            ax.tick_params(axis="x", labelbottom=True)
        _outside_note(ax, x, limits)

    last = flat[n - 1]
    if dim == 1:
        grid = np.linspace(limits[0, 0], limits[0, 1], 400)
        last.plot(grid, np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "--", color=REFERENCE_COLOR, lw=1.5,
                  label="N(0, 1) density\n(pure noise)")  # fmt: skip
        top = max(top, 1 / math.sqrt(2 * math.pi))
    else:
        phi = np.linspace(0, 2 * np.pi, 200)
        for r, lab in ((1.0, "N(0, I): 1σ and 2σ circles"), (2.0, None)):
            last.plot(r * np.cos(phi), r * np.sin(phi), "--", color=REFERENCE_COLOR, lw=1.0, label=lab)
    _legend(last, loc="upper right")
    for ax in flat[:n]:
        set_limits(ax, limits, ymax=style.HIST_HEADROOM * top)
    suptitle = fig.suptitle(
        rf"Forward process $x_k = \alpha_k x_0 + \sigma_k \varepsilon$: data (k = 0) → noise (k = T)"
        + (
            f"\n{schedule.name} schedule, T = {T}; SNR = ᾱ/(1 − ᾱ), ᾱ = signal fraction of the variance"
            if schedule.is_chain
            else f"\n{schedule.name} path α = 1 − t, σ = t (flow matching); SNR = α²/σ²"
        )
        + (f"\n{note}" if note else ""),
        fontsize=12,
    )
    style.widen_to_fit(fig, suptitle)
    return fig


def plot_forward(schedule: Schedule, data, path, *, ks=None, seed=0, units: str | None = None, note: str | None = None) -> Path:
    """The forward process q(x_k | x_0) at several grid indices ``ks`` (default 0 .. T, six panels).

    Each panel is titled with k, t = k/T, the SNR in dB and the signal fraction alpha_bar_k;
    the noise eps is drawn once from ``seed`` and shared by all panels.  The last panel shows
    the N(0, I) reference (density curve in 1D, 1 and 2 sigma circles in 2D).  ``units``
    (e.g. "normalised units", when ``data`` is the normalised data the model sees) is
    appended to the coordinate axis labels: "$x_1$ (normalised units)"; ``note`` is a last line
    of the title (e.g. what those units are).
    """
    return save_figure(_forward_figure(schedule, data, ks=ks, seed=seed, units=units, note=note), path)


# --- reverse process ---------------------------------------------------------------------------


def _t_label(t: float) -> str:
    return f"t = {t:.2f}"


def _uneven_times_note(times: list[float], picks: list[int], steps: int) -> str:
    """A second title line for a strip whose panels, evenly spaced in sampler steps, are unevenly
    spaced in t (a log-SNR or Karras grid takes small steps near the data); empty otherwise."""
    gaps = np.abs(np.diff(times))
    if len(gaps) < 2 or gaps.max() <= 1.25 * gaps.min():
        return ""
    shown = ", ".join(str(i) for i in picks)
    return (
        f"\npanels at evenly spaced sampler steps ({shown} of {steps}); the sampler's time grid takes "
        "smaller steps in t near the data, so the times between panels shrink"
    )


def _progression_figure(frames, *, data=None, n_panels=8, labels=None, class_names=None, note=None):
    ts, xs, labels, data, dim = _check_trajectory(frames, labels, data)
    picks = pick_frames(len(xs), n_panels)
    limits = style.fit_aspect(compute_limits(xs[-1], data))
    n = len(picks)
    if dim == 2:
        # Equal-scale panels shaped like the data (at most 1.85 in tall, at least 1.25 in wide
        # for the "t = 1.00 (noise)" titles and the tick labels).
        aspect = style.panel_aspect(limits)
        aw = float(np.clip(1.85 / aspect, 1.25, 2.6))
        size = (n * (aw + 0.12) + 0.6, aw * aspect + 1.3)
    else:
        size = (2.3 * n + 0.4, 2.9)
    fig = new_figure(size, layout=_layout(dim))
    axes = np.atleast_1d(fig.subplots(1, n, sharex=True, sharey=True))
    edges = hist_edges(limits)
    top = 0.0
    for j, (i, ax) in enumerate(zip(picks, axes)):
        x = xs[i]
        if dim == 2:
            if data is not None:
                _scatter(ax, data, DATA_COLOR, "training data", faint=True)
            _scatter(ax, x, SAMPLE_COLOR, "generated (reverse process)", labels=labels, class_names=class_names)
        else:
            if data is not None:
                d = density(data, edges)
                ax.stairs(d, edges, fill=True, color=DATA_COLOR, alpha=0.2, lw=0, label="training data")
                top = max(top, d.max(initial=0.0))
            top = max(top, _hist(ax, x, edges, SAMPLE_COLOR, "generated (reverse process)", labels=labels, class_names=class_names))
        end = " (noise)" if j == 0 and n > 1 else " (result)" if j == n - 1 and n > 1 else ""
        ax.set_title(_t_label(ts[i]) + end, fontsize=10)
        ax.tick_params(labelsize=8)
        label_axes(ax, dim, left=j == 0)
        _outside_note(ax, x, limits, fontsize=7)
    for ax in axes:
        set_limits(ax, limits, ymax=style.HIST_HEADROOM * top if top > 0 else 1.0)
    handles, labs = axes[-1].get_legend_handles_labels()
    keep = dict(zip(labs, handles))
    leg = style.legend(fig, keep.values(), keep.keys(), loc="outside lower center", ncol=min(len(keep), 6), fontsize=9)
    if n > 1:
        head = f"Reverse process: noise (t = {ts[0]:.2f}, left) → generated samples (t = {ts[-1]:.2f}, right)"
        head += _uneven_times_note([ts[i] for i in picks], picks, len(xs) - 1)
    else:
        head = f"Reverse process: generated samples (t = {ts[-1]:.2f})"
    if note:
        head += f"\n{note}".replace("; ", "\n")
    head = fig.suptitle(head, fontsize=12)
    style.widen_to_fit(fig, head, leg)
    return fig


def plot_progression(frames: Frames, path, *, data=None, n_panels: int = 8, labels=None, class_names=None, note: str | None = None) -> Path:
    """A strip of ``n_panels`` reverse-process snapshots, noise (left) to samples (right).

    ``frames`` is [(t, points)] from noise (t = 1) to data (t = 0), e.g. frames_from_records;
    panels are picked evenly (first and last always), share limits fitted to the last frame
    and ``data`` (drawn faintly behind, if given).  ``labels`` (the class each trajectory
    was sampled for) colour the points by class.  ``note`` (e.g. how the frames were sampled;
    lines at "; ") goes under the title.
    """
    figure = _progression_figure(frames, data=data, n_panels=n_panels, labels=labels, class_names=class_names, note=note)
    return save_figure(figure, path)


def _fit_around_axes(fig, ax, ax_w: float, ax_h: float, pad: float = 0.1) -> None:
    """Size ``fig`` to an ``ax_w`` x ``ax_h`` inch axes plus its decorations and ``pad``."""
    renderer = fig.canvas.get_renderer()
    tight, box = ax.get_tightbbox(renderer), ax.get_window_extent(renderer)
    dpi = fig.dpi
    left, right = (box.x0 - tight.x0) / dpi + pad, (tight.x1 - box.x1) / dpi + pad
    bottom, top = (box.y0 - tight.y0) / dpi + pad, (tight.y1 - box.y1) / dpi + pad
    w, h = ax_w + left + right, ax_h + bottom + top
    fig.set_size_inches(w, h)
    ax.set_position((left / w, bottom / h, ax_w / w, ax_h / h))


def _check_trajectory(frames, labels, data):
    """(times, point arrays, labels, data, dimension) of a reverse process drawn over ``data``."""
    ts, xs = unpack_frames(frames, as_points, what="points", timed=True)
    labels = as_labels(labels, len(xs[0]), "labels")
    data = None if data is None else as_points(data, "data")
    dim = same_dim(xs[0], data, names=("frames", "data")) if data is not None else xs[0].shape[1]
    return ts, xs, labels, data, dim


def save_trajectory_gif(
    frames: Frames, path, *, data=None, fps: int = 12, hold_last: int = 12, labels=None, class_names=None, note: str | None = None
) -> Path:
    """An animated GIF of the reverse process: one image per frame, the last held longer.

    Limits are fitted once (last frame and ``data``) and kept for every frame; ``data`` is
    drawn faintly behind.  The GIF has ``len(frames)`` images; the last one is shown for
    ``1 + hold_last`` frame durations (GIF merges identical frames, so holding is a duration).
    ``labels`` (the class each trajectory was sampled for) colour the points by class.
    ``note`` (e.g. how the frames were sampled; lines at "; ") goes under the title.
    """
    ts, xs, labels, data, dim = _check_trajectory(frames, labels, data)
    durations = gif.frame_durations(len(xs), fps, hold_last)
    limits = style.fit_aspect(compute_limits(xs[-1], data))
    head = "Reverse process: noise → data" + (f"\n{note}".replace("; ", "\n") if note else "")
    images = _trajectory_images(ts, xs, limits, dim=dim, data=data, labels=labels, class_names=class_names, head=head)
    keys = ["#ffffff", "#000000", DATA_COLOR, SAMPLE_COLOR]
    if labels is not None:
        keys += [style.class_color(k) for k in np.unique(labels)]
    pictures = gif.to_palette(images, gif.key_colour_palette(images, keys))
    return gif.write_gif(path, gif.encode_gif(pictures, durations))


def _trajectory_axes(limits, dim: int):
    """The GIF's figure (80 dpi) and its one axes at ``limits``, with an empty title and an
    empty note for hidden points: (figure, axes, axes size in inches, title, note)."""
    if dim == 2:
        # The axes are shaped like the data (equal axis scales) so no band is left empty.
        aspect = style.panel_aspect(limits)
        ax_w = min(3.65, 4.0 / aspect)
        ax_size = (ax_w, ax_w * aspect)
    else:
        ax_size = (4.5, 2.75)
    fig = new_figure((5.4, 3.8))
    ax = fig.add_axes((0.15, 0.15, 0.7, 0.7))
    fig.set_dpi(80)
    set_limits(ax, limits)
    # At most one x tick per 0.6 in: labels such as "−0.75" would otherwise nearly touch.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=max(3, int(ax_size[0] / 0.6)), steps=[1, 2, 2.5, 5, 10]))
    label_axes(ax, dim)
    title = ax.set_title("", fontsize=10)
    note = ax.text(0.03, 0.03 if dim == 2 else 0.97, "", transform=ax.transAxes, fontsize=8, color="0.3",
                   va="bottom" if dim == 2 else "top", bbox=dict(fc="white", ec="none", alpha=0.7, pad=1))  # fmt: skip
    return fig, ax, ax_size, title, note


def _moving_points(ax, xs, limits, *, data, labels, class_names):
    """2D: ``data`` faintly behind, then the first frame's points (one artist per class).
    Returns (the artists that move, update(x) moving them to frame x): each frame moves the
    same (finite, subsampled) points."""
    if data is not None:
        _scatter(ax, data, DATA_COLOR, "training data", faint=True)
    shown = shown_subset(xs[0])
    groups = [shown] if labels is None else [shown[labels[shown] == k] for k in np.unique(labels[shown])]
    artists = _scatter(ax, xs[0], SAMPLE_COLOR, "generated", labels=labels, class_names=class_names)

    def update(x):
        for artist, idx in zip(artists, groups, strict=True):
            artist.set_offsets(x[idx])

    return list(artists), update


def _moving_density(ax, xs, limits, *, data, labels, class_names):
    """1D: ``data``'s density faintly behind, then the first frame's density, the y limit
    fitted to the highest bar of any frame.  Returns (the artists that move, update(x))."""
    edges = hist_edges(limits)
    dens = [density(x, edges) for x in xs]
    top = max(d.max(initial=0.0) for d in dens)
    if data is not None:
        d = density(data, edges)
        ax.stairs(d, edges, fill=True, color=DATA_COLOR, alpha=0.2, lw=0, label="training data")
        top = max(top, d.max(initial=0.0))
    fill = ax.stairs(dens[0], edges, fill=True, color=SAMPLE_COLOR, alpha=0.35, lw=0)
    line = ax.stairs(dens[0], edges, color=SAMPLE_COLOR, lw=1.5, label="generated")
    ax.set_ylim(0, style.HIST_HEADROOM * top if top > 0 else 1.0)

    def update(x):
        d = density(x, edges)
        fill.set_data(d)
        line.set_data(d)

    return [fill, line], update


def _trajectory_images(ts, xs, limits, *, dim, data, labels, class_names, head) -> list[np.ndarray]:
    """One (H, W, 3) uint8 picture per frame, all of one size, titled with the step and t."""
    fig, ax, ax_size, title, note = _trajectory_axes(limits, dim)
    draw_moving = _moving_points if dim == 2 else _moving_density
    moving, update = draw_moving(ax, xs, limits, data=data, labels=labels, class_names=class_names)
    _legend(ax, loc="upper right")
    # Fit the figure around the axes and their decorations as drawn (tick labels such as
    # "0.00012" or "−1500" differ in width from data set to data set): nothing is clipped in
    # any frame, and every frame has this one size.
    n_steps = len(xs) - 1
    title.set_text(f"{head}\nstep {n_steps}/{n_steps},  t = {min(ts):.2f}")
    _fit_around_axes(fig, ax, *ax_size)
    images = _blit_frames(fig, ax, moving, update, title, note, ts, xs, limits, head)
    fig.clear()
    return images


def _blit_frames(fig, ax, moving, update, title, note, ts, xs, limits, head) -> list[np.ndarray]:
    """Draw every frame by blitting: what stays (axes, ticks, training data) is drawn once; each
    frame restores that picture and draws only what changes (``moving``, the title, the note),
    then what must stay on top of it (spines, legend), in the order of a full draw, so each
    picture equals a full draw of that frame.  What stays is most of the drawing, so this takes
    about half the CPU time of a full draw per frame (BENCHMARKS.md, "Time after training")."""
    n_steps = len(xs) - 1
    changing = [*moving, title, note]
    on_top = [*ax.spines.values(), ax.get_legend()]
    for artist in [*moving, note]:
        artist.set_visible(False)
    title.set_alpha(0.0)  # drawn, but invisibly: a full draw places the title
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    for artist in moving:
        artist.set_visible(True)
    title.set_alpha(None)

    images = []
    for i, (t, x) in enumerate(zip(ts, xs)):
        update(x)
        what = "noise" if i == 0 else "result" if i == n_steps else f"step {i}/{n_steps}"
        title.set_text(f"{head}\n{what},  t = {t:.2f}")
        text = style.hidden_points_note(x, limits)
        note.set_text(text)
        note.set_visible(bool(text))
        fig.canvas.restore_region(background)
        for artist in changing + on_top:
            if artist is not None and artist.get_visible():
                ax.draw_artist(artist)
        images.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    return images


# --- classifier-free guidance ------------------------------------------------------------------


def _scale_title(s: float) -> str:
    note = " (unconditional)" if s == 0 else " (conditional)" if s == 1 else ""
    return f"s = {s:g}{note}"


def plot_guidance_sweep_points(data, data_labels, sweep, path, *, class_names=None, title=None) -> Path:
    """Samples of each class (rows) at each guidance scale (columns), over that class's
    training data drawn faintly.

    ``sweep`` maps a guidance scale s to a list with one (N, D) sample array per class.  s = 0
    is the unconditional model and s = 1 the conditional one; larger s pushes samples towards
    what tells their class apart from the others (Ho & Salimans 2022), and away from the
    overlaps, at the price of diversity.
    """
    data = as_points(data, "data")
    data_labels = as_labels(data_labels, len(data), "data_labels")
    if data_labels is None:
        raise ValueError("data_labels: required (the class of each training point)")
    if not isinstance(sweep, dict) or not sweep:
        raise ValueError("sweep: expected {guidance scale: [samples of class 0, class 1, ...]}")
    scales = list(sweep)
    K = len(sweep[scales[0]])
    grid = [[as_points(x, f"sweep[{s}][{c}]") for c, x in enumerate(sweep[s])] for s in scales]
    if any(len(row) != K for row in grid):
        raise ValueError("sweep: every scale needs one sample array per class")
    dim = same_dim(data, *[x for row in grid for x in row])
    names = list(class_names) if class_names is not None else [f"class {k}" for k in range(K)]
    limits = style.fit_aspect(compute_limits(data, *[x for row in grid for x in row]))
    if dim == 2:
        aspect = style.panel_aspect(limits)
        aw = float(np.clip(2.0 / aspect, 1.4, 2.6))
        size = (len(scales) * (aw + 0.1) + 0.9, K * (aw * aspect + 0.35) + 1.1)
    else:
        size = (2.5 * len(scales) + 0.9, 2.0 * K + 1.1)
    fig = new_figure(size, layout=_layout(dim))
    axes = np.array(fig.subplots(K, len(scales), sharex=True, sharey=True, squeeze=False))
    edges = hist_edges(limits)
    top = 0.0
    for c in range(K):
        ref = data[data_labels == c]
        for j, s in enumerate(scales):
            ax, x = axes[c, j], grid[j][c]
            color = style.class_color(c)
            if dim == 2:
                _scatter(ax, ref, DATA_COLOR, "training data of the class", faint=True)
                _scatter(ax, x, color, "generated")
            else:
                d = density(ref, edges)
                ax.stairs(d, edges, fill=True, color=DATA_COLOR, alpha=0.2, lw=0)
                top = max(top, d.max(initial=0.0), _hist(ax, x, edges, color, "generated"))
            if c == 0:
                ax.set_title(_scale_title(s), fontsize=10)
            ax.tick_params(labelsize=7)
            if j == 0:  # the row's class, and the axis it stands on
                ax.set_ylabel(f"{names[c]}\n{'$x_2$' if dim == 2 else 'density'}", fontsize=11, color=color, fontweight="bold")
            if c == K - 1:
                ax.set_xlabel("$x_1$" if dim == 2 else "$x$", fontsize=10)
            _outside_note(ax, x, limits, fontsize=7)
    for ax in axes.ravel():
        set_limits(ax, limits, ymax=style.HIST_HEADROOM * top if top > 0 else 1.0)
    head = fig.suptitle(title or "Classifier-free guidance: samples of each class (rows) at guidance scale s", fontsize=12)
    from matplotlib.lines import Line2D

    dot = dict(marker="o", lw=0, markersize=5)
    handles = [Line2D([], [], color=DATA_COLOR, alpha=0.4, **dot)] + [Line2D([], [], color=style.class_color(c), **dot) for c in range(K)]
    note = style.legend(
        fig, handles, ["training data of the row's class (faint)"] + [f"generated: {n}" for n in names],
        loc="outside lower center", ncol=K + 1, fontsize=9,
    )  # fmt: skip
    style.widen_to_fit(fig, head, note)
    return save_figure(fig, path)
