"""Figures of image diffusion: sample grids, the forward process on an image, schedules compared
on one image, guidance sweeps, and the reverse process (strip and GIF).

Images are arrays or tensors of shape (N, C, H, W) with pixels in [-1, 1]: C = 1 is drawn in grey
with -1 black and +1 white (digits are light strokes on a dark ground), C = 3 as RGB.  Values
outside [-1, 1] are clipped for display (a noised image mostly lies outside), NaN is shown mid
grey.  Pixels are drawn with nearest-neighbour interpolation, so 8x8 images stay crisp squares,
and grids are tiled with white gaps that match the figure's background.

With ``labels`` (one integer class per image) a grid has one row per class, sorted by label,
with the class name at the left (``rows_by_class`` is that layout).  Every function writes its
file atomically and returns the path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from ..forward_process import q_sample
from ..schedules import Schedule
from . import gif, style
from .frames import pick_frames, unpack_frames
from .gif import GIF_MAX_LEVELS, GIF_MIN_LEVELS, RGB_LEVELS, frame_levels
from .style import as_labels, new_figure, save_figure

GRID_PAD = 1  # pixels of gap between the images of a grid (and around it)
PAD_VALUE = 1.0  # gap colour in display units [0, 1]: white, like the figure background
MAX_CLASS_COLS = 12  # images shown per class row unless nrow says otherwise
MAX_PROGRESSION_ROWS = 8  # images (rows) in plot_image_progression
DEFAULT_COMPARE_TS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)

# GIF: the grid is scaled by an integer factor to about GIF_TARGET_PX on its long side, and the
# factor is lowered until the file fits GIF_BUDGET.  Noise is incompressible, so each frame is
# stored with no more grey levels than the noise it still carries can show (gif.frame_levels).
GIF_TARGET_PX = 400
GIF_MAX_SCALE = 8
GIF_BUDGET = 400_000  # bytes
GIF_FONT_PX = 14


# --- input checks ------------------------------------------------------------------------------


def _float_array(x, name: str, expected: str) -> np.ndarray:
    """A float32 NumPy array from an array-like or a torch tensor (moved to the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected {expected}, got {type(x).__name__}") from exc


def as_images(x, name: str = "images") -> np.ndarray:
    """Check and convert images to a float32 array of shape (N, C, H, W), C in {1, 3}, N >= 1.

    Torch tensors are accepted (moved to CPU).  Non-finite pixels are kept (shown mid grey)."""
    arr = _float_array(x, name, "a numeric array of images (N, C, H, W)")
    if arr.ndim != 4:
        hint = "; for one image pass x[None]" if arr.ndim == 3 else ""
        raise ValueError(f"{name}: expected images of shape (N, C, H, W), got shape {tuple(arr.shape)}{hint}")
    n, c, h, w = arr.shape
    if n == 0:
        raise ValueError(f"{name}: no images (N = 0)")
    if c not in (1, 3):
        raise ValueError(
            f"{name}: channel axis 1 must have C = 1 (grey) or 3 (RGB), got shape {tuple(arr.shape)}"
            " (images are channels-first: (N, C, H, W))"
        )
    if h == 0 or w == 0:
        raise ValueError(f"{name}: empty images of size {h}x{w}")
    return arr


def as_image(x, name: str = "image") -> np.ndarray:
    """One image as (1, C, H, W): accepts (H, W) grey, (C, H, W) or (N, C, H, W) (kept as is)."""
    arr = _float_array(x, name, "a numeric image array")
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[None]
    return as_images(arr, name)


def to_display(x) -> np.ndarray:
    """Pixels in [-1, 1] -> display values in [0, 1] (clipped; NaN -> 0.5, +-inf -> 1 / 0)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    return int(v)


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


# --- grids -------------------------------------------------------------------------------------


def _tile(disp: np.ndarray, slots: np.ndarray, pad: int, pad_value: float) -> np.ndarray:
    """Place ``disp[slots[r, j]]`` (display values) at row r, column j; -1 leaves a gap."""
    _, c, h, w = disp.shape
    rows, cols = slots.shape
    out = np.full((c, rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value, dtype=np.float64)
    for r in range(rows):
        for j in range(cols):
            i = slots[r, j]
            if i >= 0:
                y, x = pad + r * (h + pad), pad + j * (w + pad)
                out[:, y : y + h, x : x + w] = disp[i]
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def _row_major_slots(n: int, ncols: int) -> np.ndarray:
    slots = np.full(math.ceil(n / ncols) * ncols, -1, dtype=np.int64)
    slots[:n] = np.arange(n)
    return slots.reshape(-1, ncols)


def image_grid(images, nrow: int, pad: int = GRID_PAD, pad_value: float = PAD_VALUE) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one display array in [0, 1].

    ``nrow`` images per row (as torchvision's make_grid), rows filled left to right, top to
    bottom; ``pad`` pixels of ``pad_value`` (a display value in [0, 1], default white) between
    the images and around the grid; unused places in the last row are ``pad_value`` too.
    Returns (H', W') for grey images and (H', W', 3) for RGB, with
    H' = rows * (H + pad) + pad and W' = nrow * (W + pad) + pad.
    """
    x = as_images(images)
    nrow = _positive_int(nrow, "nrow")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad: expected an integer >= 0, got {pad!r}")
    if not (isinstance(pad_value, (int, float, np.floating)) and 0.0 <= float(pad_value) <= 1.0):
        raise ValueError(f"pad_value: expected a display value in [0, 1], got {pad_value!r}")
    return _tile(to_display(x), _row_major_slots(len(x), nrow), int(pad), float(pad_value))


def rows_by_class(labels) -> list[list[int]]:
    """Indices of the images of each class, one list per distinct label in ascending order,
    each in the images' original order: the rows of a grid drawn with labels."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels: expected a 1D array of integer labels, got shape {arr.shape}")
    labs = as_labels(arr, arr.shape[0])
    return [np.flatnonzero(labs == k).tolist() for k in np.unique(labs)]


def class_name(k: int, class_names=None) -> str:
    """The name of class ``k``: ``class_names[k]`` (a sequence or a mapping), else "class k"."""
    if class_names is None:
        return f"class {k}"
    k = int(k)
    if isinstance(class_names, Mapping):
        if k not in class_names:
            raise ValueError(f"class_names: no name for label {k} (names given for {sorted(class_names)})")
        return str(class_names[k])
    if not 0 <= k < len(class_names):  # no negative indexing: label -1 is not the last name
        raise ValueError(f"class_names: no name for label {k} (got {len(class_names)} names, for labels 0..{len(class_names) - 1})")
    return str(class_names[k])


def _class_layout(labels: np.ndarray, ncols: int):
    """(slots, classes, counts): one row per class, at most ``ncols`` images per row."""
    rows = rows_by_class(labels)
    slots = np.full((len(rows), ncols), -1, dtype=np.int64)
    for r, idx in enumerate(rows):
        shown = idx[:ncols]
        slots[r, : len(shown)] = shown
    classes = [int(labels[idx[0]]) for idx in rows]
    return slots, classes, [len(idx) for idx in rows]


def _layout(n: int, labels, nrow, class_names):
    """Slots, row names (None without labels), and a note when some images are left out."""
    if labels is None:
        ncols = math.ceil(math.sqrt(n)) if nrow is None else _positive_int(nrow, "nrow")
        return _row_major_slots(n, ncols), None, ""
    labs = as_labels(labels, n, "labels")
    most = max(len(r) for r in rows_by_class(labs))
    ncols = min(most, MAX_CLASS_COLS) if nrow is None else _positive_int(nrow, "nrow")
    slots, classes, counts = _class_layout(labs, ncols)
    names = [class_name(k, class_names) for k in classes]
    note = f"first {ncols} of each class shown" if max(counts) > ncols else ""
    return slots, names, note


# --- figure helpers ----------------------------------------------------------------------------
#
# Image panels are laid out by hand (``_arrange``) rather than by a layout engine: every panel is
# a whole number of screen pixels per image pixel, so pixels are equal squares and 1-pixel gaps
# are equally thick, and the figure is sized to its contents (no empty bands).


def _cell_inches(h: int) -> float:
    """Displayed size of one image in a grid: 0.55 in for 8x8, 0.8 in for 16x16, 1 in from 24x24."""
    return float(np.clip(0.3 + 0.031 * h, 0.5, 1.0))


def _grid_scale(h: int, w: int, rows: int, cols: int, *, max_w: float, max_h: float, pad: int = GRID_PAD) -> int:
    """Screen pixels per image pixel for a grid of rows x cols images within max_w x max_h inches
    (at least 1, and at least a quarter inch per image when that fits)."""
    dpi = style.DPI
    px = _cell_inches(max(h, w)) / (max(h, w) + pad)
    gw, gh = cols * (w + pad) + pad, rows * (h + pad) + pad
    px = min(px, max_w / gw, max_h / gh)
    px = max(px, 0.25 / (max(h, w) + pad))
    return max(1, int(px * dpi + 1e-9))


def _panel_scale(h: int, w: int, inches: float) -> int:
    """Screen pixels per image pixel for a single-image panel about ``inches`` wide."""
    return max(1, round(inches * style.DPI / max(h, w)))


def _show(ax, grid: np.ndarray, *, frame: bool = False) -> None:
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_aspect("auto")  # the panel is sized to the image by _arrange: square pixels, no shrinking
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        # A single image gets a thin grey frame (a dark image would merge with a dark neighbour);
        # a grid has its own white gaps.
        spine.set_visible(frame)
        spine.set_color("0.6")
        spine.set_linewidth(0.6)


def _arrange(fig, axes, pw_px: int, ph_px: int, *, gap: float = 0.1, title: str | None = None,
             title_size: float = 12, pad: float = 0.1) -> None:  # fmt: skip
    """Place an (R, C) array of axes as panels of exactly pw_px x ph_px screen pixels, with room
    for each row's and column's decorations (titles, tick labels, captions) as measured, ``gap``
    inches between them, an optional suptitle on top, and size the figure around it all."""
    axes = np.asarray(axes, dtype=object)
    if axes.ndim == 1:
        axes = axes[None, :]
    dpi = fig.dpi
    pw, ph = pw_px / dpi, ph_px / dpi
    R, C = axes.shape
    # Decorations have a fixed size in pixels, so measure them once at a provisional placement.
    W0, H0 = C * (pw + 3) + 1, R * (ph + 3) + 1
    fig.set_size_inches(W0, H0)
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_position(((1.5 + c * (pw + 3)) / W0, (1.5 + (R - 1 - r) * (ph + 3)) / H0, pw / W0, ph / H0))
    renderer = fig.canvas.get_renderer()
    dec = np.zeros((4, R, C))  # left, right, bottom, top (inches)
    for (r, c), ax in np.ndenumerate(axes):
        if ax.get_visible():
            tight, box = ax.get_tightbbox(renderer), ax.get_window_extent(renderer)
            dec[:, r, c] = np.maximum(0.0, [box.x0 - tight.x0, tight.x1 - box.x1, box.y0 - tight.y0, tight.y1 - box.y1]) / dpi
    left, right = dec[0].max(0), dec[1].max(0)
    bottom, top = dec[2].max(1), dec[3].max(1)
    head_w = head_h = 0.0
    sup = None
    if title:
        sup = fig.suptitle(title, fontsize=title_size, va="top")
        ext = sup.get_window_extent(renderer)
        head_w, head_h = ext.width / dpi, ext.height / dpi + 0.1
    block_w = float(np.sum(left + pw + right) + gap * (C - 1))
    block_h = float(np.sum(top + ph + bottom) + gap * (R - 1))

    def snap(v: float) -> float:  # whole screen pixels
        return round(v * dpi) / dpi

    W, H = snap(max(block_w, head_w) + 2 * pad), snap(block_h + head_h + 2 * pad)
    fig.set_size_inches(W, H)
    x = (W - block_w) / 2
    xs = []
    for c in range(C):
        xs.append(snap(x + left[c]))
        x += left[c] + pw + right[c] + gap
    y = H - pad - head_h
    ys = []
    for r in range(R):
        ys.append(snap(y - top[r] - ph))
        y -= top[r] + ph + bottom[r] + gap
    for (r, c), ax in np.ndenumerate(axes):
        ax.set_position((xs[c] / W, ys[r] / H, pw / W, ph / H))
    if sup is not None:
        sup.set_y(1.0 - pad / H)


def _row_centres(rows: int, h: int, pad: int = GRID_PAD) -> list[float]:
    return [pad + r * (h + pad) + (h - 1) / 2 for r in range(rows)]


def _name_rows(ax, names, h: int, row_px: int) -> None:
    """Class names at the left of each grid row (as y tick labels, without tick marks)."""
    size = float(np.clip(0.45 * row_px / style.DPI * 72, 7, 10))
    ax.set_yticks(_row_centres(len(names), h), names)
    ax.tick_params(axis="y", length=0, labelsize=size, pad=4)


def _fmt_scale(s: float) -> str:
    return f"{s:g}"


def _fmt_t(t: float) -> str:
    """0.25 -> "0.25", 0.125 -> "0.125", 1/7 -> "0.143", 1.0 -> "1"."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


# --- sample grid -------------------------------------------------------------------------------


def _grid_figure(images, *, labels=None, class_names=None, title=None, nrow=None):
    x = as_images(images)
    n, _, h, w = x.shape
    slots, names, note = _layout(n, labels, nrow, class_names)
    grid = _tile(to_display(x), slots, GRID_PAD, PAD_VALUE)
    rows, cols = slots.shape
    k = _grid_scale(h, w, rows, cols, max_w=11.0, max_h=11.0)
    fig = new_figure((4.0, 4.0))
    ax = fig.add_subplot()
    _show(ax, grid)
    if names is not None:
        _name_rows(ax, names, h, (h + GRID_PAD) * k)
    head = title or (f"Samples (n = {n}" + (", one row per class" if names else "") + ")")
    if note:
        head += f"\n({note})"
    _arrange(fig, [[ax]], grid.shape[1] * k, grid.shape[0] * k, title=head)
    return fig


def plot_image_grid(images, path, *, labels=None, class_names=None, title=None, nrow: int | None = None) -> Path:
    """A grid of images.  Without ``labels``: ``nrow`` images per row (default a square-ish
    grid).  With ``labels``: one row per class, sorted by label, the class name at the left
    (``class_names[label]``, default "class k"), ``nrow`` images per row at most (default the
    largest class, capped at MAX_CLASS_COLS; the title says when some are left out)."""
    return save_figure(_grid_figure(images, labels=labels, class_names=class_names, title=title, nrow=nrow), path)


# --- forward process on an image ---------------------------------------------------------------


def default_strip_ks(T: int, n: int = 9) -> list[int]:
    """``n`` grid indices evenly spread from 0 to T (fewer for tiny T: duplicates dropped)."""
    return sorted({_round_half_up(i * T / (n - 1)) for i in range(n)})


def _check_ks(ks, T: int) -> list[int]:
    ks = list(ks)
    if not ks:
        raise ValueError("ks: need at least one grid index")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= T:
            raise ValueError(f"ks: grid indices must be integers in 0..{T} (the schedule's T), got {k!r}")
    return [int(k) for k in ks]


def _check_schedule(s, name: str = "schedule") -> Schedule:
    if not isinstance(s, Schedule):
        raise ValueError(f"{name}: expected a denoiselab Schedule, got {type(s).__name__}")
    return s


def forward_captions(schedule: Schedule, ks: Sequence[int]) -> list[dict]:
    """What each panel of the forward strip says: k, t = k/T, the SNR in dB, and the signal and
    noise shares of the variance of x_k in percent.

    Seed 002 shows "Signal Strength" and "Noise Level" in percent (100% / 0% at t = 0) next to
    the SNR, without a formula; its text says a higher alpha_bar means more signal and less
    noise.  We read them as the shares of the variance of x_k = alpha_k x_0 + sigma_k eps:
    signal = alpha^2 / (alpha^2 + sigma^2), noise = sigma^2 / (alpha^2 + sigma^2).  They add up
    to 100%, their ratio is the SNR shown beside them, and on a DDPM schedule (alpha^2 +
    sigma^2 = 1) they are alpha_bar_k and 1 - alpha_bar_k, the "signal fraction" of
    plot_schedule.  (sqrt(alpha_bar) and sqrt(1 - alpha_bar), the coefficients, would not add
    up to 100%.)  The flow path (alpha = 1 - t, sigma = t) is not variance preserving; the
    shares are still defined.
    """
    s = _check_schedule(schedule)
    ks = _check_ks(ks, s.T)
    a2, s2 = s.alphas.double() ** 2, s.sigmas.double() ** 2
    out = []
    for k in ks:
        signal = float(a2[k] / (a2[k] + s2[k]))
        out.append(
            {"k": k, "t": k / s.T, "snr_db": float(s.snr_db[k]), "signal_pct": 100.0 * signal, "noise_pct": 100.0 * (1.0 - signal)}
        )
    return out


def fmt_pct(p: float) -> str:
    """A percentage that reads 0% or 100% only when it is exactly that: 71%, 0.31%, 99.7%."""
    if p <= 0.0:
        return "0%"
    if p >= 100.0:
        return "100%"
    if p < 0.001:
        return "< 0.001%"
    if p > 99.999:
        return "> 99.999%"
    if p < 1.0:
        return f"{p:.2g}%"
    if p > 99.0:
        rest = f"{100.0 - p:.1g}"  # the distance to 100, to one significant digit: 99.94%
        return f"{p:.{len(rest.split('.')[1]) if '.' in rest else 0}f}%"
    return f"{p:.0f}%"


def _caption_lines(c: dict) -> list[str]:
    snr = "+∞ dB" if c["k"] == 0 else style.fmt_db(c["snr_db"])
    return [f"t = {_fmt_t(c['t'])}", f"SNR {snr}", f"signal {fmt_pct(c['signal_pct'])}", f"noise {fmt_pct(c['noise_pct'])}"]


def _eps(shape, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64)


def noised_images(schedule: Schedule, image, ks: Sequence[int], *, seed: int = 0) -> np.ndarray:
    """x_k = alpha_k x_0 + sigma_k eps for each k in ``ks``, with ONE eps (from ``seed``) for all
    of them, so the panels differ only by k.  Returns (len(ks), N, C, H, W), not clipped."""
    s = _check_schedule(schedule)
    x0 = torch.from_numpy(as_image(image).astype(np.float64))
    ks = _check_ks(ks, s.T)
    eps = _eps(x0.shape, seed)
    return np.stack([q_sample(s, x0, k, eps).numpy() for k in ks])


def _caption_below(ax, lines, *, fontsize=9, colors=None):
    """Lines of text under a panel, each at a fixed offset in points (independent of its size)."""
    colors = colors or [None] * len(lines)
    step = 1.3 * fontsize
    for i, (text, color) in enumerate(zip(lines, colors)):
        ax.annotate(text, xy=(0.5, 0.0), xycoords="axes fraction", xytext=(0, -3 - step * i), textcoords="offset points",
                    ha="center", va="top", fontsize=fontsize, color=color or "0.1")  # fmt: skip


def _strip_figure(schedule, image, *, ks=None, seed=0, title=None):
    s = _check_schedule(schedule)
    x0 = as_image(image)
    ks = default_strip_ks(s.T) if ks is None else _check_ks(ks, s.T)
    panels = noised_images(s, x0, ks, seed=seed)
    caps = forward_captions(s, ks)
    n_img, _, h, w = x0.shape
    n = len(ks)
    k_px = _panel_scale(h, w, float(np.clip(12.0 / n, 1.1, 1.6)))
    fig = new_figure((4.0, 4.0))
    axes = np.array([[fig.add_subplot() for _ in range(n)] for _ in range(n_img)], dtype=object)
    one = np.zeros((1, 1), np.int64)
    for j, (k, cap) in enumerate(zip(ks, caps)):
        for r in range(n_img):
            _show(axes[r, j], _tile(to_display(panels[j, r : r + 1]), one, 0, PAD_VALUE), frame=True)
        axes[0, j].set_title(f"k = {k}", fontsize=10)
        _caption_below(axes[-1, j], _caption_lines(cap), colors=[None, None, style.DATA_COLOR, style.NOISE_COLOR])
    head = title or (
        f"Forward process on an image: {s.name} schedule, T = {s.T}, the same noise ε in every panel\n"
        "x_k = α_k·x₀ + σ_k·ε;  signal / noise = shares of the variance of x_k (ᾱ_k and 1 − ᾱ_k);  "
        "pixels clipped to [−1, 1] for display"
    )
    _arrange(fig, axes, w * k_px, h * k_px, gap=0.12, title=head, title_size=11)
    return fig


def plot_forward_strip(schedule: Schedule, image, path, *, ks=None, seed: int = 0, title: str | None = None) -> Path:
    """One image noised in closed form at grid indices ``ks`` (default 9 evenly spread over
    0..T), one panel per k, each captioned with t, the SNR (dB) and the signal and noise shares
    of the variance (``forward_captions``).  The same eps (from ``seed``) is used in every panel.
    ``image`` is (C, H, W), (H, W) or (N, C, H, W) (then one row per image)."""
    return save_figure(_strip_figure(schedule, image, ks=ks, seed=seed, title=title), path)


# --- schedules compared on one image -----------------------------------------------------------


def _named_schedules(schedules) -> list[tuple[str, Schedule]]:
    if isinstance(schedules, Schedule):
        schedules = [schedules]
    if isinstance(schedules, Mapping):
        items = [(str(k), _check_schedule(v, f"schedules[{k!r}]")) for k, v in schedules.items()]
    else:
        items = [(s.name, s) for s in (_check_schedule(v, f"schedules[{i}]") for i, v in enumerate(schedules))]
        # Rows are labelled with name and T; only two of one kind and one T need a number.
        keys = [(name, sch.T) for name, sch in items]
        seen: dict[tuple, int] = {}
        for i, key in enumerate(keys):
            if keys.count(key) > 1:
                seen[key] = seen.get(key, 0) + 1
                items[i] = (f"{key[0]} #{seen[key]}", items[i][1])
    if not items:
        raise ValueError("schedules: need at least one Schedule")
    return items


def _check_ts(ts) -> list[float]:
    ts = list(ts)
    if not ts:
        raise ValueError("ts: need at least one time")
    out = []
    for t in ts:
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not 0.0 <= float(t) <= 1.0:
            raise ValueError(f"ts: times must be numbers in [0, 1], got {t!r}")
        out.append(float(t))
    return out


def time_to_k(t: float, T: int) -> int:
    """Grid index of continuous time t on a T-step schedule: round(t T), halves rounded up."""
    return _round_half_up(t * T)


def compare_panels(schedules, image, ts=DEFAULT_COMPARE_TS, *, seed: int = 0):
    """The panels of plot_schedule_compare_images: (names, ks, panels, snr_db).

    ``ks[i][j]`` is schedule i's grid index at ts[j] (``time_to_k``); ``panels`` has shape
    (n_schedules, len(ts), N, C, H, W) and uses ONE eps for every panel of every schedule;
    ``snr_db[i][j]`` is the schedule's SNR there."""
    items = _named_schedules(schedules)
    ts = _check_ts(ts)
    x0 = as_image(image)
    ks = [[time_to_k(t, s.T) for t in ts] for _, s in items]
    x0_t = torch.from_numpy(x0.astype(np.float64))
    eps = _eps(x0.shape, seed)
    panels = np.stack([np.stack([q_sample(s, x0_t, k, eps).numpy() for k in row]) for (_, s), row in zip(items, ks)])
    snr = [[float(s.snr_db[k]) for k in row] for (_, s), row in zip(items, ks)]
    return [name for name, _ in items], ks, panels, snr


def _compare_figure(schedules, image, *, ts=None, seed=0):
    ts = _check_ts(DEFAULT_COMPARE_TS if ts is None else ts)
    names, ks, panels, snr = compare_panels(schedules, image, ts, seed=seed)
    items = _named_schedules(schedules)
    h, w = panels.shape[-2:]
    n_s, n_t = len(names), len(ts)
    k_px = _panel_scale(h, w, float(np.clip(11.0 / n_t, 1.1, 1.6)))
    fig = new_figure((4.0, 4.0))
    axes = np.array([[fig.add_subplot() for _ in range(n_t)] for _ in range(n_s)], dtype=object)
    one = np.zeros((1, 1), np.int64)
    for i, ((name, s), row) in enumerate(zip(items, ks)):
        for j, k in enumerate(row):
            ax = axes[i, j]
            _show(ax, _tile(to_display(panels[i, j, :1]), one, 0, PAD_VALUE), frame=True)
            snr_txt = "+∞ dB" if k == 0 else style.fmt_db(snr[i][j])
            ax.set_xlabel(f"k = {k}\nSNR {snr_txt}", fontsize=9, labelpad=3)
            if i == 0:
                ax.set_title(f"t = {_fmt_t(ts[j])}", fontsize=11)
        axes[i, 0].set_ylabel(f"{name}\nT = {s.T}", fontsize=11, rotation=0, ha="right", va="center", labelpad=8)
    head = (
        "Noise schedules compared on one image: same times t, same noise ε\n"
        "each schedule at its grid index k = round(t·T); pixels clipped to [−1, 1] for display"
    )
    _arrange(fig, axes, w * k_px, h * k_px, gap=0.12, title=head, title_size=11)
    return fig


def plot_schedule_compare_images(schedules, image, path, *, ts=None, seed: int = 0) -> Path:
    """Seed 002's schedule comparison on an image: one row per schedule (labelled with its name:
    the dict key, or ``Schedule.name`` for a list), one column per time t in ``ts`` (default 0,
    0.1, 0.25, 0.5, 0.75, 0.9, 1), each schedule read at k = round(t T), each panel captioned
    with k and that schedule's SNR.  One eps (from ``seed``) for every panel."""
    return save_figure(_compare_figure(schedules, image, ts=ts, seed=seed), path)


# --- guidance sweep ----------------------------------------------------------------------------


def _check_grids(grids) -> list[tuple[float, np.ndarray]]:
    if not isinstance(grids, Mapping) or not grids:
        raise ValueError("grids: expected a non-empty dict {guidance scale: images (N, C, H, W)}")
    items = []
    for s, imgs in grids.items():
        if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)) or not math.isfinite(s):
            raise ValueError(f"grids: keys must be guidance scales (numbers), got {s!r}")
        items.append((float(s), as_images(imgs, f"grids[{_fmt_scale(float(s))}]")))
    shapes = {x.shape for _, x in items}
    if len(shapes) > 1:
        desc = ", ".join(f"s = {_fmt_scale(s)}: {tuple(x.shape)}" for s, x in items)
        raise ValueError(f"grids: every guidance scale needs images of the same shape (N, C, H, W); got {desc}")
    return sorted(items, key=lambda it: it[0])


