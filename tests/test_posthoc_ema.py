"""Post-hoc EMA (Karras et al. 2024, EDM2): the power-function EMA's closed form, reconstruction
against an EMA tracked directly at the same length, bit-exact resume with snapshots, and the
`ema` command's bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from denoiselab import cli
from denoiselab.config import load_config
from denoiselab.posthoc_ema import TRACKED_SIGMA_RELS, fit_profile, gamma_to_sigma_rel, profile_inner, sigma_rel_to_gamma
from denoiselab.runs.folder import RunFolder
from denoiselab.runs.posthoc_ema import reconstruct
from denoiselab.training import TrainingInterrupted, train
from denoiselab.training import checkpoint as checkpoint_module
from denoiselab.training.ema import PowerEMA

pytestmark = pytest.mark.usefixtures("one_thread")


class Vector(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(d, dtype=torch.float64))


def test_gamma_of_edm2s_two_lengths():
    """EDM2 Sec. 3: sigma_rel 0.05 and 0.10 are gamma 16.97 and 6.94."""
    assert sigma_rel_to_gamma(0.05) == pytest.approx(16.97, abs=0.01)
    assert sigma_rel_to_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    for s in (0.01, 0.07, 0.2, 0.28):
        assert gamma_to_sigma_rel(sigma_rel_to_gamma(s)) == pytest.approx(s, rel=1e-12)


def test_profile_inner_product_is_the_integral():
    tau = np.linspace(0, 100, 400_001)[1:]

    def profile(t, g):
        return np.where(tau < t, (g + 1) * tau**g / t ** (g + 1), 0.0)

    for t_a, g_a, t_b, g_b in [(100, 6.9, 60, 17.0), (40, 3.0, 100, 1.0), (80, 2.0, 80, 5.0)]:
        numeric = np.trapezoid(profile(t_a, g_a) * profile(t_b, g_b), tau)
        assert profile_inner(t_a, g_a, t_b, g_b) == pytest.approx(numeric, rel=1e-3)
        assert profile_inner(t_a, g_a, t_b, g_b) == pytest.approx(profile_inner(t_b, g_b, t_a, g_a), rel=1e-12)


def test_power_ema_weights_each_step_by_the_profiles_mass():
    """With theta_tau the tau-th unit vector, the EMA after T steps is its weights, which are
    the profile's mass on (tau - 1, tau]: (tau^(g+1) - (tau-1)^(g+1)) / T^(g+1)."""
    T = 60
    model = Vector(T)
    ema = PowerEMA(model, 0.1)
    for tau in range(1, T + 1):
        with torch.no_grad():
            model.theta.zero_()
            model.theta[tau - 1] = 1.0
        ema.update(model)
    g = ema.gamma
    k = np.arange(1, T + 1, dtype=np.float64)
    np.testing.assert_allclose(ema.model.theta.numpy(), (k ** (g + 1) - (k - 1) ** (g + 1)) / T ** (g + 1), rtol=1e-9, atol=1e-15)


def track(trajectory: np.ndarray, every: int, lengths) -> tuple[dict, dict]:
    """Run PowerEMAs over a (T, d) trajectory: snapshots of the tracked pair every ``every`` steps,
    and the final EMA of each length in ``lengths`` tracked directly."""
    model = Vector(trajectory.shape[1])
    tracked = [PowerEMA(model, s) for s in TRACKED_SIGMA_RELS]
    direct = {s: PowerEMA(model, s) for s in lengths}
    snapshots = {}
    for step, theta in enumerate(trajectory, start=1):
        with torch.no_grad():
            model.theta.copy_(torch.as_tensor(theta))
        for ema in [*tracked, *direct.values()]:
            ema.update(model)
        if step % every == 0:
            snapshots[step] = [e.model.theta.detach().clone().numpy() for e in tracked]
    return snapshots, {s: e.model.theta.detach().numpy() for s, e in direct.items()}


@pytest.mark.parametrize("length", [0.03, 0.07, 0.1, 0.15, 0.2])
def test_reconstruction_matches_an_ema_tracked_at_that_length(length):
    """On a random walk with drift (10 coordinates, 400 steps, snapshots every 20): the combined
    snapshots against the EMA tracked directly at ``length``.  The difference is within the
    fit's bound (relative profile error x the profile's norm x the trajectory's norm), and small
    beside how far the trajectory moves; at a tracked length (0.1) it is exact."""
    rng = np.random.default_rng(0)
    T, every = 400, 20
    trajectory = np.cumsum(rng.normal(size=(T, 10)) + 0.05, axis=0)
    snapshots, direct = track(trajectory, every, [length])
    steps = sorted(snapshots)
    profile_steps = [s for s in steps for _ in TRACKED_SIGMA_RELS]
    gammas = [sigma_rel_to_gamma(s) for _ in steps for s in TRACKED_SIGMA_RELS]
    gamma = sigma_rel_to_gamma(length)
    fit = fit_profile(profile_steps, gammas, T, gamma)
    stacked = np.stack([v for s in steps for v in snapshots[s]])
    rebuilt = fit.coefficients @ stacked
    diff = np.abs(rebuilt - direct[length])
    bound = fit.relative_error * np.sqrt(profile_inner(T, gamma, T, gamma)) * np.sqrt((trajectory**2).sum(0))
    assert (diff <= bound + 1e-9).all()
    assert diff.max() < 0.02 * trajectory.std(0).min()
    if length in TRACKED_SIGMA_RELS:
        assert fit.relative_error < 1e-6
        np.testing.assert_allclose(rebuilt, direct[length], rtol=1e-9, atol=1e-9)


