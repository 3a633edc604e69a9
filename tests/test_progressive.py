"""Progressive distillation (progressive.py, `denoiselab distill --method progressive --rounds R`):
the target's one DDIM step lands where the teacher's two do, a constant clean estimate is its own
target, the student starts from its teacher's weights, the rounds halve the steps down to one,
resume is bit-exact, and bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY, assert_refused_in_one_line, assert_resumes_bit_exactly, set_args
from denoiselab import cli
from denoiselab.builders import objective_from
from denoiselab.config import ConfigError, load_config
from denoiselab.oracles import GaussianMixture
from denoiselab.progressive import ddim_step, progressive_loss, two_step_target
from denoiselab.runs import load_run
from denoiselab.runs.folder import RunFolder
from denoiselab.runs.plan import plan_sampling
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.training.checkpoint import init_state
from denoiselab.training.teacher import start_from_teacher, with_teacher

SCHEDULES = {"flow": flow_schedule(), "cosine": make_schedule("cosine", 1000, 1e-4, 0.02, True)}
FLOW = ["schedule.kind=flow", "model.prediction=velocity", "sample.sampler=heun", "sample.grid=time-uniform"]
ORACLE = GaussianMixture(torch.tensor([[1.5, -0.5], [-1.0, 1.0]], dtype=torch.float64), torch.tensor([0.3, 0.5], dtype=torch.float64),
                         torch.tensor([0.4, 0.6], dtype=torch.float64))  # fmt: skip


def _at(schedule, t):
    return schedule.alpha_at(t)[:, None], schedule.sigma_at(t)[:, None]


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 8])
def test_one_ddim_step_with_the_target_lands_where_the_teachers_two_do(kind, steps):
    schedule = SCHEDULES[kind]
    teacher = ORACLE.denoiser(schedule, "v")
    g = torch.Generator().manual_seed(0)
    t = torch.randint(1, steps + 1, (256,), generator=g).double() / steps  # every step, t = 1 and t'' = 0 among them
    z = torch.randn(256, 2, generator=g, dtype=torch.float64) * 1.5
    x_tilde = two_step_target(teacher, "v", schedule, z, t, steps)
    t1, t2 = t - 0.5 / steps, t - 1.0 / steps

    def clean(z_at, u):
        return ORACLE.posterior_mean(z_at, schedule.alpha_at(u), schedule.sigma_at(u))

    z1 = ddim_step(z, clean(z, t), _at(schedule, t), _at(schedule, t1))
    z2 = ddim_step(z1, clean(z1, t1), _at(schedule, t1), _at(schedule, t2))
    assert torch.allclose(ddim_step(z, x_tilde, _at(schedule, t), _at(schedule, t2)), z2, rtol=0, atol=1e-9)
    assert not torch.allclose(x_tilde, clean(z, t), atol=1e-3)  # the student learns more than the teacher's estimate


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_a_constant_clean_estimate_is_its_own_target(kind):
    """DDIM is exact for a constant clean estimate, so two half steps are one step with it."""
    schedule, c = SCHEDULES[kind], torch.tensor([0.7, -1.2], dtype=torch.float64)

    def teacher(x, t, y=None):
        return c.expand(x.shape[0], 2)

    t = torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    x_tilde = two_step_target(teacher, "x0", schedule, torch.randn(4, 2, dtype=torch.float64), t, 4)
    assert torch.allclose(x_tilde, c.expand(4, 2), rtol=0, atol=1e-12)


def test_the_loss_is_zero_at_the_target_and_reads_it_in_the_students_prediction_type():
    schedule = SCHEDULES["flow"]
    teacher = ORACLE.denoiser(schedule, "velocity")
    x0 = ORACLE.sample(128, torch.Generator().manual_seed(1))

    def exact_student(z, t, y=None):  # the target itself, as a velocity: u = eps - x0
        x_tilde = two_step_target(teacher, "velocity", schedule, z, t.double(), 4)
        a, s = _at(schedule, t.double())
        return (z - a * x_tilde) / s - x_tilde

    loss = progressive_loss(exact_student, teacher, "velocity", x0, schedule, torch.Generator().manual_seed(2), prediction="velocity", steps=4)
    assert float(loss) < 1e-20
    wrong = progressive_loss(teacher, teacher, "velocity", x0, schedule, torch.Generator().manual_seed(2), prediction="velocity", steps=4)
    assert float(wrong) > 1e-4


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("progressive")
    teacher, student = base / "teacher", base / "student"
    assert cli.main(["train", "--config", "quick", *set_args([*TINY, *FLOW]), "--out", str(teacher), "--no-progress", "--no-figures"]) == 0
    assert cli.main(["distill", str(teacher), "--method", "progressive", "--rounds", "2", "--out", str(student), "--steps", "20", "--no-progress"]) == 0
    return teacher, student


def test_the_student_starts_from_its_teachers_weights(distilled):
    teacher_dir, _ = distilled
    cfg = load_run(distilled[1]).config
    objective = with_teacher(cfg, objective_from(cfg), torch.device("cpu"))
    state = init_state(cfg, 2, torch.device("cpu"))
    start_from_teacher(cfg, objective, state)
    teacher = load_run(distilled[1] / "rounds" / "round-1").model.state_dict()
    assert cfg.train.teacher.endswith("round-1")
    assert all(torch.equal(state.model.state_dict()[k], v) for k, v in teacher.items())
    assert all(torch.equal(state.ema.model.state_dict()[k], v) for k, v in teacher.items())


@pytest.mark.slow
def test_the_rounds_halve_the_steps_down_to_one(distilled, tmp_path):
    teacher_dir, student_dir = distilled
    info = json.loads((student_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["teacher"]["method"] == "progressive" and info["teacher"]["rounds"] == 2
    first = load_run(RunFolder(student_dir).distillation_round(1).path)
    assert first.config.train.progressive_steps == 2 and first.config.train.teacher == str(teacher_dir.resolve())
    run = load_run(student_dir)
    assert run.config.train.progressive_steps == 1 and run.config.train.teacher == str(first.path.resolve())
    assert plan_sampling(run).sampler == "euler" and plan_sampling(run).evaluations == 1
    for steps in (1, 2, 4):
        out = tmp_path / f"s{steps}.npy"
        assert cli.main(["sample", str(student_dir), "--steps", str(steps), "-n", "50", "--out", str(out)]) == 0
        assert np.isfinite(np.load(out)).all()


@pytest.mark.slow
def test_a_round_resumes_bit_exactly(distilled, tmp_path, one_thread):
    cfg = load_run(distilled[1]).config
    cfg.train.steps, cfg.train.checkpoint_every = 30, 10
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12)


def test_an_eps_student_is_refused():
    with pytest.raises(ConfigError, match="eps gives no clean estimate"):
        load_config("quick", ["train.objective=progressive", "model.prediction=eps"])


@pytest.mark.parametrize("case", ["rounds 0", "rounds with reflow", "eps teacher"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, one_thread, request):
    teacher_dir = request.getfixturevalue("distilled")[0] if case == "rounds with reflow" else tmp_path / "teacher"
    if case == "eps teacher":
        assert cli.main(["train", "--config", "quick", *set_args(["train.steps=3", "model.hidden=8", "sample.n=50"]), "--out", str(teacher_dir), "--no-progress", "--no-figures"]) == 0
    args = {
        "rounds 0": ["distill", str(teacher_dir), "--method", "progressive", "--rounds", "0", "--out", str(tmp_path / "o")],
        "rounds with reflow": ["distill", str(teacher_dir), "--method", "reflow", "--rounds", "2", "--out", str(tmp_path / "o")],
        "eps teacher": ["distill", str(teacher_dir), "--method", "progressive", "--out", str(tmp_path / "o")],
    }[case]
    expected = {"rounds 0": "expected a positive integer", "rounds with reflow": "--rounds: expected a positive number of halvings for --method progressive",
                "eps teacher": "eps gives no clean estimate"}[case]  # fmt: skip
    assert_refused_in_one_line(args, capsys, expected, tmp_path / "o")