def _scale_header(s: float) -> str:
    what = " (unconditional)" if s == 0 else " (conditional)" if s == 1 else ""
    return f"s = {_fmt_scale(s)}{what}"


def _guidance_figure(grids, *, labels=None, class_names=None, title=None):
    items = _check_grids(grids)
    n, _, h, w = items[0][1].shape
    slots, names, note = _layout(n, labels, None, class_names)
    tiles = [_tile(to_display(x), slots, GRID_PAD, PAD_VALUE) for _, x in items]
    rows, cols = slots.shape
    b = len(items)
    k = _grid_scale(h, w, rows, cols * b, max_w=15.0, max_h=10.0)
    fig = new_figure((4.0, 4.0))
    axes = [fig.add_subplot() for _ in range(b)]
    for j, ((s, _), tile, ax) in enumerate(zip(items, tiles, axes)):
        _show(ax, tile)
        ax.set_title(_scale_header(s), fontsize=11)
        if names is not None and j == 0:
            _name_rows(ax, names, h, (h + GRID_PAD) * k)
    head = title or "Classifier-free guidance: samples at each guidance scale s"
    if names is not None:
        head += "\none row per class" + (f"; {note}" if note else "")
    _arrange(fig, [axes], tiles[0].shape[1] * k, tiles[0].shape[0] * k, gap=0.25, title=head)
    return fig


