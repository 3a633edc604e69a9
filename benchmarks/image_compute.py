"""Image quality against training compute: the `digits` recipe as shipped against cheaper options.

Each row trains the `digits` recipe with a few keys changed (same data draw, same training seed,
one torch thread), and is scored at several steps on the way (the run is interrupted there and
resumed, which is bit-exact; scoring time does not count as training time): the class accuracy
of 500 class-conditional samples (guidance 2, DPM-Solver++(2M), 20 evaluations) by the run's
cached digit classifier, and the Frechet distance in its feature space as a ratio to the
held-out floor (runs/evaluation.py, what `denoiselab evaluate` prints).  Training compute is
run.json's train_flops_per_step (torch's FlopCounterMode, one step's forward and backward,
training/flops.py) times the steps, and the training seconds on this machine.

Rows with post-hoc EMA snapshots (train.ema_snapshot_every) are scored, at their last step,
once per EMA length in --ema-lengths, reconstructed from the snapshots (EDM2, Karras et al.
2024, Sec. 3): the length is chosen after training.

    python benchmarks/image_compute.py --rows recipe --json recipe.json
    python benchmarks/image_compute.py --rows edm edm-small --json edm.json
    python benchmarks/image_compute.py --from-json recipe.json edm.json     # the tables again
    python benchmarks/image_compute.py --probe 250 --rows mp-small --lr 3e-4 1e-3 3e-3 1e-2   # a learning rate's first look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.training import TrainingInterrupted, train

EDM = ["model.precondition=edm", "model.prediction=x0", "train.weighting=edm", "train.timesteps=edm", "train.sigma_data=0.75"]  # the digits' pixel standard deviation
SNAPSHOTS = ["train.ema_snapshot_every=50"]

# name: (label, overrides, steps, steps at which to score)
ROWS = {
    "recipe": ("the recipe (eps, uniform time, EMA 0.999)", [], 4000, [250, 500, 1000, 2000, 4000]),
    "recipe-400": ("the recipe at 400 steps (a tenth)", ["train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "small": ("the recipe at width 16, 1600 steps (a tenth of its FLOPs)", ["model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "edm-loss": ("EDM's weight and times only (eps, no preconditioning)", ["train.weighting=edm", "train.timesteps=edm", "train.sigma_data=0.75", "train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "edm": ("EDM preconditioning, x0, edm weight and time, post-hoc EMA", [*EDM, *SNAPSHOTS, "train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "edm-800": ("the same at 800 steps (a fifth)", [*EDM, *SNAPSHOTS, "train.steps=800", "train.warmup_steps=40"], 800, [400, 800]),
    "mp-small": ("magnitude-preserving U-Net (EDM2), width 16, 1600 steps", ["model.magnitude_preserving=true", "model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "mp-small-lr": ("the same at learning rate 1e-2 (the rate a 250-step probe chose)", ["model.magnitude_preserving=true", "model.hidden=16", "train.lr=1e-2", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "edm-small": ("the same, width 16 (a quarter of the FLOPs a step), 1600 steps", [*EDM, *SNAPSHOTS, "model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def quiet(*args, **kwargs) -> None:
    pass


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_at_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def image_scores(run_dir: Path) -> dict:
    metrics, _ = evaluate_run(load_run(run_dir, device="cpu"), seed=1000)
    v = metrics.values
    return {"accuracy": v.get("accuracy"), "frechet_ratio": v.get("frechet_ratio")}


def run_row(key: str, root: Path, ema_lengths: list[float]) -> dict:
    label, overrides, steps, stops = ROWS[key]
    cfg = load_config("digits", [*overrides, "train.threads=1"])
    run_dir = root / key
    points, t0, resume = [], time.perf_counter(), False
    for stop in stops:
        try:
            train(cfg, run_dir, resume=resume, progress=False, log=quiet, stop_at=stop if stop < steps else None)
        except TrainingInterrupted:
            pass
        resume = True
        seconds = time.perf_counter() - t0
        info = json.loads((run_dir / "run.json").read_text())
        scores = image_scores(run_dir)
        point = {"step": stop, "train_s": seconds, "gflop": info["train_flops_per_step"] * stop / 1e9, "load": load_average(), **scores}
        log(f"{key} at step {stop}: {point}")
        points.append(point)
        t0 = time.perf_counter() - seconds  # scoring does not count as training time
    row = {"label": label, "overrides": overrides, "steps": steps, "gflop_per_step": info["train_flops_per_step"] / 1e9, "curve": points}
    if cfg.train.ema_snapshot_every and ema_lengths:
        from denoiselab.runs.posthoc_ema import reconstruct_into_run

        row["ema"] = []
        for length in ema_lengths:
            reconstruct_into_run(run_dir, length)
            scores = {"sigma_rel": length, **image_scores(run_dir)}
            log(f"{key} post-hoc EMA {length}: {scores}")
            row["ema"].append(scores)
    return row


def probe(keys: list[str], steps: int, rates: list[float]) -> None:
    """The held-out loss (the training objective on the held-out digits, 8 fixed draws of times and
    noise, the network and its EMA) after ``steps`` optimiser steps of each row at each learning
    rate, the cosine schedule run over those steps: a cheap first look at a learning rate."""
    from denoiselab.builders import objective_from, schedule_from
    from denoiselab.training.checkpoint import init_state
    from denoiselab.training.denoiser import load_training_data
    from denoiselab.training.step import optimiser_step

    print("| row | lr | training loss (last 50 steps) | held-out loss: network | held-out loss: EMA | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in keys:
        for lr in rates:
            label, overrides, _, _ = ROWS[key]
            cfg = load_config("digits", [*overrides, f"train.steps={steps}", f"train.lr={lr}", "train.threads=1"])
            data = load_training_data(cfg)
            x, y = torch.as_tensor(data.train, dtype=torch.float32), torch.as_tensor(data.labels, dtype=torch.long)
            xh, yh = torch.as_tensor(data.held_out, dtype=torch.float32), torch.as_tensor(data.held_out_labels, dtype=torch.long)
            objective = objective_from(cfg, schedule_from(cfg))
            state = init_state(cfg, x.shape[1], torch.device("cpu"), len(data.class_names), tuple(x.shape[1:]))
            t0 = time.perf_counter()
            for _ in range(steps):
                optimiser_step(cfg, state, objective, x, y)
            seconds = time.perf_counter() - t0
            held = []
            for model in (state.model, state.sampling_model()):
                model.eval()
                with torch.no_grad():
                    g = torch.Generator().manual_seed(123)
                    held.append(sum(objective(model, xh, g, y=yh).item() for _ in range(8)) / 8)
            print(f"| {label} | {lr:g} | {sum(state.losses[-50:]) / 50:.4f} | {held[0]:.4f} | {held[1]:.4f} | {seconds:.0f} |", flush=True)


def report(out: dict) -> None:
    print(f"machine: {out['machine']}")
    print("\n| row | step | GFLOP (training) | train s | load (1/5/15 min) | class accuracy | Frechet ratio |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for key, row in out["rows"].items():
        for p in row["curve"]:
            print(f"| {row['label']} | {p['step']} | {p['gflop']:.0f} | {p['train_s']:.0f} | {p['load']} | {p['accuracy']:.3f} | {p['frechet_ratio']:.2f} |")
    ema_rows = {k: r for k, r in out["rows"].items() if r.get("ema")}
    if ema_rows:
        print("\nPost-hoc EMA at the last step, by sigma_rel (class accuracy / Frechet ratio):\n")
        lengths = sorted({e["sigma_rel"] for r in ema_rows.values() for e in r["ema"]})
        print("| row | " + " | ".join(f"{v:g}" for v in lengths) + " |")
        print("|---|" + "---:|" * len(lengths))
        for row in ema_rows.values():
            cells = {e["sigma_rel"]: f"{e['accuracy']:.3f} / {e['frechet_ratio']:.2f}" for e in row["ema"]}
            print(f"| {row['label']} | " + " | ".join(cells.get(v, "-") for v in lengths) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=["recipe", "edm"])
    parser.add_argument("--ema-lengths", nargs="*", type=float, default=[0.04, 0.07, 0.1, 0.15])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--from-json", nargs="+", type=Path, help="print the tables of earlier results")
    parser.add_argument("--keep", type=Path, help="train into this folder (kept) instead of a temporary one")
    parser.add_argument("--probe", type=int, metavar="STEPS", help="instead: the held-out loss of --rows after STEPS steps at each --lr")
    parser.add_argument("--lr", nargs="+", type=float, default=[1e-3], help="--probe: the learning rates")
    args = parser.parse_args(argv)
    if args.probe:
        torch.set_num_threads(1)
        probe(args.rows, args.probe, args.lr)
        return 0
    if args.from_json:
        merged = {"machine": [], "rows": {}}
        for path in args.from_json:
            data = json.loads(path.read_text())
            merged["machine"].append(data["machine"])
            merged["rows"].update(data["rows"])
        report(merged)
        return 0
    torch.set_num_threads(1)
    out = {"machine": machine_info(), "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for key in args.rows:
            out["rows"][key] = run_row(key, root, args.ema_lengths)
            if args.json:
                args.json.write_text(json.dumps(out, indent=1))
    report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
