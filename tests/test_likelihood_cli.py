"""`denoiselab likelihood` on trained runs: its numbers, its conventions and its refusals."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from test_cli import assert_usage_error, run_cli

from denoiselab.runs import load_run
from denoiselab.runs.likelihood import LikelihoodError, check_has_density, likelihood_points, measure_likelihood, pixel_levels

# The shared test runs are trained for seconds: their fields are rough, and rk45 spends hundreds
# of evaluations on them, so most tests here take a few fixed RK4 steps.
FAST = ["-n", "64", "--steps", "4"]


def test_likelihood_of_a_point_run_in_nats_with_the_truth_beside_it(trained_run, capsys):
    rc, out, err = run_cli(capsys, "likelihood", trained_run, *FAST, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["n"] == 64 and d["dim"] == 2 and d["points"] == "64 fresh draws of spiral"
    assert math.isfinite(d["nll"]) and d["nll_se"] > 0
    # the spiral's density is known: its NLL on the same points, and the paired gap
    assert d["gap"] == pytest.approx(d["nll"] - d["true_nll"])
    assert d["evaluations"] > 0 and d["vector_jacobian_products"] == pytest.approx(2 * d["evaluations"])
    assert d["divergence"] == "exact" and d["solver"] == "rk4" and d["steps"] == 4 and d["evaluations"] == 16
    rc, out, _ = run_cli(capsys, "likelihood", trained_run, "-n", "16", "--rtol", "1e-2")
    assert rc == 0 and "nats/point (data units)" in out and "the data's own density on the same points" in out


def test_data_units_are_the_model_units_less_the_normalisation_jacobian(trained_run, tmp_path):
    """The same points as a file in data units and through the Python API in model units."""
    from denoiselab import likelihood

    run = load_run(trained_run)
    points = likelihood_points(run, n=32)
    result = measure_likelihood(run, points, solver="rk4", steps=4)
    x_model = run.normalization.encode(points.x)
    import torch

    from denoiselab.cnf import gaussian_prior
    from denoiselab.runs.likelihood import _moments

    prior = gaussian_prior(run.schedule, 1.0, *_moments(run.normalization.encode(run.data)))
    model_units = likelihood(run.model_fn(), run.schedule, torch.as_tensor(x_model), prior=prior, method="rk4", steps=4)
    expected = -model_units.log_prob.double().numpy() + 2 * math.log(run.normalization.scale)
    assert np.allclose(result.nll, expected, atol=1e-4)


def test_fixed_steps_and_hutchinson_probes(trained_run, capsys):
    rc, out, err = run_cli(capsys, "likelihood", trained_run, "-n", "32", "--steps", "6", "--solver", "heun", "--probes", "3", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["solver"] == "heun" and d["steps"] == 6 and d["evaluations"] == 12
    assert d["divergence"] == "hutchinson" and d["probes"] == 3 and d["vector_jacobian_products"] == 36


def test_a_file_of_points(trained_run, tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("x1,x2\n0.1,0.2\n-0.3,0.4\n0.5,-0.5\n")
    rc, out, err = run_cli(capsys, "likelihood", trained_run, "--data", path, "--steps", "2", "--json")
    assert rc == 0, err
    assert json.loads(out)["n"] == 3


def test_a_conditional_run_by_label_and_as_the_mixture_of_its_classes(shapes_run, capsys):
    """log p(x) of the mixture is log sum_c w_c p(x | c), from the per-class solves."""
    run = load_run(shapes_run)
    points = likelihood_points(run, n=24)
    mixture = measure_likelihood(run, points, solver="rk4", steps=4)
    per_class = [measure_likelihood(run, points, label=c, solver="rk4", steps=4) for c in range(run.num_classes)]
    by_hand = -np.log(sum(w * np.exp(-r.nll) for w, r in zip(run.class_weights, per_class)))
    assert np.allclose(mixture.nll, by_hand, atol=1e-6)
    assert mixture.evaluations == pytest.approx(sum(r.evaluations for r in per_class))
    rc, out, err = run_cli(capsys, "likelihood", shapes_run, "-n", "16", "--steps", "2", "--label", run.class_names[1], "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["label"] == run.class_names[1] and d["points"] == f"16 fresh draws of spiral+circle of class {run.class_names[1]}"
    assert "true_nll" in d  # the class's own density is known


def test_evaluate_reports_the_data_entropy_beside_the_metrics(trained_run, capsys):
    from denoiselab.data.densities import entropy

    rc, out, err = run_cli(capsys, "evaluate", trained_run, "-n", "100", "--steps", "4", "--repeats", "1", "--json")
    assert rc == 0, err
    d = json.loads(out)
    h, se = entropy("spiral", n=20_000, seed=5)
    assert abs(d["entropy"] - h) < 4 * math.hypot(se, d["entropy_se"])
    assert "w2" in d and "likelihood" not in d  # the model's NLL only when asked for
    rc, out, _ = run_cli(capsys, "evaluate", trained_run, "-n", "100", "--steps", "4", "--repeats", "1")
    assert "the data's entropy" in out and "denoiselab likelihood" in out


def test_evaluate_run_with_the_likelihood(trained_run, monkeypatch):
    """Asked for, the NLL comes beside the entropy; a field that needs more evaluations than the
    budget is reported as not measured (the 40-step test run needs hundreds)."""
    from denoiselab.runs import evaluate_run
    from denoiselab.runs import likelihood as module

    monkeypatch.setattr(module, "EVALUATE_POINTS", 16)
    monkeypatch.setattr(module, "EVALUATE_MAX_EVALUATIONS", 20)
    metrics, _ = evaluate_run(load_run(trained_run), repeats=1, n=100, steps=4, likelihood=True)
    assert metrics.w2 > 0  # reads as the point metrics
    assert metrics.likelihood is None and "not measured" in metrics.note and "rk45 made 20 evaluations" in metrics.note
    assert "likelihood: not measured" in metrics.summary()
    monkeypatch.setattr(module, "EVALUATE_MAX_EVALUATIONS", 5000)
    metrics, _ = evaluate_run(load_run(trained_run), repeats=1, n=100, steps=4, likelihood=True)
    d = metrics.to_dict()["likelihood"]
    assert d["n"] == 16 and d["evaluations"] > 20 and "gap" in d
    assert "likelihood (16 fresh draws of spiral, rk45 rtol 0.001): NLL" in metrics.summary()


def test_pixel_levels():
    assert pixel_levels(np.arange(17) / 8.0 - 1) == 17
    assert pixel_levels(np.arange(256) / 127.5 - 1) == 256
    assert pixel_levels(np.array([0.123, -0.5])) is None


def test_runs_without_a_density_are_refused():
    for kind in ("is_autoencoder", "is_latent"):
        stub = SimpleNamespace(path="runs/x", is_autoencoder=kind == "is_autoencoder", is_latent=kind == "is_latent")
        with pytest.raises(LikelihoodError, match="autoencoder run has no density" if kind == "is_autoencoder" else "latent run"):
            check_has_density(stub)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--probes", "0"], ["--probes", "positive integer"]),
        (["--rtol", "0"], ["--rtol", "> 0"]),
        (["--rtol=-1e-3"], ["--rtol", "> 0"]),
        (["--rtol", "nan"], ["--rtol"]),
        (["--steps", "0"], ["--steps"]),
        (["--exact", "--probes", "2"], ["--probes", "--exact"]),
        (["--rtol", "1e-3", "--steps", "4"], ["--steps", "--rtol"]),
        (["--solver", "rk4"], ["--solver", "--steps"]),
        (["--label", "3"], ["--label", "unconditional"]),
        (["--held-out"], ["--held-out", "drawn fresh"]),
        (["-n", "0"], ["-n"]),
    ],
)
def test_bad_options_get_one_line(trained_run, capsys, args, words):
    rc, _, err = run_cli(capsys, "likelihood", trained_run, *args)
    assert_usage_error(rc, err, *words)


def test_bad_label_of_a_conditional_run(shapes_run, capsys):
    rc, _, err = run_cli(capsys, "likelihood", shapes_run, "--label", "dragon")
    assert_usage_error(rc, err, "--label", "unknown class 'dragon'")


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.csv", "", ["empty.csv"]),
        ("nan.csv", "x1,x2\n0.1,nan\n0.2,0.3\n", ["nan.csv", "NaN"]),
        ("three.csv", "1,2,3\n4,5,6\n", ["three.csv", "dimension 3", "2-D"]),
        ("points.txt", "1,2\n", ["points.txt", "extension"]),
        ("missing.npy", None, ["missing.npy", "no such file"]),
    ],
)
def test_bad_data_files_get_one_line(trained_run, tmp_path, capsys, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    rc, out, err = run_cli(capsys, "likelihood", trained_run, "--data", path)
    assert_usage_error(rc, err, *words)
    assert out == ""


# -- images ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, one_thread):
    """A digits run trained for a few steps (no metrics: only its model and held-out images), on a
    chain of 100 steps: the variational bound evaluates the network once per step."""
    from denoiselab.config import load_config
    from denoiselab.runs import RunFolder
    from denoiselab.training import train

    out = tmp_path_factory.mktemp("digits") / "run"
    tiny = ["train.steps=10", "model.hidden=8", "model.time_dim=16", "train.checkpoint_every=10", "schedule.T=100"]
    train(load_config("digits", tiny), out, progress=False, log=lambda *_: None)
    folder = RunFolder(out)
    folder.mark_complete(folder.read_info())
    return out


def test_images_in_bits_per_dimension_of_the_dequantised_pixels(digits_run, capsys):
    """The digits' pixels take 17 levels: bits/dim = NLL / (64 ln 2) + log2(16 / 2) = ... + 3."""
    rc, out, err = run_cli(capsys, "likelihood", digits_run, "-n", "4", "--steps", "2", "--label", "3", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["pixel_levels"] == 17 and d["bits_offset"] == 3.0 and d["dim"] == 64
    assert d["bits_per_dim"] == pytest.approx(d["nll"] / (64 * math.log(2)) + 3.0)
    assert d["divergence"] == "exact" and d["points"] == "4 held-out images of class 3" and "true_nll" not in d
    rc, out, err = run_cli(capsys, "likelihood", digits_run, "-n", "2", "--steps", "1", "--probes", "2")
    assert rc == 0, err
    assert "bits/dim (dequantised, 17 levels: +3 bits/dim" in out and "the mixture over 10 classes" in out


def test_the_dequantisation_noise_comes_from_the_seed(digits_run):
    """Two seeds dequantise the same images differently (different NLLs), one seed the same way."""
    run = load_run(digits_run)
    points = likelihood_points(run, n=3, label=1)
    a, b = (measure_likelihood(run, points, label=1, solver="rk4", steps=1, seed=s, divergence="hutchinson") for s in (0, 1))
    assert not np.allclose(a.nll, b.nll) and a.levels == b.levels == 17
    again = measure_likelihood(run, points, label=1, solver="rk4", steps=1, seed=0, divergence="hutchinson")
    assert np.array_equal(again.nll, a.nll)


def test_image_files_of_the_wrong_shape_get_one_line(digits_run, tmp_path, capsys):
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((3, 1, 16, 16), dtype=np.float32))
    rc, _, err = run_cli(capsys, "likelihood", digits_run, "--data", path)
    assert_usage_error(rc, err, "images.npy", "1 x 8 x 8")
    np.save(path, np.full((3, 1, 8, 8), 2.0, dtype=np.float32))
    rc, _, err = run_cli(capsys, "likelihood", digits_run, "--data", path)
    assert_usage_error(rc, err, "images.npy", "expected [-1, 1]")


