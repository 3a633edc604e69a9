"""MeanFlow (meanflow.py, samplers/meanflow.py): the target against the exact average velocity of a
Gaussian-to-Gaussian flow, the Jacobian-vector product against finite differences, the sampler's
exact jumps, resume, and the refusals."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from denoiselab import cli
from denoiselab.config import ConfigError, load_config
from denoiselab.meanflow import average_velocity_target, interval_model, meanflow_loss, sample_interval
from denoiselab.models import ResidualMLP
from denoiselab.runs.folder import WEIGHTS
from denoiselab.choices import JUMP_SAMPLER_NAMES
from denoiselab.samplers import JUMP_SAMPLERS, SAMPLERS, Denoiser
from denoiselab.schedules import flow_schedule

MU, S = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4  # data N(MU, S^2 I); noise N(0, I)


def _mean_std(t):
    """Mean and std of z_t = (1 - t) x + t e, and their time derivatives."""
    t = t[:, None]
    sd = torch.sqrt((1 - t) ** 2 * S**2 + t**2)
    return (1 - t) * MU, sd, -MU.expand(t.shape[0], 2), (-(1 - t) * S**2 + t) / sd


def exact_velocity(z, t):
    """The marginal velocity E[e - x | z_t = z] of the Gaussian flow: v = m' + (s'/s)(z - m)."""
    m, sd, dm, dsd = _mean_std(t)
    return dm + dsd / sd * (z - m)


def exact_average_velocity(z, r, t):
    """u(z, r, t) = (z - z_r) / (t - r), z_r the flow's image of z at time r (quantiles move affinely)."""
    m_t, s_t, _, _ = _mean_std(t)
    m_r, s_r, _, _ = _mean_std(r)
    return (z - (m_r + s_r / s_t * (z - m_t))) / (t - r)[:, None]


def _points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=torch.float64)
    r = t * torch.rand(n, generator=g, dtype=torch.float64)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64) * 1.3
    return z, r, t


def test_the_target_at_the_exact_average_velocity_is_that_velocity_and_the_loss_is_zero():
    z, r, t = _points()
    u, target = average_velocity_target(exact_average_velocity, z, r, t, exact_velocity(z, t))
    exact = exact_average_velocity(z, r, t)
    assert torch.allclose(u, exact) and torch.allclose(target, exact, atol=1e-10, rtol=1e-10)
    assert float(((u - target) ** 2).sum()) < 1e-18
    # A wrong tangent (r moving with t) gives a wrong target without any error: the test above sees it.
    _, dudt_wrong = torch.func.jvp(exact_average_velocity, (z, r, t), (exact_velocity(z, t), torch.ones_like(r), torch.ones_like(t)))
    wrong = exact_velocity(z, t) - (t - r)[:, None] * dudt_wrong
    assert not torch.allclose(wrong, exact, atol=1e-3)


def test_at_r_equal_t_the_target_is_the_velocity_itself():
    z, _, t = _points()
    v = exact_velocity(z, t)
    _, target = average_velocity_target(lambda z, r, t: exact_velocity(z, t), z, t.clone(), t, v)
    assert torch.equal(target, v)


