"""Where a run's points come from: a built-in generator or a user's .npy / .csv file.

A ``PointSource`` gives the training set and, for metrics, fresh reference draws.  Generators
are always called in draws of ``DRAW_SIZE`` points and concatenated: seed 001's spiral is
scaled by the max |x| of its own draw of 2000, so the scale of a draw depends on its size,
and fixing the draw size makes training sets and reference sets of any n come from the same
distribution.  For a file, reference points are held out from the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .labels import load_labelled_points
from .point_files import FILE_EXTENSIONS, DataError, check_points, load_points_file, resolve_data_path
from .toy import GENERATORS

__all__ = ["DRAW_SIZE", "FILE_EXTENSIONS", "DataError", "Normalization", "PointSource", "check_points", "draw",
           "load_points_file", "make_source", "proportional_counts", "resolve_data_path"]  # fmt: skip

DRAW_SIZE = 2000  # seed 001's n_points


def proportional_counts(weights, n: int) -> np.ndarray:
    """Split n into integer counts proportional to ``weights`` (largest remainder): the class
    mix of an unlabelled draw from a conditional model and of its reference set."""
    w = np.asarray(weights, dtype=np.float64)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


@dataclass(frozen=True)
class PointSource:
    """Training points (with their classes, for a conditional run) and reference draws for metrics.

    ``generators`` names the generator of each class (one name for an unconditional built-in
    set; empty for a file, whose reference points are held out from the file instead).
    """

    name: str
    train: np.ndarray  # (n, D) in data units
    seed: int
    generators: tuple[str, ...] = ()
    labels: np.ndarray | None = None  # (n,) int64 class of each training point
    class_names: tuple[str, ...] = ()
    held_out: np.ndarray | None = None  # file data only
    held_out_labels: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_generator(self) -> bool:
        return bool(self.generators)

    @property
    def class_weights(self) -> np.ndarray:
        """Share of each class among the training points (the mix of unlabelled samples)."""
        return np.bincount(self.labels, minlength=self.num_classes) / len(self.labels)

    def reference(self, n: int, seed: int, label: int | None = None) -> np.ndarray:
        """``n`` reference points independent of the training set (``seed`` picks the draw):
        of class ``label``, or of every class in proportion when ``label`` is None."""
        if label is not None and not 0 <= label < self.num_classes:
            raise ValueError(f"label {label} out of range for {self.num_classes} classes")
        if self.has_generator:
            if not self.num_classes:
                return draw(self.generators[0], n, np.random.default_rng([self.seed, 1 + seed]))
            if label is not None:
                return draw(self.generators[label], n, np.random.default_rng([self.seed, 1 + seed, 1 + label]))
            counts = proportional_counts(self.class_weights, n)
            return np.concatenate(
                [draw(g, int(c), np.random.default_rng([self.seed, 1 + seed, 1 + i, 0])) for i, (g, c) in enumerate(zip(self.generators, counts))]
            )
        pool = self.held_out if self.held_out is not None and len(self.held_out) else self.train
        if label is not None:
            pool_labels = self.held_out_labels if pool is self.held_out else self.labels
            pool = pool[pool_labels == label]
        rng = np.random.default_rng(seed)
        return pool[rng.choice(len(pool), size=min(n, len(pool)), replace=False)]


def draw(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points from generator ``name``, drawn DRAW_SIZE at a time."""
    chunks = [GENERATORS[name](DRAW_SIZE, rng) for _ in range(-(-n // DRAW_SIZE))]
    return np.concatenate(chunks)[:n] if chunks else np.zeros((0, GENERATORS[name](1, rng).shape[1]), np.float32)


def _class_source(classes, n: int, seed: int) -> PointSource:
    unknown = [c for c in classes if c not in GENERATORS]
    if unknown:
        raise DataError(f"data.classes: unknown data {unknown[0]!r}; expected built-in sets from {', '.join(GENERATORS)}")
    parts = [draw(c, n, np.random.default_rng([seed, 0, i])) for i, c in enumerate(classes)]
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:
        raise DataError(f"data.classes: the classes have different dimensions ({', '.join(f'{c}: {p.shape[1]}D' for c, p in zip(classes, parts))})")
    labels = np.repeat(np.arange(len(classes)), [len(p) for p in parts])
    return PointSource("+".join(classes), np.concatenate(parts), seed, tuple(classes), labels, tuple(classes))


def _held_out_split(labels: np.ndarray | None, n: int, holdout: float, rng: np.random.Generator) -> np.ndarray:
    """Indices to hold out: ``holdout`` of the points, of each class separately when labelled."""
    if n < 10:
        return np.zeros(0, dtype=np.int64)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    held = [rng.permutation(g)[: int(len(g) * holdout)] for g in groups]
    return np.sort(np.concatenate(held))


def make_source(
    name: str, n: int, seed: int, *, base: Path | None = None, holdout: float = 0.2, classes=(), labels: str = ""
) -> PointSource:
    """Build the point source named in a recipe: generators, one per class (``classes``), one
    generator name, or a file path (with ``labels`` as in data.labels)."""
    if classes:
        return _class_source(classes, n, seed)
    if name in GENERATORS:
        if labels:
            raise DataError(f"data.labels: {name} is a built-in set without labels; use data.classes for a conditional run")
        return PointSource(name, draw(name, n, np.random.default_rng([seed, 0])), seed, (name,))
    if Path(name).suffix.lower() not in FILE_EXTENSIONS + (".npz",):
        raise DataError(
            f"data.name: unknown data {name!r}; expected one of {', '.join(GENERATORS)} or a .npy/.csv/.npz file"
        )

    arr, y, class_names = load_labelled_points(name, labels, base)
    rng = np.random.default_rng(seed)
    held = _held_out_split(y, len(arr), holdout, rng)
    keep = np.setdiff1d(np.arange(len(arr)), held)
    keep = keep[rng.permutation(len(keep))]
    held = held[rng.permutation(len(held))]
    if y is None:
        return PointSource(name, arr[keep], seed, held_out=arr[held])
    return PointSource(name, arr[keep], seed, labels=y[keep], class_names=class_names, held_out=arr[held], held_out_labels=y[held])


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
