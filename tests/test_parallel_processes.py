"""Training in real processes started by torchrun (`denoiselab train --nproc 2`, gloo on the CPU):
1 and 2 processes train the same run up to the all-reduce's rounding; a real Ctrl-C stops both
after one step with one checkpoint, and the resumed run is bit-identical to an uninterrupted
2-process run; a process killed outright takes the other down in one line, and its last checkpoint
resumes in one process, which says it is not bit-exact.  The ranks' weights are compared at every
checkpoint, and a difference stops the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from denoiselab.training.parallel import ProcessGroupError, Processes

pytestmark = pytest.mark.slow

# A conditional recipe (classifier-free guidance's null label), importance-sampled times (their
# loss history gathered from both processes), 160 steps of a global batch of 128: a few seconds.
SETS = [
    "data.n=300", "train.steps=160", "train.batch_size=128", "train.checkpoint_every=40", "train.threads=1",
    "train.timesteps=importance", "train.importance_bins=10", "train.importance_history=2", "sample.n=200",
]  # fmt: skip


def _command(out: Path, *extra: str) -> list[str]:
    sets = [f"--set={s}" for s in SETS]
    return [sys.executable, "-m", "denoiselab", "train", "--config", "four-shapes", *sets, "--out", str(out), "--no-progress", *extra]


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _checkpoint(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint.safetensors"))


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The same recipe trained by one process and by two."""
    where = tmp_path_factory.mktemp("parallel")
    one = _run(_command(where / "one", "--no-figures"), where)
    two = _run(_command(where / "two", "--nproc", "2"), where)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    return where, one, two


def test_two_processes_train_what_one_trains(one_and_two):
    where, _, two = one_and_two
    a, b = _checkpoint(where / "one"), _checkpoint(where / "two")
    # The same batches, noise, times and dropped labels: the losses agree step by step.  Only the
    # order of the gradient all-reduce's float32 sum differs, and Adam and the importance weights
    # grow that rounding over the steps: measured up to 1.2e-5 relative in a loss, 1e-7 to 1e-6
    # in the weights.  A different draw, a lost or repeated row differs at the first decimal.
    np.testing.assert_allclose(b["losses"].numpy(), a["losses"].numpy(), rtol=1e-4)
    for key in a:
        if key.startswith(("model.", "ema.")):
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-4, msg=key)
    torch.testing.assert_close(b["importance.history"], a["importance.history"], rtol=1e-5, atol=1e-6)
    assert torch.equal(b["rng"], a["rng"])
    assert _info(where / "two")["world_size"] == 2 and _info(where / "one")["world_size"] == 1
    assert _info(where / "two")["reproducible"].startswith("bit-exact when run again on this machine (1 thread, 2 processes)")
    # Rank 0 alone reports and writes: one banner, one "trained" line, one set of figures.
    assert two.stdout.count("training recipe") == 1 and two.stdout.count("trained 160 steps") == 1
    assert "2 processes, each training 64 rows of the global batch of 128" in two.stdout
    assert (where / "two" / "samples.png").is_file() and (where / "two" / "metrics.json").is_file()
    assert "Traceback" not in two.stderr


@pytest.mark.parametrize("guidance", [[], ["--observe", "x1=0.5", "--method", "smc", "--particles", "4", "--steps", "10", "--json"]], ids=["plain", "smc"])
def test_torchrun_sample_writes_the_file_one_process_writes(one_and_two, guidance):
    """Each process draws its share of the samples, each sample from its own seed; rank 0 writes
    one file, the bits of a single process's (twisted SMC's particles are a sample's own)."""
    where, _, _ = one_and_two
    run = where / "one"
    single = _run([sys.executable, "-m", "denoiselab", "sample", str(run), "-n", "41", "--out", str(where / "1.npy"), "--no-progress", *guidance], where)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    double = _run([*torchrun, "-m", "denoiselab", "sample", str(run), "-n", "41", "--out", str(where / "2.npy"), "--no-progress", *guidance], where)
    assert single.returncode == 0, single.stderr
    assert double.returncode == 0, double.stderr
    assert np.array_equal(np.load(where / "1.npy"), np.load(where / "2.npy"))
    if guidance:
        one, two = json.loads(single.stdout), json.loads(double.stdout)
        assert two["n"] == 41 and two["smc"] == one["smc"]
    else:
        assert double.stdout.count("wrote 41 samples") == 1


