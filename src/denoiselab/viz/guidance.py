"""Figures of gradient guidance: guided points beside the exact conditional, inpainting grids,
classifier-guided images at several scales.

Colours keep their meaning: exact (or data) draws blue, guided samples orange; in an inpainting
grid the unknown pixels of the masked input are shown red.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .images import to_display
from .style import DATA_COLOR, SAMPLE_COLOR, new_figure, save_figure


@dataclass
class PointPanel:
    """One panel of ``plot_guided_points``.  ``observed`` {0-based coordinate: value} draws the
    density of the one free coordinate (2D points with one observed); otherwise a scatter."""

    title: str
    samples: np.ndarray  # (N, 2) guided samples, data units
    reference: np.ndarray | None = None  # (M, 2) exact draws of the conditional
    data: np.ndarray | None = None  # faint background: the unguided distribution
    region: Callable[[np.ndarray], np.ndarray] | None = None  # points (K, 2) -> inside (K,) bool
    observed: dict[int, float] | None = None
    reference_density: tuple[np.ndarray, np.ndarray] | None = None  # (grid, density) of the free coordinate


def _scatter_panel(ax, p: PointPanel, limits) -> None:
    if p.region is not None:
        gx, gy = np.meshgrid(np.linspace(*limits[0], 200), np.linspace(*limits[1], 200))
        inside = p.region(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
        ax.contourf(gx, gy, inside.astype(float), levels=[0.5, 1.5], colors=["#2ca02c"], alpha=0.12)
        ax.contour(gx, gy, inside.astype(float), levels=[0.5], colors=["#2ca02c"], linewidths=1.0)
    if p.data is not None:
        ax.scatter(p.data[:1000, 0], p.data[:1000, 1], s=2, c="0.75", lw=0, label="unguided")
    ax.scatter(p.samples[:2000, 0], p.samples[:2000, 1], s=3, c=SAMPLE_COLOR, alpha=0.6, lw=0, label="guided")
    if p.reference is not None:  # on top, lighter: where the two agree the colours mix
        ax.scatter(p.reference[:2000, 0], p.reference[:2000, 1], s=2, c=DATA_COLOR, alpha=0.35, lw=0, label="exact conditional")
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")


def _density_panel(ax, p: PointPanel, limits) -> None:
    (i, a), = p.observed.items()
    free = 1 - i
    lo, hi = limits[free]
    edges = np.linspace(lo, hi, 61)
    ax.hist(p.samples[:, free], bins=edges, density=True, color=SAMPLE_COLOR, alpha=0.6, label="guided")
    if p.reference is not None:
        ax.hist(p.reference[:, free], bins=edges, density=True, histtype="step", color=DATA_COLOR, lw=1.2, label="exact draws")
    if p.reference_density is not None:
        ax.plot(*p.reference_density, color=DATA_COLOR, lw=1.5, label="exact density")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(f"x{free + 1}  (given x{i + 1} = {a:g})")
    ax.set_ylabel("density")


def plot_guided_points(panels: list[PointPanel], path, *, title: str | None = None, limits=None):
    """Guided 2D points, one panel per guidance, each beside its exact conditional where known."""
    everything = np.concatenate([np.asarray(p.samples) for p in panels] + [np.asarray(p.data) for p in panels if p.data is not None])
    if limits is None:
        lo, hi = np.quantile(everything, 0.002, axis=0), np.quantile(everything, 0.998, axis=0)
        pad = 0.1 * (hi - lo)
        limits = np.stack([lo - pad, hi + pad], 1)
    fig = new_figure((4.2 * len(panels), 4.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, p in zip(axes, panels):
        (_density_panel if p.observed else _scatter_panel)(ax, p, limits)
        ax.set_title(p.title, fontsize=10)
        ax.legend(loc="upper right", fontsize=7, markerscale=3, framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def _masked_display(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) display of a (C, H, W) image with the unknown pixels (mask False) in red."""
    disp = to_display(image)
    rgb = np.repeat(disp, 3, axis=0) if disp.shape[0] == 1 else disp
    rgb = rgb.transpose(1, 2, 0).copy()
    rgb[~mask] = 0.5 * rgb[~mask] + 0.5 * np.array([0.85, 0.1, 0.1])
    return rgb


def _gray_or_rgb(image: np.ndarray) -> np.ndarray:
    disp = to_display(image)
    return disp[0] if disp.shape[0] == 1 else disp.transpose(1, 2, 0)


def plot_inpainting(images, masks, completions, path, *, row_labels=None, title: str | None = None):
    """Rows of: the masked input (unknown pixels red), the completions, the original.

    ``images`` (R, C, H, W) or one (C, H, W); ``masks`` (R, H, W) or (H, W), True = known;
    ``completions`` (R, n, C, H, W) or (n, C, H, W); pixels in [-1, 1]."""
    images, masks, completions = np.asarray(images), np.asarray(masks, dtype=bool), np.asarray(completions)
    if images.ndim == 3:
        images, masks, completions = images[None], masks[None], completions[None]
    rows, n = completions.shape[:2]
    cols = n + 2
    cell = 0.9 if images.shape[-1] <= 16 else 1.2
    fig = new_figure((cell * cols + 0.8, cell * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(_masked_display(images[r], masks[r]), interpolation="nearest")
        for j in range(n):
            axes[r, 1 + j].imshow(_gray_or_rgb(completions[r, j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, -1].imshow(_gray_or_rgb(images[r]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("masked\n(red: unknown)", fontsize=8)
    axes[0, 1].set_title("completions", fontsize=8, loc="left")
    axes[0, -1].set_title("original", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_classifier_scales(samples_by_scale: dict[float, np.ndarray], path, *, row_label: str = "s", title: str | None = None):
    """Rows of images (n, C, H, W) drawn at classifier-guidance scales, the scale at the left."""
    scales = list(samples_by_scale)
    n = max(len(v) for v in samples_by_scale.values())
    fig = new_figure((0.8 * n + 0.8, 0.8 * len(scales) + 0.8), layout="constrained")
    axes = fig.subplots(len(scales), n, squeeze=False)
    for r, s in enumerate(scales):
        for j in range(n):
            ax = axes[r, j]
            if j < len(samples_by_scale[s]):
                ax.imshow(_gray_or_rgb(samples_by_scale[s][j]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{row_label} = {s:g}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
