"""Reflow (`denoiselab distill --method reflow`, training/distill.py): the pairs are the teacher's
solve of their own noise and stay paired through training; the new run is a run like any other;
resume is bit-exact; bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY, assert_resumes_bit_exactly, set_args
from denoiselab import cli
from denoiselab.config import ConfigError, load_config
from denoiselab.objectives import diffusion_loss, pack_pairs
from denoiselab.runs import load_run
from denoiselab.runs.folder import RunFolder
from denoiselab.runs.plan import plan_sampling
from denoiselab.runs.sampling import denoiser
from denoiselab.runs.straightness import straightness
from denoiselab.samplers import SAMPLERS
from denoiselab.schedules import flow_schedule
from denoiselab.training import TrainingInterrupted, train
from denoiselab.training.distill import PAIR_SOLVER, PAIR_STEPS

FLOW = ["schedule.kind=flow", "model.prediction=velocity", "sample.sampler=heun", "sample.grid=time-uniform"]


@pytest.fixture(scope="module")
def reflowed(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("reflow")
    teacher, student = base / "teacher", base / "student"
    assert cli.main(["train", "--config", "quick", *set_args([*TINY, *FLOW]), "--out", str(teacher), "--no-progress", "--no-figures"]) == 0
    assert cli.main(["distill", str(teacher), "--method", "reflow", "--out", str(student), "--steps", "40", "--pairs", "300", "--no-progress"]) == 0
    return teacher, student


@pytest.mark.slow
def test_each_pair_is_the_teachers_solve_of_its_own_noise(reflowed):
    teacher_dir, student_dir = reflowed
    noise, samples = RunFolder(student_dir).read_pairs()
    teacher = load_run(teacher_dir)
    plan = plan_sampling(teacher, sampler=PAIR_SOLVER, steps=PAIR_STEPS, grid="time-uniform", n=len(noise), tuned=False)
    rows = [0, 7, 123, len(noise) - 1]  # solved alone: the pairing does not depend on the batch
    for i in rows:
        x_T = torch.as_tensor(noise[i : i + 1])
        alone = SAMPLERS[PAIR_SOLVER](denoiser(teacher, plan, teacher.model_fn()), x_T, plan.times)
        assert np.allclose(alone.numpy(), samples[i : i + 1], atol=1e-5)
    # ... and not another row's noise (a reversed or shuffled pairing, torchcfm issue 178)
    assert not np.allclose(samples[::-1], samples, atol=1e-3)


def test_a_batch_keeps_its_pairs_whatever_rows_it_draws():
    g = torch.Generator().manual_seed(0)
    noise, samples = torch.randn(50, 2, generator=g), torch.randn(50, 2, generator=g)
    rows = pack_pairs(noise, samples)[torch.randperm(50, generator=g)[:32]]  # as training/step.py draws a batch
    seen = {}

    def model_fn(x_t, t, y=None):
        seen.update(x_t=x_t, t=t)
        return torch.zeros_like(x_t)

    diffusion_loss(model_fn, rows, flow_schedule(), torch.Generator().manual_seed(1), prediction="velocity", coupling="reflow")
    x0, eps, t = rows[:, :2], rows[:, 2:], seen["t"][:, None]
    assert torch.allclose(seen["x_t"], (1 - t) * x0 + t * eps, atol=1e-6)
    table = {tuple(s.tolist()): tuple(e.tolist()) for e, s in zip(noise, samples)}
    assert all(table[tuple(s.tolist())] == tuple(e.tolist()) for s, e in zip(x0, eps))


@pytest.mark.slow
def test_the_student_is_a_run_like_any_other_and_one_step_is_euler(reflowed, tmp_path, capsys):
    teacher_dir, student_dir = reflowed
    info = json.loads((student_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["teacher"]["method"] == "reflow"
    assert info["teacher"]["solver_error_rms"] < 1e-2 and info["teacher"]["straightness"] >= 0
    run = load_run(student_dir)
    assert plan_sampling(run, steps=1).sampler == "euler"
    out = tmp_path / "one.npy"
    assert cli.main(["sample", str(student_dir), "--steps", "1", "-n", "50", "--out", str(out)]) == 0
    assert np.load(out).shape == (50, 2)
    assert cli.main(["evaluate", str(student_dir), "--steps", "2", "-n", "200", "--json"]) == 0


@pytest.mark.slow
def test_the_student_resumes_bit_exactly(reflowed, tmp_path, one_thread):
    _, student_dir = reflowed
    cfg = load_run(student_dir).config
    cfg.train.steps, cfg.train.checkpoint_every = 30, 10
    noise, samples = RunFolder(student_dir).read_pairs()
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12, prepare=lambda folder: RunFolder(folder).write_pairs(noise, samples))


@pytest.mark.slow
def test_straight_paths_have_zero_straightness_and_curved_ones_do_not(reflowed):
    """A model whose velocity is constant in x and t walks straight lines: S = 0 exactly."""
    teacher_dir, _ = reflowed
    run = load_run(teacher_dir)
    run.model = lambda x, t, y=None: torch.full_like(x, 0.7)
    assert straightness(run, n=100, steps=20) < 1e-10
    run.model = lambda x, t, y=None: x * t[:, None]  # speed changing along the path
    assert straightness(run, n=100, steps=20) > 1e-3


def test_reflow_without_pairs_is_refused(tmp_path):
    cfg = load_config("quick", [*FLOW, "train.coupling=reflow"])
    with pytest.raises(ConfigError, match="denoiselab distill"):
        train(cfg, tmp_path / "x", progress=False, log=lambda *a: None)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_taken_out_folder_is_one_line_and_exit_2(reflowed, capsys):
    teacher_dir, student_dir = reflowed
    rc = cli.main(["distill", str(teacher_dir), "--out", str(student_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "not empty" in err


@pytest.mark.parametrize("case", ["no teacher", "not a run", "interrupted", "steps 0"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    teacher_dir = tmp_path / "half"
    args = {
        "no teacher": ["distill", "--method", "reflow", "--out", str(tmp_path / "o")],
        "not a run": ["distill", str(tmp_path), "--out", str(tmp_path / "o")],
        "interrupted": ["distill", str(tmp_path / "half"), "--out", str(tmp_path / "o")],
        "steps 0": ["distill", str(teacher_dir), "--steps", "0", "--out", str(tmp_path / "o")],
    }[case]
    if case in ("interrupted", "steps 0"):
        cfg = load_config("quick", [*FLOW, "train.steps=20", "model.hidden=16"])
        with pytest.raises(TrainingInterrupted):
            train(cfg, tmp_path / "half", progress=False, log=lambda *a: None, stop_at=5)
    capsys.readouterr()
    rc = cli.main(args)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
    expected = {"no teacher": "learns from a trained run", "not a run": "not a complete denoiselab run", "interrupted": "not a trained run",
                "steps 0": "expected a positive integer"}[case]  # fmt: skip
    assert expected in err