def _wait_for_checkpoint(run: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "checkpoint.safetensors").is_file():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("no checkpoint")


def test_ctrl_c_stops_both_processes_at_one_step_and_the_resumed_run_is_bit_identical(one_and_two):
    where, _, _ = one_and_two
    run = where / "stopped"
    # A terminal's Ctrl-C: SIGINT to the whole process group (the launcher, torchrun's agent, both workers).
    process = subprocess.Popen(
        _command(run, "--nproc", "2", "--no-figures"), cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for_checkpoint(run, process)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    info = _info(run)
    assert info["status"] == "interrupted" and 40 <= info["step"] < 160
    assert err.count(f"interrupted at step {info['step']}; resume with: denoiselab train --nproc 2 --resume {run}") == 1, err
    assert "Traceback" not in err
    resumed = _run([sys.executable, "-m", "denoiselab", "train", "--nproc", "2", "--resume", str(run), "--no-progress", "--no-figures"], where)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _checkpoint(where / "two"), _checkpoint(run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _workers(run: Path) -> list[int]:
    """The pids of the processes torchrun started for ``run`` (not the launcher, which has --nproc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "denoiselab" in argv and str(run) in argv and "--nproc" not in argv and "-m" in argv:
            found.append(int(entry.name))
    return found


def test_a_killed_process_takes_the_other_down_and_its_checkpoint_resumes_in_one_process(one_and_two):
    where, _, _ = one_and_two
    run = where / "killed"
    process = subprocess.Popen(_command(run, "--nproc", "2", "--no-figures"), cwd=where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(run, process)
    workers = _workers(run)
    assert len(workers) == 2, workers
    os.kill(max(workers), signal.SIGKILL)
    killed_at = time.monotonic()
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - killed_at < 30
    assert process.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "another process of the run stopped" in lines[0] and f"resume with denoiselab train --nproc 2 --resume {run}" in lines[0]
    step = _info(run)["step"]
    assert step >= 40
    # The last checkpoint is whole; resumed by one process, the run says it is not bit-exact and
    # ends where the uninterrupted runs end, up to rounding.
    resumed = _run([sys.executable, "-m", "denoiselab", "train", "--resume", str(run), "--no-progress", "--no-figures"], where)
    assert resumed.returncode == 0, resumed.stderr
    assert "trained so far by 2 processes, resumed by 1" in resumed.stdout and "not bit-identical" in resumed.stdout
    # Rounding differences grow over Adam's steps (measured: 1.2e-5 relative in two losses of
    # 240 steps); a wrong draw or a lost step differs at the first decimal.
    a, b = _checkpoint(where / "one"), _checkpoint(run)
    np.testing.assert_allclose(b["losses"].numpy(), a["losses"].numpy(), rtol=1e-4)
    for key in a:
        if key.startswith("model."):
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-4, msg=key)


def _diverge(rank: int, store: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    processes = Processes(rank, 2)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    processes.check_same({"model": model})  # identical: nothing raised
    if rank == 1:
        with torch.no_grad():
            model.bias[0] += 1e-6
    try:
        processes.check_same({"model": model})
        results.put((rank, "same"))
    except ProcessGroupError as exc:
        results.put((rank, str(exc)))
    dist.destroy_process_group()


def test_ranks_whose_weights_differ_are_caught(tmp_path):
    """EDM's check_ddp_consistency idea, run at every checkpoint: a difference of 1e-6 in one
    parameter on one rank stops both, naming it."""
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_diverge, args=(str(tmp_path / "store"), results), nprocs=2, start_method="spawn")
    found = dict(results.get(timeout=30) for _ in range(2))
    assert all("model.bias" in found[r] and "diverged" in found[r] for r in (0, 1)), found
