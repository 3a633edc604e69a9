"""Consistency models (consistency.py, samplers/consistency.py, `denoiselab distill --method
consistency`, train.objective = consistency-training): the boundary condition by construction,
Song et al.'s c_skip and c_out, the exact consistency function of a Gaussian as the zero of the
distillation loss with the mixture oracle as teacher, the teacher's Heun step against the heun
sampler, improved consistency training's schedule, levels and stop-gradient target, exact
multistep sampling, resume and the refusals."""

from __future__ import annotations

import json
import re
import math

import numpy as np
import pytest
import torch

from conftest import TINY, assert_refused_in_one_line, assert_resumes_bit_exactly, set_args
from denoiselab import cli
from denoiselab.config import ConfigError, load_config
from denoiselab.consistency import (
    clean_estimate,
    consistency_coefficients,
    consistency_distillation_loss,
    consistency_grid,
    consistency_model,
    consistency_training_loss,
    heun_step,
    ict_discretisation,
    ict_level_probabilities,
    on_grid,
    pseudo_huber,
)
from denoiselab.models import ResidualMLP
from denoiselab.oracles import GaussianMixture
from denoiselab.runs import load_run
from denoiselab.runs.plan import plan_sampling
from denoiselab.samplers import JUMP_SAMPLERS, SAMPLERS, Denoiser
from denoiselab.samplers.consistency import boundary_level
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.training import train

MU, C = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4  # data N(MU, C^2 I)
SCHEDULES = {"flow": flow_schedule(), "linear": make_schedule("linear", 1000, 1e-4, 0.02, True)}
FLOW = ["schedule.kind=flow", "model.prediction=velocity", "sample.sampler=heun", "sample.grid=time-uniform"]
ICT = ["schedule.kind=flow", "model.prediction=x0", "train.objective=consistency-training", "sample.sampler=consistency",
       "sample.grid=time-uniform", "sample.steps=1", "train.ict_end=40"]  # fmt: skip


def gaussian() -> GaussianMixture:
    return GaussianMixture(MU[None], torch.tensor([C], dtype=torch.float64), torch.ones(1, dtype=torch.float64))


def exact_consistency(schedule, c: float = C):
    """The probability-flow ODE's endpoint map of N(MU, C^2 I) data, to t_1 = 1 / T, read as
    x / alpha there: x_t's marginal is N(alpha MU, v_t I) with v_t = alpha^2 C^2 + sigma^2, and the
    ODE moves quantiles affinely, x_s = alpha_s MU + sqrt(v_s / v_t) (x_t - alpha_t MU)."""
    t1 = torch.tensor([1.0 / schedule.T], dtype=torch.float64)
    a1, s1 = schedule.alpha_at(t1), schedule.sigma_at(t1)

    def f(x, t, y=None):
        t = t.double()
        a, s = schedule.alpha_at(t)[:, None], schedule.sigma_at(t)[:, None]
        ratio = torch.sqrt((a1**2 * c**2 + s1**2) / (a**2 * c**2 + s**2))
        return (a1 * MU + ratio * (x - a * MU)) / a1

    return f


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_the_boundary_condition_holds_for_any_network(kind):
    schedule = SCHEDULES[kind]
    torch.manual_seed(0)
    f = consistency_model(ResidualMLP(2, hidden=16, blocks=1), schedule, sigma_data=1.0).double()
    x = torch.randn(64, 2, dtype=torch.float64)
    t1 = torch.full((64,), 1.0 / schedule.T, dtype=torch.float64)
    assert torch.allclose(f(x, t1), x / schedule.alpha_at(t1)[:, None], rtol=0, atol=1e-12)
    assert torch.isfinite(f(x, torch.ones(64, dtype=torch.float64))).all()  # alpha = 0 on the flow path
    assert not torch.allclose(f(x, torch.full((64,), 0.3, dtype=torch.float64)), x / schedule.alpha_at(torch.tensor(0.3)), atol=1e-3)