def small_config(*extra):
    return load_config(
        "quick", ["train.steps=24", "train.checkpoint_every=8", "train.warmup_steps=2", "train.batch_size=32", "model.hidden=16",
                  "train.ema_snapshot_every=4", *extra],
    )  # fmt: skip


def quiet(*args, **kwargs):
    pass


def tensors_of(path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory, one_thread):
    path = tmp_path_factory.mktemp("posthoc") / "run"
    train(small_config(), path, progress=False, log=quiet)
    return path


def test_resume_is_bit_exact_with_snapshots(snapshot_run, tmp_path):
    """Interrupted at step 10 (between snapshots) and resumed: the checkpoint (the tracked EMAs
    included) and every snapshot equal an uninterrupted run's, bit for bit."""
    cfg = small_config()
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "B", progress=False, log=quiet, stop_at=10)
    train(cfg, tmp_path / "B", resume=True, progress=False, log=quiet)
    ref, resumed = RunFolder(snapshot_run), RunFolder(tmp_path / "B")
    assert resumed.ema_snapshot_steps() == ref.ema_snapshot_steps() == [4, 8, 12, 16, 20, 24]
    a, b = tensors_of(ref.checkpoint), tensors_of(resumed.checkpoint)
    assert a.keys() == b.keys() and any(k.startswith("power_ema1.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for step in ref.ema_snapshot_steps():
        sa, sb = tensors_of(ref.ema_snapshot_path(step)), tensors_of(resumed.ema_snapshot_path(step))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_reconstruction_of_a_real_training_matches_a_directly_tracked_ema(snapshot_run, tmp_path, monkeypatch):
    """The same training with the EMA of length 0.07 tracked directly (the EMAs do not change the
    trajectory): the reconstruction from the 0.05 / 0.10 snapshots (6 of them, profile error 2%)
    lands several times closer to it than either stored EMA, in every tensor."""
    monkeypatch.setattr(checkpoint_module, "TRACKED_SIGMA_RELS", (0.07,))
    train(small_config(), tmp_path / "direct", progress=False, log=quiet)
    direct, _ = RunFolder(tmp_path / "direct").read_ema_snapshot(24)
    result = reconstruct(RunFolder(snapshot_run), 0.07)
    assert result.relative_error < 0.03
    stored, _ = RunFolder(snapshot_run).read_ema_snapshot(24)
    for name, value in direct[0].items():
        nearest = min((s[name] - value).abs().max() for s in stored)
        assert (result.state[name] - value).abs().max() <= 0.3 * nearest, name
    # at a tracked length the last snapshot itself
    exact = reconstruct(RunFolder(snapshot_run), 0.10)
    last, _ = RunFolder(snapshot_run).read_ema_snapshot(24)
    for name, value in last[1].items():
        torch.testing.assert_close(exact.state[name], value, rtol=1e-5, atol=1e-6)


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_ema_command_writes_the_weights_and_records_the_length(snapshot_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(snapshot_run, run)
    rc, out, err = run_cli(capsys, "ema", run, "--length", "0.1", "--out", tmp_path / "w.safetensors")
    assert rc == 0, err
    assert "length 0.1 at step 24" in out
    assert "posthoc_ema" not in json.loads((run / "run.json").read_text())
    rc, out, err = run_cli(capsys, "ema", run, "--length", "0.12")
    assert rc == 0, err
    info = json.loads((run / "run.json").read_text())
    assert info["posthoc_ema"]["sigma_rel"] == 0.12 and info["posthoc_ema"]["step"] == 24
    weights = load_file(str(run / "model.safetensors"))
    expected = reconstruct(RunFolder(run), 0.12).state
    assert weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k]) for k in weights)
    rc, out, err = run_cli(capsys, "sample", run, "-n", "8", "--steps", "3", "--out", tmp_path / "s.npy")
    assert rc == 0, err


def test_evaluate_sweeps_ema_lengths_without_writing(snapshot_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(snapshot_run, run)
    before = (run / "model.safetensors").read_bytes()
    rc, out, err = run_cli(capsys, "evaluate", run, "--ema-length", "0.05", "0.1", "-n", "50", "--steps", "3", "--repeats", "1", "--json", "--no-progress")
    assert rc == 0, err
    rows = json.loads(out)["ema"]
    assert [r["ema_length"] for r in rows] == [0.05, 0.1] and rows[0]["w2"] != rows[1]["w2"]
    assert (run / "model.safetensors").read_bytes() == before
    assert_one_line(*run_cli(capsys, "evaluate", run, "--ema-length", "0.1", "0.5")[::2], "EMA length 0.5")


def assert_one_line(rc, err, *words):
    """Exit status 2 and one error line (after any note the command printed first)."""
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in err, err


def test_ema_command_bad_input(snapshot_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(snapshot_run, run)
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.5")[::2], "EMA length 0.5", "reconstruct lengths from")
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.001")[::2], "EMA length 0.001", "profile error", "reconstruct lengths from")
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "-1")[::2], "--length")
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.1", "--out", tmp_path / "w.pt")[::2], "--out")
    assert_one_line(*run_cli(capsys, "ema", tmp_path / "nothing", "--length", "0.1")[::2], "no such run folder")
    folder = RunFolder(run)
    corrupt = folder.ema_snapshot_path(12)
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.1")[::2], "snapshot-00000012", "corrupt")
    corrupt.unlink()
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.1")[::2], "snapshot-00000012", "missing")
    shutil.rmtree(run / "ema")
    assert_one_line(*run_cli(capsys, "ema", run, "--length", "0.1")[::2], "no post-hoc EMA snapshots")
