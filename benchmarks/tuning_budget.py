"""How many sampler runs `tune-steps` needs: the distribution scores of grids tuned with a budget
of 100 up to a few thousand search calls, and of a search run until it converges, on a trained run.

    denoiselab train --out /tmp/runs/spiral
    python benchmarks/tuning_budget.py /tmp/runs/spiral                        # unipc at 5 evaluations
    python benchmarks/tuning_budget.py /tmp/runs/spiral --sampler dpm++3m --nfe 5 10 --budgets 200 800

For each budget, `denoiselab tune-steps RUN --sampler S --nfe N --max-calls B` (its other options
at their defaults: 2000 starting points and as many held out, seed 0), then `denoiselab evaluate
RUN --sampler S --steps N` on the grid it saved (8 sample sets against 16 fresh draws of the data,
W2 and energy distance as multiples of the floor), all through the CLI in this process.  The search
is deterministic and its first B calls do not depend on the budget, so the grid of budget B is the
best point of the first B calls of any longer search.  After the budgets comes the search run to
convergence (a budget it never reaches), then the start grid itself (the best named grid).  Budgets that end
without a better grid on held-out noise save nothing; their row says so and scores the start grid.

The run's tuned_grids.json is rewritten: use a copy of a run you care about.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

from denoiselab import cli
from denoiselab.runs.folder import RunFolder, tuned_grid_key

CONVERGED = 1_000_000  # a budget no search reaches: it ends when its narrowest restart finds nothing


def denoiselab(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main([str(a) for a in argv])
    if rc != 0:
        sys.exit(f"denoiselab {' '.join(map(str, argv))}: exit {rc}")
    return out.getvalue()


def evaluate(run, *argv) -> dict:
    return json.loads(denoiselab("evaluate", run, "--json", *argv).strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a trained point run folder (its tuned_grids.json is rewritten)")
    ap.add_argument("--sampler", default="unipc")
    ap.add_argument("--nfe", type=int, nargs="+", default=[5])
    ap.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 400, 800, 1200, 1600, 2400])
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # evaluate's sampling, as tune-steps does for a point run (training.auto_threads)
    folder, rows = RunFolder(args.run), []
    print(f"{args.run}, {args.sampler}; load average at start {_load()}\n")
    print("| model evaluations | search calls (budget) | stopped | search s | mean distance to the solve, held-out (start) | W2 / floor | energy / floor |")
    print("|---:|---:|---|---:|---|---:|---:|")
    for nfe in args.nfe:
        key, start_name = tuned_grid_key(args.sampler, nfe), None
        for budget in [*args.budgets, CONVERGED]:
            grids = folder.read_tuned_grids()
            grids.pop(key, None)
            folder.write_tuned_grids(grids)  # each budget's grid from a fresh search, not a leftover
            t0 = time.perf_counter()
            text = denoiselab("tune-steps", args.run, "--sampler", args.sampler, "--nfe", nfe, "--max-calls", budget)
            seconds = time.perf_counter() - t0
            first = text.splitlines()[0]  # "N search calls (WHY) in ..."
            calls, stopped = int(first.split()[0]), first[first.index("(") + 1 : first.index(")")]
            entry = folder.read_tuned_grids().get(key)
            if entry is None:  # "no tuned grid saved: ... keeps the NAME grid ..."
                start_name = text.split("keeps the ")[1].split()[0]
                report = evaluate(args.run, "--sampler", args.sampler, "--steps", nfe, "--grid", start_name)
                distance = "not better than the start: nothing saved"
            else:
                start_name = entry["start"]
                report = evaluate(args.run, "--sampler", args.sampler, "--steps", nfe)
                assert report["tuned_grid"], "evaluate did not pick up the tuned grid"
                distance = f"{entry['error']:.4g} ({entry['start']}: {entry['start_error']:.4g})"
            shown = "converged" if budget == CONVERGED else str(budget)
            rows.append({"nfe": nfe, "budget": budget, "calls": calls, "stopped": stopped, "seconds": seconds, "report": report, "tuned": entry})
            print(f"| {nfe} | {calls} ({shown}) | {stopped} | {seconds:.0f} | {distance} | {report['w2_ratio']:.2f} | {report['energy_ratio']:.2f} |", flush=True)
        report = evaluate(args.run, "--sampler", args.sampler, "--steps", nfe, "--grid", start_name)
        rows.append({"nfe": nfe, "budget": 0, "start": start_name, "report": report})
        print(f"| {nfe} | 0 (the start: {start_name} grid) | | | | {report['w2_ratio']:.2f} | {report['energy_ratio']:.2f} |", flush=True)
    print(f"\nload average at the end {_load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
