"""Likelihood of trained 2-D models against the data's true density, and its cost.

Run (one invocation; the data sets can be split over several invocations with --sets):

    python benchmarks/likelihood.py --threads 1 --json /tmp/likelihood.json

Smoke run (300 training steps, one data set, 200 points):

    python benchmarks/likelihood.py --quick --threads 1

What it does, for each data set (spiral, eight-gaussians, moons, checkerboard) and each method:

1. Trains the recipe with ``data.name`` set to the data set, through ``denoiselab.training.train``
   at the recipe's own budget: ``spiral`` (DDPM, eps prediction, linear T = 1000 chain),
   ``spiral-flow`` (rectified flow) and ``spiral-otcfm`` (OT-CFM); with --weightings, the DDPM
   recipe again with each ``train.weighting`` (p2, min-snr, edm, and likelihood with log-SNR-uniform
   times: weighting.py); with --target, the rectified-flow recipe longer (8000 steps), without
   Fourier features and with the likelihood weighting; with --methods checkerboard-density, the
   checkerboard's own recipe (``checkerboard-flow-density``: Fourier features, 32000 steps, 50000
   training points).  "train s" is the wall time of ``train``.
2. Measures the model's NLL of --n fresh draws of the data (denoiselab.runs.likelihood:
   ``likelihood_points``, ``measure_likelihood``: rk45 at rtol = atol = 1e-3, the exact
   divergence) in nats a point, data units; beside it the data's own NLL of the same points (its
   true density, data/densities.py) and the paired gap, an estimate of KL(data || model) with
   its standard error; the model evaluations a point and the seconds per 1000 points.  With
   --bound, the DDPM chain runs' variational bound of the same points too (Ho et al. 2020, Eq. 5;
   ``measure_likelihood(bound=True)``), an upper bound of the chain's own NLL.
3. Scores the recipe's samples as ``denoiselab evaluate`` does (W2 ratio to the floor, 2 sample
   sets), so a row says what the objective buys in samples beside what it buys in likelihood.
4. The contender, on the flow and OT-CFM recipes' runs (not with --no-peer): facebookresearch/flow_matching's
   ``ODESolver.compute_likelihood`` (torchdiffeq's dopri5 at the same rtol and atol, and at a
   tenth of them, exact divergence) on the same model and points, timed in the same process: its
   NLL and seconds, the ratios of the times, and each one's error against a tight solve (rk45 at
   1e-5) of the first 500 points.  torchdiffeq controls the error of the whole batch (an RMS over all points);
   denoiselab that of every point (the largest point's), which costs more steps.

The entropy column is the data's differential entropy by Monte Carlo (runs.likelihood.data_entropy:
20 000 fresh draws, standard error from the means of the draws of 2000).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.runs.likelihood import LikelihoodPoints, data_entropy, likelihood_points, measure_likelihood
from denoiselab.training import train

METHODS = {  # key: (recipe, overrides, label)
    "ddpm": ("spiral", [], "DDPM (eps)"),
    "flow": ("spiral-flow", [], "rectified flow"),
    "otcfm": ("spiral-otcfm", [], "OT-CFM"),
}
WEIGHTINGS = {f"ddpm-{w}": ("spiral", [f"train.weighting={w}"], f"DDPM, {w} weighting") for w in ("p2", "min-snr", "edm")} | {
    # Song et al. 2021's likelihood weighting with their importance sampling of t (uniform in log SNR)
    "ddpm-likelihood": ("spiral", ["train.weighting=likelihood", "train.timesteps=logsnr"], "DDPM, likelihood weighting, log-SNR times"),
}
TARGET = {  # attempts at the target, on the best recipe (rectified flow)
    "flow-likelihood": ("spiral-flow", ["train.weighting=likelihood", "train.timesteps=logsnr"], "rectified flow, likelihood weighting, log-SNR times"),
    "flow-long": ("spiral-flow", ["train.steps=8000"], "rectified flow, 8000 steps"),
    "flow-nofourier": ("spiral-flow", ["model.fourier=0"], "rectified flow, no Fourier features"),
    "flow-long-nofourier": ("spiral-flow", ["train.steps=8000", "model.fourier=0"], "rectified flow, 8000 steps, no Fourier features"),
}
# A data set's own recipe, by --methods only (on another set it would only measure a misfit):
# the checkerboard's edges need the Fourier features that the smooth sets do better without.
OWN = {"checkerboard-density": ("checkerboard-flow-density", [], "checkerboard-flow-density (Fourier features, 32000 steps, 50000 points)")}
PEERS = ("flow", "otcfm")  # the rows measured against flow_matching too
DATASETS = ("spiral", "eight-gaussians", "moons", "checkerboard")
TOLERANCE = 1e-3
REFERENCE_POINTS = 500  # points solved again at rtol 1e-5, to measure both solvers' error


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_average_1m": os.getloadavg()[0]}  # fmt: skip


def peer_likelihood(run, points, tolerance: float) -> tuple[np.ndarray, float]:
    """flow_matching's compute_likelihood on the run's flow model: NLL a point (data units), seconds."""
    from flow_matching.solver import ODESolver

    model = run.model

    class Reversed(torch.nn.Module):  # flow_matching's time s = 1 - t, velocity d x / d s = -u
        def forward(self, x, t):
            return -model(x, 1.0 - torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]), None)

    def standard_normal(x):
        return -0.5 * (x**2).sum(1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    x = torch.as_tensor(run.normalization.encode(points.x), dtype=torch.float32)
    start = time.perf_counter()
    _, log_p = ODESolver(velocity_model=Reversed()).compute_likelihood(
        x_1=x, log_p0=standard_normal, step_size=None, method="dopri5", atol=tolerance, rtol=tolerance, exact_divergence=True
    )
    seconds = time.perf_counter() - start
    jacobian = x.shape[1] * math.log(run.normalization.scale)
    return -(log_p.double().numpy() - jacobian), seconds


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def measure(data: str, key: str, spec, args, root: Path) -> dict:
    recipe, overrides, label = spec
    out = root / f"{data}-{key}"
    cfg = load_config(recipe, [f"data.name={data}", f"train.threads={args.threads}", *overrides, *args.set])
    if not (out / "model.safetensors").exists():
        start = time.perf_counter()
        train(cfg, out, progress=False, log=lambda *_: None)
        train_s = time.perf_counter() - start
    else:
        train_s = float("nan")
    run = load_run(out)
    points = likelihood_points(run, n=args.n, seed=0)
    bound = args.bound and run.schedule.is_chain
    result = measure_likelihood(run, points, rtol=TOLERANCE, atol=TOLERANCE, bound=bound)
    d = result.to_dict()
    row = {"data": data, "method": key, "label": label, "train_s": train_s, "nll": d["nll"], "nll_se": d["nll_se"],
           "true_nll": d["true_nll"], "gap": d["gap"], "gap_se": d["gap_se"], "evaluations": d["evaluations"],
           "seconds": d["seconds"], "seconds_per_1000": 1000 * d["seconds"] / result.n, "n": result.n}  # fmt: skip
    metrics, _ = evaluate_run(run, repeats=2, density=False)
    row["w2_ratio"] = metrics.w2_ratio
    if bound:
        row |= {"bound": d["bound"], "bound_se": d["bound_se"], "bound_gap": float(np.mean(result.bound - result.true_nll))}
    if key in PEERS and not args.no_peer:  # a flow path: the contender runs on the same model and points
        peer_nll, peer_s = peer_likelihood(run, points, TOLERANCE)
        tighter_nll, tighter_s = peer_likelihood(run, points, TOLERANCE / 10)
        # All against a tight solve (rk45 at 1e-5) of the first REFERENCE_POINTS points.
        k = min(REFERENCE_POINTS, result.n)
        tight = measure_likelihood(run, LikelihoodPoints(points.x[:k], points.what), rtol=1e-5, atol=1e-5).nll
        row |= {"peer_nll": mean_se(peer_nll)[0], "peer_seconds": peer_s, "peer_tight_seconds": tighter_s,
                "error": float(np.abs(result.nll[:k] - tight).mean()), "peer_error": float(np.abs(peer_nll[:k] - tight).mean()),
                "peer_tight_error": float(np.abs(tighter_nll[:k] - tight).mean())}  # fmt: skip
    log(f"{data} {key}: NLL {row['nll']:.4f} gap {row['gap']:.4f} +- {row['gap_se']:.4f}, {row['evaluations']:.0f} evaluations, {row['seconds']:.1f} s")
    return row


def tables(rows: list[dict], entropies: dict) -> str:
    lines = [
        "| data | method | train s | NLL (nats/point) | true NLL, same points | gap (KL estimate) | model evals a point | s per 1000 points | W2 ratio | DDPM bound (nats/point) | bound - true NLL |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bound = f"{r['bound']:.4f} ± {r['bound_se']:.4f} | {r['bound_gap']:.4f}" if "bound" in r else "– | –"
        lines.append(
            f"| {r['data']} | {r['label']} | {r['train_s']:.1f} | {r['nll']:.4f} ± {r['nll_se']:.4f} | {r['true_nll']:.4f} | "
            f"{r['gap']:.4f} ± {r['gap_se']:.4f} | {r['evaluations']:.0f} | {r['seconds_per_1000']:.1f} | {r['w2_ratio']:.2f}x | {bound} |"
        )
    if not any("peer_nll" in r for r in rows):
        return "\n".join(lines + _best(rows, entropies))
    lines += [
        "",
        "The contender on the flow runs, same model and points: denoiselab's rk45 at rtol = atol = 1e-3 against flow_matching's "
        "dopri5 at 1e-3 and at 1e-4; error: mean |NLL - denoiselab's solve at 1e-5| over the first 500 points.",
        "",
        "| data | method | denoiselab s | error | flow_matching 1e-3 s | error | time ratio (ours / peer) | flow_matching 1e-4 s | error | time ratio (ours / peer) | denoiselab NLL | flow_matching NLL (1e-3) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in rows if "peer_nll" in r):
        lines.append(
            f"| {r['data']} | {r['label']} | {r['seconds']:.1f} | {r['error']:.4f} | {r['peer_seconds']:.1f} | {r['peer_error']:.4f} | "
            f"{r['seconds'] / r['peer_seconds']:.2f}x | {r['peer_tight_seconds']:.1f} | {r['peer_tight_error']:.4f} | "
            f"{r['seconds'] / r['peer_tight_seconds']:.2f}x | {r['nll']:.4f} | {r['peer_nll']:.4f} |"
        )
    return "\n".join(lines + _best(rows, entropies))


def _best(rows: list[dict], entropies: dict) -> list[str]:
    lines = ["", "| data | entropy by Monte Carlo (nats) | best gap | method |", "|---|---:|---:|---|"]
    for data, (h, se) in entropies.items():
        best = min((r for r in rows if r["data"] == data), key=lambda r: r["gap"])
        lines.append(f"| {data} | {h:.4f} ± {se:.4f} | {best['gap']:.4f} ± {best['gap_se']:.4f} | {best['label']} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=",".join(DATASETS), help="comma-separated data sets")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join([*METHODS, *WEIGHTINGS, *TARGET, *OWN])}")
    p.add_argument("--weightings", action="store_true", help="add the DDPM recipe with the p2, min-snr, edm and likelihood weightings")
    p.add_argument("--target", action="store_true", help="add the rectified-flow variants that try for the 0.05-nat target")
    p.add_argument("--bound", action="store_true", help="the DDPM chain runs' variational bound beside the NLL")
    p.add_argument("--no-peer", action="store_true", help="leave out the flow_matching comparison")
    p.add_argument("-n", "--n", type=int, default=2000, help="points a likelihood (default 2000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (training and likelihood)")
    p.add_argument("--set", action="append", default=[], help="extra recipe overrides, e.g. train.steps=300")
    p.add_argument("--runs", help="keep the trained runs here (and reuse them)")
    p.add_argument("--quick", action="store_true", help="smoke run: 300 steps, spiral, 200 points")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sets, methods = args.sets.split(","), args.methods.split(",")
    if args.weightings:
        methods += list(WEIGHTINGS)
    if args.target:
        methods += list(TARGET)
    if args.quick:
        sets, args.n, args.set = ["spiral"], 200, [*args.set, "train.steps=300"]
    specs = {**METHODS, **WEIGHTINGS, **TARGET, **OWN}
    info = machine()
    log(f"machine: {info}")
    root = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="likelihood-bench-"))
    rows, entropies = [], {}

    def save() -> None:  # after every row, so a long run that is stopped keeps what it measured
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "rows": rows, "entropies": entropies}, indent=1))

    for data in sets:
        for key in methods:
            rows.append(measure(data, key, specs[key], args, root))
            save()
        entropies[data] = data_entropy(load_run(root / f"{data}-{methods[0]}"))
        save()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} with {info['threads']} threads, "
          f"load average {info['load_average_1m']:.1f} at the start.\n")  # fmt: skip
    print(tables(rows, entropies))


if __name__ == "__main__":
    main()
