"""The `checkerboard-flow-density` recipe (issue 23's 0.05-nat target on the checkerboard): what it
changes against `spiral-flow-density`, and `denoiselab likelihood RUN` on a run of it, which prints
the gap to the checkerboard's true NLL."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
from test_cli import run_cli

from denoiselab.config import load_config
from denoiselab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _flat(cfg) -> dict:
    return {f"{section}.{key}": value for section, keys in asdict(cfg).items() if isinstance(keys, dict) for key, value in keys.items()}


def test_the_recipe_is_the_spiral_density_recipe_with_fourier_features_more_steps_and_more_data():
    smooth, sharp = _flat(load_config("spiral-flow-density")), _flat(load_config("checkerboard-flow-density"))
    changed = {key: (smooth[key], sharp[key]) for key in smooth if smooth[key] != sharp[key]}
    assert changed == {
        "data.name": ("spiral", "checkerboard"),
        "data.n": (2000, 50000),
        "model.fourier": (0, 8),  # the edges need high frequencies of x; the smooth sets are better without
        "train.steps": (8000, 32000),
    }


def test_a_run_of_the_recipe_reads_the_gap_to_the_checkerboards_truth(tmp_path, capsys):
    run = tmp_path / "board"
    # The recipe as shipped but for its budget: a few steps of a small network (`train` without the
    # CLI's metrics and figures, which cost seconds and are not what this test is about).
    train(load_config("checkerboard-flow-density", ["train.steps=30", "model.hidden=16", "data.n=2000"]), run, progress=False, log=lambda *_: None)
    rc, out, err = run_cli(capsys, "likelihood", run, "-n", "64", "--steps", "4", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["points"] == "64 fresh draws of checkerboard"
    # Uniform on eight unit squares: every draw's true NLL is log 8, and the gap is the NLL less it.
    assert d["true_nll"] == pytest.approx(math.log(8), abs=1e-12)
    assert d["gap"] == pytest.approx(d["nll"] - math.log(8))
    rc, out, err = run_cli(capsys, "likelihood", run, "-n", "64", "--steps", "4")
    assert rc == 0, err
    assert "the data's own density on the same points" in out and "2.0794" in out
