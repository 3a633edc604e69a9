"""The playground on latent runs (issue 13): a latent run is listed, sampled and drawn as an image
run of its decoded shape, its frames decoded by the run's own autoencoder; an autoencoder run is
listed but never sampled; gradient guidance is refused on a latent run in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from test_latent import TINY_AE, TINY_DENOISER
from test_serve_browser import INKED, _open, _Server, browser, page  # noqa: F401 - browser and page are fixtures

from denoiselab import training
from denoiselab.config import load_config
from denoiselab.training.stages import stage_one_config
from denoiselab.runs import load_run, sample_points
from denoiselab.runs.latent import store_latent_scale
from denoiselab.serve.app import create_app
from denoiselab.serve.limits import MAX_FRAME_IMAGE_VALUES
from denoiselab.serve.payloads import decode_panel
from denoiselab.serve.sample_reply import latent_noise_image


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, one_thread) -> Path:
    """An autoencoder run and a latent run trained on it, side by side in one runs directory.

    The autoencoder is finished by hand (its latent scale stored, marked complete) instead of by
    complete_run, whose metrics and figures (a digits classifier) cost seconds this test does not need."""
    root = tmp_path_factory.mktemp("latent-runs")
    cfg = load_config("digits-latent", TINY_AE + TINY_DENOISER)
    training.train(stage_one_config(cfg), root / "ae", progress=False, log=_quiet)
    ae = load_run(root / "ae")
    store_latent_scale(ae)
    ae.folder.mark_complete(ae.info)
    latent = load_config("digits-latent", TINY_AE + TINY_DENOISER + [f"latent.autoencoder={json.dumps(str(root / 'ae'))}"])
    training.train(latent, root / "latent", progress=False, log=_quiet)
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(create_app(runs_dir, job_threads=1, finish_runs=False)) as c:
        yield c


def test_a_latent_run_is_listed_as_the_images_it_decodes_to_and_an_autoencoder_is_not_offered(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    latent, ae = runs["latent"], runs["ae"]
    assert latent["usable"] and latent["kind"] == "image" and latent["shape"] == [1, 8, 8] and latent["latent_shape"] == [2, 4, 4]
    assert not ae["usable"] and ae["autoencoder"] and "autoencoder" in ae["error"] and "latent run" in ae["error"]
    detail = client.get("/api/runs/latent").json()
    assert detail["kind"] == "image" and detail["data_preview"]["shape"][1:] == [1, 8, 8]  # its training images
    r = client.post("/api/runs/ae/sample", json={"n": 2, "steps": 2})
    assert r.status_code == 422 and r.json()["detail"].startswith("run: 'ae' is an autoencoder")


def test_a_latent_run_samples_decoded_frames_and_the_samples_of_sample_points(client, runs_dir):
    n, steps, seed = 4, 3, 5
    r = client.post("/api/runs/latent/sample", json={"n": n, "steps": steps, "seed": seed, "frames": True, "label": 3})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["kind"] == "image" and res["latent"]["shape"] == [2, 4, 4] and res["latent"]["image_shape"] == [1, 8, 8]
    assert "latent run" in res["explanation"] and len(res["frames"]) == steps
    for f in res["frames"]:
        for key in ("x_t", "x0", "x_next"):
            assert f[key]["shape"] == [n, 1, 8, 8], key
            assert np.abs(decode_panel(f[key])).max() <= 1.0 + 1e-3  # decoded pixels, clamped to [-1, 1]
        assert f["eps"]["shape"] == [n, 1, 4, 8]  # the latent noise: 2 channels of 4 x 4 side by side
    run = load_run(runs_dir / "latent")
    expected = sample_points(run, sampler=res["sampler"], steps=steps, n=n, seed=seed, label=3)
    assert expected.shape == (n, 1, 8, 8)
    np.testing.assert_allclose(decode_panel(res["samples"]), expected, atol=1e-3)  # the reply rounds to 3 decimals
    np.testing.assert_allclose(decode_panel(res["frames"][-1]["x_next"]), expected, atol=2e-3)  # float16 frames


def test_the_latent_noise_is_drawn_as_its_own_numbers_channels_side_by_side():
    eps = torch.randn(3, 2, 4, 4)
    image = latent_noise_image(eps)
    assert image.shape == (3, 1, 4, 8)
    torch.testing.assert_close(image[:, 0, :, :4], eps[:, 0])
    torch.testing.assert_close(image[:, 0, :, 4:], eps[:, 1])
    flat = torch.randn(3, 5)
    torch.testing.assert_close(latent_noise_image(flat), flat[:, None, None, :])


def test_a_latent_run_refuses_gradient_guidance_and_bounds_frames_by_the_decoded_size(client):
    r = client.post("/api/runs/latent/sample", json={"n": 2, "steps": 2, "gradient_guidance": {"classifier": {"label": 1}}})
    assert r.status_code == 422 and r.json()["detail"].startswith("gradient_guidance: ") and "\n" not in r.json()["detail"]
    # 64 x 200 x 32 latent numbers fit the bound, 64 x 200 x 64 decoded pixels do not.
    assert 64 * 200 * 32 <= MAX_FRAME_IMAGE_VALUES < 64 * 200 * 64
    r = client.post("/api/runs/latent/sample", json={"n": 64, "steps": 200, "frames": True})
    assert r.status_code == 422 and "64 x 200 x 1 x 8 x 8" in r.json()["detail"]


@pytest.fixture(scope="module")
def server(runs_dir):
    """The real app under uvicorn over the two runs: the page fixture of test_serve_browser uses it."""
    with _Server(runs_dir) as srv:
        yield srv


def test_the_reverse_view_draws_a_latent_run(page, server, tmp_path):  # noqa: F811 - fixtures
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")  # the newest usable run is drawn on opening
    assert page.input_value("#rev-run") == "latent"
    assert "ae" not in page.eval_on_selector_all("#rev-run option", "os => os.map((o) => o.value)")
    page.fill("#rev-steps", "4")
    page.click("#rev-go")
    page.wait_for_selector("#rev-panels[data-frames='4']")
    res = page.evaluate("(() => { const r = window.playground.rev.result; return {kind: r.kind, x0: r.frames[0].x0.shape, eps: r.frames[0].eps.shape}; })()")
    assert res == {"kind": "image", "x0": [16, 1, 8, 8], "eps": [16, 1, 4, 8]}
    assert "latent noise" in page.text_content("#rev-eps-caption")
    assert "latent run" in page.text_content("#rev-model-note") and "latent" in page.text_content("#rev-step-note")
    for canvas in ("rev-xt", "rev-eps", "rev-x0", "rev-next", "rev-final"):
        assert page.evaluate(INKED, canvas) > 0.15, canvas
    page.screenshot(path=str(tmp_path / "playground-reverse-latent.png"))
    # The playground: training images blended into the decoded starting noise, then decoded samples.
    page.click("#tabs button[data-view=playground]")
    page.wait_for_selector("#pg-canvas[data-frames]")
    assert page.input_value("#pg-run") == "latent" and "latent" in page.text_content("#pg-caption")
    assert page.evaluate(INKED, "pg-canvas") > 0.15
    page.screenshot(path=str(tmp_path / "playground-playground-latent.png"))
