"""The two-object error breakdown of benchmarks/text_to_image.py --diagnose, on readings whose
answer is known (the truth itself, the truth with its slots exchanged, one colour for both)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from denoiselab.data.scenes import make_scenes

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "text_to_image.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("text_to_image", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exact(truth, objects=2):
    read = {k: truth[k].copy() for k in ("layout", "colour_a", "shape_a", "colour_b", "shape_b")}
    read["objects"] = np.full(len(truth["layout"]), objects)
    return read


def test_the_breakdown_of_exact_swapped_and_leaking_readings(bench):
    s = make_scenes(300, seed=4, pairs=1.0)
    truth = bench.targets(s.attributes)
    exact = bench.relation_breakdown(_exact(truth), truth, s.captions)
    assert exact["right"] == 1.0 and exact["right, left/top object named first"] == exact["right, left/top object named second"] == 1.0
    assert all(v == 0.0 for k, v in exact.items() if not k.startswith("right"))
    swapped = _exact(truth)
    for attr in ("colour", "shape"):
        swapped[f"{attr}_a"], swapped[f"{attr}_b"] = truth[f"{attr}_b"], truth[f"{attr}_a"]
    out = bench.relation_breakdown(swapped, truth)
    differ = (truth["colour_a"] != truth["colour_b"]) | (truth["shape_a"] != truth["shape_b"])
    assert out["objects swapped"] == round(differ.mean(), 3) and out["right"] == round(1 - differ.mean(), 3)
    assert out["layout wrong"] == 0.0 and out["colour leak"] == 0.0
    leak = _exact(truth, objects=1)
    leak["colour_b"] = truth["colour_a"]
    out = bench.relation_breakdown(leak, truth)
    assert out["colour leak"] == round((truth["colour_a"] != truth["colour_b"]).mean(), 3) == out["colour b wrong"]
    assert out["objects counted not 2"] == 1.0


def test_which_object_a_caption_names_first(bench):
    assert bench.named_first_in_a(["a red circle left of a blue box", "a red circle to the right of a blue box", "big disc in red over a box in blue", "a red circle under a blue box"]).tolist() == [True, False, True, False]
    real = make_scenes(50, seed=5, pairs=1.0)
    assert bench.count_objects(real.images).tolist() == [2] * 50
    assert bench.count_objects(make_scenes(50, seed=5, pairs=0.0).images).tolist() == [1] * 50
