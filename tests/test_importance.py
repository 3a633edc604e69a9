"""Importance sampling of training times (Nichol & Dhariwal 2021, Sec. 3.3): unbiased, drawn
towards the high-loss bins, and resumed bit for bit."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from denoiselab.config import load_config
from denoiselab.importance import ImportanceSampler
from denoiselab.objectives import diffusion_loss
from denoiselab.schedules import make_schedule
from denoiselab.runs import WEIGHTS
from denoiselab.training import CheckpointError, TrainingInterrupted, train
from denoiselab.weighting import Weighting
from test_training import _rewrite_checkpoint, any_differs, assert_same_tensors, quiet, read_checkpoint, small_config

pytestmark = pytest.mark.usefixtures("one_thread")

CHAIN = make_schedule("linear", 1000)
FLOW = make_schedule("flow", 1000)
ZERO = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
MIN_SNR = Weighting("min-snr", min_snr_gamma=5.0)


def _uniform_time_loss(schedule, x0: torch.Tensor) -> float:
    """The exact uniform-time objective of a zero network predicting x0 under min-SNR weighting:
    E_t[min(SNR(t), 5)] mean(x0^2), the expectation over uniform k (chain) or t (flow, by the
    midpoint rule on 10^6 points)."""
    if schedule.is_chain:
        t = torch.arange(1, schedule.T + 1, dtype=torch.float64) / schedule.T
    else:
        t = (torch.arange(10**6, dtype=torch.float64) + 0.5) / 10**6
    w = MIN_SNR.on_x0(schedule.alpha_at(t), schedule.sigma_at(t))
    return float(w.mean()) * float((x0.double() ** 2).mean())


@pytest.mark.parametrize("schedule", [CHAIN, FLOW], ids=["chain", "flow"])
def test_reweighted_loss_is_unbiased(schedule):
    """The per-term loss min(SNR, 5) |x0|^2 / D is 5x larger near the data than in the noise, so
    the sampler leaves uniform time; the mean of the reweighted batch losses over many draws must
    still be the uniform-time loss.  Tolerance: 4 standard errors of that mean (batches are
    independent given the sampler's state, and each is an unbiased estimate)."""
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    sampler = ImportanceSampler(schedule, bins=20, history=10, uniform=0.05)
    g = torch.Generator().manual_seed(1)
    values = []
    for _ in range(400):
        loss = diffusion_loss(ZERO, x0, schedule, g, prediction="x0", timesteps="importance", weighting=MIN_SNR, time_sampler=sampler)
        values.append(loss.item())
    assert sampler.warmed_up
    p = sampler.probabilities()
    assert float((p / sampler.q).max()) > 1.5 and float((p / sampler.q).min()) < 0.7  # really not uniform
    values = torch.tensor(values[5:], dtype=torch.float64)  # (the first few batches are uniform draws)
    se = float(values.std()) / math.sqrt(len(values))
    exact = _uniform_time_loss(schedule, x0)
    assert abs(float(values.mean()) - exact) < 4 * se, (float(values.mean()), exact, se)
    assert se < 0.01 * exact  # the tolerance is tight enough to catch a missing q / p factor


def test_density_moves_to_the_high_loss_bins():
    """A synthetic loss of 1 in the first 5 of 20 bins (near the data) and 0.1 elsewhere:
    p_b = (1 - u) q_b sqrt(E l^2) / sum + u q_b, and draws follow it."""
    sampler = ImportanceSampler(FLOW, bins=20, history=4, uniform=0.1)
    assert torch.equal(sampler.probabilities(), sampler.q)  # before warm-up: uniform
    high = torch.arange(20) < 5
    level = torch.where(high, 1.0, 0.1).double()
    for _ in range(3):  # 3 passes of every bin: one short of warm-up
        sampler.update(torch.arange(20), level)
    assert not sampler.warmed_up and torch.equal(sampler.probabilities(), sampler.q)
    # one more pass, in a batch with extra, stale values before each bin's last 4 (they must drop out)
    bins = torch.cat([torch.arange(20), torch.arange(20)])
    sampler.update(bins, torch.cat([torch.full((20,), 50.0, dtype=torch.float64), level]))
    sampler.update(torch.arange(20), level)
    sampler.update(torch.arange(20), level)
    sampler.update(torch.arange(20), level)
    assert sampler.warmed_up
    expected = 0.9 * level / level.sum() + 0.1 / 20
    torch.testing.assert_close(sampler.probabilities(), expected)
    draw = sampler.draw(200000, torch.Generator().manual_seed(0))
    share = float((draw.t <= 0.25).double().mean())
    assert share == pytest.approx(float(expected[:5].sum()), abs=0.005)  # 0.765 of the draws on a quarter of time
    torch.testing.assert_close(draw.weights, 1.0 / (20 * expected[draw.bins]))
    edges, density = sampler.density()
    assert density[0] == pytest.approx(20 * float(expected[0])) and density[-1] < 0.5 and abs(float((density * (edges[1:] - edges[:-1])).sum()) - 1) < 1e-12


def test_chain_bins_hold_whole_steps():
    sampler = ImportanceSampler(make_schedule("linear", 7), bins=3, history=2, uniform=0.01)
    draw = sampler.draw(5000, torch.Generator().manual_seed(0))
    k = draw.t * 7
    assert torch.equal(k, k.round()) and set(k.long().tolist()) == set(range(1, 8))
    lo, hi = sampler.step_edges[draw.bins], sampler.step_edges[draw.bins + 1]
    assert ((k > lo) & (k <= hi)).all()
    with pytest.raises(ValueError, match="must be <= the chain's T"):
        ImportanceSampler(make_schedule("linear", 7), bins=8)


def test_images_with_labels():
    """Shape-agnostic: (B, C, H, W) images with labels, velocity target on the flow path."""
    sampler = ImportanceSampler(FLOW, bins=4, history=2)
    x0 = torch.randn(32, 1, 4, 4)
    y = torch.randint(0, 3, (32,))
    seen = []
    model = lambda x, t, y=None: seen.append(y) or torch.zeros_like(x)  # noqa: E731
    loss = diffusion_loss(model, x0, FLOW, torch.Generator().manual_seed(0), y=y, prediction="velocity", timesteps="importance",
                          time_sampler=sampler)  # fmt: skip
    assert torch.isfinite(loss) and seen[0] is y and int(sampler.counts.sum()) == 32


IMPORTANCE = ["train.timesteps=importance", "train.importance_bins=10", "train.importance_history=4"]


def test_resume_with_importance_sampling_is_bitwise_equal(tmp_path):
    cfg = small_config(*IMPORTANCE)
    train(cfg, tmp_path / "A", progress=False, log=quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "B", progress=False, log=quiet, stop_at=20)
    tensors, _ = read_checkpoint(tmp_path / "B")
    assert int(tensors["importance.counts"].min()) >= 4  # warmed up by step 20: the state matters

    def fresh_sampler(t, m):
        return {**t, "importance.history": torch.zeros_like(t["importance.history"]),
                "importance.counts": torch.zeros_like(t["importance.counts"])}, m  # fmt: skip

    shutil.copytree(tmp_path / "B", tmp_path / "forgetful")
    _rewrite_checkpoint(tmp_path / "forgetful", fresh_sampler)
    train(cfg, tmp_path / "B", resume=True, progress=False, log=quiet)
    a, meta_a = read_checkpoint(tmp_path / "A")
    b, meta_b = read_checkpoint(tmp_path / "B")
    assert_same_tensors(a, b)  # model, EMA, optimiser, RNG, losses and the sampler's history
    assert meta_a == meta_b
    # Without the sampler's state the resumed run ends elsewhere: the equality is not vacuous.
    train(cfg, tmp_path / "forgetful", resume=True, progress=False, log=quiet)
    assert any_differs(load_file(str(tmp_path / "forgetful" / WEIGHTS)), load_file(str(tmp_path / "A" / WEIGHTS)))
    # the run's figure: x0-error by noise level beside the learned density, read from the checkpoint
    from denoiselab.runs import load_run
    from denoiselab.runs.figures import render_loss_by_noise

    png = render_loss_by_noise(load_run(tmp_path / "A", device="cpu"), tmp_path / "loss-by-noise.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a checkpoint without the sampler's state does not resume an importance-sampled recipe
    plain = tmp_path / "plain"
    with pytest.raises(TrainingInterrupted):
        train(small_config(), plain, progress=False, log=quiet, stop_at=20)
    with pytest.raises(CheckpointError, match="does not match"):
        train(cfg, plain, resume=True, progress=False, log=quiet)


def test_recipe_builds_the_sampler():
    from denoiselab.builders import objective_from

    obj = objective_from(load_config("spiral-flow", [*IMPORTANCE, "train.importance_uniform=0.2"]))
    sampler = obj.new_time_sampler()
    assert (sampler.n_bins, sampler.history_length, sampler.uniform) == (10, 4, 0.2)
    assert "importance-sampled times (10 bins, 0.2 uniform)" in obj.describe
    assert objective_from(load_config("spiral")).new_time_sampler() is None
