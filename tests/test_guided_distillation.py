"""Distilling a teacher with classes (Meng et al. 2023, "On Distillation of Guided Diffusion
Models", at one fixed scale w): the student learns the teacher through classifier-free guidance at
the teacher's sample.guidance, a dropped label (-1) learns the unconditional teacher, and the
student, whose conditional branch is then the guided teacher, samples at guidance 1."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from denoiselab import cli
from denoiselab.builders import objective_from
from denoiselab.guidance import NO_LABEL
from denoiselab.runs import load_run
from denoiselab.training.distill import consistency_config, progressive_config
from denoiselab.training.teacher import with_teacher

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def guided_teacher(shapes_run, tmp_path_factory):
    """The shared conditional run with sample.guidance 3 in its recipe (the scale it teaches at)."""
    copy = tmp_path_factory.mktemp("guided") / "teacher"
    shutil.copytree(shapes_run, copy)
    recipe = copy / "config.toml"
    text = recipe.read_text()
    assert "\nguidance = 1.0\n" in text
    recipe.write_text(text.replace("\nguidance = 1.0\n", "\nguidance = 3.0\n"))
    return copy


@pytest.mark.parametrize("make", [lambda t: consistency_config(t, 10), lambda t: progressive_config(t, 10, 1)], ids=["consistency", "progressive"])
def test_the_student_learns_the_guided_teacher_and_its_null_label_the_unconditional_one(guided_teacher, make):
    teacher = load_run(guided_teacher)
    cfg = make(teacher)
    objective = with_teacher(cfg, objective_from(cfg), CPU)
    w = teacher.config.sample.guidance
    assert w == 3.0 and teacher.num_classes == 2 and objective.teacher_guidance == w
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(64, 2, generator=g), torch.rand(64, generator=g) * 0.9 + 0.05
    y = torch.tensor([0, 1, NO_LABEL, 1] * 16)
    net = teacher.model
    with torch.no_grad():
        cond, uncond = net(x, t, y), net(x, t, torch.full_like(y, NO_LABEL))
        got = objective.teacher_fn(x, t, y)
    # Guidance's combination row by row; a dropped label is the unconditional teacher exactly.
    expected = uncond + w * (cond - uncond)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[y == NO_LABEL], uncond[y == NO_LABEL], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[y >= 0], cond[y >= 0], atol=1e-4)  # guided, not merely conditional
    # The student keeps the classes and samples its conditional branch, the guided teacher, at 1.
    assert cfg.data.classes == teacher.config.data.classes and cfg.sample.guidance == 1.0


def test_a_distilled_student_with_classes_trains_and_samples_each_class_in_one_evaluation(shapes_run, tmp_path, capsys):
    out = tmp_path / "student"
    assert cli.main(["distill", str(shapes_run), "--method", "consistency", "--steps", "20", "--out", str(out), "--no-progress"]) == 0
    student = load_run(out)
    assert student.num_classes == 2 and student.config.train.teacher == str(shapes_run.resolve())
    capsys.readouterr()
    assert cli.main(["sample", str(out), "--label", "circle", "-n", "50", "--out", str(tmp_path / "c.npy"), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["evaluations"] == 1, report


def test_a_teacher_that_cannot_teach_with_classes_is_one_line_and_exit_2(shapes_run, tmp_path, capsys, tmp_path_factory):
    # Reflow's pairs carry no class: refused, naming the methods that work.
    rc = cli.main(["distill", str(shapes_run), "--method", "reflow", "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "has classes" in err and "consistency or progressive" in err, err
    # A teacher with classes but no unconditional branch has nothing to guide with.
    from conftest import train_tiny

    no_dropout = train_tiny(tmp_path_factory, "shapes", "nodrop", ["train.steps=20", "model.hidden=16", "sample.n=100", "sample.steps=3", "train.label_dropout=0"])
    capsys.readouterr()
    rc = cli.main(["distill", str(no_dropout), "--method", "consistency", "--out", str(tmp_path / "c"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "label dropout" in err, err
