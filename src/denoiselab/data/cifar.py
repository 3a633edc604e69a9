"""CIFAR-10 from its python pickle batches, read from local files (nothing is downloaded).

The ``cifar-10-batches-py`` folder (Krizhevsky 2009, "Learning Multiple Layers of Features from
Tiny Images"; https://www.cs.toronto.edu/~kriz/cifar.html) holds ``data_batch_1`` ..
``data_batch_5`` (the 50000 training images), ``test_batch`` (10000) and ``batches.meta``.
Each batch is a pickled dict: ``b"data"`` a (N, 3072) uint8 array whose row is one 32 x 32
image as three planes, red (bytes 0..1023), green, blue, each row-major; ``b"labels"`` N
integers 0..9.  ``batches.meta`` holds ``b"label_names"``, the ten class names.

The batches are pickles, and unpickling can run any callable the file names, so they are read
with ``SafeUnpickler``: only plain containers and numpy's own array reconstruction are allowed,
anything else is refused before it is called.
"""

from __future__ import annotations

import builtins
import io
import pickle
from pathlib import Path

import numpy as np

from .point_files import DataError, read_file_bytes

SIDE = 32
PIXELS = 3 * SIDE * SIDE  # bytes per row of b"data"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FOLDER = "cifar-10-batches-py"
# The class names batches.meta holds, used for a single batch file without its meta beside it.
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _numpy_reconstruct():
    """numpy's array-unpickling helper: numpy.core.multiarray before numpy 2, numpy._core after."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# (module, name) a batch may name -> the object it gets.  Python 2's cPickle (which wrote the
# real files) spells the builtins module __builtin__ and numpy's helper numpy.core.multiarray.
_ALLOWED = {
    **{(module, name): getattr(builtins, name)
       for module in ("builtins", "__builtin__") for name in ("dict", "list", "bytes", "str", "int")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): None,  # filled lazily: see find_class
    ("numpy._core.multiarray", "_reconstruct"): None,
}  # fmt: skip


class UnsafePickle(DataError):
    """A pickle names something other than the containers and numpy arrays a CIFAR batch holds."""


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the names in ``_ALLOWED`` and refuses every other one.

    ``encoding="bytes"`` reads Python 2's str as bytes, as the CIFAR page's own loader does.
    """

    def __init__(self, file, source: Path):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickle(
                f"{self.source}: refused to unpickle {module}.{name}: a CIFAR-10 batch holds only dicts, lists, "
                "bytes, numbers and numpy arrays, and any other name in a pickle can run code"
            )
        found = _ALLOWED[(module, name)]
        return _numpy_reconstruct() if found is None else found


def _unpickle(path: Path) -> object:
    try:
        return SafeUnpickler(io.BytesIO(read_file_bytes(path)), path).load()
    except UnsafePickle:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        what = " ".join(str(exc).split())
        raise DataError(f"{path}: not a CIFAR-10 python pickle batch ({type(exc).__name__}: {what})") from None


def _field(path: Path, d: object, key: str) -> object:
    """d[b"key"] (as the real files, written by Python 2) or d["key"] (re-pickled by Python 3)."""
    if not isinstance(d, dict):
        raise DataError(f"{path}: holds a {type(d).__name__}, expected the dict of a CIFAR-10 batch")
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DataError(f"{path}: no key {key!r}; found keys {sorted(str(k) for k in d) or 'none'}")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (pixels (N, 3, 32, 32) uint8 RGB, labels (N,) int64)."""
    path = Path(path)
    d = _unpickle(path)
    data = _field(path, d, "data")
    labels = _field(path, d, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        found = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is a {found}; expected uint8 of shape (N, {PIXELS}) (32 x 32 RGB planes)")
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'labels' are not integers ({' '.join(str(exc).split())})") from None
    if len(y) != len(data):
        raise DataError(f"{path}: {len(y)} labels but {len(data)} images in 'data'; expected one label per image")
    if len(y) and (y.min() < 0 or y.max() >= len(CLASS_NAMES)):
        raise DataError(f"{path}: labels run {int(y.min())}..{int(y.max())}; expected 0..{len(CLASS_NAMES) - 1}")
    return data.reshape(-1, 3, SIDE, SIDE), y  # each row: the red plane, then green, then blue


def read_class_names(path: str | Path) -> list[str]:
    """The ten names in batches.meta's b"label_names"."""
    path = Path(path)
    names = _field(path, _unpickle(path), "label_names")
    if not isinstance(names, list) or not all(isinstance(s, (bytes, str)) for s in names):
        raise DataError(f"{path}: 'label_names' is not a list of names")
    if len(names) != len(CLASS_NAMES):
        raise DataError(f"{path}: {len(names)} label names; expected {len(CLASS_NAMES)} (CIFAR-10)")
    return [s.decode("utf-8", "replace") if isinstance(s, bytes) else s for s in names]


def is_cifar_path(p: Path) -> bool:
    """Whether a data path means CIFAR-10's batches: the folder (by its name or its contents) or one batch."""
    if p.name == FOLDER or p.name in TRAIN_BATCHES or p.name == TEST_BATCH:
        return True
    return p.is_dir() and (p / META).is_file()


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10's pixels (N, 3, 32, 32) uint8 RGB, labels (N,) int64 and class names.

    ``path``: the ``cifar-10-batches-py`` folder, which gives the five training batches (all
    must be there, and batches.meta), or one batch file (``test_batch`` for the test set), whose
    names come from a batches.meta beside it or else are CIFAR-10's ten.
    """
    path = Path(path)
    if path.is_dir():
        missing = [name for name in (*TRAIN_BATCHES, META) if not (path / name).is_file()]
        if missing:
            raise DataError(
                f"{path}: missing {', '.join(missing)}; expected CIFAR-10's python batches "
                f"({', '.join(TRAIN_BATCHES)}, {META}) in the folder"
            )
        batches = [read_batch(path / name) for name in TRAIN_BATCHES]
        names = read_class_names(path / META)
    else:
        batches = [read_batch(path)]
        meta = path.with_name(META)
        names = read_class_names(meta) if meta.is_file() else list(CLASS_NAMES)
    pixels = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return np.ascontiguousarray(pixels), labels, names
