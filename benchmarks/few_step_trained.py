"""Few-step sampling on a trained run: named grids against tuned ones, scored by `evaluate`.

For each evaluation budget, every sampler on every named grid, then `tune-steps` for a few
samplers and the same score on the tuned grid (which `evaluate` then picks up from the run's
tuned_grids.json).  The run's own default (its [sample] sampler, steps and grid) is the first
row.  Point runs are scored by W2 / energy distance as multiples of their floor, image runs by
class accuracy and Frechet distance (its ratio to the floor).  Everything goes through the CLI
in this process, so the table is what a user gets from the same commands.

    python benchmarks/few_step_trained.py runs/spiral
    python benchmarks/few_step_trained.py runs/digits --tune unipc --tune-n 256 --max-calls 331

The tuned grids are written into RUN/tuned_grids.json (replacing any there for the same sampler
and count): use a copy of a run you care about.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time

from denoiselab import cli
from denoiselab.choices import TUNING_CALLS
from denoiselab.runs.folder import RunFolder, tuned_grid_key


def denoiselab(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main([str(a) for a in argv])
    if rc != 0:
        sys.exit(f"denoiselab {' '.join(map(str, argv))}: exit {rc}")
    return out.getvalue()


def evaluate(run, *argv) -> dict:
    return json.loads(denoiselab("evaluate", run, "--json", *argv).strip().splitlines()[-1])


def scores(report: dict) -> str:
    if "w2_ratio" in report:
        return f"{report['w2_ratio']:.2f} | {report['energy_ratio']:.2f}"
    accuracy = "-" if report.get("accuracy") is None else f"{report['accuracy']:.3f}"
    return f"{accuracy} | {report['frechet']:.1f} ({report['frechet_ratio']:.2f}x)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a trained run folder (its tuned_grids.json is rewritten)")
    ap.add_argument("--nfe", type=int, nargs="+", default=[5, 8, 10])
    ap.add_argument("--samplers", nargs="+", default=["dpm++2m", "dpm++3m", "unipc", "ipndm"])
    ap.add_argument("--grids", nargs="+", default=["trailing", "logsnr"])
    ap.add_argument("--tune", nargs="*", default=["dpm++3m", "unipc", "ipndm"], help="samplers whose grid is tuned at each budget")
    ap.add_argument("--max-calls", type=int, default=TUNING_CALLS, help=f"tune-steps' budget in sampler runs (default {TUNING_CALLS}, its own default)")
    ap.add_argument("--tune-n", type=int, default=2000, help="tune-steps' starting points (default 2000, its own default)")
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = []

    def row(nfe, sampler, grid, report, note=""):
        rows.append({**report, "nfe": nfe, "sampler": sampler, "grid": grid, "note": note, "times": report["grid"]})
        print(f"| {report['evaluations']} | {sampler} | {grid} | {scores(report)} | {note} |", flush=True)

    default = evaluate(args.run)
    point = "w2_ratio" in default
    print(f"{args.run}: " + ("W2 and energy distance as multiples of the floor" if point else "class accuracy and Frechet distance (x floor)") + "\n")
    print("| model evaluations | sampler | grid | " + ("W2 / floor | energy / floor" if point else "accuracy | Frechet") + " | tune-steps: mean distance to the 200-step solve, held-out (start grid) |")
    print("|---:|---|---|---:|---:|---|")
    row(default["evaluations"], default["sampler"], f"{default['grid']} (the run's default)" if isinstance(default["grid"], str) else "the run's default", default)
    for nfe in args.nfe:
        for sampler in args.samplers:
            for grid in args.grids:
                row(nfe, sampler, grid, evaluate(args.run, "--sampler", sampler, "--steps", nfe, "--grid", grid))
        for sampler in args.tune:
            folder, key = RunFolder(args.run), tuned_grid_key(sampler, nfe)
            grids = folder.read_tuned_grids()
            grids.pop(key, None)  # a grid left from an earlier search is not this one's
            folder.write_tuned_grids(grids)
            text = denoiselab("tune-steps", args.run, "--sampler", sampler, "--nfe", nfe, "-n", args.tune_n, "--max-calls", args.max_calls)
            calls = text.split(" search calls")[0]
            tuned = folder.read_tuned_grids().get(key)  # what tune-steps wrote, if it found a better grid
            if tuned is None:  # "no tuned grid saved: ...; SAMPLER at N evaluations keeps the NAME grid ..."
                start = text.split("keeps the ")[1].split()[0]
                report = evaluate(args.run, "--sampler", sampler, "--steps", nfe, "--grid", start)
                row(nfe, sampler, "tuned", report, f"{calls} calls; no better grid than the start ({start}), which is scored")
                continue
            report = evaluate(args.run, "--sampler", sampler, "--steps", nfe)
            assert report["tuned_grid"], "evaluate did not pick up the tuned grid"
            row(nfe, sampler, "tuned", report, f"{tuned['error']:.4g} (start, {tuned['start']} grid: {tuned['start_error']:.4g}); {calls} calls")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
