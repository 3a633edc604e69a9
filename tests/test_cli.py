"""The command line end to end: train, sample, evaluate, plot, schedules, resume, and every
kind of bad input (one line on stderr naming the culprit, exit status 2, nothing left behind)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, set_args
from PIL import Image

from denoiselab import cli
from denoiselab.config import config_from_run_file, load_config
from denoiselab.data import load_points_file
from denoiselab.training import TrainingInterrupted, train

pytestmark = pytest.mark.usefixtures("one_thread")

RUN_FILES = [
    "samples.png",
    "forward.png",
    "trajectory.gif",
    "progression.png",
    "schedule.png",
    "loss.png",
    "metrics.json",
    "model.safetensors",
    "config.toml",
    "run.json",
]
FIGURES = ["samples.png", "forward.png", "trajectory.gif", "progression.png", "schedule.png", "loss.png"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(rc, err, *names):
    """Exit status 2 and exactly one line on stderr that names the offending key or file."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert "error:" in lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])


# --- the happy path ---------------------------------------------------------------------------
def test_train_writes_the_whole_run_folder(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file() and (trained_run / name).stat().st_size > 0, name
    assert not list(trained_run.glob(".*.tmp"))
    for name in FIGURES:
        magic = (trained_run / name).read_bytes()[:8]
        assert magic == PNG_MAGIC if name.endswith(".png") else magic[:6] in (b"GIF87a", b"GIF89a"), name
    with Image.open(trained_run / "trajectory.gif") as gif:
        assert getattr(gif, "n_frames", 1) > 5  # an animation, not one frame
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in ("w2", "w2_floor", "energy", "energy_floor"):
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]), key
    assert metrics["w2_floor"] > 0 and metrics["energy_floor"] > 0
    assert metrics["w2"] > metrics["w2_floor"]  # 40 steps of a 16-wide network: far from the data
    assert metrics["n"] == 200 and metrics["sampler"] == "dpm++2m" and metrics["steps"] == 5
    info = json.loads((trained_run / "run.json").read_text())
    assert info["status"] == "complete" and info["step"] == 40
    cfg = config_from_run_file(trained_run / "config.toml")
    assert cfg == load_config("quick", TINY)  # the resolved recipe, overrides included


