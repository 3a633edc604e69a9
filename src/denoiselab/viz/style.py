"""Shared look and helpers for every denoiselab figure: colours, limits, input checks, saving.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through
pyplot: nothing is registered in pyplot's global figure list (so nothing needs closing or leaks
in long runs), no window ever opens, and the backend a notebook user chose is left alone.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

# One meaning per colour, in every figure.
DATA_COLOR = "#1f77b4"  # training data (blue)
SAMPLE_COLOR = "#ff7f0e"  # generated samples (orange)
NOISE_COLOR = "#d62728"  # noise fraction / noise references (red)
REFERENCE_COLOR = "0.25"  # dashed reference lines (N(0, I), the -20 dB target)
BACKGROUND_ALPHA = 0.15  # data drawn faintly behind generated points
# Classes avoid the data blue and the generated orange, so those keep their meaning.
CLASS_COLORS = (
    "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2",
    "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939",
)  # fmt: skip
# Lines of different schedules (tab10).
LINE_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

DPI = 100
PNG_BUDGET = 200_000  # bytes; above this a PNG is stored with a 256-colour palette
MAX_SCATTER = 5000  # more points than this add nothing visible to a 4-inch panel
MAX_BACKGROUND = 1000  # faint data drawn behind generated points: the shape is all that is needed
HIST_BINS = 60
PANEL_ASPECT = (0.5, 2.0)  # 2D panels' height / width: beyond this the short side's limits are widened
HIST_HEADROOM = 1.25  # y limit of density panels over the highest bar: room for legend and notes
NOISE_FLOOR_DB = -20.0  # schedules.TERMINAL_SNR_WARN_DB: x_T should carry less signal than this


def class_color(k: int) -> str:
    return CLASS_COLORS[int(k) % len(CLASS_COLORS)]


def line_color(i: int) -> str:
    return LINE_COLORS[int(i) % len(LINE_COLORS)]


def new_figure(figsize, **kwargs) -> Figure:
    fig = Figure(figsize=figsize, dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def panel_aspect(limits: np.ndarray) -> float:
    """Height / width of a 2D panel drawn by ``set_limits`` (equal axis scales): the data's
    shape, clipped to PANEL_ASPECT."""
    return float(np.clip(np.ptp(limits[1]) / np.ptp(limits[0]), *PANEL_ASPECT))


def widen_to_fit(fig: Figure, *artists, pad: float = 0.3) -> None:
    """Widen ``fig`` so each artist (a suptitle, a figure legend) fits in it with ``pad``
    inches to spare: a figure of few panels is otherwise narrower than its own title."""
    renderer = fig.canvas.get_renderer()
    widths = [a.get_window_extent(renderer).width / fig.dpi for a in artists if a is not None]
    need = max(widths, default=0.0) + pad
    w, h = fig.get_size_inches()
    if need > w:
        fig.set_size_inches(need, h)


def write_atomic(path, writer) -> Path:
    """Call ``writer(tmp)`` on a temp file beside ``path``, then rename it over ``path``.

    Readers see the old file or the new one, never half of one.  Unlike a mkstemp file
    (mode 0600) the result gets the usual permissions (0666 minus the umask), so figures
    can be served or shared like any other file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        writer(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_png(fig: Figure, tmp: str, dpi: float) -> None:
    """PNG as RGB (figures are opaque); busy scatter plots over PNG_BUDGET go to a 256-colour palette."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    img = Image.open(buf).convert("RGB")
    out = io.BytesIO()
    img.save(out, format="PNG")
    if out.tell() > PNG_BUDGET:
        out = io.BytesIO()
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, format="PNG")
    with open(tmp, "wb") as fh:
        fh.write(out.getvalue())


def save_figure(fig: Figure, path, *, dpi: float = DPI) -> Path:
    """Write ``fig`` atomically; the format comes from the suffix (png by default); clears ``fig``."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    try:
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ValueError(f"{path}: unsupported figure format {fmt!r}")
        if fig.get_layout_engine() is not None:
            # The layout engine runs once per draw, and its first pass misjudges panels with a
            # fixed (equal) aspect: titles and the suptitle collide, labels fall off the edge.
            # A second pass starts from the first one's result and settles.
            fig.draw_without_rendering()
        if fmt == "png":
            return write_atomic(path, lambda tmp: _write_png(fig, tmp, dpi))
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        fig.clear()


# --- input checks ------------------------------------------------------------------------------


def as_points(x, name: str = "points") -> np.ndarray:
    """Check and convert a point set to a float64 array of shape (N, D) with D in {1, 2}.

    A flat vector of shape (N,) is read as N one-dimensional points.  Torch tensors are
    accepted (moved to CPU).  Non-finite rows are kept here; plotting drops them.
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric array of points, got {type(x).__name__}") from exc
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] not in (1, 2):
        raise ValueError(f"{name}: expected points of shape (N, 1) or (N, 2), got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: no points to plot")
    return arr


def as_labels(labels, n: int, name: str = "labels") -> np.ndarray | None:
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} integer labels (shape ({n},)), got shape {tuple(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: labels must be integers")
        arr = arr.astype(np.int64)
    return arr


def same_dim(*arrays: np.ndarray, names=None) -> int:
    dims = {a.shape[1] for a in arrays if a is not None}
    if len(dims) > 1:
        desc = ", ".join(f"{n}: {a.shape}" for n, a in zip(names or [""] * len(arrays), arrays) if a is not None)
        raise ValueError(f"point sets differ in dimension ({desc})")
    return dims.pop()


def finite_rows(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).all(axis=1)


# --- limits ------------------------------------------------------------------------------------


def compute_limits(*arrays, margin: float = 0.05, q: float = 0.5, fence: float = 0.25) -> np.ndarray:
    """Axis limits that fit every point set given, robust to a few far outliers.

    Per dimension: take the ``q`` and ``100 - q`` percentiles of all finite values pooled,
    extend that range by ``fence`` times its width on each side, and keep only values inside
    this fence; the limits are the min and max of those, padded by ``margin`` times their span.
    Ordinary data is therefore shown whole, while a handful of points far away (a diverged
    sample) do not shrink everything else to a dot.  Returns shape (D, 2): [[lo, hi], ...].

    >>> x = np.concatenate([np.linspace(-1, 1, 1000), [50.0]])[:, None]
    >>> compute_limits(x).round(2).tolist()
    [[-1.1, 1.1]]
    """
    pts = [as_points(a, "limits input") for a in arrays if a is not None]
    if not pts:
        raise ValueError("compute_limits needs at least one point set")
    dim = same_dim(*pts)
    out = np.empty((dim, 2))
    for d in range(dim):
        v = np.concatenate([p[:, d] for p in pts])
        v = v[np.isfinite(v)]
        if v.size == 0:
            out[d] = (-1.0, 1.0)
            continue
        p_lo, p_hi = np.percentile(v, [q, 100.0 - q])
        width = p_hi - p_lo
        inside = v[(v >= p_lo - fence * width) & (v <= p_hi + fence * width)]
        lo, hi = float(inside.min()), float(inside.max())
        span = hi - lo
        if span <= 1e-12 * max(1.0, abs(lo), abs(hi)):
            half = max(1.0, abs(lo) * 0.1)
            out[d] = (lo - half, hi + half)
        else:
            out[d] = (lo - margin * span, hi + margin * span)
    return out


def count_hidden(x: np.ndarray, limits: np.ndarray) -> tuple[int, int]:
    """(finite points outside the axes, non-finite points): what a panel does not show."""
    finite = finite_rows(x)
    inside = finite.copy()
    for d in range(x.shape[1]):
        inside &= (x[:, d] >= limits[d, 0]) & (x[:, d] <= limits[d, 1])
    return int((finite & ~inside).sum()), int((~finite).sum())


def hidden_points_note(x: np.ndarray, limits: np.ndarray) -> str:
    """'3 points outside view' / '52% of points outside view', '2 non-finite (NaN/inf)'; '' if none."""
    outside, bad = count_hidden(x, limits)
    parts = []
    if outside:
        frac = outside / len(x)
        parts.append(f"{frac:.0%} of points outside view" if frac >= 0.01 else f"{outside} point{'s' * (outside > 1)} outside view")
    if bad:
        parts.append(f"{bad} non-finite (NaN/inf)")
    return ", ".join(parts)


def hist_edges(limits: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    return np.linspace(limits[0, 0], limits[0, 1], bins + 1)


def density(x: np.ndarray, edges: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Histogram density over fixed edges, normalised by *all* points (out-of-view ones included).

    So a panel whose points partly leave the axes shows less area, not a misleadingly
    rescaled shape; ``weight`` scales it (a class's share of the whole set).
    """
    v = x[:, 0]
    n = len(v)
    counts, _ = np.histogram(v[np.isfinite(v)], bins=edges)
    return weight * counts / (max(n, 1) * np.diff(edges))


def shown_subset(x: np.ndarray, max_points: int = MAX_SCATTER, seed: int = 0) -> np.ndarray:
    """Row indices to draw: all finite rows, or a fixed random subset of them when there are many."""
    idx = np.flatnonzero(finite_rows(x))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    return idx


def marker_size(n: int) -> float:
    """Scatter marker area (points^2): larger for few points, small for thousands."""
    return float(np.clip(6000.0 / max(n, 1), 1.5, 16.0))


def point_alpha(n: int) -> float:
    return float(np.clip(400.0 / max(n, 1) ** 0.75, 0.35, 0.9))


def fit_aspect(limits: np.ndarray) -> np.ndarray:
    """2D limits whose height / width lies within PANEL_ASPECT (1D limits are returned as is).

    For a long thin point set the short side's range is widened about its centre, so an
    equal-scale panel stays readable instead of shrinking to a sliver with crowded ticks and
    colliding titles.  Figures apply it to the limits they also count hidden points with.
    """
    limits = np.array(limits, dtype=np.float64)
    if limits.shape[0] != 2:
        return limits
    wx, wy = np.ptp(limits[0]), np.ptp(limits[1])
    lo, hi = PANEL_ASPECT
    if wy > hi * wx:  # too tall: widen x
        limits[0] = limits[0].mean() + np.array([-0.5, 0.5]) * wy / hi
    elif wy < lo * wx:  # too wide: heighten y
        limits[1] = limits[1].mean() + np.array([-0.5, 0.5]) * wx * lo
    return limits


def set_limits(ax, limits: np.ndarray, *, ymax: float | None = None) -> None:
    """x limits (and y limits in 2D, at equal scales); 1D density panels get y from 0 to ``ymax``.

    2D limits go through ``fit_aspect`` first."""
    if limits.shape[0] == 2:
        limits = fit_aspect(limits)
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_aspect("equal", adjustable="box")
        return
    ax.set_xlim(*limits[0])
    if ymax is not None:
        ax.set_ylim(0.0, ymax)


def label_axes(ax, dim: int, *, left: bool = True, units: str | None = None) -> None:
    """Coordinate labels ($x_1$, $x_2$ in 2D; $x$ and "density" in 1D), with `` (units)``
    appended to the coordinate labels when ``units`` is given."""
    tail = f" ({units})" if units else ""
    if dim == 2:
        ax.set_xlabel("$x_1$" + tail)
        if left:
            ax.set_ylabel("$x_2$" + tail)
    else:
        ax.set_xlabel("$x$" + tail)
        if left:
            ax.set_ylabel("density")


def legend(ax_or_fig, *args, **kwargs):
    """A legend whose markers are opaque (scatter points are drawn translucent); a marker
    standing for faint background points stays light, and filled areas keep their look."""
    kwargs.setdefault("markerscale", 3)
    leg = ax_or_fig.legend(*args, **kwargs)
    for h in leg.legend_handles:
        if h is not None and type(h).__name__ == "PathCollection":
            faint = (h.get_alpha() or 1.0) <= BACKGROUND_ALPHA
            h.set_alpha(0.4 if faint else 1.0)
    return leg


def fmt_db(v: float) -> str:
    if np.isnan(v):
        return "n/a"
    if np.isinf(v):
        return "+∞ dB" if v > 0 else "−∞ dB"
    return f"{v:.1f} dB".replace("-", "−")
