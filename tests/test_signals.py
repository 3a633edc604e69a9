"""Nothing lost: a real `denoiselab train` process stopped by a real SIGINT or SIGTERM at a
random moment (while a step runs, while a checkpoint is written, before the first step), then
resumed, ends with the bytes of an uninterrupted run; so does a real `denoiselab
train-classifier` process (the same loop); and a run that another process is training is refused
by --resume, also before its first checkpoint."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from denoiselab import cli
from denoiselab.classifiers import ClassifierSettings
from denoiselab.config import load_config
from denoiselab.runs.folder import CHECKPOINT, CLASSIFIER_CHECKPOINT, CLASSIFIER_INFO, CLASSIFIER_WEIGHTS, LOCK_NAME, WEIGHTS, RunFolder
from denoiselab.training import train, train_classifier

SRC = Path(__file__).resolve().parent.parent / "src"
# The quick recipe, one thread (the thread count changes the last bits of the weights), 400
# steps: about 2 s of training, long enough to land a signal anywhere in it.
RECIPE = ["train.threads=1", "train.steps=400"]


def quiet(*_args) -> None:
    pass


def _config(*extra: str):
    return load_config("quick", [*RECIPE, *extra])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("signals") / "uninterrupted"
    train(_config(), run_dir, progress=False, log=quiet)
    return run_dir


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    overrides = [arg for item in (*RECIPE, *extra) for arg in ("--set", item)]
    return _start_command("train", "--config", "quick", *overrides, "--out", str(run_dir), "--no-progress")


def _start_command(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "denoiselab.cli", *argv]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"train ended (status {proc.returncode}) before {what}: {proc.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.001)


def _checkpoint_being_written(run_dir: Path) -> bool:
    return any(name.startswith(f".{CHECKPOINT}.") for name in os.listdir(run_dir))


def _interrupt_and_resume(run_dir: Path, signum: int, moment: str, extra: tuple[str, ...] = ()) -> str:
    """Start training, send ``signum`` at ``moment``, check the exit and the folder, resume in
    this process; returns the train process's stderr."""
    proc = _start(run_dir, *extra)
    lock = run_dir / LOCK_NAME
    _wait_for(lock.exists, proc, "the run's lock file")
    if moment.startswith("writing"):  # after a while, aim at a checkpoint write: send the moment a temporary file shows
        time.sleep(float(moment.split()[-1]))
        _wait_for(lambda: _checkpoint_being_written(run_dir), proc, "a checkpoint write")
    elif moment != "start":  # a random moment within the ~2 s of training
        time.sleep(float(moment))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, f"{moment}: status {proc.returncode}: {err[-2000:]}"
    assert "resume with: denoiselab train --resume" in err
    assert not lock.exists(), "the lock file outlived the training"
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")], "a write was left half done"
    # A checkpoint every step costs time and changes nothing in the weights.
    train(load_config(str(run_dir / "config.toml"), ["train.checkpoint_every=1000"]), run_dir, resume=True, progress=False, log=quiet)
    assert not lock.exists()
    return err


def _tensor_bytes(path: Path) -> tuple[dict, dict]:
    """Every tensor's raw bytes, and the metadata, of a safetensors file.  (Not the file's own
    bytes: safetensors writes the metadata's keys in an order that changes between processes.)"""
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}, fh.metadata()


def _assert_same_bytes(run_dir: Path, reference: Path, moment: str, names: tuple[str, ...] = (CHECKPOINT, WEIGHTS)) -> None:
    for name in names:  # model, EMA, optimiser, RNG and the loss history
        tensors, meta = _tensor_bytes(run_dir / name)
        ref_tensors, ref_meta = _tensor_bytes(reference / name)
        assert meta == ref_meta, f"{name}: {meta} != {ref_meta} after a stop at {moment}"
        assert tensors.keys() == ref_tensors.keys()
        differ = [k for k in tensors if tensors[k] != ref_tensors[k]]
        assert not differ, f"{name}: {differ[:5]} differ after a stop at {moment}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_checkpoint_write_loses_nothing(signum, uninterrupted, tmp_path, one_thread):
    run_dir = tmp_path / "run"
    moment = f"writing after {random.Random(signum).uniform(0.0, 1.5):.3f}"
    _interrupt_and_resume(run_dir, signum, moment, ("train.checkpoint_every=1",))
    _assert_same_bytes(run_dir, uninterrupted, "a checkpoint write")