def test_sample_npy_in_data_units(trained_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    rc, stdout, _ = run_cli(capsys, "sample", trained_run, "--sampler", "ddim", "--steps", "8", "-n", "300", "--seed", "3", "--out", out)
    assert rc == 0 and "300" in stdout
    x = np.load(out)
    assert x.shape == (300, 2) and x.dtype == np.float32 and np.all(np.isfinite(x))
    data = np.load(trained_run / "data.npy")
    centre = data.mean(0)
    # data units: clip_x0 keeps samples inside the data's box (+10%) around its mean; in model
    # units (about 2.2x the data's scale here) they would overshoot it
    assert np.abs(x - centre).max() <= 1.1 * np.abs(data - centre).max() * 1.0001
    assert 0.3 < x.std() / data.std() < 3  # not collapsed, not exploded (the model is barely trained)
    # the seed picks the draw
    run_cli(capsys, "sample", trained_run, "--sampler", "ddim", "--steps", "8", "-n", "300", "--seed", "3", "--out", tmp_path / "t.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), x)
    run_cli(capsys, "sample", trained_run, "--sampler", "ddim", "--steps", "8", "-n", "300", "--seed", "4", "--out", tmp_path / "u.npy")
    assert not np.array_equal(np.load(tmp_path / "u.npy"), x)


def test_sample_defaults_come_from_the_run(trained_run, tmp_path, capsys):
    rc, _, _ = run_cli(capsys, "sample", trained_run, "--out", tmp_path / "d.npy")
    assert rc == 0 and np.load(tmp_path / "d.npy").shape == (200, 2)  # the run's sample.n


def test_sample_csv_and_png(trained_run, tmp_path, capsys):
    rc, _, _ = run_cli(capsys, "sample", trained_run, "-n", "50", "--seed", "1", "--out", tmp_path / "s.csv")
    assert rc == 0
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "x1,x2" and len(lines) == 51
    run_cli(capsys, "sample", trained_run, "-n", "50", "--seed", "1", "--out", tmp_path / "s.npy")
    np.testing.assert_allclose(load_points_file(tmp_path / "s.csv"), np.load(tmp_path / "s.npy"), rtol=1e-5, atol=1e-6)
    rc, _, _ = run_cli(capsys, "sample", trained_run, "-n", "50", "--out", tmp_path / "s.png")
    assert rc == 0 and (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    with Image.open(tmp_path / "s.png") as img:
        img.verify()


@pytest.mark.parametrize(
    "extra",
    [["--sampler", "ddpm"], ["--sampler", "ddpm", "--variance", "large"], ["--sampler", "ddim"], ["--sampler", "ddim", "--eta", "0.5"], ["--sampler", "dpm++2m"], ["--spacing", "linspace"]],
)
def test_every_sampler(trained_run, tmp_path, capsys, extra):
    rc, _, err = run_cli(capsys, "sample", trained_run, *extra, "--steps", "6", "-n", "64", "--out", tmp_path / "x.npy")
    assert rc == 0, err
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (64, 2) and np.all(np.isfinite(x))


def test_ddim_eta_changes_the_samples(trained_run, tmp_path, capsys):
    def draw(eta):
        run_cli(capsys, "sample", trained_run, "--sampler", "ddim", "--eta", eta, "--steps", "6", "-n", "64", "--out", tmp_path / "e.npy")
        return np.load(tmp_path / "e.npy")

    assert not np.array_equal(draw("0"), draw("1"))
    np.testing.assert_array_equal(draw("0"), draw("0.0"))


def test_evaluate_json_and_text(trained_run, capsys):
    rc, out, err = run_cli(capsys, "evaluate", trained_run, "-n", "100", "--steps", "4", "--json", "--no-progress")
    assert rc == 0 and err == ""
    assert len(out.strip().splitlines()) == 1
    result = json.loads(out)
    for key in ("w2", "w2_floor", "energy", "energy_floor", "sampler", "steps", "n"):
        assert key in result
    assert result["n"] == 100 and result["steps"] == 4 and result["sampler"] == "dpm++2m"
    assert result["w2_floor"] > 0 and result["w2"] > 0
    rc, out, _ = run_cli(capsys, "evaluate", trained_run, "-n", "100", "--sampler", "ddim", "--steps", "4")
    assert rc == 0 and "W2" in out and "floor" in out and "ddim" in out


def test_evaluate_shows_its_progress_on_stderr(trained_run, capsys):
    """A bar of the sample sets and the metrics, ending full; short where stderr is not a terminal."""
    rc, out, err = run_cli(capsys, "evaluate", trained_run, "-n", "50", "--steps", "2", "--repeats", "3", "--json")
    assert rc == 0 and json.loads(out)["n"] == 50
    assert "evaluate:" in err and "4/4" in err  # 3 sample sets and one measurement
    assert err.count("\n") == 1  # not a terminal: the bar is redrawn in place at most every 10 s, then ends its one line


def test_plot_into_another_folder(trained_run, tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "plot", trained_run, "--out", tmp_path / "figs")
    assert rc == 0
    for name in FIGURES:
        assert (tmp_path / "figs" / name).is_file(), name
    assert str(tmp_path / "figs" / "samples.png") in out


def test_train_without_figures_measures_the_run_and_plot_draws_them_later(tmp_path, capsys, one_thread):
    run = tmp_path / "bare"
    rc, out, _ = run_cli(capsys, "train", "--config", "quick", *[a for s in TINY for a in ("--set", s)], "--out", run, "--no-progress", "--no-figures")
    assert rc == 0 and "wrote" not in out
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert np.isfinite(json.loads((run / "metrics.json").read_text())["w2"])
    assert not [name for name in FIGURES if (run / name).exists()]
    rc, _, _ = run_cli(capsys, "plot", run)
    assert rc == 0 and all((run / name).is_file() for name in FIGURES)


def test_schedules(tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "schedules", "--T", "50", "--out", tmp_path / "s.png")
    assert rc == 0 and (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    for kind in ("linear", "cosine", "quadratic", "sigmoid"):
        assert kind in out
    rc, _, err = run_cli(capsys, "schedules", "--out", tmp_path / "s.jpg")
    assert_usage_error(rc, err, "s.jpg")
    for args, flag in [(["--beta-end", "1.5"], "--beta-end"), (["--beta-start", "0"], "--beta-start"), (["--T", "0"], "--T")]:
        rc, _, err = run_cli(capsys, "schedules", *args, "--out", tmp_path / "t.png")
        assert_usage_error(rc, err, flag)
    assert not (tmp_path / "t.png").exists()


# --- interrupted training, resumed from the command line ----------------------------------------
@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory, one_thread):
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    with pytest.raises(TrainingInterrupted):
        train(load_config("quick", TINY), run_dir, progress=False, log=lambda *a: None, stop_at=20)
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    rc = cli.main(["train", "--resume", str(run_dir), "--no-progress"])
    assert rc == 0
    return run_dir


def test_resume_from_the_cli_completes_the_run(resumed_run, trained_run, capsys):
    for name in RUN_FILES:
        assert (resumed_run / name).is_file(), name
    info = json.loads((resumed_run / "run.json").read_text())
    assert info["status"] == "complete" and info["step"] == 40
    # the same recipe and seed as the shared run: interrupted + resumed ends at the same place
    assert (resumed_run / "model.safetensors").read_bytes() == (trained_run / "model.safetensors").read_bytes()
    assert json.loads((resumed_run / "metrics.json").read_text())["w2"] == json.loads((trained_run / "metrics.json").read_text())["w2"]
    rc, _, err = run_cli(capsys, "train", "--resume", resumed_run)
    assert_usage_error(rc, err, "already complete", str(resumed_run))


def test_plot_redraws_every_figure(resumed_run, capsys):
    for name in FIGURES:
        (resumed_run / name).unlink()
    rc, out, _ = run_cli(capsys, "plot", resumed_run)
    assert rc == 0
    for name in FIGURES:
        assert (resumed_run / name).is_file() and str(resumed_run / name) in out, name


# --- bad input ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    nan = np.random.default_rng(0).normal(size=(40, 2))
    nan[11, 0] = np.nan
    np.save(d / "nan_points.npy", nan)
    np.save(d / "cube_points.npy", np.zeros((5, 4, 2)))
    (d / "points.txt").write_text("1,2\n3,4\n")
    (d / "words.csv").write_text("1,2\nthree,4\n")
    (d / "broken.toml").write_text("[train\nsteps = 1\n")
    return d


TRAIN_ERRORS = [
    (["--set", "train.learning_rate=1e-3"], ["train.learning_rate", "lr", "warmup_steps", "ema_decay"]),
    (["--set", "optim.lr=1e-3"], ["optim", "schedule", "train"]),
    (["--set", "train.steps=abc"], ["train.steps", "int"]),
    (["--set", "train.lr=fast"], ["train.lr", "float"]),
    (["--set", "schedule.T=0"], ["schedule.T", ">= 1"]),
    (["--set", "schedule.beta_end=1.5"], ["schedule.beta_end", "< 1"]),
    (["--set", "schedule.beta_start=0"], ["schedule.beta_start", "> 0"]),
    (["--set", "train.lr=0"], ["train.lr", "> 0"]),
    (["--set", "train.lr=-1"], ["train.lr"]),
    (["--set", "train.lr=nan"], ["train.lr", "finite"]),
    (["--set", "sample.steps=2000"], ["sample.steps", "schedule.T"]),
    (["--set", "sample.n=0"], ["sample.n"]),
    (["--set", "sample.sampler=euler-maruyama"], ["sample.sampler", "ddpm, ddim, dpm++2m, dpm++3m, dpm++2s, unipc, ipndm, euler, heun, edm-heun"]),
    (["--set", "trainsteps=4"], ["trainsteps", "section.key=value"]),
    (["--set", "train.device=banana"], ["train.device", "banana"]),
    (["--config", "no-such-recipe"], ["no-such-recipe", "spiral"]),
    (["--config", "{d}/missing.toml"], ["missing.toml"]),
    (["--config", "{d}/broken.toml"], ["broken.toml", "TOML"]),
    (["--set", "data.name={d}/nan_points.npy"], ["nan_points.npy", "NaN", "index 11"]),
    (["--set", "data.name={d}/cube_points.npy"], ["cube_points.npy", "N x D"]),
    (["--set", "data.name={d}/points.txt"], ["points.txt", ".npy", ".csv"]),
    (["--set", "data.name={d}/words.csv"], ["words.csv"]),
    (["--set", "data.name={d}/missing.npy"], ["missing.npy", "no such file"]),
    (["--set", "data.name=spirals"], ["data.name", "spirals"]),
]


@pytest.mark.parametrize("args, names", TRAIN_ERRORS, ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_train_bad_input(bad_files, tmp_path, capsys, args, names):
    out = tmp_path / "out"
    args = [a.replace("{d}", str(bad_files)) for a in args]
    rc, _, err = run_cli(capsys, "train", "--config", "quick", *set_args(TINY), *args, "--out", out)
    assert_usage_error(rc, err, *names)
    assert not out.exists()  # no half-written run folder


def test_train_into_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _, err = run_cli(capsys, "train", "--config", "quick", *set_args(TINY), "--out", out)
    assert_usage_error(rc, err, "--out", str(out), "not empty")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.fixture()
def interrupted_copy(resumed_run, tmp_path):
    """A resumable (status interrupted) copy of a run folder."""
    run_dir = tmp_path / "interrupted"
    shutil.copytree(resumed_run, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    return run_dir


def test_resume_bad_input(interrupted_copy, tmp_path, capsys):
    before = (interrupted_copy / "model.safetensors").read_bytes()
    rc, _, err = run_cli(capsys, "train", "--resume", interrupted_copy, "--set", "model.hidden=32")
    assert_usage_error(rc, err, "model.hidden", "only train.*")
    (interrupted_copy / "checkpoint.safetensors").write_bytes(os.urandom(64))
    rc, _, err = run_cli(capsys, "train", "--resume", interrupted_copy)
    assert_usage_error(rc, err, "checkpoint.safetensors")
    assert (interrupted_copy / "model.safetensors").read_bytes() == before  # nothing overwritten
    (interrupted_copy / "checkpoint.safetensors").unlink()
    rc, _, err = run_cli(capsys, "train", "--resume", interrupted_copy)
    assert_usage_error(rc, err, "--resume", "checkpoint.safetensors")
    rc, _, err = run_cli(capsys, "train", "--resume", tmp_path / "nowhere")
    assert_usage_error(rc, err, "--resume", "nowhere")
    assert not (tmp_path / "nowhere").exists()


def test_resume_with_a_corrupt_run_json(interrupted_copy, capsys):
    (interrupted_copy / "run.json").write_text("{ not json")
    rc, _, err = run_cli(capsys, "train", "--resume", interrupted_copy)
    assert_usage_error(rc, err, "--resume", str(interrupted_copy))


@pytest.fixture()
def broken_runs(trained_run, tmp_path):
    no_info = tmp_path / "no_info"
    shutil.copytree(trained_run, no_info)
    (no_info / "run.json").unlink()
    bad_weights = tmp_path / "bad_weights"
    shutil.copytree(trained_run, bad_weights)
    (bad_weights / "model.safetensors").write_bytes(b"\x07garbage bytes, not safetensors")
    truncated = tmp_path / "truncated"
    shutil.copytree(trained_run, truncated)
    data = (trained_run / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    bad_info = tmp_path / "bad_info"
    shutil.copytree(trained_run, bad_info)
    (bad_info / "run.json").write_text("[1, 2")
    return {"no_info": no_info, "bad_weights": bad_weights, "truncated": truncated, "bad_info": bad_info, "missing": tmp_path / "missing_run"}


@pytest.mark.parametrize("command", ["sample", "evaluate", "plot"])
@pytest.mark.parametrize(
    "which, names",
    [
        ("missing", ["missing_run", "no such run folder"]),
        ("no_info", ["no_info", "run.json"]),
        ("bad_info", ["run.json"]),
        ("bad_weights", ["model.safetensors"]),
        ("truncated", ["model.safetensors"]),
    ],
)
def test_broken_run_folders(broken_runs, tmp_path, capsys, command, which, names):
    extra = ["--out", tmp_path / "x.npy"] if command == "sample" else []
    rc, _, err = run_cli(capsys, command, broken_runs[which], *extra)
    assert_usage_error(rc, err, *names)
    assert not (tmp_path / "x.npy").exists()


SAMPLE_ERRORS = [
    (["--steps", "1001"], ["--steps", "1000"]),
    (["--steps", "0"], ["--steps"]),
    (["-n", "0"], ["-n"]),
    (["-n", "-5"], ["-n"]),
    (["-n", "many"], ["-n", "many"]),
    (["--sampler", "euler-maruyama"], ["--sampler", "euler-maruyama"]),
    (["--sampler", "ddpm", "--eta", "0.5"], ["--eta", "ddim"]),
    (["--eta", "0.5"], ["--eta", "dpm++2m"]),  # the run's default sampler is not ddim
    (["--sampler", "ddim", "--eta", "-1"], ["--eta"]),
    (["--sampler", "ddim", "--variance", "large"], ["--variance", "ddpm"]),
]


@pytest.mark.parametrize("args, names", SAMPLE_ERRORS, ids=[" ".join(a) for a, _ in SAMPLE_ERRORS])
def test_sample_bad_options(trained_run, tmp_path, capsys, args, names):
    out = tmp_path / "x.npy"
    rc, _, err = run_cli(capsys, "sample", trained_run, *args, "--out", out)
    assert_usage_error(rc, err, *names)
    assert not out.exists()
    rc, out_text, err = run_cli(capsys, "evaluate", trained_run, *args, "--json")
    assert_usage_error(rc, err, *names)
    assert out_text == ""


def test_sample_bad_out(trained_run, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "sample", trained_run, "--out", tmp_path / "x.txt")
    assert_usage_error(rc, err, "x.txt", ".npy")
    assert not (tmp_path / "x.txt").exists()
    rc, _, err = run_cli(capsys, "sample", trained_run)
    assert_usage_error(rc, err, "--out")  # required


def test_no_command_and_unknown_command(capsys):
    rc, _, err = run_cli(capsys)
    assert_usage_error(rc, err)
    rc, _, err = run_cli(capsys, "trian")
    assert_usage_error(rc, err, "trian")
    rc, out, _ = run_cli(capsys, "--version")
    assert rc == 0 and "denoiselab" in out
    rc, out, _ = run_cli(capsys, "sample", "--help")
    assert rc == 0 and "--sampler" in out and "--eta" in out


# --- a real process: exit status, stderr, no traceback -------------------------------------------
def _entry_point() -> list[str]:
    script = Path(sys.executable).with_name("denoiselab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "denoiselab.cli"]


def test_subprocess_errors_are_one_line(tmp_path, trained_run):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-m", "denoiselab.cli", "train", "--config", "quick", "--set", "schedule.T=0", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and "schedule.T" in proc.stderr
    assert not out.exists()
    proc = subprocess.run(
        [*_entry_point(), "sample", str(trained_run), "-n", "0", "--out", str(tmp_path / "x.npy")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and "-n" in proc.stderr
    assert not (tmp_path / "x.npy").exists()


def test_read_losses_thins_to_bin_means(trained_run):
    from denoiselab.runs import read_losses

    losses = read_losses(trained_run)
    assert len(losses) == 40  # TINY: train.steps = 40, one loss per step
    thin = read_losses(trained_run, max_points=7)
    edges = np.linspace(0, 40, 8).astype(int)
    np.testing.assert_allclose(thin, [losses[a:b].mean() for a, b in zip(edges[:-1], edges[1:])], rtol=1e-6)
    assert len(read_losses(trained_run.parent / "no-such-run")) == 0


def test_the_api_refuses_a_folder_that_holds_something(tmp_path):
    from denoiselab.runs.folder import RunFolderError

    cfg = load_config("quick", TINY)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "samples.png").write_bytes(b"not yours")
    with pytest.raises(RunFolderError, match="not empty"):
        train(cfg, tmp_path / "old", progress=False, log=lambda m: None)
    assert (tmp_path / "old" / "samples.png").read_bytes() == b"not yours"  # nothing touched
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError):
        train(cfg, tmp_path / "file", progress=False, log=lambda m: None)
    train(cfg, tmp_path / "empty-is-fine", progress=False, log=lambda m: None)


def test_resume_finishes_a_run_trained_from_python(tmp_path, capsys):
    # dl.train writes the model but not metrics or figures; `train --resume` adds them
    # without training further (it used to crash on the missing training time).
    run_dir = tmp_path / "api"
    train(load_config("quick", TINY), run_dir, progress=False, log=lambda m: None)
    weights = (run_dir / "model.safetensors").read_bytes()
    assert not (run_dir / "metrics.json").exists()
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already trained to step 40" in out and "Traceback" not in out
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "samples.png").is_file()
    assert (run_dir / "model.safetensors").read_bytes() == weights  # not trained again
    # and now it is complete: a second resume is a usage error
    assert cli.main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "already complete" in capsys.readouterr().err


def test_busy_cores_reads_a_share_of_the_machine():
    from denoiselab.training.compute import busy_cores

    busy = busy_cores(0.05)
    if not Path("/proc/stat").exists():
        assert busy is None
    else:
        assert 0.0 <= busy <= (os.cpu_count() or 1)
