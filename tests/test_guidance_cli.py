"""Classifier training (bit-exact resume) and the guidance commands: sample --classifier-scale /
--observe / --region, inpaint, and their one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from denoiselab import cli
from denoiselab.classifiers import ClassifierError, ClassifierSettings
from denoiselab.config import load_config
from denoiselab.runs import SamplingError, load_run
from denoiselab.runs.folder import CLASSIFIER_WEIGHTS
from denoiselab.runs.guided import parse_mask
from denoiselab.training import TrainingInterrupted, train, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def point_run(tmp_path_factory, one_thread):
    """Two labelled point classes, a denoiser trained a few steps (guidance needs a model, not a good one)."""
    out = tmp_path_factory.mktemp("guided") / "points"
    cfg = load_config("quick", ["data.classes=moons,circle", "data.n=200", "train.steps=10", "model.hidden=16"])
    train(cfg, out, progress=False, log=quiet)
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, one_thread):
    """Digits with label_dropout = 1: an unconditional image model whose labels train the classifier."""
    out = tmp_path_factory.mktemp("guided") / "digits"
    overrides = ["train.steps=5", "model.hidden=8", "model.time_dim=16", "train.label_dropout=1", "sample.steps=4"]
    train(load_config("digits", overrides), out, progress=False, log=quiet)
    return out


def _error_line(err: str) -> str:
    """The one error line (a "note:" that the run is not complete may come before it)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, lines
    return lines[0]


def _weights(path):
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}


