"""The playground's JSON API (denoiselab serve), through FastAPI's test client.

Bad input gets a 4xx whose message names the field; sizes are capped; unknown and broken runs
get clear errors; run and file names cannot reach outside the runs folder or static/;
concurrent sampling requests get their own, correct results; training jobs start, report,
cancel and fail without taking the server down.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from denoiselab import load_config, make_schedule, train
from denoiselab.runs import complete_run
from denoiselab.schedules import SCHEDULE_KINDS
from denoiselab.serve import add_serve_arguments, run_serve
from denoiselab.serve.app import (
    DEFAULT_IMAGE_TRAIN_STEPS,
    MAX_FRAME_IMAGE_VALUES,
    MAX_FRAME_POINTS,
    MAX_IMAGE_TRAIN_STEPS,
    MAX_POINTS,
    MAX_SAMPLE_IMAGES,
    MAX_STEPS,
    MAX_T,
    MAX_TRAIN_STEPS,
    create_app,
)
from denoiselab.serve.payloads import decode_panel

# A run that trains in about a second: T = 100 so that "steps > T" can be tested below the cap.
TINY = ["train.steps=40", "model.hidden=16", "data.n=500", "schedule.T=100", "sample.steps=5", "sample.n=100"]
# A class-conditional digits run (8 x 8 images, 10 classes) on a U-Net of 8 channels: seconds.
TINY_DIGITS = ["train.steps=20", "model.hidden=8", "model.time_dim=16", "sample.n=40", "sample.steps=4"]
JOB_TIMEOUT_S = 90.0


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, one_thread) -> Path:
    root = tmp_path_factory.mktemp("serve-runs")
    train(load_config("quick", TINY), root / "tiny", progress=False, log=_quiet)
    cond = [*TINY, 'data.classes=["spiral", "circle"]']
    train(load_config("quick", cond), root / "cond", progress=False, log=_quiet)
    broken = root / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    half = root / "half"  # run.json but no weights or config
    half.mkdir()
    (half / "run.json").write_text(json.dumps({"status": "training", "dim": 2}))
    image = root / "image-run"  # an image run's run.json without its weights (half-copied, say)
    image.mkdir()
    (image / "run.json").write_text(json.dumps({"status": "complete", "dim": 64, "shape": [1, 8, 8], "data": "digits"}))
    # A real image run, finished as `denoiselab train` finishes it (the conftest sets DENOISELAB_CACHE).
    train(load_config("digits", TINY_DIGITS), root / "digits", progress=False, log=_quiet)
    complete_run(root / "digits", log=_quiet)
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    app = create_app(runs_dir, job_threads=1, finish_runs=False)
    with TestClient(app) as c:
        yield c


def _detail(response) -> str:
    body = response.json()
    assert isinstance(body["detail"], str), body
    return body["detail"]


def _wait_job(client, job_id: str, until, timeout: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach the expected state in {timeout} s: {job}")


# --- the page ----------------------------------------------------------------------------------
def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/static/app.js" in r.text and "/static/style.css" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # nothing fetched from the internet
    for name, kind in (("app.js", "javascript"), ("style.css", "css"), ("index.html", "html")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
    js = client.get("/static/app.js").text
    assert "http://" not in js and "https://" not in js


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/nope.js",
        "/static/",
    ],
)
def test_static_serves_only_its_own_files(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500, (path, r.status_code)
    assert "import" not in r.text and "root:" not in r.text


def test_health_and_info(client):
    assert client.get("/api/health").json()["ok"] is True
    info = client.get("/api/info").json()
    assert "spiral" in info["point_sets"] and "bimodal-1d" not in info["point_sets"]
    assert set(SCHEDULE_KINDS) <= set(info["schedules"]) and "flow" in info["schedules"]
    assert {"ddpm", "ddim", "dpm++2m"} <= set(info["samplers"])
    assert info["caps"]["steps"] == MAX_STEPS and info["caps"]["points"] == MAX_POINTS


# --- schedules and the forward process -------------------------------------------------------------
def test_schedules_match_the_library(client):
    r = client.get("/api/schedules", params={"T": 200})
    assert r.status_code == 200
    got = {s["name"]: s for s in r.json()["schedules"]}
    assert set(got) == {*SCHEDULE_KINDS, "flow"}
    for kind in SCHEDULE_KINDS:
        ref = make_schedule(kind, 200)
        s = got[kind]
        assert len(s["alpha_bars"]) == 201 and s["snr_db"][0] is None  # SNR is infinite at k = 0
        np.testing.assert_allclose(s["alpha_bars"], ref.alpha_bars.numpy(), rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(s["snr_db"][1:], ref.snr_db[1:].numpy(), atol=1e-3)
        assert s["terminal_snr_db"] == pytest.approx(ref.terminal_snr_db(), abs=1e-3)
    assert got["flow"]["terminal_alpha_bar"] == 0 and got["flow"]["terminal_snr_db"] is None  # -inf


@pytest.mark.parametrize(
    "params, field",
    [
        ({"T": 0}, "T"),
        ({"T": MAX_T + 1}, "T"),
        ({"T": "many"}, "T"),
        ({"beta_end": 2}, "beta_end"),
        ({"beta_start": 0.5, "beta_end": 0.1}, "beta_start"),
        ({"beta_start": "nan"}, "beta_start"),
    ],
)
def test_schedules_bad_input_names_the_field(client, params, field):
    r = client.get("/api/schedules", params=params)
    assert 400 <= r.status_code < 500
    assert _detail(r).startswith(field), _detail(r)


def test_forward_points_follow_q_sample(client):
    r = client.post("/api/forward", json={"data": "moons", "schedule": "cosine", "T": 500, "n": 300, "seed": 3, "k": 200})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "points"
    x0, eps, xt = (np.array(body[key]["points"]) for key in ("x0", "eps", "x_t"))
    assert x0.shape == eps.shape == xt.shape == (300, 2)
    # Normalised data: the units the model sees.
    np.testing.assert_allclose(x0.mean(0), 0, atol=1e-3)
    sch = body["schedule"]
    a, s = sch["alphas"][200], sch["sigmas"][200]
    np.testing.assert_allclose(xt, a * x0 + s * eps, atol=2e-3)  # what the page computes itself
    ref = make_schedule("cosine", 500)
    assert body["snr_db"] == pytest.approx(float(ref.snr_db[200]), abs=1e-3)
    # The same request gives the same data and noise; another seed another draw.
    again = client.post("/api/forward", json={"data": "moons", "schedule": "cosine", "T": 500, "n": 300, "seed": 3}).json()
    assert again["eps"] == body["eps"] and again["x0"] == body["x0"]
    other = client.post("/api/forward", json={"data": "moons", "schedule": "cosine", "T": 500, "n": 300, "seed": 4}).json()
    assert other["eps"] != body["eps"]


def test_forward_images(tmp_path):
    pytest.importorskip("denoiselab.data.images")
    with TestClient(create_app(tmp_path)) as c:
        info = c.get("/api/info").json()
        assert "patterns:checkerboard" in info["image_sets"] and "digits" in info["image_sets"]
        r = c.post("/api/forward", json={"data": "patterns:circles", "images": 3, "size": 12, "k": 1000})
        assert r.status_code == 200
        body = r.json()
        assert body["kind"] == "image" and body["x0"]["shape"] == [3, 1, 12, 12]
        x0 = np.array(body["x0"]["data"])
        assert x0.min() >= -1 and x0.max() <= 1
        r = c.post("/api/forward", json={"data": "digits", "images": 10, "size": 16})
        body = r.json()
        assert body["x0"]["shape"] == [10, 1, 16, 16] and body["labels"] == [str(i) for i in range(10)]
        assert c.post("/api/forward", json={"data": "digits", "images": 99}).status_code == 422


@pytest.mark.parametrize(
    "body, field",
    [
        ({"data": "mnist-from-the-internet"}, "data"),
        ({"data": "../../etc/passwd"}, "data"),
        ({"n": MAX_POINTS + 1}, "n"),
        ({"n": 0}, "n"),
        ({"n": "many"}, "n"),
        ({"T": MAX_T + 1}, "T"),
        ({"schedule": "exponential"}, "schedule"),
        ({"size": 4096}, "size"),
        ({"images": 10_000}, "images"),
        ({"seed": -1}, "seed"),
        ({"k": 600, "T": 500}, "k"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_forward_bad_input_names_the_field(client, body, field):
    r = client.post("/api/forward", json=body)
    assert r.status_code == 422, r.text
    assert _detail(r).startswith(f"{field}:"), _detail(r)


def test_malformed_json_is_a_4xx(client):
    r = client.post("/api/forward", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = client.post("/api/forward", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


# --- runs ------------------------------------------------------------------------------------------
def test_runs_are_listed_with_their_state(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    assert {"tiny", "cond", "broken", "half"} <= set(runs)
    tiny = runs["tiny"]
    assert tiny["usable"] and tiny["kind"] == "points" and tiny["status"] == "trained" and tiny["num_classes"] == 0
    assert tiny["schedule"] == {"kind": "linear", "T": 100} and tiny["sample"]["steps"] == 5
    assert runs["cond"]["num_classes"] == 2 and runs["cond"]["class_names"] == ["spiral", "circle"]
    assert runs["broken"]["status"] == "unreadable" and not runs["broken"]["usable"]
    assert not runs["half"]["usable"]
    detail = client.get("/api/runs/tiny").json()
    assert len(detail["losses"]) == 40 and detail["data_preview"]["kind"] == "points"


def test_image_runs_are_listed_with_their_classes(client):
    runs = {r["name"]: r for r in client.get("/api/runs").json()["runs"]}
    digits = runs["digits"]
    assert digits["kind"] == "image" and digits["shape"] == [1, 8, 8] and digits["usable"]
    assert digits["status"] == "complete" and digits["num_classes"] == 10 and digits["class_names"] == [str(i) for i in range(10)]
    assert digits["sample"]["guidance"] == 2.0
    # The details carry a few training images (classes in turn) for the playground's animation.
    detail = client.get("/api/runs/digits").json()
    preview = detail["data_preview"]
    assert preview["kind"] == "image" and preview["shape"] == [16, 1, 8, 8]
    pixels = np.array(preview["data"])
    assert pixels.min() >= -1 and pixels.max() <= 1 and pixels.std() > 0.3
    assert detail["data_preview_names"][:10] == [str(i) for i in range(10)] and detail["data_preview_labels"][10] == 0
    assert "accuracy" in detail["metrics"]
    # An image run folder without weights is listed, and cannot be sampled.
    assert runs["image-run"]["kind"] == "image" and not runs["image-run"]["usable"]
    r = client.post("/api/runs/image-run/sample", json={})
    assert r.status_code == 422 and _detail(r).startswith("run: 'image-run' cannot be loaded"), _detail(r)


def test_unknown_run_is_404(client):
    for r in (client.get("/api/runs/no-such-run"), client.post("/api/runs/no-such-run/sample", json={})):
        assert r.status_code == 404
        assert "no-such-run" in _detail(r) and _detail(r).startswith("run:")


def test_broken_run_folders_get_a_clear_error(client):
    for name in ("broken", "half"):
        r = client.post(f"/api/runs/{name}/sample", json={"steps": 2, "n": 10})
        assert r.status_code == 422
        assert _detail(r).startswith(f"run: '{name}' cannot be loaded"), _detail(r)
    assert client.get("/api/health").status_code == 200


@pytest.mark.parametrize(
    "name",
    ["..", "%2e%2e", "..%2f..%2fetc", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%2Fetc%2Fpasswd", ".hidden", "a..b", "x" * 65, "run%00"],
)
def test_run_names_cannot_escape_the_runs_folder(client, name):
    for r in (client.get(f"/api/runs/{name}"), client.post(f"/api/runs/{name}/sample", json={})):
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)


def test_traversal_in_urls_never_reaches_outside(client):
    for path in ("/api/runs/../../etc/passwd", "/api/runs//etc/passwd", "/api/runs/tiny/../../../pyproject.toml"):
        r = client.get(path)
        assert 400 <= r.status_code < 500
        assert "root:" not in r.text and "[project]" not in r.text


def test_symlink_out_of_the_runs_folder_is_refused(client, runs_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text("{}")
    link = runs_dir / "escape"
    link.symlink_to(outside, target_is_directory=True)
    try:
        r = client.get("/api/runs/escape")
        assert r.status_code == 400 and "inside the runs directory" in _detail(r)
    finally:
        link.unlink()


def test_train_names_are_validated(client):
    for bad in ("../evil", "/etc/x", "..", "a/b", "", ".x", "x" * 65):
        r = client.post("/api/jobs", json={"name": bad, "steps": 50})
        assert r.status_code == 422 and _detail(r).startswith("name:"), (bad, r.text)


# --- sampling --------------------------------------------------------------------------------------
def test_reverse_frames(client):
    r = client.post("/api/runs/tiny/sample", json={"sampler": "ddim", "steps": 5, "n": 50, "seed": 1})
    assert r.status_code == 200
    body = r.json()
    frames = body["frames"]
    assert len(frames) == 5 and body["steps"] == 5 and body["kind"] == "points"
    assert body["grid"][0] == 100 and body["grid"][-1] == 0 and len(body["grid"]) == 6
    for i, f in enumerate(frames):
        assert f["index"] == i and f["k"] > f["k_next"]
        for key in ("x_t", "eps", "x0", "x_next"):
            assert f[key]["kind"] == "points" and decode_panel(f[key]).shape == (50, 2)
    # Frames are float16 (relative error <= 2^-11); x_T and the samples are exact JSON numbers.
    np.testing.assert_allclose(decode_panel(frames[0]["x_t"]), decode_panel(body["x_T"]), rtol=2**-11, atol=1e-4)
    np.testing.assert_allclose(decode_panel(frames[-1]["x_next"]), decode_panel(body["samples"]), rtol=2**-11, atol=1e-4)
    assert frames[0]["snr_db"] < -20 and frames[-1]["snr_db_next"] is None  # ends at k = 0
    # x0-hat and eps-hat are consistent with x_t: x_t = alpha x0 + sigma eps.
    f = frames[2]
    k = f["k"]
    a, s = body["grid_alphas"][2], body["grid_sigmas"][2]
    assert body["grid"][2] == k
    x_t, x0, eps = (decode_panel(f[key]) for key in ("x_t", "x0", "eps"))
    np.testing.assert_allclose(x_t, a * x0 + s * eps, atol=1e-2)  # float16 frames: about 3 significant digits


def test_samples_without_frames_and_defaults(client):
    r = client.post("/api/runs/tiny/sample", json={"frames": False, "n": 2000})
    assert r.status_code == 200
    body = r.json()
    assert "frames" not in body and len(body["samples"]["points"]) == 2000
    assert body["steps"] == 5 and body["sampler"] == "dpm++2m"  # the run's [sample] defaults


@pytest.mark.parametrize(
    "body, field",
    [
        ({"steps": MAX_STEPS + 1}, "steps"),
        ({"steps": 150}, "steps"),  # above the run's T = 100
        ({"steps": 0}, "steps"),
        ({"n": MAX_POINTS + 1, "frames": False}, "n"),
        ({"n": MAX_FRAME_POINTS + 1}, "n"),  # frames are capped lower
        ({"sampler": "euler-maruyama"}, "sampler"),
        ({"spacing": "random"}, "spacing"),
        ({"eta": 0.5, "sampler": "ddpm"}, "eta"),
        ({"eta": 3}, "eta"),
        ({"seed": -5}, "seed"),
        ({"label": 0}, "label"),  # an unconditional run
        ({"guidance": 2.0}, "guidance"),
        ({"frames": "sometimes"}, "frames"),
        ({"temperature": 0.7}, "temperature"),
    ],
)
def test_sample_bad_input_names_the_field(client, body, field):
    r = client.post("/api/runs/tiny/sample", json=body)
    assert r.status_code == 422, r.text
    assert _detail(r).startswith(f"{field}:"), _detail(r)


def test_nan_is_rejected(client):
    r = client.post("/api/runs/cond/sample", content=b'{"guidance": NaN}', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and _detail(r).startswith("guidance:")


def test_class_label_and_guidance(client):
    def sample(**kw):
        r = client.post("/api/runs/cond/sample", json={"steps": 5, "n": 200, "seed": 0, "frames": False, **kw})
        assert r.status_code == 200, r.text
        return np.array(r.json()["samples"]["points"])

    spiral, circle = sample(label=0, guidance=2.0), sample(label=1, guidance=2.0)
    assert np.abs(spiral - circle).mean() > 1e-3
    np.testing.assert_array_equal(sample(label=0, guidance=2.0), spiral)
    assert sample().shape == (200, 2)  # no label: every class in proportion
    r = client.post("/api/runs/cond/sample", json={"label": 2})
    assert r.status_code == 422 and _detail(r).startswith("label:") and "0..1" in _detail(r)


# --- sampling an image run ---------------------------------------------------------------------------
def _images(panel, n: int) -> np.ndarray:
    assert panel["kind"] == "image" and panel["shape"] == [n, 1, 8, 8]
    return decode_panel(panel)


def test_image_reverse_frames(client):
    r = client.post("/api/runs/digits/sample", json={"sampler": "ddim", "steps": 4, "n": 6, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "image" and body["n"] == 6 and body["steps"] == 4
    frames = body["frames"]
    assert len(frames) == 4 and body["grid"][0] == 1000 and body["grid"][-1] == 0
    for i, f in enumerate(frames):
        assert f["index"] == i and f["k"] > f["k_next"]
        x_t, eps, x0, _ = (_images(f[key], 6) for key in ("x_t", "eps", "x0", "x_next"))
        # The panels are the sampler's own: x_t = alpha x0-hat + sigma eps-hat at every step.
        a, s = body["grid_alphas"][i], body["grid_sigmas"][i]
        np.testing.assert_allclose(x_t, a * x0 + s * eps, atol=1e-2)  # float16 frames
        assert x0.min() >= -1 and x0.max() <= 1  # clip_x0: the pixel range
    np.testing.assert_allclose(_images(frames[0]["x_t"], 6), _images(body["x_T"], 6), rtol=2**-11, atol=1e-3)
    np.testing.assert_allclose(_images(frames[-1]["x_next"], 6), _images(body["samples"], 6), rtol=2**-11, atol=1e-3)
    first = _images(frames[0]["x_t"], 6)
    assert not np.allclose(first, _images(frames[0]["x0"], 6)) and abs(np.std(first) - 1) < 0.2  # starts from N(0, I)
    final = _images(body["samples"], 6)
    assert final.min() >= -1 and final.max() <= 1
    # A conditional run: the class of each sample (every class in proportion without a label).
    assert body["class_names"] == [str(i) for i in range(10)] and len(body["labels"]) == 6
    assert body["label"] is None and body["guidance_used"] == 2.0  # the run's sample.guidance
    # Without frames: only the samples.
    r = client.post("/api/runs/digits/sample", json={"n": MAX_SAMPLE_IMAGES, "frames": False, "steps": 4})
    assert r.status_code == 200 and "frames" not in r.json()
    _images(r.json()["samples"], MAX_SAMPLE_IMAGES)
    # The run's own defaults: a 4 x 4 grid with its sampler and steps.
    body = client.post("/api/runs/digits/sample", json={}).json()
    assert body["n"] == 16 and body["steps"] == 4 and body["sampler"] == "dpm++2m" and len(body["frames"]) == 4


def test_image_label_by_class_name_and_guidance(client):
    def sample(**kw):
        r = client.post("/api/runs/digits/sample", json={"steps": 4, "n": 8, "seed": 0, "frames": False, **kw})
        assert r.status_code == 200, r.text
        return r.json()

    seven = sample(label="7", guidance=2.0)
    assert seven["label"] == 7 and seven["label_name"] == "7" and seven["labels"] == ["7"] * 8
    assert sample(label=7, guidance=2.0)["samples"] == seven["samples"]  # name and index agree
    # The label reaches the model (a 20-step model barely tells the classes apart, so only "differs").
    assert sample(label="3", guidance=2.0)["samples"] != seven["samples"]
    # Guidance changes the images; 0 is the unconditional model, whatever the label.
    strong = sample(label="7", guidance=6.0)
    assert strong["guidance_used"] == 6.0 and strong["samples"] != seven["samples"]
    unconditional = sample(guidance=0.0)
    assert sample(label="7", guidance=0.0)["samples"] == sample(label="3", guidance=0.0)["samples"] == unconditional["samples"]
    assert unconditional["labels"] is None  # the model ran without a class: no sample has one to show
    # One class per sample (the playground regenerates each training image with its own class).
    mixed = sample(labels=[1, 2, 3], n=3)
    assert mixed["labels"] == ["1", "2", "3"] and mixed["samples"]["shape"] == [3, 1, 8, 8]
    # Class names work on conditional point runs too.
    r = client.post("/api/runs/cond/sample", json={"label": "circle", "steps": 3, "n": 20, "frames": False}).json()
    assert r["label"] == 1 and r["labels"] == ["circle"] * 20


@pytest.mark.parametrize(
    "body, field",
    [
        ({"n": MAX_SAMPLE_IMAGES + 1}, "n"),
        ({"n": MAX_SAMPLE_IMAGES + 1, "frames": False}, "n"),
        ({"n": 64, "steps": 250}, "n"),  # 64 x 250 x 1 x 8 x 8 numbers per panel: over the frame cap
        ({"steps": MAX_STEPS + 1}, "steps"),
        ({"label": 10}, "label"),
        ({"label": "ten"}, "label"),
        ({"label": ""}, "label"),
        ({"label": "x" * 65}, "label"),
        ({"label": 1.5}, "label"),
        ({"labels": [0, 1], "n": 3}, "labels"),
        ({"labels": [0, 10], "n": 2}, "labels"),
        ({"labels": [0, 1], "label": 0}, "labels"),
        ({"labels": [-1]}, "labels.0"),
        ({"guidance": -1}, "guidance"),
        ({"guidance": 1e9}, "guidance"),
    ],
)
def test_image_sample_caps_name_the_field(client, body, field):
    r = client.post("/api/runs/digits/sample", json=body)
    assert r.status_code == 422, r.text
    assert _detail(r).startswith(f"{field}:"), _detail(r)


def test_image_frame_cap_is_exact(client):
    # n x steps x C x H x W: 50 x 156 x 64 = 499 200 is allowed, one step more is not.
    steps = MAX_FRAME_IMAGE_VALUES // (50 * 64)
    r = client.post("/api/runs/digits/sample", json={"n": 50, "steps": steps + 1, "sampler": "ddim"})
    assert r.status_code == 422 and str(MAX_FRAME_IMAGE_VALUES) in _detail(r) and "50 x 157 x 1 x 8 x 8" in _detail(r)
    r = client.post("/api/runs/digits/sample", json={"n": 2, "steps": 3, "labels": [4, 5]})
    assert r.status_code == 200 and r.json()["labels"] == ["4", "5"]
    assert client.post("/api/runs/tiny/sample", json={"labels": [0]}).status_code == 422  # no classes


def test_concurrent_sampling_is_independent(client):
    """Eight requests at once from threads: each gets exactly what it gets alone."""

    def body(seed):
        return {"sampler": "ddpm", "steps": 5, "n": 300, "seed": seed, "frames": False}

    alone = {seed: client.post("/api/runs/tiny/sample", json=body(seed)).json()["samples"]["points"] for seed in (0, 1, 2, 3)}
    assert alone[0] != alone[1]
    seeds = [0, 1, 2, 3, 0, 1, 2, 3]
    barrier = threading.Barrier(len(seeds))

    def call(seed):
        barrier.wait()
        r = client.post("/api/runs/tiny/sample", json=body(seed))
        assert r.status_code == 200
        return seed, r.json()["samples"]["points"]

    with ThreadPoolExecutor(len(seeds)) as pool:
        results = list(pool.map(call, seeds))
    for seed, points in results:
        assert points == alone[seed], f"seed {seed}: result differs from the same request made alone"


# --- training jobs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, field",
    [
        ({"steps": 10}, "steps"),
        ({"steps": MAX_TRAIN_STEPS + 1}, "steps"),
        ({"data": "bimodal-1d"}, "data"),
        ({"data": "/etc/passwd"}, "data"),
        ({"data": "digits"}, "data"),
        ({"data": "patterns:stripes"}, "data"),
        ({"data": "patterns", "steps": MAX_IMAGE_TRAIN_STEPS + 1}, "steps"),
        ({"data": "patterns", "classes": ["spiral", "circle"]}, "classes"),
        ({"schedule": "flow"}, "schedule"),
        ({"classes": ["spiral"]}, "classes"),
        ({"classes": ["spiral", "nope"]}, "classes"),
        ({"classes": ["spiral", "spiral"]}, "classes"),
        ({"lr": 1.0}, "lr"),
    ],
)
def test_train_bad_input_names_the_field(client, body, field):
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert _detail(r).startswith(f"{field}:"), _detail(r)


def test_unknown_job_is_404(client):
    assert client.get("/api/jobs/abcdef123456").status_code == 404
    assert client.post("/api/jobs/abcdef123456/cancel", json={}).status_code == 404
    assert client.get("/api/jobs/..%2f..%2fetc").status_code in (404, 422)


def test_training_job_runs_to_a_usable_model(client, runs_dir):
    r = client.post("/api/jobs", json={"data": "moons", "steps": 60, "name": "page-moons"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["run"] == "page-moons" and job["steps"] == 60 and job["active"]
    # Another job while this one runs: refused with a message, not queued without limit.
    busy = client.post("/api/jobs", json={"data": "circle", "steps": 50})
    assert busy.status_code == 429 and "busy" in _detail(busy)
    done = _wait_job(client, job["id"], lambda j: not j["active"])
    assert done["status"] == "trained" and done["step"] == 60 and done["usable_after_s"] > 0
    losses = client.get(f"/api/jobs/{job['id']}", params={"since": 0}).json()["losses"]
    assert len(losses) == 60 and all(np.isfinite(losses))
    tail = client.get(f"/api/jobs/{job['id']}", params={"since": 55}).json()
    assert tail["losses_from"] == 55 and tail["losses"] == losses[55:]
    assert json.loads((runs_dir / "page-moons" / "run.json").read_text())["status"] == "trained"
    r = client.post("/api/runs/page-moons/sample", json={"steps": 4, "n": 20})
    assert r.status_code == 200 and len(r.json()["frames"]) == 4
    # The name is now taken.
    r = client.post("/api/jobs", json={"data": "moons", "steps": 60, "name": "page-moons"})
    assert r.status_code == 409 and _detail(r).startswith("name:")


def test_image_demo_trains_from_the_page(client, runs_dir):
    """The Train view's image demo: the patterns recipe on a smaller U-Net, then sampled by class."""
    info = client.get("/api/info").json()["train"]
    assert info["image_data"] == ["patterns"] and info["image_default_steps"] == DEFAULT_IMAGE_TRAIN_STEPS
    r = client.post("/api/jobs", json={"data": "patterns", "steps": 50})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["run"] == "patterns-50" and job["data"] == "patterns (image demo)"
    done = _wait_job(client, job["id"], lambda j: not j["active"])
    assert done["status"] == "trained" and done["step"] == 50, done
    from denoiselab.config import config_from_run_file

    cfg = config_from_run_file(runs_dir / "patterns-50" / "config.toml")
    assert cfg.data.name == "patterns" and cfg.model.arch == "unet" and cfg.model.hidden == 16 and cfg.train.steps == 50
    run = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "patterns-50")
    assert run["kind"] == "image" and run["shape"] == [1, 16, 16] and run["class_names"] == ["checkerboard", "circles", "stripes", "squares"]
    r = client.post("/api/runs/patterns-50/sample", json={"label": "stripes", "steps": 3, "n": 4})
    assert r.status_code == 200 and r.json()["frames"][0]["x0"]["shape"] == [4, 1, 16, 16]


