"""Consistency distillation with the student started from the teacher's network (Song et al. 2023,
App. C; `denoiselab distill --method consistency --init teacher`) against the student started from
scratch, from the same teacher, at the same budget.

Run (one invocation per table; see BENCHMARKS.md, "Consistency distillation from the teacher's weights"):

    nice -n 10 python benchmarks/consistency_init.py --budget 0.5 --threads 1 --json /tmp/consistency_init.json

For each data set (--datasets, default spiral):

1. Trains the teacher: ``spiral-flow`` (rectified flow) with model.precondition = edm, whose network
   is then EDM's F and can start a student (training/teacher.py, start_from_teacher); and, as the
   reference of BENCHMARKS.md's consistency table, the plain ``spiral-flow`` teacher.  Each for
   spiral-flow's steps times --budget.
2. Distils a consistency student from each as ``denoiselab distill --method consistency`` makes it
   (training/distill.py: consistency_config), spiral-flow's steps times --budget: from the EDM
   teacher once from scratch and once from the teacher's network; from the plain teacher from
   scratch (a plain teacher's network is not an F: --init teacher refuses it).
3. Scores every student as benchmarks/one_step.py does (its ``_score``: ``evaluate_run``, W2 and
   energy of --repeats sets of 2000 points against 16 reference draws, as ratios to the floor)
   with multistep consistency sampling at 1, 2 and 4 jumps on the time-uniform grid, and each
   teacher with Heun at 10 steps (19 evaluations).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from one_step import EVALUATIONS, _score, add_common_arguments, run_datasets

from denoiselab.config import load_config
from denoiselab.runs import load_run
from denoiselab.training import train
from denoiselab.training.distill import consistency_config

STUDENTS = (("edm", "scratch"), ("edm", "teacher"), ("plain", "scratch"))  # (teacher, init)
TEACHERS = {"edm": ["model.precondition=edm"], "plain": []}
LABELS = {
    ("edm", "scratch"): "from scratch (EDM-preconditioned teacher)",
    ("edm", "teacher"): "from the teacher's network (EDM-preconditioned teacher)",
    ("plain", "scratch"): "from scratch (plain teacher, as in the consistency table)",
}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def _steps(budget: float) -> int:
    return max(1, round(load_config("spiral-flow").train.steps * budget))


def run_dataset(data: str, base: Path, args) -> dict:
    steps = _steps(args.budget)
    out: dict = {"data": data, "steps": steps, "load_average_1m_start": os.getloadavg()[0], "teachers": {}, "students": []}
    for name in sorted({t for t, _ in STUDENTS}):
        log(f"[{data}] teacher {name}, {steps} steps, load {os.getloadavg()[0]:.1f}")
        over = [f"data.name={data}", f"train.threads={args.threads}", f"train.steps={steps}", f"train.warmup_steps={min(100, steps)}"]
        start = time.perf_counter()
        train(load_config("spiral-flow", over + TEACHERS[name]), base / data / name, progress=False, log=lambda *a: None)
        out["teachers"][name] = {"train_seconds": time.perf_counter() - start, "score": _score(base / data / name, "heun", 10, args.repeats)}
    for teacher, init in STUDENTS:
        log(f"[{data}] student of {teacher} from {init}, load {os.getloadavg()[0]:.1f}")
        folder = base / data / f"{teacher}-{init}"
        start = time.perf_counter()
        train(consistency_config(load_run(base / data / teacher), steps, init), folder, progress=False, log=lambda *a: None)
        seconds = time.perf_counter() - start
        scores = [_score(folder, "consistency", k, args.repeats) for k in EVALUATIONS]
        out["students"].append({"teacher": teacher, "init": init, "train_seconds": seconds, "scores": scores})
    out["load_average_1m_end"] = os.getloadavg()[0]
    return out


def table(results: list[dict]) -> str:
    lines = ["| data | consistency student | student train s | 1 eval | 2 evals | 4 evals | its teacher, 19 evals |", "|---|---|---:|---|---|---|---|"]
    for r in results:
        for s in r["students"]:
            cells = [f"{c['w2_ratio']:.2f} / {c['energy_ratio']:.2f}" for c in s["scores"]]
            t = r["teachers"][s["teacher"]]["score"]
            lines.append(f"| {r['data']} | {LABELS[(s['teacher'], s['init'])]} | {s['train_seconds']:.0f} | {' | '.join(cells)} | "
                         f"{t['w2_ratio']:.2f} / {t['energy_ratio']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="spiral")
    p.add_argument("--budget", type=float, default=0.5, help="training steps as a share of spiral-flow's train.steps, teacher and student alike")
    add_common_arguments(p)
    args = p.parse_args(argv)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    results = run_datasets(args, run_dataset)
    print(table(results))
    print(f"\nwall {time.perf_counter() - start:.0f} s; load average (1 min) {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; torch threads {args.threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