# -- the figure ------------------------------------------------------------------------------------


def test_likelihood_figure_of_a_2d_run(trained_run, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from denoiselab.runs import likelihood_figure

    monkeypatch.setattr(likelihood_figure, "GRID_2D", 10)  # 100 solves: the test run's field is rough
    out = tmp_path / "likelihood.png"
    rc, stdout, err = run_cli(capsys, "likelihood", trained_run, "-n", "8", "--steps", "2", "--rtol", "1e-2", "--plot", out)
    assert rc == 2 and "--steps" in err  # --rtol and --steps exclude each other
    rc, stdout, err = run_cli(capsys, "likelihood", trained_run, "-n", "8", "--rtol", "1e-2", "--plot", out)
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    with Image.open(out) as im:
        assert im.size[0] > 2.5 * im.size[1]  # three panels side by side


def test_likelihood_figure_refuses_what_it_cannot_draw(digits_run, trained_run, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "likelihood", digits_run, "--plot", tmp_path / "x.png")
    assert_usage_error(rc, err, "--plot", "1-D and 2-D point runs")
    rc, _, err = run_cli(capsys, "likelihood", trained_run, "--plot", tmp_path / "x.jpg")
    assert_usage_error(rc, err, "--plot", ".png")


# -- the DDPM bound beside the NLL ---------------------------------------------------------------


def test_the_variational_bound_column(trained_run, capsys):
    rc, out, err = run_cli(capsys, "likelihood", trained_run, "-n", "16", "--steps", "2", "--bound", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["bound_evaluations"] == 1000 and d["bound_variance"] == "small" and math.isfinite(d["bound"])
    rc, out, err = run_cli(capsys, "likelihood", trained_run, "-n", "16", "--steps", "2", "--bound")
    assert "DDPM variational bound (Ho et al. 2020, Eq. 5; small variance)" in out


def test_the_bound_is_refused_off_a_chain(capsys):
    stub = SimpleNamespace(path="runs/flow", is_autoencoder=False, is_latent=False, schedule=SimpleNamespace(is_chain=False, name="flow"))
    with pytest.raises(LikelihoodError, match="--bound: the variational bound is a DDPM chain's; runs/flow is on the flow path .continuous time"):
        measure_likelihood(stub, None, bound=True)


def test_the_image_bound_in_bits_per_dimension_of_the_discrete_pixels(digits_run, capsys):
    """Nichol & Dhariwal's L_vlb of the held-out pixels themselves (not dequantised), with the
    discretised decoder on the 17 levels and the clean estimate clamped as the sampler clamps it:
    bits/dim = bound / (64 ln 2), no offset."""
    import torch

    from denoiselab.variational_bound import variational_bound

    rc, out, err = run_cli(capsys, "likelihood", digits_run, "-n", "3", "--steps", "1", "--label", "3", "--bound", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["bound_evaluations"] == 100 and d["pixel_levels"] == 17 and math.isfinite(d["bound"])
    assert d["bound_bits_per_dim"] == pytest.approx(d["bound"] / (64 * math.log(2)))
    run = load_run(digits_run)
    points = likelihood_points(run, n=3, label=3)
    y = torch.full((3,), 3, dtype=torch.long)
    by_hand = variational_bound(run.model_fn(), run.schedule, torch.as_tensor(points.x), prediction="eps", y=y, levels=17, clip_x0=1.0)
    assert d["bound"] == pytest.approx(float(by_hand.bound.double().mean()), rel=1e-5)
    rc, out, err = run_cli(capsys, "likelihood", digits_run, "-n", "3", "--steps", "1", "--label", "3", "--bound")
    assert rc == 0, err
    assert "L_vlb (Nichol & Dhariwal 2021; discretised decoder on the 17 levels" in out and "no dequantisation offset" in out


def test_the_bound_of_continuous_pixels_is_a_density_bound(digits_run, tmp_path, capsys):
    """Pixels on no grid have no discrete likelihood: the Gaussian decoder bounds their density,
    in bits/dim with no offset, as their NLL is."""
    path = tmp_path / "off-grid.npy"
    np.save(path, np.clip(np.load(digits_run / "held_out.npy")[:2] + 0.01, -1, 1).astype(np.float32))
    rc, out, err = run_cli(capsys, "likelihood", digits_run, "--data", path, "--steps", "1", "--label", "3", "--bound", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["pixel_levels"] is None and d["bits_offset"] == 0.0
    assert d["bound_bits_per_dim"] == pytest.approx(d["bound"] / (64 * math.log(2)))
    rc, out, err = run_cli(capsys, "likelihood", digits_run, "--data", path, "--steps", "1", "--label", "3", "--bound")
    assert "Gaussian decoder" in out and "of the continuous pixels' density" in out
