"""Pixel diffusion against latent diffusion on the digits, at equal total training time.

Run (the full budget is the digits recipe's 4000 pixel steps; ~40 min on 2 idle CPU cores):

    python benchmarks/latent_vs_pixel.py --pixel-steps 4000 --ae-steps 1500

Reduced run recorded in BENCHMARKS.md (~15 min on a shared 2-core machine):

    python benchmarks/latent_vs_pixel.py --pixel-steps 1200 --ae-steps 500 --json /tmp/latent_vs_pixel.json

Contenders, all with the same U-Net recipe (digits.toml: 32 channels, mults [1, 2], attention),
the same schedule, sampler (DPM-Solver++ 20 steps), guidance 2 and seeds:
- pixel: the digits recipe on 1 x 8 x 8 images for --pixel-steps steps; its training time is
  the budget.
- latent c x 4 x 4 for each --latent-channels c: a VAE (kl_weight 1e-6) trained for --ae-steps,
  its latent scale measured, then the same U-Net on the latents for as many steps as fit in the
  rest of the budget (seconds per step measured on a short calibration run just before).
Columns: total training seconds (autoencoder + denoiser), optimiser steps, sampling seconds per
image (n images decoded, one batch), class accuracy of the digits classifier, Frechet distance
and its floor (training images against held-out, image_metrics) and, for latent runs, the
Frechet distance of the autoencoder's reconstructions (the ceiling of that latent model).
Timings are wall-clock on whatever the machine is doing: compare rows of one invocation only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from denoiselab.config import load_config
from denoiselab.training.stages import stage_one_config
from denoiselab.runs import complete_run, evaluate_run, load_run, sample_points
from denoiselab.training import train


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def quiet(*_args) -> None:
    pass


def train_seconds(path: Path) -> float:
    return float(json.loads((path / "run.json").read_text())["train_seconds"])


def seconds_per_step(cfg, out: Path, steps: int = 40) -> float:
    """Seconds per optimiser step of ``cfg``, from a short run of it (removed after)."""
    probe = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps, checkpoint_every=10 * steps))
    train(probe, out, progress=False, log=quiet)
    seconds = train_seconds(out) / steps
    shutil.rmtree(out)
    return seconds


def measure(path: Path, n: int) -> dict:
    run = load_run(path)
    metrics, _ = evaluate_run(run, n=n)
    v = metrics.to_dict()
    t0 = time.perf_counter()
    sample_points(run, n=n, seed=1)
    sampling = (time.perf_counter() - t0) / n
    return {
        "accuracy": v["accuracy"], "frechet": v["frechet"], "frechet_floor": v["frechet_floor"],
        "frechet_reconstruction": v.get("frechet_reconstruction"), "reconstruction_psnr": v.get("reconstruction_psnr"),
        "sampling_s_per_image": sampling,
    }  # fmt: skip


def interleaved_costs(paths: dict[str, Path], rounds: int, n: int, batch: int = 128) -> dict[str, dict]:
    """Fastest seconds (of ``rounds``; as timeit, the least disturbed by other programs) of one training step (the run's objective, backward, AdamW step; batch
    ``batch``) and of drawing ``n`` samples (decoded), the contenders taking turns within each
    round, so a change in the machine's load between rounds hits all of them alike."""
    from denoiselab.builders import objective_from

    runs = {name: load_run(path) for name, path in paths.items()}
    steps = {}
    for name, run in runs.items():
        x = torch.as_tensor(load_training_tensor(run))[:batch]
        y = torch.as_tensor(run.labels[:batch])
        model = run.model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-9)  # the step's cost, not its effect
        objective = objective_from(run.config, run.schedule)
        steps[name] = (model, optimizer, objective, x, y)
    times: dict[str, dict[str, list]] = {name: {"step": [], "sample": []} for name in runs}
    gen = torch.Generator().manual_seed(0)
    for _ in range(rounds):
        for name, (model, optimizer, objective, x, y) in steps.items():
            t0 = time.perf_counter()
            for _ in range(5):
                loss = objective(model, x, gen, y=y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            times[name]["step"].append((time.perf_counter() - t0) / 5)
        for name, run in runs.items():
            run.model.eval()
            t0 = time.perf_counter()
            sample_points(run, n=n, seed=2)
            times[name]["sample"].append((time.perf_counter() - t0) / n)
    return {name: {"step_s": min(t["step"]), "sample_s_per_image": min(t["sample"])} for name, t in times.items()}


def load_training_tensor(run):
    """What a run's denoiser trains on: its latents (a latent run) or its images."""
    import numpy as np

    from denoiselab.runs.folder import LATENTS

    return np.load(run.path / LATENTS) if run.is_latent else run.data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pixel-steps", type=int, default=4000, help="the pixel run's steps: its training time is every contender's budget")
    p.add_argument("--ae-steps", type=int, default=1500, help="each autoencoder's steps (part of its budget)")
    p.add_argument("--latent-channels", type=int, nargs="+", default=[1, 2], help="latent sizes c x 4 x 4")
    p.add_argument("-n", type=int, default=500, help="samples for the metrics and the sampling time")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", help="folder for the runs (default: a temporary folder, removed)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--rounds", type=int, default=8, help="rounds of the interleaved cost measurement")
    p.add_argument("--costs-only", action="store_true", help="only the interleaved costs, of the runs already in --runs")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="latent_vs_pixel-"))
    common = [f"train.threads={args.threads}", f"sample.n={args.n}"]
    rows = []
    started = time.perf_counter()
    names = {"pixel 1 x 8 x 8": runs / "pixel", **{f"latent {c} x 4 x 4 (VAE)": runs / f"latent-{c}x4x4" for c in args.latent_channels}}
    if args.costs_only:
        print_costs(interleaved_costs(names, args.rounds, min(args.n, 100)))
        return 0

    log(f"pixel: digits recipe, {args.pixel_steps} steps")
    pixel_cfg = load_config("digits", common + [f"train.steps={args.pixel_steps}", f"train.warmup_steps={min(200, args.pixel_steps // 10)}"])
    train(pixel_cfg, runs / "pixel", progress=False, log=quiet)
    complete_run(runs / "pixel", log=quiet)
    budget = train_seconds(runs / "pixel")
    rows.append({"model": "pixel 1 x 8 x 8", "ae_seconds": 0.0, "denoiser_seconds": budget, "steps": args.pixel_steps, **measure(runs / "pixel", args.n)})
    log(f"pixel: {budget:.1f} s of training; the budget of every latent run")

    for c in args.latent_channels:
        name = f"latent-{c}x4x4"
        base = [*common, f"autoencoder.channels={c}", f"autoencoder.steps={args.ae_steps}"]
        cfg = load_config("digits-latent", base)
        ae_dir = runs / name / "autoencoder"
        (runs / name).mkdir(parents=True)
        train(stage_one_config(cfg), ae_dir, progress=False, log=quiet)
        complete_run(ae_dir, log=quiet)
        ae_seconds = train_seconds(ae_dir)
        per_step = seconds_per_step(load_config("digits-latent", [*base, f"latent.autoencoder={ae_dir}"]), runs / f"{name}-calibration")
        steps = max(100, int((budget - ae_seconds) / per_step))
        log(f"{name}: autoencoder {ae_seconds:.1f} s; denoiser {per_step * 1000:.1f} ms/step -> {steps} steps")
        cfg = load_config("digits-latent", [*base, f"train.steps={steps}", f"train.warmup_steps={min(200, steps // 10)}"])
        train(cfg, runs / name, progress=False, log=quiet)
        complete_run(runs / name, log=quiet)
        rows.append({"model": f"latent {c} x 4 x 4 (VAE)", "ae_seconds": ae_seconds, "denoiser_seconds": train_seconds(runs / name), "steps": steps, **measure(runs / name, args.n)})

    header = "| model | train s (AE + denoiser) | denoiser steps | sampling ms / image | class accuracy | Frechet (floor) | Frechet of reconstructions |"
    print(header)
    print("|" + "---|" * 7)
    for r in rows:
        total = r["ae_seconds"] + r["denoiser_seconds"]
        ceiling = "-" if r["frechet_reconstruction"] is None else f"{r['frechet_reconstruction']:.1f} (PSNR {r['reconstruction_psnr']:.1f} dB)"
        print(
            f"| {r['model']} | {total:.0f} ({r['ae_seconds']:.0f} + {r['denoiser_seconds']:.0f}) | {r['steps']} | "
            f"{1000 * r['sampling_s_per_image']:.2f} | {r['accuracy']:.3f} | {r['frechet']:.1f} ({r['frechet_floor']:.1f}) | {ceiling} |"
        )
    costs = interleaved_costs(names, args.rounds, min(args.n, 100))
    print_costs(costs)
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(rows)} models, n = {args.n} samples each, {args.threads} torch thread(s), {platform.processor() or platform.machine()}, {minutes:.1f} min in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "costs": costs, "minutes": minutes}, indent=2))
    if not args.runs:
        shutil.rmtree(runs)
    return 0


def print_costs(costs: dict[str, dict]) -> None:
    pixel = next(iter(costs.values()))
    print("\n| model (interleaved, fastest round) | ms / training step | vs pixel | ms / sample (decoded) | vs pixel |")
    print("|---|---|---|---|---|")
    for i, (name, c) in enumerate(costs.items()):
        step, sample = (pixel["step_s"] / c["step_s"], pixel["sample_s_per_image"] / c["sample_s_per_image"])
        ratio = ("1x", "1x") if i == 0 else (f"{step:.1f}x cheaper", f"{sample:.1f}x cheaper")
        print(f"| {name} | {1000 * c['step_s']:.1f} | {ratio[0]} | {1000 * c['sample_s_per_image']:.2f} | {ratio[1]} |")


if __name__ == "__main__":
    sys.exit(main())
