"""Animated GIFs: palettes, quantisation, frame durations and the atomic write.

A GIF frame is at most 256 palette entries, so every animation here is quantised, in one of two
ways:

- **drawn figures** (``save_trajectory_gif``: matplotlib frames of points or densities) share one
  palette cut from the frames themselves (``key_colour_palette``), with the figure's key colours
  put back exactly;
- **image grids** (``save_grid_gif``) use a fixed palette (``level_palette``: 256 greys, or a
  6 x 6 x 6 colour cube and greys) and store each frame at no more levels than the noise it
  still carries can show (``frame_levels``, ``quantise_levels``).

Every frame is shown for 1 / fps seconds and the last one ``1 + hold_last`` times as long
(``frame_durations``): GIF merges identical consecutive frames, so a hold is a duration.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image

from .style import write_atomic

MAX_FPS = 100
GIF_MAX_LEVELS = 64  # grey levels of a clean frame
GIF_MIN_LEVELS = 4  # grey levels of a pure-noise frame
RGB_LEVELS = 6  # per channel: RGB frames use a 6x6x6 colour cube (216 colours) and 40 greys
PALETTE_COLORS = 128  # entries of a palette cut from drawn frames
NEAR_WHITE = 246  # palette entries with every channel at least this become pure white
SWATCH_ROWS = 40  # rows of each key colour added to the frames the palette is cut from


# --- timing ------------------------------------------------------------------------------------


def frame_durations(n_frames: int, fps: float, hold_last: int) -> list[float]:
    """Milliseconds per frame: 1000 / fps each, the last ``1 + hold_last`` times as long.

    ``fps`` is a number in (0, MAX_FPS], ``hold_last`` an integer >= 0 (ValueError otherwise)."""
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= MAX_FPS):
        raise ValueError(f"fps must be a number in (0, {MAX_FPS}], got {fps!r}")
    if isinstance(hold_last, bool) or not (isinstance(hold_last, (int, np.integer)) and hold_last >= 0):
        raise ValueError(f"hold_last must be an integer >= 0, got {hold_last!r}")
    ms = 1000.0 / fps
    durations = [ms] * n_frames
    durations[-1] = ms * (1 + hold_last)
    return durations


# --- a palette cut from drawn frames -----------------------------------------------------------


def _rgb255(color: str) -> np.ndarray:
    return np.array(to_rgb(color)) * 255


def key_colour_palette(frames: Sequence[np.ndarray], keys: Sequence[str], colors: int = PALETTE_COLORS) -> Image.Image:
    """One palette for every frame of an animation, from its first, middle and last frames.

    ``frames`` are (H, W, 3) uint8 RGB arrays; ``keys`` the colours that must come out exact
    (background, text, the data and sample colours).  Median cut (Heckbert 1982) weighs colours
    by pixel count, so a swatch of the key colours (tiny in the frames: legend markers, text) is
    added to make sure they get entries.  It averages each box, so the entry nearest each key
    colour is then snapped back to it, and near-whites to white: Pillow maps pixels through a
    coarse colour cache, which would otherwise paint a white background light grey.  One shared
    palette keeps colours steady from frame to frame and the file small.
    """
    width = frames[0].shape[1]
    swatch = np.concatenate([np.broadcast_to(_rgb255(c), (SWATCH_ROWS, width, 3)) for c in keys]).astype(np.uint8)
    sample = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1], swatch], axis=0)
    palette = Image.fromarray(sample).quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    entries = np.array(palette.getpalette()[: 3 * colors], dtype=np.int64).reshape(-1, 3)
    entries[(entries >= NEAR_WHITE).all(1)] = 255
    for c in keys:
        rgb = np.round(_rgb255(c)).astype(np.int64)
        entries[np.argmin(((entries - rgb) ** 2).sum(1))] = rgb
    palette.putpalette(entries.astype(np.uint8).ravel().tolist())
    return palette


def to_palette(frames: Sequence[np.ndarray], palette: Image.Image) -> list[Image.Image]:
    """RGB frames -> palette images on ``palette``, nearest entry, no dithering (dither noise
    would flicker from frame to frame and cost bytes)."""
    return [Image.fromarray(a).quantize(palette=palette, dither=Image.Dither.NONE) for a in frames]


# --- a fixed palette for image grids -----------------------------------------------------------


def frame_levels(disp_frames: Sequence[np.ndarray], *, max_levels: int = GIF_MAX_LEVELS, min_levels: int = GIF_MIN_LEVELS) -> list[int]:
    """Grey levels per GIF frame: no finer than the noise the frame still carries.

    A frame that differs from the last one by an RMS of s (display units) is stored with about
    1 + 1/s levels (quantisation steps no larger than that noise), between ``min_levels`` and
    ``max_levels``: pure noise (s ~ 0.4) gets 4 levels and costs a quarter of a 256-level frame,
    the clean result gets ``max_levels``.  Noise is incompressible, so this is what keeps a GIF
    of a noisy reverse process small; coarser steps in a noisy frame are not visible."""
    last = disp_frames[-1]
    out = []
    for d in disp_frames:
        rms = float(np.sqrt(np.mean((d - last) ** 2)))
        out.append(int(np.clip(1.0 + 1.0 / max(rms, 1e-9), min_levels, max_levels)))
    return out


def level_palette(rgb: bool) -> tuple[list[int], np.ndarray]:
    """(palette entries as a flat [r, g, b, ...] list, lut grey value -> palette index).

    Grey: the 256 greys, index = grey value.  RGB: the RGB_LEVELS^3 colour cube, index
    r * RGB_LEVELS^2 + g * RGB_LEVELS + b (``quantise_levels``), then evenly spaced greys for
    the text and background drawn around the grid (the lut picks the nearest grey entry)."""
    if not rgb:
        return [v for g in range(256) for v in (g, g, g)], np.arange(256, dtype=np.uint8)
    steps = np.round(np.arange(RGB_LEVELS) * 255 / (RGB_LEVELS - 1)).astype(int)
    cube = [(r, g, b) for r in steps for g in steps for b in steps]
    extra = np.round(np.linspace(0, 255, 256 - len(cube) + 2)[1:-1]).astype(int)
    entries = cube + [(g, g, g) for g in extra]
    grey_idx = [i for i, (r, g, b) in enumerate(entries) if r == g == b]
    grey_val = np.array([entries[i][0] for i in grey_idx])
    lut = np.array([grey_idx[int(np.argmin(np.abs(grey_val - v)))] for v in range(256)], dtype=np.uint8)
    return [v for e in entries for v in e], lut


def quantise_levels(tile: np.ndarray, levels: int, rgb: bool) -> np.ndarray:
    """Display values in [0, 1] -> ``level_palette`` indices at ``levels`` levels (per channel
    for RGB, (H, W, 3) in; (H, W) uint8 out)."""
    q = np.round(tile * (levels - 1)) / (levels - 1)
    if not rgb:
        return np.round(q * 255).astype(np.uint8)
    c = np.round(q * (RGB_LEVELS - 1)).astype(np.int64)
    return (c[..., 0] * RGB_LEVELS**2 + c[..., 1] * RGB_LEVELS + c[..., 2]).astype(np.uint8)


# --- the file ----------------------------------------------------------------------------------


def encode_gif(frames: Sequence[Image.Image], durations: Sequence[float]) -> bytes:
    """The GIF file of palette ``frames`` (looping forever, Pillow's optimiser on)."""
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=list(frames[1:]), duration=list(durations), loop=0, optimize=True)
    return buf.getvalue()


def write_gif(path, data: bytes) -> Path:
    """Write an encoded GIF to ``path`` atomically (style.write_atomic) and return the path."""

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    return write_atomic(path, write)
