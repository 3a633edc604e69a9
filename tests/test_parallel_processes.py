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


# --- the first stages: a latent recipe's autoencoder, a text recipe's text encoder -------------

LATENT = [
    "data.n=200", "train.steps=4", "train.batch_size=32", "model.hidden=8", "model.time_dim=16", "sample.n=20", "sample.steps=2",
    "train.threads=1", "autoencoder.hidden=8", "autoencoder.steps=6", "train.checkpoint_every=3",
]  # fmt: skip
TEXT = [
    "data.n=120", "text.clip_steps=6", "text.clip_batch=16", "text.width=16", "text.layers=1", "text.heads=2", "train.steps=4",
    "train.batch_size=16", "train.checkpoint_every=3", "train.warmup_steps=2", "model.hidden=8", "model.mults=[1, 2]", "train.threads=1",
]  # fmt: skip


def _train_first_stages(out: str) -> None:
    """Run by torchrun (2 processes) and by python (1): a latent recipe (in one process its stage
    one alone, the same autoencoder recipe, without the cost of completing it) and a text recipe."""
    from denoiselab.config import load_config
    from denoiselab.training import train
    from denoiselab.training.stages import stage_one_config

    processes = Processes.start()
    Path(out).mkdir(parents=True, exist_ok=True)
    _contrastive_gradient(processes, Path(out))
    quiet = dict(progress=False, log=lambda *_: None, processes=processes, figures=False)
    latent = load_config("digits-latent", LATENT)
    if processes.is_parallel:
        train(latent, Path(out) / "latent", **quiet)
    else:
        train(stage_one_config(latent), Path(out) / "latent" / "autoencoder", **quiet)
    train(load_config("scenes-text", TEXT), Path(out) / "text", **quiet)
    processes.close()


@pytest.fixture(scope="module")
def first_stages(tmp_path_factory):
    where = tmp_path_factory.mktemp("stages")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for command, out in (([sys.executable], "one"), (torchrun, "two")):
        done = _run([*command, __file__, str(where / out)], where)
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr
    return where


@pytest.mark.parametrize("stage", ["latent/autoencoder", "text/text-encoder", "text"])
def test_two_processes_train_the_first_stages_as_one_does(first_stages, stage):
    """The autoencoder (its posterior noise drawn for the global batch), the text encoder (CLIP's
    loss on the gathered global batch) and the text run's denoiser: the same losses in 1 and 2
    processes, measured up to 2e-7 relative (the all-reduce's and the gathered matrix products'
    rounding); a lost row, a batch-local contrastive loss or a wrong scale of a gradient differs
    at the first or second decimal."""
    a, b = _checkpoint(first_stages / "one" / stage), _checkpoint(first_stages / "two" / stage)
    assert len(a["losses"]) > 0
    np.testing.assert_allclose(b["losses"].numpy(), a["losses"].numpy(), rtol=1e-5)
    assert torch.equal(b["rng"], a["rng"])


def test_a_latent_run_in_two_processes_completes_its_first_stage_on_rank_0(first_stages):
    run = first_stages / "two" / "latent"
    assert _info(run / "autoencoder")["status"] == "complete" and "latent_scale" in json.dumps(_info(run / "autoencoder"))
    assert _info(run)["world_size"] == 2 and _info(run)["step"] == 4


def _contrastive_gradient(processes: Processes, out: Path) -> None:
    """CLIP's loss of a fixed batch and its gradient, through DDP, this process's rows of it."""
    from denoiselab.batch_draws import BatchDraws
    from denoiselab.text.contrastive import ContrastiveObjective, ContrastivePair
    from denoiselab.text.encoder import TextEncoder
    from denoiselab.training.parallel import data_parallel

    torch.manual_seed(0)
    model = ContrastivePair(TextEncoder(20, 6, 16, 1, 2), 1, embed=16)
    x, ids = torch.randn(12, 1, 8, 8), torch.randint(1, 20, (12, 6))
    rows = slice(*processes.rows(len(x))[0])
    network = data_parallel(model, processes)  # held until the backward has synchronised the gradients
    loss = ContrastiveObjective()(network, x[rows], BatchDraws(None, len(x), rows.start, rows.stop), y=ids[rows])
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    torch.save({"loss": loss.detach(), "grads": grads}, out / f"contrastive-{processes.rank}.pt")


def test_the_contrastive_gradient_of_two_processes_is_the_gradient_of_one(first_stages):
    """CLIP's loss split over 2 processes: each its rows and columns of the gathered logit matrix;
    the gather's backward sums the gradients into the rows' process, and DDP averages: the
    gradient of every parameter, the temperature's included, is the one-process gradient (a
    missing sum or average would halve or double it)."""
    one = torch.load(first_stages / "one" / "contrastive-0.pt")
    ranks = [torch.load(first_stages / "two" / f"contrastive-{r}.pt") for r in (0, 1)]
    assert float(ranks[0]["loss"] + ranks[1]["loss"]) / 2 == pytest.approx(float(one["loss"]), rel=1e-6)
    assert "logit_scale" in one["grads"]
    for name, grad in one["grads"].items():
        for rank in ranks:
            torch.testing.assert_close(rank["grads"][name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_torchrun_evaluate_scores_what_one_process_scores(one_and_two):
    """The conditional run's sample sets of one class split over 2 processes (each set a request
    rank 0 sends), rank 0 scoring: the same metrics to the last digit."""
    where, _, _ = one_and_two
    command = ["-m", "denoiselab", "evaluate", str(where / "one"), "--label", "circle", "-n", "41", "--repeats", "2", "--steps", "4", "--json", "--no-progress"]
    single = _run([sys.executable, *command], where)
    double = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *command], where)
    assert single.returncode == 0, single.stderr
    assert double.returncode == 0, double.stderr
    one, two = json.loads(single.stdout), json.loads(double.stdout)
    # Each says what holds on its machine: the same samples, whatever the number of processes.
    assert one.pop("reproducible").startswith("bit-exact when run again on this machine (cpu, ")
    assert two.pop("reproducible").startswith("bit-exact when run again on this machine (cpu, 1 thread, 2 processes)")
    assert two == one and double.stdout.count("\n") == 1


if __name__ == "__main__":
    _train_first_stages(sys.argv[1])
