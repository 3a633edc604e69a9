"""The playground samples on the grid it is asked for: a named grid is the library's time_grid,
and a run's tuned grid (tuned_grids.json) is used where one fits, and said so in the reply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from denoiselab import load_config, train
from denoiselab.runs import load_run, sample_points
from denoiselab.samplers import GRIDS, time_grid
from denoiselab.serve.app import create_app
from denoiselab.serve.payloads import decode_panel
from denoiselab.runs.folder import TUNED_GRIDS, RunFolder
from denoiselab.tuning import TunedGrid

TINY = ["train.steps=20", "model.hidden=16", "data.n=300", "schedule.T=100", "sample.steps=5", "sample.n=50"]
# Hand-made grids (strictly decreasing, ending at 0): what tune-steps writes, without the search.
TUNED = {("dpm++2m", 5): [1.0, 0.55, 0.21, 0.07, 0.02, 0.0], ("heun", 5): [1.0, 0.3, 0.05, 0.0]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("grid-runs")
    train(load_config("quick", TINY), root / "tiny", progress=False, log=lambda *_: None)
    for (sampler, evaluations), grid in TUNED.items():
        RunFolder(root / "tiny").save_tuned_grid(TunedGrid(sampler, evaluations, grid, "trailing", grid, 0.0, 0.0, 0.0, n=1))
    return root / "tiny"


@pytest.fixture(scope="module")
def client(run_dir):
    with TestClient(create_app(run_dir.parent, job_threads=1, finish_runs=False)) as c:
        yield c


def _sample(client, **body):
    r = client.post("/api/runs/tiny/sample", json={"n": 20, "seed": 3, **body})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("sampler", ["dpm++2m", "ipndm", "unipc"])
def test_a_named_grid_is_the_grid_sampled_on(client, run_dir, sampler):
    schedule = load_run(run_dir).schedule
    for grid in GRIDS:
        want = np.round(time_grid(schedule, 6, grid).numpy(), 6)
        for frames in (True, False):
            body = _sample(client, sampler=sampler, steps=6, spacing=grid, frames=frames)
            assert body["spacing"] == grid and body["tuned_grid"] is False
            np.testing.assert_allclose(body["grid_times"], want, atol=1e-6, err_msg=f"{grid}, frames {frames}")
            if frames:  # every frame steps from one time point of the grid to the next
                np.testing.assert_allclose([f["t"] for f in body["frames"]], want[:-1], atol=1e-6)
                np.testing.assert_allclose([f["t_next"] for f in body["frames"]], want[1:], atol=1e-6)


def test_the_runs_tuned_grid_is_used_and_reported(client, run_dir):
    detail = client.get("/api/runs/tiny").json()
    assert detail["tuned_grids"] == [{"sampler": "dpm++2m", "evaluations": 5, "steps": 5}, {"sampler": "heun", "evaluations": 5, "steps": 3}]
    run = load_run(run_dir)
    for (sampler, evaluations), grid in TUNED.items():
        steps = len(grid) - 1
        for frames in (True, False):
            body = _sample(client, sampler=sampler, steps=steps, frames=frames)  # no grid named: the tuned one
            assert body["tuned_grid"] is True and body["spacing"] == "tuned", sampler
            np.testing.assert_allclose(body["grid_times"], grid, atol=1e-6)
        # The same draw as the library's sampler on that grid (the reply rounds to 4 decimals).
        want = run.normalization.encode(sample_points(run, sampler=sampler, n=20, seed=3, grid=grid))
        np.testing.assert_allclose(decode_panel(body["samples"]), want, rtol=0, atol=6e-5)
        assert _sample(client, sampler=sampler, steps=steps, tuned_grid=True)["tuned_grid"] is True
    # A named grid, or tuned_grid false, wins over the tuned one; another count has none.
    assert _sample(client, sampler="dpm++2m", steps=5, spacing="trailing")["spacing"] == "trailing"
    assert _sample(client, sampler="dpm++2m", steps=5, tuned_grid=False)["tuned_grid"] is False
    assert _sample(client, sampler="dpm++2m", steps=6)["tuned_grid"] is False


@pytest.mark.parametrize(
    "body, status, needle",
    [
        ({"sampler": "dpm++2m", "steps": 6, "tuned_grid": True}, 422, "no tuned grid for dpm++2m at 6 model evaluations (it has: dpm++2m at 5, heun at 5)"),
        ({"sampler": "heun", "steps": 5, "tuned_grid": True}, 422, "heun at 9 model evaluations"),
        ({"sampler": "dpm++2m", "steps": 5, "tuned_grid": True, "spacing": "logsnr"}, 422, "not both"),
        ({"tuned_grid": "yes"}, 422, "valid boolean"),
    ],
)
def test_tuned_grid_bad_requests_name_the_field(client, body, status, needle):
    r = client.post("/api/runs/tiny/sample", json=body)
    assert r.status_code == status and r.json()["detail"].startswith("tuned_grid: ") and needle in r.json()["detail"], r.text


def test_a_corrupt_tuned_grids_file_is_named(tmp_path, one_thread):
    train(load_config("quick", TINY), tmp_path / "tiny", progress=False, log=lambda *_: None)
    (tmp_path / "tiny" / TUNED_GRIDS).write_text("{not json")
    with TestClient(create_app(tmp_path, job_threads=1, finish_runs=False)) as c:
        assert c.get("/api/runs/tiny").json()["tuned_grids"] == []
        r = c.post("/api/runs/tiny/sample", json={"n": 5})
        assert r.status_code == 409 and r.json()["detail"].startswith("tuned_grid: run 'tiny' has a tuned_grids.json that cannot be read")
        assert str(tmp_path) not in r.text  # no server path in the reply
        assert c.post("/api/runs/tiny/sample", json={"n": 5, "tuned_grid": False}).status_code == 200
