"""DDPM, rectified flow and OT-CFM side by side: sample quality against model evaluations.

Run (89 minutes on 2 CPU cores with one torch thread, measured; most of it the exact W2
assignments of about 2,500 sample sets of 2000 points):

    python benchmarks/flow_vs_diffusion.py --threads 1 --json /tmp/flow_vs_diffusion.json

Smoke run (7 minutes; 300 training steps, two data sets, two budgets, 2 + 2 sample sets):

    python benchmarks/flow_vs_diffusion.py --quick --threads 1

Print the tables of a finished run again (and the tables added since) without running anything:

    python benchmarks/flow_vs_diffusion.py --from-json /tmp/flow_vs_diffusion.json

Use --threads 1 when other programs keep a core busy: torch's two threads then wait on each
other and sampling gets about ten times slower (measured here); --threads sets train.threads
and torch's threads for sampling.  Shorter runs: --search-repeats 2, fewer --budgets.

What it does, in one invocation, on four 2-D data sets (spiral, eight-gaussians, moons,
checkerboard) with the same data size, training steps, batch and network:

1. Trains three recipes read from the package, each with ``data.name`` set to the data set:
   ``spiral`` (DDPM, eps prediction, linear T = 1000 chain), ``spiral-flow`` (rectified flow:
   schedule.kind = flow, model.prediction = velocity, independent coupling) and
   ``spiral-otcfm`` (the same with train.coupling = ot, Tong et al. 2023), through
   ``denoiselab.training.train`` into a temporary run folder (or ``--runs DIR``); the wall time
   of ``train`` is the "train s" column.
2. For every method and model-evaluation budget B (1, 2, 5, 10, 20, 100) it searches the
   candidate samplers x grids: ``ddim`` (eta = 0, = Euler, first order) and ``dpm++2m`` with B
   steps, ``heun`` with s steps where 2 s - 1 is B or the largest odd number below it (s = 1,
   1, 3, 5, 10, 50: 1, 1, 5, 9, 19, 99 evaluations), each on the logsnr, time-uniform, karras and
   trailing grids.  Each candidate is scored by ``denoiselab.runs.evaluate_run`` with
   ``--search-repeats`` sample sets (seeds 0, 1, ...), and the best W2 ratio wins.
3. The winner is scored again with ``--repeats`` fresh sample sets (seeds 1000, 1001, ...), so
   choosing and scoring use different noise; those are the reported numbers.  The model
   evaluations are the sampling plan's (``SamplingPlan.evaluations``, which
   tests/test_samplers.py holds equal to the calls each sampler makes).

Candidates that are the same computation are scored once (the first name keeps the score,
the others are listed as aliases in the JSON): at 1 step every sampler and grid is the one
Euler step from t = 1 to 0; DPM-Solver++(2M) is first order (= DDIM) when it has no second
step (2 steps, or 3 on the flow path, whose first step leaves no history); Heun with 1 step is
an Euler step; grids with the same times (trailing and time-uniform when B divides T) are one
grid.  Each alias is checked: both are sampled once with the same seed and must agree to 1e-4
in data units, or they are scored separately.

Quality: ``evaluate_run`` as ``denoiselab evaluate`` reports it (metrics.point_metrics):
W2 of sample set i against reference draw i, energy distance of every sample set against every
one of the 16 reference draws (the data's generator, seeds 1..16, the same for every method,
search and final), as ratios to the floor between the reference draws.  Output: Markdown tables
on stdout (progress on stderr) and, with ``--json PATH``, everything as JSON.
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
from denoiselab.runs import evaluate_run, load_run, plan_sampling, sample_points
from denoiselab.samplers import time_grid
from denoiselab.training import train
from denoiselab.training.compute import busy_cores as measured_busy_cores

METHODS = {  # key: (recipe, label)
    "ddpm": ("spiral", "DDPM (eps)"),
    "flow": ("spiral-flow", "rectified flow"),
    "otcfm": ("spiral-otcfm", "OT-CFM"),
}
DATASETS = ("spiral", "eight-gaussians", "moons", "checkerboard")
BUDGETS = (1, 2, 5, 10, 20, 100)
CANDIDATE_SAMPLERS = ("ddim", "dpm++2m", "heun")
CANDIDATE_GRIDS = ("logsnr", "time-uniform", "karras", "trailing")
SEARCH_SEED = 0  # sample seeds SEARCH_SEED .. + search_repeats - 1
FINAL_SEED = 1000  # sample seeds FINAL_SEED .. + repeats - 1
ALIAS_TOL = 1e-4  # data units: two candidates agreeing this closely on one sample set are one
QUICK = {"steps": 300, "datasets": ("spiral", "checkerboard"), "budgets": (2, 10), "search_repeats": 2, "repeats": 2}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def busy_cores(window_s: float = 0.2) -> float | None:
    """Cores kept busy by other programs, measured as denoiselab's training warning measures it."""
    return measured_busy_cores(window_s)


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0],
        "busy_cores_at_start": busy_cores(),
    }


