"""The outputs recorded in tests/data (tests/golden.py) are computed again and compared.

On the platform they were recorded on (the same torch, numpy and CPU kernels) every array must be
bit-identical and every printed line the same: a restructuring of the code changes no number.
Elsewhere float results may differ in their last bits (other kernels, other summation orders), so
arrays are compared to a relative 1e-4 there, which a wrong sampler, grid or seed still breaks by
orders of magnitude.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import golden

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recomputed(tmp_path_factory, one_thread):
    return golden.compute(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def recorded():
    stored = json.loads(golden.TEXTS.read_text())
    with np.load(golden.ARRAYS) as fh:
        arrays = {key: fh[key] for key in fh.files}
    return arrays, stored["printed"], stored["fingerprint"] == golden.fingerprint()


def test_every_recorded_array_is_computed_again(recomputed, recorded):
    arrays, _ = recomputed
    assert sorted(arrays) == sorted(recorded[0])


def test_arrays_match_the_recording(recomputed, recorded):
    arrays, _ = recomputed
    stored, _, same_platform = recorded
    moved = {}
    for key, want in stored.items():
        got = arrays[key]
        assert got.shape == want.shape, key
        if same_platform and not np.array_equal(got, want):
            moved[key] = float(np.max(np.abs(got.astype(np.float64) - want)))
        elif not same_platform and not np.allclose(got, want, rtol=1e-4, atol=1e-5):
            moved[key] = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert not moved, f"values moved (largest absolute change per array): {moved}"


def test_printed_lines_match_the_recording(recomputed, recorded):
    _, texts = recomputed
    _, stored, _ = recorded
    changed = {k: (stored[k], texts.get(k)) for k in stored if golden.normalise_line(stored[k]) != golden.normalise_line(texts.get(k, ""))}
    assert not changed, f"printed lines changed: {changed}"