def test_training_job_can_be_cancelled(client, runs_dir):
    job = client.post("/api/jobs", json={"data": "spiral", "steps": MAX_TRAIN_STEPS, "name": "to-cancel"}).json()
    live = _wait_job(client, job["id"], lambda j: j["step"] > 0)
    listed = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "to-cancel")
    assert listed["status"] == "training" and listed["step"] >= live["step"] and listed["busy"]  # the job's live step
    r = client.post(f"/api/jobs/{job['id']}/cancel", json={})
    assert r.status_code == 202 and r.json()["cancel_requested"]
    done = _wait_job(client, job["id"], lambda j: not j["active"])
    assert done["status"] == "cancelled" and 0 < done["step"] < MAX_TRAIN_STEPS
    info = json.loads((runs_dir / "to-cancel" / "run.json").read_text())
    assert info["status"] == "interrupted"  # resumable, like Ctrl-C on the command line
    listed = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "to-cancel")
    assert listed["status"] == "interrupted" and listed["step"] == done["step"] and listed["steps"] == MAX_TRAIN_STEPS
    assert (runs_dir / "to-cancel" / "checkpoint.safetensors").is_file()
    assert client.post(f"/api/jobs/{job['id']}/cancel", json={}).status_code == 409  # already ended
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["jobs"])