class LoadLog:
    """Busy cores (other programs) and load average, sampled before every training run and
    every data set's search, to say afterwards whether the machine was shared."""

    def __init__(self):
        self.samples: list[dict] = []

    def sample(self, where: str) -> None:
        self.samples.append({"where": where, "busy_cores": busy_cores(), "load_average_1m": os.getloadavg()[0], "time": time.time()})

    def summary(self) -> dict:
        busy = [s["busy_cores"] for s in self.samples if s["busy_cores"] is not None]
        load = [s["load_average_1m"] for s in self.samples]
        out = {"samples": len(self.samples)}
        if busy:
            out.update(busy_min=min(busy), busy_mean=float(np.mean(busy)), busy_max=max(busy))
        if load:
            out.update(load_min=min(load), load_mean=float(np.mean(load)), load_max=max(load))
        return out


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


def sampler_steps(sampler: str, budget: int) -> int:
    """Steps of ``sampler`` for a budget of model evaluations: heun makes 2 s - 1, so s is the
    largest with 2 s - 1 <= budget; the others make one per step."""
    if sampler == "heun":
        odd = budget if budget % 2 else budget - 1
        return (odd + 1) // 2
    return budget


def effective_sampler(sampler: str, steps: int, is_flow: bool) -> str:
    """The computation a sampler does at this step count: ddim where it is first order."""
    if sampler == "heun" and steps == 1:
        return "ddim"  # its only step ends at t = 0, an Euler step
    if sampler == "dpm++2m" and (steps <= 2 or (is_flow and steps <= 3)):
        return "ddim"  # no step with usable history (the last step, to t = 0, is first order)
    if steps == 1:
        return "ddim"
    return sampler


def candidates(run, budget: int) -> list[dict]:
    """Every (sampler, grid) for this budget, with the key of the computation it performs."""
    is_flow = run.config.schedule.kind == "flow"
    out = []
    for sampler in CANDIDATE_SAMPLERS:
        steps = sampler_steps(sampler, budget)
        for grid in CANDIDATE_GRIDS:
            try:
                times = tuple(round(v, 12) for v in time_grid(run.schedule, steps, grid, rho=run.config.sample.rho).tolist())
            except Exception as exc:  # noqa: BLE001 - reported with the candidate
                times = ("error", f"{type(exc).__name__}: {exc}")
            out.append(
                {
                    "sampler": sampler,
                    "grid": grid,
                    "steps": steps,
                    "key": (effective_sampler(sampler, steps, is_flow), times),
                }
            )
    return out


def _sampler_name(c: dict) -> str:
    return f"heun {c['steps']} st" if c["sampler"] == "heun" else c["sampler"]


def label(c: dict, budget: int) -> str:
    return f"{_sampler_name(c)}, {c['grid']}"


