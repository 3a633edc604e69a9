"""Bits per dimension of trained digits runs beside simple densities of the same pixels.

Run (the runs trained first, e.g. at a reduced budget):

    denoiselab train --config digits --set train.steps=800 --out runs/digits
    denoiselab train --config digits-flow --set train.steps=800 --out runs/digits-flow
    denoiselab train --config digits --set train.steps=800 --set train.weighting=likelihood \\
        --set train.timesteps=logsnr --out runs/digits-likelihood
    python benchmarks/digits_likelihood.py runs/digits runs/digits-flow runs/digits-likelihood --json /tmp/digits-likelihood.json

For each run: ``measure_likelihood`` (runs/likelihood.py) of its held-out images (the first
-n of them, the same for every run: the runs share the data split) as the mixture over the ten
classes, in bits/dim of the uniformly dequantised pixels with the offset log2((17 - 1) / 2) = 3;
rk45 at rtol = atol = --tolerance, Hutchinson's divergence with --probes Rademacher probes (the
exact divergence, 64 vector-Jacobian products an evaluation, with --probes 0).  Beside them the
baselines of runs/pixel_baselines.py, fitted on the first run's training images and read on the
same held-out images with the same dequantisation noise (seed 0).

With --bound, the DDPM chain runs get Nichol & Dhariwal's L_vlb of the same held-out images too
(``measure_likelihood(bound=True)``: the discretised decoder, the mixture over the classes, T
model evaluations an image a class), in bits/dim of the discrete pixels with no offset, and its
paired difference from the ODE's dequantised bits/dim; flow runs have no chain and get none.

    python benchmarks/digits_likelihood.py runs/digits --bound
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from denoiselab.runs import load_run
from denoiselab.runs.likelihood import likelihood_points, measure_likelihood, pixel_levels
from denoiselab.runs.pixel_baselines import pixel_baselines


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def describe_run(run) -> str:
    cfg = run.config
    return f"{run.path.name}: {cfg.schedule.kind} {cfg.model.prediction}, weighting {cfg.train.weighting}, {cfg.train.timesteps} times, {cfg.train.steps} steps"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="trained digits run folders")
    p.add_argument("-n", type=int, default=100, help="held-out images (default 100)")
    p.add_argument("--probes", type=int, default=4, help="Hutchinson probes (0: the exact divergence)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="rk45's rtol = atol")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bound", action="store_true", help="chain runs: also the variational bound with the discretised decoder")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    rows = []
    first = None
    for path in args.runs:
        run = load_run(Path(path))
        points = likelihood_points(run, n=args.n)
        first = first or (run, points)
        divergence = {"divergence": "exact"} if args.probes == 0 else {"divergence": "hutchinson", "probes": args.probes}
        bound = args.bound and run.schedule.is_chain
        start = time.perf_counter()
        result = measure_likelihood(run, points, rtol=args.tolerance, atol=args.tolerance, bound=bound, **divergence)
        seconds = time.perf_counter() - start
        bpd, se = mean_se(result.bits_per_dim())
        row = {"model": describe_run(run), "bits_per_dim": bpd, "se": se, "evaluations": result.evaluations, "seconds": result.seconds}
        if bound:
            row["bound"], row["bound_se"] = mean_se(result.bound_bits_per_dim())
            row["bound_minus_ode"], row["bound_minus_ode_se"] = mean_se(result.bound_bits_per_dim() - result.bits_per_dim())
            row["bound_evaluations"], row["bound_seconds"] = result.bound_evaluations, seconds - result.seconds
            log(f"bound {row['bound']:.4f} +- {row['bound_se']:.4f} bits/dim, {row['bound_seconds']:.0f} s")
        rows.append(row)
        log(f"{rows[-1]['model']}: {bpd:.4f} +- {se:.4f} bits/dim, {result.evaluations:.0f} evaluations, {result.seconds:.0f} s")
    run, points = first
    levels = pixel_levels(points.x)
    start = time.perf_counter()
    baselines = pixel_baselines(run.data, points.x, levels, seed=0)
    log(f"baselines fitted and read in {time.perf_counter() - start:.1f} s")
    for baseline in baselines:
        bpd, se = mean_se(baseline.bits_per_dim)
        rows.append({"model": baseline.name, "bits_per_dim": bpd, "se": se, "evaluations": None, "seconds": None})
        log(f"{baseline.name}: {bpd:.4f} +- {se:.4f} bits/dim")
    print(f"Machine: {platform.processor() or 'cpu'}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__} with "
          f"{args.threads} threads, load average {load:.1f} at the start; {points.what}, {levels} pixel levels.\n")  # fmt: skip
    bounds = args.bound and any("bound" in r for r in rows)
    head = "| model | bits/dim | model evals an image (all 10 classes) | seconds |"
    print(head + (" L_vlb bits/dim (discrete, no offset) | L_vlb - ODE (paired) | L_vlb evals an image | L_vlb seconds |" if bounds else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|---:|---:|" if bounds else ""))
    for r in rows:
        evals = "–" if r["evaluations"] is None else f"{r['evaluations']:.0f}"
        seconds = "–" if r["seconds"] is None else f"{r['seconds']:.0f}"
        line = f"| {r['model']} | {r['bits_per_dim']:.3f} ± {r['se']:.3f} | {evals} | {seconds} |"
        if bounds and "bound" in r:
            line += (f" {r['bound']:.3f} ± {r['bound_se']:.3f} | {r['bound_minus_ode']:+.3f} ± {r['bound_minus_ode_se']:.3f} |"
                     f" {r['bound_evaluations']} | {r['bound_seconds']:.0f} |")  # fmt: skip
        elif bounds:
            line += " – | – | – | – |"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average_1m": load, "points": points.what, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
