"""Toy point distributions from the seed documents and the diffusion literature.

Every generator is ``fn(n, rng) -> float32 array (n, D)`` with ``rng`` a
``numpy.random.Generator``, so a run's data is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np


def spiral(n: int, rng: np.random.Generator) -> np.ndarray:
    """Seed 001's spiral, exactly: two turns, r = theta / 2, noise 0.3, scaled by the max |x|.

    The scale depends on the draw (the max of n points), as in the seed; reference draws for
    metrics therefore use the same n as the training set (see data.sources).
    """
    theta = np.sqrt(rng.random(n)) * 720 * (np.pi / 180)
    r = 0.5 * theta
    data = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1) + rng.standard_normal((n, 2)) * 0.3
    return (data / np.max(np.abs(data))).astype(np.float32)


def circle(n: int, rng: np.random.Generator) -> np.ndarray:
    """Seed 001's circle: radius 0.8 with isotropic noise 0.06."""
    theta = rng.random(n) * 2 * np.pi
    data = 0.8 * np.stack([np.cos(theta), np.sin(theta)], axis=1) + rng.standard_normal((n, 2)) * 0.06
    return data.astype(np.float32)


def swiss_roll(n: int, rng: np.random.Generator) -> np.ndarray:
    """The 2D swiss roll of seed 000 (scikit-learn's make_swiss_roll, x-z plane, noise 0.5, / 10)."""
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    data = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.standard_normal((n, 2)) * 0.5
    return (data / 10.0).astype(np.float32)


def bimodal_1d(n: int, rng: np.random.Generator) -> np.ndarray:
    """Seed 003's 1D data: the equal mixture of N(-2, 0.3^2) and N(2, 0.3^2).

    Each point picks its mode by a fair coin.  (The seed draws exactly n/2 from each; a
    sampler cannot reproduce that, so reference draws made that way would set a floor no
    model can reach.)
    """
    centres = np.where(rng.random(n) < 0.5, -2.0, 2.0)
    return (centres + 0.3 * rng.standard_normal(n))[:, None].astype(np.float32)


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles (scikit-learn's make_moons), each point's moon by a fair coin, noise 0.1."""
    a = np.pi * rng.random(n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(a), 1 - np.cos(a))
    y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
    return (np.stack([x, y], axis=1) + rng.standard_normal((n, 2)) * 0.1).astype(np.float32)


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eight Gaussians (std 0.1) on a circle of radius 2."""
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    centers = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centers + 0.1 * rng.standard_normal((n, 2))).astype(np.float32)


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the dark squares of a 4 x 4 checkerboard over [-2, 2]^2 (FFJORD's toy)."""
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1).astype(np.float32)


GENERATORS = {
    "spiral": spiral,
    "circle": circle,
    "swiss-roll": swiss_roll,
    "bimodal-1d": bimodal_1d,
    "moons": moons,
    "eight-gaussians": eight_gaussians,
    "checkerboard": checkerboard,
}