def winner_label(w: dict) -> str:
    """The winner and the candidates that are the same computation: samplers and grids joined
    by '/' (the exact list is in the JSON)."""
    members = [w, *w["aliases"]]
    samplers = list(dict.fromkeys(_sampler_name(c) for c in members))
    grids = list(dict.fromkeys(c["grid"] for c in members))
    if len(members) == len(CANDIDATE_SAMPLERS) * len(CANDIDATE_GRIDS):
        return "every candidate: 1 Euler step"
    return f"{'/'.join(samplers)}, {'/'.join(grids)}"


def same_samples(run, a: dict, b: dict) -> float:
    """Max |difference| (data units) between the first search sample set of a (kept from its
    evaluate_run) and b's with the same seed."""
    xb = sample_points(run, sampler=b["sampler"], steps=b["steps"], grid=b["grid"], seed=SEARCH_SEED)
    return float(np.max(np.abs(a["first"] - xb)))


def score(run, c: dict, repeats: int, seed: int) -> dict:
    """evaluate_run of one candidate: its metrics and the counted evaluations of the first
    sample set, or the error it raised; and that first sample set (None after an error)."""
    t0 = time.perf_counter()
    try:
        plan = plan_sampling(run, sampler=c["sampler"], steps=c["steps"], grid=c["grid"], seed=seed, tuned=False)
        metrics, first = evaluate_run(run, plan, repeats=repeats)
    except Exception as exc:  # noqa: BLE001 - a failing combination is a result, reported
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}, None
    out = {**metrics.to_dict(), "nfe": plan.evaluations, "seconds": time.perf_counter() - t0}
    if not np.all(np.isfinite(first)):
        out["warning"] = "non-finite samples"
    return out, first


def search_budget(run, budget: int, args, where: str) -> dict:
    """Score every distinct candidate (search seeds), pick the best W2 ratio, score it again
    with fresh seeds."""
    args.loads.sample(f"{where} B={budget}")
    scored: dict = {}  # key -> the representative candidate, with its result and aliases
    rows = []
    cands = candidates(run, budget)
    distinct = {c["key"] for c in cands}
    for c in cands:
        rep = scored.get(c["key"]) if c["key"][1][0] != "error" else None
        if rep is not None and len(distinct) == 1:
            rep["aliases"].append({"sampler": c["sampler"], "grid": c["grid"], "steps": c["steps"], "max_abs_diff": None})
            rows.append({**_public(c), "alias_of": label(rep, budget), "max_abs_diff": None})
            continue
        if rep is not None and "error" not in rep["result"]:
            diff = same_samples(run, rep, c)
            if diff <= ALIAS_TOL:
                rep["aliases"].append({"sampler": c["sampler"], "grid": c["grid"], "steps": c["steps"], "max_abs_diff": diff})
                rows.append({**_public(c), "alias_of": label(rep, budget), "max_abs_diff": diff})
                continue
            log(f"    {where} B={budget}: {label(c, budget)} differs from {label(rep, budget)} by {diff:.2e}: scored separately")
            c = {**c, "key": (c["key"], label(c, budget))}
        c = {**c, "aliases": []}
        if len(distinct) == 1:
            # One computation for every candidate (1 step): nothing to choose, only the final score.
            c["result"], c["first"] = {"skipped": "the only distinct candidate", "w2_ratio": 0.0, "seconds": 0.0}, None
            scored[c["key"]] = c
            rows.append({**_public(c), "result": c["result"]})
            continue
        c["result"], c["first"] = score(run, c, args.search_repeats, SEARCH_SEED)
        scored[c["key"]] = c
        r = c["result"]
        msg = r["error"] if "error" in r else f"W2 {r['w2_ratio']:.2f}x energy {r['energy_ratio']:.2f}x nfe {r['nfe']}"
        log(f"    {where} B={budget}: {label(c, budget):<28} {msg}  ({r['seconds']:.1f} s)")
        rows.append({**_public(c), "result": r})
    ok = [c for c in scored.values() if "error" not in c["result"] and np.isfinite(c["result"]["w2_ratio"])]
    errors = [{**_public(c), "error": c["result"]["error"]} for c in scored.values() if "error" in c["result"]]
    if not ok:
        return {"budget": budget, "candidates": rows, "errors": errors, "distinct_candidates": len(scored), "winner": None}
    best = min(ok, key=lambda c: c["result"]["w2_ratio"])
    final, _ = score(run, best, args.repeats, FINAL_SEED)
    if "error" not in final:
        log(
            f"  {where} B={budget}: winner {label(best, budget)} -> final W2 {final['w2_ratio']:.2f}x "
            f"energy {final['energy_ratio']:.2f}x, {final['nfe']} evaluations"
        )
    return {
        "budget": budget,
        "candidates": rows,
        "errors": errors,
        "distinct_candidates": len(scored),
        "winner": {
            **_public(best),
            "label": label(best, budget),
            "label_with_aliases": winner_label(best),
            "aliases": best["aliases"],
            "search": best["result"],
            "final": final,
        },
    }


