"""The playground's API under hostile use (issue 16): links in and out of the runs folder,
cross-site requests, oversized and loosely typed input, and what error messages give away.

Each test here failed before the fix it names.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from denoiselab import load_config, train
from denoiselab.serve.app import create_app

TINY = ["train.steps=30", "model.hidden=16", "data.n=300", "schedule.T=100", "sample.steps=4", "sample.n=50"]


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread) -> Path:
    """One tiny trained run, copied into each test's own runs folder."""
    root = tmp_path_factory.mktemp("hostile-source")
    train(load_config("quick", TINY), root / "tiny", progress=False, log=_quiet)
    return root / "tiny"


@pytest.fixture
def runs(tmp_path, trained) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained, root / "tiny")
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the runs folder with a secret in a JSON file and a run.json."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.json").write_text(json.dumps({"status": "complete", "data": "SECRET-VALUE", "dim": 2}))
    (out / "run.json").write_text(json.dumps({"status": "complete", "data": "SECRET-VALUE"}))
    return out


def _client(runs: Path) -> TestClient:
    return TestClient(create_app(runs, job_threads=1, finish_runs=False))


def _listed(c) -> dict:
    r = c.get("/api/runs")
    assert r.status_code == 200, r.text
    return {run["name"]: run for run in r.json()["runs"]}


# --- links in the runs folder ---------------------------------------------------------------------
def test_a_linked_run_folder_is_skipped_and_logged_once(runs, outside, trained, caplog):
    (runs / "elsewhere").symlink_to(outside, target_is_directory=True)
    (runs / "alias").symlink_to(runs / "tiny", target_is_directory=True)  # even a link to a real run
    with caplog.at_level(logging.WARNING, logger="denoiselab.serve"), _client(runs) as c:
        assert set(_listed(c)) == {"tiny"}
        assert set(_listed(c)) == {"tiny"}
        r = c.post("/api/default-run", json={})  # the page's first call: the usable run, no training
        assert r.status_code == 200 and r.json() == {"run": "tiny", "job": None}, r.text
        assert c.get("/api/runs/elsewhere").status_code == 400
    warnings = [rec.getMessage() for rec in caplog.records if "skipping" in rec.getMessage()]
    assert len(warnings) == 2 and any("'elsewhere'" in w for w in warnings), warnings  # once per link
    assert str(outside) not in "".join(warnings)


def test_run_files_that_link_outside_are_refused(runs, outside):
    leaky = runs / "leaky"
    shutil.copytree(runs / "tiny", leaky)
    (leaky / "run.json").unlink()
    (leaky / "run.json").symlink_to(outside / "secret.json")
    with _client(runs) as c:
        listed = _listed(c)
        assert listed["leaky"]["status"] == "refused" and not listed["leaky"]["usable"]
        assert "run.json: links outside the run folder 'leaky'" in listed["leaky"]["error"]
        for r in (c.get("/api/runs/leaky"), c.post("/api/runs/leaky/sample", json={"steps": 2, "n": 5})):
            assert r.status_code == 422 and r.json()["detail"].startswith("run: run.json: links outside"), r.text
        assert "SECRET-VALUE" not in c.get("/api/runs").text + c.get("/api/runs/leaky").text
    # A link that stays inside its own run folder is fine.
    inside = runs / "inside"
    shutil.copytree(runs / "tiny", inside)
    (inside / "data.npy").rename(inside / "points.npy")
    (inside / "data.npy").symlink_to(inside / "points.npy")
    with _client(runs) as c:
        assert _listed(c)["inside"]["usable"]


def test_a_run_is_usable_only_when_its_files_load(runs, tmp_path):
    shutil.copytree(runs / "tiny", runs / "bad-data")
    (runs / "bad-data" / "data.npy").write_text("not an array")
    shutil.copytree(runs / "tiny", runs / "bad-weights")
    (runs / "bad-weights" / "model.safetensors").write_bytes(b"\0" * 64)
    with _client(runs) as c:
        listed = _listed(c)
        assert listed["tiny"]["usable"]
        for name, file in (("bad-data", "data.npy"), ("bad-weights", "model.safetensors")):
            assert not listed[name]["usable"] and file in listed[name]["error"], listed[name]
            assert str(tmp_path) not in listed[name]["error"]  # named by the run, not the machine's path
        r = c.post("/api/runs/bad-data/sample", json={"steps": 2, "n": 5})
        assert r.status_code == 422 and str(tmp_path) not in r.text and "'bad-data'" in r.text