def test_resume_of_a_run_in_training_is_refused_then_a_sigterm_loses_nothing(uninterrupted, tmp_path, one_thread, capsys):
    run_dir = tmp_path / "run"
    proc = _start(run_dir, "train.checkpoint_every=100000")  # no checkpoint before the stop
    # The lock is held, not just its file made (open, then flock: a moment apart).
    _wait_for(lambda: RunFolder(run_dir).is_busy(), proc, "the run's lock")
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert not (run_dir / CHECKPOINT).exists()  # it said so before the first checkpoint
    assert "another process is training this run" in capsys.readouterr().err
    time.sleep(random.Random(15).uniform(0.0, 1.5))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert not (run_dir / LOCK_NAME).exists()
    train(load_config(str(run_dir / "config.toml")), run_dir, resume=True, progress=False, log=quiet)
    _assert_same_bytes(run_dir, uninterrupted, "a random moment")


@pytest.mark.slow
@pytest.mark.parametrize("case", range(4))
def test_signals_at_random_moments_lose_nothing(case, uninterrupted, tmp_path, one_thread):
    rng = random.Random(1500 + case)
    signum = (signal.SIGINT, signal.SIGTERM)[case % 2]
    moment = "start" if case == 0 else f"{rng.uniform(0.0, 2.0):.3f}"  # "start": before the first step, or near it
    _interrupt_and_resume(tmp_path / "run", signum, moment, (f"train.checkpoint_every={rng.choice([1, 7, 50])}",))
    _assert_same_bytes(tmp_path / "run", uninterrupted, f"{signal.Signals(signum).name} at {moment}")


# train-classifier on a labelled point run: 2000 steps, a few seconds, long enough to land a
# signal before the first checkpoint (step 500) and after it.
CLASSIFIER = ClassifierSettings(steps=2000, batch_size=64, hidden=32)
CLASSIFIER_ARGS = ("--steps", "2000", "--batch-size", "64", "--hidden", "32", "--no-progress")


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("signals") / "labelled"
    cfg = load_config("quick", ["train.threads=1", "train.steps=5", "model.hidden=16", "data.classes=moons,circle", "data.n=400"])
    train(cfg, run_dir, progress=False, log=quiet)
    return run_dir


@pytest.fixture(scope="module")
def uninterrupted_classifier(labelled_run, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("signals") / "classifier"
    shutil.copytree(labelled_run, run_dir)
    train_classifier(run_dir, CLASSIFIER, progress=False, log=quiet)
    return run_dir


@pytest.mark.parametrize(
    "signum, moment", [(signal.SIGINT, "early"), (signal.SIGTERM, "after a checkpoint")], ids=["SIGINT-early", "SIGTERM-later"]
)
def test_a_signal_stops_train_classifier_at_a_step_and_resuming_loses_nothing(
    signum, moment, labelled_run, uninterrupted_classifier, tmp_path, one_thread
):
    run_dir = tmp_path / "run"
    shutil.copytree(labelled_run, run_dir)
    proc = _start_command("train-classifier", str(run_dir), *CLASSIFIER_ARGS)
    _wait_for((run_dir / LOCK_NAME).exists, proc, "the run's lock file")
    if moment != "early":
        _wait_for((run_dir / CLASSIFIER_CHECKPOINT).exists, proc, "the classifier's first checkpoint")
    time.sleep(random.Random(signum).uniform(0.0, 0.3))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, f"{moment}: status {proc.returncode}: {err[-2000:]}"  # as train's
    assert f"resume with: denoiselab train-classifier {run_dir} --resume" in err
    assert not (run_dir / LOCK_NAME).exists(), "the lock file outlived the training"
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")], "a write was left half done"
    stopped = json.loads((run_dir / CLASSIFIER_INFO).read_text())
    assert stopped["status"] == "interrupted" and stopped["step"] < CLASSIFIER.steps
    train_classifier(run_dir, None, resume=True, progress=False, log=quiet)
    _assert_same_bytes(run_dir, uninterrupted_classifier, f"{signal.Signals(signum).name} {moment}", (CLASSIFIER_CHECKPOINT, CLASSIFIER_WEIGHTS))
    assert json.loads((run_dir / CLASSIFIER_INFO).read_text()) == json.loads((uninterrupted_classifier / CLASSIFIER_INFO).read_text())


def test_the_lock_file_goes_with_the_lock(tmp_path):
    from denoiselab.runs.folder import RunBusyError, RunFolder

    assert not RunFolder(tmp_path).is_busy() and not (tmp_path / LOCK_NAME).exists()  # asking creates nothing
    (tmp_path / LOCK_NAME).touch()  # left behind by a killed trainer: no one holds it
    held = RunFolder(tmp_path).lock()
    assert RunFolder(tmp_path).is_busy()
    with pytest.raises(RunBusyError, match="another process is training"):
        RunFolder(tmp_path).lock()
    held.close()
    assert not (tmp_path / LOCK_NAME).exists() and not RunFolder(tmp_path).is_busy()
    with RunFolder(tmp_path).lock():
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()