def _public(c: dict) -> dict:
    return {"sampler": c["sampler"], "grid": c["grid"], "steps": c["steps"]}


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def overrides_for(args, dataset: str) -> list[str]:
    out = [f"data.name={dataset}", f"train.steps={args.steps}"]
    if args.threads:
        out.append(f"train.threads={args.threads}")
    return out + list(args.set)


def run_one(method: str, dataset: str, args, root: Path, loads: LoadLog) -> dict:
    recipe, name = METHODS[method]
    cfg = load_config(recipe, overrides_for(args, dataset))
    run_dir = root / f"{method}-{dataset}"
    where = f"{method}/{dataset}"
    loads.sample(f"train {where}")
    log(f"{where}: training recipe {recipe!r} ({cfg.train.steps} steps, batch {cfg.train.batch_size}, data {cfg.data.name}) ...")
    t0 = time.perf_counter()
    train(cfg, run_dir, progress=False, log=lambda msg: log(f"  {where}: {msg}"))
    train_s = time.perf_counter() - t0
    run = load_run(run_dir)
    log(f"{where}: trained in {train_s:.1f} s")
    t0 = time.perf_counter()
    budgets = [search_budget(run, b, args, where) for b in args.budgets]
    return {
        "method": method,
        "method_label": name,
        "recipe": recipe,
        "dataset": dataset,
        "overrides": overrides_for(args, dataset),
        "schedule": run.config.schedule.kind,
        "prediction": run.config.model.prediction,
        "coupling": run.config.train.coupling,
        "train_s": train_s,
        "train_seconds_run_json": run.info.get("train_seconds"),
        "eval_s": time.perf_counter() - t0,
        "budgets": budgets,
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def cell(b: dict) -> str:
    w = b["winner"]
    if w is None:
        return "all failed"
    f = w["final"]
    if "error" in f:
        return f"error ({w['label']})"
    return f"{f['w2_ratio']:.2f} / {f['energy_ratio']:.2f} ({w['label_with_aliases']}; {f['nfe']})"


def final_w2(b: dict) -> float:
    w = b["winner"]
    return w["final"].get("w2_ratio", float("inf")) if w is not None else float("inf")


def report(results: list[dict], args, machine: dict, loads: dict, total_s: float) -> None:
    print("# flow vs diffusion: W2 / energy distance (x floor) against model evaluations\n")
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, {machine['threads']} threads, "
        f"Python {machine['python']}; other programs' busy cores over the run: "
        f"{loads.get('busy_min', float('nan')):.1f} to {loads.get('busy_max', float('nan')):.1f} "
        f"(mean {loads.get('busy_mean', float('nan')):.1f}), load average {loads.get('load_min', float('nan')):.1f} "
        f"to {loads.get('load_max', float('nan')):.1f}"
    )
    print(
        f"training: {args.steps} steps of each recipe; search: {args.search_repeats} sample sets (seeds {SEARCH_SEED}..), "
        f"reported: the winner's {args.repeats} fresh sample sets (seeds {FINAL_SEED}..), 2000 points each, "
        f"16 reference draws; total {total_s / 60:.1f} min"
    )
    if args.quick:
        print("NOTE: --quick smoke run: short training, two data sets, two budgets; not comparable numbers")
    print()
    print(
        "Cells: W2 ratio / energy ratio (winning sampler, grid; model evaluations counted on the first sample set). "
        "Samplers or grids joined by '/' are the same computation at that budget (scored once); "
        "'heun s st' is Heun with s steps, 2 s - 1 evaluations."
    )
    print()
    head = "| method | data | train s | " + " | ".join(f"{b} NFE" for b in args.budgets) + " |"
    print(head)
    print("|---|---|---:|" + "---|" * len(args.budgets))
    for r in results:
        cells = " | ".join(cell(b) for b in r["budgets"])
        print(f"| {r['method_label']} | {r['dataset']} | {r['train_s']:.1f} | {cells} |")
    print()
    print("Best method by the reported W2 ratio (its W2 ratio):")
    print()
    print("| data | " + " | ".join(f"{b} NFE" for b in args.budgets) + " |")
    print("|---|" + "---|" * len(args.budgets))
    by = {(r["dataset"], r["method"]): r for r in results}
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    for d in datasets:
        row = []
        for i, _ in enumerate(args.budgets):
            entries = [(final_w2(by[(d, m)]["budgets"][i]), METHODS[m][1]) for m in METHODS if (d, m) in by]
            w, name = min(entries)
            row.append(f"{name} ({w:.2f})")
        print(f"| {d} | " + " | ".join(row) + " |")
    print()
    for target in args.targets:
        print(f"Fewest budgeted evaluations at which the reported W2 ratio is <= {target:g}x:")
        print()
        print("| data | " + " | ".join(METHODS[m][1] for m in METHODS) + " |")
        print("|---|" + "---:|" * len(METHODS))
        for d in datasets:
            row = []
            for m in METHODS:
                if (d, m) not in by:
                    row.append("")
                    continue
                hit = [b["budget"] for b in by[(d, m)]["budgets"] if final_w2(b) <= target]
                row.append(str(min(hit)) if hit else f"> {max(args.budgets)}")
            print(f"| {d} | " + " | ".join(row) + " |")
        print()
    rel = args.relative
    print(
        f"Fewest budgeted evaluations at which the reported W2 and energy ratios are both within {100 * (rel - 1):g}% "
        f"of the best that any method reaches at {max(args.budgets)} evaluations on that data set (that best in the header):"
    )
    print()
    print("| data | best W2 / energy at the largest budget | " + " | ".join(METHODS[m][1] for m in METHODS) + " |")
    print("|---|---|" + "---:|" * len(METHODS))
    last = args.budgets.index(max(args.budgets))
    for d in datasets:
        finals = [by[(d, m)]["budgets"][last]["winner"]["final"] for m in METHODS if (d, m) in by]
        finals = [f for f in finals if "error" not in f]
        if not finals:
            continue
        bw, be = min(f["w2_ratio"] for f in finals), min(f["energy_ratio"] for f in finals)
        row = []
        for m in METHODS:
            if (d, m) not in by:
                row.append("")
                continue
            hit = [
                b["budget"]
                for b in by[(d, m)]["budgets"]
                if b["winner"] is not None
                and "error" not in b["winner"]["final"]
                and b["winner"]["final"]["w2_ratio"] <= rel * bw
                and b["winner"]["final"]["energy_ratio"] <= rel * be
            ]
            row.append(str(min(hit)) if hit else f"> {max(args.budgets)}")
        print(f"| {d} | {bw:.2f} / {be:.2f} | " + " | ".join(row) + " |")
    print()
    errors = [(r["method"], r["dataset"], b["budget"], e) for r in results for b in r["budgets"] for e in b["errors"]]
    if errors:
        print("Candidates that raised an error:")
        for m, d, budget, e in errors:
            print(f"- {m} / {d} / B={budget}: {e['sampler']} ({e['steps']} steps), {e['grid']}: {e['error']}")
    else:
        print("No candidate raised an error.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="training steps of every recipe (default 8000, the recipes'; --quick: 300)")
    p.add_argument("--datasets", nargs="+", default=None, choices=DATASETS, help="data sets (default all four)")
    p.add_argument("--budgets", nargs="+", type=int, default=None, help=f"model-evaluation budgets (default {' '.join(map(str, BUDGETS))})")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="methods (default all three)")
    p.add_argument("--search-repeats", type=int, default=None, help="sample sets per candidate in the search (default 4)")
    p.add_argument("--repeats", type=int, default=None, help="fresh sample sets scoring each winner (default 8)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for training and sampling (train.threads; default 0 = torch's)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="extra recipe override for every run")
    p.add_argument("--targets", nargs="+", type=float, default=[1.1, 1.25], help="W2 ratios for the fewest-evaluations table")
    p.add_argument(
        "--relative", type=float, default=1.1, help="the relative table: within this factor of the best at the largest budget (default 1.1)"
    )
    p.add_argument("--from-json", type=Path, help="print the tables of an earlier run's --json file (runs nothing)")
    p.add_argument("--runs", type=Path, help="keep the run folders in this folder (as METHOD-DATA; those must not exist yet; default: a temporary folder)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--quick", action="store_true", help="smoke run: 300 steps, spiral and checkerboard, budgets 2 and 10, 2 + 2 repeats")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for key in ("steps", "datasets", "budgets", "methods", "search_repeats", "repeats", "quick"):
            setattr(args, key, saved["args"][key])
        if not saved.get("complete"):
            log(f"note: {args.from_json} is from a run that did not finish ({len(saved['results'])} runs)")
        report(saved["results"], args, saved["machine"], saved["load"], saved["total_s"] or float("nan"))
        return 0
    q = QUICK if args.quick else {}
    args.steps = args.steps or q.get("steps", 8000)
    args.datasets = args.datasets or list(q.get("datasets", DATASETS))
    args.budgets = args.budgets or list(q.get("budgets", BUDGETS))
    args.search_repeats = args.search_repeats or q.get("search_repeats", 4)
    args.repeats = args.repeats or q.get("repeats", 8)
    if min(args.budgets) < 1 or args.steps < 1 or args.search_repeats < 1 or args.repeats < 1:
        p.error("--budgets, --steps and the repeats must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    machine = machine_info()
    loads = args.loads = LoadLog()
    busy = machine["busy_cores_at_start"]
    if busy is not None and busy >= 0.5 and torch.get_num_threads() > 1:
        log(
            f"note: other programs keep {busy:.1f} of {machine['cores']} cores busy; with {torch.get_num_threads()} torch "
            "threads sampling and training slow down many times over; consider --threads 1"
        )
    results = []

    def write_json(total_s: float | None) -> None:
        """The results so far (after every run, so a long run that stops keeps what it had)."""
        if not args.json:
            return
        payload = {
            "complete": total_s is not None,
            "machine": machine,
            "load": {**loads.summary(), "samples": loads.samples},
            "args": {
                "steps": args.steps,
                "datasets": args.datasets,
                "budgets": args.budgets,
                "methods": args.methods,
                "search_repeats": args.search_repeats,
                "repeats": args.repeats,
                "search_seed": SEARCH_SEED,
                "final_seed": FINAL_SEED,
                "threads": args.threads,
                "set": args.set,
                "quick": args.quick,
            },
            "candidate_samplers": CANDIDATE_SAMPLERS,
            "candidate_grids": CANDIDATE_GRIDS,
            "total_s": total_s,
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")

    with tempfile.TemporaryDirectory(prefix="denoiselab-flowbench-") as tmp:
        root = args.runs or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for dataset in args.datasets:
            for method in args.methods:
                results.append(run_one(method, dataset, args, root, loads))
                write_json(None)
    total_s = time.perf_counter() - t_start
    report(results, args, machine, loads.summary(), total_s)
    log(f"total wall time {total_s:.0f} s ({total_s / 60:.1f} min)")
    write_json(total_s)
    if args.json:
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
