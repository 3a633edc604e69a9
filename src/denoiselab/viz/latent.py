"""Figures of latent diffusion: reconstructions beside their originals with the error, the latent
space as a scatter coloured by class (2-D latents directly, others by PCA), and the ceiling
figure (held-out images, the autoencoder's reconstructions, the latent model's samples).

Images are (N, C, H, W) in [-1, 1] as in viz/images.py, laid out one row per class when labels
are given.  Every function writes its file atomically and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import style
from .images import GRID_PAD, _layout, _name_rows, _tile, as_images, to_display
from .style import new_figure, save_figure

ERROR_CMAP = "magma"


def _class_grid(images: np.ndarray, labels, class_names, ncols: int, pad_value: float = 1.0):
    """(display array, row names, slots) of a grid with a row per class (or rows of ncols)."""
    x = as_images(images)
    slots, names, _ = _layout(len(x), labels, ncols, class_names)
    return _tile(to_display(x), slots, GRID_PAD, pad_value), names, slots


def _scale(image_px: int) -> float:
    return max(2, round(48 / image_px)) if image_px < 48 else 1


def plot_reconstructions(images, reconstructions, path, *, labels=None, class_names=None, title=None, ncols: int = 8) -> Path:
    """Three grids stacked: the originals, their reconstructions through the autoencoder, and the
    absolute error per pixel (0 = exact, 2 = black for white) on a colour scale."""
    x, r = as_images(images), as_images(reconstructions)
    if x.shape != r.shape:
        raise ValueError(f"images {x.shape} and reconstructions {r.shape} differ in shape")
    error = np.abs(x - r).mean(1, keepdims=True)  # channels averaged: one error per pixel
    top, names, slots = _class_grid(x, labels, class_names, ncols)
    middle, _, _ = _class_grid(r, labels, class_names, ncols)
    # The error grid is tiled in [0, 2] directly (gaps at 0, black); to_display would map it.
    err = _tile(error, slots, GRID_PAD, 0.0)
    h = x.shape[2]
    k = _scale(h)
    gh, gw = top.shape[:2]
    fig = new_figure((3 * gw * k / style.DPI + 2.5, gh * k / style.DPI + 1.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [(top, "original (held out)", None), (middle, "reconstruction", None), (err, "|error| per pixel", ERROR_CMAP)]
    for i, (ax, (grid, head, cmap)) in enumerate(zip(axes, panels)):
        if cmap is None:
            im = ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        else:
            # The colour scale ends at the largest error (at least 0.1): a good autoencoder's
            # errors would all be black on the full 0..2 range.
            im = ax.imshow(grid, cmap=cmap, vmin=0, vmax=max(0.1, float(error.max())), interpolation="nearest")
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            bar.set_label("|error| (pixels span -1 to 1)")
        ax.set_title(head, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0 and names is not None:
            _name_rows(ax, names, h, (h + GRID_PAD) * k)
    fig.suptitle(title or "Autoencoder reconstructions", fontsize=11)
    return save_figure(fig, path)


def project_2d(z: np.ndarray, basis: tuple | None = None):
    """(N, D) latents -> (N, 2) coordinates, axis names and the basis used (mean, components,
    shares of variance; None for D <= 2): the latents themselves when D = 2, else the first two
    principal components of ``z`` (or the ``basis`` given, so several panels share one)."""
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    d = z.shape[1]
    if d == 2:
        return z, ("z₁", "z₂"), None
    if d == 1:
        return np.column_stack([z[:, 0], np.zeros(len(z))]), ("z", ""), None
    if basis is None:
        mean = z.mean(0)
        _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
        share = s**2 / np.sum(s**2)
        basis = (mean, vt[:2], share[:2])
    mean, comps, share = basis
    coords = (z - mean) @ comps.T
    return coords, (f"PC 1 ({100 * share[0]:.0f}% of variance)", f"PC 2 ({100 * share[1]:.0f}%)"), basis


def plot_latent_scatter(panels: dict, path, *, class_names=None, title=None) -> Path:
    """Latent points coloured by class, one panel per entry of ``panels`` {heading: (z, labels)}
    (labels may be None).  2-D latents are drawn as they are; larger ones by the first panel's
    principal components, with the share of variance each shows."""
    fig = new_figure((4.2 * len(panels) + 1.2, 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharex=True, sharey=True))
    basis, dim = None, None
    shown_classes: set[int] = set()
    for ax, (head, (z, labels)) in zip(axes, panels.items()):
        z = np.asarray(z).reshape(len(z), -1)
        dim = z.shape[1]
        xy, names, basis = project_2d(z, basis)
        size = style.marker_size(len(xy))
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=size, color=style.SAMPLE_COLOR, alpha=0.7, linewidths=0)
        else:
            labels = np.asarray(labels)
            for c in np.unique(labels):
                sel = labels == c
                label = None if int(c) in shown_classes else (str(class_names[c]) if class_names is not None else f"class {c}")
                shown_classes.add(int(c))
                ax.scatter(xy[sel, 0], xy[sel, 1], s=size * 2, color=style.class_color(int(c)), alpha=0.75, linewidths=0, label=label)
        ax.set_title(f"{head} (n = {len(xy)})", fontsize=10)
        ax.set_xlabel(names[0])
        if ax is axes[0]:
            ax.set_ylabel(names[1])
        ax.grid(alpha=0.3)
    if shown_classes:
        fig.legend(loc="outside right center", fontsize=8, markerscale=2, title="class", title_fontsize=8)
    how = "" if dim == 2 else f" ({dim}-D latent, PCA of the first panel)"
    fig.suptitle((title or "Latent space") + how, fontsize=11)
    return save_figure(fig, path)


def plot_ceiling(panels: dict, path, *, labels=None, class_names=None, title=None, ncols: int = 8) -> Path:
    """Image grids side by side, one per entry of ``panels`` {heading: images}, each with a row
    per class (the same ``labels`` for every panel): the held-out images, the same images
    through the autoencoder alone, and the latent model's samples.  A latent model samples what
    the decoder can produce, so the middle panel is the best it can do."""
    grids = []
    h = None
    for head, images in panels.items():
        x = as_images(images)
        h = x.shape[2]
        grid, names, _ = _class_grid(x, labels, class_names, ncols)
        grids.append((head, grid, names))
    k = _scale(h)
    gh, gw = grids[0][1].shape[:2]
    fig = new_figure((len(grids) * gw * k / style.DPI + 1.5, gh * k / style.DPI + 1.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(grids)))
    for i, (ax, (head, grid, names)) in enumerate(zip(axes, grids)):
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(head, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0 and names is not None:
            _name_rows(ax, names, h, (h + GRID_PAD) * k)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.suptitle(title or "The autoencoder's ceiling", fontsize=11)
    return save_figure(fig, path)