def test_classifier_training_resumes_bit_exactly(point_run, tmp_path):
    settings = ClassifierSettings(steps=30, batch_size=32, checkpoint_every=10, hidden=16)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    for d in (whole, parts):
        shutil.copytree(point_run, d)
    straight = train_classifier(whole, settings, progress=False, log=quiet)
    with pytest.raises(TrainingInterrupted):
        train_classifier(parts, settings, progress=False, log=quiet, stop_at=15)
    resumed = train_classifier(parts, None, resume=True, progress=False, log=quiet)
    assert resumed.step == straight.step == 30 and resumed.losses == straight.losses
    a, b = _weights(whole / CLASSIFIER_WEIGHTS), _weights(parts / CLASSIFIER_WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_without_labels_has_no_classifier(tmp_path):
    out = tmp_path / "spiral"
    train(load_config("quick", ["train.steps=2", "model.hidden=8"]), out, progress=False, log=quiet)
    with pytest.raises(ClassifierError, match="no class labels"):
        train_classifier(out, ClassifierSettings(steps=2), progress=False, log=quiet)


def test_sample_with_observed_coordinate_and_region(point_run, tmp_path, capsys):
    out = tmp_path / "obs.npy"
    for method in ("dps", "replace", "universal"):
        assert cli.main(["sample", str(point_run), "--observe", "x1=0.5", "--method", method, "-n", "30", "--steps", "4", "--out", str(out)]) == 0
        x = np.load(out)
        assert (x[:, 0] == np.float32(0.5)).all() and np.isfinite(x).all()
    printed = capsys.readouterr().out
    assert "backward passes through the model" in printed and "; observed x1 = 0.5 by universal guidance, scale 3;" in printed
    assert cli.main(["sample", str(point_run), "--region", "x1 > 0.5", "-n", "30", "--steps", "4", "--out", str(out)]) == 0
    line, share = capsys.readouterr().out.strip().splitlines()[:2]  # then the reproducibility statement
    # A region without a class: the model without a class (the region decides between the classes).
    assert "; the model without a class (classifier-free guidance 0); region x1 > 0.5 by loss guidance, scale 10;" in line
    inside = int((np.load(out)[:, 0] > 0.5).sum())
    data_share = float((load_run(point_run).data[:, 0] > 0.5).mean())
    assert share == f"{inside} of 30 samples inside x1 > 0.5 ({100 * inside / 30:.1f} %); the training data: {100 * data_share:.1f} %"


def test_a_guided_png_says_what_steered_it_and_draws_the_region(point_run, tmp_path, monkeypatch, capsys):
    from denoiselab import viz

    drawn = {}
    monkeypatch.setattr(viz, "plot_samples", lambda data, x, out, **kw: drawn.update(kw))
    args = ["sample", str(point_run), "-n", "30", "--steps", "4", "--out", str(tmp_path / "r.png")]
    assert cli.main([*args, "--region", "abs(x1) < 0.3", "--guide-scale", "20"]) == 0
    assert drawn["title"] == "30 samples: dpm++2m, 4 steps, logsnr grid\nthe model without a class (classifier-free guidance 0)\nregion abs(x1) < 0.3 by loss guidance, scale 20"
    assert drawn["region_label"] == "region abs(x1) < 0.3" and drawn["region"](np.array([[0.1, 5.0], [0.4, 0.0]])).tolist() == [True, False]
    assert drawn["labels"] is None  # the model without a class drew them: no class colours
    assert cli.main([*args, "--region", "abs(x1) < 0.3", "--label", "circle"]) == 0
    assert (drawn["labels"] == 1).all()
    assert cli.main([*args, "--observe", "x2=0.25", "--method", "replace"]) == 0
    assert drawn["title"].endswith("\nobserved x2 = 0.25 by replacement (RePaint-style)") and drawn["observed"] == {1: 0.25}
    assert drawn["region"] is None


def test_classifier_guidance_from_the_command_line(point_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(point_run, run_dir)
    args = ["sample", str(run_dir), "--label", "1", "--classifier-scale", "2", "-n", "20", "--steps", "4", "--out", str(tmp_path / "c.npy")]
    assert cli.main(args) == 2  # no classifier yet
    assert "train-classifier" in _error_line(capsys.readouterr().err)
    assert cli.main(["train-classifier", str(run_dir), "--steps", "5", "--hidden", "16", "--no-progress"]) == 0
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "classifier/loss gradients" in printed
    # The run's classifier-free scale does not apply: classifier guidance steers the unconditional model.
    assert "; classifier guidance towards class circle, scale 2;" in printed and "classifier-free" not in printed
    assert cli.main([*args, "--guidance", "1"]) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--region", "__import__('os').system('true') < 1"], "--region"),
        (["--region", "x1 = 2"], "--region"),
        (["--observe", "x3=1"], "--observe"),
        (["--observe", "x1=a"], "--observe"),
        (["--observe", "x1=0,x2=1"], "every coordinate"),
        (["--guide-scale", "2"], "--guide-scale"),
    ],
)
def test_bad_guidance_input_is_one_line_and_exit_2(point_run, tmp_path, capsys, extra, message):
    assert cli.main(["sample", str(point_run), "-n", "5", "--out", str(tmp_path / "x.npy"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in _error_line(err) and "Traceback" not in err


def test_masks():
    assert parse_mask("left", 8, 8)[:, :4].all() and not parse_mask("left", 8, 8)[:, 4:].any()
    assert parse_mask("top", 8, 8)[:4].all() and not parse_mask("top", 8, 8)[4:].any()
    box = parse_mask("box:2,3,5,8", 8, 8)
    assert not box[3:8, 2:5].any() and int(box.sum()) == 64 - 15
    for bad in ("box:0,0,9,4", "box:4,0,2,4", "box:1,2,3", "right"):
        with pytest.raises(SamplingError):
            parse_mask(bad, 8, 8)


def test_inpaint_keeps_known_pixels(image_run, tmp_path, capsys):
    image = np.load(image_run / "held_out.npy")[0]  # (1, 8, 8) in [-1, 1]
    png = tmp_path / "digit.png"
    Image.fromarray(np.round((image[0] + 1) * 127.5).astype(np.uint8)).save(png)
    out = tmp_path / "inpainted.png"
    for method in ("replace", "dps"):
        assert cli.main(["inpaint", str(image_run), "--image", str(png), "--mask", "left", "--method", method, "-n", "3", "--steps", "4", "--out", str(out)]) == 0
        assert Image.open(out).size[0] > 200
    from denoiselab.runs.guided import inpaint

    run, mask = load_run(image_run), parse_mask("box:2,2,6,6", 8, 8)
    x = inpaint(run, image, mask, n=4, steps=4)
    assert x.shape == (4, 1, 8, 8) and (x[:, 0][:, mask.numpy()] == image[0][mask.numpy()]).all()
    capsys.readouterr()
    assert cli.main(["inpaint", str(image_run), "--image", str(png), "--mask", "box:0,0,9,4", "--out", str(out)]) == 2
    assert "inside the 8 x 8 image" in capsys.readouterr().err
    assert cli.main(["inpaint", str(image_run), "--image", str(tmp_path / "missing.png"), "--mask", "left", "--out", str(out)]) == 2


def test_using_a_classifier_imports_nothing_of_the_training_loop():
    from test_layout import PACKAGE, imported_modules

    for path in (PACKAGE / "classifiers.py", PACKAGE / "gradient_guidance.py", PACKAGE / "regions.py"):
        assert "denoiselab.training" not in imported_modules(path)


def test_guidance_figures_are_written(tmp_path):
    from denoiselab.viz.guidance import PointPanel, plot_classifier_scales, plot_guided_points

    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    panels = [
        PointPanel("class", x, reference=ref, data=ref),
        PointPanel("region", x, region=lambda p: p[:, 1] > 0),
        PointPanel("x1 = 0", np.c_[np.zeros(200), x[:, 1]], observed={0: 0.0}, reference=np.c_[np.zeros(200), ref[:, 1]]),
    ]
    assert Image.open(plot_guided_points(panels, tmp_path / "p.png", title="t")).size[0] > 600
    images = rng.uniform(-1, 1, size=(3, 1, 8, 8))
    assert Image.open(plot_classifier_scales({0.0: images, 2.0: images}, tmp_path / "c.png")).size[0] > 100
