"""Image metrics: the Frechet distance against closed forms and a second computation, the digit
classifier, its cache, and the report on real and noise images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from denoiselab import image_metrics as im
from denoiselab.image_metrics import (
    FeatureNet,
    cache_dir,
    classifier_accuracy,
    frechet_distance,
    image_metrics,
    load_or_train_feature_net,
    train_feature_net,
)

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = dict(steps=5, batch_size=32)  # a classifier that exists, for the cache tests


@pytest.fixture(scope="module")
def digits():
    """sklearn's 8 x 8 digits in [-1, 1], shape (N, 1, 8, 8), with a fixed 1500 / 297 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 8 - 1
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1500], perm[1500:]
    return x[tr], y[tr], x[te], y[te]


@pytest.fixture(scope="module")
def classifier(digits):
    x, y, _, _ = digits
    return train_feature_net(x, y, 10, seed=0)


# --- Frechet distance -------------------------------------------------------------------------


def _direct_fd(mu_a, s_a, mu_b, s_b):
    """FD through the symmetric form Tr (S_a^1/2 S_b S_a^1/2)^1/2 (eigh, no general sqrtm)."""
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def test_frechet_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(0)
    d, n = 4, 200_000
    m1, m2 = np.array([0.0, 1.0, -1.0, 2.0]), np.array([0.5, 1.0, 0.0, 1.0])
    v1, v2 = np.array([1.0, 4.0, 0.25, 1.0]), np.array([2.0, 1.0, 0.25, 9.0])
    a = m1 + np.sqrt(v1) * rng.standard_normal((n, d))
    b = m2 + np.sqrt(v2) * rng.standard_normal((n, d))
    exact = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


def test_frechet_identical_sets_and_symmetry():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    b = rng.standard_normal((400, 16)) * 2 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8 * np.trace(np.cov(a, rowvar=False)))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 1.0


