"""Image data: scikit-learn's digits, seed 002's patterns, IDX / .npz / folder files, the split."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from denoiselab.data import (
    IMAGE_DATASETS,
    PATTERN_KINDS,
    DataError,
    ImageSet,
    load_digits,
    load_idx,
    load_image_data,
    load_image_folder,
    load_npz,
    make_patterns,
    resize_images,
    split,
    split_indices,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def raises_one_line(fn, *needles) -> str:
    """Call fn, expect a DataError whose message is one line and contains every needle."""
    with pytest.raises(DataError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message, message
    for needle in needles:
        assert str(needle) in message, (needle, message)
    return message


# --- digits -----------------------------------------------------------------------------------
def test_digits_are_sklearns_in_minus_one_to_one():
    from sklearn.datasets import load_digits as sklearn_digits

    data, ref = load_digits(), sklearn_digits()
    assert len(data) == 1797 and data.shape == (1, 8, 8)
    assert data.images.dtype == torch.float32 and data.labels.dtype == torch.int64
    assert data.images.min().item() == -1.0 and data.images.max().item() == 1.0
    assert data.num_classes == 10 and data.class_names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(data.labels.numpy(), ref.target)
    np.testing.assert_allclose(data.images[:, 0].numpy(), ref.images / 8.0 - 1.0, atol=1e-6)  # 0..16 -> -1..1


def test_digits_upscale():
    small, big = load_digits(), load_digits(upscale=2)
    assert big.shape == (1, 16, 16) and len(big) == 1797
    assert big.images.min() >= -1.0 and big.images.max() <= 1.0
    assert abs(big.images.mean().item() - small.images.mean().item()) < 0.02
    # each image keeps its own mean (the pixels are not shuffled between images)
    per_image = (big.images.mean((1, 2, 3)) - small.images.mean((1, 2, 3))).abs()
    assert per_image.max() < 0.1
    assert load_digits(upscale=3).shape == (1, 24, 24)
    torch.testing.assert_close(big.labels, small.labels)
    raises_one_line(lambda: load_digits(upscale=1.5), "upscale")
    raises_one_line(lambda: load_digits(upscale=0), "upscale")


# --- patterns ---------------------------------------------------------------------------------
def directional_variation(a: torch.Tensor) -> torch.Tensor:
    """Per image, the smallest mean |step| along rows, columns and the two diagonals."""
    steps = [
        a[:, :, 1:] - a[:, :, :-1],
        a[:, 1:, :] - a[:, :-1, :],
        a[:, 1:, 1:] - a[:, :-1, :-1],
        a[:, 1:, :-1] - a[:, :-1, 1:],
    ]
    return torch.stack([s.abs().mean((1, 2)) for s in steps], 1).min(1).values


def diagonal_gradient_share(a: torch.Tensor) -> torch.Tensor:
    """sum |gx gy| / sum (gx^2 + gy^2): near 0 for axis-aligned edges, about 1/pi for round ones."""
    gx = a[:, 1:-1, 2:] - a[:, 1:-1, :-2]
    gy = a[:, 2:, 1:-1] - a[:, :-2, 1:-1]
    return (gx * gy).abs().sum((1, 2)) / ((gx**2 + gy**2).sum((1, 2)) + 1e-9)


def test_patterns_shapes_balance_and_range():
    data = make_patterns(402, size=16, seed=0)
    assert data.shape == (1, 16, 16) and len(data) == 402 and data.images.dtype == torch.float32
    assert data.class_names == list(PATTERN_KINDS) and data.num_classes == 4
    assert torch.bincount(data.labels).tolist() == [101, 101, 100, 100]  # remainder spread
    assert data.images.min() >= -1.0 and data.images.max() <= 1.0
    assert data.images.min() == -1.0 and data.images.max() == 1.0  # full contrast, not washed out
    assert not torch.equal(data.labels, torch.sort(data.labels).values)  # shuffled
    assert make_patterns(10, size=24).shape == (1, 24, 24)


def test_patterns_are_a_function_of_the_seed():
    a, b, c = make_patterns(200, seed=3), make_patterns(200, seed=3), make_patterns(200, seed=4)
    torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
    torch.testing.assert_close(a.labels, b.labels, rtol=0, atol=0)
    assert not torch.equal(a.labels, c.labels)  # another shuffle
    for k in range(4):  # and other pictures, not the same ones in another order
        assert not torch.equal(a.images[a.labels == k][:10], c.images[c.labels == k][:10])


@pytest.mark.parametrize("kind", PATTERN_KINDS)
def test_each_class_varies(kind):
    data = make_patterns(200, seed=0)
    imgs = data.images[data.labels == PATTERN_KINDS.index(kind)].flatten(1)
    assert len(torch.unique(imgs, dim=0)) == len(imgs)  # no two images alike
    assert imgs.std(0).mean() > 0.3  # and not nearly alike either


def test_stripes_are_constant_along_a_direction_checkerboards_are_not():
    data = make_patterns(800, seed=1)
    a, y = data.images[:, 0], data.labels
    var = directional_variation(a)
    assert var[y == PATTERN_KINDS.index("stripes")].max() < 1e-5
    assert var[y == PATTERN_KINDS.index("checkerboard")].min() > 0.2


def test_circles_have_round_edges_squares_straight_ones():
    data = make_patterns(800, seed=2)
    share = diagonal_gradient_share(data.images[:, 0])
    assert share[data.labels == PATTERN_KINDS.index("circles")].min() > 0.25
    assert share[data.labels == PATTERN_KINDS.index("squares")].max() < 0.25


def test_every_pair_of_kinds_is_told_apart():
    """A linear classifier on the (translation-invariant) FFT magnitude, on held-out patterns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = make_patterns(800, seed=0), make_patterns(400, seed=1)

    def features(d):
        return np.abs(np.fft.rfft2(d.images[:, 0].numpy())).reshape(len(d), -1)

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(features(train), train.labels.numpy())
    predicted = clf.predict(features(test))
    truth = test.labels.numpy()
    for k in range(4):  # per class, so one kind confused with another cannot hide in an average
        assert (predicted[truth == k] == k).mean() > 0.95, PATTERN_KINDS[k]