def test_the_jvp_is_the_total_derivative_along_the_flow_by_finite_differences():
    torch.manual_seed(0)
    net = ResidualMLP(2, hidden=32, blocks=2, time_dim=16, fourier=4, interval=True).double()
    fn = interval_model(lambda x, times, y: net(x, times, y))
    z, r, t = _points(16, seed=1)
    v = torch.randn(z.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    u, target = average_velocity_target(fn, z, r, t, v)
    dudt = (v - target) / (t - r)[:, None]
    h = 1e-6
    with torch.no_grad():
        fd = (fn(z + h * v, r, t + h) - fn(z - h * v, r, t - h)) / (2 * h)
    assert torch.allclose(dudt, fd, rtol=1e-5, atol=1e-6)
    # Tangents that forget the velocity, or move r too, are caught by the same comparison.
    for tangent in ((torch.zeros_like(v), torch.zeros_like(r), torch.ones_like(t)), (v, torch.ones_like(r), torch.ones_like(t))):
        _, wrong = torch.func.jvp(fn, (z, r, t), tangent)
        assert not torch.allclose(wrong, fd, rtol=1e-3, atol=1e-3)


def test_the_times_are_ordered_with_the_asked_share_apart():
    r, t = sample_interval(20000, torch.Generator().manual_seed(0), "logit-normal", 0.25)
    assert bool((r <= t).all()) and bool((t <= 1).all()) and bool((r >= 0).all())
    assert abs(float((r < t).double().mean()) - 0.25) < 0.02
    logit = torch.logit(t[r == t])  # the larger of two N(-0.4, 1) draws has mean -0.4 + 1/sqrt(pi)
    assert abs(float(logit.mean()) - (-0.4 + 1 / torch.pi**0.5)) < 0.03


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_the_sampler_jumps_exactly_with_the_exact_average_velocity(steps):
    """z_s = z_t - (t - s) u(z_t, s, t): with the exact u every grid gives the flow's own map."""

    def model_fn(x, times, y=None):
        assert times.shape == (x.shape[0], 2)
        return exact_average_velocity(x, times[:, 1], times[:, 0]) if float(times[0, 1]) < float(times[0, 0]) else exact_velocity(x, times[:, 0])

    x1 = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    times = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    assert JUMP_SAMPLER_NAMES == tuple(JUMP_SAMPLERS) and not set(JUMP_SAMPLERS) & set(SAMPLERS)
    x0 = JUMP_SAMPLERS["meanflow"](Denoiser(model_fn, flow_schedule(), "velocity"), x1, times)
    m1, s1, _, _ = _mean_std(torch.ones(1, dtype=torch.float64))
    assert torch.allclose(x0, MU + S / s1 * (x1 - m1), atol=1e-12)


def test_the_loss_trains_and_is_finite():
    torch.manual_seed(0)
    net = ResidualMLP(2, hidden=16, blocks=1, time_dim=8, interval=True)
    x0 = torch.randn(64, 2)
    loss = meanflow_loss(net, x0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.interval_embed.parameters())


MEANFLOW = ["schedule.kind=flow", "model.prediction=velocity", "train.objective=meanflow", "train.timesteps=logit-normal",
            "sample.sampler=meanflow", "sample.grid=time-uniform", "sample.steps=1"]  # fmt: skip


@pytest.mark.slow
def test_resume_of_a_meanflow_run_is_bit_exact(tmp_path, one_thread):
    from conftest import assert_resumes_bit_exactly

    cfg = load_config("quick", [*MEANFLOW, "train.steps=30", "train.checkpoint_every=10", "model.hidden=16"])
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12)
    assert any(k.startswith("interval_embed") for k in load_file(str(tmp_path / "A" / WEIGHTS)))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.objective=meanflow"], "needs schedule.kind = flow"),
        (["schedule.kind=flow", "model.prediction=velocity", "train.objective=meanflow", "train.coupling=ot"], "independent coupling"),
        (["schedule.kind=flow", "model.prediction=velocity", "sample.sampler=meanflow"], "needs train.objective = meanflow"),
        (["train.meanflow_share=0.5"], "train.objective = meanflow"),
        (["schedule.kind=flow", "model.prediction=velocity", "train.objective=shortcut", "model.precondition=edm"], "network of two times takes none"),
    ],
)
def test_recipes_that_cannot_be_meanflow_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quick", overrides)