def test_a_crashing_job_fails_alone(client, runs_dir):
    jobs = client.app.state.jobs
    # A recipe that validates but fails inside training (its data file is missing).
    cfg = load_config("quick", ["data.name=missing-points.npy", "train.steps=50"])
    job = jobs.start("crashes", cfg)
    done = _wait_job(client, job["id"], lambda j: not j["active"])
    assert done["status"] == "failed" and "missing-points.npy" in done["error"]
    assert client.get("/api/health").status_code == 200
    # A training process killed from outside (out of memory, say) is failed too.
    job = client.post("/api/jobs", json={"data": "circle", "steps": MAX_TRAIN_STEPS, "name": "killed"}).json()
    _wait_job(client, job["id"], lambda j: j["step"] > 0)
    proc, _ = jobs._procs[job["id"]]
    os.kill(proc.pid, signal.SIGKILL)
    done = _wait_job(client, job["id"], lambda j: not j["active"])
    assert done["status"] == "failed" and "exit code" in done["error"]
    info = json.loads((runs_dir / "killed" / "run.json").read_text())
    assert info["status"] == "failed"
    # run.json's step is where training got to (it said 0), the checkpoint's step is kept beside it.
    assert info["step"] == done["step"] > 0 and info["checkpoint_step"] == 0, info
    listed = next(r for r in client.get("/api/runs").json()["runs"] if r["name"] == "killed")
    assert listed["status"] == "failed" and listed["step"] == done["step"] and not listed["usable"]
    # The server goes on answering and sampling.
    assert client.post("/api/runs/tiny/sample", json={"steps": 2, "n": 5}).status_code == 200