def test_pattern_kinds_subset_and_errors():
    data = make_patterns(30, seed=0, kinds=("stripes", "checkerboard"))
    assert data.class_names == ["stripes", "checkerboard"] and torch.bincount(data.labels).tolist() == [15, 15]
    full = make_patterns(60, seed=0)
    # a kind's images come from its own stream, so asking for fewer kinds does not change them
    torch.testing.assert_close(
        data.images[data.labels == 0][:3], full.images[full.labels == PATTERN_KINDS.index("stripes")][:3]
    )
    raises_one_line(lambda: make_patterns(10, kinds=("stars",)), "stars")
    raises_one_line(lambda: make_patterns(0), "n")
    raises_one_line(lambda: make_patterns(10, size=2), "size")


# --- IDX --------------------------------------------------------------------------------------
def write_idx(path, magic: int, array: np.ndarray, gz: bool = False, cut: int = 0) -> None:
    blob = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    blob = blob[: len(blob) - cut]
    path.write_bytes(gzip.compress(blob) if gz else blob)


@pytest.fixture
def mnist_like():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, mnist_like, gz):
    pixels, labels = mnist_like
    # gzip is recognised by its magic bytes: the plain file gets a .gz name and vice versa
    images_file = tmp_path / ("images.raw" if gz else "images.gz")
    write_idx(images_file, 0x803, pixels, gz)
    write_idx(tmp_path / "labels", 0x801, labels, gz)
    data = load_idx(images_file, tmp_path / "labels")
    assert data.shape == (1, 5, 4) and len(data) == 7 and data.images.dtype == torch.float32
    np.testing.assert_allclose(data.images[:, 0].numpy(), pixels / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert data.class_names == [str(i) for i in range(10)]
    unlabelled = load_idx(images_file)
    assert unlabelled.labels is None and unlabelled.num_classes == 0


def test_idx_errors(tmp_path, mnist_like):
    pixels, labels = mnist_like
    write_idx(tmp_path / "good-images", 0x803, pixels)
    write_idx(tmp_path / "good-labels", 0x801, labels)
    write_idx(tmp_path / "swapped", 0x801, labels)  # a labels file given as the images
    raises_one_line(lambda: load_idx(tmp_path / "swapped"), "swapped", "magic", "0x00000803")
    raises_one_line(lambda: load_idx(tmp_path / "good-images", tmp_path / "good-images"), "good-images", "magic")
    write_idx(tmp_path / "cut-images", 0x803, pixels, cut=10)
    raises_one_line(lambda: load_idx(tmp_path / "cut-images"), "cut-images", "truncated")
    write_idx(tmp_path / "cut-images.gz", 0x803, pixels, gz=True, cut=10)
    raises_one_line(lambda: load_idx(tmp_path / "cut-images.gz"), "cut-images.gz", "truncated")
    (tmp_path / "tiny").write_bytes(struct.pack(">I", 0x803) + b"\x00\x00")
    raises_one_line(lambda: load_idx(tmp_path / "tiny"), "tiny", "truncated")
    write_idx(tmp_path / "six-labels", 0x801, labels[:6])
    raises_one_line(lambda: load_idx(tmp_path / "good-images", tmp_path / "six-labels"), "six-labels", "6", "7")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"x" * 100)[:20])  # a cut-off download
    raises_one_line(lambda: load_idx(tmp_path / "broken.gz"), "broken.gz", "gzip")
    raises_one_line(lambda: load_idx(tmp_path / "absent"), "absent", "no such file")
    raises_one_line(lambda: load_idx(tmp_path), str(tmp_path), "folder")


