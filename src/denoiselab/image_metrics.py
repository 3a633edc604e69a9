"""Sample-quality metrics for generated images.

A small CNN classifier (``FeatureNet``), trained on the training split of the image data set,
plays two roles:

- **Accuracy** of the classifier on class-conditional samples: does a sample drawn for label y
  look like a y?  (The "classification accuracy score" idea, e.g. Ravuri & Vinyals 2019, in
  its simplest direction.)
- **Frechet distance** in the classifier's penultimate feature space between samples and the
  held-out split: FID (Heusel et al. 2017) with a domain-specific network in place of
  Inception-v3, which knows nothing of 8 x 8 digits.  FD is biased upward at finite n
  (Chong & Forsyth 2020), so it is reported beside its floor, the training split against the
  held-out split at the same n, and as the ratio to that floor (as ``metrics.py`` does for W2).

The network is cached under ``cache_dir()/classifiers/<key>.safetensors``, keyed by a hash
of its training data and settings, and retrained whenever the file is missing or unreadable.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from .files import cache_dir, write_tensors

# Bump when FeatureNet or the training recipe changes: old cache files then miss.
ARCH_VERSION = 1


def _images(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().float().cpu()
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(x.shape)}")
    return x


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).detach().long().cpu().reshape(-1)


# --------------------------------------------------------------------------------------------
# The network


class FeatureNet(nn.Module):
    """The metrics' image classifier, named for what it mostly serves: the features the Frechet
    distance is measured in.  (Classifier guidance's noise-conditional classifier is another
    network: models.classifiers.ImageClassifier.)

    Conv(32) -> Conv(64, stride 2) -> Conv(64, stride 2) -> 2x2 average pool -> Linear(feature_dim)
    -> Linear(num_classes), ReLU between.

    The adaptive pool makes any H, W >= 4 work and keeps a coarse layout (top/bottom, left/right),
    which global pooling would lose on larger images (a 6 and a 9 have the same parts).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        self.width, self.feature_dim = width, feature_dim
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(8 * width, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: the space the Frechet distance is measured in."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def config(self) -> dict[str, int]:
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "width": self.width, "feature_dim": self.feature_dim}


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels, repeating the border (the background
    for digits).  Cheap augmentation that makes the classifier tolerate small misplacements."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)).unbind(0)
    rows = (torch.arange(h)[None] + dy[:, None])[:, :, None]  # (B, H, 1)
    cols = (torch.arange(w)[None] + dx[:, None])[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2).contiguous()


MIN_CLASSIFIER_STEPS = 50


def classifier_steps(n_train: int, steps: int, max_epochs: float, batch_size: int) -> int:
    """The steps train_feature_net takes: ``steps``, or fewer where they would pass over the
    ``n_train`` images more than ``max_epochs`` times (never fewer than MIN_CLASSIFIER_STEPS)."""
    return min(steps, max(MIN_CLASSIFIER_STEPS, math.ceil(max_epochs * n_train / batch_size)))