def plot_guidance_sweep(grids, path, *, labels=None, class_names=None, title=None) -> Path:
    """One block per guidance scale s (sorted; headed "s = 0 (unconditional)", "s = 1
    (conditional)", "s = 3", ...), each a grid of that scale's samples.  ``grids`` maps scale ->
    images (N, C, H, W), all of one shape (else ValueError).  With ``labels`` (one class per
    image, shared by all scales) every block has one row per class, the names at the left of
    the first block, so rows line up across blocks."""
    return save_figure(_guidance_figure(grids, labels=labels, class_names=class_names, title=title), path)


# --- reverse process: frames -------------------------------------------------------------------


def _progression_figure(frames, *, times=None, count=8, max_images=MAX_PROGRESSION_ROWS, note=None):
    times, xs = unpack_frames(frames, as_images, what="images", times=times)
    count = _positive_int(count, "count")
    max_images = _positive_int(max_images, "max_images")
    picks = pick_frames(len(xs), count)
    n_img = min(len(xs[0]), max_images)
    _, _, h, w = xs[0].shape
    # Rows are images, columns frames: frame picks[j] of image r goes to slot (r, j).
    stacked = np.concatenate([to_display(xs[i][:n_img]) for i in picks])  # (cols * n_img, C, H, W)
    slots = (np.arange(len(picks))[None, :] * n_img + np.arange(n_img)[:, None]).astype(np.int64)
    grid = _tile(stacked, slots, GRID_PAD, PAD_VALUE)
    k = _grid_scale(h, w, n_img, len(picks), max_w=13.0, max_h=10.0)
    k = max(k, math.ceil(0.75 * style.DPI / (w + GRID_PAD)))  # columns wide enough for "t = 1.00"
    fig = new_figure((4.0, 4.0))
    ax = fig.add_subplot()
    _show(ax, grid)
    n_steps = len(xs) - 1
    heads = [f"t = {times[i]:.2f}" if times is not None else f"step {i}/{n_steps}" for i in picks]
    ax.set_xticks([GRID_PAD + j * (w + GRID_PAD) + (w - 1) / 2 for j in range(len(picks))], heads)
    ax.xaxis.tick_top()
    ax.tick_params(axis="x", length=0, labelsize=9)
    more = f"\n(the first {n_img} of {len(xs[0])} images)" if n_img < len(xs[0]) else ""
    more += f"\n{note}".replace("; ", "\n") if note else ""
    _arrange(fig, [[ax]], grid.shape[1] * k, grid.shape[0] * k, title=f"Reverse process: noise (left) → data (right){more}")
    return fig


