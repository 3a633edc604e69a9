"""Data: the seed's spiral exactly, the generators, draws, reference sets, point files, normalisation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from denoiselab.data import GENERATORS, DataError, Normalization, load_points_file, make_source, spiral
from denoiselab.data.sources import DRAW_SIZE, draw

pytestmark = pytest.mark.usefixtures("one_thread")


# --- seed 001's generator, verbatim (it draws from the global np.random) ---------------------
def get_spiral_data(n_points=1000):
    theta = np.sqrt(np.random.rand(n_points)) * 720 * (np.pi / 180)
    r = 0.5 * theta
    x = r * np.cos(theta)
    y = r * np.sin(theta)
    data = np.stack([x, y], axis=1) + np.random.randn(n_points, 2) * 0.3
    data_max = np.max(np.abs(data))
    data = data / data_max
    return data.astype(np.float32)


# --- the same code written against an rng object with .rand / .randn -------------------------
def get_spiral_data_rng(rng, n_points=1000):
    theta = np.sqrt(rng.rand(n_points)) * 720 * (np.pi / 180)
    r = 0.5 * theta
    x = r * np.cos(theta)
    y = r * np.sin(theta)
    data = np.stack([x, y], axis=1) + rng.randn(n_points, 2) * 0.3
    data_max = np.max(np.abs(data))
    data = data / data_max
    return data.astype(np.float32)


class LegacyAdapter:
    """np.random's legacy .rand / .randn on top of a numpy Generator (same underlying draws)."""

    def __init__(self, gen: np.random.Generator):
        self.gen = gen

    def rand(self, *shape):
        return self.gen.random(shape)

    def randn(self, *shape):
        return self.gen.standard_normal(shape)


@pytest.mark.parametrize("seed, n", [(0, 2000), (7, 1000), (123, 37)])
def test_spiral_is_seed_001_with_the_global_random_state(seed, n):
    saved = np.random.get_state()
    try:
        np.random.seed(seed)
        expected = get_spiral_data(n)
    finally:
        np.random.set_state(saved)
    # RandomState(seed) produces the same stream as np.random.seed(seed); it has the
    # Generator-style .random / .standard_normal methods our generator calls.
    ours = spiral(n, np.random.RandomState(seed))
    assert ours.dtype == np.float32 and ours.shape == (n, 2)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spiral_is_seed_001_with_a_generator(seed):
    expected = get_spiral_data_rng(LegacyAdapter(np.random.default_rng(seed)), 2000)
    np.testing.assert_array_equal(spiral(2000, np.random.default_rng(seed)), expected)
    assert np.abs(expected).max() == 1.0  # the seed's scaling by the draw's own max


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_give_finite_float32_points(name):
    x = GENERATORS[name](2000, np.random.default_rng(0))
    dim = 1 if name == "bimodal-1d" else 2
    assert x.shape == (2000, dim) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert x.std() > 0.05  # not degenerate
    again = GENERATORS[name](2000, np.random.default_rng(0))
    np.testing.assert_array_equal(x, again)  # a pure function of the rng


def test_bimodal_1d_has_two_equal_modes():
    x = GENERATORS["bimodal-1d"](2000, np.random.default_rng(0))[:, 0]
    assert abs((x < 0).mean() - 0.5) < 0.05  # an equal mixture (exactly half or by a fair coin)
    assert abs(x[x < 0].mean() + 2) < 0.05 and abs(x[x > 0].mean() - 2) < 0.05
    assert abs(x[x > 0].std() - 0.3) < 0.03


