"""Flow-matching runs end to end: recipes, the CLI (train, sample on any grid, evaluate), bad
input, bit-exact resume, and diffusion runs sampled with the ODE solvers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY, set_args
from safetensors.torch import load_file

from denoiselab import cli
from denoiselab.config import ConfigError, load_config
from denoiselab.runs import load_run, sample_points
from denoiselab.runs import WEIGHTS
from denoiselab.training import TrainingInterrupted, train

pytestmark = pytest.mark.usefixtures("one_thread")

FLOW = ["schedule.kind=flow", "model.prediction=velocity"]


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("flow") / "run"
    rc = cli.main(["train", "--config", "quick", *set_args([*TINY, *FLOW, "train.coupling=ot"]), "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


@pytest.mark.parametrize("recipe", ["spiral-flow", "spiral-otcfm", "digits-flow"])
def test_flow_recipes_name_the_flow_path_and_the_velocity_target(recipe):
    cfg = load_config(recipe)
    assert cfg.schedule.kind == "flow" and cfg.model.prediction == "velocity"
    assert cfg.train.coupling == ("ot" if recipe == "spiral-otcfm" else "independent")
    if recipe == "digits-flow":
        digits = load_config("digits")
        assert (cfg.model.arch, cfg.model.hidden, cfg.train.steps) == (digits.model.arch, digits.model.hidden, digits.train.steps)
    else:
        spiral = load_config("spiral")
        assert cfg.model.hidden == spiral.model.hidden
        if recipe == "spiral-flow":  # OT-CFM keeps batch 256: its assignment costs the cube of the batch
            assert (cfg.train.steps, cfg.train.batch_size) == (spiral.train.steps, spiral.train.batch_size)


@pytest.mark.parametrize(
    "overrides, keys",
    [
        (["schedule.kind=flow"], ("model.prediction", "schedule.kind")),  # eps is unreadable at t = 1
        (["train.coupling=ot"], ("train.coupling", "schedule.kind")),
        (["train.timesteps=logit-normal"], ("train.timesteps", "schedule.kind")),
    ],
)
def test_incompatible_pairs_are_refused_naming_both_keys(overrides, keys, capsys, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config("spiral", overrides)
    assert all(k in str(err.value) for k in keys) and "\n" not in str(err.value)
    rc, out, err_text = run_cli(capsys, "train", *set_args(overrides), "--out", tmp_path / "x")
    assert rc == 2 and err_text.count("\n") == 1 and keys[0] in err_text and "Traceback" not in err_text
    assert not (tmp_path / "x").exists()


def test_a_flow_run_trains_samples_and_evaluates_through_the_cli(flow_run, tmp_path, capsys):
    info = json.loads((flow_run / "run.json").read_text())
    assert info["status"] == "complete" and (flow_run / "trajectory.gif").is_file()
    rc, out, _ = run_cli(capsys, "sample", flow_run, "--sampler", "heun", "--steps", "5", "--grid", "karras", "-n", "100", "--out", tmp_path / "h.npy")
    assert rc == 0 and "heun, 5 steps, karras grid, rho 7; 9 model evaluations" in out
    x = np.load(tmp_path / "h.npy")
    assert x.shape == (100, 2) and np.isfinite(x).all()
    rc, out, _ = run_cli(capsys, "evaluate", flow_run, "--grid", "1,0.6,0.3,0.1,0", "-n", "100", "--repeats", "2", "--json")
    got = json.loads(out)
    assert rc == 0 and got["grid"] == [1, 0.6, 0.3, 0.1, 0] and got["steps"] == 4 and got["evaluations"] == 4
    for sampler in ("ddpm", "ddim", "dpm++2m", "euler"):
        rc, out, _ = run_cli(capsys, "sample", flow_run, "--sampler", sampler, "--steps", "4", "-n", "50", "--out", tmp_path / "s.npy")
        assert rc == 0 and "4 model evaluations" in out


def test_a_diffusion_run_is_sampled_by_heun_on_a_karras_grid(trained_run, tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "sample", trained_run, "--sampler", "heun", "--steps", "5", "--grid", "karras", "--rho", "3", "-n", "80", "--out", tmp_path / "k.npy")
    assert rc == 0 and "9 model evaluations" in out
    run = load_run(trained_run)
    # The karras grid visits times between the chain's integer steps: the network is read there.
    seen = []
    sample_points(run, sampler="euler", steps=5, n=8, spacing="karras", on_step=seen.append)
    assert any(abs(r.t * 1000 - round(r.t * 1000)) > 1e-6 for r in seen)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid", "1,0.5,0.5,0"], "strictly decreasing"),
        (["--grid", "1,0.5"], "last time must be 0"),
        (["--grid", "nowhere.txt"], "not a number"),
        (["--grid", "karras", "--spacing", "logsnr"], "give one"),
        (["--grid", "1,0.5,0", "--steps", "5"], "has 2 steps"),
        (["--rho", "3"], "karras grid only"),
        (["--grid", "karras", "--rho", "-1"], "must be > 0"),
    ],
)
def test_bad_grids_get_one_line_and_exit_2(flow_run, tmp_path, capsys, extra, message):
    rc, _, err = run_cli(capsys, "sample", flow_run, *extra, "-n", "10", "--out", tmp_path / "bad.npy")
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "bad.npy").exists()


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_resume_of_a_flow_run_is_bit_exact(tmp_path, coupling):
    cfg = load_config("quick", [*FLOW, f"train.coupling={coupling}", "train.timesteps=logit-normal", "train.steps=30",
                                "train.checkpoint_every=10", "model.hidden=16"])  # fmt: skip
    quiet = lambda *a, **k: None  # noqa: E731
    train(cfg, tmp_path / "A", progress=False, log=quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "B", progress=False, log=quiet, stop_at=12)
    train(cfg, tmp_path / "B", resume=True, progress=False, log=quiet)
    a, b = load_file(str(tmp_path / "A" / WEIGHTS)), load_file(str(tmp_path / "B" / WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_class_conditional_flow_run_is_guided(tmp_path, capsys):
    out = tmp_path / "shapes-flow"
    rc = cli.main(["train", "--config", "shapes", *set_args([*TINY, *FLOW]), "--out", str(out), "--no-progress", "--no-figures"])
    assert rc == 0
    run = load_run(out)
    a = sample_points(run, n=200, label="circle", guidance=1.0, seed=3)
    b = sample_points(run, n=200, label="circle", guidance=3.0, seed=3)
    assert a.shape == b.shape == (200, 2) and not np.allclose(a, b)


def test_the_playground_runs_a_flow_model_and_says_what_it_predicts(flow_run, trained_run):
    from fastapi.testclient import TestClient

    from denoiselab.serve.app import create_app

    root = flow_run.parent
    with TestClient(create_app(root, job_threads=1, finish_runs=False)) as client:
        r = client.post(f"/api/runs/{flow_run.name}/sample", json={"frames": True, "n": 50, "steps": 6, "sampler": "heun"})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["prediction"] == "velocity" and "straight line" in body["explanation"] and "u = ε − x₀" in body["explanation"]
    times = body["grid_times"]
    assert times[0] == 1.0 and times[-1] == 0.0 and all(a > b for a, b in zip(times, times[1:]))
    assert body["grid_alphas"][0] == 0.0 and body["grid_sigmas"][-1] == 0.0
    assert body["grid_snr_db"][0] is None and body["grid_snr_db"][-1] is None  # -inf and +inf dB
    frames = body["frames"]
    assert len(frames) == 6 and [f["t"] for f in frames] == times[:-1]
    assert all(f["snr_db"] is None or math.isfinite(f["snr_db"]) for f in frames)
    assert [f["k_next"] for f in frames] == body["grid"][1:]  # the playground view looks its frames up by k
