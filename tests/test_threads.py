"""The thread count of train.threads = 0 is one thread for every network (an explicit
train.threads or train-classifier --threads wins), and the hint that every training command
gives when other programs leave fewer free cores than torch has threads."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from conftest import set_args

from denoiselab import cli
from denoiselab.config import ConfigError, load_config
from denoiselab.training import auto_threads, compute, set_up_compute

IMAGE_RECIPES = ("digits", "digits-flow", "digits-latent", "patterns", "patterns-latent")


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("recipe", ("spiral", "quick", *IMAGE_RECIPES))
def test_every_network_gets_one_thread(recipe, threads_restored):
    assert auto_threads(load_config(recipe)) == 1
    torch.set_num_threads(2)
    got = set_up_compute(load_config(recipe, ["train.device=cpu"]), print)
    assert torch.get_num_threads() == 1 and got.threads == 1


def test_an_explicit_thread_count_wins(threads_restored):
    got = set_up_compute(load_config("digits", ["train.device=cpu", "train.threads=2"]), print)
    assert torch.get_num_threads() == 2 and got.threads == 2
    assert isinstance(got.after_step, compute.BusyCoresWatch)  # watched: more threads than one
    assert not isinstance(set_up_compute(load_config("digits", ["train.device=cpu"]), print).after_step, compute.BusyCoresWatch)


class FakeMachine:
    """/proc/stat and this process's clocks, advanced by hand: ``run(wall, busy, own)`` passes
    ``wall`` seconds in which ``busy`` cores of 2 were busy, ``own`` of them this process's."""

    def __init__(self, monkeypatch):
        self.now, self.cpu, self.total, self.idle = 1000.0, 5.0, 10_000, 4_000
        monkeypatch.setattr(compute, "_cpu_times", lambda: (self.total, self.idle))
        monkeypatch.setattr(compute.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(compute.time, "process_time", lambda: self.cpu)
        monkeypatch.setattr(compute.os, "cpu_count", lambda: 2)

    def run(self, wall: float, busy: float, own: float) -> None:
        self.now += wall
        self.cpu += own * wall
        self.total += round(2 * 100 * wall)
        self.idle += round((2 - busy) * 100 * wall)


def test_other_programs_busy_cores_are_the_machines_less_this_process(monkeypatch):
    machine = FakeMachine(monkeypatch)
    said = []
    watch = compute.BusyCoresWatch(2, "--threads 1", said.append)
    watch()  # the first step: the window opens
    machine.run(2.0, busy=2.0, own=1.5)  # 2 cores busy, 1.5 of them this process's threads
    assert watch.others_busy() == pytest.approx(0.5)
    watch()  # before the end of the first window: nothing said yet
    assert said == []
    machine.run(3.5, busy=2.0, own=1.5)
    watch()  # 0.5 cores busy elsewhere leave 1.5 free for 2 threads: no hint, a new window
    assert said == [] and not watch.done
    machine.run(61.0, busy=2.0, own=0.9)  # then another program takes a core
    watch()
    assert len(said) == 1 and "1.1 of 2 cores busy" in said[0] and said[0].endswith("resume with --threads 1")
    machine.run(61.0, busy=2.0, own=0.9)
    watch()
    assert len(said) == 1  # said once


def test_a_real_busy_process_is_seen(monkeypatch):
    # Two spinning processes on a 2-core machine (more on a bigger one: one per core): whatever
    # else runs, other programs then keep more than half a core busy over the window.
    monkeypatch.setattr(compute, "FIRST_WINDOW_S", 1.0)
    said = []
    watch = compute.BusyCoresWatch(2, "--set train.threads=1", said.append)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(compute.os.cpu_count() or 1)]
    try:
        watch()
        time.sleep(1.2)
        others = watch.others_busy()
        watch()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    if others is None:  # no /proc/stat on this system
        assert said == []
    else:
        assert others > 0.5 and len(said) == 1 and "--set train.threads=1" in said[0]


IMAGES_TINY = ["train.steps=3", "model.hidden=8", "model.time_dim=16", "sample.n=20", "sample.steps=2", "train.checkpoint_every=3"]


@pytest.mark.parametrize(("argv", "hints"), [
    (["train", "--config", "digits", *set_args(IMAGES_TINY)], 1),
    (["train", "--config", "patterns", *set_args([*IMAGES_TINY, "data.n=80"])], 1),
    (["train", "--config", "digits-latent", *set_args([*IMAGES_TINY, "autoencoder.steps=3", "autoencoder.hidden=8"])], 2),  # the autoencoder, then the latent U-Net
])  # fmt: skip
def test_every_training_command_hints_with_its_own_flag(monkeypatch, capsys, tmp_path, threads_restored, argv, hints):
    monkeypatch.setattr(compute, "FIRST_WINDOW_S", 0.0)
    monkeypatch.setattr(compute.BusyCoresWatch, "others_busy", lambda self: float(self.cores))  # every core busy elsewhere
    run = tmp_path / "run"
    assert cli.main([*argv, "--set", "train.threads=2", "--out", str(run), "--no-progress", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert out.count("note: other programs keep") == hints and out.count("resume with --set train.threads=1") == hints
    if hints == 2:
        return  # classifier guidance is not for latent runs
    # The same run's classifier: train-classifier takes --threads, and its hint says so.
    assert cli.main(["train-classifier", str(run), "--steps", "3", "--batch-size", "8", "--threads", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("note: other programs keep") == 1 and "resume with --threads 1" in out and "train.threads" not in out
    # One thread (the default) has nothing to wait for: no hint.
    assert cli.main(["train-classifier", str(run), "--resume", "--steps", "6", "--no-progress"]) == 0
    assert "note: other programs keep" not in capsys.readouterr().out


def test_a_latent_run_stopped_in_stage_one_continues_with_another_thread_count(tmp_path, threads_restored):
    # What the hint asks in stage one: stop, and start the same command again with one thread.
    from denoiselab.training import TrainingInterrupted, train

    tiny = [*IMAGES_TINY, "autoencoder.steps=6", "autoencoder.hidden=8", "train.checkpoint_every=2"]
    quiet = dict(progress=False, log=lambda *_: None)
    with pytest.raises(TrainingInterrupted):
        train(load_config("digits-latent", [*tiny, "train.threads=2"]), tmp_path / "run", stop_at=3, **quiet)
    train(load_config("digits-latent", [*tiny, "train.threads=1"]), tmp_path / "run", **quiet)
    stage_one = load_config(str(tmp_path / "run" / "autoencoder" / "config.toml"))
    assert stage_one.train.threads == 1 and (tmp_path / "run" / "model.safetensors").is_file()
    # Any other change of the recipe is still refused.
    with pytest.raises(TrainingInterrupted):
        train(load_config("digits-latent", [*tiny, "train.threads=2"]), tmp_path / "other", stop_at=3, **quiet)
    with pytest.raises(ConfigError, match="another recipe"):
        train(load_config("digits-latent", [*tiny, "train.threads=1", "autoencoder.lr=1e-3"]), tmp_path / "other", **quiet)
