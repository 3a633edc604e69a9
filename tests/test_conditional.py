"""Class-conditional runs and classifier-free guidance, end to end (issue 3).

Oracles: a hand-written class-conditional Gaussian model (exact conditional and unconditional
noise predictions) for the samplers and the guidance wrapper; tiny trained runs for the
pipeline, the CLI and every bad input.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import TINY, set_args

from denoiselab import builders, cli, training
from denoiselab.config import ConfigError, load_config
from denoiselab.data import DataError, make_source
from denoiselab.data.labels import parse_labels
from denoiselab.data.sources import proportional_counts
from denoiselab.guidance import NO_LABEL, classifier_free
from denoiselab.oracles import GaussianMixture
from denoiselab.runs import (
    SamplingError,
    class_labels,
    evaluate_run,
    load_run,
    sample_points,
)
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule

# --- a closed-form class-conditional model ----------------------------------------------------

MEANS = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
STD = 0.5


def conditional_oracle(schedule):
    """eps(x, t, c) exact for N(MEANS[c], STD^2 I); eps(x, t, none) exact for their equal mixture."""
    one = torch.ones(1, dtype=torch.float64)
    per_class = [GaussianMixture(MEANS[[c]], STD * one, one).eps_model(schedule) for c in range(2)]
    mixture = GaussianMixture(MEANS, STD * torch.ones(2, dtype=torch.float64), 0.5 * torch.ones(2, dtype=torch.float64))
    unconditional = mixture.eps_model(schedule)

    def model_fn(x, t, y=None):
        out = unconditional(x, t)
        if y is None:
            return out
        y = torch.as_tensor(y).long().expand(x.shape[0])
        for c in range(2):
            sel = y == c
            if sel.any():
                out[sel] = per_class[c](x[sel], t[sel])
        return out

    return model_fn


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_guidance_on_every_sampler_reaches_the_class_the_mixture_and_beyond(name):
    schedule = make_schedule("linear", 200)
    model = conditional_oracle(schedule)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    steps = {"ddpm": 100, "ddim": 50, "euler": 50}.get(name, 20)  # first-order samplers need more steps for 0.05
    times = time_grid(schedule, steps, "trailing" if name == "ddpm" else "logsnr")

    def draw(scale):
        gen = torch.Generator().manual_seed(1)
        return SAMPLERS[name](Denoiser(classifier_free(model, scale), schedule, y=torch.tensor(0)), x_T, times, generator=gen)

    cond, uncond, strong = draw(1.0), draw(0.0), draw(4.0)
    # s = 1: the class-0 Gaussian.
    assert abs(cond[:, 0].mean().item() + 1.0) < 0.05 and abs(cond[:, 0].std().item() - STD) < 0.05
    # s = 0: the label is ignored, both modes come back in equal shares.
    assert abs((uncond[:, 0] < 0).double().mean().item() - 0.5) < 0.05
    # s = 4: pushed away from class 1 (p(x|c)^s p(x)^(1-s) tilts towards -x1) and narrower.
    assert strong[:, 0].mean().item() < cond[:, 0].mean().item() - 0.1
    assert strong[:, 0].std().item() < cond[:, 0].std().item()


def test_guidance_one_and_zero_are_the_plain_models_on_the_oracle():
    schedule = make_schedule("linear", 100)
    model = conditional_oracle(schedule)
    x, t, y = torch.randn(64, 2, dtype=torch.float64), torch.rand(64, dtype=torch.float64), torch.randint(0, 2, (64,))
    assert torch.equal(classifier_free(model, 1.0)(x, t, y), model(x, t, y))
    assert torch.equal(classifier_free(model, 0.0)(x, t, y), model(x, t, None))


# --- data: classes, label files, proportions ---------------------------------------------------


def test_proportional_counts_sum_and_follow_the_weights():
    counts = proportional_counts([3, 1], 1001)
    assert counts.sum() == 1001 and list(counts) == [751, 250]
    assert list(proportional_counts([1, 1, 1], 10)) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert proportional_counts([0.2, 0.8], 5).tolist() == [1, 4]


def test_class_source_draws_each_class_from_its_own_generator():
    src = make_source("ignored", 500, 0, classes=["spiral", "circle"])
    assert src.num_classes == 2 and src.class_names == ("spiral", "circle")
    assert np.bincount(src.labels).tolist() == [500, 500]
    circle = src.train[src.labels == 1]
    assert abs(np.linalg.norm(circle, axis=1).mean() - 0.8) < 0.02  # seed 001's circle, radius 0.8
    ref = src.reference(400, seed=1, label=1)
    assert abs(np.linalg.norm(ref, axis=1).mean() - 0.8) < 0.02
    mix = src.reference(400, seed=1)
    assert len(mix) == 400
    with pytest.raises(DataError, match="data.classes: unknown data 'spirals'"):
        make_source("x", 10, 0, classes=["spirals"])
    with pytest.raises(DataError, match="different dimensions"):
        make_source("x", 10, 0, classes=["spiral", "bimodal-1d"])


def test_parse_labels_integers_names_and_bad_values():
    idx, names = parse_labels(np.array([2, 0, 2]), "f")
    assert idx.tolist() == [1, 0, 1] and names == ("0", "2")
    idx, names = parse_labels(np.array(["dog", "cat", "dog"], dtype=object), "f")
    assert idx.tolist() == [1, 0, 1] and names == ("cat", "dog")
    idx, names = parse_labels(np.array(["1", "0"], dtype=object), "f")
    assert idx.tolist() == [1, 0] and names == ("0", "1")
    assert parse_labels(np.array([1.0, 0.0]), "f")[0].tolist() == [1, 0]  # integral floats are integers
    for bad in (np.array([0.5, 1.0]), np.array([np.nan, 1.0]), np.array(["a", "1.5"], dtype=object), np.array(["a", ""], dtype=object)):
        with pytest.raises(DataError, match="integers or names"):
            parse_labels(bad, "f")
    with pytest.raises(DataError, match=">= 0"):
        parse_labels(np.array([-1, 0]), "f")


def _write_labelled_csv(path, n_a=300, n_b=100, header=True):
    rng = np.random.default_rng(0)
    a = rng.normal([-2, 0], 0.3, (n_a, 2))
    b = rng.normal([2, 0], 0.3, (n_b, 2))
    rows = [(x, y, "left") for x, y in a] + [(x, y, "right") for x, y in b]
    lines = (["x,y,label"] if header else []) + [f"{x:.5f},{y:.5f},{c}" for x, y, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_labelled_csv_npz_and_labels_file_give_the_same_classes(tmp_path):
    csv = _write_labelled_csv(tmp_path / "pts.csv")
    auto = make_source("pts.csv", 0, 0, base=tmp_path)
    assert auto.class_names == ("left", "right") and auto.num_classes == 2
    assert abs(auto.class_weights[0] - 0.75) < 0.01  # stratified hold-out keeps the mix
    by_name = make_source(str(csv), 0, 0, labels="label")
    by_index = make_source(str(csv), 0, 0, labels="2")
    np.testing.assert_array_equal(by_name.train, by_index.train)
    np.testing.assert_array_equal(auto.labels, by_index.labels)
    # The same points as .npz with integer y and class names, and as .npy plus a labels file.
    pts = np.loadtxt(csv, delimiter=",", skiprows=1, usecols=(0, 1))
    y = np.array([0] * 300 + [1] * 100)
    np.savez(tmp_path / "pts.npz", x=pts, y=y, class_names=np.array(["left", "right"]))
    np.save(tmp_path / "pts.npy", pts)
    (tmp_path / "labels.txt").write_text("\n".join(["left"] * 300 + ["right"] * 100) + "\n")
    for src in (make_source("pts.npz", 0, 0, base=tmp_path), make_source("pts.npy", 0, 0, base=tmp_path, labels="labels.txt")):
        assert src.class_names == ("left", "right")
        np.testing.assert_allclose(src.train, auto.train, atol=1e-5)
        np.testing.assert_array_equal(src.labels, auto.labels)
    # Held-out references of one class come from that class only.
    right = auto.reference(50, seed=1, label=1)
    assert (right[:, 0] > 0).all()


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda p: (np.save(p / "pts.npy", np.zeros((10, 2))), (p / "l.txt").write_text("0\n1\n"))[1] and "l.txt", "2 labels for 10 points"),
        (lambda p: (np.save(p / "pts.npy", np.zeros((3, 2))), (p / "l.txt").write_text("0\n1.5\n1\n"))[1] and "l.txt", "integers or names"),
        (lambda p: (np.save(p / "pts.npy", np.zeros((3, 2))), np.save(p / "l.npy", np.array([0.2, 1, 0])))[1] or "l.npy", "integers or names"),
        (lambda p: (np.save(p / "pts.npy", np.zeros((3, 2))), "label")[1], "names a CSV column"),
    ],
)
def test_bad_labels_are_one_line_errors(tmp_path, setup, match):
    labels = setup(tmp_path)
    with pytest.raises(DataError, match=match) as info:
        make_source("pts.npy", 0, 0, base=tmp_path, labels=labels)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "files, labels, where",
    [
        # a labelled CSV: its header is line 1, blank lines count
        ({"pts.csv": "x,y,label\n1,2,a\n\n3,4\n"}, "", "pts.csv: line 4 has 2 values, line 1 has 3"),
        ({"pts.csv": "x,y,label\n1,2,a\n\n3,x,b\n"}, "", "pts.csv: line 4, column 2: 'x' is not a number"),
        ({"pts.csv": "x,y,label\n1,2,a\n3,nan,b\n"}, "", "NaN or infinite values (first at line 3)"),
        ({"pts.csv": "x,y,label\n1,2,0\n\n3,4,-1\n5,6,1\n"}, "", "labels must be >= 0, got -1 at line 4"),
        # a labels file: one per line, its header line counted
        ({"pts.csv": "1,2\n3,4\n5,6\n", "l.txt": "label\na\n\n1.5\nb\n"}, "l.txt", "got '1.5' at line 4"),
        ({"pts.csv": "1,2\n3,4\n", "l.csv": "a\nb,c\n"}, "l.csv", "one label per line, line 2 has 2 values"),
    ],
)
def test_bad_rows_of_a_csv_are_named_by_their_line_in_the_file(tmp_path, files, labels, where):
    """Every message about a text file names "line N" as an editor shows it (from 1, the header
    and blank lines included); an array's entries are named by their index."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=re.escape(where)) as info:
        make_source("pts.csv", 0, 0, base=tmp_path, labels=labels)
    assert "\n" not in str(info.value) and not re.search(r"\brow \d", str(info.value))
    with pytest.raises(DataError, match=re.escape("got 0.5 at index 1")):
        parse_labels(np.array([1.0, 0.5]), "f")


