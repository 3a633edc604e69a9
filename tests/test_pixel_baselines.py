"""The pixel baselines beside an image run's bits/dim: closed forms on tiny sets, the same
dequantisation and offset as runs/likelihood.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from denoiselab.runs.likelihood import dequantise
from denoiselab.runs.pixel_baselines import TRAIN_NOISE_SEED, diagonal_gaussian_nll, gaussian_mixture_nll, pixel_baselines


def test_the_diagonal_gaussian_read_on_its_own_pixels_is_its_entropy_in_bits_per_dim():
    """Six 1 x 2 x 2 images on the digits' 17-level grid, dequantised from one seed for both
    sets: the mean NLL of the maximum-likelihood Gaussian on its own data is
    1/2 sum_d log(2 pi e v_d), and bits/dim adds log2((17 - 1) / 2) = 3."""
    rng = np.random.default_rng(0)
    images = (-1 + 2 * rng.integers(0, 17, size=(6, 1, 2, 2)) / 16).astype(np.float32)
    (diagonal,) = pixel_baselines(images, images, 17, seed=4, train_seed=4, components=())
    u = np.random.default_rng([4, 3]).random(images.shape)  # the convention, written out again
    pixels = (images + (2 / 16) * (u - 0.5)).reshape(6, 4).astype(np.float32).astype(np.float64)
    var = pixels.var(0)
    entropy = 0.5 * np.log(2 * math.pi * math.e * var).sum()
    assert diagonal.nll.mean() == pytest.approx(entropy, rel=1e-6)
    assert diagonal.bits_per_dim.mean() == pytest.approx(entropy / (4 * math.log(2)) + 3.0, rel=1e-6)
    # and with other noise for the training pixels, the fit is no longer on the measured pixels
    (other,) = pixel_baselines(images, images, 17, seed=4, train_seed=5, components=())
    assert other.nll.mean() > diagonal.nll.mean()


def test_the_diagonal_gaussian_of_one_point():
    """Mean 1 and variance 1 in each of two coordinates: the NLL of (1, 1) is log(2 pi)."""
    train = np.array([[0.0, 0.0], [2.0, 2.0]])
    assert diagonal_gaussian_nll(train, np.array([[1.0, 1.0]]))[0] == pytest.approx(math.log(2 * math.pi))
    assert diagonal_gaussian_nll(train, np.array([[2.0, 1.0]]))[0] == pytest.approx(math.log(2 * math.pi) + 0.5)


def test_one_mixture_component_is_the_full_covariance_gaussian():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]])
    test = rng.normal(size=(20, 3))
    cov = np.cov(train.T, ddof=0) + 1e-6 * np.eye(3)  # scikit-learn's reg_covar on the diagonal
    expected = -multivariate_normal(train.mean(0), cov).logpdf(test)
    assert np.allclose(gaussian_mixture_nll(train, test, 1), expected, rtol=1e-6)


def test_the_held_out_pixels_get_measure_likelihoods_noise():
    images = np.zeros((3, 1, 2, 2), np.float32)
    train = np.linspace(-1, 1, 17, dtype=np.float32)[np.random.default_rng(2).integers(0, 17, (40, 1, 2, 2))]
    (diagonal,) = pixel_baselines(train, images, 17, seed=9, components=())
    fitted = dequantise(train, 17, TRAIN_NOISE_SEED).reshape(40, -1)
    assert np.allclose(diagonal.nll, diagonal_gaussian_nll(fitted, dequantise(images, 17, 9).reshape(3, -1)))