def test_default_run_on_an_empty_machine(tmp_path):
    app = create_app(tmp_path / "runs", job_threads=1, finish_runs=False)
    with TestClient(app) as c:
        assert c.get("/api/runs").json() == {"runs": [], "default": None}
        first = c.post("/api/default-run", json={}).json()
        assert first["job"] is not None and first["run"] == "playground-spiral"
        again = c.post("/api/default-run", json={}).json()  # idempotent: the same job, not a second one
        assert again["job"]["id"] == first["job"]["id"]
        c.post(f"/api/jobs/{first['job']['id']}/cancel", json={})
        _wait_job(c, first["job"]["id"], lambda j: not j["active"])
    # The app's shutdown left no training process behind.
    assert all(not p.is_alive() for p, _ in app.state.jobs._procs.values())


def test_the_default_run_is_complete_and_of_points_before_it_is_new():
    """The run the Reverse and Playground views open with (routes_runs.default_run_name): not the
    newest run when that is, say, an image model still being finished, but a complete run of 2D
    points, the default model's data first."""
    from denoiselab.serve.routes_runs import default_run_name

    def run(name, modified, status="complete", kind="points", data="spiral", usable=True, busy=False):
        return {"name": name, "modified": modified, "status": status, "kind": kind, "data": data, "usable": usable, "busy": busy}

    blobs = run("blobs", 9, status="trained", kind="image", data="digits")
    digits = run("digits", 8, kind="image", data="digits")
    assert default_run_name([blobs, digits, run("moons", 5, data="moons"), run("spiral", 1)]) == "spiral"
    assert default_run_name([blobs, digits, run("moons", 5, data="moons")]) == "moons"
    assert default_run_name([blobs, digits, run("spiral", 7, status="trained")]) == "digits"  # complete first
    assert default_run_name([blobs, digits, run("spiral", 7, status="trained")], points_only=True) == "spiral"
    assert default_run_name([blobs, run("spiral", 7, busy=True), run("old", 1, usable=False)]) == "blobs"
    assert default_run_name([run("spiral", 7, busy=True)]) is None