def test_frechet_matches_direct_computation_on_full_covariances():
    rng = np.random.default_rng(2)
    d = 12
    a = rng.standard_normal((3000, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    b = rng.standard_normal((2000, d)) @ rng.standard_normal((d, d))
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert frechet_distance(a, b) == pytest.approx(_direct_fd(mu_a, s_a, mu_b, s_b), rel=1e-8)
    # and the plain scipy formula
    plain = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * linalg.sqrtm(s_a @ s_b).real)
    assert frechet_distance(a, b) == pytest.approx(plain, rel=1e-10)


def test_frechet_singular_covariances_stay_finite():
    rng = np.random.default_rng(3)
    a = np.zeros((50, 64))
    a[:, :3] = rng.standard_normal((50, 3))  # rank 3 in 64 dimensions, like dead ReLU units
    b = a[::-1] + 0.1
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd == pytest.approx(64 * 0.01, rel=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


# --- classifier -------------------------------------------------------------------------------


def test_classifier_learns_digits(digits, classifier):
    _, _, x_te, y_te = digits
    assert classifier_accuracy(classifier, x_te, y_te) >= 0.95
    assert classifier.val_accuracy is not None and classifier.val_accuracy >= 0.9
    assert not classifier.training  # returned in eval mode


def test_classifier_is_not_fooled_by_noise(classifier):
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(500, 1, 8, 8, generator=g).clamp(-1, 1)
    random_labels = torch.randint(0, 10, (500,), generator=g)
    assert classifier_accuracy(classifier, noise, random_labels) <= 0.3


def test_training_is_seeded(digits):
    x, y, _, _ = digits
    a, b = (train_feature_net(x[:300], y[:300], 10, seed=3, **QUICK) for _ in range(2))
    c = train_feature_net(x[:300], y[:300], 10, seed=4, **QUICK)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.head.weight, c.head.weight)


@pytest.mark.parametrize(("channels", "size"), [(1, 8), (3, 16), (1, 28), (3, 9)])
def test_classifier_shapes(channels, size):
    model = FeatureNet(channels, 7)
    x = torch.zeros(3, channels, size, size)
    assert model(x).shape == (3, 7) and model.features(x).shape == (3, 128)


# --- cache ------------------------------------------------------------------------------------


def test_cache_dir_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DENOISELAB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "denoiselab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "denoiselab"
    monkeypatch.setenv("DENOISELAB_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_cache_trains_once_then_loads(digits, tmp_path, monkeypatch):
    x, y = digits[0][:200], digits[1][:200]
    first = load_or_train_feature_net(x, y, 10, cache=tmp_path, **QUICK)
    files = list((tmp_path / "classifiers").glob("*.safetensors"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("should have loaded the cached classifier")

    monkeypatch.setattr(im, "train_feature_net", no_training)
    second = load_or_train_feature_net(x, y, 10, cache=tmp_path, **QUICK)
    assert all(torch.equal(p, q) for p, q in zip(first.state_dict().values(), second.state_dict().values(), strict=True))
    assert second.val_accuracy == pytest.approx(first.val_accuracy)
    # other data or other settings miss the cache
    with pytest.raises(AssertionError, match="cached"):
        load_or_train_feature_net(x, y, 10, cache=tmp_path, steps=6, batch_size=32)
    with pytest.raises(AssertionError, match="cached"):
        load_or_train_feature_net(x[:150], y[:150], 10, cache=tmp_path, **QUICK)


def test_corrupt_cache_is_retrained(digits, tmp_path):
    x, y = digits[0][:200], digits[1][:200]
    path = tmp_path / "classifiers" / "mykey.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        model = load_or_train_feature_net(x, y, 10, key="mykey", cache=tmp_path, **QUICK)
    assert isinstance(model, FeatureNet)
    loaded = im._load(path, 10, 1)  # overwritten with a valid file
    assert loaded is not None and torch.equal(loaded.head.weight, model.head.weight)
    assert im._load(path, 9, 1) is None  # a file for another label set is not used


def test_cache_env_respected(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("DENOISELAB_CACHE", str(tmp_path / "envcache"))
    load_or_train_feature_net(digits[0][:100], digits[1][:100], 10, **QUICK)
    assert len(list((tmp_path / "envcache" / "classifiers").glob("*.safetensors"))) == 1


# --- the report -------------------------------------------------------------------------------


def test_image_metrics_real_versus_noise(digits, classifier):
    x_tr, _, x_te, y_te = digits
    n = 150
    real = image_metrics(classifier, x_te[:n], y_te[:n], x_te, x_tr)
    assert real["n"] == n and real["n_floor"] == n and real["n_held_out"] == len(x_te)
    assert real["accuracy"] >= 0.95 and real["n_labelled"] == n
    assert set(real["per_class_accuracy"]) == set(y_te[:n].tolist())
    assert real["frechet_ratio"] < 1.5  # as good as fresh training images
    assert all(isinstance(real[k], float) for k in ("frechet", "frechet_floor", "frechet_ratio", "accuracy"))

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 1, 8, 8, generator=g).clamp(-1, 1)
    bad = image_metrics(classifier, noise, y_te[:n], x_te, x_tr)
    assert bad["frechet"] > 5 * bad["frechet_floor"] and bad["frechet_ratio"] > 5
    assert bad["accuracy"] <= 0.3
    assert bad["frechet_floor"] == real["frechet_floor"]  # same n, same seed


def test_image_metrics_without_labels_and_with_unconditional_samples(digits, classifier):
    x_tr, _, x_te, y_te = digits
    out = image_metrics(classifier, x_te[:50], None, x_te, x_tr)
    assert out["accuracy"] is None and out["per_class_accuracy"] == {} and out["n_labelled"] == 0
    labels = y_te[:50].clone()
    labels[:20] = -1  # unconditional samples are left out of the accuracy
    out = image_metrics(classifier, x_te[:50], labels, x_te, x_tr)
    assert out["n_labelled"] == 30 and out["n"] == 50


def test_cache_key_fills_in_defaults(digits):
    x, y = digits[0][:50], digits[1][:50]
    key = im.feature_net_key(x, y, 10)
    assert im.feature_net_key(x, y, 10, seed=0) == key  # the default, spelled out
    assert im.feature_net_key(x, y, 10, seed=1) != key
    assert im.feature_net_key(x, y, 9) != key
    assert im.feature_net_key(x[:49], y[:49], 10) != key


def test_a_classifier_of_a_few_images_stops_at_its_epoch_cap_and_the_digits_get_every_step():
    from denoiselab.image_metrics import MIN_CLASSIFIER_STEPS, classifier_steps

    digits_train = 1294  # the digits' training split less the classifier's own 10 % held out
    assert classifier_steps(digits_train, 600, 64.0, 128) == 600
    assert classifier_steps(45, 600, 64.0, 128) == MIN_CLASSIFIER_STEPS
    assert classifier_steps(500, 600, 64.0, 128) == 250  # 64 passes over 500 images in batches of 128
    assert classifier_steps(45, 5, 64.0, 128) == 5  # never more than asked


def test_a_classifier_of_a_few_images_trains_its_capped_steps(digits):
    # 45 training images (50 less the 10 % held out) in batches of 32: 64 passes are 90 steps, so
    # asking 600 trains what asking 90 trains, the one-cycle schedule's length included; without
    # the cap the two would differ.
    x, y, _, _ = digits
    capped = train_feature_net(x[:50], y[:50], 10, seed=3, steps=600, batch_size=32)
    ninety = train_feature_net(x[:50], y[:50], 10, seed=3, steps=90, batch_size=32)
    assert all(torch.equal(p, q) for p, q in zip(capped.state_dict().values(), ninety.state_dict().values(), strict=True))
