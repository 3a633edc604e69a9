"""The prepared GPU benchmark of issue 25: training steps per second of a recipe's network (the
`cifar10` U-Net by default) at fp32 and bf16, samples per second, and one GPU against one CPU
process on the same step, in one invocation.

    python benchmarks/gpu_throughput.py                       # CUDA when present, else the CPU
    python benchmarks/gpu_throughput.py --json gpu.json       # the numbers for BENCHMARKS.md
    python benchmarks/gpu_throughput.py --recipe digits --batch 32 --steps 3 --cpu-steps 1   # a quick check on a CPU

Training: the recipe's own step (training/step.optimiser_step: its objective, label dropout,
EMA, fp16's GradScaler) on random images of the recipe's shape, so no data set is needed; the
first --warmup steps (cuDNN's autotuning, allocations) are not timed; the GPU is synchronised
before each clock read.  Sampling: DPM-Solver++(2M), 20 steps, classifier-free guidance
(two network evaluations a step) from the EMA network in eval mode, under the same autocast.
The CPU row is the same step on one torch thread at fp32 (what `train` does on a CPU), timed
over --cpu-steps steps: the "1 GPU against 1 CPU process" ratio.  Nothing here is a test: the
tests check that this script runs on a CPU (tests/test_gpu_benchmark.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(recipe: str, precision: str, device: torch.device, batch: int | None):
    from denoiselab.builders import objective_from, schedule_from
    from denoiselab.config import load_config
    from denoiselab.training.checkpoint import init_state

    sets = [f"train.precision={precision}", "train.threads=1"] + ([f"train.batch_size={batch}"] if batch else [])
    cfg = load_config(recipe, sets)
    shape, classes = _image_shape(cfg), 10
    state = init_state(cfg, shape[0], device, classes, shape)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(max(4 * cfg.train.batch_size, 512), *shape, generator=generator).to(device)
    y = torch.randint(0, classes, (len(x),), generator=generator).to(device)
    return cfg, state, objective_from(cfg, schedule_from(cfg)), schedule_from(cfg), x, y


def _image_shape(cfg) -> tuple[int, int, int]:
    """The recipe's image shape, by its data set's name (CIFAR-10's 3 x 32 x 32, MNIST's 28 x 28,
    the embedded digits' 8 x 8)."""
    name = str(cfg.data.name).lower()
    if "cifar" in name:
        return (3, 32, 32)
    if "mnist" in name:
        return (1, 28, 28)
    return (1, 8, 8)


def train_steps_per_second(recipe: str, precision: str, device: torch.device, batch: int | None, warmup: int, steps: int) -> dict:
    from denoiselab.training.step import optimiser_step

    cfg, state, objective, _, x, y = _setup(recipe, precision, device, batch)
    for _ in range(warmup):
        optimiser_step(cfg, state, objective, x, y)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimiser_step(cfg, state, objective, x, y)
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    return {"seconds_a_step": seconds, "steps_a_second": 1 / seconds, "images_a_second": cfg.train.batch_size / seconds, "batch": cfg.train.batch_size}


def samples_per_second(recipe: str, precision: str, device: torch.device, n: int, repeats: int) -> dict:
    from denoiselab.guidance import classifier_free
    from denoiselab.samplers import Denoiser, sample_dpmpp_2m, time_grid

    cfg, state, _, schedule, x, _ = _setup(recipe, precision, device, None)
    model = state.sampling_model().eval()
    labels = torch.arange(n, device=device) % 10
    guided = classifier_free(lambda x_t, t, y=None: model(x_t, t, y), 2.0)
    denoise = Denoiser(guided, schedule, cfg.model.prediction, labels)
    grid = time_grid(schedule, 20, "trailing")
    x_T = torch.randn(n, *x.shape[1:], generator=torch.Generator().manual_seed(1)).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else torch.autocast(device.type, enabled=False)
    times = []
    with torch.no_grad(), autocast:
        for _ in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            sample_dpmpp_2m(denoise, x_T, grid)
            _sync(device)
            times.append(time.perf_counter() - start)
    best = min(times[1:])  # the first draw warms up
    return {"seconds": best, "samples_a_second": n / best, "n": n, "evaluations": 40}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="cifar10")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--batch", type=int, help="training batch (default: the recipe's)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cpu-steps", type=int, default=3, help="steps of the one-CPU-process row (0: none)")
    parser.add_argument("--samples", type=int, default=256, help="images a sampling round")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    torch.set_num_threads(1)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, one thread)"
    print(f"{args.recipe} on {where}; torch {torch.__version__}; load {os.getloadavg()[0]:.2f}")
    rows = []
    for precision in args.precisions:
        if device.type == "cpu" and precision != "fp32":
            print(f"{precision}: skipped on a CPU (mixed precision is a GPU option)")
            continue
        trained = train_steps_per_second(args.recipe, precision, device, args.batch, args.warmup, args.steps)
        drawn = samples_per_second(args.recipe, precision, device, args.samples, args.repeats)
        rows.append({"device": str(device), "precision": precision, **{f"train_{k}": v for k, v in trained.items()}, **{f"sample_{k}": v for k, v in drawn.items()}})
    cpu = None
    if args.cpu_steps and device.type != "cpu":
        cpu = train_steps_per_second(args.recipe, "fp32", torch.device("cpu"), args.batch, 1, args.cpu_steps)
    print("| device | precision | batch | ms a step | steps/s | images/s (training) | samples/s (20 steps, guided) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['device']} | {r['precision']} | {r['train_batch']} | {1000 * r['train_seconds_a_step']:.1f} | {r['train_steps_a_second']:.2f} | "
            f"{r['train_images_a_second']:.0f} | {r['sample_samples_a_second']:.1f} |"
        )
    if cpu is not None:
        print(f"| cpu, one thread | fp32 | {cpu['batch']} | {1000 * cpu['seconds_a_step']:.1f} | {cpu['steps_a_second']:.3f} | {cpu['images_a_second']:.1f} | |")
        for r in rows:
            print(f"one {r['device']} at {r['precision']} against one CPU process: {cpu['seconds_a_step'] / r['train_seconds_a_step']:.0f}x the training steps")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"recipe": args.recipe, "where": where, "torch": torch.__version__, "rows": rows, "cpu": cpu}, fh, indent=2)


if __name__ == "__main__":
    main()
