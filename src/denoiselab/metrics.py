"""Sample-quality metrics for point data whose distribution we can draw from.

W2: the exact 2-Wasserstein distance between two equal-size empirical distributions, the
square root of the mean squared distance under the optimal one-to-one assignment (solved
with the Hungarian method, scipy.optimize.linear_sum_assignment).
Energy distance (Szekely & Rizzo 2013): 2 E|X - Y| - E|X - X'| - E|Y - Y'| (V-statistic),
zero iff the distributions are equal.
Both are biased upward at finite n; the "floor" (reference against an independent reference
of the same size) is what a perfect model would score, so report the ratio to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def w2_exact(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"W2 needs equal-size samples, got {a.shape} and {b.shape}")
    cost = torch.cdist(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)) ** 2
    rows, cols = linear_sum_assignment(cost.numpy())
    return float(np.sqrt(cost.numpy()[rows, cols].mean()))


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


@dataclass(frozen=True)
class PointMetrics:
    n: int
    w2: float
    w2_floor: float
    energy: float
    energy_floor: float

    @property
    def w2_ratio(self) -> float:
        return self.w2 / self.w2_floor

    @property
    def energy_ratio(self) -> float:
        return self.energy / self.energy_floor

    def to_dict(self) -> dict:
        return {**asdict(self), "w2_ratio": self.w2_ratio, "energy_ratio": self.energy_ratio}

    def summary(self) -> str:
        return (
            f"W2 {self.w2:.4f} (floor {self.w2_floor:.4f}, {self.w2_ratio:.2f}x)  "
            f"energy {self.energy:.5f} (floor {self.energy_floor:.5f}, {self.energy_ratio:.2f}x)  n={self.n}"
        )


def point_metrics(samples: np.ndarray, reference: np.ndarray, reference2: np.ndarray) -> PointMetrics:
    """Metrics of ``samples`` against ``reference``, with the floor ``reference2`` vs ``reference``."""
    n = min(len(samples), len(reference), len(reference2))
    s, r, r2 = samples[:n], reference[:n], reference2[:n]
    return PointMetrics(n, w2_exact(s, r), w2_exact(r2, r), energy_distance(s, r), energy_distance(r2, r))