def plot_image_progression(frames, path, *, times=None, count: int = 8, max_images: int = MAX_PROGRESSION_ROWS, note: str | None = None) -> Path:
    """A strip of the reverse process: one row per image (the first ``max_images``), ``count``
    frames picked evenly from noise (left) to data (right), headed by t (or the step), titled
    with ``note`` (e.g. how the frames were sampled; lines at "; ") under the title.
    ``frames`` is a list of (N, C, H, W) arrays from noise to data, or (t, images) pairs."""
    return save_figure(_progression_figure(frames, times=times, count=count, max_images=max_images, note=note), path)


# --- reverse process: GIF ----------------------------------------------------------------------


def _font(size: int):
    try:
        return ImageFont.truetype(font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans")), size)
    except OSError:  # no FreeType: Pillow's own font
        return ImageFont.load_default()


def _grid_frames(tiles, levels, scale, *, rgb, header, captions, names, h) -> list[Image.Image]:
    """The GIF's palette frames: ``header`` and each frame's caption above the grid ``tiles``
    scaled ``scale`` times (class ``names`` at the left), each tile at its ``levels``."""
    font, small = _font(GIF_FONT_PX + 1), _font(GIF_FONT_PX)
    palette, lut = gif.level_palette(rgb)
    m, line = 8, GIF_FONT_PX + 6
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    label_w = max((probe.textlength(s, font=small) for s in names), default=0) + 10 if names else 0
    label_w = math.ceil(label_w)
    gh, gw = tiles[0].shape[0] * scale, tiles[0].shape[1] * scale
    heads = header.split("\n")
    text_w = max([probe.textlength(t, font=font) for t in heads] + [probe.textlength(c, font=small) for c in captions])
    width = int(max(m + label_w + gw + m, m + text_w + m))
    top = m + (len(heads) + 1) * line + 4
    height = top + gh + m
    x0 = m + label_w + max(0, (width - 2 * m - label_w - gw) // 2)

    base = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(base)
    for j, text in enumerate(heads):
        draw.text((width / 2, m + j * line), text, fill=0, font=font, anchor="ma")
    for name, yc in zip(names or [], _row_centres(len(names or []), h)):
        draw.text((x0 - 8, top + (yc + 0.5) * scale), name, fill=0, font=small, anchor="rm")
    images = []
    for tile, lv, cap in zip(tiles, levels, captions):
        im = base.copy()
        ImageDraw.Draw(im).text((width / 2, m + len(heads) * line + 2), cap, fill=0, font=small, anchor="ma")
        idx = lut[np.asarray(im)]
        q = gif.quantise_levels(tile, lv, rgb)
        idx[top : top + gh, x0 : x0 + gw] = np.repeat(np.repeat(q, scale, axis=0), scale, axis=1)
        p = Image.frombytes("P", (width, height), np.ascontiguousarray(idx).tobytes())
        p.putpalette(palette)
        images.append(p)
    return images


def save_grid_gif(
    frames,
    path,
    *,
    times=None,
    labels=None,
    class_names=None,
    nrow: int | None = None,
    fps: float = 8,
    hold_last: int = 16,
    title: str | None = None,
    note: str | None = None,
) -> Path:
    """The reverse process of a grid of images as an animated GIF, one image per frame.

    ``frames``: a list of (N, C, H, W) arrays from noise to data (or (t, images) pairs);
    ``times``: t per frame.  Each frame shows the grid (laid out as plot_image_grid: one row per
    class with ``labels``) under ``title``, ``note`` (e.g. how the frames were sampled; lines at
    "; ") and "step i/n   t = 0.61".  The GIF has ``len(frames)`` images; the last is shown for
    ``1 + hold_last`` frame durations.

    Size: the grid is scaled up by an integer factor (nearest neighbour, so pixels stay
    squares) to about GIF_TARGET_PX pixels, lowered until the file fits GIF_BUDGET bytes; grey
    frames use a 256-grey palette with ``frame_levels`` levels each, RGB frames a 6x6x6 cube.
    """
    times, xs = unpack_frames(frames, as_images, what="images", times=times)
    durations = gif.frame_durations(len(xs), fps, hold_last)
    n, c, h, _ = xs[0].shape
    slots, names, _ = _layout(n, labels, nrow, class_names)
    shown = slots[slots >= 0]
    disp = [to_display(x[shown]) for x in xs]
    local = np.full(slots.shape, -1, dtype=np.int64)  # slots into the shown subset
    local[slots >= 0] = np.arange(len(shown))
    rgb = c == 3
    levels = frame_levels(disp, max_levels=RGB_LEVELS if rgb else GIF_MAX_LEVELS, min_levels=min(GIF_MIN_LEVELS, RGB_LEVELS))
    tiles = [_tile(d, local, GRID_PAD, PAD_VALUE) for d in disp]

    n_steps = len(xs) - 1
    captions = []
    for i in range(len(xs)):
        cap = f"step {i}/{n_steps}"
        if times is not None:
            cap += f"   t = {times[i]:.2f}"
        captions.append(cap)
    header = (title or "Reverse process: noise → data") + (f"\n{note}".replace("; ", "\n") if note else "")

    long_side = max(tiles[0].shape[:2])
    scale = int(np.clip(GIF_TARGET_PX // long_side, 1, GIF_MAX_SCALE))
    while True:
        pictures = _grid_frames(tiles, levels, scale, rgb=rgb, header=header, captions=captions, names=names, h=h)
        data = gif.encode_gif(pictures, durations)
        if len(data) <= GIF_BUDGET or scale == 1:
            break
        scale -= 1
    return gif.write_gif(path, data)
