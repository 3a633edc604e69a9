"""Seed 004's exercise: the same digits recipe trained with the linear, cosine and quadratic
schedules, side by side in one invocation.

Run (three trainings of the `digits` recipe; about 3 x its training time on 2 CPU cores):

    python benchmarks/digits_schedules.py

Shorter (each schedule trained for 1500 steps):

    python benchmarks/digits_schedules.py --set train.steps=1500

Smoke run (seconds):

    python benchmarks/digits_schedules.py --set train.steps=20 --set model.hidden=8 --set sample.n=40 --set sample.steps=4

For each schedule: the terminal SNR of the chain, wall-clock training time, and with the
recipe's sampler, steps and guidance: the cached digit classifier's accuracy on class-
conditional samples and the Frechet distance in its feature space against the held-out
split, beside the floor (training split against held-out split at the same n)
(runs.evaluate_run).  Everything else (data split, network, seeds, sampler) is the recipe's.
Output: a markdown table on stdout (--json for one JSON object), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from denoiselab.builders import schedule_from
from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.training import train

SCHEDULES = ("linear", "cosine", "quadratic")


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="digits")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the recipe")
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.schedules:
            cfg = load_config(args.recipe, [*args.set, f"schedule.kind={kind}"])
            log(f"{kind}: training {cfg.train.steps} steps")
            t0 = time.perf_counter()
            train(cfg, Path(tmp) / kind, progress=False, log=log)
            seconds = time.perf_counter() - t0
            run = load_run(Path(tmp) / kind)
            metrics, _ = evaluate_run(run)
            v = metrics.to_dict()
            rows.append({"schedule": kind, "terminal_snr_db": schedule_from(cfg).terminal_snr_db(), "train_seconds": seconds, **v})
            log(f"{kind}: {metrics.summary()}")
    sc = cfg.sample
    print(f"{args.recipe}, {cfg.train.steps} steps, {sc.sampler} {sc.steps} steps, guidance {sc.guidance:g}, n = {rows[0]['n']}:\n")
    print("| schedule | SNR at T | train s | class accuracy | Frechet | floor | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['schedule']} | {r['terminal_snr_db']:.1f} dB | {r['train_seconds']:.0f} | {r['accuracy']:.3f} | "
            f"{r['frechet']:.2f} | {r['frechet_floor']:.2f} | {r['frechet_ratio']:.2f}x |"
        )
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
