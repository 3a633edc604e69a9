"""One- and few-step generation: reflow, MeanFlow, shortcut models, consistency models and progressive distillation against
rectified flow and OT-CFM at 1, 2 and 4 model evaluations, with the teacher at its 19-evaluation
default, on four 2-D data sets.

Run (one invocation per table; see BENCHMARKS.md, "One and two-step generation"):

    nice -n 10 python benchmarks/one_step.py --threads 1 --json /tmp/one_step.json

What it does, for each data set (spiral, eight-gaussians, moons, checkerboard; --datasets):

1. Trains, through ``denoiselab.training.train`` with ``data.name`` set to the data set:
   ``spiral-flow`` (rectified flow, the teacher), ``spiral-otcfm`` (OT-CFM) and
   ``spiral-meanflow`` (MeanFlow, from scratch), ``spiral-shortcut`` (a shortcut model, from
   scratch) and ``spiral-ict`` (improved consistency training, from scratch), each for the
   recipe's steps times --budget (--methods picks some), on each recipe's data.n training points
   or --data-n.
2. Reflow from the rectified-flow teacher as ``denoiselab distill --method reflow`` makes it
   (training/distill.py: ``draw_pairs``, Heun 100 steps with its error against 200, then
   ``train`` on the pairs, spiral-flow's steps times --budget), without the figures; and
   consistency distillation from the same teacher as ``denoiselab distill --method consistency``
   makes it (training/distill.py: ``consistency_config``, spiral-flow's steps times --budget);
   and progressive distillation from it as ``denoiselab distill --method progressive --rounds
   4`` makes it (the teacher's DDIM at 16 steps halved to 1, spiral-flow's steps times --budget
   per round).
3. Scores every model with ``denoiselab.runs.evaluate_run`` (what ``denoiselab evaluate``
   reports): W2 and energy distance of --repeats sample sets of 2000 points (seeds 1000, ...)
   against 16 fresh reference draws of the data, as ratios to the floor between the reference
   draws.  Rectified flow, OT-CFM and reflow with Euler (time-uniform grid: 1, 2, 4 steps =
   evaluations), MeanFlow and the shortcut model with their sampler (1, 2, 4 jumps), the consistency
   models with multistep consistency sampling (1, 2, 4 jumps, time-uniform), the progressive
   student with Euler (its final round is trained for one step), the teacher with its recipe's
   default (heun, 10 steps = 19 evaluations).

"train s" is the wall time of the training (reflow: the teacher's, the pairs' solve and the
student's, all counted; consistency and progressive distillation: the teacher's and the student's).  Straightness S (Liu et al. 2023) of the teacher and the reflowed model
is measured on 2000 paths of 100 Euler steps (runs/straightness.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.runs.folder import RunFolder
from denoiselab.runs.straightness import straightness
from denoiselab.training import train
from denoiselab.training.distill import consistency_config, draw_pairs, progressive_rounds, reflow_config

DATASETS = ("spiral", "eight-gaussians", "moons", "checkerboard")
EVALUATIONS = (1, 2, 4)
FINAL_SEED = 1000
METHODS = ("flow", "otcfm", "reflow", "meanflow", "shortcut", "consistency", "ict", "progressive")  # the distilled ones need flow, their teacher
RECIPES = {"flow": "spiral-flow", "otcfm": "spiral-otcfm", "meanflow": "spiral-meanflow", "shortcut": "spiral-shortcut", "ict": "spiral-ict"}
DISTILLED = ("reflow", "consistency", "progressive")
ROUNDS = 4
SAMPLER = {"meanflow": "meanflow", "shortcut": "meanflow", "consistency": "consistency", "ict": "consistency"}  # the rest: euler


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _train(recipe: str, data: str, out: Path, budget: float, threads: int, data_n: int | None = None) -> tuple[float, int]:
    sets = [f"data.name={data}", f"train.threads={threads}", *([f"data.n={data_n}"] if data_n else [])]
    steps = max(1, round(load_config(recipe, sets).train.steps * budget))
    cfg = load_config(recipe, [*sets, f"train.steps={steps}", f"train.warmup_steps={min(100, steps)}"])
    start = time.perf_counter()
    train(cfg, out, progress=False, log=lambda *a: None)
    return time.perf_counter() - start, steps


def _reflow(teacher_dir: Path, out: Path, budget: float, pairs: int) -> tuple[float, int, dict]:
    teacher = load_run(teacher_dir)
    steps = max(1, round(load_config("spiral-flow").train.steps * budget))
    start = time.perf_counter()
    drawn = draw_pairs(teacher, pairs, seed=12345)
    RunFolder(out).write_pairs(drawn.noise, drawn.samples)
    train(reflow_config(teacher.config, steps), out, progress=False, log=lambda *a: None)
    seconds = time.perf_counter() - start
    return seconds, steps, {"pairs": pairs, "pair_seconds": drawn.seconds, "solver_error_rms": drawn.error_rms, "solver_error_max": drawn.error_max}


def _consistency(teacher_dir: Path, out: Path, budget: float) -> tuple[float, int]:
    teacher = load_run(teacher_dir)
    steps = max(1, round(load_config("spiral-flow").train.steps * budget))
    start = time.perf_counter()
    train(consistency_config(teacher, steps), out, progress=False, log=lambda *a: None)
    return time.perf_counter() - start, steps


def _progressive(teacher_dir: Path, out: Path, budget: float) -> tuple[float, int]:
    steps = max(1, round(load_config("spiral-flow").train.steps * budget))
    start = time.perf_counter()
    progressive_rounds(load_run(teacher_dir), RunFolder(out), steps, ROUNDS, progress=False, log=lambda *a: None)
    return time.perf_counter() - start, steps * ROUNDS


def _score(run_dir: Path, sampler: str, steps: int, repeats: int) -> dict:
    run = load_run(run_dir)
    metrics, _ = evaluate_run(run, sampler=sampler, steps=steps, grid="time-uniform", n=2000, seed=FINAL_SEED, repeats=repeats, density=False)
    return {"sampler": sampler, "steps": steps, "w2_ratio": metrics.w2_ratio, "energy_ratio": metrics.energy_ratio, "w2": metrics.w2, "energy": metrics.energy}


def run_dataset(data: str, base: Path, args) -> dict:
    out: dict = {"data": data, "load_average_1m_start": os.getloadavg()[0], "methods": {}}
    methods = [m for m in METHODS if m in args.methods.split(",")]
    dirs = {m: base / data / m for m in METHODS}
    for method in methods:
        if method in DISTILLED:
            continue
        log(f"[{data}] training {method} ({RECIPES[method]}), load {os.getloadavg()[0]:.1f}")
        seconds, steps = _train(RECIPES[method], data, dirs[method], args.budget, args.threads, args.data_n)
        out["methods"][method] = {"recipe": RECIPES[method], "train_seconds": seconds, "steps": steps, "scores": []}
    if "reflow" in methods:
        log(f"[{data}] reflow from the rectified flow, load {os.getloadavg()[0]:.1f}")
        seconds, steps, pairs = _reflow(dirs["flow"], dirs["reflow"], args.budget, args.pairs)
        out["methods"]["reflow"] = {
            "recipe": "distill --method reflow", "train_seconds": out["methods"]["flow"]["train_seconds"] + seconds, "steps": steps, **pairs,
            "straightness_teacher": straightness(load_run(dirs["flow"])), "straightness": straightness(load_run(dirs["reflow"])), "scores": [],
        }  # fmt: skip
    if "consistency" in methods:
        log(f"[{data}] consistency distillation from the rectified flow, load {os.getloadavg()[0]:.1f}")
        seconds, steps = _consistency(dirs["flow"], dirs["consistency"], args.budget)
        out["methods"]["consistency"] = {
            "recipe": "distill --method consistency", "train_seconds": out["methods"]["flow"]["train_seconds"] + seconds, "steps": steps, "scores": [],
        }  # fmt: skip
    if "progressive" in methods:
        log(f"[{data}] progressive distillation from the rectified flow, load {os.getloadavg()[0]:.1f}")
        seconds, steps = _progressive(dirs["flow"], dirs["progressive"], args.budget)
        out["methods"]["progressive"] = {
            "recipe": f"distill --method progressive --rounds {ROUNDS}", "train_seconds": out["methods"]["flow"]["train_seconds"] + seconds,
            "steps": steps, "scores": [],
        }  # fmt: skip
    log(f"[{data}] scoring, load {os.getloadavg()[0]:.1f}")
    if "flow" in methods:
        out["methods"]["flow"]["teacher_score"] = _score(dirs["flow"], "heun", 10, args.repeats)
    for method in methods:
        sampler = SAMPLER.get(method, "euler")
        for evaluations in EVALUATIONS:
            out["methods"][method]["scores"].append(_score(dirs[method], sampler, evaluations, args.repeats))
    out["load_average_1m_end"] = os.getloadavg()[0]
    return out


LABELS = {"flow": "rectified flow", "otcfm": "OT-CFM", "reflow": "reflow (from rectified flow)", "meanflow": "MeanFlow", "shortcut": "shortcut model",
          "consistency": "consistency distillation (from rectified flow)", "ict": "improved consistency training",
          "progressive": "progressive distillation, 4 rounds (from rectified flow)"}  # fmt: skip


def table(results: list[dict]) -> str:
    lines = [
        "| data | method | train s | 1 eval | 2 evals | 4 evals | teacher, 19 evals |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in results:
        for method in (m for m in METHODS if m in r["methods"]):
            m = r["methods"][method]
            cells = [f"{s['w2_ratio']:.2f} / {s['energy_ratio']:.2f}" for s in m["scores"]]
            teacher = m.get("teacher_score")
            t = f"{teacher['w2_ratio']:.2f} / {teacher['energy_ratio']:.2f}" if teacher else ""
            lines.append(f"| {r['data']} | {LABELS[method]} | {m['train_seconds']:.0f} | {' | '.join(cells)} | {t} |")
    return "\n".join(lines)


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """--repeats, --threads, --runs and --json, as ``run_datasets`` and ``_score`` read them."""
    p.add_argument("--repeats", type=int, default=4, help="sample sets of 2000 points per score")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", help="keep the run folders here (default: a temporary folder)")
    p.add_argument("--json")


def run_datasets(args, run_dataset) -> list[dict]:
    """``run_dataset(data, base, args)`` for each of ``args.datasets`` on ``args.threads`` torch
    threads, the run folders in ``args.runs`` (default: a temporary folder), the JSON
    (``args.json``) rewritten after each data set."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.runs or tmp)
        results = []
        for data in args.datasets.split(","):
            results.append(run_dataset(data, base, args))
            if args.json:
                Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--methods", default=",".join(METHODS), help=f"some of {', '.join(METHODS)} (reflow, consistency and progressive need flow)")
    p.add_argument("--budget", type=float, default=1.0, help="training steps as a share of each recipe's train.steps (default 1)")
    p.add_argument("--pairs", type=int, default=4000, help="reflow: noise draws solved by the teacher")
    p.add_argument("--data-n", type=int, help="training points drawn for every run trained here (data.n; default: each recipe's, 2000)")
    add_common_arguments(p)
    args = p.parse_args(argv)
    if args.data_n is not None and args.data_n < 1:
        p.error(f"--data-n: expected a positive number of training points, got {args.data_n}")
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    results = run_datasets(args, run_dataset)
    print(table(results))
    for r in (r for r in results if "reflow" in r["methods"]):
        m = r["methods"]["reflow"]
        print(f"\n{r['data']}: straightness S teacher {m['straightness_teacher']:.4f} -> reflowed {m['straightness']:.4f}; "
              f"pairs solver error RMS {m['solver_error_rms']:.1e}, max {m['solver_error_max']:.1e}")  # fmt: skip
    print(f"\nwall {time.perf_counter() - start:.0f} s; load average (1 min) {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; torch threads {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