def test_draw_concatenates_fixed_size_draws():
    n = 2 * DRAW_SIZE + 500
    got = draw("spiral", n, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    chunks = [spiral(DRAW_SIZE, rng) for _ in range(3)]
    np.testing.assert_array_equal(got, np.concatenate(chunks)[:n])
    # each full chunk is scaled by its own max, as seed 001's draw of 2000
    assert np.abs(got[:DRAW_SIZE]).max() == 1.0 and np.abs(got[DRAW_SIZE : 2 * DRAW_SIZE]).max() == 1.0
    # a small draw is the head of a DRAW_SIZE draw, not a draw of n (whose max would be 1)
    small = draw("spiral", 300, np.random.default_rng(5))
    np.testing.assert_array_equal(small, chunks[0][:300])
    assert small.shape == (300, 2)


def test_make_source_uses_the_seed():
    a = make_source("spiral", 2000, 0)
    b = make_source("spiral", 2000, 0)
    c = make_source("spiral", 2000, 1)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, c.train)
    assert a.dim == 2 and a.has_generator and a.train.shape == (2000, 2)


def test_reference_draws_are_fresh_and_independent_of_training():
    src = make_source("spiral", 2000, 0)
    r1, r2 = src.reference(2000, seed=1), src.reference(2000, seed=2)
    assert r1.shape == r2.shape == (2000, 2)
    np.testing.assert_array_equal(r1, src.reference(2000, seed=1))  # reproducible
    for a, b in [(src.train, r1), (src.train, r2), (r1, r2)]:
        assert not np.any(np.all(a[:, None, :] == b[None, :500, :], axis=-1))  # no shared points
    # same distribution though: the spiral's radius profile agrees
    assert abs(np.linalg.norm(r1, axis=1).mean() - np.linalg.norm(src.train, axis=1).mean()) < 0.02
    # the training draw of another data seed is not someone's reference set
    assert not np.array_equal(make_source("spiral", 2000, 1).train, r1)


# --- point files ----------------------------------------------------------------------------
def test_load_npy(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 2))
    np.save(tmp_path / "p.npy", x)
    got = load_points_file(tmp_path / "p.npy")
    assert got.dtype == np.float32 and got.shape == (50, 2)
    np.testing.assert_allclose(got, x, rtol=1e-6)
    np.save(tmp_path / "one.npy", x[:, 0])  # a 1-D array is N points in 1D
    assert load_points_file(tmp_path / "one.npy").shape == (50, 1)


def test_load_csv_with_and_without_header(tmp_path):
    (tmp_path / "p.csv").write_text("1,2\n3,4.5\n-1e-3,6\n")
    np.testing.assert_array_equal(load_points_file(tmp_path / "p.csv"), np.float32([[1, 2], [3, 4.5], [-1e-3, 6]]))
    (tmp_path / "h.csv").write_text("x1,x2\n1,2\n3,4\n")  # as `denoiselab sample --out h.csv` writes
    np.testing.assert_array_equal(load_points_file(tmp_path / "h.csv"), [[1, 2], [3, 4]])
    (tmp_path / "c.CSV").write_text("0.5\n1.5\n2.5\n")
    assert load_points_file(tmp_path / "c.CSV").shape == (3, 1)


def test_nan_names_file_and_row(tmp_path):
    x = np.zeros((20, 2))
    x[13, 1] = np.nan
    x[17, 0] = np.inf
    np.save(tmp_path / "bad.npy", x)
    with pytest.raises(DataError) as err:
        load_points_file(tmp_path / "bad.npy")
    assert "bad.npy" in str(err.value) and "NaN" in str(err.value) and "index 13" in str(err.value)
    (tmp_path / "bad.csv").write_text("x1,x2\n1,2\n\n# a comment\nnan,4\n")
    with pytest.raises(DataError, match=r"bad\.csv.*NaN.*first at line 5\)"):
        load_points_file(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "name, array, match",
    [
        ("cube.npy", np.zeros((4, 3, 2)), r"N x D.*\(4, 3, 2\)"),
        ("single.npy", np.zeros((1, 2)), r"N >= 2"),
        ("empty.npy", np.zeros((5, 0)), r"N x D"),
        ("text.npy", np.array([["a", "b"], ["c", "d"]]), r"expected numbers"),
    ],
)
def test_bad_npy_shapes(tmp_path, name, array, match):
    np.save(tmp_path / name, array)
    with pytest.raises(DataError, match=match) as err:
        load_points_file(tmp_path / name)
    assert name in str(err.value)


