"""The playground's jump view (issue 24): a run trained to jump (MeanFlow, consistency distillation)
answers its jumps for 1, 2 and 4 steps beside the ODE path from the same noise; each jump starts
where the sampler was and lands where the sampler's own step lands; a run that does not jump is
refused in one line and its page does not offer the view."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve_browser import COLOURED_PIXELS, _open, _Server, browser, page  # noqa: F401 - browser and page are fixtures

from denoiselab import load_config, train
from denoiselab.runs import RunFolder, load_run, plan_from_options, sample
from denoiselab.runs.jumps import JUMP_COUNTS, PATH_SOLVER, PATH_STEPS
from denoiselab.serve.app import create_app
from denoiselab.serve.payloads import decode_panel
from denoiselab.training.distill import consistency_config

SMALL = ["model.hidden=16", "model.blocks=1", "sample.n=200"]
N, SEED = 30, 7
# float16 panels (payloads.frame_panel): 11 significant bits
CLOSE = dict(rtol=2e-3, atol=2e-3)


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, one_thread) -> Path:
    """A MeanFlow run, a rectified flow and a consistency student distilled from it, and a
    diffusion run that does not jump (trained last: the page opens on the newest point run)."""
    root = tmp_path_factory.mktemp("jump-runs")
    train(load_config("spiral-meanflow", SMALL + ["train.steps=40"]), root / "meanflow", progress=False, log=_quiet)
    train(load_config("spiral-flow", SMALL + ["train.steps=40"]), root / "flow", progress=False, log=_quiet)
    train(consistency_config(load_run(root / "flow"), 30), root / "consistency", progress=False, log=_quiet)
    train(load_config("quick", ["train.steps=40", "model.hidden=16"]), root / "diffusion", progress=False, log=_quiet)
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(create_app(runs_dir, job_threads=1, finish_runs=False)) as c:
        yield c


def _jumps(client, name: str) -> dict:
    r = client.post(f"/api/runs/{name}/jumps", json={"n": N, "seed": SEED})
    assert r.status_code == 200, r.text
    return r.json()


def _draw(run, sampler: str, steps: int, **options):
    """The run's own sampler from the view's noise: (x_T, the step records, the samples), model units."""
    records: list = []
    drawn = sample(run, plan_from_options(run, sampler=sampler, steps=steps, n=N, seed=SEED, **options), on_step=records.append, decode=False)
    return drawn.x_T.numpy(), records, drawn.x


def test_meanflow_jumps_are_the_samplers_steps_and_the_path_is_its_own_flow(client, runs_dir):
    res = _jumps(client, "meanflow")
    run = load_run(runs_dir / "meanflow")
    x_T = decode_panel(res["x_T"])
    assert res["sampler"] == "meanflow" and "average velocity" in res["learned"]
    assert [d["asked"] for d in res["draws"]] == list(JUMP_COUNTS) == [1, 2, 4]
    for d in res["draws"]:
        k = d["asked"]
        noise, records, samples = _draw(run, "meanflow", k)
        np.testing.assert_allclose(x_T, noise, **CLOSE)
        assert d["steps"] == k and len(d["starts"]) == len(d["landings"]) == k
        np.testing.assert_allclose(d["times"], [[1 - i / k, 1 - (i + 1) / k] for i in range(k)], atol=1e-6)
        for start, landing, r in zip(d["starts"], d["landings"], records):  # a jump starts at the sampler's x_t and lands on its next sample
            np.testing.assert_allclose(decode_panel(start), r.x_t.numpy(), **CLOSE)
            np.testing.assert_allclose(decode_panel(landing), r.x_next.numpy(), **CLOSE)
        for landing, start in zip(d["landings"], d["starts"][1:]):  # each jump starts where the one before landed
            np.testing.assert_array_equal(decode_panel(landing), decode_panel(start))
        np.testing.assert_allclose(decode_panel(d["samples"]), samples, **CLOSE)
    # The path: the same network's flow in PATH_STEPS short steps from the same noise.
    path = np.stack([decode_panel(p) for p in res["path"]])
    _, _, end = _draw(run, "meanflow", PATH_STEPS, grid="time-uniform")
    assert path.shape == (PATH_STEPS + 1, N, 2) and res["path_times"][0] == 1.0 and res["path_times"][-1] == 0.0
    np.testing.assert_allclose(path[0], x_T, **CLOSE)
    np.testing.assert_allclose(path[-1], end, **CLOSE)
    one = res["draws"][0]
    off = np.sqrt(np.mean(np.sum((decode_panel(one["samples"]) - path[-1]) ** 2, axis=1)))
    assert one["off_path"] == pytest.approx(off, abs=5e-3)


def test_consistency_jumps_land_on_f_and_the_path_is_the_teachers(client, runs_dir):
    res = _jumps(client, "consistency")
    run, teacher = load_run(runs_dir / "consistency"), load_run(runs_dir / "flow")
    assert res["sampler"] == "consistency" and "teacher" in res["path_source"]
    for d in res["draws"]:
        _, records, samples = _draw(run, "consistency", d["asked"])
        assert len(d["starts"]) == len(records) == d["steps"]
        for (_, s), start, landing, r in zip(d["times"], d["starts"], d["landings"], records):  # every jump lands on f(x_t, t), the ODE path's end
            assert s == 0.0
            np.testing.assert_allclose(decode_panel(start), r.x_t.numpy(), **CLOSE)
            np.testing.assert_allclose(decode_panel(landing), r.x0.numpy(), **CLOSE)
        np.testing.assert_allclose(decode_panel(d["samples"]), samples, **CLOSE)
    _, _, end = _draw(teacher, PATH_SOLVER, PATH_STEPS, grid="time-uniform")
    np.testing.assert_allclose(decode_panel(res["path"][-1]), end, **CLOSE)


def test_a_student_whose_teacher_is_gone_draws_its_jumps_without_a_path(runs_dir, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(runs_dir / "consistency", moved / "student")
    config = RunFolder(moved / "student").config_path
    config.write_text(config.read_text().replace(str((runs_dir / "flow").resolve()), str(tmp_path / "gone" / "flow")))
    with TestClient(create_app(moved, job_threads=1, finish_runs=False)) as c:
        res = _jumps(c, "student")
    assert res["path"] is None and res["path_source"] == "the teacher (flow) cannot be loaded, so its ODE path is not drawn"
    assert all(d["off_path"] is None and len(d["starts"]) == d["steps"] for d in res["draws"])


def test_a_run_that_does_not_jump_is_refused_in_one_line_and_not_offered(client):
    r = client.post("/api/runs/diffusion/jumps", json={"n": N})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("run: 'diffusion' samples with") and "not a jump sampler" in detail and "\n" not in detail
    assert client.get("/api/runs/diffusion").json()["jump_sampler"] is None
    assert client.get("/api/runs/meanflow").json()["jump_sampler"] == "meanflow"
    assert client.post("/api/runs/nowhere/jumps", json={}).status_code == 404
    assert client.post("/api/runs/meanflow/jumps", json={"n": 0}).status_code == 422
    # The reverse route takes a jump sampler from the run trained for it, and refuses it to another.
    r = client.post("/api/runs/meanflow/sample", json={"sampler": "meanflow", "steps": 2, "n": 5})
    assert r.status_code == 200 and r.json()["explanation"].startswith("MeanFlow (Geng et al. 2025): the network learned the average velocity")
    assert client.post("/api/runs/consistency/sample", json={"n": 5}).json()["explanation"].startswith("Consistency model (Song et al. 2023)")
    r = client.post("/api/runs/diffusion/sample", json={"sampler": "meanflow", "steps": 2, "n": 5})
    assert r.status_code == 422 and r.json()["detail"].startswith("sampler: run 'diffusion'")


@pytest.fixture(scope="module")
def server(runs_dir):
    with _Server(runs_dir) as srv:
        yield srv


@pytest.mark.browser
def test_the_reverse_view_draws_the_jumps_of_a_jump_run_only(page, server, tmp_path):  # noqa: F811
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url) if req.url.endswith("/jumps") else None)
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")
    page.select_option("#rev-run", "diffusion")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result && window.playground.rev.result.run === 'diffusion'")
    assert page.is_hidden("#rev-jumps") and not asked  # a run that does not jump: not offered, not asked
    page.select_option("#rev-run", "meanflow")
    page.wait_for_function("window.playground.rev.detail && window.playground.rev.detail.name === 'meanflow'")
    assert page.input_value("#rev-sampler") == "meanflow"
    page.click("#rev-go")
    page.wait_for_selector("#rev-jumps-panels figure[data-jumps='4']")
    assert page.is_visible("#rev-jumps") and len(asked) == 1
    figures = page.locator("#rev-jumps-panels figure")
    assert figures.count() == 3
    captions = [figures.nth(i).locator("figcaption").text_content() for i in range(3)]
    assert [c.split(":")[0] for c in captions] == ["1 jump", "2 jumps", "4 jumps"]
    for k in JUMP_COUNTS:
        assert page.evaluate(COLOURED_PIXELS, f"rev-jumps-{k}") > 300, k
    note = page.text_content("#rev-jumps-note")
    assert "average velocity" in note and "Grey: the flow of the network's own velocity" in note
    page.locator("#rev-jumps").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "playground-jumps.png"), full_page=True)
    # Back to a run that does not jump: the view goes away.
    page.select_option("#rev-run", "diffusion")
    page.wait_for_function("document.getElementById('rev-jumps').hidden")
