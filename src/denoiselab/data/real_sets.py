"""Where the real image data sets are expected on disk, and what to say when they are not there.

denoiselab downloads nothing: the mnist, fashion-mnist and cifar10 recipes name the files at a
conventional path relative to the folder denoiselab runs in (``data/<set>/...``), and a missing
file is answered with one line saying which files to put there and where they come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cifar import is_cifar_path


@dataclass(frozen=True)
class RealSet:
    title: str
    place: str  # the folder the files go in
    files: str  # what to put there, in words
    page: str  # where the files are published


REAL_SETS = {
    "mnist": RealSet(
        "MNIST", "data/mnist/",
        "train-images-idx3-ubyte and train-labels-idx1-ubyte (gzipped or not)",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": RealSet(
        "Fashion-MNIST", "data/fashion-mnist/",
        "train-images-idx3-ubyte and train-labels-idx1-ubyte (gzipped or not)",
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": RealSet(
        "CIFAR-10", "data/cifar-10-batches-py/",
        "python batches (data_batch_1..5, test_batch, batches.meta, as cifar-10-python.tar.gz unpacks them)",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
}  # fmt: skip


def with_gzip_twin(p: Path) -> Path:
    """``p``, or ``p.gz`` when only the gzipped file is there (MNIST's pages publish the .gz)."""
    twin = p.with_name(p.name + ".gz")
    return twin if not p.exists() and twin.is_file() else p


def where_to_put(p: Path) -> str | None:
    """For a missing file of a real set: one sentence on what to put where; else None."""
    if p.exists():
        return None
    text = str(p)
    if is_cifar_path(p):
        real = REAL_SETS["cifar10"]
    elif "idx3-ubyte" in p.name:
        real = REAL_SETS["fashion-mnist" if "fashion" in text.lower() else "mnist"]
    else:
        return None
    return (
        f"{p}: not found; denoiselab downloads nothing: put {real.title}'s {real.files} "
        f"in {real.place} under the folder you run in (from {real.page}), or pass --set data.name=PATH"
    )
