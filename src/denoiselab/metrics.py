"""Sample-quality metrics for point data whose distribution we can draw from.

W2: the exact 2-Wasserstein distance between two equal-size empirical distributions, the
square root of the mean squared distance under the optimal one-to-one assignment (solved
with the Hungarian method, scipy.optimize.linear_sum_assignment).
Energy distance (Szekely & Rizzo 2013): 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic),
zero iff the distributions are equal.
Label accuracy (conditional runs): the share of samples of class c that a k-nearest-neighbour
classifier, fitted on draws of every class, assigns to c.
Both distances are biased upward at finite n; the "floor" (reference against an independent reference
of the same size) is what a perfect model would score, so report the ratio to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .files import cache_dir, write_json


def _f64(x) -> torch.Tensor:
    # ascontiguousarray: torch cannot wrap numpy views with negative strides (x[::-1])
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Direct differences rather than the |a|^2 + |b|^2 - 2ab matrix-product form: exact for
    # nearby points (no cancellation) and, in 1 or 2 dimensions, faster too.
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def w2_exact(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"W2 needs equal-size samples, got {a.shape} and {b.shape}")
    cost = _distances(_f64(a), _f64(b)) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return float(np.sqrt(cost.numpy()[rows, cols].mean()))


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _f64(a), _f64(b)
    return float(2 * _distances(a, b).mean() - _distances(a, a).mean() - _distances(b, b).mean())


# Reference draws per metric: 8 disjoint pairs for the W2 floor and 120 pairs for the energy
# floor.  A spiral draw is divided by its own max |x| (seed 001's generator), so each draw has a
# slightly different scale (std 2%); with 4 pairs the energy floor of one evaluation moved by
# a factor of 2 between reference seeds.  The floor belongs to the data, not the model, so it is
# worth estimating well.
REFERENCE_DRAWS = 16


@dataclass(frozen=True)
class Floor:
    """What a perfect model scores: W2 and energy distance between independent reference draws
    of the same size (mean and std over pairs)."""

    n: int
    w2_pairs: int
    energy_pairs: int
    w2: float
    w2_std: float
    energy: float
    energy_std: float


@dataclass(frozen=True)
class PointMetrics:
    """W2 and energy distance of ``repeats`` sample sets against ``references`` reference draws,
    with the floor beside them (std over pairs beside each mean): at n = 2000 one energy
    distance scatters by about half its floor, so single numbers mislead."""

    n: int
    repeats: int
    references: int
    w2: float
    w2_std: float
    w2_floor: float
    w2_floor_std: float
    energy: float
    energy_std: float
    energy_floor: float
    energy_floor_std: float

    @property
    def w2_ratio(self) -> float:
        return self.w2 / self.w2_floor if self.w2_floor > 0 else float("inf")

    @property
    def energy_ratio(self) -> float:
        return self.energy / self.energy_floor if self.energy_floor > 0 else float("inf")

    def to_dict(self) -> dict:
        return {**asdict(self), "w2_ratio": self.w2_ratio, "energy_ratio": self.energy_ratio}

    def summary(self) -> str:
        return (
            f"W2 {self.w2:.4f} (floor {self.w2_floor:.4f}, {self.w2_ratio:.2f}x)  "
            f"energy {self.energy:.5f} (floor {self.energy_floor:.5f}, {self.energy_ratio:.2f}x)  "
            f"n={self.n}, {self.repeats} sample sets, {self.references} reference draws"
        )


class FloorCancelled(Exception):
    """reference_floor stopped early because its ``cancel`` event was set."""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise FloorCancelled


def _w2_pairs(pairs: list[tuple[np.ndarray, np.ndarray]], cancel: threading.Event | None = None) -> list[float]:
    """w2_exact of each pair, on a thread per core: scipy's assignment solver releases the GIL,
    so the pairs are solved in parallel (BENCHMARKS.md, "Measured reasons in the code").  A set
    ``cancel`` event stops before the next pair (FloorCancelled)."""

    def one(pair):
        _check(cancel)
        return w2_exact(*pair)

    workers = min(len(pairs), os.cpu_count() or 1)
    if workers <= 1:
        return [one(pair) for pair in pairs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, pairs))


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


class _EnergyTerms:
    """Energy distances among many sets without recomputing E|X - X'|: each set's self term
    is computed once, each pair needs only its cross term (one cdist)."""

    def __init__(self, sets: list[np.ndarray]):
        self.sets = [_f64(x) for x in sets]
        self.self_terms = [float(_distances(x, x).mean()) for x in self.sets]

    def between(self, i: int, other: "_EnergyTerms", j: int) -> float:
        cross = float(_distances(self.sets[i], other.sets[j]).mean())
        return 2 * cross - self.self_terms[i] - other.self_terms[j]


def _cut(sets: list[np.ndarray], n: int) -> list[np.ndarray]:
    return [np.asarray(x)[:n] for x in sets]


def reference_floor(references: list[np.ndarray], n: int | None = None, *, cancel: threading.Event | None = None) -> Floor:
    """The floor from K >= 2 independent reference draws, each cut to n points (default: the
    smallest).  W2 (an exact assignment, O(n^3): the costly part) over the K // 2 disjoint
    pairs (0, 1), (2, 3), ...; energy distance (one cdist) over all K (K - 1) / 2 pairs.
    ``cancel`` (an event) stops it between two pieces of work: FloorCancelled."""
    K = len(references)
    if K < 2:
        raise ValueError(f"the floor needs at least 2 reference draws, got {K}")
    n = min(len(r) for r in references) if n is None else n
    refs = _cut(references, n)
    w2 = _w2_pairs([(refs[2 * j], refs[2 * j + 1]) for j in range(K // 2)], cancel)
    _check(cancel)
    terms = _EnergyTerms(refs)
    ed = []
    for i in range(K):
        _check(cancel)
        ed += [terms.between(i, terms, j) for j in range(i + 1, K)]
    return Floor(n, len(w2), len(ed), *_mean_std(w2), *_mean_std(ed))


# Bump when reference_floor's definition changes: old cache files then miss.
FLOOR_VERSION = 1


def floor_key(references: list[np.ndarray], n: int) -> str:
    """sha256 over the reference draws themselves (cut to n), so a changed generator, seed or
    count can never reuse another floor."""
    h = hashlib.sha256(f"floor v{FLOOR_VERSION} n={n} K={len(references)}".encode())
    for r in references:
        r = np.ascontiguousarray(np.asarray(r, dtype=np.float64)[:n])
        h.update(str(r.shape).encode())
        h.update(r.tobytes())
    return h.hexdigest()


# One lock per floor file: a second thread that wants the same floor (complete_run's metrics
# while runs.floors_in_background still measures it) waits for the first and reads its file.
_FLOOR_LOCKS: dict[Path, threading.Lock] = {}
_FLOOR_LOCKS_GUARD = threading.Lock()


def _floor_lock(path: Path) -> threading.Lock:
    with _FLOOR_LOCKS_GUARD:
        return _FLOOR_LOCKS.setdefault(path, threading.Lock())


def cached_floor(
    references: list[np.ndarray], n: int | None = None, cache: Path | None = None, *, cancel: threading.Event | None = None
) -> Floor:
    """``reference_floor``, kept in ``<cache>/floors/<key>.json`` (default: files.cache_dir()).

    The floor depends only on the data, and it is most of an evaluation's cost (8 exact
    assignments of 16), so evaluating the same run again, with another sampler or guidance
    scale, reuses it.  A missing, unreadable or mismatched file is measured again.  Threads of
    one process that ask for the same floor at once measure it once."""
    n = min(len(r) for r in references) if n is None else n
    path = Path(cache if cache is not None else cache_dir()) / "floors" / f"{floor_key(references, n)}.json"
    with _floor_lock(path):
        try:
            floor = Floor(**json.loads(path.read_text()))
            if floor.n == n:
                return floor
        except (OSError, ValueError, TypeError):
            pass
        floor = reference_floor(references, n, cancel=cancel)
        try:
            write_json(path, asdict(floor))
        except OSError:
            pass  # a read-only cache folder costs time, not correctness
        return floor


def point_metrics(samples: list[np.ndarray], references: list[np.ndarray], floor: Floor | None = None) -> PointMetrics:
    """Sample sets against K >= 2 independent reference draws, beside the floor.

    W2: sample set i against reference i mod K.  Energy distance: every sample set against
    every reference.  The floor (``reference_floor``, computed here unless given) compares the
    references with each other.  All sets are cut to the smallest size n.
    """
    R, K = len(samples), len(references)
    if R < 1:
        raise ValueError("need at least one sample set")
    if K < 2:
        raise ValueError(f"need at least 2 reference draws (for the floor), got {K}")
    n = min(len(x) for x in [*samples, *references])
    if floor is None:
        floor = reference_floor(references, n)
    elif floor.n != n:
        raise ValueError(f"the floor was measured at n = {floor.n}, the sets have n = {n}")
    samples, refs = _cut(samples, n), _cut(references, n)
    w2 = _w2_pairs([(samples[i], refs[i % K]) for i in range(R)])
    sample_terms, ref_terms = _EnergyTerms(samples), _EnergyTerms(refs)
    ed = [sample_terms.between(i, ref_terms, j) for i in range(R) for j in range(K)]
    (w, ws), (e, es) = _mean_std(w2), _mean_std(ed)
    return PointMetrics(n, R, K, w, ws, floor.w2, floor.w2_std, e, es, floor.energy, floor.energy_std)


# Neighbours that vote in label accuracy: a few, so a point in the overlap of two classes is
# judged by its neighbourhood rather than by one nearest point.
KNN_NEIGHBOURS = 5


def label_accuracy(fit_points: np.ndarray, fit_labels: np.ndarray, points: np.ndarray, labels: np.ndarray, k: int = KNN_NEIGHBOURS) -> float:
    """Share of ``points`` that a k-nearest-neighbour classifier fitted on ``fit_points`` (points
    of every class with their labels) assigns to the requested ``labels``.

    Where classes overlap even perfect samples score below 1: compare with the same classifier
    on fresh reference draws (ClassMetrics.reference_accuracy)."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, len(fit_points))).fit(fit_points, fit_labels)
    return float(np.mean(clf.predict(points) == np.asarray(labels)))


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of a class-conditional run at one guidance scale: W2 / energy of each class against
    its own reference draws, label accuracy (samples of class c that a nearest-neighbour
    classifier assigns to c) beside the same classifier's accuracy on reference draws, and the
    unlabelled mixture (every class in proportion) against the data's mixture."""

    guidance: float
    classes: dict[str, PointMetrics]
    accuracy: dict[str, float]
    reference_accuracy: dict[str, float]
    mixture: PointMetrics | None = None
    mixture_accuracy: float | None = None

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean(list(self.accuracy.values())))

    def to_dict(self) -> dict:
        out = {
            "guidance": self.guidance,
            "label_accuracy": self.mean_accuracy,
            "classes": {
                name: {**m.to_dict(), "label_accuracy": self.accuracy[name], "reference_accuracy": self.reference_accuracy[name]}
                for name, m in self.classes.items()
            },
        }
        if self.mixture is not None:
            out["mixture"] = {**self.mixture.to_dict(), "label_accuracy": self.mixture_accuracy}
        return out

    def summary(self) -> str:
        width = max(len(n) for n in [*self.classes, "mixture"])
        lines = [f"guidance {self.guidance:g}, label accuracy {self.mean_accuracy:.3f} (mean over classes)"]
        for name, m in self.classes.items():
            acc = f"accuracy {self.accuracy[name]:.3f} (reference {self.reference_accuracy[name]:.3f})"
            lines.append(f"  {name:<{width}}  {acc}  {m.summary()}")
        if self.mixture is not None:
            lines.append(f"  {'mixture':<{width}}  accuracy {self.mixture_accuracy:.3f}{' ' * 20}{self.mixture.summary()}")
        return "\n".join(lines)
