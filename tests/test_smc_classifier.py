"""Twisted SMC with a classifier's twist (smc.classifier_twist): K = 1 is classifier guidance's
DDPM chain, the exact classifier of the mixture oracle against its exact class-conditional, and
`sample --classifier-scale S --method smc` with its one-line errors."""

from __future__ import annotations

import pytest
import torch

from denoiselab import cli
from denoiselab.config import load_config
from denoiselab.gradient_guidance import classifier_guidance
from denoiselab.oracles import labelled_mixture
from denoiselab.samplers import Denoiser, sample_ddpm, time_grid
from denoiselab.schedules import make_schedule
from denoiselab.smc import classifier_twist, sample_smc
from denoiselab.training import train

LABEL = 0  # class 0 of labelled_mixture: its components 0 and 1, weights 0.3 and 0.2


@pytest.fixture(scope="module")
def oracle(one_thread):
    mix, schedule = labelled_mixture(), make_schedule("linear", 1000)
    return mix, schedule, mix.denoiser(schedule, "eps"), mix.classifier(schedule)


def component_error(mix, x: torch.Tensor) -> float:
    """The L1 distance between the shares of samples nearest each component's mean and the
    exact class-conditional's component weights (0.6, 0.4, 0, 0)."""
    nearest = ((x[:, None, :] - mix.means[None]) ** 2).sum(-1).argmin(1)
    share = torch.bincount(nearest, minlength=len(mix.means)).double() / len(x)
    truth = mix.weights * (mix.labels == LABEL)
    return float((share - truth / truth.sum()).abs().sum())


def smc_samples(oracle, particles: int, reads: str, n: int = 1000, steps: int = 20) -> torch.Tensor:
    mix, schedule, model, classifier = oracle
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(n * particles, 2, generator=g, dtype=torch.float64)
    twist = classifier_twist(classifier, torch.full((n * particles,), LABEL), 1.0, reads=reads)
    return sample_smc(Denoiser(model, schedule, "eps"), x_T, time_grid(schedule, steps, "logsnr"), twist=twist, particles=particles, generator=g)


def test_one_particle_is_the_classifier_guided_ddpm_chain(oracle):
    mix, schedule, model, classifier = oracle
    times = time_grid(schedule, 20, "logsnr").tolist()
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    guided = Denoiser(classifier_guidance(model, classifier, 2.0, schedule, "eps", label=LABEL), schedule, "eps")
    steps_ddpm, steps_smc = [], []
    sample_ddpm(guided, x_T, times, generator=torch.Generator().manual_seed(4), on_step=steps_ddpm.append)
    twist = classifier_twist(classifier, torch.full((64,), LABEL), 2.0)
    x = sample_smc(Denoiser(model, schedule, "eps"), x_T, times, twist=twist, particles=1,
                   generator=torch.Generator().manual_seed(4), on_step=steps_smc.append)  # fmt: skip
    assert len(steps_ddpm) == len(steps_smc) == len(times) - 1
    for a, b in zip(steps_ddpm[:-1], steps_smc[:-1]):
        torch.testing.assert_close(a.x_next, b.x_next, rtol=1e-9, atol=1e-9)
    # The last step is the model's own estimate (the twist's ending only weights it).
    last = steps_smc[-1]
    torch.testing.assert_close(x, Denoiser(model, schedule, "eps")(last.x_t, last.t).x0)


def test_the_exact_classifier_reaches_the_exact_class_conditional_and_the_x0_twist_error_falls_with_k(oracle):
    mix = oracle[0]
    # The noise-conditional classifier is p(y | x_t) itself, TDS's optimal twist: few particles
    # suffice (n = 1000: the Monte Carlo error of the shares is about 0.03 in this L1 distance).
    assert component_error(mix, smc_samples(oracle, 16, "x_t")) < 0.1
    # TDS's twist read on x0_hat (the classifier of clean data) is crude early on: one particle
    # (DPS-like guidance by the classifier) misses the class's balance, the weights correct it,
    # slowly (the limit, the 20-step chain's own conditional, is about 0.02 off; BENCHMARKS.md).
    errors = {k: component_error(mix, smc_samples(oracle, k, "x0", n=500)) for k in (1, 8, 64)}
    assert errors[1] > 0.3
    assert errors[8] < errors[1] and errors[64] < 0.6 * errors[1]


def test_the_ending_weights_by_the_classifier_on_the_sample_over_the_last_twist(oracle):
    mix, schedule, model, classifier = oracle
    x0 = torch.tensor([[-1.5, 0.1], [1.4, 0.0], [0.2, -1.2]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    twist = classifier_twist(classifier, labels, 2.0)
    t = torch.full((3,), 0.05, dtype=torch.float64)
    loss_last = twist.loss(x0, t)
    exact = mix.class_log_posterior(x0, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(loss_last, -2.0 * mix.class_log_posterior(x0, schedule.alpha_at(t), schedule.sigma_at(t)).gather(1, labels[:, None])[:, 0])
    same, log_w = twist.finish(x0, loss_last)
    assert torch.equal(same, x0)
    # log p(y | x_0)^s - log p~_{t_{N-1}}: the exact classifier at t = 0 over the last twist.
    torch.testing.assert_close(log_w, 2.0 * exact.gather(1, labels[:, None])[:, 0] + loss_last)


def test_a_twist_reads_x_t_or_x0_only(oracle):
    with pytest.raises(ValueError, match="reads"):
        classifier_twist(oracle[3], torch.zeros(2, dtype=torch.long), reads="eps")


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classified_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("smc-classifier") / "points"
    cfg = load_config("quick", ["data.classes=moons,circle", "data.n=200", "train.steps=10", "model.hidden=16"])
    train(cfg, out, progress=False, log=lambda *a, **k: None)
    assert cli.main(["train-classifier", str(out), "--steps", "5", "--hidden", "16", "--no-progress"]) == 0
    return out


def _error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_sample_classifier_guidance_by_smc(classified_run, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "c.npy"
    args = ["sample", str(classified_run), "--label", "1", "--classifier-scale", "2", "--method", "smc", "--particles", "4", "-n", "6", "--steps", "5", "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "classifier guidance towards class circle, scale 2 by twisted SMC, 4 particles" in printed
    assert "SMC: 4 particles per sample" in printed and "20 model evaluations per sample" in printed
    assert "20 classifier/loss gradients" in printed and "0 backward passes through the model" in printed
    # The same seed, the same samples; K = 1 is classifier guidance's DDPM chain but for the last step.
    again = tmp_path / "d.npy"
    assert cli.main([*args[:-1], str(again)]) == 0
    import numpy as np

    assert np.array_equal(np.load(out), np.load(again))


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--observe", "x1=0.5"], "smc twists by one condition"),
        (["--particles", "0"], "--particles"),
        (["--sampler", "dpm++2m"], "--sampler dpm++2m: --method smc weights particles"),
    ],
)
def test_classifier_smc_bad_input_is_one_line(classified_run, tmp_path, capsys, extra, expected):
    capsys.readouterr()
    args = ["sample", str(classified_run), "--label", "1", "--classifier-scale", "2", "--method", "smc", "-n", "4", "--steps", "3", "--out", str(tmp_path / "x.npy"), *extra]
    assert cli.main(args) == 2
    assert expected in _error_line(capsys.readouterr().err)
