"""A consistency student that starts from its teacher's network (Song et al. 2023, App. C;
train.consistency_init = "teacher", `distill --init teacher`): at step 0 the student is the exact
function of the teacher that training/teacher.py's start_from_teacher says, the boundary condition
still holds exactly, and a teacher whose network is not an EDM F is refused in one line."""

from __future__ import annotations

import pytest
import torch

from denoiselab import cli, load_config, train
from denoiselab.builders import objective_from
from denoiselab.config import ConfigError
from denoiselab.consistency import consistency_coefficients
from denoiselab.models.preconditioning import edm_coefficients
from denoiselab.prediction import resolve
from denoiselab.runs import load_run
from denoiselab.samplers.consistency import boundary_level
from denoiselab.training.checkpoint import init_state
from denoiselab.training.distill import consistency_config
from denoiselab.training.teacher import start_from_teacher, with_teacher

SMALL = ["model.hidden=16", "model.blocks=1", "train.steps=30", "sample.n=200"]
CPU = torch.device("cpu")


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, one_thread):
    """A rectified flow with EDM's preconditioning (its network is an F) and one without."""
    root = tmp_path_factory.mktemp("consistency-init")
    train(load_config("spiral-flow", SMALL + ["model.precondition=edm"]), root / "edm", progress=False, log=_quiet)
    train(load_config("spiral-flow", SMALL), root / "plain", progress=False, log=_quiet)
    return root


def _student(teacher_dir, init: str):
    cfg = consistency_config(load_run(teacher_dir), 10, init)
    objective = with_teacher(cfg, objective_from(cfg), CPU)
    state = init_state(cfg, 2, CPU)
    start_from_teacher(cfg, objective, state)
    return cfg, state


def _per_sample(c: torch.Tensor) -> torch.Tensor:
    return c.float()[:, None]


def test_the_students_first_f_is_the_teachers_denoiser_under_the_consistency_scalings(teachers):
    cfg, state = _student(teachers / "edm", "teacher")
    teacher = load_run(teachers / "edm")
    schedule, s_d = teacher.schedule, cfg.train.sigma_data
    assert cfg.train.consistency_init == "teacher" and s_d == teacher.config.train.sigma_data
    g = torch.Generator().manual_seed(0)
    t = torch.rand(256, generator=g, dtype=torch.float64) * 0.98 + 0.01
    x_t = torch.randn(256, 2, generator=g)
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    with torch.no_grad():
        f = state.model(x_t, t.float())  # model.prediction = x0: the network's output is f itself
        ema = state.ema.model(x_t, t.float())
        D = resolve(teacher.model(x_t, t.float()), teacher.config.model.prediction, x_t, _per_sample(alpha), _per_sample(sigma)).x0
    a_skip, a_out, _ = (_per_sample(c) for c in consistency_coefficients(s_d, boundary_level(schedule))(alpha, sigma))
    e_skip, e_out, _ = (_per_sample(c) for c in edm_coefficients(s_d)(alpha, sigma))
    expected = a_skip * x_t + a_out / e_out * (D - e_skip * x_t)
    torch.testing.assert_close(f, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ema, f)
    # Away from the boundary the two scalings nearly agree: f starts as the teacher's x0-hat.
    far = t > 0.2
    assert (f[far] - D[far]).abs().max() < 0.02 * D[far].abs().max()
    # The boundary condition is the student's own, whatever its weights: f(x, eps) = x / alpha.
    t0 = torch.full((8,), 1.0 / schedule.T)
    with torch.no_grad():
        torch.testing.assert_close(state.model(x_t[:8], t0), x_t[:8] / float(schedule.alpha_at(1.0 / schedule.T)))


def test_a_student_from_scratch_is_not_the_teacher(teachers):
    _, scratch = _student(teachers / "edm", "scratch")
    _, warm = _student(teachers / "edm", "teacher")
    x_t, t = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)), torch.full((64,), 0.5)
    with torch.no_grad():
        assert (scratch.model(x_t, t) - warm.model(x_t, t)).abs().max() > 0.05


def test_a_teacher_whose_network_is_not_an_f_is_refused(teachers, tmp_path, capsys):
    cfg = consistency_config(load_run(teachers / "plain"), 10, "teacher")
    with pytest.raises(ConfigError, match=r"train\.consistency_init: .* has model\.precondition = none: its network predicts velocity"):
        with_teacher(cfg, objective_from(cfg), CPU)
    args = ["distill", str(teachers / "plain"), "--method", "consistency", "--init", "teacher", "--steps", "5", "--out", str(tmp_path / "a"), "--no-progress"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--init teacher starts the student's F" in err and "model.precondition = edm" in err
    assert not (tmp_path / "a").exists()
    assert cli.main(["distill", str(teachers / "edm"), "--method", "reflow", "--init", "teacher", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "--init: expected one of scratch, teacher for --method consistency" in capsys.readouterr().err
    # A recipe key: refused where its objective does not read it.
    with pytest.raises(ConfigError, match="consistency_init"):
        load_config("spiral-flow", ["train.consistency_init=teacher"])


def test_the_default_starts_from_the_teacher_wherever_its_network_is_an_f(teachers):
    assert consistency_config(load_run(teachers / "edm"), 10).train.consistency_init == "teacher"
    assert consistency_config(load_run(teachers / "plain"), 10).train.consistency_init == "scratch"
    assert consistency_config(load_run(teachers / "edm"), 10, "scratch").train.consistency_init == "scratch"