# --- cross-site requests ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Origin": "http://attacker.example", "Content-Type": "text/plain"}, 403),  # fetch(..., {mode: "no-cors"})
        ({"Origin": "http://attacker.example", "Content-Type": "application/json"}, 403),
        ({"Origin": "null", "Content-Type": "application/json"}, 403),  # a sandboxed frame
        ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, 403),  # a sibling port or subdomain
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
    ],
)
def test_cross_site_and_non_json_requests_start_nothing(tmp_path, headers, status):
    with _client(tmp_path / "runs") as c:
        r = c.post("/api/default-run", content=b"{}", headers=headers)
        assert r.status_code == status, r.text
        field = "origin:" if status == 403 else "body:"
        assert r.json()["detail"].startswith(field), r.text
        assert c.get("/api/jobs").json() == {"jobs": []}  # no training job started
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_apps_own_page_may_post(tmp_path):
    with _client(tmp_path) as c:
        own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json; charset=utf-8"}
        r = c.post("/api/forward", content=json.dumps({"n": 5, "T": 10}), headers=own)
        assert r.status_code == 200, r.text
        assert c.get("/api/health", headers={"Origin": "http://attacker.example"}).status_code == 200  # reads are harmless


# --- what comes back -------------------------------------------------------------------------------
def test_long_strings_are_not_echoed_back(tmp_path):
    big = "x" * 1_000_000
    with _client(tmp_path) as c:
        for path, body, field in (
            ("/api/forward", {"data": big}, "data"),
            ("/api/jobs", {"classes": [big, "spiral"]}, "classes"),
            ("/api/jobs", {"name": big}, "name"),
            ("/api/forward", {big: 1}, "x"),
        ):
            r = c.post(path, json=body)
            assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text[:300]
            assert len(r.content) < 3000, (path, len(r.content))


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/forward", {"T": "100"}, "T"),
        ("/api/forward", {"T": True}, "T"),
        ("/api/forward", {"n": 10.0}, "n"),
        ("/api/forward", {"seed": "1"}, "seed"),
        ("/api/runs/tiny/sample", {"frames": "yes"}, "frames"),
        ("/api/runs/tiny/sample", {"steps": True}, "steps"),
        ("/api/runs/tiny/sample", {"label": True}, "label"),
        ("/api/runs/tiny/sample", {"labels": [True, False]}, "labels.0"),
        ("/api/jobs", {"steps": "100"}, "steps"),
    ],
)
def test_types_are_strict(runs, path, body, field):
    with _client(runs) as c:
        r = c.post(path, json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(f"{field}:"), r.text


def test_a_json_syntax_error_says_where(tmp_path):
    with _client(tmp_path) as c:
        text = '{"T": 100,, "n": 3}'
        r = c.post("/api/forward", content=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 422
        detail = r.json()["detail"]
        at = text.index(",,") + 2  # 1-based position of the second comma
        assert detail.startswith(f"body: not valid JSON at character {at}"), detail


# --- heavy use ------------------------------------------------------------------------------------
def test_a_full_server_says_busy_at_once_and_health_still_answers(runs):
    """With every sampling slot and waiting place taken, a request gets 503 + Retry-After (it used
    to hold a worker thread for 30 s first); /api/health does not queue behind sampling."""
    app = create_app(runs, job_threads=1, finish_runs=False)
    gate = app.state.sampling_gate
    gate.wait_s = 0.05  # the full server's answer, not how long it waits, is under test
    with TestClient(app) as c:
        gate._busy, gate._waiting = gate.slots, gate.max_waiting  # as if that many were in flight
        r = c.post("/api/runs/tiny/sample", json={"steps": 2, "n": 5})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json()["detail"].startswith("busy:"), r.text
        gate._waiting = 0  # a place to wait, but no slot frees up in time
        r = c.post("/api/runs/tiny/sample", json={"steps": 2, "n": 5})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert c.get("/api/health").json()["ok"]
        gate._busy = 0
        assert c.post("/api/runs/tiny/sample", json={"steps": 2, "n": 5}).status_code == 200
        assert gate.in_use == 0  # every slot given back


def test_the_reply_is_built_inside_the_sampling_limit(runs, monkeypatch):
    """Building the reply (the big part of a frames request) counts against the limit."""
    from denoiselab.serve import routes_sampling

    app = create_app(runs, job_threads=1, finish_runs=False)
    seen = []
    real = routes_sampling.json_response

    def spy(content, status=200):
        seen.append(app.state.sampling_gate.in_use)
        return real(content, status)

    monkeypatch.setattr(routes_sampling, "json_response", spy)
    with TestClient(app) as c:
        assert c.post("/api/runs/tiny/sample", json={"steps": 3, "n": 20}).status_code == 200
    assert seen == [1]  # built while holding its slot


def test_frames_are_compact_and_exact_enough(runs):
    with _client(runs) as c:
        body = c.post("/api/runs/tiny/sample", json={"steps": 4, "n": 100, "seed": 3}).json()
    f = body["frames"][0]["x_t"]
    assert f["dtype"] == "float16" and "points" not in f
    from denoiselab.serve.payloads import decode_panel, panel

    x_t = decode_panel(f)
    assert x_t.shape == (100, 2)
    np.testing.assert_allclose(x_t, decode_panel(body["x_T"]), rtol=2**-11, atol=1e-4)
    keys = ("x_t", "eps", "x0", "x_next")
    compact = sum(len(json.dumps(fr[k])) for fr in body["frames"] for k in keys)
    plain = sum(len(json.dumps(panel(decode_panel(fr[k])))) for fr in body["frames"] for k in keys)
    assert compact < plain / 2, (compact, plain)  # 2.7 bytes a number against about 8


# --- a server that dies --------------------------------------------------------------------------
def _children(pid: int) -> dict[int, str]:
    """Linux: the processes whose parent is ``pid``, with their command lines."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
    return out


def _ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")  # a zombie has ended; only its parent's reaping is left


@pytest.mark.slow  # two real processes start (server, training child): ~15 s on 2 busy cores
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the training process through Linux's /proc")
def test_the_training_process_stops_at_a_checkpoint_when_its_server_is_killed(tmp_path):
    """SIGKILL a real server process in mid-training: its training child writes a resumable
    checkpoint and exits, rather than running on as an orphan until the end."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = tmp_path / "runs"
    code = (
        "import argparse, sys\n"
        "from denoiselab.serve import add_serve_arguments, run_serve\n"
        "if __name__ == '__main__':\n"
        "    sys.exit(run_serve(add_serve_arguments(argparse.ArgumentParser()).parse_args(sys.argv[1:])))\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--runs", str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"

    def call(path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    child = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call("/api/health")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        job = call("/api/jobs", {"data": "spiral", "steps": 20000, "name": "orphan"})
        while call(f"/api/jobs/{job['id']}")["step"] < 20:
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        trainers = [pid for pid, cmd in _children(server.pid).items() if "spawn_main" in cmd]
        assert len(trainers) == 1, _children(server.pid)
        child = trainers[0]
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 30
        while not _ended(child):
            assert time.monotonic() < deadline, "the training process outlived its server by 30 s"
            time.sleep(0.1)
    finally:
        if server.poll() is None:
            server.kill()
        if child is not None and not _ended(child):
            os.kill(child, signal.SIGKILL)
    info = json.loads((runs / "orphan" / "run.json").read_text())
    assert info["status"] == "interrupted" and 20 <= info["step"] < 20000, info  # resumable where it stopped
    assert (runs / "orphan" / "checkpoint.safetensors").is_file()


# --- what the page says ---------------------------------------------------------------------------
def test_the_training_rate_counts_training_time_only():
    """The Train view's rate is steps over the child's own training time, not steps / (now -
    first report), which would fall while the metrics are computed after the last step."""
    import time

    from denoiselab.serve.jobs import Job

    job = Job("0" * 12, "r", "spiral", 3000, status="finishing", step=3000)
    job.started = time.time() - 60  # the first report came a minute ago ...
    job.trained_at = time.time() - 20  # ... training ended 20 s ago, metrics are being computed
    job.train_seconds, job.first_step = 39.98, 1  # the child's clock from step 1 to 3000
    out = job.to_dict()
    assert out["steps_per_s"] == round(2999 / 39.98, 1) and out["eta_s"] is None
    assert 19 < out["finishing_s"] < 22


def test_clamped_steps_carry_the_networks_own_prediction(runs):
    """The Reverse view drew x0-hat after the sampler's clamp and eps-hat recomputed from it; the
    network's own prediction comes with every step that was clamped, and the clamped share."""
    from denoiselab.runs import load_run
    from denoiselab.samplers import Denoiser
    from denoiselab.serve.payloads import decode_panel

    with _client(runs) as c:
        body = c.post("/api/runs/tiny/sample", json={"sampler": "ddim", "steps": 4, "n": 200, "seed": 2}).json()
    bound = body["clip_x0"]
    assert bound > 0
    first = body["frames"][0]
    assert first["clipped"] > 0.3 and "x0_net" in first  # an undertrained eps model at t = 1 lands far off
    x0_net, x0 = decode_panel(first["x0_net"]), decode_panel(first["x0"])
    assert np.abs(x0).max() <= bound * (1 + 1e-3) < np.abs(x0_net).max()
    np.testing.assert_allclose(np.clip(x0_net, -bound, bound), x0, rtol=2**-10, atol=2e-3)  # the clamp is all that differs
    # The network's own output, as the samplers read it, with the clamp off.
    import torch

    run = load_run(runs / "tiny", device="cpu")
    x_t = torch.as_tensor(decode_panel(body["x_T"]), dtype=torch.float32)
    with torch.inference_mode():
        raw = Denoiser(run.model_fn(), run.schedule, run.config.model.prediction)(x_t, first["t"])
    np.testing.assert_allclose(decode_panel(first["eps_net"]), raw.eps.numpy(), rtol=2e-3, atol=2e-3)
    for f in body["frames"]:
        share = float((np.abs(decode_panel(f["x0"])) >= bound * (1 - 1e-3)).any(axis=1).mean())
        assert abs(f["clipped"] - share) < 0.02 and (("x0_net" in f) == (f["clipped"] > 0))
