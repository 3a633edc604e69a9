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

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _f64(x) -> torch.Tensor:
    # ascontiguousarray: torch cannot wrap numpy views with negative strides (x[::-1])
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)


def w2_exact(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"W2 needs equal-size samples, got {a.shape} and {b.shape}")
    cost = torch.cdist(_f64(a), _f64(b)) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return float(np.sqrt(cost.numpy()[rows, cols].mean()))


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _f64(a), _f64(b)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


@dataclass(frozen=True)
class PointMetrics:
    """Means over ``repeats`` independent comparisons (std beside each): at n = 2000 one
    energy distance scatters by about 25% of its floor, so single numbers mislead."""

    n: int
    repeats: int
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
            f"n={self.n}, mean of {self.repeats}"
        )


def point_metrics(samples: list[np.ndarray], references: list[np.ndarray]) -> PointMetrics:
    """Compare ``samples[i]`` with ``references[i]`` for i < R = len(samples); the floor compares
    ``references[i]`` with ``references[R + i]``, so 2R independent reference draws are needed.
    All sets are cut to the smallest size n.
    """
    R = len(samples)
    if R < 1 or len(references) < 2 * R:
        raise ValueError(f"need 2 x {R} reference sets for {R} sample sets, got {len(references)}")
    n = min(len(x) for x in [*samples, *references[: 2 * R]])
    w2 = [w2_exact(samples[i][:n], references[i][:n]) for i in range(R)]
    ed = [energy_distance(samples[i][:n], references[i][:n]) for i in range(R)]
    w2f = [w2_exact(references[R + i][:n], references[i][:n]) for i in range(R)]
    edf = [energy_distance(references[R + i][:n], references[i][:n]) for i in range(R)]
    stats = [(float(np.mean(v)), float(np.std(v))) for v in (w2, w2f, ed, edf)]
    (w, ws), (wf, wfs), (e, es), (ef, efs) = stats
    return PointMetrics(n, R, w, ws, wf, wfs, e, es, ef, efs)


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
        lines = [f"guidance {self.guidance:g}, label accuracy {self.mean_accuracy:.3f}"]
        for name, m in self.classes.items():
            acc = f"accuracy {self.accuracy[name]:.3f} (reference {self.reference_accuracy[name]:.3f})"
            lines.append(f"  {name:<{width}}  {acc}  {m.summary()}")
        if self.mixture is not None:
            lines.append(f"  {'mixture':<{width}}  accuracy {self.mixture_accuracy:.3f}{' ' * 20}{self.mixture.summary()}")
        return "\n".join(lines)
