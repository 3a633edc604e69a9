"""Classifier-free guidance on the conditional recipes: label accuracy and per-class W2 against
the guidance scale and the number of model evaluations.

Run (trains `shapes` and `four-shapes` once into --runs, then evaluates; 15 to 30 minutes on
2 CPU cores: exact W2 of strongly guided samples is slow to solve):

    python benchmarks/guidance_sweep.py

Smoke run (seconds):

    python benchmarks/guidance_sweep.py --recipes shapes --set train.steps=200 --scales 1 4 --steps 10 --repeats 1 -n 300

For each recipe and each (guidance scale s, sampler steps), with the recipe's sampler:
- NFE: network evaluations per sample.  classifier_free evaluates the conditional and the
  unconditional branch in one batched call, so s other than 0 and 1 costs two evaluations per
  point per step; s = 0 and s = 1 cost one.
- label accuracy: share of class-c samples that a 5-nearest-neighbour classifier, fitted on
  fresh draws of every class, assigns to c (mean over classes), beside the same classifier's
  accuracy on fresh reference draws (what perfect samples would score where classes overlap).
- W2 / floor per class: exact W2 of each class's samples against fresh draws of that class,
  over the same metric between those reference draws; and energy / floor likewise.
All metrics are runs.evaluate_run's: --repeats sample sets against 16 reference draws of each
class (metrics.point_metrics).  Output: a markdown table
per recipe on stdout (and --json for one JSON object), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from denoiselab.config import load_config
from denoiselab.runs import complete_run, evaluate_run, load_run
from denoiselab.training import train


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def trained_run(recipe: str, runs: Path, overrides: list[str]):
    """The recipe trained into runs/<recipe> (reused when already complete with the same recipe)."""
    cfg = load_config(recipe, overrides)
    path = runs / recipe
    if path.is_dir() and (path / "run.json").is_file():
        run = load_run(path)
        if run.info.get("status") == "complete" and run.config == cfg:
            log(f"{recipe}: reusing {path} (trained in {run.info['train_seconds']:.1f} s)")
            return run
        raise SystemExit(f"{path} exists with another recipe or unfinished; remove it or pick --runs")
    log(f"{recipe}: training into {path}")
    t0 = time.perf_counter()
    train(cfg, path, progress=False, log=log)
    complete_run(path, log=lambda *a: None)
    log(f"{recipe}: trained and evaluated in {time.perf_counter() - t0:.1f} s")
    return load_run(path)


def nfe(steps: int, scale: float) -> int:
    return steps * (1 if scale in (0.0, 1.0) else 2)


def sweep(run, scales, steps_list, repeats: int, n: int) -> list[dict]:
    rows = []
    for steps in steps_list:
        for s in scales:
            t0 = time.perf_counter()
            m, _ = evaluate_run(run, repeats=repeats, guidance=s, steps=steps, n=n)
            rows.append(
                {
                    "guidance": s,
                    "steps": steps,
                    "nfe": nfe(steps, s),
                    "label_accuracy": m.mean_accuracy,
                    "reference_accuracy": sum(m.reference_accuracy.values()) / len(m.reference_accuracy),
                    "w2_ratio": {c: pm.w2_ratio for c, pm in m.classes.items()},
                    "energy_ratio": {c: pm.energy_ratio for c, pm in m.classes.items()},
                    "mixture_w2_ratio": m.mixture.w2_ratio,
                }
            )
            log(f"  s = {s:g}, {steps} steps: accuracy {m.mean_accuracy:.3f} ({time.perf_counter() - t0:.0f} s)")
    return rows


def table(recipe: str, run, rows: list[dict]) -> str:
    names = run.class_names
    head = ["s", "steps", "NFE", "label accuracy", *[f"W2/floor {c}" for c in names], "W2/floor mixture"]
    lines = [
        f"### {recipe} ({', '.join(names)}; reference accuracy {rows[0]['reference_accuracy']:.3f})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    for r in rows:
        cells = [f"{r['guidance']:g}", str(r["steps"]), str(r["nfe"]), f"{r['label_accuracy']:.3f}"]
        cells += [f"{r['w2_ratio'][c]:.2f}x" for c in names] + [f"{r['mixture_w2_ratio']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=["shapes", "four-shapes"])
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override every recipe")
    p.add_argument("--runs", default="runs/benchmarks", help="folder for the trained runs (reused when present)")
    p.add_argument("--scales", nargs="+", type=float, default=[0.0, 1.0, 2.0, 4.0, 8.0])
    p.add_argument("--steps", nargs="+", type=int, default=[10, 20])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("-n", type=int, default=2000, help="samples per class and per set")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads", "recipes": {}}
    for recipe in args.recipes:
        run = trained_run(recipe, Path(args.runs), args.set)
        rows = sweep(run, args.scales, args.steps, args.repeats, args.n)
        out["recipes"][recipe] = {"train_seconds": run.info["train_seconds"], "rows": rows}
        print(table(recipe, run, rows) + "\n", flush=True)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
