"""Image data sets: built-in digits and patterns, and the user's own image files.

Where each set comes from:

- ``digits``: the 1797 8 x 8 handwritten digits that scikit-learn ships inside its package
  (``sklearn.datasets.load_digits``, the UCI optical-recognition set): the small, always
  available stand-in for the MNIST exercise of seed 004 ("train a diffusion model on MNIST,
  add class conditioning to generate specific digits").
- ``patterns``: seed 002's playground targets (checkerboard, circles, stripes, squares), drawn
  with random cell sizes, periods, phases, positions and radii so that each class is a
  distribution rather than one picture.
- files: MNIST / Fashion-MNIST IDX files (``load_idx``), CIFAR-10's python batches
  (``load_cifar10``, read by cifar.py), ``.npz`` arrays (``load_npz``) and folders of
  PNG/JPEG/BMP/GIF images (``load_image_folder``); real_sets.py says where the real sets go.

Nothing is ever downloaded: scikit-learn's digits are read from the installed package, and
MNIST-style files must already be on disk.

Pixel convention: every image is a float32 tensor of shape (N, C, H, W) with values in
[-1, 1] (-1 black, 1 white; 8-bit value v maps to v / 127.5 - 1).  Labels are int64 tensors
of shape (N,) whose values index ``class_names``, or None for an unlabelled set.
"""

from __future__ import annotations

import functools
import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .cifar import is_cifar_path, read_cifar10
from .point_files import DataError, read_file_bytes, resolve_data_path
from .real_sets import where_to_put, with_gzip_twin
from .toy import GENERATORS

IMAGE_DATASETS = ("digits", "patterns")
PATTERN_KINDS = ("checkerboard", "circles", "stripes", "squares")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
CHANNELS = ("auto", "grey", "rgb")
DEFAULT_PATTERNS_N = 4000
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)
_KNOWN_MAGIC = {IDX_IMAGES_MAGIC: " (IDX images)", IDX_LABELS_MAGIC: " (IDX labels)"}
GREY_TOLERANCE = 2  # 8-bit levels: JPEG can leave a grey picture's R, G, B one or two apart
_IGNORED_NAMES = ("__MACOSX",)  # the resource-fork folder of zips made on a Mac


def _one_line(text: object) -> str:
    """Error messages stay on one line even when they quote an exception's text."""
    return " ".join(str(text).split())


# --- the container ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)  # eq=False: == on tensors is elementwise, not a bool
class ImageSet:
    """Images with optional labels; the loaders below all return one of these."""

    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: torch.Tensor | None  # (N,) int64 indexing class_names, or None
    class_names: list[str] | None

    def __post_init__(self):
        if self.images.ndim != 4:
            raise ValueError(f"ImageSet: images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(f"ImageSet: {len(self.images)} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """0 when unlabelled; else the number of class names (or max label + 1 without names)."""
        if self.labels is None:
            return 0
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, index) -> ImageSet:
        """The images (and labels) at ``index``: a slice, integer indices or a boolean mask."""
        if not isinstance(index, slice):
            arr = np.asarray(index)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            index = torch.as_tensor(arr.astype(np.int64).reshape(-1))
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels, self.class_names)


def _from_uint8(x: np.ndarray) -> torch.Tensor:
    """uint8 0..255 -> float32 [-1, 1] (0 -> -1, 255 -> 1 exactly)."""
    return torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size): bicubic with antialiasing (as Pillow), clamped to [-1, 1].

    Bicubic overshoots at edges, hence the clamp.  Non-square images are squashed, not cropped.
    """
    size = int(size)
    if size < 1:
        raise DataError(f"size must be a positive number of pixels, got {size}")
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(-1.0, 1.0)


def _to_channels(images: torch.Tensor, channels: str) -> torch.Tensor:
    """Channels: "auto" keeps C; "grey" takes the ITU-R 601 luma (as Pillow's "L"); "rgb" repeats grey."""
    if channels not in CHANNELS:
        raise DataError(f"channels: unknown value {channels!r}; expected one of {', '.join(CHANNELS)}")
    c = images.shape[1]
    if channels == "grey" and c == 3:
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True).clamp_(-1.0, 1.0)
    if channels == "rgb" and c == 1:
        return images.repeat(1, 3, 1, 1)
    return images


