"""Tuned time grids (denoiselab.tuning, `denoiselab tune-steps`): on the exact mixture denoiser
(a DDPM chain and the flow path) and on a trained run through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from denoiselab import cli
from denoiselab.oracles import ring_mixture, two_d_mixture
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.runs.folder import TUNED_GRIDS, RunError, RunFolder
from denoiselab.tuning import STOP_CALLS, STOP_CONVERGED, STOP_SECONDS, TuningError, steps_for, tune_grid

MIX = two_d_mixture()
SCHED = make_schedule("linear", 1000)
FLOW = flow_schedule(1000)
EXACT = Denoiser(MIX.eps_model(SCHED), SCHED)


@pytest.fixture(autouse=True)
def single_thread(one_thread):  # conftest's session fixture: small tensors, a shared 2-core machine
    yield


def check_tuned(result, schedule, steps):
    g = torch.tensor(result.grid, dtype=torch.float64)
    assert len(g) == steps + 1 and g[0] == 1.0 and g[-1] == 0.0
    assert bool((g.diff() < 0).all())  # strictly decreasing
    assert result.improved and result.error < result.start_error  # held-out noise: strictly better than the start
    if schedule.is_chain:  # on the chain's grid steps, where a network was trained
        assert torch.allclose(g * schedule.T, (g * schedule.T).round(), atol=1e-9)


def test_tuned_grid_beats_the_best_named_grid_on_held_out_noise():
    result = tune_grid(EXACT, "dpm++2m", 4, shape=(2,), n=400, seed=3, max_calls=300, max_seconds=600)
    check_tuned(result, SCHED, 4)
    assert result.start in ("trailing", "logsnr", "karras", "time-uniform") and result.notes == []
    assert result.error < 0.8 * result.start_error  # the search found a clearly better grid
    assert result.objective_calls == 300 and result.stopped == STOP_CALLS  # the call budget, not the 600 s, ended the search
    # The reported number is reproducible from the grid and fresh noise (not the search's own):
    # the tuned grid also beats its start on a third draw, judged against a fine ODE solve.
    xT = torch.randn(1000, 2, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    ref = SAMPLERS["dpm++3m"](EXACT, xT, time_grid(SCHED, 200, "logsnr"))

    def err(grid):
        return float((SAMPLERS["dpm++2m"](EXACT, xT, grid) - ref).norm(dim=1).mean())

    assert err(result.grid) < err(result.start_grid)


def test_the_reported_errors_are_mean_distances_on_the_held_out_draw():
    # The search's objective and its report: the mean over starting points of the Euclidean
    # distance to the 200-step reference (not the RMS, which a few points sent to another mode
    # dominate), on the second draw of the seeded generator, which the search never sees.
    result = tune_grid(EXACT, "ddim", 3, shape=(2,), n=300, seed=5, max_calls=50, max_seconds=600)
    gen = torch.Generator().manual_seed(5)
    torch.randn(300, 2, generator=gen, dtype=torch.float64)  # the search's draw
    held = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    ref = SAMPLERS["dpm++3m"](EXACT, held, time_grid(SCHED, 200, "logsnr"))

    def mean_distance(grid):
        return float((SAMPLERS["ddim"](EXACT, held, grid) - ref).norm(dim=1).mean())

    assert result.error == pytest.approx(mean_distance(result.grid), rel=1e-9)
    assert result.start_error == pytest.approx(mean_distance(result.start_grid), rel=1e-9)


@pytest.mark.slow
def test_tuned_grid_brings_narrow_modes_to_the_converged_log_density():
    # The ring's eight modes of std 0.05 (oracles.ring_mixture): at 10 evaluations the best named
    # grid leaves DPM-Solver++(3M) 0.35 below the converged solve in mean log-density.  800 calls
    # of the search on the mean distance bring it to +0.017 (1500 calls: +0.007); on the mean
    # squared distance, which the few points a grid change sends to another mode dominate, the
    # search passes +0.03 at 600 calls and moves away to +0.15 by 1500.
    ring = ring_mixture()
    denoise = Denoiser(ring.eps_model(SCHED), SCHED)
    result = tune_grid(denoise, "dpm++3m", 10, shape=(2,), n=1000, seed=1, max_calls=800, max_seconds=600)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(123), dtype=torch.float64)  # neither draw of the search
    ends = SCHED.half_log_snr_at(torch.tensor([1.0, 1e-5], dtype=torch.float64))
    fine = torch.cat([SCHED.time_at_half_log_snr(torch.linspace(float(ends[0]), float(ends[1]), 300, dtype=torch.float64)), torch.zeros(1, dtype=torch.float64)])
    fine[0] = 1.0
    log_p_converged = ring.log_prob(SAMPLERS["dpm++3m"](denoise, x_T, fine))

    def gap(grid):
        return float((ring.log_prob(SAMPLERS["dpm++3m"](denoise, x_T, grid)) - log_p_converged).mean())

    assert abs(gap(result.start_grid)) > 0.25
    assert abs(gap(result.grid)) < 0.05


def test_a_search_ends_by_its_call_budget_or_by_converging_and_says_which():
    for budget in (1, 7, 40):
        result = tune_grid(EXACT, "ddim", 3, shape=(2,), n=100, seed=2, max_calls=budget)
        assert (result.objective_calls, result.stopped) == (budget, STOP_CALLS)
    # With a budget it never reaches, the search stops when its narrowest restart finds nothing.
    result = tune_grid(EXACT, "ddim", 3, shape=(2,), n=100, seed=2, max_calls=100_000)
    assert result.stopped == STOP_CONVERGED and 40 < result.objective_calls < 100_000
    # The same request gives the same grid: the budget is sampler runs, not seconds.
    again = tune_grid(EXACT, "ddim", 3, shape=(2,), n=100, seed=2, max_calls=100_000)
    assert (again.grid, again.objective_calls) == (result.grid, result.objective_calls)


def test_the_reference_solves_are_not_part_of_the_time_cap():
    # A cap shorter than the two 200-step reference solves still lets the search start: the
    # cap counts the search's own time.  1 microsecond: the first call is already past it.
    result = tune_grid(EXACT, "ddim", 3, shape=(2,), n=100, max_calls=50, max_seconds=1e-6)
    assert result.stopped == STOP_SECONDS and result.objective_calls == 0
    assert result.reference_seconds > 0


def test_a_search_that_cannot_improve_returns_its_start_grid_not_a_tuned_one():
    # Every grid takes a model that predicts x0 = 0 exactly to 0 (DDIM's last step returns the
    # x0 prediction), as does the reference: every error is 0 and no grid is better than the start.
    flat = Denoiser(lambda x, t, y=None: torch.zeros_like(x), SCHED, "x0")
    result = tune_grid(flat, "ddim", 4, shape=(2,), n=50, max_calls=30)
    assert not result.improved and result.grid == result.start_grid and result.error == result.start_error == 0.0
    assert result.objective_calls == 30 and "no grid better" in result.notes[0]
    # No search at all (the time cap passed before the first call): the start grid, not tuned.
    result = tune_grid(EXACT, "dpm++2m", 4, shape=(2,), n=100, max_calls=50, max_seconds=1e-6)
    assert not result.improved and result.grid == result.start_grid


def test_tuning_works_on_the_flow_path_with_a_velocity_model():
    result = tune_grid(Denoiser(MIX.denoiser(FLOW, "velocity"), FLOW, "velocity"), "unipc", 4, shape=(2,), n=300, max_calls=150, max_seconds=600)
    check_tuned(result, FLOW, 4)


def test_a_given_start_grid_and_two_call_samplers():
    result = tune_grid(EXACT, "heun", 5, shape=(2,), n=200, start=[1.0, 0.5, 0.1, 0.0], max_calls=100, max_seconds=600)
    check_tuned(result, SCHED, 3)
    assert result.start == "given" and result.start_grid == [1.0, 0.5, 0.1, 0.0]
    with pytest.raises(TuningError, match="takes 3 steps"):
        tune_grid(EXACT, "heun", 5, shape=(2,), n=50, start=[1.0, 0.1, 0.0])


@pytest.mark.parametrize("sampler,nfe,message", [
    ("ddim", 1, "at least 2"),
    ("heun", 2, "at least 3"),
    ("dpm++2s", 6, "odd"),
    ("ddpm", 5, "stochastic"),
    ("nope", 5, "unknown sampler"),
])
def test_steps_for_refuses(sampler, nfe, message):
    with pytest.raises(TuningError, match=message):
        steps_for(sampler, nfe)


def test_steps_for_two_call_samplers():
    assert steps_for("dpm++2s", 7) == 4 and steps_for("unipc", 7) == 7


def test_file_round_trip_and_corrupt_files(tmp_path):
    result = tune_grid(EXACT, "ddim", 3, shape=(2,), n=100, max_calls=30, max_seconds=600)
    folder = RunFolder(tmp_path)
    folder.save_tuned_grid(result)
    assert folder.tuned_grid("ddim", 3) == result.grid
    assert folder.tuned_grid("ddim", 4) is None and RunFolder(tmp_path / "none").tuned_grid("ddim", 3) is None
    path = tmp_path / TUNED_GRIDS
    data = json.loads(path.read_text())
    data["grids"]["ddim/3"]["grid"] = [1.0, 0.2, 0.5, 0.0]
    path.write_text(json.dumps(data))
    with pytest.raises(RunError, match="strictly decreasing"):
        folder.read_tuned_grids()
    path.write_text("{not json")
    with pytest.raises(RunError, match="cannot be read as JSON"):
        folder.read_tuned_grids()


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_tune_steps_then_sample_and_evaluate_use_it(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # the shared run stays read-only
    rc, out, err = run_cli(capsys, "tune-steps", run, "--sampler", "dpm++2m", "--nfe", "3", "-n", "200", "--max-calls", "60")
    assert rc == 0, err
    assert "held-out" in out and TUNED_GRIDS in out
    grid = RunFolder(run).tuned_grid("dpm++2m", 3)
    assert grid is not None and grid[0] == 1.0 and grid[-1] == 0.0
    rc, out, err = run_cli(capsys, "sample", run, "--sampler", "dpm++2m", "--steps", "3", "-n", "50", "--out", tmp_path / "s.npy")
    assert rc == 0, err
    assert "tuned grid" in out and "3 model evaluations" in out
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    rc, out, err = run_cli(capsys, "evaluate", run, "--sampler", "dpm++2m", "--steps", "3", "-n", "50", "--repeats", "2", "--json")
    report = json.loads(out)
    assert rc == 0 and report["tuned_grid"] is True and report["grid"] == grid and report["evaluations"] == 3
    # A named grid asked for wins over the tuned one; another count has no tuned grid.
    rc, out, _ = run_cli(capsys, "sample", run, "--sampler", "dpm++2m", "--steps", "3", "--grid", "logsnr", "-n", "20", "--out", tmp_path / "t.npy")
    assert rc == 0 and "logsnr grid" in out and "tuned" not in out
    rc, out, _ = run_cli(capsys, "sample", run, "--sampler", "dpm++2m", "--steps", "4", "-n", "20", "--out", tmp_path / "u.npy")
    assert rc == 0 and "tuned" not in out
    # A corrupt file: one line naming it, exit 2.
    (run / TUNED_GRIDS).write_text("[1, 2")
    rc, out, err = run_cli(capsys, "sample", run, "--sampler", "dpm++2m", "--steps", "3", "-n", "20", "--out", tmp_path / "v.npy")
    assert rc == 2 and err.count("\n") == 1 and TUNED_GRIDS in err and "Traceback" not in err


def test_cli_tune_steps_prints_its_calls_and_saves_nothing_when_the_search_did_not_improve(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    rc, out, err = run_cli(capsys, "tune-steps", run, "--sampler", "dpm++2m", "--nfe", "3", "-n", "200", "--max-calls", "60")
    assert rc == 0, err
    assert out.startswith("60 search calls (the budget of --max-calls)") and "written to" in out
    saved = (run / TUNED_GRIDS).read_bytes()
    # A cap of a microsecond: no search call; exit 0 (the search ran and found the start best),
    # one line saying nothing was saved, and the file as it was.
    rc, out, err = run_cli(capsys, "tune-steps", run, "--sampler", "dpm++2m", "--nfe", "3", "-n", "100", "--max-seconds", "0.000001")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("0 search calls (the --max-seconds cap)")
    assert len(lines) == 2 and lines[1].startswith("no tuned grid saved:") and "nothing written to" in lines[1] and "sample and evaluate use it" not in out
    assert (run / TUNED_GRIDS).read_bytes() == saved
    rc, out, err = run_cli(capsys, "tune-steps", run, "--sampler", "unipc", "--nfe", "3", "-n", "100", "--max-seconds", "0.000001")
    assert rc == 0 and (run / TUNED_GRIDS).read_bytes() == saved and RunFolder(run).tuned_grid("unipc", 3) is None


@pytest.mark.parametrize("argv,needle", [
    (["--sampler", "ddim", "--nfe", "1"], "--nfe 1"),
    (["--sampler", "heun", "--nfe", "4"], "odd"),
    (["--sampler", "ddim", "--nfe", "3", "--start", "1,0.2,0.5,0"], "strictly decreasing"),
    (["--sampler", "ddim", "--nfe", "3", "--start", "leading"], "does not start at t = 1"),
    (["--sampler", "ddpm", "--nfe", "3"], "stochastic"),
    (["--sampler", "ddim", "--nfe", "3", "--max-calls", "0"], "--max-calls"),
    (["--sampler", "ddim", "--nfe", "3", "--max-seconds", "0"], "--max-seconds"),
])
def test_cli_tune_steps_bad_input(trained_run, capsys, argv, needle):
    rc, _, err = run_cli(capsys, "tune-steps", trained_run, *argv)
    assert rc == 2 and err.count("\n") == 1 and needle in err, err
    assert not (trained_run / TUNED_GRIDS).exists()
