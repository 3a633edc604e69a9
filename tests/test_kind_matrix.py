"""Every kind of run against every command (issue 29): each pair works (exit 0) or is refused in one
line on stderr with exit 2, never a traceback, and a refused command leaves the run folder as it
was; the playground's routes answer 2xx, or a 4xx whose detail is one line.

The kinds: a point run, a conditional point run, an image run, a latent run, an autoencoder run, a
conditional run with a trained classifier, and a flow run.  Which pairs work is stated here
(``WORKS``), so a pair that starts to work or to fail unexpectedly fails the test too.

Time: each kind is trained once, with the smallest budgets, and shared read-only; only the
commands that may write into a run folder (``WRITES``) get a copy, and every other command must
leave the shared folder as it was.  Most of the file's time is drawing figures (`plot`), the
Frechet distance's square roots and the tuner's reference solves (``HEAVY``): those pairs run in
two worker processes started with the runs, beside the in-process pairs, so a 2-core machine uses
both cores.  Every pair is checked the same way wherever it ran.
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import re
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from denoiselab import cli, training
from denoiselab.classifiers import ClassifierSettings
from denoiselab.config import load_config
from denoiselab.image_metrics import feature_net_key, load_or_train_feature_net
from denoiselab.runs import load_run
from denoiselab.runs.folder import RunFolder
from denoiselab.runs.latent import store_latent_scale
from denoiselab.serve.app import create_app
from denoiselab.training.stages import stage_one_config

pytestmark = pytest.mark.slow

POINTS = ["train.steps=30", "model.hidden=16", "model.blocks=1", "data.n=300", "sample.n=60", "sample.steps=4", "train.checkpoint_every=10"]
IMAGES = ["train.steps=10", "model.hidden=8", "model.time_dim=16", "sample.n=8", "sample.steps=3", "train.checkpoint_every=10"]
AUTOENCODER = ["autoencoder.hidden=8", "autoencoder.steps=20"]

KINDS = ("points", "conditional", "image", "latent", "autoencoder", "classifier", "flow")
ALL = frozenset(KINDS)
POINT_RUNS = frozenset({"points", "conditional", "classifier", "flow"})  # 2-D points, sampled in data units

# The command lines of the matrix, and the kinds of run each works on; the others are refused.
COMMANDS = {
    "sample": (["sample", "{run}", "-n", "4", "--steps", "3", "--out", "{tmp}/s.png"], ALL - {"autoencoder"}),
    "sample-npy": (["sample", "{run}", "-n", "4", "--steps", "3", "--out", "{tmp}/s.npy"], ALL - {"autoencoder"}),
    "sample-csv": (["sample", "{run}", "-n", "4", "--steps", "3", "--out", "{tmp}/s.csv"], POINT_RUNS),
    "sample-observe": (["sample", "{run}", "-n", "4", "--steps", "3", "--observe", "x1=0.5", "--out", "{tmp}/s.png"], POINT_RUNS),
    "sample-region": (["sample", "{run}", "-n", "4", "--steps", "3", "--region", "abs(x1) < 1", "--out", "{tmp}/s.png"], POINT_RUNS),
    "sample-classifier": (
        ["sample", "{run}", "-n", "4", "--steps", "3", "--classifier-scale", "1", "--label", "0", "--out", "{tmp}/s.png"], {"classifier"},
    ),
    "evaluate": (["evaluate", "{run}", "-n", "40", "--repeats", "1"], ALL),
    "plot": (["plot", "{run}", "--out", "{tmp}/figures"], ALL),
    "paths": (["paths", "{run}", "-n", "10", "--steps", "3", "--out", "{tmp}/paths.png"], POINT_RUNS),
    "tune-steps": (["tune-steps", "{run}", "--sampler", "dpm++2m", "--nfe", "3", "-n", "20", "--max-calls", "3"], ALL - {"autoencoder"}),
    "train-classifier": (
        ["train-classifier", "{run}", "--steps", "3", "--batch-size", "8", "--hidden", "8", "--threads", "1", "--no-progress"],
        {"conditional", "image", "classifier"},
    ),
    "inpaint": (["inpaint", "{run}", "--image", "{tmp}/digit.png", "--mask", "left", "-n", "2", "--steps", "3", "--out", "{tmp}/filled.png"], {"image"}),
}  # fmt: skip

# Commands that may write into the run folder (a tuned grid, a classifier): they run on a copy.
WRITES = frozenset({"tune-steps", "train-classifier"})
IMAGE_RUNS = ("image", "latent", "autoencoder")
# The pairs that take seconds each (figures, Frechet distances, reference solves), run in the
# worker processes, in the order the test reaches them.
HEAVY = frozenset({
    *((kind, "plot") for kind in KINDS),
    *((kind, command) for kind in IMAGE_RUNS for command in ("evaluate", "tune-steps")),
})

# The playground's routes: one run's details, sampling without and with each gradient guidance.
SAMPLE = {"n": 4, "steps": 3, "sampler": "ddim"}
ROUTES = {
    "details": (None, ALL),
    "sample": (SAMPLE, ALL - {"autoencoder"}),
    "sample-frames": ({**SAMPLE, "frames": True}, ALL - {"autoencoder"}),
    "guided-classifier": ({**SAMPLE, "frames": True, "gradient_guidance": {"classifier": {"label": 0, "scale": 1.0}}}, {"classifier"}),
    "guided-inpaint": ({**SAMPLE, "frames": True, "gradient_guidance": {"inpaint": {"image": 0, "boxes": [[0, 0, 4, 4]]}}}, {"image"}),
    "guided-observe": ({**SAMPLE, "frames": True, "gradient_guidance": {"observe": {"values": {"x1": 0.5}}}}, POINT_RUNS),
}  # fmt: skip


def _quiet(*_args, **_kwargs):
    pass


def _finish(path: Path) -> None:
    """Marked complete without complete_run's metrics and figures (seconds this test does not
    need); an autoencoder gets its latent scale first, which a latent run trained on it needs."""
    run = load_run(path)
    if run.is_autoencoder:
        store_latent_scale(run)
    run.folder.mark_complete(run.info)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, one_thread):
    """One run of each kind, side by side in one runs directory (the playground's too).  The
    module has a cache of its own: its 5-step metric classifiers must not be found by the tests
    of another module that measure a trained model (in whatever order the files run)."""
    root = tmp_path_factory.mktemp("kinds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DENOISELAB_CACHE", str(root / "cache"))
        yield _train_every_kind(root)


def _train_every_kind(root: Path) -> Path:
    classes = 'data.classes=["spiral", "circle"]'
    recipes = {
        "points": ("quick", POINTS),
        "conditional": ("quick", [*POINTS, classes]),
        "flow": ("spiral-flow", POINTS),
        "image": ("digits", IMAGES),
    }
    for name, (recipe, overrides) in recipes.items():
        training.train(load_config(recipe, overrides), root / name, progress=False, log=_quiet)
        _finish(root / name)
    latent = load_config("digits-latent", [*AUTOENCODER, *IMAGES])
    training.train(stage_one_config(latent), root / "autoencoder", progress=False, log=_quiet)
    _finish(root / "autoencoder")
    on_it = [*AUTOENCODER, *IMAGES, f"latent.autoencoder={json.dumps(str(root / 'autoencoder'))}"]
    training.train(load_config("digits-latent", on_it), root / "latent", progress=False, log=_quiet)
    _finish(root / "latent")
    shutil.copytree(root / "conditional", root / "classifier")
    training.train_classifier(root / "classifier", ClassifierSettings(steps=5, batch_size=16, hidden=8), progress=False, log=_quiet)
    _cache_image_classifiers(root)
    return root


def _cache_image_classifiers(root: Path) -> None:
    """The image runs' metric classifiers, trained for a few steps into the cache under the key
    `evaluate` looks up, so it loads one instead of training 600 steps (what it measures does
    not matter here; test_image_metrics tests the training and the cache)."""
    for kind in IMAGE_RUNS:
        run = load_run(root / kind)
        images, labels = torch.as_tensor(run.data), torch.as_tensor(run.labels)
        key = feature_net_key(images, labels, run.num_classes)
        load_or_train_feature_net(images, labels, run.num_classes, key=key, steps=5, batch_size=32)


@dataclass(frozen=True)
class Outcome:
    """What one command line did: its exit status (None: it raised), its stderr (with the
    traceback where it raised), the run folder's files before and after, and the files it left
    in its scratch folder."""

    rc: int | None
    err: str
    before: dict[str, int]
    after: dict[str, int]
    left: tuple[str, ...]


def _run_pair(kind: str, command: str, runs_dir: Path, tmp: Path) -> Outcome:
    """``command`` on ``kind``'s run, in this process or a worker: on a copy where it may write."""
    argv, _ = COMMANDS[command]
    run = runs_dir / kind
    if command in WRITES:
        run = tmp / kind
        shutil.copytree(runs_dir / kind, run)
    if command == "inpaint":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp / "digit.png")
    before = _files(run)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main([a.format(run=run, tmp=tmp) for a in argv])
        except Exception:  # noqa: BLE001 - what a user would see, for the assertion to show
            rc = None
            err.write(traceback.format_exc())
    return Outcome(rc, err.getvalue(), before, _files(run), tuple(sorted(p.name for p in tmp.iterdir())))