def test_bad_files(tmp_path):
    (tmp_path / "p.txt").write_text("1,2\n")
    with pytest.raises(DataError, match=r"p\.txt: unknown extension '\.txt'; expected one of \.npy, \.csv"):
        load_points_file(tmp_path / "p.txt")
    with pytest.raises(DataError, match=r"missing\.npy: no such file"):
        load_points_file(tmp_path / "missing.npy")
    (tmp_path / "words.csv").write_text("1,2\n3,abc\n")
    with pytest.raises(DataError, match=r"words\.csv: cannot read as \.csv"):
        load_points_file(tmp_path / "words.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(DataError, match=r"ragged\.csv"):
        load_points_file(tmp_path / "ragged.csv")
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(DataError, match=r"junk\.npy: cannot read"):
        load_points_file(tmp_path / "junk.npy")


def test_make_source_from_file_holds_points_out(tmp_path):
    x = np.arange(200, dtype=np.float32).reshape(100, 2)
    np.save(tmp_path / "pts.npy", x)
    src = make_source("pts.npy", 0, 3, base=tmp_path)  # relative to the run folder
    assert not src.has_generator and src.dim == 2
    held = src.held_out
    assert len(src.train) == 80 and len(held) == 20
    together = np.concatenate([src.train, held])
    np.testing.assert_array_equal(np.sort(together[:, 0]), x[:, 0])  # a split, no point lost or repeated
    ref = src.reference(50, seed=1)
    assert len(ref) == 20 and set(ref[:, 0]) == set(held[:, 0])  # references come from the held-out part


def test_make_source_unknown_name():
    with pytest.raises(DataError, match=r"data\.name: unknown data 'spirals'; expected one of spiral, "):
        make_source("spirals", 100, 0)


# --- normalisation --------------------------------------------------------------------------
def test_normalization_round_trip():
    x = (np.random.default_rng(0).normal(size=(500, 2)) * [3.0, 0.5] + [10.0, -4.0]).astype(np.float32)
    norm = Normalization.fit(x)
    z = norm.encode(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)
    assert abs((z**2).sum(1).mean() / 2 - 1) < 1e-4  # unit variance per dimension on average
    # one isotropic scale: the aspect ratio of the data is kept
    np.testing.assert_allclose(z.std(0) / z.std(0)[0], x.std(0) / x.std(0)[0], rtol=1e-4)
    np.testing.assert_allclose(norm.decode(z), x, rtol=1e-5, atol=1e-4)
    back = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(back.mean, norm.mean)
    assert back.scale == norm.scale
    np.testing.assert_array_equal(back.encode(x), z)


def test_normalization_identity_and_constant_data():
    ident = Normalization.identity(2)
    x = np.ones((4, 2), np.float32)
    np.testing.assert_array_equal(ident.encode(x), x)
    flat = Normalization.fit(np.full((10, 1), 3.0, np.float32))
    assert flat.scale == 1.0  # no division by zero
    np.testing.assert_array_equal(flat.encode(np.full((2, 1), 3.0, np.float32)), 0)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("x1,x2\n1,2\nx,3\n", "line 3, column 1: 'x'"),
        ("1,2\n3,4\n5,y\n", "line 3, column 2: 'y'"),
        ("1,2\n3,\n", "line 2, column 2"),
        # blank and comment lines count, as in an editor (numpy's own row numbers leave them out)
        ("x1,x2\n1,2\n\n3,4\n# c\n5,x\n", "line 6, column 2: 'x'"),
        ("x1,x2\n1,2\n\n3,4,5\n", "line 4 has 3 values, line 2 has 2"),
    ],
)
def test_a_bad_csv_value_is_named_by_its_line(tmp_path, text, where):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(DataError, match=re.escape(where)):
        load_points_file(tmp_path / "p.csv")
