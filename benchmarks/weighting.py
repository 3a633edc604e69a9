"""Loss weightings and time distributions side by side, at fixed compute, scored by sample quality.

Run (what BENCHMARKS.md reports; the command there is the exact one):

    python benchmarks/weighting.py --threads 1 --json /tmp/weighting.json

Smoke run (a minute): python benchmarks/weighting.py --quick

What it does, in one invocation:

1. Spiral (the ``spiral`` recipe: DDPM, eps target, linear T = 1000 chain, read from the package):
   every weighting of ``train.weighting`` with uniform time, every time distribution of
   ``train.timesteps`` with no weighting, and EDM's pair (edm weighting with edm times), each
   trained with the same network, steps (``--steps``, default the recipe's), batch, data draw and
   the training seeds ``--seeds`` (default 0 1 2).  Only ``train.*`` keys differ between rows.
2. Each trained run is scored by ``denoiselab.runs.evaluate_run`` (what ``denoiselab evaluate``
   reports: W2 of sample set i against reference draw i, energy distance against all 16 reference
   draws, as ratios to the floor between the reference draws) with ``--repeats`` sample sets
   (seeds 1000, 1001, ...), at the recipe's sampler (dpm++2m, 20 evaluations) and at 10
   evaluations (dpm++2m, 10 steps, same grid).  Rows are compared by these, never by loss values
   (a weighted loss is in other units for every weighting).
3. Convergence: for uniform time and importance sampling, the EMA weights are scored every
   ``--every`` steps on the way (training stops there and resumes, bit-exactly, so the run is the
   uninterrupted one) with ``--curve-repeats`` sample sets at the recipe's sampler; reported is
   the first such step with W2 <= 1.1x the floor, per seed.
4. ``--digits``: the ``digits`` recipe (class-conditional 8 x 8 digits, U-Net), a few rows
   (``--digits-rows``), ``--digits-seeds``, ``--digits-steps``, scored by class accuracy and the
   Frechet-distance ratio (evaluate_run on an image run) at the recipe's sampler and at 10
   evaluations.

Output: Markdown tables on stdout (progress on stderr); ``--json PATH`` keeps everything.
The machine is shared during this session: the train-seconds column is noisy; quality is not.
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

import numpy as np
import torch

from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.training import TrainingInterrupted, busy_cores, train

# key: (label, train.* overrides)
ROWS = {
    "uniform": ("none, uniform time (the recipe)", []),
    "p2": ("p2 (gamma 1, k 1), uniform", ["train.weighting=p2"]),
    "min-snr": ("min-snr (gamma 5), uniform", ["train.weighting=min-snr"]),
    "edm-weight": ("edm weight (sigma_data 1), uniform", ["train.weighting=edm"]),
    "sigmoid": ("sigmoid (b 0), uniform", ["train.weighting=sigmoid"]),
    "snr+1": ("snr+1, uniform", ["train.weighting=snr+1"]),
    "logsnr": ("none, logsnr time", ["train.timesteps=logsnr"]),
    "edm-time": ("none, edm time", ["train.timesteps=edm"]),
    "edm": ("edm weight + edm time (EDM)", ["train.weighting=edm", "train.timesteps=edm"]),
    "importance": ("none, importance-sampled time", ["train.timesteps=importance"]),
}
CURVE_ROWS = ("uniform", "importance")
DIGITS_ROWS = ("uniform", "p2", "min-snr", "importance")
TARGET_W2_RATIO = 1.1
TEN_EVALS = {"sampler": "dpm++2m", "steps": 10}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def quiet(*args, **kwargs) -> None:
    pass


def machine_info() -> dict:
    busy = busy_cores(0.5)
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "busy_cores_at_start": None if busy is None else round(busy, 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def point_scores(run, repeats: int, **options) -> dict:
    metrics, _ = evaluate_run(run, repeats=repeats, seed=1000, **options)
    return {"w2_ratio": metrics.w2_ratio, "energy_ratio": metrics.energy_ratio}


def image_scores(run, **options) -> dict:
    metrics, _ = evaluate_run(run, seed=1000, **options)
    v = metrics.values
    return {"accuracy": v.get("accuracy"), "frechet_ratio": v.get("frechet_ratio")}


def train_run(cfg, run_dir: Path, stops: list[int], on_stop) -> float:
    """Train ``cfg`` into ``run_dir``, calling ``on_stop(step)`` at each of ``stops`` (the run is
    interrupted there and resumed, which is bit-exact); returns the training seconds."""
    t0, resume = time.perf_counter(), False
    for stop in stops:
        try:
            train(cfg, run_dir, resume=resume, progress=False, log=quiet, stop_at=stop)
        except TrainingInterrupted:
            pass
        resume = True
        seconds = time.perf_counter() - t0
        on_stop(stop)
        t0 = time.perf_counter() - seconds  # scoring does not count as training time
    if not stops or stops[-1] < cfg.train.steps:
        train(cfg, run_dir, resume=resume, progress=False, log=quiet)
    return time.perf_counter() - t0


def run_spiral(args, root: Path) -> dict:
    results: dict = {}
    for key in args.rows:
        label, overrides = ROWS[key]
        for seed in args.seeds:
            cfg = load_config(
                args.recipe, [*overrides, f"train.seed={seed}", f"train.steps={args.steps}", f"train.threads={args.threads}"]
            )
            run_dir = root / f"spiral-{key}-{seed}"
            curve: list[dict] = []
            stops = []
            if key in CURVE_ROWS and args.every:
                stops = list(range(args.every, args.steps, args.every))

            def score_at(step, run_dir=run_dir, curve=curve):
                s = point_scores(load_run(run_dir, device="cpu"), args.curve_repeats)
                curve.append({"step": step, **s})
                log(f"  {key} seed {seed} step {step}: W2 {s['w2_ratio']:.3f}x")

            seconds = train_run(cfg, run_dir, stops, score_at)
            run = load_run(run_dir, device="cpu")
            if key in CURVE_ROWS and args.every:
                curve.append({"step": args.steps, **point_scores(run, args.curve_repeats)})
            row = {
                "label": label,
                "seed": seed,
                "train_s": seconds,
                "default": point_scores(run, args.repeats),
                "ten": point_scores(run, args.repeats, **TEN_EVALS),
                "curve": curve,
            }
            log(
                f"{key} seed {seed}: {seconds:.1f} s, W2 {row['default']['w2_ratio']:.3f}x / "
                f"{row['ten']['w2_ratio']:.3f}x at 10 evals"
            )
            results.setdefault(key, []).append(row)
            if args.json:  # what is done so far survives an interrupted benchmark
                args.json.with_suffix(".partial.json").write_text(json.dumps({"spiral": results}, indent=1))
    return results


def run_digits(args, root: Path) -> dict:
    results: dict = {}
    for key in args.digits_rows:
        label, overrides = ROWS[key]
        for seed in args.digits_seeds:
            cfg = load_config("digits", [*overrides, f"train.seed={seed}", f"train.steps={args.digits_steps}", f"train.threads={args.threads}"])
            run_dir = root / f"digits-{key}-{seed}"
            seconds = train_run(cfg, run_dir, [], None)
            run = load_run(run_dir, device="cpu")
            row = {"label": label, "seed": seed, "train_s": seconds, "default": image_scores(run), "ten": image_scores(run, **TEN_EVALS)}
            log(f"digits {key} seed {seed}: {seconds:.1f} s, {row['default']} / {row['ten']} at 10 evals")
            results.setdefault(key, []).append(row)
    return results


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def first_step_below(curve: list[dict]) -> int | None:
    for point in curve:
        if point["w2_ratio"] <= TARGET_W2_RATIO:
            return point["step"]
    return None


def report(out: dict) -> None:
    a = out["args"]
    if out["spiral"]:
        report_spiral(out)
    if out.get("digits"):
        report_digits(out)
    print(f"\nMachine: {out['machine']}; wall time {out['wall_s']:.0f} s.")


def report_spiral(out: dict) -> None:
    a = out["args"]
    print(f"Spiral (`{a['recipe']}` recipe), {a['steps']} steps, training seeds {a['seeds']}, {a['repeats']} sample sets per score.")
    print("Cells: mean ± std over training seeds of the ratio to the floor.\n")
    print("| weighting, time | W2, recipe sampler (20 evals) | energy, 20 evals | W2, 10 evals | energy, 10 evals | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, rows in out["spiral"].items():
        cells = [mean_std([r[s][m] for r in rows]) for s in ("default", "ten") for m in ("w2_ratio", "energy_ratio")]
        print(f"| {rows[0]['label']} | " + " | ".join(cells) + f" | {np.mean([r['train_s'] for r in rows]):.1f} |")
    curves = {k: v for k, v in out["spiral"].items() if any(r["curve"] for r in v)}
    if curves:
        print(f"\nFirst scored step with W2 <= {TARGET_W2_RATIO}x the floor (scored every {a['every']} steps, "
              f"{a['curve_repeats']} sample sets, recipe sampler; '-' = not reached):\n")  # fmt: skip
        print("| time | " + " | ".join(f"seed {s}" for s in a["seeds"]) + " |")
        print("|---|" + "---:|" * len(a["seeds"]))
        for key, rows in curves.items():
            cells = [str(first_step_below(r["curve"]) or "-") for r in rows]
            print(f"| {rows[0]['label']} | " + " | ".join(cells) + " |")
        print("\nW2 ratio along training (mean over seeds):\n")
        steps = [p["step"] for p in next(iter(curves.values()))[0]["curve"]]
        print("| time | " + " | ".join(str(s) for s in steps) + " |")
        print("|---|" + "---:|" * len(steps))
        for key, rows in curves.items():
            means = [np.mean([r["curve"][i]["w2_ratio"] for r in rows]) for i in range(len(steps))]
            print(f"| {rows[0]['label']} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


def report_digits(out: dict) -> None:
    a = out["args"]
    print(f"\nDigits (`digits` recipe), {a['digits_steps']} steps, training seeds {a['digits_seeds']}.\n")
    print("| weighting, time | class accuracy, 20 evals | Frechet ratio, 20 evals | class accuracy, 10 evals | Frechet ratio, 10 evals | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, rows in out["digits"].items():
        cells = [mean_std([r[s][m] for r in rows]) for s in ("default", "ten") for m in ("accuracy", "frechet_ratio")]
        print(f"| {rows[0]['label']} | " + " | ".join(cells) + f" | {np.mean([r['train_s'] for r in rows]):.1f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="spiral")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--repeats", type=int, default=8, help="sample sets per final score")
    p.add_argument("--every", type=int, default=1000, help="convergence: score every N steps (0 = off)")
    p.add_argument("--curve-repeats", type=int, default=4)
    p.add_argument("--digits", action="store_true", help="also the digits recipe (minutes per training run)")
    p.add_argument("--digits-rows", nargs="+", default=list(DIGITS_ROWS), choices=list(ROWS))
    p.add_argument("--digits-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--digits-steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--skip-spiral", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None, help="print the tables of a saved run")
    p.add_argument("--quick", action="store_true", help="smoke run: 300 steps, seeds 0, 2 sample sets, 3 rows")
    args = p.parse_args(argv)
    if args.from_json:
        report(json.loads(args.from_json.read_text()))
        return 0
    if args.quick:
        args.steps, args.seeds, args.repeats, args.every, args.curve_repeats = 300, [0], 2, 150, 2
        args.rows, args.digits_steps, args.digits_seeds, args.digits_rows = ["uniform", "min-snr", "importance"], 50, [0], ["uniform"]
    args.steps = args.steps or load_config(args.recipe).train.steps
    args.digits_steps = args.digits_steps or load_config("digits").train.steps
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.runs or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        out = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "machine": machine}
        out["spiral"] = {} if args.skip_spiral else run_spiral(args, root)
        out["digits"] = run_digits(args, root) if args.digits else {}
    out["wall_s"] = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