def test_default_run_reuses_a_usable_run(client):
    r = client.post("/api/default-run", json={}).json()
    usable = {run["name"] for run in client.get("/api/runs").json()["runs"] if run["usable"]}
    assert r["job"] is None and r["run"] in usable


def test_other_host_names_are_refused(tmp_path):
    """A loopback server answers only to loopback names (no DNS rebinding from other sites)."""
    app = create_app(tmp_path, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
    with TestClient(app, base_url="http://attacker.example") as c:
        assert c.get("/api/health").status_code == 400


# --- the command-line hooks ----------------------------------------------------------------------------
def test_serve_arguments_and_port_in_use(tmp_path, capsys):
    import argparse
    import socket

    parser = add_serve_arguments(argparse.ArgumentParser())
    args = parser.parse_args([])
    assert (args.host, args.port, args.runs) == ("127.0.0.1", 8000, "runs")
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "70000"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = parser.parse_args(["--port", str(port), "--runs", str(tmp_path)])
        assert run_serve(args) == 2
    assert "cannot listen" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert run_serve(parser.parse_args(["--runs", str(tmp_path / "file")])) == 2
    assert torch.get_num_threads() >= 1


def test_run_serve_prints_its_url_and_serves(tmp_path):
    """The hook the CLI calls: a real server process, its URL on stdout, Ctrl-C stops it cleanly."""
    import subprocess
    import sys
    import urllib.request

    port = _free_port()
    code = (
        "import argparse, sys\n"
        "from denoiselab.serve import add_serve_arguments, run_serve\n"
        "if __name__ == '__main__':\n"
        f"    sys.exit(run_serve(add_serve_arguments(argparse.ArgumentParser()).parse_args(['--port', '{port}', '--runs', sys.argv[1]])))\n"
    )
    script = tmp_path / "serve.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                    assert json.loads(r.read())["ok"] is True
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"denoiselab playground" in r.read()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, proc.stderr.read()


def _free_port() -> int:
    """A port that was free a moment ago (the server binds it next)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
