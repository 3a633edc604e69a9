"""train.channels_last and train.compile on this machine's CPU: seconds a training step against the
default, in the same invocation, one torch thread.

    python benchmarks/train_options.py            # BENCHMARKS.md, "Training in several processes"

For each recipe (digits: the 710k U-Net at batch 128; spiral: the point MLP at batch 512) the step
(training/step.optimiser_step) is run --warmup times (torch.compile compiles in these), then timed
over --steps; the fastest of --repeats rounds.  Both options are meant for GPUs (tensor cores
prefer NHWC; kernel launches dominate small networks there); this says what they do on a CPU.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def step_seconds(recipe: str, sets: list[str], warmup: int, steps: int, repeats: int) -> tuple[float, float]:
    from denoiselab.builders import objective_from, schedule_from
    from denoiselab.config import load_config
    from denoiselab.training.checkpoint import init_state
    from denoiselab.training.denoiser import load_training_data
    from denoiselab.training.step import optimiser_step

    torch.set_num_threads(1)
    cfg = load_config(recipe, ["train.threads=1", *sets])
    data = load_training_data(cfg)
    x = torch.as_tensor(data.normalization.encode(data.train), dtype=torch.float32)
    y = None if data.labels is None else torch.as_tensor(data.labels, dtype=torch.long)
    objective = objective_from(cfg, schedule_from(cfg))
    state = init_state(cfg, x.shape[1], torch.device("cpu"), len(data.class_names), tuple(x.shape[1:]))
    if cfg.train.channels_last:
        state.model.to(memory_format=torch.channels_last)
    network = torch.compile(state.model) if cfg.train.compile else state.model
    start = time.perf_counter()
    for _ in range(warmup):
        optimiser_step(cfg, state, objective, x, y, network=network)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            optimiser_step(cfg, state, objective, x, y, network=network)
        best = min(best, (time.perf_counter() - start) / steps)
    return best, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; one torch thread")
    print("| recipe | option | ms a step | against default | first steps (s) |")
    print("|---|---|---:|---:|---:|")
    cases = [("digits", []), ("digits", ["train.channels_last=true"]), ("digits", ["train.compile=true"]), ("spiral", []), ("spiral", ["train.compile=true"])]
    base = {}
    for recipe, sets in cases:
        seconds, first = step_seconds(recipe, sets, args.warmup, args.steps, args.repeats)
        base.setdefault(recipe, seconds)
        print(f"| {recipe} | {', '.join(sets) or 'default'} | {1e3 * seconds:.1f} | {seconds / base[recipe]:.2f}x | {first:.1f} |", flush=True)


if __name__ == "__main__":
    main()
