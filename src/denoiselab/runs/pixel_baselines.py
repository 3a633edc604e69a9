"""Simple densities of dequantised pixels, so an image model's bits/dim means something.

Both are fitted by maximum likelihood on the training images, dequantised as runs/likelihood.py
dequantises (``dequantise``: uniform noise inside each pixel's cell, from a seed), and read on the
held-out images dequantised exactly as ``measure_likelihood`` does (same function, same seed), so
their bits/dim (``bits_per_dim``: the same offset log2((L - 1) / 2)) stand beside a run's:

diagonal Gaussian  one mean and variance a pixel (the per-pixel sample moments, ddof 0):
                   NLL(x) = 1/2 sum_d [log(2 pi v_d) + (x_d - m_d)^2 / v_d].  Read on its own
                   training pixels its mean NLL is the Gaussian's entropy, 1/2 sum_d log(2 pi e v_d).
Gaussian mixture   scikit-learn's GaussianMixture (full covariances, EM from k-means, seeded)
                   with k components; k = 1 is the full-covariance Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .likelihood import bits_per_dim, dequantise

TRAIN_NOISE_SEED = 7_000  # the training pixels' dequantisation: noise apart from the held-out pixels'
MIXTURE_COMPONENTS = (1, 10)


@dataclass(frozen=True)
class Baseline:
    name: str
    nll: np.ndarray  # nats an image, of the dequantised held-out pixels
    bits_per_dim: np.ndarray


def diagonal_gaussian_nll(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """NLL (nats a row) of ``test`` (n, D) under the diagonal Gaussian fitted to ``train`` (m, D)."""
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    mean, var = train.mean(0), train.var(0)
    return 0.5 * (np.log(2 * math.pi * var) + (test - mean) ** 2 / var).sum(1)


def gaussian_mixture_nll(train: np.ndarray, test: np.ndarray, components: int, seed: int = 0) -> np.ndarray:
    """NLL (nats a row) of ``test`` under scikit-learn's GaussianMixture of ``components`` full
    Gaussians fitted to ``train``."""
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(components, covariance_type="full", random_state=seed, max_iter=200)
    mixture.fit(np.asarray(train, np.float64))
    return -mixture.score_samples(np.asarray(test, np.float64))


def pixel_baselines(train_images: np.ndarray, test_images: np.ndarray, levels: int, *, seed: int = 0,
                    train_seed: int = TRAIN_NOISE_SEED, components=MIXTURE_COMPONENTS) -> list[Baseline]:  # fmt: skip
    """The baselines' NLL and bits/dim of ``test_images`` (N, C, H, W on the grid of ``levels``),
    dequantised with ``seed`` as ``measure_likelihood(..., seed=seed)`` does; the training images
    with ``train_seed``."""
    dim = int(np.prod(test_images.shape[1:]))
    train = dequantise(train_images, levels, train_seed).reshape(len(train_images), -1)
    test = dequantise(test_images, levels, seed).reshape(len(test_images), -1)
    fitted = [("diagonal Gaussian", diagonal_gaussian_nll(train, test))]
    for k in components:
        name = "full-covariance Gaussian (GaussianMixture, k = 1)" if k == 1 else f"GaussianMixture, k = {k} full Gaussians"
        fitted.append((name, gaussian_mixture_nll(train, test, k, seed)))
    return [Baseline(name, nll, bits_per_dim(nll, dim, levels)) for name, nll in fitted]
