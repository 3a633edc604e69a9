"""The sampling plan (runs/plan.py): one resolved value for what will be sampled, the one
tuned-grid rule, errors that name their field, and the recipe's older key sample.spacing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from denoiselab.config import ConfigError, dump_config, load_config
from denoiselab.runs import PlanError, load_run, plan_sampling, sample, sample_points
from denoiselab.samplers import time_grid
from denoiselab.runs.folder import TUNED_GRIDS, RunFolder
from denoiselab.tuning import TunedGrid

TUNED = [1.0, 0.55, 0.21, 0.07, 0.02, 0.0]  # for dpm++2m at 5 evaluations (the run's sample.steps)


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


@pytest.fixture(scope="module")
def tuned_run(trained_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "run"
    shutil.copytree(trained_run, path)
    RunFolder(path).save_tuned_grid(TunedGrid("dpm++2m", 5, TUNED, "trailing", TUNED, 0.0, 0.0, 0.0, n=1))
    return path


def test_the_runs_sample_section_fills_in_what_is_not_given(run):
    sc = run.config.sample
    plan = plan_sampling(run)
    assert (plan.sampler, plan.steps, plan.grid, plan.n, plan.seed) == (sc.sampler, sc.steps, sc.grid, sc.n, sc.seed)
    assert torch.equal(plan.times, time_grid(run.schedule, sc.steps, sc.grid))
    assert plan.evaluations == sc.steps and plan.labels is None and plan.guidance is None
    assert plan.clip_x0 == run.info["x0_bound"] and dict(plan.options) == {}
    assert plan.describe() == f"{sc.sampler}, {sc.steps} steps, {sc.grid} grid"
    ddim = plan_sampling(run, sampler="ddim", eta=0.5)
    assert dict(ddim.options) == {"eta": 0.5} and dict(plan_sampling(run, sampler="ddpm").options) == {"variance": sc.variance}


def test_a_grid_is_named_or_given_as_times(run):
    karras = plan_sampling(run, sampler="heun", steps=4, grid="karras", rho=3.0)
    assert torch.equal(karras.times, time_grid(run.schedule, 4, "karras", rho=3.0)) and karras.rho == 3.0
    assert karras.describe() == "heun, 4 steps, karras grid, rho 3" and karras.evaluations == 7
    assert plan_sampling(run, sampler="ddim", steps=1).describe().startswith("ddim, 1 step, ")  # one step, not "1 steps"
    given = plan_sampling(run, grid="1,0.6,0.3,0.1,0")
    assert given.grid == "given" and given.steps == 4 and given.times.tolist() == [1.0, 0.6, 0.3, 0.1, 0.0]
    assert torch.equal(plan_sampling(run, grid=[1.0, 0.6, 0.3, 0.1, 0.0]).times, given.times)
    assert plan_sampling(run, spacing="trailing").grid == "trailing"  # the older name


@pytest.mark.parametrize(
    "options, field",
    [
        ({"steps": 5000}, "steps"),
        ({"steps": 0}, "steps"),
        ({"sampler": "euler-maruyama"}, "sampler"),
        ({"eta": 0.5}, "eta"),  # the run's sampler is not ddim
        ({"sampler": "ddim", "variance": "large"}, "variance"),
        ({"rho": 3.0}, "rho"),  # not the karras grid
        ({"grid": "karras", "rho": -1.0}, "rho"),
        ({"grid": "1,0.5,0.5,0"}, "grid"),
        ({"grid": "karras", "spacing": "logsnr"}, "grid"),
        ({"grid": [1.0, 0.5, 0.0], "steps": 5}, "steps"),
        ({"n": 0}, "n"),
        ({"label": 0}, "label"),  # an unconditional run
        ({"labels": [0, 1]}, "labels"),
        ({"guidance": 2.0}, "guidance"),
        ({"grid": "logsnr", "tuned": True}, "tuned_grid"),
        ({"steps": 4, "tuned": True}, "tuned_grid"),  # no tuned grid for 4 evaluations
    ],
)
def test_errors_name_their_field_and_no_path(run, options, field):
    with pytest.raises(PlanError) as err:
        plan_sampling(run, **options)
    assert err.value.field == field and str(run.path) not in err.value.message


def test_the_tuned_grid_rule(tuned_run):
    run = load_run(tuned_run)
    assert plan_sampling(run).tuned and plan_sampling(run).describe() == f"dpm++2m, 5 steps, tuned grid from {TUNED_GRIDS}"
    assert plan_sampling(run).times.tolist() == TUNED
    assert plan_sampling(run, grid="logsnr").grid == "logsnr"  # a grid named wins
    assert not plan_sampling(run, tuned=False).tuned
    assert not plan_sampling(run, steps=4).tuned  # another evaluation count has none
    assert plan_sampling(run, tuned=True).tuned
    # The Python API samples what it is told: no tuned grid unless asked.
    np.testing.assert_array_equal(sample_points(run, n=20), sample(run, plan_sampling(run, n=20, tuned=False)).x)
    (tuned_run / TUNED_GRIDS).write_text("{not json")
    with pytest.raises(PlanError) as err:
        plan_sampling(run)
    assert err.value.conflict and err.value.of_run and err.value.field == "tuned_grid" and TUNED_GRIDS in err.value.message
    assert not plan_sampling(run, tuned=False).tuned


def test_a_conditional_run_keeps_its_tuned_grid_only_with_its_own_classes_and_guidance(shapes_run, tmp_path):
    shutil.copytree(shapes_run, tmp_path / "run")
    RunFolder(tmp_path / "run").save_tuned_grid(TunedGrid("dpm++2m", 5, TUNED, "trailing", TUNED, 0.0, 0.0, 0.0, n=1))
    run = load_run(tmp_path / "run")
    own = run.config.sample.guidance
    assert plan_sampling(run).tuned and plan_sampling(run, guidance=own).tuned  # the model function it was tuned on
    assert not plan_sampling(run, guidance=own + 1).tuned
    assert not plan_sampling(run, label="circle").tuned and not plan_sampling(run, labels=[0, 1, 1]).tuned
    plan = plan_sampling(run, labels=[0, 1, 1])
    assert plan.n == 3 and plan.labels.tolist() == [0, 1, 1] and plan.label is None and plan.guidance == own
    one = plan_sampling(run, label="circle", n=4)
    assert one.label == 1 and one.labels.tolist() == [1] * 4
    assert one.for_class(0).labels.tolist() == [0] * 4 and one.with_seed(9).seed == 9
    with pytest.raises(PlanError, match="not both"):
        plan_sampling(run, label=0, labels=[0, 1])


def test_a_draw_conditioned_on_itself_without_a_class_uses_the_model_without_a_class(shapes_run, capsys, tmp_path):
    """An observation, a region or known pixels decide the class: p(x | c) mixed in the training
    proportions, each guided towards its class, could not move mass between the classes."""
    import dataclasses

    from denoiselab import cli
    from denoiselab.runs import describe_draw

    run = load_run(shapes_run)
    own = run.config.sample.guidance
    assert own != 0 and run.config.train.label_dropout > 0
    plan = plan_sampling(run, conditioned=True, n=8)
    assert plan.guidance == 0 and "the model without a class (classifier-free guidance 0)" in describe_draw(run, plan)
    assert plan_sampling(run, n=8).guidance == own  # a plain draw: every class in proportion, guided
    assert plan_sampling(run, conditioned=True, label="circle").guidance == own  # a class asked for
    assert plan_sampling(run, conditioned=True, labels=[0, 1]).guidance == own
    assert plan_sampling(run, conditioned=True, guidance=1.5).guidance == 1.5  # a scale asked for
    # A run that never trained without its labels has no model without a class: its own scale.
    run.config = dataclasses.replace(run.config, train=dataclasses.replace(run.config.train, label_dropout=0.0))
    assert plan_sampling(run, conditioned=True).guidance == own
    rc = cli.main(["sample", str(shapes_run), "--observe", "x1=0.5", "--method", "dps", "-n", "4", "--steps", "3", "--out", str(tmp_path / "o.npy")])
    out = capsys.readouterr().out
    assert rc == 0 and "the model without a class" in out, out


def test_a_recipe_says_sample_grid_or_its_older_name_sample_spacing(tmp_path, trained_run):
    assert load_config("quick", ["sample.spacing=karras"]).sample.grid == "karras"
    assert load_config("quick", ["sample.grid=karras"]).sample.spacing == "karras"
    assert 'grid = "logsnr"' in dump_config(load_config("quick"))
    both = tmp_path / "both.toml"
    both.write_text('[sample]\ngrid = "karras"\nspacing = "logsnr"\n')
    with pytest.raises(ConfigError, match="give one"):
        load_config(str(both))
    # A run folder written with the older key loads and samples as before.
    old = tmp_path / "old"
    shutil.copytree(trained_run, old)
    text = (old / "config.toml").read_text()
    assert '\ngrid = "logsnr"' in text
    (old / "config.toml").write_text(text.replace('\ngrid = "logsnr"', '\nspacing = "trailing"'))
    assert load_run(old).config.sample.grid == "trailing" and plan_sampling(load_run(old)).grid == "trailing"