def train_feature_net(
    images,
    labels,
    num_classes: int,
    *,
    seed: int = 0,
    steps: int = 600,
    max_epochs: float = 64.0,
    batch_size: int = 128,
    lr: float = 3e-3,
    augment: bool = True,
    holdout: float = 0.1,
    width: int = 32,
    feature_dim: int = 128,
) -> FeatureNet:
    """Train a FeatureNet: AdamW, one-cycle lr (10% warm-up, cosine decay), random shifts of
    up to H // 8 pixels; seeded and deterministic (for a given torch thread count).

    A seeded ``holdout`` fraction is kept out of training to measure ``net.val_accuracy``
    (None when holdout = 0); ``net.train_seconds`` is the wall time.

    ``steps`` stops at ``max_epochs`` passes over the training images (at least MIN_CLASSIFIER_STEPS):
    the digits' 1294 training images and every larger set get all 600 steps; 50 images would get
    1536 epochs, which a 32-wide CNN spends memorising them (a run on a tiny data file measured
    its classifier for minutes on a CPU).
    """
    started = time.perf_counter()
    x, y = _images(images), _labels(labels)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    n_val = int(round(holdout * len(x))) if len(x) > 1 else 0
    val, tr = perm[:n_val], perm[n_val:]
    steps = classifier_steps(len(tr), steps, max_epochs, batch_size)

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(seed)
        model = FeatureNet(x.shape[1], num_classes, width=width, feature_dim=feature_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    max_shift = max(1, x.shape[-1] // 8)
    model.train()
    for _ in range(steps):
        idx = tr[torch.randint(0, len(tr), (min(batch_size, len(tr)),), generator=gen)]
        xb = random_shift(x[idx], max_shift, gen) if augment else x[idx]
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    model.val_accuracy = classifier_accuracy(model, x[val], y[val]) if n_val else None
    model.train_seconds = time.perf_counter() - started
    return model


_TRAIN_DEFAULTS = {
    name: p.default for name, p in inspect.signature(train_feature_net).parameters.items() if p.kind is p.KEYWORD_ONLY
}


@torch.no_grad()
def _apply(net: FeatureNet, images, fn, batch_size: int = 1024) -> torch.Tensor:
    """Batched inference in eval mode (restoring the previous mode afterwards)."""
    x = _images(images)
    was_training = net.training
    net.eval()
    try:
        return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        net.train(was_training)


def predict(net: FeatureNet, images) -> torch.Tensor:
    return _apply(net, images, net).argmax(dim=1)


def features(net: FeatureNet, images) -> np.ndarray:
    return _apply(net, images, net.features).double().numpy()


def classifier_accuracy(net: FeatureNet, images, labels) -> float:
    y = _labels(labels)
    if len(y) == 0:
        raise ValueError("accuracy of an empty set")
    return float((predict(net, images) == y).double().mean())


# --------------------------------------------------------------------------------------------
# Cache


def feature_net_key(images, labels, num_classes: int, **train_kwargs) -> str:
    """sha256 over the training data, the architecture version and the training settings."""
    x, y = _images(images), _labels(labels)
    h = hashlib.sha256()
    # With train_feature_net's defaults filled in, passing a default explicitly keeps the key,
    # and a changed default (a longer recipe) makes old cache files miss.
    settings = {"arch_version": ARCH_VERSION, "num_classes": num_classes, "shape": list(x.shape), **_TRAIN_DEFAULTS, **train_kwargs}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _load(path: Path, num_classes: int, in_channels: int) -> FeatureNet | None:
    """The cached network, or None when the file is missing, unreadable or does not match."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
        config = json.loads(meta["config"])
        if int(meta["arch_version"]) != ARCH_VERSION or config["num_classes"] != num_classes or config["in_channels"] != in_channels:
            return None
        model = FeatureNet(**config)
        model.load_state_dict(state, strict=True)
        acc = meta.get("val_accuracy", "")
        model.val_accuracy = float(acc) if acc else None
        model.train_seconds = None
        return model.eval()
    except Exception as err:  # corrupt, truncated or foreign file: retrain, never crash an evaluation
        warnings.warn(f"ignoring unreadable classifier cache {path}: {err}", stacklevel=3)
        return None


def load_or_train_feature_net(
    images, labels, num_classes: int, *, key: str | None = None, cache: Path | None = None, **train_kwargs
) -> FeatureNet:
    """The FeatureNet for this training data, from ``<cache>/classifiers/<key>.safetensors`` when
    present and valid, else trained (``train_feature_net(**train_kwargs)``) and written atomically."""
    x, y = _images(images), _labels(labels)
    key = key or feature_net_key(x, y, num_classes, **train_kwargs)
    path = Path(cache if cache is not None else cache_dir()) / "classifiers" / f"{key}.safetensors"
    model = _load(path, num_classes, x.shape[1])
    if model is not None:
        return model
    model = train_feature_net(x, y, num_classes, **train_kwargs)
    meta = {
        "arch_version": str(ARCH_VERSION),
        "config": json.dumps(model.config()),
        "num_classes": str(num_classes),
        "shape": json.dumps(list(x.shape)),
        "val_accuracy": "" if model.val_accuracy is None else repr(model.val_accuracy),
        "train_kwargs": json.dumps(train_kwargs, sort_keys=True, default=str),
    }
    try:
        write_tensors(path, model.state_dict(), metadata=meta)
    except OSError as err:  # a read-only cache costs a retraining next time, not the evaluation
        warnings.warn(f"could not write classifier cache {path}: {err}", stacklevel=2)
    return model


# --------------------------------------------------------------------------------------------
# Frechet distance


def frechet_distance(feats_a, feats_b, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, Eq. 6):

        ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})

    in float64.  The matrix square root follows pytorch-fid: if sqrtm fails on a near-singular
    product (fewer samples than dimensions, dead ReLU units), retry with eps * I added to both
    covariances; imaginary parts from round-off are dropped.
    """
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (n, d) feature arrays with equal d, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))

    with warnings.catch_warnings():  # "matrix is singular" is expected here and handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():
            offset = eps * np.eye(len(s_a))
            covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(covmean):
        worst = np.abs(np.diagonal(covmean).imag).max()
        if worst > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            warnings.warn(f"frechet_distance: sqrtm has an imaginary component {worst:.3g}", stacklevel=2)
        covmean = covmean.real
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))
    return max(fd, 0.0)  # the true value is >= 0; round-off can dip below for identical sets


