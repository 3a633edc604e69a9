"""Metrics: exact W2 against brute force, energy distance against scipy, the floor."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy_distance

from denoiselab.metrics import PointMetrics, energy_distance, point_metrics, w2_exact

pytestmark = pytest.mark.usefixtures("one_thread")


def brute_force_w2(a: np.ndarray, b: np.ndarray) -> float:
    best = min(
        sum(float(np.sum((a[i] - b[j]) ** 2)) for i, j in enumerate(perm)) for perm in itertools.permutations(range(len(b)))
    )
    return math.sqrt(best / len(a))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_w2_is_the_optimal_assignment(seed, dim):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(6, dim)), rng.normal(size=(6, dim)) * 2 + 0.5
    expected = brute_force_w2(a, b)
    assert w2_exact(a, b) == pytest.approx(expected, rel=1e-12)
    # and not just the identity pairing (which is almost never optimal for random sets)
    identity = math.sqrt(np.mean(np.sum((a - b) ** 2, axis=1)))
    assert expected <= identity + 1e-12
    assert w2_exact(b, a) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_w2_of_a_translate_is_the_shift():
    x = np.random.default_rng(0).normal(size=(60, 2))
    v = np.array([0.3, -1.2])
    assert w2_exact(x, x + v) == pytest.approx(np.linalg.norm(v), rel=1e-6)


def test_w2_of_a_permutation_is_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    assert w2_exact(x, x[rng.permutation(60)]) < 1e-6
    assert w2_exact(x[:6], x[[3, 0, 5, 1, 4, 2]]) == 0.0  # small sets: exact arithmetic


def test_w2_needs_equal_sizes():
    with pytest.raises(ValueError, match="equal-size"):
        w2_exact(np.zeros((5, 2)), np.zeros((6, 2)))


def test_energy_distance_zero_for_identical_and_positive_for_shifted():
    x = np.random.default_rng(2).normal(size=(300, 2))
    assert abs(energy_distance(x, x)) < 1e-12
    assert abs(energy_distance(x, x[::-1])) < 1e-12
    small, large = energy_distance(x, x + [0.2, 0]), energy_distance(x, x + [1.0, 0])
    assert 0 < small < large


@pytest.mark.parametrize("seed", range(3))
def test_energy_distance_is_scipys_squared_in_1d(seed):
    # scipy: sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) over the empirical distributions (V-statistic);
    # ours is the quantity under the square root.
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=200), rng.normal(0.3, 1.5, size=150)
    ours = energy_distance(a[:, None], b[:, None])
    assert ours == pytest.approx(scipy_energy_distance(a, b) ** 2, rel=1e-10)
    # and by hand
    by_hand = 2 * np.abs(a[:, None] - b).mean() - np.abs(a[:, None] - a).mean() - np.abs(b[:, None] - b).mean()
    assert ours == pytest.approx(by_hand, rel=1e-10)


def _sets(rng, count, n, shift=0.0):
    return [rng.normal(size=(n, 2)) + shift for _ in range(count)]


def test_point_metrics_means_and_floor():
    rng = np.random.default_rng(3)
    samples = _sets(rng, 2, 80, shift=2.0)
    refs = _sets(rng, 4, 100)  # 2R reference sets
    m = point_metrics(samples, refs)
    assert isinstance(m, PointMetrics)
    assert m.n == 80 and m.repeats == 2  # every set cut to the smallest
    w2 = [w2_exact(samples[i], refs[i][:80]) for i in range(2)]
    w2f = [w2_exact(refs[2 + i][:80], refs[i][:80]) for i in range(2)]
    ed = [energy_distance(samples[i], refs[i][:80]) for i in range(2)]
    edf = [energy_distance(refs[2 + i][:80], refs[i][:80]) for i in range(2)]
    assert m.w2 == pytest.approx(np.mean(w2)) and m.w2_std == pytest.approx(np.std(w2))
    assert m.w2_floor == pytest.approx(np.mean(w2f)) and m.w2_floor_std == pytest.approx(np.std(w2f))
    assert m.energy == pytest.approx(np.mean(ed)) and m.energy_floor == pytest.approx(np.mean(edf))
    # a shifted model is far above the floor; the floor is what a perfect model scores
    assert m.w2_ratio == pytest.approx(m.w2 / m.w2_floor) and m.w2_ratio > 3
    assert m.energy_ratio > 10
    d = m.to_dict()
    for key in ("n", "w2", "w2_floor", "energy", "energy_floor", "w2_ratio", "energy_ratio"):
        assert key in d
    assert "floor" in m.summary()


def test_point_metrics_floor_ignores_the_samples_and_a_perfect_model_is_at_the_floor():
    rng = np.random.default_rng(4)
    refs = _sets(rng, 4, 120)
    perfect = point_metrics(_sets(rng, 2, 120), refs)
    bad = point_metrics(_sets(rng, 2, 120, shift=2.0), refs)
    assert perfect.w2_floor == bad.w2_floor and perfect.energy_floor == bad.energy_floor
    assert 0.6 < perfect.w2_ratio < 1.6
    assert bad.w2_ratio > 5


def test_point_metrics_needs_two_references_per_sample_set():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="reference"):
        point_metrics(_sets(rng, 2, 10), _sets(rng, 3, 10))


def test_reference_draws_for_a_data_file_give_a_real_floor(tmp_path):
    # A file has no generator: references come from its held-out points.  The floor must compare
    # disjoint points, or it collapses to 0 once n reaches the held-out pool (ratio inf / crash).
    from types import SimpleNamespace

    from denoiselab.config import load_config
    from denoiselab.runs import reference_draws

    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32))
    cfg = load_config("quick", ["data.name=pts.npy"])
    run = SimpleNamespace(config=cfg, path=tmp_path)
    refs = reference_draws(run, 200, 4)  # 100 held-out points, asked for more than that
    assert len(refs) == 4
    first, second = refs[0], refs[2]
    assert len(first) == len(second) == 50
    assert not np.any(np.all(first[:, None, :] == second[None, :, :], axis=-1))  # disjoint halves
    m = point_metrics([refs[0], refs[1]], refs)
    assert m.w2_floor > 0.1 and m.energy_floor > 0 and np.isfinite(m.w2_ratio)
    # a generator gives independent fresh sets
    gen = reference_draws(SimpleNamespace(config=load_config("quick"), path=tmp_path), 100, 4)
    assert len({g.tobytes() for g in gen}) == 4 and all(g.shape == (100, 2) for g in gen)
