"""Where a run's points come from: a built-in generator or a user's .npy / .csv file.

A ``PointSource`` gives the training set and, for metrics, fresh reference draws.  Generators
are always called in draws of ``DRAW_SIZE`` points and concatenated: seed 001's spiral is
scaled by the max |x| of its own draw of 2000, so the scale of a draw depends on its size,
and fixing the draw size makes training sets and reference sets of any n come from the same
distribution.  For a file, reference points are held out from the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
import warnings
from pathlib import Path

import numpy as np

from .toy import GENERATORS

FILE_EXTENSIONS = (".npy", ".csv")
DRAW_SIZE = 2000  # seed 001's n_points


class DataError(ValueError):
    """A data file or data name that cannot be used; the message names it."""


def load_points_file(path: str | Path) -> np.ndarray:
    """Read an N x D float array (D = 1 or 2 or more) from .npy or .csv, checked."""
    path = Path(path)
    if path.suffix.lower() not in FILE_EXTENSIONS:
        raise DataError(f"{path}: unknown extension {path.suffix!r}; expected one of {', '.join(FILE_EXTENSIONS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            try:
                arr = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
            except ValueError as first_error:
                try:  # a header line such as `denoiselab sample --out x.csv` writes (x0,x1)
                    with warnings.catch_warnings():  # numpy warns when only the header was there
                        warnings.simplefilter("ignore", UserWarning)
                        arr = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=1)
                except ValueError:
                    raise first_error from None
                if arr.size == 0:
                    raise first_error from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"{path}: cannot read as {path.suffix} ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise DataError(f"{path}: expected an N x D array of points with N >= 2, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise DataError(f"{path}: contains NaN or infinite values (first at row {bad})")
    return arr.astype(np.float32)


@dataclass(frozen=True)
class PointSource:
    name: str
    train: np.ndarray  # (n, D) in data units
    _held_out: np.ndarray | None  # file data only
    _generator_seed: int

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    @property
    def has_generator(self) -> bool:
        return self.name in GENERATORS

    def reference(self, n: int, seed: int) -> np.ndarray:
        """``n`` reference points independent of the training set (``seed`` picks the draw)."""
        if self.has_generator:
            return draw(self.name, n, np.random.default_rng([self._generator_seed, 1 + seed]))
        pool = self._held_out if self._held_out is not None and len(self._held_out) else self.train
        rng = np.random.default_rng(seed)
        return pool[rng.choice(len(pool), size=min(n, len(pool)), replace=False)]


def draw(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points from generator ``name``, drawn DRAW_SIZE at a time."""
    chunks = [GENERATORS[name](DRAW_SIZE, rng) for _ in range(-(-n // DRAW_SIZE))]
    return np.concatenate(chunks)[:n]


def resolve_data_path(name: str, base: Path | None = None) -> Path:
    p = Path(name).expanduser()
    if not p.is_absolute() and base is not None and not p.exists():
        p = base / p
    return p


def make_source(name: str, n: int, seed: int, *, base: Path | None = None, holdout: float = 0.2) -> PointSource:
    """Build the point source named in a recipe: a generator name or a file path."""
    if name in GENERATORS:
        return PointSource(name, draw(name, n, np.random.default_rng([seed, 0])), None, seed)
    if Path(name).suffix.lower() not in FILE_EXTENSIONS:
        raise DataError(
            f"data.name: unknown data {name!r}; expected one of {', '.join(GENERATORS)} or a .npy/.csv file"
        )
    arr = load_points_file(resolve_data_path(name, base))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(arr))
    n_hold = int(len(arr) * holdout) if len(arr) >= 10 else 0
    return PointSource(name, arr[perm[n_hold:]], arr[perm[:n_hold]], seed)


@dataclass(frozen=True)
class Normalization:
    """x_model = (x_data - mean) / scale: per-dimension centring, one isotropic scale (keeps shapes)."""

    mean: np.ndarray
    scale: float

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalization":
        mean = x.mean(0)
        scale = float(np.sqrt(((x - mean) ** 2).sum(1).mean() / x.shape[1]))
        return cls(mean.astype(np.float64), scale if scale > 0 else 1.0)

    @classmethod
    def identity(cls, dim: int) -> "Normalization":
        return cls(np.zeros(dim), 1.0)

    def encode(self, x):
        return (x - self.mean.astype(np.float32)) / self.scale

    def decode(self, z):
        return z * self.scale + self.mean.astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(np.asarray(d["mean"], dtype=np.float64), float(d["scale"]))
