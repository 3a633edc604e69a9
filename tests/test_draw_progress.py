"""`sample` and `inpaint` show a draw's progress on stderr (issue 29: an image draw can take
minutes), a unit a sampler step, as `evaluate` does; --no-progress silences it, and stdout, which
scripts parse, is the same either way."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from denoiselab import cli, training
from denoiselab.config import load_config
from denoiselab.runs import load_run

TINY_IMAGES = ["train.steps=4", "model.hidden=8", "model.time_dim=16", "sample.n=4", "sample.steps=3"]


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, one_thread):
    """A digits run of four optimiser steps, marked complete without its metrics and figures."""
    path = tmp_path_factory.mktemp("progress") / "digits"
    training.train(load_config("digits", TINY_IMAGES), path, progress=False, log=_quiet)
    run = load_run(path)
    run.folder.mark_complete(run.info)
    return path


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _full_bar(desc: str, steps: int, err: str) -> bool:
    """The bar ended full at ``steps`` of ``steps``: every sampler step was counted."""
    return re.search(rf"{desc}: 100%.* {steps}/{steps} ", err) is not None


@pytest.mark.parametrize("sampler, steps", [("ddim", 5), ("dpm++2m", 3), ("heun", 4)])
def test_sample_shows_each_sampler_step_on_stderr_and_no_progress_silences_it(image_run, tmp_path, capsys, sampler, steps):
    argv = ["sample", image_run, "-n", "3", "--sampler", sampler, "--steps", steps, "--seed", "1"]
    rc, out, err = _cli(capsys, *argv, "--out", tmp_path / "a.npy")
    assert rc == 0 and _full_bar("sample", steps, err), err
    assert "sampling 3 images" in err
    rc, quiet_out, quiet_err = _cli(capsys, *argv, "--out", tmp_path / "a.npy", "--no-progress")
    assert rc == 0 and quiet_err == ""
    assert quiet_out == out and out.startswith(f"wrote 3 samples to {tmp_path / 'a.npy'} (")


def test_inpaint_shows_each_sampler_step_on_stderr_and_no_progress_silences_it(image_run, tmp_path, capsys):
    image = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(image)
    argv = ["inpaint", image_run, "--image", image, "--mask", "left", "-n", "2", "--steps", "3", "--out", tmp_path / "f.png"]
    rc, out, err = _cli(capsys, *argv)
    assert rc == 0 and _full_bar("inpaint", 3, err), err
    rc, quiet_out, quiet_err = _cli(capsys, *argv, "--no-progress")
    assert rc == 0 and quiet_err == ""
    assert quiet_out == out and out.startswith(f"wrote 2 completions to {tmp_path / 'f.png'} (")



def test_a_draw_refused_before_its_first_step_is_one_line_without_a_bar(image_run, tmp_path, capsys):
    rc, out, err = _cli(capsys, "sample", image_run, "--observe", "x1=0.5", "--out", tmp_path / "o.png")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("denoiselab sample: error: "), err
