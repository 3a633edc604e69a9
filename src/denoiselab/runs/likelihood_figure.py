"""likelihood.png: a point run's learned density beside the data's true one.

2-D runs: three heat maps over the data's box, the true log-density (data/densities.py, where
known), the learned one (the probability-flow ODE, runs/likelihood.py) on one colour scale,
FLOOR_NATS deep below the highest value of either, and their pointwise difference (learned -
true, in nats; blank where the true density is below the scale's floor, where a difference of
two tiny densities says nothing).  1-D runs: the learned density over a histogram of the
training points, with the true curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .likelihood import DEFAULT_TOLERANCE, LikelihoodError, LikelihoodPoints, measure_likelihood, true_log_density
from .load import Run

GRID_2D = 64  # heat-map cells a side: 4096 points, one ODE solve each
GRID_1D = 400
FLOOR_NATS = 12.0  # the colour scale's depth below the highest log-density
DIFFERENCE_NATS = 3.0  # the difference panel's scale: +- this many nats


def render_likelihood_figure(run: Run, out: str | Path, *, label: int | None = None, rtol: float = DEFAULT_TOLERANCE):
    """Draw ``out`` for a 1-D or 2-D point run; returns (path, the grid's RunLikelihood)."""
    from ..viz.style import compute_limits

    if run.is_image or run.dim not in (1, 2):
        raise LikelihoodError(f"{run.path}: the likelihood figure is for 1-D and 2-D point runs (this one has shape {run.sample_shape})")
    data = run.data if label is None else run.data[run.labels == label]
    limits = compute_limits(data, margin=0.15)
    if run.dim == 1:
        grid = np.linspace(*limits[0], GRID_1D)[:, None]
        what = f"{GRID_1D} points"
    else:
        xs, ys = (np.linspace(*limits[d], GRID_2D) for d in range(2))
        grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        what = f"a {GRID_2D} x {GRID_2D} grid"
    result = measure_likelihood(run, LikelihoodPoints(grid.astype(np.float32), what), label=label, rtol=rtol, atol=rtol)
    learned = -result.nll
    truth = true_log_density(run, grid, label)
    draw = _draw_1d if run.dim == 1 else _draw_2d
    fig = draw(run, data, grid, learned, truth, limits)
    given = "" if label is None else f" of class {run.class_names[label]}"
    fig.suptitle(
        f"{run.path.name}{given}: learned {'log-density' if run.dim == 2 else 'density'} (probability-flow ODE, rk45 rtol {rtol:g}, "
        f"{result.evaluations:.0f} model evaluations a point) against the data's own"
    )
    from ..viz.style import save_figure, widen_to_fit

    widen_to_fit(fig, fig._suptitle)
    return save_figure(fig, out), result


def _draw_2d(run: Run, data, grid, learned, truth, limits):
    from ..viz.style import label_axes, new_figure

    n = int(np.sqrt(len(grid)))
    learned = learned.reshape(n, n)
    panels = 3 if truth is not None else 1
    fig = new_figure((4.6 * panels, 4.4), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    extent = (*limits[0], *limits[1])
    top = float(np.nanmax(learned)) if truth is None else max(float(np.nanmax(learned)), float(np.max(truth)))
    scale = {"vmin": top - FLOOR_NATS, "vmax": top, "cmap": "viridis", "origin": "lower", "extent": extent, "aspect": "equal"}
    shown = []
    if truth is not None:
        truth = truth.reshape(n, n)
        shown.append(axes[0].imshow(np.maximum(truth, top - FLOOR_NATS), **scale))
        axes[0].set_title("true log-density log p(x)")
    ax_learned = axes[1] if truth is not None else axes[0]
    shown.append(ax_learned.imshow(np.maximum(learned, top - FLOOR_NATS), **scale))
    ax_learned.set_title("learned log-density log q(x)")
    for ax in axes[: len(shown)]:
        label_axes(ax, 2, left=ax is axes[0], units="data units")
    fig.colorbar(shown[-1], ax=axes[: len(shown)].tolist(), shrink=0.8, label=f"nats (colour floor {FLOOR_NATS:g} below the top)")
    if truth is not None:
        difference = np.where(truth > top - FLOOR_NATS, learned - truth, np.nan)
        image = axes[2].imshow(
            difference, cmap="RdBu_r", vmin=-DIFFERENCE_NATS, vmax=DIFFERENCE_NATS, origin="lower", extent=extent, aspect="equal"
        )
        axes[2].set_title("log q(x) - log p(x)")
        label_axes(axes[2], 2, left=False, units="data units")
        fig.colorbar(image, ax=axes[2], shrink=0.8, label="nats (blue: the model too low; blank: p below the floor)")
    return fig


def _draw_1d(run: Run, data, grid, learned, truth, limits):
    from ..viz.style import DATA_COLOR, SAMPLE_COLOR, label_axes, new_figure

    fig = new_figure((7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.hist(data[:, 0], bins=60, range=tuple(limits[0]), density=True, color=DATA_COLOR, alpha=0.35, label="training points (histogram)")
    if truth is not None:
        ax.plot(grid[:, 0], np.exp(truth), color="0.2", linestyle="--", label="true density p(x)")
    ax.plot(grid[:, 0], np.exp(learned), color=SAMPLE_COLOR, label="learned density q(x)")
    label_axes(ax, 1, units="data units")
    ax.legend(loc="upper right")
    return fig
