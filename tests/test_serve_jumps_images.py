"""The playground's jump view of an image run (issue 24): a MeanFlow run of the digits on the
two-time U-Net answers, for 1, 2 and 4 jumps, the images its own sampler draws from the view's
noise, beside the ODE path's many-step end from the same noise and each one's RMS distance per
pixel from it; the Reverse view draws them as strips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_serve_browser import GREY_LEVELS, _open, _Server, browser, page  # noqa: F401 - browser and page are fixtures

from denoiselab import load_config, train
from denoiselab.runs import load_run, plan_from_options, sample
from denoiselab.runs.jumps import JUMP_COUNTS, PATH_STEPS, off_path_distance
from denoiselab.serve.app import create_app
from denoiselab.serve.limits import MAX_JUMP_IMAGES
from denoiselab.serve.payloads import decode_panel

# The digits-flow recipe made a MeanFlow run (a network of two times: model.interval follows the
# objective), trained a few steps of a tiny U-Net.
MEANFLOW_DIGITS = [
    "train.objective=meanflow", "train.timesteps=logit-normal", "sample.sampler=meanflow", "sample.steps=1",
    "train.steps=10", "model.hidden=8", "model.time_dim=16", "train.checkpoint_every=10",
]  # fmt: skip
N, SEED = 4, 5
CLOSE = dict(rtol=2e-3, atol=2e-3)  # float16 panels (payloads.frame_panel)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("image-jump-runs")
    train(load_config("digits-flow", MEANFLOW_DIGITS), root / "digits-meanflow", progress=False, log=lambda *_: None)
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(create_app(runs_dir, job_threads=1, finish_runs=False)) as c:
        yield c


def _draw(run, steps: int, **options) -> tuple[np.ndarray, np.ndarray]:
    """The run's own meanflow sampler from the view's noise: (x_T, samples), pixels."""
    drawn = sample(run, plan_from_options(run, sampler="meanflow", steps=steps, n=N, seed=SEED, **options), decode=False)
    return drawn.x_T.numpy(), np.asarray(drawn.x)


def test_an_image_runs_jumps_are_its_samplers_images_beside_the_paths_end(client, runs_dir):
    r = client.post("/api/runs/digits-meanflow/jumps", json={"n": N, "seed": SEED})
    assert r.status_code == 200, r.text
    res = r.json()
    run = load_run(runs_dir / "digits-meanflow")
    assert run.is_image and res["kind"] == "image" and res["sampler"] == "meanflow"
    assert "average velocity" in res["learned"] and "RMS over every pixel" in res["units"]
    x_T = decode_panel(res["x_T"])
    assert x_T.shape == (N, 1, 8, 8)
    _, end = _draw(run, PATH_STEPS, grid="time-uniform")  # the flow of u(z, t, t) in PATH_STEPS Euler steps
    path_end = decode_panel(res["path_end"])
    np.testing.assert_allclose(path_end, end, **CLOSE)
    assert [d["asked"] for d in res["draws"]] == list(JUMP_COUNTS)
    for d in res["draws"]:
        k = d["asked"]
        noise, samples = _draw(run, k)
        np.testing.assert_allclose(x_T, noise, **CLOSE)
        got = decode_panel(d["samples"])
        np.testing.assert_allclose(got, samples, **CLOSE)
        assert d["steps"] == k and len(d["landings"]) == k and len(d["times"]) == k
        np.testing.assert_allclose(decode_panel(d["landings"][-1]), got, **CLOSE)  # the last jump lands on the sample
        assert d["off_path"] == pytest.approx(np.sqrt(np.mean((samples - end) ** 2)), abs=2e-3)


def test_the_distance_from_the_paths_end_is_per_point_for_points_and_per_pixel_for_images():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 2))
    b = a + np.array([3.0, 4.0])  # every point 5 away
    assert off_path_distance(a, b) == pytest.approx(5.0)
    for size in (8, 32):  # every pixel 0.5 lighter: 0.5 at any size, not 0.5 sqrt(pixels)
        images = rng.uniform(-1, 1, size=(3, 1, size, size))
        assert off_path_distance(images + 0.5, images) == pytest.approx(0.5)


def test_an_image_runs_jump_view_is_bounded_in_one_line(client):
    r = client.post("/api/runs/digits-meanflow/jumps", json={"n": MAX_JUMP_IMAGES + 1})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("n: ") and f"at most {MAX_JUMP_IMAGES} images" in detail and "\n" not in detail


@pytest.fixture(scope="module")
def server(runs_dir):
    with _Server(runs_dir) as srv:
        yield srv


@pytest.mark.browser
def test_the_reverse_view_draws_an_image_runs_jumps_as_strips(page, server, tmp_path):  # noqa: F811
    _open(page, server, "reverse")
    page.select_option("#rev-run", "digits-meanflow")
    page.wait_for_function("window.playground.rev.detail && window.playground.rev.detail.name === 'digits-meanflow'")
    page.click("#rev-go")
    page.wait_for_selector("#rev-jumps-panels figure[data-jumps='4']")
    assert page.is_visible("#rev-jumps") and page.is_visible("#rev-jumps-hint-images") and page.is_hidden("#rev-jumps-hint")
    ids = page.eval_on_selector_all("#rev-jumps-panels canvas", "cs => cs.map((c) => c.id)")
    assert ids == ["rev-jumps-noise", "rev-jumps-path", "rev-jumps-1", "rev-jumps-2", "rev-jumps-4"]
    for canvas in ids:
        assert page.evaluate(GREY_LEVELS, canvas) > 8, canvas  # images, not blank strips
    captions = page.locator("#rev-jumps-panels figure[data-jumps] figcaption").all_text_contents()
    assert [c.split(":")[0] for c in captions] == ["1 jump", "2 jumps", "4 jumps"]
    assert all("RMS per pixel" in c for c in captions)
    assert "average velocity" in page.text_content("#rev-jumps-note")
    page.locator("#rev-jumps").scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path.parent / "playground-jumps-images.png"), full_page=True)
