"""Metrics: exact W2 against brute force, energy distance against scipy, the floor."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import energy_distance as scipy_energy_distance

from denoiselab.metrics import PointMetrics, energy_distance, point_metrics, reference_floor, w2_exact

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
    samples = _sets(rng, 3, 80, shift=2.0)
    refs = _sets(rng, 4, 100)
    m = point_metrics(samples, refs)
    assert isinstance(m, PointMetrics)
    assert m.n == 80 and m.repeats == 3 and m.references == 4  # every set cut to the smallest
    r = [x[:80] for x in refs]
    # W2: sample set i against reference i mod K; the floor over disjoint reference pairs
    w2 = [w2_exact(samples[i], r[i % 4]) for i in range(3)]
    w2f = [w2_exact(r[0], r[1]), w2_exact(r[2], r[3])]
    # energy: every sample set against every reference; the floor over every reference pair
    ed = [energy_distance(s, x) for s in samples for x in r]
    edf = [energy_distance(r[i], r[j]) for i in range(4) for j in range(i + 1, 4)]
    assert m.w2 == pytest.approx(np.mean(w2)) and m.w2_std == pytest.approx(np.std(w2))
    assert m.w2_floor == pytest.approx(np.mean(w2f)) and m.w2_floor_std == pytest.approx(np.std(w2f))
    assert m.energy == pytest.approx(np.mean(ed), rel=1e-9) and m.energy_std == pytest.approx(np.std(ed), rel=1e-6)
    assert m.energy_floor == pytest.approx(np.mean(edf), rel=1e-9)
    # a shifted model is far above the floor; the floor is what a perfect model scores
    assert m.w2_ratio == pytest.approx(m.w2 / m.w2_floor) and m.w2_ratio > 3
    assert m.energy_ratio > 10
    d = m.to_dict()
    for key in ("n", "references", "w2", "w2_floor", "energy", "energy_floor", "w2_ratio", "energy_ratio"):
        assert key in d
    assert "floor" in m.summary() and "3 sample sets, 4 reference draws" in m.summary()


def test_point_metrics_floor_ignores_the_samples_and_a_perfect_model_is_at_the_floor():
    rng = np.random.default_rng(4)
    refs = _sets(rng, 16, 300)
    perfect = point_metrics(_sets(rng, 8, 300), refs)
    bad = point_metrics(_sets(rng, 8, 300, shift=0.5), refs)
    assert perfect.w2_floor == bad.w2_floor and perfect.energy_floor == bad.energy_floor
    assert 0.85 < perfect.w2_ratio < 1.15 and 0.7 < perfect.energy_ratio < 1.3
    assert bad.w2_ratio > 2 and bad.energy_ratio > 5


def test_a_given_floor_is_used_and_must_match_n():
    rng = np.random.default_rng(6)
    refs = _sets(rng, 4, 100)
    floor = reference_floor(refs)
    assert floor.w2_pairs == 2 and floor.energy_pairs == 6 and floor.n == 100
    a = point_metrics(_sets(np.random.default_rng(7), 2, 100), refs)
    b = point_metrics(_sets(np.random.default_rng(7), 2, 100), refs, floor)
    assert a == b  # the floor computed inside is the one given
    assert point_metrics(_sets(np.random.default_rng(7), 2, 100), refs, replace(floor, w2=2 * floor.w2)).w2_floor == 2 * floor.w2
    with pytest.raises(ValueError, match="n = 100"):
        point_metrics(_sets(rng, 2, 50), refs, floor)


def test_point_metrics_needs_a_sample_set_and_two_references():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="reference"):
        point_metrics(_sets(rng, 2, 10), _sets(rng, 1, 10))
    with pytest.raises(ValueError, match="sample set"):
        point_metrics([], _sets(rng, 2, 10))
    with pytest.raises(ValueError, match="2 reference draws"):
        reference_floor(_sets(rng, 1, 10))


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
    assert len(refs) == 2  # a file gives its two halves, whatever the count asked for
    first, second = refs
    assert len(first) == len(second) == 50
    assert not np.any(np.all(first[:, None, :] == second[None, :, :], axis=-1))  # disjoint halves
    m = point_metrics([refs[0], refs[1]], refs)
    assert m.w2_floor > 0.1 and m.energy_floor > 0 and np.isfinite(m.w2_ratio)
    # a generator gives independent fresh sets
    gen = reference_draws(SimpleNamespace(config=load_config("quick"), path=tmp_path), 100, 4)
    assert len({g.tobytes() for g in gen}) == 4 and all(g.shape == (100, 2) for g in gen)


def test_cached_floor_is_the_floor_and_is_read_back(tmp_path, monkeypatch):
    import denoiselab.metrics as metrics

    rng = np.random.default_rng(8)
    refs = _sets(rng, 4, 60)
    first = metrics.cached_floor(refs, cache=tmp_path)
    assert first == reference_floor(refs)
    files = list((tmp_path / "floors").glob("*.json"))
    assert len(files) == 1 and files[0].stem == metrics.floor_key(refs, 60)

    def not_again(*args, **kwargs):
        raise AssertionError("the floor was measured again")

    monkeypatch.setattr(metrics, "reference_floor", not_again)
    assert metrics.cached_floor(refs, cache=tmp_path) == first  # read from the file
    # other draws, another n or another count are other keys: measured, not reused
    for other, n in [(_sets(rng, 4, 60), 60), (refs, 50), (refs[:2], 60)]:
        assert metrics.floor_key(other, n) != files[0].stem
        with pytest.raises(AssertionError, match="measured again"):
            metrics.cached_floor(other, n, cache=tmp_path)


def test_a_corrupt_floor_file_is_measured_again(tmp_path):
    import denoiselab.metrics as metrics

    refs = _sets(np.random.default_rng(9), 4, 40)
    path = tmp_path / "floors" / f"{metrics.floor_key(refs, 40)}.json"
    path.parent.mkdir(parents=True)
    for junk in ["{not json", '{"n": 40}', '{"n": 7, "w2_pairs": 1, "energy_pairs": 1, "w2": 1, "w2_std": 0, "energy": 1, "energy_std": 0}']:
        path.write_text(junk)
        assert metrics.cached_floor(refs, cache=tmp_path) == reference_floor(refs)
        assert metrics.Floor(**json.loads(path.read_text())) == reference_floor(refs)  # rewritten