def test_the_meanflow_sampler_on_a_one_time_run_is_one_line(trained_run, tmp_path, capsys):
    rc = cli.main(["sample", str(trained_run), "--sampler", "meanflow", "-n", "10", "--out", str(tmp_path / "x.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "average velocity" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_meanflow_run_is_a_run_like_any_other(tmp_path, one_thread, capsys):
    """Trained and measured by `train` (its figures drawn once, by `plot`), then sampled in 1, 2
    and 4 jumps, evaluated, plotted, and its paths drawn; euler reads the network at r = t."""
    from conftest import TINY, set_args

    out = tmp_path / "mf"
    assert cli.main(["train", "--config", "spiral-meanflow", *set_args(TINY), "--set", "sample.steps=1", "--out", str(out), "--no-progress", "--no-figures"]) == 0
    for steps in ("1", "2", "4"):
        assert cli.main(["sample", str(out), "--steps", steps, "-n", "50", "--out", str(tmp_path / f"s{steps}.npy")]) == 0
    assert "meanflow, 2 steps" in capsys.readouterr().out
    assert cli.main(["sample", str(out), "--sampler", "euler", "--steps", "3", "-n", "50", "--out", str(tmp_path / "e.npy")]) == 0
    assert cli.main(["evaluate", str(out), "--steps", "2", "-n", "100", "--json"]) == 0
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "samples.png").is_file() and (out / "trajectory.gif").is_file()
    assert cli.main(["paths", str(out), "--out", str(tmp_path / "paths.png")]) == 0
    assert cli.main(["likelihood", str(out), "-n", "20", "--steps", "4"]) == 0
    # Gradient guidance steers one-time samplers; the jump sampler and its tuning are refused in one line.
    from conftest import assert_refused_in_one_line

    guided = tmp_path / "g.png"
    for guidance in (["--region", "x1 > 0"], ["--observe", "x1=0.1", "--method", "dps"]):
        assert_refused_in_one_line(["sample", str(out), *guidance, "-n", "5", "--out", str(guided)], capsys, "gradient guidance cannot steer", guided)
    assert cli.main(["sample", str(out), "--region", "x1 > 0", "--sampler", "euler", "--steps", "3", "-n", "5", "--out", str(guided)]) == 0
    assert_refused_in_one_line(["tune-steps", str(out), "--nfe", "2"], capsys, "tune-steps tunes the time grid", out / "no-such-file")


# -- shortcut models (shortcut.py), on the same interval network and the same Gaussian flow ----------


def _exact_model(x, times, y=None):
    t, r = times[:, 0], times[:, 1]
    apart = r < t
    out = exact_velocity(x, t)
    if bool(apart.any()):
        out = torch.where(apart[:, None], exact_average_velocity(x, torch.where(apart, r, t - 1), t), out)
    return out


def test_two_half_steps_of_the_exact_average_velocity_are_the_whole_step():
    from denoiselab.shortcut import sample_half_steps, two_half_steps_target

    t, d = sample_half_steps(64, torch.Generator().manual_seed(0), levels=128)
    z = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    u_fn = interval_model(_exact_model)
    target = two_half_steps_target(u_fn, z, t, d)
    assert torch.allclose(target, exact_average_velocity(z, t - 2 * d, t), atol=1e-10)
    # The second half step must start where the first ends: from z itself it is wrong.
    wrong = (u_fn(z, t - d, t) + u_fn(z, t - 2 * d, t - d)) / 2
    assert not torch.allclose(wrong, target, atol=1e-3)
    assert bool((t - 2 * d >= 0).all()) and set(d.tolist()) == {2.0**-k for k in range(1, 8)}
    # The finest level's base case: two Euler steps of the velocity itself, read at step 0.
    base = two_half_steps_target(u_fn, z, t, d, torch.ones_like(d, dtype=torch.bool))
    v = exact_velocity(z, t)
    assert torch.allclose(base, (v + exact_velocity(z - d[:, None] * v, t - d)) / 2, atol=1e-12)


def test_the_self_consistency_loss_is_zero_at_the_exact_average_velocity():
    from denoiselab.shortcut import shortcut_loss

    x0 = MU + S * torch.randn(256, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert float(shortcut_loss(_exact_model, x0, torch.Generator().manual_seed(3), share=1.0, levels=2**12)) < 1e-7  # only the base case (Euler, O(d)) is inexact
    # The instantaneous velocity at every step size is not self-consistent on a curved flow.
    velocity_only = lambda x, times, y=None: exact_velocity(x, times[:, 0])  # noqa: E731
    assert float(shortcut_loss(velocity_only, x0, torch.Generator().manual_seed(3), share=1.0, levels=2**12)) > 1e-3


@pytest.mark.slow
def test_resume_of_a_shortcut_run_is_bit_exact(tmp_path, one_thread):
    from conftest import assert_resumes_bit_exactly

    overrides = [o.replace("meanflow", "shortcut") if o.startswith("train.objective") else o for o in MEANFLOW]
    cfg = load_config("quick", [*overrides, "train.steps=30", "train.checkpoint_every=10", "model.hidden=16"])
    assert_resumes_bit_exactly(cfg, tmp_path, stop_at=12)