def _one_thread_worker() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def heavy(runs_dir, tmp_path_factory):
    """The HEAVY pairs' outcomes as they come, from two worker processes (spawned: a fresh
    interpreter, not a fork of one that has run torch)."""
    pool = multiprocessing.get_context("spawn").Pool(2, initializer=_one_thread_worker)
    pending = {
        (kind, command): pool.apply_async(_run_pair, (kind, command, runs_dir, tmp_path_factory.mktemp(f"{kind}-{command}")))
        for kind in KINDS
        for command in COMMANDS
        if (kind, command) in HEAVY
    }
    pool.close()
    yield pending
    pool.terminate()
    pool.join()


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_command_on_every_kind_works_or_is_refused_in_one_line(runs_dir, heavy, kind, command, tmp_path):
    argv, works = COMMANDS[command]
    if (kind, command) in heavy:
        outcome = heavy[(kind, command)].get(timeout=600)
    else:
        outcome = _run_pair(kind, command, runs_dir, tmp_path)
    rc, err = outcome.rc, outcome.err
    assert "Traceback" not in err, err
    if command not in WRITES:
        assert outcome.after == outcome.before  # the shared run folder is read, never written
    if kind in works:
        assert rc == 0, err
        if command == "evaluate":  # its progress bar on stderr ends full: every unit of work was counted
            assert re.search(r"evaluate: 100%.* (\d+)/\1 ", err), err
        return
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"denoiselab {argv[0]}: error: "), err
    assert outcome.after == outcome.before  # refused before anything was trained or written
    assert not any(name in ("s.png", "s.npy", "s.csv", "paths.png", "filled.png") for name in outcome.left)


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(create_app(runs_dir, job_threads=1, finish_runs=False), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_playground_route_on_every_kind_answers_or_refuses_in_one_line(client, kind, route):
    body, works = ROUTES[route]
    r = client.get(f"/api/runs/{kind}") if body is None else client.post(f"/api/runs/{kind}/sample", json=body)
    if kind in works:
        assert 200 <= r.status_code < 300, r.text
        return
    assert 400 <= r.status_code < 500, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail, detail


def test_the_refusals_say_what_each_kind_supports(runs_dir, tmp_path, capsys):
    """The issue's cases, by their words: what the command is for, not a misleading detail."""

    def refusal(*argv) -> str:
        assert cli.main([str(a) for a in argv]) == 2
        return capsys.readouterr().err

    png = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(png)
    latent, ae, image = runs_dir / "latent", runs_dir / "autoencoder", runs_dir / "image"
    assert "is a latent run" in refusal("train-classifier", latent, "--steps", "2")
    assert "is an autoencoder run" in refusal("train-classifier", ae, "--steps", "2")
    assert not RunFolder(ae).classifier_weights.exists() and not RunFolder(latent).classifier_weights.exists()
    assert "is an autoencoder" in refusal("tune-steps", ae, "--nfe", "3")
    err = refusal("inpaint", latent, "--image", png, "--mask", "left", "--out", tmp_path / "f.png")
    assert "is a latent run" in err and "pixel image run" in err and "channels" not in err
    err = refusal("sample", image, "--observe", "x1=0.5", "--out", tmp_path / "o.png")
    assert "observe fixes coordinates of point runs" in err and "every coordinate" not in err
    assert "is a latent run" in refusal("sample", latent, "--classifier-scale", "1", "--label", "0", "--out", tmp_path / "c.png")
    assert "--steps" in refusal("evaluate", ae, "--steps", "3")  # an autoencoder samples nothing: not silently ignored