@pytest.mark.parametrize(
    "images_name, labels_name",
    [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ("train-images.idx3-ubyte", "train-labels.idx1-ubyte"),
    ],
)
def test_dispatcher_finds_the_idx_labels_alongside(tmp_path, mnist_like, images_name, labels_name):
    pixels, labels = mnist_like
    gz = images_name.endswith(".gz")
    write_idx(tmp_path / images_name, 0x803, pixels, gz)
    assert load_image_data(str(tmp_path / images_name)).labels is None  # no labels file: unlabelled
    write_idx(tmp_path / labels_name, 0x801, labels, gz)
    data = load_image_data(str(tmp_path / images_name))
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert load_image_data(images_name, base=tmp_path).labels is not None  # relative to a recipe's folder
    assert load_image_data(str(tmp_path / images_name), size=8).shape == (1, 8, 8)


# --- NPZ --------------------------------------------------------------------------------------
def test_npz_uint8_hwc_with_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 5, 4, 3), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "rgb.npz", x=x, y=y, class_names=np.array(["cat", "dog", "owl"]))
    data = load_npz(tmp_path / "rgb.npz")
    assert data.shape == (3, 5, 4) and len(data) == 6
    np.testing.assert_allclose(data.images.numpy(), x.transpose(0, 3, 1, 2) / 127.5 - 1.0, atol=1e-6)
    assert data.labels.tolist() == y.tolist() and data.class_names == ["cat", "dog", "owl"]