def _digit_names(labels: np.ndarray) -> list[str]:
    """Names "0".."9" when the labels fit (MNIST's digits, even if a subset lacks some); else "0".."max"."""
    top = int(labels.max()) if len(labels) else 0
    return [str(i) for i in range(10 if top <= 9 else top + 1)]


# --- digits (seed 004) ------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) pixels 0..16 and targets, parsed once: scikit-learn reads a CSV on every call."""
    from sklearn.datasets import load_digits as sklearn_digits  # a package file, never downloaded

    bunch = sklearn_digits()
    return bunch.images, bunch.target


def load_digits(upscale: int = 1) -> ImageSet:
    """scikit-learn's 1797 8 x 8 digits, pixel values 0..16 -> [-1, 1], classes "0".."9".

    ``upscale`` (a whole factor) enlarges them by bilinear interpolation (align_corners False,
    no antialiasing), e.g. 2 -> 16 x 16 for a U-Net with two halvings.
    """
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or upscale < 1:
        raise DataError(f"upscale: expected a whole factor >= 1 (1, 2, 3, ...), got {upscale!r}")
    pixels, target = _sklearn_digits()
    images = torch.from_numpy(pixels.astype(np.float32) / 8.0 - 1.0)[:, None]  # a fresh array each call
    if upscale > 1:
        side = 8 * int(upscale)
        images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=False)
        images = images.clamp_(-1.0, 1.0)  # bilinear weights are convex; the clamp only guards rounding
    labels = torch.from_numpy(target.astype(np.int64))  # astype copies: callers never share the cache
    return ImageSet(images.contiguous(), labels, [str(i) for i in range(10)])


# --- patterns (seed 002) ----------------------------------------------------------------------
# Each renderer maps m images' random parameters to an (m, size, size) float32 array in [-1, 1].
# Shapes are drawn from signed distances in pixels: clip(d + 0.5, 0, 1) approximates the part of
# a pixel that a shape covers, so edges are anti-aliased rather than jagged at 16 x 16.


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in pixels, shaped to broadcast over (m, rows, cols)."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return c[None, None, :], c[None, :, None]  # x (columns), y (rows)