# --------------------------------------------------------------------------------------------
# The report


def image_metrics(
    net: FeatureNet, samples, sample_labels, held_out, train, *, seed: int = 0, floor_repeats: int = 5
) -> dict:
    """Accuracy and Frechet distance of ``samples``, as plain floats and ints.

    ``n``: samples used; ``accuracy``: classifier accuracy on the samples whose label is >= 0
    (None when ``sample_labels`` is None; -1 marks unconditional samples), with
    ``per_class_accuracy`` {label: accuracy} and ``n_labelled``; ``frechet``: FD(samples,
    held_out); ``frechet_floor``: FD(n training images, held_out), what a perfect model would
    score at this n, averaged over ``floor_repeats`` seeded subsets because at a few hundred
    samples one floor scatters by tens of percent (``frechet_floor_std``); ``frechet_ratio`` =
    frechet / frechet_floor.
    """
    samples, held_out, train = _images(samples), _images(held_out), _images(train)
    n = len(samples)
    ref = features(net, held_out)
    train_feats = features(net, train)
    gen = torch.Generator().manual_seed(seed)
    n_floor = min(n, len(train))
    repeats = 1 if n_floor == len(train) else max(1, floor_repeats)  # all of train: every subset is the same
    floors = [
        frechet_distance(train_feats[torch.randperm(len(train), generator=gen)[:n_floor].numpy()], ref)
        for _ in range(repeats)
    ]
    frechet = frechet_distance(features(net, samples), ref)
    floor = float(np.mean(floors))
    out = {
        "n": n,
        "n_held_out": len(held_out),
        "n_floor": n_floor,
        "frechet": frechet,
        "frechet_floor": floor,
        "frechet_floor_std": float(np.std(floors)),
        "frechet_ratio": frechet / floor if floor > 0 else float("inf"),
        "accuracy": None,
        "n_labelled": 0,
        "per_class_accuracy": {},
    }
    if sample_labels is not None:
        y = _labels(sample_labels)
        if len(y) != n:
            raise ValueError(f"{n} samples but {len(y)} labels")
        keep = y >= 0
        if keep.any():
            correct = predict(net, samples[keep]) == y[keep]
            out["accuracy"] = float(correct.double().mean())
            out["n_labelled"] = int(keep.sum())
            out["per_class_accuracy"] = {
                int(c): float(correct[y[keep] == c].double().mean()) for c in torch.unique(y[keep]).tolist()
            }
    return out