def test_npz_float_layouts_and_ranges(tmp_path):
    rng = np.random.default_rng(1)
    unit = rng.random((4, 1, 6, 6)).astype(np.float32)  # NCHW in [0, 1]
    np.savez(tmp_path / "unit.npz", x=unit)
    data = load_npz(tmp_path / "unit.npz")
    assert data.labels is None and data.class_names is None and data.shape == (1, 6, 6)
    np.testing.assert_allclose(data.images.numpy(), 2 * unit - 1, atol=1e-6)
    signed = rng.uniform(-1, 1, (4, 6, 6))  # NHW in [-1, 1], float64
    np.savez(tmp_path / "signed.npz", x=signed, y=np.array([3, 0, 1, 3]))
    data = load_npz(tmp_path / "signed.npz")
    np.testing.assert_allclose(data.images[:, 0].numpy(), signed, atol=1e-6)
    assert data.class_names == ["0", "1", "2", "3"] and data.num_classes == 4


def test_npz_errors(tmp_path):
    x = np.zeros((4, 6, 6), dtype=np.uint8)
    cases = {
        "nox.npz": ({"images": x}, ["'x'", "images"]),
        "flat.npz": ({"x": np.zeros((4, 36))}, ["'x'", "(4, 36)"]),
        "fivechannel.npz": ({"x": np.zeros((4, 5, 6, 6))}, ["'x'", "(4, 5, 6, 6)"]),
        "short.npz": ({"x": x, "y": np.arange(3)}, ["'y'", "4"]),
        "floaty.npz": ({"x": x, "y": np.array([0.0, 1.0, 0.5, 1.0])}, ["'y'", "float64", "integer"]),
        "nan.npz": ({"x": np.full((4, 6, 6), np.nan)}, ["'x'", "NaN"]),
        "bright.npz": ({"x": np.full((4, 6, 6), 200.0)}, ["'x'", "200"]),
        "names.npz": ({"x": x, "y": np.array([0, 1, 2, 2]), "class_names": np.array(["a", "b"])}, ["class_names"]),
    }
    for name, (arrays, needles) in cases.items():
        np.savez(tmp_path / name, **arrays)
        raises_one_line(lambda name=name: load_npz(tmp_path / name), name, *needles)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    raises_one_line(lambda: load_npz(tmp_path / "junk.npz"), "junk.npz", "cannot read")
    raises_one_line(lambda: load_npz(tmp_path / "absent.npz"), "absent.npz", "no such file")


# --- folders ----------------------------------------------------------------------------------
def save(path, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path)


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls, count in [("zebra", 2), ("ant", 3)]:
        for i in range(count):
            pixels[cls, i] = rng.integers(0, 256, (6, 5), dtype=np.uint8)
            save(tmp_path / cls / f"{i}.png", pixels[cls, i])
    (tmp_path / "ant" / "notes.txt").write_text("not an image")  # other extensions are skipped
    (tmp_path / "ant" / ".DS_Store").write_bytes(b"\x00\x01junk")  # and hidden files
    (tmp_path / ".cache").mkdir()  # and hidden folders
    data = load_image_folder(tmp_path)
    assert data.class_names == ["ant", "zebra"] and data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.shape == (1, 6, 5) and data.images.dtype == torch.float32  # grey PNGs -> C = 1
    np.testing.assert_allclose(data.images[3, 0].numpy(), pixels["zebra", 0] / 127.5 - 1.0, atol=1e-6)


def test_flat_folder_is_unlabelled_and_channels(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (4, 4), dtype=np.uint8)
    save(tmp_path / "flat" / "a.png", np.stack([grey] * 3, -1))  # an RGB file whose channels agree
    save(tmp_path / "flat" / "b.bmp", grey)
    data = load_image_folder(tmp_path / "flat")
    assert data.labels is None and data.num_classes == 0 and data.shape == (1, 4, 4)
    np.testing.assert_allclose(data.images[0, 0].numpy(), grey / 127.5 - 1.0, atol=1e-5)
    assert load_image_folder(tmp_path / "flat", channels="rgb").shape == (3, 4, 4)

    colour = np.zeros((4, 4, 3), dtype=np.uint8)
    colour[..., 0] = 255  # pure red
    save(tmp_path / "flat" / "c.png", colour)
    data = load_image_folder(tmp_path / "flat")  # one colour image makes the set RGB
    assert data.shape == (3, 4, 4)
    assert data.images[2, 0].min() == 1.0 and data.images[2, 1:].max() == -1.0
    torch.testing.assert_close(data.images[1], data.images[1, :1].expand(3, -1, -1))  # grey repeated
    assert load_image_folder(tmp_path / "flat", channels="grey").shape == (1, 4, 4)
    raises_one_line(lambda: load_image_folder(tmp_path / "flat", channels="cmyk"), "channels", "cmyk")


