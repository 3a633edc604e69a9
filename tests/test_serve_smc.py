"""Twisted SMC in the Reverse view's API (serve/smc_sampling.py): the whole population in every
frame with its weights, the ESS over the steps, the drawn samples, and the one-line 422s."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from denoiselab import load_config, train
from denoiselab.serve.app import create_app
from denoiselab.serve.limits import MAX_FRAME_POINTS, MAX_PARTICLES
from denoiselab.serve.payloads import decode_panel

POINTS = ["train.steps=10", "model.hidden=16", "data.n=200", "schedule.T=100", "sample.steps=5", "sample.n=50"]
DIGITS = ["train.steps=2", "model.hidden=8", "model.time_dim=16", "sample.n=8", "sample.steps=4"]
K, N, STEPS = 8, 6, 12


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("smc-serve")
    train(load_config("quick", POINTS), root / "plain", progress=False, log=_quiet)
    train(load_config("digits", DIGITS), root / "digits", progress=False, log=_quiet)
    with TestClient(create_app(root, job_threads=1, finish_runs=False)) as c:
        yield c


def _smc(client, run: str = "plain", observe: dict | None = None, **body):
    spec = {"values": {"x1": 0.5}, "method": "smc", "particles": K, **(observe or {})}
    return client.post(f"/api/runs/{run}/sample", json={"n": N, "steps": STEPS, "seed": 3, "gradient_guidance": {"observe": spec}, **body})


def _error(response) -> str:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail
    return detail


@pytest.fixture(scope="module")
def reply(client):
    r = _smc(client)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_frame_holds_the_population_and_its_weights(reply):
    assert reply["sampler"] == "ddpm" and len(reply["frames"]) == STEPS
    assert reply["description"].endswith("; observed x1 = 0.5 by twisted SMC, 8 particles")
    for f in reply["frames"]:
        assert decode_panel(f["x_t"]).shape == decode_panel(f["x_next"]).shape == (N * K, 2)
        w = np.asarray(f["weights"]).reshape(N, K)
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(1), 1.0, atol=2e-3)  # each sample's K weights sum to 1
    final = np.asarray(reply["smc"]["final_weights"]).reshape(N, K)
    np.testing.assert_allclose(final.sum(1), 1.0, atol=2e-3)


def test_the_ess_over_the_steps_agrees_with_the_weights(reply):
    smc = reply["smc"]
    assert len(smc["ess"]) == len(smc["ess_worst"]) == STEPS
    assert all(1.0 - 1e-6 <= w <= e <= K + 1e-6 for w, e in zip(smc["ess_worst"], smc["ess"]))
    assert smc["ess_min"] == pytest.approx(min(smc["ess"]), abs=1e-3) and smc["particles"] == K
    assert set(smc["resampled"]) <= set(range(STEPS)) and smc["resampling_steps"] == len(smc["resampled"])
    # A frame's weights are its x_t's after the step's resampling: a group whose ESS fell below
    # K / 2 was resampled to equal weights (ESS K), the others kept theirs (ESS >= K / 2).  So the
    # weights' ESS is at least K / 2 in every group and at least the step's ESS on average, and
    # equal to it where the step resampled nothing (smc.py's own test checks that closed form).
    for i, f in enumerate(reply["frames"]):
        per_group = 1.0 / (np.asarray(f["weights"]).reshape(N, K) ** 2).sum(1)
        assert (per_group >= K / 2 - 1e-2).all()
        assert float(per_group.mean()) >= smc["ess"][i] - 1e-2
        if i not in smc["resampled"]:
            assert float(per_group.mean()) == pytest.approx(smc["ess"][i], rel=1e-2)
    # One model evaluation (and one backward pass) of each particle per step.
    g = reply["gradient_guidance"]
    assert smc["evaluations_per_sample"] == g["evaluations"] == g["backward_passes"] == K * STEPS
    assert smc["line"].startswith(f"SMC: {K} particles per sample") and f"{K * STEPS} model evaluations" in smc["line"]


def test_the_samples_are_the_drawn_particles_on_the_observed_value(reply):
    samples = decode_panel(reply["samples"])
    last = decode_panel(reply["frames"][-1]["x_next"])
    chosen = reply["smc"]["chosen"]
    assert samples.shape == (N, 2) and [c // K for c in chosen] == list(range(N))  # one particle of each sample's group
    np.testing.assert_allclose(samples, last[chosen], atol=5e-3)  # float16 frames
    np.testing.assert_allclose(samples[:, 0], reply["smc"]["observed"]["x1"], atol=1e-3)
    final = np.asarray(reply["smc"]["final_weights"])
    assert (final[chosen] > 0).all()


def test_one_particle_weighs_nothing(client):
    r = _smc(client, observe={"particles": 1}).json()
    assert all(f["weights"] == [1.0] * N for f in r["frames"]) and r["smc"]["ess"] == [1.0] * STEPS
    assert r["smc"]["chosen"] == list(range(N))


def test_same_seed_same_reply(client, reply):
    again = _smc(client).json()
    assert again["samples"] == reply["samples"] and again["smc"]["ess"] == reply["smc"]["ess"]


def test_defaults_fill_a_frame_with_particles(client):
    spec = {"values": {"x2": -0.25}, "method": "smc"}  # 16 particles by default
    r = client.post("/api/runs/plain/sample", json={"gradient_guidance": {"observe": spec}, "frames": False})
    assert r.status_code == 200, r.text
    d = r.json()
    # ddpm on 4 x the run's 5 steps (the command line's default), as many samples as fit a frame
    assert (d["sampler"], d["steps"], d["n"]) == ("ddpm", 20, min(50, MAX_FRAME_POINTS // 16))
    assert "frames" not in d and len(d["smc"]["ess"]) == 20


@pytest.mark.parametrize(
    "observe, body, field",
    [
        ({"particles": 0}, {}, "gradient_guidance.observe.particles: "),
        ({"particles": MAX_PARTICLES + 1}, {}, "gradient_guidance.observe.particles: "),
        ({"particles": 4, "method": "dps"}, {}, "gradient_guidance.observe: particles: applies to method smc only"),
        ({"scale": 2.0}, {}, "gradient_guidance.observe: scale: method smc has no scale"),
        ({}, {"sampler": "ddim"}, "sampler: 'ddim': smc weights particles by the densities of ancestral DDPM steps"),
        ({"values": {"x1": 1e3}}, {}, "gradient_guidance.observe.values: x1 = 1000 is far outside"),
        ({"values": {"x3": 0.5}}, {}, "gradient_guidance.observe.values: x3"),
        ({"particles": 64}, {"n": 100}, f"n: n x particles must be at most {MAX_FRAME_POINTS}"),
    ],
)
def test_bad_requests_get_one_line_naming_the_field(client, observe, body, field):
    assert _error(_smc(client, observe=observe, **body)).startswith(field)


def test_image_runs_are_refused(client):
    assert _error(_smc(client, "digits")).startswith("gradient_guidance.observe")
    box = {"inpaint": {"boxes": [[0, 0, 4, 4]], "method": "smc"}}
    assert _error(client.post("/api/runs/digits/sample", json={"n": 2, "steps": 4, "gradient_guidance": box})).startswith("gradient_guidance.inpaint.method")


def test_a_region_by_smc_and_by_loss_guidance(client):
    body = {"n": N, "steps": STEPS, "seed": 3}
    r = client.post("/api/runs/plain/sample", json={**body, "gradient_guidance": {"region": {"expression": "x1 > 0.5", "method": "smc", "particles": K}}})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["description"].endswith("; region x1 > 0.5 by twisted SMC, 8 particles") and d["gradient_guidance"]["region"] == "x1 > 0.5"
    for f in d["frames"]:
        np.testing.assert_allclose(np.asarray(f["weights"]).reshape(N, K).sum(1), 1.0, atol=2e-3)
    # The ending weighs by the hard indicator: a sample is outside only where its whole group is.
    final = np.asarray(d["smc"]["final_weights"]).reshape(N, K)
    inside = int(d["smc"]["inside"].split(" of ")[0])
    assert inside == N - d["smc"]["dead_groups"] and (final.max(1) > 0).all()
    loss = client.post("/api/runs/plain/sample", json={**body, "gradient_guidance": {"region": {"expression": "x1 > 0.5", "scale": 5.0}}})
    assert loss.status_code == 200, loss.text
    g = loss.json()["gradient_guidance"]
    assert (g["kind"], g["method"], g["scale"]) == ("region", "loss", 5.0) and "smc" not in loss.json()
    assert loss.json()["description"].endswith("; region x1 > 0.5 by loss guidance, scale 5")
    bad = {"region": {"expression": "x1 >", "method": "smc"}}
    assert _error(client.post("/api/runs/plain/sample", json={**body, "gradient_guidance": bad})).startswith("gradient_guidance.region.expression: ")
    assert _error(client.post("/api/runs/digits/sample", json={"n": 2, "steps": 4, "gradient_guidance": {"region": {"expression": "x1 > 0", "method": "smc"}}})).startswith(
        "gradient_guidance.region"
    )