@pytest.mark.parametrize("prediction", ["v", "velocity"])
def test_a_consistency_function_read_out_as_another_prediction_is_the_same_clean_estimate(prediction):
    schedule = SCHEDULES["flow"]
    torch.manual_seed(1)
    net = ResidualMLP(2, hidden=16, blocks=1).double()
    f = consistency_model(net, schedule, 1.0)
    other = clean_estimate(consistency_model(net, schedule, 1.0, prediction), schedule, prediction)
    x = torch.randn(64, 2, dtype=torch.float64)
    for t in (1.0 / schedule.T, 0.3, 1.0):
        tt = torch.full((64,), t, dtype=torch.float64)
        assert torch.allclose(other(x, tt), f(x, tt), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_the_coefficients_are_song_et_al_s_in_the_variance_exploding_form(kind):
    schedule, sd = SCHEDULES[kind], 0.5
    eps = boundary_level(schedule)
    t = torch.tensor([1.0 / schedule.T, 0.01, 0.2, 0.5, 0.9], dtype=torch.float64)
    alpha, sigma = schedule.alpha_at(t), schedule.sigma_at(t)
    s = sigma / alpha
    a_skip, a_out, a_in = consistency_coefficients(sd, eps)(alpha, sigma)
    # Song et al. 2023, Appendix C: c_skip = s_d^2 / ((s - eps)^2 + s_d^2), c_out = s_d (s - eps) / sqrt(s_d^2 + s^2), on x = x_t / alpha
    assert torch.allclose(a_skip * alpha, sd**2 / ((s - eps) ** 2 + sd**2), rtol=1e-12)
    assert torch.allclose(a_out, sd * (s - eps) / torch.sqrt(sd**2 + s**2), rtol=1e-12, atol=1e-15)
    assert torch.allclose(a_in * alpha, 1 / torch.sqrt(s**2 + sd**2), rtol=1e-12)
    assert a_out[0] == 0 and a_skip[0] * alpha[0] == pytest.approx(1.0, abs=1e-15)


def test_the_grid_runs_from_the_boundary_to_one_spaced_as_karras():
    schedule = SCHEDULES["linear"]
    times, levels = consistency_grid(schedule, 18)
    assert times[0] == 1.0 / schedule.T and times[-1] == 1.0 and bool((times.diff() > 0).all())
    rho = 7.0  # Karras et al. 2022, Eq. 5: equal steps in s^(1/rho)
    steps = levels ** (1 / rho)
    assert torch.allclose(steps.diff(), steps.diff()[0].expand(17), rtol=1e-6)
    assert levels[0] == pytest.approx(boundary_level(schedule))


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_the_teachers_heun_step_is_the_heun_samplers_first_step(kind):
    schedule, oracle = SCHEDULES[kind], gaussian()
    teacher = oracle.denoiser(schedule, "velocity")
    x = torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t, s = 0.7, 0.45
    seen = []
    SAMPLERS["heun"](Denoiser(teacher, schedule, "velocity"), x, [t, s, 0.0], on_step=seen.append)
    ours = heun_step(teacher, "velocity", schedule, x, torch.full((32,), t, dtype=torch.float64), torch.full((32,), s, dtype=torch.float64))
    assert torch.allclose(ours, seen[0].x_next, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", list(SCHEDULES))
def test_the_exact_consistency_function_is_the_zero_of_the_distillation_loss(kind):
    """With the mixture oracle as teacher, the exact endpoint map leaves only the teacher's Heun
    error (third order in the step), and a map that is off by a little does not."""
    schedule, oracle = SCHEDULES[kind], gaussian()
    teacher = oracle.denoiser(schedule, "velocity")
    x0 = oracle.sample(4096, torch.Generator().manual_seed(2))
    exact = exact_consistency(schedule)

    def loss(f, steps=200):
        return float(consistency_distillation_loss(f, f, teacher, "velocity", x0, schedule, torch.Generator().manual_seed(3), steps=steps))

    off = exact_consistency(schedule, 1.03 * C)  # the endpoint map of data 3% wider: other trajectories

    assert loss(exact) < 1e-9
    assert loss(off) > 1e3 * loss(exact)
    assert loss(exact, steps=18) > loss(exact, steps=200)  # the Heun error shrinks with the grid


def test_the_distillation_target_comes_from_the_target_network_without_gradient():
    schedule, oracle = SCHEDULES["flow"], gaussian()
    teacher = oracle.denoiser(schedule, "velocity")
    x0 = oracle.sample(256, torch.Generator().manual_seed(4))
    theta = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    exact = exact_consistency(schedule)
    online = lambda x, t, y=None: theta * exact(x, t)  # noqa: E731
    frozen = lambda x, t, y=None: 1.1 * exact(x, t)  # noqa: E731
    loss = consistency_distillation_loss(online, frozen, teacher, "velocity", x0, schedule, torch.Generator().manual_seed(5), steps=18)
    loss.backward()
    # Recompute with the same draws: d/d theta mean (theta f(x_{n+1}) - 1.1 f(x^_n))^2 = mean 2 (f_a - 1.1 f_b) f_a
    g = torch.Generator().manual_seed(5)
    times, _ = consistency_grid(schedule, 18)
    n = torch.randint(0, 17, (256,), generator=g)
    z = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    t_n, t_next = times[n], times[n + 1]
    x_next = schedule.alpha_at(t_next)[:, None] * x0 + schedule.sigma_at(t_next)[:, None] * z
    f_a = exact(x_next, t_next)
    f_b = exact(heun_step(teacher, "velocity", schedule, x_next, t_next, t_n), t_n)
    assert float(theta.grad) == pytest.approx(float(torch.mean(2 * (f_a - 1.1 * f_b) * f_a)), rel=1e-10)


def test_improved_consistency_trainings_discretisation_doubles_on_the_paper_schedule():
    # Song & Dhariwal 2024, Eq. 5 with s0 = 10, s1 = 1280, K = 400 000: K' = 50 000.
    K = 400_000
    assert [ict_discretisation(k, K) for k in (0, 49_999, 50_000, 100_000, 300_000, 349_999, 350_000, 399_999)] == [11, 11, 21, 41, 641, 641, 1281, 1281]


def test_improved_consistency_trainings_levels_are_the_discretised_log_normal():
    _, levels = consistency_grid(SCHEDULES["flow"], 41)
    p = ict_level_probabilities(levels)
    assert p.shape == (40,) and float(p.sum()) == pytest.approx(1.0, abs=1e-12) and bool((p > 0).all())
    normal = torch.distributions.Normal(-1.1, 2.0)  # Sec. 3.5: P(ln s in [ln s_i, ln s_{i+1}])
    mass = normal.cdf(torch.log(levels[1:])) - normal.cdf(torch.log(levels[:-1]))
    assert torch.allclose(p, mass / mass.sum(), rtol=1e-9)
    diff = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    c = 0.00054 * math.sqrt(2)
    assert float(pseudo_huber(diff)) == pytest.approx(math.sqrt(25 + c * c) - c, rel=1e-12)


def test_improved_consistency_training_pairs_one_noise_across_two_levels_and_stops_the_targets_gradient():
    schedule = SCHEDULES["flow"]
    x0 = gaussian().sample(128, torch.Generator().manual_seed(6))
    theta = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    f = lambda x, t, y=None: theta * x  # noqa: E731
    loss = consistency_training_loss(f, x0, schedule, torch.Generator().manual_seed(7), steps=21)
    loss.backward()
    g = torch.Generator().manual_seed(7)
    times, levels = consistency_grid(schedule, 21)
    i = torch.multinomial(ict_level_probabilities(levels), 128, replacement=True, generator=g)
    z = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    lo = schedule.alpha_at(times[i])[:, None] * x0 + schedule.sigma_at(times[i])[:, None] * z
    hi = schedule.alpha_at(times[i + 1])[:, None] * x0 + schedule.sigma_at(times[i + 1])[:, None] * z
    w = 1 / (levels[i + 1] - levels[i])
    diff = 0.9 * hi - 0.9 * lo
    c = 0.00054 * math.sqrt(2)
    assert float(loss.detach()) == pytest.approx(float(torch.mean(w * (torch.sqrt((diff**2).sum(1) + c * c) - c))), rel=1e-10)
    # Only the upper level carries the gradient: d/d theta of ||theta hi - sg(theta lo)||
    grad = torch.mean(w * (diff * hi).sum(1) / torch.sqrt((diff**2).sum(1) + c * c))
    assert float(theta.grad) == pytest.approx(float(grad), rel=1e-10)


@pytest.mark.parametrize("kind", list(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_multistep_sampling_with_the_exact_function_draws_the_data(kind, steps):
    """Algorithm 1 re-noises x0 (already at level eps) to each next time: with the exact
    consistency function every step count draws N(MU, C^2 + eps^2)."""
    schedule = SCHEDULES[kind]
    g = torch.Generator().manual_seed(8)
    x_T = torch.randn(40_000, 2, dtype=torch.float64, generator=g)
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    exact = exact_consistency(schedule)
    if kind == "linear":  # the chain ends short of pure noise: start from its own marginal at t = 1
        a, s = float(schedule.alpha_at(1.0)), float(schedule.sigma_at(1.0))
        x_T = a * MU + math.sqrt(a * a * C * C + s * s) * x_T
    x = JUMP_SAMPLERS["consistency"](Denoiser(exact, schedule, "x0"), x_T, times, generator=g)
    eps = boundary_level(schedule)
    assert torch.allclose(x.mean(0), MU, atol=0.02)
    assert torch.allclose(x.std(0), torch.full((2,), math.sqrt(C * C + eps * eps), dtype=torch.float64), rtol=0.02)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("consistency")
    teacher, student = base / "teacher", base / "student"
    assert cli.main(["train", "--config", "quick", *set_args([*TINY, *FLOW]), "--out", str(teacher), "--no-progress", "--no-figures"]) == 0
    assert cli.main(["distill", str(teacher), "--method", "consistency", "--out", str(student), "--steps", "30", "--no-progress"]) == 0
    return teacher, student


@pytest.mark.slow
def test_the_distilled_student_is_a_run_like_any_other_sampled_in_1_2_or_4_jumps(distilled, tmp_path):
    teacher_dir, student_dir = distilled
    info = json.loads((student_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["teacher"]["method"] == "consistency"
    run = load_run(student_dir)
    assert run.config.train.teacher == str(teacher_dir.resolve()) and run.config.model.prediction == "x0"
    for steps in (1, 2, 4):
        plan = plan_sampling(run, steps=steps)
        assert plan.sampler == "consistency" and plan.evaluations == steps
        assert set(plan.times[1:-1].tolist()) <= set(consistency_grid(run.schedule, 18)[0].tolist())  # re-noised to trained times
        out = tmp_path / f"s{steps}.npy"
        assert cli.main(["sample", str(student_dir), "--steps", str(steps), "-n", "50", "--out", str(out)]) == 0
        assert np.load(out).shape == (50, 2) and np.isfinite(np.load(out)).all()
    assert cli.main(["evaluate", str(student_dir), "--steps", "2", "-n", "200", "--json"]) == 0


@pytest.mark.slow
def test_consistency_distillation_resumes_bit_exactly(distilled, tmp_path, one_thread):
    cfg = load_run(distilled[1]).config
    cfg.train.steps, cfg.train.checkpoint_every = 30, 10
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12)


def test_improved_consistency_training_resumes_bit_exactly(tmp_path, one_thread):
    """N doubles at steps 10 and 20 of 30 here (s0 = 10, s1 = 40): the resumed run steps onto the same grid."""
    cfg = load_config("quick", [*ICT, "train.steps=30", "train.checkpoint_every=10", "model.hidden=16", "sample.n=100"])
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12)


def test_the_ict_recipe_reads_every_key_it_sets():
    cfg = load_config("spiral-ict")
    assert cfg.train.objective == "consistency-training" and cfg.sample.sampler == "consistency" and cfg.sample.steps == 1
    with pytest.raises(ConfigError, match="train.teacher: is read only by the objectives that learn from a teacher run"):
        load_config("spiral-ict", ["train.teacher=somewhere"])
    for owned in ("train.ict_start=10", "train.ict_end=1280", "train.consistency_steps=18"):  # at any value, as every owned key
        with pytest.raises(ConfigError, match="is read only with train.objective = consistency-"):
            load_config("spiral-flow", [owned])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.prediction=eps", "schedule.kind=linear"], "(not eps)"),
        (["train.timesteps=logit-normal"], "draws its own levels"),
        (["train.ict_start=80"], "must be <= train.ict_end"),
        (["train.objective=consistency-distillation"], "train.ict_end: is read only with train.objective = consistency-training"),
        (["train.teacher=somewhere"], "train.teacher: is read only by the objectives that learn from a teacher run"),
    ],
)
def test_a_consistency_recipe_that_cannot_work_is_refused(overrides, message):
    base = [item for item in ICT if not any(item.startswith(o.split("=")[0] + "=") for o in overrides)]
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("quick", [*base, *overrides])


def test_the_consistency_sampler_is_refused_in_a_recipe_that_is_no_consistency_model():
    with pytest.raises(ConfigError, match="sample.sampler: consistency jumps with a consistency function"):
        load_config("spiral-flow", ["sample.sampler=consistency"])


def test_distillation_without_a_teacher_is_refused_before_anything_is_written(tmp_path):
    cfg = load_config("quick", [*[item for item in ICT if "ict_end" not in item], "train.objective=consistency-distillation"])
    cfg.train.consistency_steps = 18
    with pytest.raises(ConfigError, match="denoiselab distill TEACHER_RUN --method consistency"):
        train(cfg, tmp_path / "x", progress=False, log=lambda *a: None)
    assert not (tmp_path / "x").exists()


def test_a_diffusion_run_refuses_the_consistency_sampler(trained_run):
    with pytest.raises(ValueError, match="not a consistency model"):
        plan_sampling(load_run(trained_run), sampler="consistency", steps=2)


@pytest.mark.parametrize("case", ["no teacher", "not a run", "a meanflow teacher", "pairs"])
def test_bad_distillation_input_is_one_line_and_exit_2(tmp_path, capsys, case, one_thread):
    teacher_dir = tmp_path / "teacher"
    if case in ("a meanflow teacher", "pairs"):
        recipe = "spiral-meanflow" if case == "a meanflow teacher" else "quick"
        extra = [] if case == "a meanflow teacher" else FLOW
        assert cli.main(["train", "--config", recipe, *set_args(["train.steps=3", "model.hidden=8", "sample.n=50", *extra]),
                         "--out", str(teacher_dir), "--no-progress", "--no-figures"]) == 0  # fmt: skip
    args = {
        "no teacher": ["distill", "--method", "consistency", "--out", str(tmp_path / "o")],
        "not a run": ["distill", str(tmp_path), "--method", "consistency", "--out", str(tmp_path / "o")],
        "a meanflow teacher": ["distill", str(teacher_dir), "--method", "consistency", "--out", str(tmp_path / "o")],
        "pairs": ["distill", str(teacher_dir), "--method", "consistency", "--pairs", "100", "--out", str(tmp_path / "o")],
    }[case]
    expected = {"no teacher": "learns from a trained run", "not a run": "not a complete denoiselab run",
                "a meanflow teacher": "is a meanflow run", "pairs": "only reflow draws"}[case]  # fmt: skip
    assert_refused_in_one_line(args, capsys, expected, tmp_path / "o")


def test_multistep_times_are_moved_onto_the_trained_grid():
    grid = torch.tensor([0.001, 0.2, 0.45, 0.7, 1.0], dtype=torch.float64)
    snapped = on_grid(torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64), grid)
    assert snapped.tolist() == [1.0, 0.7, 0.45, 0.2, 0.0]
    assert on_grid(torch.tensor([1.0, 0.5, 0.46, 0.0], dtype=torch.float64), grid).tolist() == [1.0, 0.45, 0.0]  # repeats dropped
    assert on_grid(torch.tensor([1.0, 0.0], dtype=torch.float64), grid).tolist() == [1.0, 0.0]


@pytest.mark.slow
def test_a_consistency_model_has_no_density_to_measure(distilled, capsys):
    rc = cli.main(["likelihood", str(distilled[1]), "-n", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no density" in err, err
