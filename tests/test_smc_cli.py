"""`sample --method smc` and `inpaint --method smc`: the population's ESS in the printout and the
JSON, observed values that the method itself reaches, regions, seeds, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from denoiselab import cli
from denoiselab.config import load_config
from denoiselab.training import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, lines
    return lines[0]


def _sample(run, tmp_path, name, *extra):
    out = tmp_path / name
    return cli.main(["sample", str(run), "-n", "12", "--steps", "5", "--out", str(out), *extra]), out


def test_observe_by_smc_prints_the_ess_and_reaches_the_value(trained_run, tmp_path, capsys):
    code, out = _sample(trained_run, tmp_path, "a.npy", "--observe", "x1=0.3", "--method", "smc", "--particles", "4")
    assert code == 0
    printed = capsys.readouterr().out
    assert "observed x1 = 0.3 by twisted SMC, 4 particles;" in printed and "ddpm, 5 steps" in printed
    assert "SMC: 4 particles per sample, ESS min" in printed and "20 model evaluations per sample" in printed
    x = np.load(out)
    # The last step conditions on x1 = 0.3 in the model's units: no value is written in afterwards.
    np.testing.assert_allclose(x[:, 0], 0.3, atol=1e-5)
    assert x[:, 1].std() > 0
    code, again = _sample(trained_run, tmp_path, "b.npy", "--observe", "x1=0.3", "--method", "smc", "--particles", "4")
    assert code == 0 and np.array_equal(np.load(again), x)  # same seed, same samples
    capsys.readouterr()
    code, other = _sample(trained_run, tmp_path, "c.npy", "--observe", "x1=0.3", "--method", "smc", "--particles", "4", "--seed", "5")
    assert code == 0 and not np.array_equal(np.load(other), x)


def test_json_gives_the_ess_over_the_steps_and_the_evaluations(trained_run, tmp_path, capsys):
    code, _ = _sample(trained_run, tmp_path, "a.csv", "--observe", "x2=0.1", "--method", "smc", "--particles", "3", "--json")
    assert code == 0
    reply = json.loads(capsys.readouterr().out)
    smc = reply["smc"]
    assert smc["particles"] == 3 and smc["evaluations_per_sample"] == reply["evaluations"] == 15
    assert 1.0 <= smc["ess_min"] <= smc["ess_mean"] <= 3.0 and "twisted SMC, 3 particles" in reply["what"]


def test_region_by_smc_ends_inside_and_names_the_method_in_the_title(trained_run, tmp_path, capsys):
    code, out = _sample(trained_run, tmp_path, "r.png", "--region", "x1 > 0.2", "--method", "smc", "--particles", "8")
    assert code == 0
    printed = capsys.readouterr()
    assert "region x1 > 0.2 by twisted SMC, 8 particles" in printed.out
    inside = [line for line in printed.out.splitlines() if "samples inside" in line][0]
    held = int(inside.split(" of ")[0])
    assert held == 12 or "no particle ended inside" in printed.err
    assert Image.open(out).size[0] > 300


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--observe", "x1=0.3", "--method", "smc", "--particles", "0"], "--particles: expected a positive integer"),
        (["--observe", "x1=0.3", "--method", "dps", "--particles", "4"], "--particles: applies with --method smc"),
        (["--observe", "x1=0.3", "--method", "smc", "--sampler", "dpm++2m"], "--sampler dpm++2m: --method smc"),
        (["--observe", "x1=0.3", "--method", "smc", "--guide-scale", "2"], "--guide-scale: --method smc has no scale"),
        (["--observe", "x1=40"], "far outside the training data's x1"),
        (["--observe", "x1=40", "--method", "smc"], "far outside the training data's x1"),
        (["--observe", "x1=0.3", "--region", "x2 > 0", "--method", "smc"], "--method: smc twists by one condition"),
        (["--method", "smc"], "--method: applies with --observe or --region only"),
    ],
)
def test_bad_smc_input_is_one_line_and_exit_2(trained_run, tmp_path, capsys, extra, message):
    code, _ = _sample(trained_run, tmp_path, "x.npy", *extra)
    assert code == 2
    err = capsys.readouterr().err
    assert message in _error_line(err) and "Traceback" not in err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("smc") / "digits"
    overrides = ["train.steps=3", "model.hidden=8", "model.time_dim=16", "sample.steps=3"]
    train(load_config("digits", overrides), out, progress=False, log=lambda *a, **k: None)
    return out


def test_inpaint_by_smc_keeps_known_pixels_by_its_last_step(digits_run, tmp_path, capsys):
    image = np.load(digits_run / "held_out.npy")[0]
    png = tmp_path / "digit.png"
    Image.fromarray(np.round((image[0] + 1) * 127.5).astype(np.uint8)).save(png)
    out = tmp_path / "filled.png"
    args = ["inpaint", str(digits_run), "--image", str(png), "--mask", "left", "--method", "smc", "--particles", "2", "-n", "2", "--steps", "3"]
    assert cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "completed by twisted SMC, 2 particles" in printed and "SMC: 2 particles per sample" in printed
    from denoiselab.runs import load_run, plan_sampling
    from denoiselab.runs.guided import inpaint, parse_mask

    run = load_run(digits_run)
    pixels = np.asarray(Image.open(png), dtype=np.float32)[None] / 127.5 - 1.0
    plan = plan_sampling(run, sampler="ddpm", steps=3, n=2, tuned=False)
    filled = inpaint(run, pixels, parse_mask("left", 8, 8), method="smc", particles=2, plan=plan)
    np.testing.assert_allclose(filled[:, :, :, :4], np.broadcast_to(pixels[None, :, :, :4], filled[:, :, :, :4].shape), atol=1e-5)
    assert cli.main([*args, "--out", str(out), "--scale", "2"]) == 2
    assert "--scale: --method smc has no scale" in _error_line(capsys.readouterr().err)