def test_gif_first_frame(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((4, 4), v, dtype=np.uint8)) for v in (255, 0)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    data = load_image_folder(tmp_path)
    assert data.images.min().item() == 1.0


def test_folder_resize_and_mixed_sizes(tmp_path):
    save(tmp_path / "big.png", np.full((12, 10), 255))
    save(tmp_path / "small.jpg", np.zeros((4, 4)))
    message = raises_one_line(lambda: load_image_folder(tmp_path), "big.png", "10x12", "small.jpg", "4x4", "size")
    assert "resize" in message
    data = load_image_folder(tmp_path, size=8)
    assert data.shape == (1, 8, 8) and len(data) == 2
    assert data.images[0].min() > 0.99 and data.images[1].max() < -0.99  # flat images stay flat


def test_folder_errors(tmp_path):
    save(tmp_path / "ok" / "a.png", np.zeros((4, 4)))
    (tmp_path / "ok" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    raises_one_line(lambda: load_image_folder(tmp_path / "ok"), "broken.png", "not a readable image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    raises_one_line(lambda: load_image_folder(tmp_path / "empty"), "empty", "no images")
    save(tmp_path / "classes" / "cat" / "a.png", np.zeros((4, 4)))
    (tmp_path / "classes" / "dog").mkdir()
    raises_one_line(lambda: load_image_folder(tmp_path / "classes"), "dog", "no images")
    save(tmp_path / "mixed" / "cat" / "a.png", np.zeros((4, 4)))
    save(tmp_path / "mixed" / "stray.png", np.zeros((4, 4)))
    raises_one_line(lambda: load_image_folder(tmp_path / "mixed"), "mixed", "stray.png", "cat")
    raises_one_line(lambda: load_image_folder(tmp_path / "nowhere"), "nowhere", "no such folder")


# --- the dispatcher ---------------------------------------------------------------------------
def test_dispatcher_built_ins_and_files(tmp_path):
    assert IMAGE_DATASETS == ("digits", "patterns")
    assert load_image_data("digits").shape == (1, 8, 8)
    assert load_image_data("digits", upscale=2).shape == (1, 16, 16)
    assert load_image_data("digits", size=16).shape == (1, 16, 16)
    assert load_image_data("digits", channels="rgb").shape == (3, 8, 8)
    patterns = load_image_data("patterns", n=20, seed=1, size=12)
    assert patterns.shape == (1, 12, 12) and len(patterns) == 20
    torch.testing.assert_close(patterns.images, make_patterns(20, 12, 1).images)
    assert load_image_data("patterns", n=8).shape == (1, 16, 16)
    np.savez(tmp_path / "x.npz", x=np.zeros((3, 8, 8, 3), dtype=np.uint8))
    assert load_image_data(str(tmp_path / "x.npz")).shape == (3, 8, 8)
    assert load_image_data(str(tmp_path / "x.npz"), size=4, channels="grey").shape == (1, 4, 4)
    save(tmp_path / "pics" / "a.png", np.zeros((5, 5)))
    assert load_image_data(str(tmp_path / "pics"), size=7).shape == (1, 7, 7)
    message = raises_one_line(lambda: load_image_data("mnist"), "'mnist'", "digits", "patterns", ".npz", "IDX")
    assert "folder" in message
    raises_one_line(lambda: load_image_data("digits", size=12), "size", "12")
    raises_one_line(lambda: load_image_data("patterns", upscale=2), "upscale")
    raises_one_line(lambda: load_image_data(str(tmp_path / "gone.npz")), "gone.npz", "no such file")


def test_a_built_in_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """data.name = "spiral" run from a folder holding a sub-folder "spiral" trains on the point set
    (it used to be read as a folder of images: "model.arch: 'spiral' is image data"); "./spiral"
    names the folder."""
    from denoiselab import load_config
    from denoiselab.config import ConfigError
    from denoiselab.data.images import is_image_data
    from denoiselab.training import load_training_data

    save(tmp_path / "spiral" / "a.png", np.zeros((4, 4)))
    save(tmp_path / "digits" / "a.png", np.zeros((4, 4)))
    monkeypatch.chdir(tmp_path)
    assert not is_image_data("spiral") and is_image_data("./spiral") and is_image_data("spiral/")
    points = load_training_data(load_config("spiral-flow", ["data.n=100"])).train
    assert points.ndim == 2 and points.shape[1] == 2  # the 2D point set
    assert load_image_data("digits").shape == (1, 8, 8)  # the built-in digits, not the folder
    with pytest.raises(ConfigError, match="is image data"):
        load_training_data(load_config("spiral-flow", ["data.name=./spiral"]))


# --- ImageSet, resizing and the split ---------------------------------------------------------
def test_imageset_subset_and_resize():
    data = make_patterns(40, seed=0)
    sub = data.subset(np.array([3, 1]))
    torch.testing.assert_close(sub.images, data.images[[3, 1]])
    assert sub.labels.tolist() == data.labels[[3, 1]].tolist() and sub.class_names == data.class_names
    assert len(data.subset(data.labels.numpy() == 0)) == 10  # a boolean mask
    assert len(data.subset(slice(0, 5))) == 5
    unlabelled = ImageSet(data.images, None, None)
    assert unlabelled.subset([0]).labels is None and unlabelled.num_classes == 0
    big = resize_images(data.images, 32)
    assert big.shape == (40, 1, 32, 32) and big.min() >= -1 and big.max() <= 1
    with pytest.raises(ValueError):
        ImageSet(data.images, data.labels[:3], None)


def test_split_is_stratified_disjoint_complete_and_seeded():
    data = make_patterns(403, seed=0)
    train, held = split(data, held_out=0.2, seed=0)
    train_idx, held_idx = split_indices(len(data), data.labels.numpy(), 0.2, 0)
    assert len(train) == len(train_idx) and len(held) == len(held_idx)
    torch.testing.assert_close(held.images, data.images[held_idx])
    assert len(np.intersect1d(train_idx, held_idx)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, held_idx])), np.arange(len(data)))
    assert train_idx.dtype == held_idx.dtype == np.int64
    counts = torch.bincount(data.labels, minlength=4).numpy()
    held_counts = torch.bincount(held.labels, minlength=4).numpy()
    assert np.all(np.abs(held_counts - 0.2 * counts) <= 0.5)  # every class held out in proportion
    again = split_indices(len(data), data.labels.numpy(), 0.2, 0)
    np.testing.assert_array_equal(again[1], held_idx)
    assert not np.array_equal(split_indices(len(data), data.labels.numpy(), 0.2, 1)[1], held_idx)


def test_split_unlabelled_and_edges():
    train_idx, held_idx = split_indices(100, None, 0.1, 0)
    assert len(held_idx) == 10 and len(train_idx) == 90
    assert not np.array_equal(held_idx, np.arange(10))  # a random draw, not the first images
    # a class too small to hold anything out keeps its image for training
    train_idx, held_idx = split_indices(5, np.array([0, 0, 0, 0, 1]), 0.5, 0)
    assert 4 in train_idx and len(held_idx) == 2
    assert len(split_indices(10, None, 0.0, 0)[1]) == 0
    raises_one_line(lambda: split_indices(10, None, 1.0, 0), "held_out")
