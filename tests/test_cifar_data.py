"""CIFAR-10's python pickle batches (data/cifar.py), written here in the real files' format, and the
one-line answers to a missing, malformed or hostile batch; where the real sets go (real_sets.py)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from test_image_data import raises_one_line

from denoiselab.data import DataError, load_cifar10, load_image_data
from denoiselab.data.cifar import CLASS_NAMES, META, TEST_BATCH, TRAIN_BATCHES, SafeUnpickler
from denoiselab.data.images import is_image_data

NAMES = [f"class-{i}" for i in range(10)]  # not CIFAR's own, so the test sees they come from batches.meta


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the real batches (protocol 2): bytes as BINSTRING (a
    Python 2 str) and numpy's array helper under its numpy 1 name, numpy.core.multiarray."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", "") == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def dump(path, obj, python2: bool = True):
    with open(path, "wb") as fh:
        if python2:
            Python2Pickler(fh, protocol=2).dump(obj)
        else:
            pickle.dump(obj, fh, protocol=4)
    return path


def batch_dict(pixels: np.ndarray, labels, name: str = "training batch 1 of 5") -> dict:
    """A batch as the real files hold it: bytes keys, (N, 3072) uint8, a list of int labels."""
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": pixels,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(pixels))],
    }


def write_cifar(folder, per_batch: int = 3, python2: bool = True):
    """A cifar-10-batches-py folder with five tiny training batches, a test batch and the meta;
    returns the (pixels, labels) of the training batches in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels, labels = [], []
    for i, name in enumerate((*TRAIN_BATCHES, TEST_BATCH)):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = (np.arange(per_batch) + i) % 10
        dump(folder / name, batch_dict(x, y), python2)
        if name != TEST_BATCH:
            pixels.append(x)
            labels.append(y)
    dump(folder / META, {b"label_names": [s.encode() for s in NAMES], b"num_cases_per_batch": per_batch, b"num_vis": 3072}, python2)
    return np.concatenate(pixels), np.concatenate(labels)


@pytest.mark.parametrize("python2", [True, False], ids=["python2-cpickle", "python3-protocol4"])
def test_the_folder_gives_the_five_training_batches(tmp_path, python2):
    folder = tmp_path / "cifar-10-batches-py"
    pixels, labels = write_cifar(folder, python2=python2)
    data = load_image_data(str(folder))
    assert data.shape == (3, 32, 32) and len(data) == 15  # 5 batches x 3; test_batch is not read
    assert data.class_names == NAMES
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    # each row is three 32 x 32 planes, R then G then B, each row-major; v -> v / 127.5 - 1
    expected = pixels.reshape(-1, 3, 32, 32).astype(np.float32) / 127.5 - 1
    np.testing.assert_array_equal(data.images.numpy(), expected)
    assert is_image_data(str(folder))


def test_channel_order_and_row_major_planes(tmp_path):
    x = np.zeros((2, 3072), dtype=np.uint8)
    x[0, :1024] = 255  # the first 1024 bytes: the red plane -> a red image
    x[1, 1024 + 1] = 255  # green plane, row 0, column 1
    x[1, 2048 + 32] = 255  # blue plane, row 1, column 0
    dump(tmp_path / TEST_BATCH, batch_dict(x, [3, 7], "testing batch 1 of 1"))
    data = load_cifar10(tmp_path / TEST_BATCH)
    red = data.images[0]
    assert torch.all(red[0] == 1) and torch.all(red[1:] == -1)
    lit = (data.images[1] > 0).nonzero().tolist()
    assert lit == [[1, 0, 1], [2, 1, 0]]  # (channel, row, column)
    assert data.labels.tolist() == [3, 7]
    assert data.class_names == list(CLASS_NAMES)  # no batches.meta beside it: CIFAR-10's ten


def test_one_batch_takes_the_names_beside_it(tmp_path):
    write_cifar(tmp_path)
    data = load_image_data(str(tmp_path / TEST_BATCH))
    assert len(data) == 3 and data.class_names == NAMES and data.labels.tolist() == [5, 6, 7]


class Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_naming_anything_else_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Hostile(marker), b"labels": []}))
    message = raises_one_line(lambda: load_image_data(str(path)), "refused to unpickle", "system", "can run code")
    assert not marker.exists(), message


def test_the_allowed_names_are_numpys_own(tmp_path):
    import io

    u = SafeUnpickler(io.BytesIO(b""), tmp_path / "x")
    assert u.find_class("numpy", "ndarray") is np.ndarray and u.find_class("__builtin__", "list") is list
    a = u.find_class("numpy.core.multiarray", "_reconstruct")
    assert a is u.find_class("numpy._core.multiarray", "_reconstruct") and a.__name__ == "_reconstruct"
    for module, name in [("builtins", "eval"), ("os", "system"), ("numpy", "load"), ("builtins", "getattr")]:
        with pytest.raises(DataError, match="refused"):
            u.find_class(module, name)


@pytest.mark.parametrize(
    "spoil, needles",
    [
        (lambda f: (f / "data_batch_3").unlink(), ["missing data_batch_3", "expected"]),
        (lambda f: (f / META).unlink(), ["missing batches.meta"]),
        (lambda f: (f / "data_batch_2").write_bytes(b"this is not a pickle"), ["data_batch_2", "not a CIFAR-10 python pickle batch"]),
        (lambda f: (f / "data_batch_2").write_bytes(gzip.compress(b"x")), ["data_batch_2", "not a CIFAR-10 python pickle"]),
        (lambda f: dump(f / "data_batch_4", batch_dict(np.zeros((2, 3000), np.uint8), [0, 1])), ["data_batch_4", "shape (2, 3000)", "(N, 3072)"]),
        (lambda f: dump(f / "data_batch_4", batch_dict(np.zeros((2, 3072), np.float32), [0, 1])), ["float32", "expected uint8"]),
        (lambda f: dump(f / "data_batch_5", batch_dict(np.zeros((3, 3072), np.uint8), [0, 1])), ["data_batch_5", "2 labels but 3 images"]),
        (lambda f: dump(f / "data_batch_5", batch_dict(np.zeros((2, 3072), np.uint8), [0, 10])), ["labels run 0..10", "0..9"]),
        (lambda f: dump(f / "data_batch_1", [1, 2, 3]), ["data_batch_1", "holds a list"]),
        (lambda f: dump(f / "data_batch_1", {b"labels": []}), ["no key 'data'"]),
        (lambda f: dump(f / META, {b"label_names": [b"a", b"b"]}), ["2 label names", "expected 10"]),
    ],
)
def test_bad_batches_are_one_line(tmp_path, spoil, needles):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    spoil(folder)
    raises_one_line(lambda: load_image_data(str(folder)), *needles)


def test_a_missing_real_set_says_where_to_put_it(tmp_path):
    for name, needles in [
        ("data/cifar-10-batches-py", ["CIFAR-10", "cifar-10-python.tar.gz", "data/cifar-10-batches-py", "downloads nothing"]),
        ("data/mnist/train-images-idx3-ubyte", ["MNIST", "train-labels-idx1-ubyte", "data/mnist/train-images-idx3-ubyte"]),
        ("data/fashion-mnist/train-images-idx3-ubyte", ["Fashion-MNIST", "data/fashion-mnist/"]),
    ]:
        assert is_image_data(name, tmp_path)  # recognised by name, so the image loader answers
        raises_one_line(lambda name=name: load_image_data(name, base=tmp_path), *needles)


def test_mnist_as_published_gzipped_is_found(tmp_path):
    """The recipe names train-images-idx3-ubyte; the pages publish it (and its labels) as .gz."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    pixels = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 2, 28, 28) + pixels.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, 2) + bytes([4, 9])))
    data = load_image_data("data/mnist/train-images-idx3-ubyte", base=tmp_path)
    assert data.shape == (1, 28, 28) and data.labels.tolist() == [4, 9]
    np.testing.assert_array_equal(data.images[:, 0].numpy(), pixels.astype(np.float32) / 127.5 - 1)