def _square_wave(s: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Anti-aliased +-1 square wave of coordinate s (pixels): +1 on [0, period/2) of each period."""
    frac = np.mod(s / period, 1.0)
    distance = (4.0 * np.abs(frac - 0.5) - 1.0) * period / 4.0  # signed distance to the nearest edge
    return np.clip(2.0 * distance, -1.0, 1.0)


def _coverage(distance: np.ndarray) -> np.ndarray:
    return np.clip(distance + 0.5, 0.0, 1.0)


def _checkerboard(m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Cells of 2 .. size/4 pixels, independent phases in x and y."""
    x, y = _grid(size)
    cell = rng.uniform(2.0, max(2.0, size / 4), (m, 1, 1)).astype(np.float32)
    px, py = (rng.uniform(0.0, 2.0, (2, m, 1, 1)) * cell).astype(np.float32)
    return _square_wave(x - px, 2 * cell) * _square_wave(y - py, 2 * cell)


def _stripes(m: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Period 4 .. size/2 pixels, horizontal, vertical or either diagonal.

    Orientations are multiples of 45 degrees, so every stripe image is constant along one of the
    four pixel-grid directions (a checkerboard along none).
    """
    x, y = _grid(size)
    angle = rng.integers(0, 4, (m, 1, 1)) * (np.pi / 4)
    period = rng.uniform(4.0, max(4.0, size / 2), (m, 1, 1))
    phase = rng.uniform(0.0, 1.0, (m, 1, 1)) * period
    s = x * np.cos(angle) + y * np.sin(angle)  # distance along the stripes' normal, in pixels
    return _square_wave(s - phase, period).astype(np.float32)


def _shapes(m: int, size: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """One to three filled discs or rings ("circles"), or filled axis-aligned squares, on black."""
    x, y = _grid(size)
    slots = 3
    count = rng.integers(1, slots + 1, (m, 1))
    active = np.arange(slots)[None, :] < count  # (m, slots): which of the shapes are drawn
    if kind == "circles":
        r = rng.uniform(0.15, 0.3, (m, slots)) * size
        thick = rng.uniform(1.2, 2.2, (m, slots))
        ring = (rng.random((m, slots)) < 0.5) & (r > thick + 1.5)  # a ring needs a visible hole
        cx, cy = rng.uniform(0.2, 0.8, (2, m, slots)) * size
    else:
        half = rng.uniform(0.1, 0.225, (m, slots)) * size
        cx, cy = rng.uniform(0.0, 1.0, (2, m, slots)) * (size - 2 * half) + half  # wholly inside
    canvas = np.zeros((m, size, size), dtype=np.float32)
    for k in range(slots):  # a loop over the (three) shapes; every pixel is computed at once
        dx = x - cx[:, k, None, None].astype(np.float32)
        dy = y - cy[:, k, None, None].astype(np.float32)
        if kind == "circles":
            rk, tk = r[:, k, None, None].astype(np.float32), thick[:, k, None, None].astype(np.float32)
            d = np.sqrt(dx * dx + dy * dy)
            inside = np.where(ring[:, k, None, None], np.minimum(rk - d, d - (rk - tk)), rk - d)
        else:
            hk = half[:, k, None, None].astype(np.float32)
            inside = np.minimum(hk - np.abs(dx), hk - np.abs(dy))
        canvas = np.maximum(canvas, _coverage(inside) * active[:, k, None, None])
    return 2.0 * canvas - 1.0


_RENDERERS = {
    "checkerboard": _checkerboard,
    "circles": lambda m, size, rng: _shapes(m, size, rng, "circles"),
    "stripes": _stripes,
    "squares": lambda m, size, rng: _shapes(m, size, rng, "squares"),
}


def make_patterns(n: int, size: int = 16, seed: int = 0, kinds=PATTERN_KINDS) -> ImageSet:
    """n grey size x size patterns of the given kinds; label = position of the kind in ``kinds``.

    Classes are balanced (n // K each, the remainder to the first kinds) and shuffled.  Each kind
    draws from its own stream ``default_rng([seed, 1 + PATTERN_KINDS.index(kind)])``, so a
    kind's images do not depend on which other kinds are asked for; ``[seed, 0]`` shuffles.
    """
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in PATTERN_KINDS]
    if not kinds or unknown or len(set(kinds)) != len(kinds):
        raise DataError(f"kinds: expected distinct names from {', '.join(PATTERN_KINDS)}, got {list(kinds)}")
    if int(n) < 1:
        raise DataError(f"n: expected at least one pattern, got {n}")
    if int(size) < 4:
        raise DataError(f"size: patterns need at least 4 x 4 pixels, got {size}")
    n, size, k = int(n), int(size), len(kinds)
    counts = np.full(k, n // k) + (np.arange(k) < n % k)
    labels = np.random.default_rng([seed, 0]).permutation(np.repeat(np.arange(k), counts))
    images = np.empty((n, size, size), dtype=np.float32)
    for label, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, 1 + PATTERN_KINDS.index(kind)])
        images[labels == label] = _RENDERERS[kind](int(counts[label]), size, rng)
    return ImageSet(torch.from_numpy(images[:, None]), torch.from_numpy(labels.astype(np.int64)), list(kinds))


# --- IDX files (MNIST, Fashion-MNIST) ---------------------------------------------------------
def _read_maybe_gzipped(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with gzip's magic 1f 8b (whatever its name)."""
    data = read_file_bytes(path)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # a cut-off download ends in EOFError
            raise DataError(f"{path}: not a readable gzip file ({type(exc).__name__}: {_one_line(exc)})") from None
    return data


def _parse_idx(path: Path, data: bytes, magic: int, what: str) -> np.ndarray:
    """The uint8 array of an IDX file whose first four bytes must equal ``magic``."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        seen = "missing (fewer than 4 bytes)" if found is None else f"0x{found:08x}{_KNOWN_MAGIC.get(found, '')}"
        raise DataError(f"{path}: magic number {seen}, expected 0x{magic:08x} ({what})")
    if len(data) < header:
        raise DataError(f"{path}: truncated header, expected {header} bytes for {what}, found {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected, found = int(np.prod(dims, dtype=np.int64)), len(data) - header
    shape = " x ".join(str(d) for d in dims)
    if found < expected:
        raise DataError(f"{path}: truncated, header promises {shape} = {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} bytes after the {shape} = {expected} bytes the header promises")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def load_idx(images_path: str | Path, labels_path: str | Path | None = None) -> ImageSet:
    """MNIST-style IDX images (magic 0x00000803) and optional labels (0x00000801), gzipped or not.

    Labels index the class names "0".."9" (or "0".."max" for labels above 9).
    """
    images_path = Path(images_path)
    pixels = _parse_idx(
        images_path, _read_maybe_gzipped(images_path), IDX_IMAGES_MAGIC, "IDX unsigned-byte images, N x rows x cols"
    )
    images = _from_uint8(pixels)[:, None]
    if labels_path is None:
        return ImageSet(images, None, None)
    labels_path = Path(labels_path)
    labels = _parse_idx(labels_path, _read_maybe_gzipped(labels_path), IDX_LABELS_MAGIC, "IDX unsigned-byte labels, N")
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels but {images_path.name} holds {len(images)} images")
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)), _digit_names(labels))


def idx_labels_path(images_path: str | Path) -> Path:
    """The labels file MNIST ships beside an images file: *-images-idx3-ubyte -> *-labels-idx1-ubyte.

    Also for the dotted spelling (train-images.idx3-ubyte); a .gz suffix is kept as it is.
    """
    p = Path(images_path)
    return p.with_name(re.sub(r"images([-.])idx3", r"labels\1idx1", p.name))


# --- CIFAR-10's python batches (cifar.py reads them) -----------------------------------------
def load_cifar10(path: str | Path) -> ImageSet:
    """CIFAR-10 (N, 3, 32, 32) from the cifar-10-batches-py folder (its five training batches) or one batch file."""
    pixels, labels, names = read_cifar10(path)
    return ImageSet(_from_uint8(pixels), torch.from_numpy(labels), names)


# --- .npz arrays ------------------------------------------------------------------------------
def _npz_pixels(path: Path, x: np.ndarray) -> torch.Tensor:
    """Any accepted layout and value convention of ``x`` -> (N, C, H, W) float32 in [-1, 1].

    Layouts: (N, H, W); (N, C, H, W) when axis 1 is 1 or 3; else (N, H, W, C) with C 1 or 3.
    Values: integers 0..255; floats in [0, 1] when min >= 0 and max <= 1, or in [-1, 1] when
    min < 0.  Other float ranges are refused rather than guessed.
    """
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        pass
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"{path}: key 'x' has shape {x.shape}; expected (N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3"
        )
    if len(x) == 0:
        raise DataError(f"{path}: key 'x' holds no images (shape {x.shape})")
    if x.dtype == np.uint8:
        return _from_uint8(np.ascontiguousarray(x))
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: key 'x' holds integers in [{lo}, {hi}]; expected 0..255")
        return _from_uint8(np.ascontiguousarray(x, dtype=np.uint8))
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: key 'x' has dtype {x.dtype}; expected uint8 or float pixels")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: key 'x' contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    tol = 1e-3  # float round-off, e.g. 1.0000001 after a division
    if lo >= 0 and hi <= 1 + tol:
        x = 2.0 * x - 1.0
    elif not (lo < 0 and lo >= -1 - tol and hi <= 1 + tol):
        raise DataError(
            f"{path}: key 'x' holds floats in [{lo:g}, {hi:g}]; expected [0, 1] or [-1, 1] (save 0..255 as uint8)"
        )
    return torch.from_numpy(np.ascontiguousarray(x)).clamp_(-1.0, 1.0)


def _npz_labels(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        raise DataError(f"{path}: key 'y' has dtype {y.dtype}; expected integer labels (e.g. y.astype(int))")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: key 'y' has shape {y.shape} but key 'x' holds {n} images; expected ({n},)")
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: key 'y' holds negative labels (min {int(y.min())}); expected 0, 1, 2, ...")
    return y.astype(np.int64)


def load_npz(path: str | Path) -> ImageSet:
    """Images from a .npz: key ``x`` (pixels, see ``_npz_pixels``), optional ``y`` and ``class_names``.

    ``y`` must be non-negative integers, one per image; ``class_names`` (strings, needs ``y``)
    must name every label.  Without names, labels 0..max are named "0".."max".
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: cannot read as .npz ({type(exc).__name__}: {_one_line(exc)})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: no key 'x' (the images); found keys {sorted(arrays) or 'none'}")
    images = _npz_pixels(path, arrays["x"])
    if "y" not in arrays:
        if "class_names" in arrays:
            raise DataError(f"{path}: key 'class_names' without key 'y' (the labels they name)")
        return ImageSet(images, None, None)
    labels = _npz_labels(path, arrays["y"], len(images))
    top = int(labels.max()) if len(labels) else -1
    if "class_names" in arrays:
        names = [str(s) for s in np.asarray(arrays["class_names"]).reshape(-1)]
        if len(names) <= top:
            raise DataError(f"{path}: key 'class_names' has {len(names)} names but key 'y' has label {top}")
    else:
        names = [str(i) for i in range(top + 1)]
    return ImageSet(images, torch.from_numpy(labels), names)


# --- folders of image files -------------------------------------------------------------------
def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name not in _IGNORED_NAMES


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; hidden files and other extensions are skipped."""
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS)


def _read_image(path: Path, size: int | None) -> tuple[np.ndarray, bool]:
    """(H, W, 3) uint8 RGB (first frame of a GIF, alpha dropped) and whether it is grey-like."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # Pillow decodes lazily: a truncated file fails here, not later
            grey_mode = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            rgb = im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {_one_line(exc)})") from None
    if size is not None:
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(rgb, dtype=np.uint8)
    channel_gap = np.abs(arr.astype(np.int16) - arr[..., :1].astype(np.int16)).max(initial=0)
    return arr, grey_mode or int(channel_gap) <= GREY_TOLERANCE


def _class_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and _visible(p))


def load_image_folder(path: str | Path, size: int | None = None, channels: str = "auto") -> ImageSet:
    """Images from a folder: one class per sub-folder (sorted names -> labels 0..K-1), or unlabelled.

    Files with other extensions and hidden files are skipped; an image file that does not
    decode is an error.  ``size`` resizes every image to size x size (Lanczos; aspect ratio is
    not kept).  ``channels``: "grey" (C = 1), "rgb" (C = 3) or "auto": grey when every image is
    grey (a grey mode, or R, G, B within GREY_TOLERANCE levels), else rgb.
    """
    path = Path(path)
    if channels not in CHANNELS:
        raise DataError(f"channels: unknown value {channels!r}; expected one of {', '.join(CHANNELS)}")
    if size is not None and int(size) < 1:
        raise DataError(f"size must be a positive number of pixels, got {size}")
    if not path.exists():
        raise DataError(f"{path}: no such folder")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    folders, loose = _class_folders(path), _image_files(path)
    if folders and loose:
        raise DataError(
            f"{path}: holds both image files (e.g. {loose[0].name}) and sub-folders (e.g. {folders[0].name}); "
            "put every image in a class sub-folder, or remove the sub-folders for an unlabelled set"
        )
    groups = [_image_files(folder) for folder in folders] if folders else [loose]  # one list per class
    empty = [folder for folder, members in zip(folders, groups, strict=False) if not members]  # no folders: none
    if empty:  # a class without examples would leave a label the model never sees
        raise DataError(f"{empty[0]}: class folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    files = [f for members in groups for f in members]
    if not files:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    read = [_read_image(f, None if size is None else int(size)) for f in files]
    shapes = [arr.shape[:2] for arr, _ in read]
    if size is None and len(set(shapes)) > 1:
        j = next(i for i, s in enumerate(shapes) if s != shapes[0])
        (h0, w0), (h1, w1) = shapes[0], shapes[j]
        raise DataError(
            f"{path}: images differ in size ({files[0]} is {w0}x{h0}, {files[j]} is {w1}x{h1}); "
            "use the size option to resize them all to size x size"
        )
    rgb = np.stack([arr for arr, _ in read]).transpose(0, 3, 1, 2)  # (N, 3, H, W)
    all_grey = all(g for _, g in read)
    images = _from_uint8(np.ascontiguousarray(rgb))
    images = _to_channels(images, "grey" if channels == "grey" or (channels == "auto" and all_grey) else "rgb")
    if not folders:
        return ImageSet(images, None, None)
    labels = np.repeat(np.arange(len(groups), dtype=np.int64), [len(members) for members in groups])
    return ImageSet(images, torch.from_numpy(labels), [f.name for f in folders])


# --- one name for a recipe --------------------------------------------------------------------
def _is_idx_images(p: Path) -> bool:
    return "idx3-ubyte" in p.name


def load_image_data(
    name: str,
    *,
    upscale: int = 1,
    size: int | None = None,
    n: int = DEFAULT_PATTERNS_N,
    seed: int = 0,
    channels: str = "auto",
    base: Path | None = None,
) -> ImageSet:
    """The image set a recipe names: "digits", "patterns", a .npz, an IDX images file, CIFAR-10's
    batches (the cifar-10-batches-py folder or one batch file) or a folder of images.

    ``size`` resizes file data to size x size and sets the patterns' size; for digits it must be
    8 x upscale (or a multiple of 8 on its own).  ``upscale`` is for digits only.  ``channels``
    converts the result ("auto" keeps what the data has).  Relative paths that do not exist are
    looked up under ``base`` (a recipe's folder), as for point files.
    """
    if channels not in CHANNELS:
        raise DataError(f"channels: unknown value {channels!r}; expected one of {', '.join(CHANNELS)}")
    if name == "digits":
        if size is not None:
            if int(size) % 8 or (upscale != 1 and 8 * upscale != int(size)):
                raise DataError(f"size: digits are 8 x 8 scaled by a whole factor; size {size} with upscale {upscale}")
            upscale = int(size) // 8
        return _with_channels(load_digits(upscale), channels)
    if upscale != 1:
        raise DataError(f"upscale: applies to the digits only; for {name!r} use size")
    if name == "patterns":
        return _with_channels(make_patterns(n, 16 if size is None else int(size), seed), channels)
    p = with_gzip_twin(resolve_data_path(name, base))
    missing_real_set = where_to_put(p)
    if missing_real_set:
        raise DataError(missing_real_set)
    if is_cifar_path(p):
        data = load_cifar10(p)
    elif p.suffix.lower() == ".npz":
        data = load_npz(p)
    elif p.is_dir():
        return load_image_folder(p, size, channels)
    elif _is_idx_images(p):
        labels = with_gzip_twin(idx_labels_path(p))
        data = load_idx(p, labels if labels.is_file() else None)
    else:
        missing = "" if p.exists() else " (no such file or folder)"
        raise DataError(
            f"data.name: unknown image data {name!r}{missing}; expected one of {', '.join(IMAGE_DATASETS)}, "
            "a .npz file, an IDX images file (*-images-idx3-ubyte[.gz]), CIFAR-10's cifar-10-batches-py or a folder of images"
        )
    if size is not None:
        data = ImageSet(resize_images(data.images, int(size)), data.labels, data.class_names)
    return _with_channels(data, channels)


def _with_channels(data: ImageSet, channels: str) -> ImageSet:
    images = _to_channels(data.images, channels)
    return data if images is data.images else ImageSet(images, data.labels, data.class_names)


# --- a fixed train / held-out split -----------------------------------------------------------
def split_indices(n: int, labels=None, held_out: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, held_idx): sorted int64 indices, stratified by label when labels are given.

    Each class holds out round(held_out x its size) images, but always keeps one for training.
    A pure function of (n, labels, held_out, seed), so a run can record or recompute it.
    """
    if not 0.0 <= float(held_out) < 1.0:
        raise DataError(f"held_out: expected a fraction in [0, 1), got {held_out}")
    groups = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(groups) != n:
        raise DataError(f"split: {len(groups)} labels for {n} images")
    rng = np.random.default_rng(seed)
    held = []
    for g in np.unique(groups):  # sorted, so the draws do not depend on the order of the data
        members = rng.permutation(np.flatnonzero(groups == g))
        k = min(int(np.floor(held_out * len(members) + 0.5)), len(members) - 1)
        held.append(members[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    train_mask = np.ones(n, dtype=bool)
    train_mask[held_idx] = False
    return np.flatnonzero(train_mask).astype(np.int64), held_idx.astype(np.int64)


def split(data: ImageSet, held_out: float = 0.1, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(train, held-out) subsets by ``split_indices`` (stratified when labelled)."""
    labels = None if data.labels is None else data.labels.numpy()
    train_idx, held_idx = split_indices(len(data), labels, held_out, seed)
    return data.subset(train_idx), data.subset(held_idx)


def is_image_data(name: str, base: Path | None = None) -> bool:
    """Whether a recipe's data.name names image data (else points): a built-in image set, a
    folder, an IDX images file, or an .npz whose x has image axes (N, H, W[, C]).

    A built-in name means the built-in set even where the working folder holds a file or folder
    of that name (make_source and load_image_data read it so too): "spiral" is the point set,
    "./spiral" the folder.
    """
    if name in IMAGE_DATASETS:
        return True
    if name in GENERATORS:
        return False
    p = resolve_data_path(name, base)
    if p.is_dir() or _is_idx_images(p) or is_cifar_path(p):
        return True
    if p.suffix.lower() == ".npz" and p.is_file():
        try:
            with np.load(p, allow_pickle=False) as z:
                return "x" in z.files and z["x"].ndim >= 3
        except Exception:  # noqa: BLE001 - the loaders report an unreadable file
            return False
    return False
