"""One process against two (torchrun, gloo) on this machine, at the same global batch: examples per
second, the all-reduce's share of a step, and the two loss curves on one figure.

Run (BENCHMARKS.md, "Training in several processes"):

    nice -n 10 python benchmarks/parallel.py --json /tmp/parallel.json --plot docs/img/parallel-loss.png
    python benchmarks/parallel.py --busy      # the same with one core kept busy by another program

For each recipe (spiral: 2000 steps of 512 points; digits: 150 steps of 128 images; --recipes), the
same run is trained by one process (``denoiselab.training.train``) and by two (``torchrun
--standalone --nproc_per_node 2`` running this file's worker, which calls ``train`` with the
process group: the code ``denoiselab train --nproc 2`` runs, without the figures and metrics that
follow training).  Each process has one thread (train.threads = 1, torchrun's default too), so
one process uses one core and two use both.  "train s" is the run folder's train_seconds: the
training loop alone, not the start of Python, torch and the processes.  The two runs compute the
same loss on the same draws, so their quality is the same at every step and time to a quality
is in the ratio of the step rates.  The all-reduce is timed alone: 200 gloo all_reduce calls of
a tensor of the network's parameter count, in two processes, against one process's step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {"spiral": 2000, "digits": 150}


def _sets(recipe: str, steps: int) -> list[str]:
    return [f"train.steps={steps}", "train.threads=1", f"train.checkpoint_every={steps}", "train.ema_snapshot_every=0"]


def worker(recipe: str, steps: int, out: str) -> None:
    """One of torchrun's processes: the training ``denoiselab train --nproc`` runs."""
    from denoiselab.config import load_config
    from denoiselab.training import train
    from denoiselab.training.parallel import Processes

    processes = Processes.start("cpu")
    train(load_config(recipe, _sets(recipe, steps)), out, progress=False, processes=processes, log=lambda *a: None)
    processes.close()


def allreduce_worker(parameters: int, repeats: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from denoiselab.training.parallel import Processes

    processes = Processes.start("cpu")
    grads = torch.randn(parameters)
    for _ in range(10):
        dist.all_reduce(grads)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(grads)
    seconds = (time.perf_counter() - start) / repeats
    if processes.is_main:
        Path(out).write_text(json.dumps({"allreduce_ms": 1e3 * seconds}))
    processes.close()


def _torchrun(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOGLEVEL": "ERROR"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, *args]
    subprocess.run(command, check=True, env=env)


def measure(recipe: str, steps: int, where: Path) -> dict:
    from safetensors.torch import load_file

    from denoiselab.config import load_config
    from denoiselab.training import train

    one, two = where / f"{recipe}-1", where / f"{recipe}-2"
    cfg = load_config(recipe, _sets(recipe, steps))
    state = train(cfg, one, progress=False, log=lambda *a: None)
    _torchrun("--worker", recipe, str(steps), str(two))
    seconds = [json.loads((run / "run.json").read_text())["train_seconds"] for run in (one, two)]
    parameters = sum(p.numel() for p in state.model.parameters())
    timing = where / f"{recipe}-allreduce.json"
    _torchrun("--allreduce", str(parameters), "200", str(timing))
    allreduce_ms = json.loads(timing.read_text())["allreduce_ms"]
    losses = [load_file(str(run / "checkpoint.safetensors"))["losses"].tolist() for run in (one, two)]
    step_ms = 1e3 * seconds[0] / steps
    return {
        "recipe": recipe, "steps": steps, "batch": cfg.train.batch_size, "parameters": parameters,
        "seconds_1": seconds[0], "seconds_2": seconds[1],
        "examples_per_s_1": steps * cfg.train.batch_size / seconds[0], "examples_per_s_2": steps * cfg.train.batch_size / seconds[1],
        "speedup": seconds[0] / seconds[1], "step_ms_1": step_ms, "step_ms_2": 1e3 * seconds[1] / steps,
        "allreduce_ms": allreduce_ms, "losses_1": losses[0], "losses_2": losses[1],
        "max_loss_rel_diff": max(abs(a - b) / abs(a) for a, b in zip(*losses)),
    }  # fmt: skip


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, len(results), figsize=(5.2 * len(results), 5.6), sharex="col", gridspec_kw={"height_ratios": [3, 1.4]})
    axes = np.asarray(axes).reshape(2, -1)
    for col, r in enumerate(results):
        one, two = np.asarray(r["losses_1"]), np.asarray(r["losses_2"])
        steps = np.arange(1, len(one) + 1)
        top, bottom = axes[0, col], axes[1, col]
        top.plot(steps, one, color="tab:blue", lw=2.2, label=f"1 process ({r['seconds_1']:.1f} s)")
        top.plot(steps, two, color="tab:orange", lw=0.9, ls="--", label=f"2 processes ({r['seconds_2']:.1f} s)")
        top.set_yscale("log")
        top.set_title(f"{r['recipe']}: global batch {r['batch']}, {r['steps']} steps")
        top.set_ylabel("training loss (per step)")
        top.legend(frameon=False)
        bottom.plot(steps, np.abs(two - one) / np.abs(one), color="tab:gray", lw=0.8)
        bottom.set_yscale("log")
        bottom.set_xlabel("optimiser step")
        bottom.set_ylabel("|2 - 1| / 1")
    fig.suptitle("The same run in 1 and 2 processes (gloo):\nthe same losses, up to the all-reduce's float rounding (zero where equal)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", default="spiral,digits")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with another program while measuring")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--allreduce", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), args.worker[2])
    if args.allreduce:
        return allreduce_worker(int(args.allreduce[0]), int(args.allreduce[1]), args.allreduce[2])
    load = os.getloadavg()[0]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for recipe in args.recipes.split(","):
                results.append(measure(recipe, STEPS[recipe], Path(tmp)))
    finally:
        if busy is not None:
            busy.kill()
    print(f"load before: {load:.2f}; busy core: {args.busy}; {os.cpu_count()} cores")
    print("| recipe | batch | steps | 1 process: s, examples/s | 2 processes: s, examples/s | 2 / 1 speed | all-reduce ms / step ms | max loss rel. diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['recipe']} | {r['batch']} | {r['steps']} | {r['seconds_1']:.1f}, {r['examples_per_s_1']:.0f} | "
            f"{r['seconds_2']:.1f}, {r['examples_per_s_2']:.0f} | {r['speedup']:.2f}x | "
            f"{r['allreduce_ms']:.2f} / {r['step_ms_1']:.1f} | {r['max_loss_rel_diff']:.1e} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
