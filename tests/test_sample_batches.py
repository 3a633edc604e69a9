"""Drawing in batches (issue 25, sampling at scale): every sample has its own seed, so a plan
drawn all at once, in batches of 7 or 64, or as ranges [start, stop) gives the same samples to
the bit: a stochastic sampler, an ODE sampler, classifier-free guidance, gradient guidance,
replacement and twisted SMC (whose K particles per sample are one unit); `sample` and
`evaluate --batch`, with a progress bar over every batch."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from denoiselab import cli, training
from denoiselab.config import load_config
from denoiselab.gradient_guidance import GuidanceCounts
from denoiselab.runs import load_run, plan_sampling, sample
from denoiselab.runs.guided import GuidanceRequest, draw_guided
from denoiselab.runs.guided_smc import draw_smc, observe_twist
from denoiselab.runs.sampling import sample_range
from denoiselab.samplers.fixed_shape import fixed_shape

pytestmark = pytest.mark.usefixtures("one_thread")

BATCHES = (None, 7, 64)  # None: all at once


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, one_thread):
    """A digits run of four optimiser steps (classes, so classifier-free guidance), marked complete."""
    path = tmp_path_factory.mktemp("batches") / "digits"
    cfg = load_config("digits", ["train.steps=4", "model.hidden=8", "model.time_dim=16", "sample.n=4", "sample.steps=3"])
    training.train(cfg, path, progress=False, log=lambda *a, **k: None)
    loaded = load_run(path)
    loaded.folder.mark_complete(loaded.info)
    return path


def _same_for_every_batch(draw):
    """draw(batch) -> (samples, x_T): the same arrays for every batch size in BATCHES."""
    x, x_T = draw(None)
    for batch in BATCHES[1:]:
        xb, x_Tb = draw(batch)
        np.testing.assert_array_equal(xb, x, err_msg=f"batch {batch}")
        assert torch.equal(x_Tb, x_T)
    return x


@pytest.mark.parametrize("sampler", ["ddpm", "dpm++2m"])
def test_a_point_draw_is_the_same_in_any_batch(run, sampler):
    plan = plan_sampling(run, sampler=sampler, n=100, steps=6, tuned=False)
    x = _same_for_every_batch(lambda b: (lambda d: (d.x, d.x_T))(sample(run, plan, batch=b)))
    assert not np.array_equal(x, sample(run, plan.with_seed(plan.seed + 1)).x)  # the seed still matters


def test_an_image_draw_with_classifier_free_guidance_is_the_same_in_any_batch(image_run):
    images = load_run(image_run)
    plan = plan_sampling(images, sampler="ddpm", n=70, steps=3, guidance=2.0, tuned=False)
    assert len(set(plan.labels.tolist())) == 10  # every class in proportion: each batch has its own labels
    _same_for_every_batch(lambda b: (lambda d: (d.x, d.x_T))(sample(images, plan, batch=b)))


@pytest.mark.parametrize(
    "request_, sampler",
    [
        (GuidanceRequest(observe={0: 0.5}, method="dps"), "dpm++2m"),
        (GuidanceRequest(observe={0: 0.5}, method="replace"), "ddpm"),  # its own noise, per sample
        (GuidanceRequest(region="x1 > 0.5"), "euler"),
        (GuidanceRequest(observe={0: 0.5}, method="smc", particles=4), "ddpm"),
    ],
    ids=["dps", "replace", "region", "smc"],
)
def test_a_guided_draw_and_its_reported_cost_are_the_same_in_any_batch(run, request_, sampler):
    plan = plan_sampling(run, sampler=sampler, n=50, steps=5, tuned=False)
    costs = []

    def draw(batch):
        counts = GuidanceCounts()
        drawn = draw_guided(run, plan, request_, counts, batch=batch)
        costs.append((counts.summary(), drawn.evaluations))
        return drawn.x, drawn.x_T

    _same_for_every_batch(draw)
    assert len(set(costs)) == 1, costs  # per sample, not per batch


def test_an_smc_draw_records_the_same_population_in_any_batch(run):
    plan = plan_sampling(run, sampler="ddpm", n=30, steps=8, tuned=False)
    twist = observe_twist(run, torch.tensor([True, False]), torch.tensor([0.5, 0.0]))
    (full, record), (batched, parts) = (draw_smc(run, plan, twist, 5, GuidanceCounts(), batch=b) for b in (None, 7))
    np.testing.assert_array_equal(batched.x, full.x)
    assert torch.equal(parts.pick, record.pick) and torch.equal(parts.final_weights, record.final_weights)
    assert all(torch.equal(a, b) for a, b in zip(parts.ess, record.ess)) and len(parts.ess) == len(record.ess) == plan.steps
    assert parts.resampled == record.resampled and parts.ess_summary() == record.ess_summary()


def test_a_range_of_a_plan_is_the_slice_of_the_full_draw(run):
    """What a process of several draws: samples [start, stop) alone, in any batches."""
    plan = plan_sampling(run, sampler="ddpm", n=90, steps=5, tuned=False)
    full = sample(run, plan)
    shares = [sample_range(run, plan, a, b, batch=16) for a, b in [(0, 45), (45, 90)]]
    np.testing.assert_array_equal(np.concatenate([s.x for s in shares]), full.x)
    np.testing.assert_array_equal(sample_range(run, plan, 31, 32).x, full.x[31:32])
    twist = observe_twist(run, torch.tensor([True, False]), torch.tensor([0.5, 0.0]))
    smc, _ = draw_smc(run, plan, twist, 3, GuidanceCounts())
    part, _ = draw_smc(run, plan, twist, 3, GuidanceCounts(), start=40, stop=61, batch=8)
    np.testing.assert_array_equal(part.x, smc.x[40:61])
    request = GuidanceRequest(observe={0: 0.5}, method="replace")
    guided = draw_guided(run, plan, request, GuidanceCounts())
    np.testing.assert_array_equal(draw_guided(run, plan, request, GuidanceCounts(), start=12, stop=50, batch=9).x, guided.x[12:50])


def test_a_range_outside_the_plan_is_refused_naming_the_plan(run):
    from denoiselab.runs import PlanError

    plan = plan_sampling(run, n=10, tuned=False)
    with pytest.raises(PlanError, match=r"samples \[5, 11\): expected 0 <= start < stop <= n = 10"):
        sample_range(run, plan, 5, 11)
    with pytest.raises(PlanError, match="whole number >= 1 of samples per batch"):
        sample(run, plan, batch=0)


def test_a_fixed_shape_call_gives_a_row_the_same_result_in_any_batch():
    """A model whose output depends on the size of its call (as a kernel's rounding may) gives
    each row one result through fixed_shape, whatever rows share its batch."""

    def shape_dependent(x, t, y=None):
        return x * 2 + x.shape[0] * 1e-3 + t[:, None]

    x, t = torch.randn(50, 2), torch.linspace(0, 1, 50)
    whole = fixed_shape(shape_dependent, 0, 16)(x, t)
    for batch in (1, 7, 20, 50):
        parts = torch.cat([fixed_shape(shape_dependent, a, 16)(x[a : a + batch], t[a : a + batch]) for a in range(0, 50, batch)])
        assert torch.equal(parts, whole)
    assert torch.equal(whole, x * 2 + 16e-3 + t[:, None])  # every call had 16 rows
    assert not torch.equal(shape_dependent(x[:7], t[:7]), whole[:7])  # and without it a batch shows


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_sample_batch_writes_the_same_file_and_its_bar_counts_every_batch(image_run, tmp_path, capsys):
    args = ["sample", image_run, "-n", "10", "--sampler", "ddim", "--eta", "1", "--steps", "3", "--seed", "4"]
    rc, out, _ = _cli(capsys, *args, "--out", tmp_path / "all.npy", "--no-progress")
    assert rc == 0
    rc, out_b, err = _cli(capsys, *args, "--batch", "4", "--out", tmp_path / "b4.npy")
    assert rc == 0 and re.search(r"sample: 100%.* 9/9 ", err), err  # 3 steps of each of 3 batches
    np.testing.assert_array_equal(np.load(tmp_path / "b4.npy"), np.load(tmp_path / "all.npy"))


def test_evaluate_batch_measures_the_same_samples(trained_run, capsys):
    args = ["evaluate", trained_run, "-n", "60", "--steps", "4", "--repeats", "2", "--json", "--no-progress"]
    rc, whole, _ = _cli(capsys, *args)
    rc_b, batched, _ = _cli(capsys, *args, "--batch", "7")
    assert rc == rc_b == 0 and json.loads(batched) == json.loads(whole)


@pytest.mark.parametrize("extra, message", [(["--batch", "0"], "--batch"), (["--batch", "3", "--prompt", "a"], "--batch: applies to draws of -n samples")])
def test_a_bad_batch_is_one_line_and_exit_2(trained_run, tmp_path, capsys, extra, message):
    rc, out, err = _cli(capsys, "sample", trained_run, *extra, "--out", tmp_path / "x.npy")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, err