def test_npz_label_errors(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((5, 2)), y=np.zeros(4, dtype=int))
    with pytest.raises(DataError, match="4 labels for 5 points"):
        make_source("a.npz", 0, 0, base=tmp_path)
    np.savez(tmp_path / "b.npz", points=np.zeros((5, 2)))
    with pytest.raises(DataError, match="array named x"):
        make_source("b.npz", 0, 0, base=tmp_path)


def test_config_classes_from_the_command_line():
    cfg = load_config("spiral", ["data.classes=spiral,circle", "train.label_dropout=0.2"])
    assert cfg.data.classes == ["spiral", "circle"] and cfg.train.label_dropout == 0.2
    with pytest.raises(ConfigError, match="train.label_dropout: must be <= 1"):
        load_config("spiral", ["train.label_dropout=1.5"])
    with pytest.raises(ConfigError, match="data.classes: each name may appear once"):
        load_config("spiral", ["data.classes=spiral,spiral"])
    with pytest.raises(ConfigError, match="sample.guidance: must be >= 0"):
        load_config("spiral", ["sample.guidance=-1"])
    assert load_config("shapes").data.classes == ["spiral", "circle"]
    assert len(load_config("four-shapes").data.classes) >= 3


# --- training -------------------------------------------------------------------------------


def test_training_drops_labels_at_the_recipe_rate(tmp_path, monkeypatch, one_thread):
    seen = []
    real = builders.diffusion_loss

    def spy(model, x0, schedule, generator, *, y=None, **kw):
        seen.append(y.clone())
        return real(model, x0, schedule, generator, y=y, **kw)

    monkeypatch.setattr(builders, "diffusion_loss", spy)  # what the recipe's objective calls
    cfg = load_config("shapes", ["train.steps=30", "train.batch_size=1000", "model.hidden=8", "train.label_dropout=0.25"])
    training.train(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    assert len(seen) == 31  # the FLOP count's one step on a copy (training/flops.py), then the 30 trained
    y = torch.cat(seen[1:])
    rate = (y == NO_LABEL).double().mean().item()
    assert abs(rate - 0.25) < 4 * (0.25 * 0.75 / len(y)) ** 0.5
    kept = y[y != NO_LABEL]
    assert set(kept.tolist()) == {0, 1} and abs((kept == 1).double().mean().item() - 0.5) < 0.02
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["num_classes"] == 2 and info["class_names"] == ["spiral", "circle"] and info["class_counts"] == [2000, 2000]


# --- a tiny conditional run through the CLI ---------------------------------------------------


def test_conditional_run_folder(shapes_run):
    info = json.loads((shapes_run / "run.json").read_text())
    assert info["status"] == "complete" and info["class_names"] == ["spiral", "circle"]
    assert np.load(shapes_run / "labels.npy").tolist() == [0] * 2000 + [1] * 2000
    metrics = json.loads((shapes_run / "metrics.json").read_text())
    assert set(metrics["classes"]) == {"spiral", "circle"} and "mixture" in metrics
    for m in [*metrics["classes"].values(), metrics["mixture"]]:
        assert 0 <= m["label_accuracy"] <= 1 and m["w2"] > 0 and m["w2_floor"] > 0
    assert (shapes_run / "guidance.png").stat().st_size > 10_000


def test_unlabelled_sampling_draws_every_class_in_proportion(shapes_run):
    run = load_run(shapes_run)
    assert class_labels(run, 7).tolist() == [0, 0, 0, 0, 1, 1, 1]  # equal classes, largest remainder
    assert class_labels(run, 6, "circle").tolist() == [1] * 6
    # Same seed, same noise: the unlabelled draw is the labelled draws stitched together.
    both = sample_points(run, n=6, seed=3)
    per_point = sample_points(run, n=6, seed=3, label=np.array([0, 0, 0, 1, 1, 1]))
    np.testing.assert_array_equal(both, per_point)


def test_label_by_name_or_index_is_the_same_draw(shapes_run, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.npy"
    assert cli.main(["sample", str(shapes_run), "--label", "circle", "-n", "50", "--out", str(a)]) == 0
    assert cli.main(["sample", str(shapes_run), "--label", "1", "-n", "50", "--out", str(b)]) == 0
    lines = a.read_text().splitlines()
    assert lines[0] == "x1,x2,label" and all(line.endswith(",circle") for line in lines[1:])
    np.testing.assert_allclose(np.loadtxt(a, delimiter=",", skiprows=1, usecols=(0, 1)), np.load(b), atol=1e-5)


def test_guidance_changes_samples_and_one_is_the_default(shapes_run):
    run = load_run(shapes_run)
    plain = sample_points(run, n=100, label=0)
    np.testing.assert_array_equal(plain, sample_points(run, n=100, label=0, guidance=1.0))
    assert not np.allclose(plain, sample_points(run, n=100, label=0, guidance=3.0))


def test_evaluate_one_class_and_json(shapes_run, capsys):
    assert cli.main(["evaluate", str(shapes_run), "--label", "spiral", "--guidance", "2", "--repeats", "1", "-n", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["guidance"] == 2.0 and set(out["classes"]) == {"spiral"} and "mixture" not in out
    metrics, _ = evaluate_run(load_run(shapes_run), repeats=1, n=200)
    assert set(metrics.classes) == {"spiral", "circle"} and metrics.mixture is not None


@pytest.mark.parametrize(
    "args, match",
    [
        (["--label", "2"], "label: '2' is out of range; this run has classes 0..1 (spiral, circle)"),
        (["--label", "dog"], "label: unknown class 'dog'; expected one of spiral, circle"),
        (["--label", "-1"], "out of range"),
        (["--guidance", "-1"], "expected a number >= 0"),
    ],
)
def test_bad_label_or_guidance_on_a_conditional_run(shapes_run, tmp_path, capsys, args, match):
    out = tmp_path / "x.npy"
    assert cli.main(["sample", str(shapes_run), *args, "-n", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args", [["--guidance", "2"], ["--label", "0"]])
def test_label_or_guidance_on_an_unconditional_run(trained_run, tmp_path, capsys, args):
    out = tmp_path / "x.npy"
    for command in (["sample", str(trained_run), *args, "-n", "5", "--out", str(out)], ["evaluate", str(trained_run), *args, "-n", "5"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert "is unconditional" in err and err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(SamplingError):
        sample_points(load_run(trained_run), n=5, guidance=2.0)


def test_train_on_a_labelled_csv_keeps_the_class_names(tmp_path, capsys, one_thread):
    _write_labelled_csv(tmp_path / "pts.csv")
    out = tmp_path / "run"
    rc = cli.main(["train", "--config", "quick", *set_args([*TINY, f"data.name={tmp_path / 'pts.csv'}"]), "--out", str(out), "--no-progress", "--no-figures"])
    assert rc == 0
    run = load_run(out)
    assert run.class_names == ["left", "right"] and abs(run.class_weights[0] - 0.75) < 0.01
    assert class_labels(run, 8).tolist() == [0] * 6 + [1] * 2
    assert cli.main(["sample", str(out), "--label", "right", "-n", "5", "--out", str(tmp_path / "r.npy")]) == 0


def test_a_bad_labels_file_leaves_no_run_folder(tmp_path, capsys):
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(50, 2)))
    (tmp_path / "labels.txt").write_text("a\nb\n")
    out = tmp_path / "run"
    rc = cli.main(["train", *set_args([f"data.name={tmp_path / 'pts.npy'}", f"data.labels={tmp_path / 'labels.txt'}"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "2 labels for 50 points" in err and err.count("\n") == 1
    assert not out.exists()


# --- the two-shape recipe separates its classes ------------------------------------------------


@pytest.mark.slow
def test_shapes_recipe_separates_the_classes(tmp_path, one_thread):
    """Seed 001's two shapes overlap where the spiral's outer turn meets the circle, so even
    fresh draws of the data score well below 1 (the reference accuracy, about 0.83).  The model
    at s = 1 must match that ceiling to 95%, and guidance (s = 4) must push accuracy past it."""
    cfg = load_config("shapes", ["train.steps=4000", "sample.n=1000"])
    training.train(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    run = load_run(tmp_path / "run")
    plain, _ = evaluate_run(run, repeats=2)
    for name in ("spiral", "circle"):
        assert plain.accuracy[name] >= 0.95 * plain.reference_accuracy[name], plain.summary()
    guided, _ = evaluate_run(run, repeats=2, guidance=4.0)
    assert guided.mean_accuracy >= plain.mean_accuracy + 0.05, guided.summary()


@pytest.mark.parametrize(
    "recipe, overrides",
    [
        ("shapes", ["train.steps=120", "model.hidden=16", "train.checkpoint_every=40"]),
        ("digits", ["train.steps=30", "model.hidden=8", "model.time_dim=16", "train.checkpoint_every=10"]),
    ],
)
def test_resume_is_bit_exact_for_conditional_and_image_runs(tmp_path, recipe, overrides, one_thread):
    """Labels (and their dropout draws) and image batches come back exactly after an interruption."""
    from safetensors.torch import load_file

    cfg = load_config(recipe, overrides)
    quiet = dict(progress=False, log=lambda *a: None)
    with pytest.raises(training.TrainingInterrupted):
        training.train(cfg, tmp_path / "a", stop_at=cfg.train.steps // 2, **quiet)
    training.train(cfg, tmp_path / "a", resume=True, **quiet)
    training.train(cfg, tmp_path / "b", **quiet)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
