"""What the grid search's objective and time do: tune_grid from two source trees side by side.

On one exact mixture at one budget, for a few samplers, `denoiselab.tuning.tune_grid` is run
from this checkout and (with --src) from another source tree, e.g. an older commit checked out
with `git worktree add /tmp/old <commit>`, each for every --seconds.  Each tuned grid is scored
here, the same way for both trees, on the benchmark noise of samplers_vs_diffusers.py (40000
draws, which no search sees): the mean distance to the converged solve of the same ODE from the
same noise, and the paired log-density gap against it (the score that benchmark reads its
targets on).  Both trees must take a ``Denoiser`` (samplers/denoiser.py).  The table in
BENCHMARKS.md ("The tuning search: objective and time") was measured against f73a01f, from
before the Denoiser, with this script as of bf163b8: rerun it from that commit.

    git worktree add /tmp/old <commit>
    python benchmarks/tuning_search.py --src /tmp/old/src --seconds 15 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ONE = r"""
import json, sys, time, torch
sys.path.insert(0, {bench!r})
from samplers_vs_diffusers import MIXTURES, T, reference_solve
from denoiselab.samplers import SAMPLERS, Denoiser
from denoiselab.schedules import make_schedule
from denoiselab.tuning import tune_grid
import denoiselab.tuning
assert denoiselab.tuning.__file__.startswith({src!r}), denoiselab.tuning.__file__
torch.set_num_threads(1)
schedule = make_schedule("linear", T)
mixture = MIXTURES[{mixture!r}]()
denoise = Denoiser(mixture.eps_model(schedule), schedule)
x_T = torch.randn(40000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
R = reference_solve(denoise, x_T)
log_p_R = mixture.log_prob(R)
t0 = time.perf_counter()
import inspect  # a search by time alone: a tree whose tune_grid counts calls gets a budget it cannot reach
unbounded = {{"max_calls": 10**9}} if "max_calls" in inspect.signature(tune_grid).parameters else {{}}
tuned = tune_grid(denoise, {sampler!r}, {nfe}, shape=(2,), seed=1, n=1000, options={options!r}, max_seconds={seconds}, **unbounded)
seconds = time.perf_counter() - t0
x = SAMPLERS[{sampler!r}](denoise, x_T, tuned.grid, **{options!r})
d = mixture.log_prob(x) - log_p_R
print(json.dumps({{"calls": tuned.objective_calls, "seconds": seconds, "start": tuned.start,
    "distance": float((x - R).norm(dim=1).mean()), "paired_gap": float(d.mean()), "se": float(d.std()) / len(d) ** 0.5}}))
"""

CONFIGS = [("dpm++3m", {}), ("unipc", {"order": 2, "variant": "bh2"}), ("ipndm", {"order": 3})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", help="another source tree (its src/ folder) to run beside this one")
    ap.add_argument("--mixture", default="ring")
    ap.add_argument("--nfe", type=int, default=10)
    ap.add_argument("--seconds", type=float, nargs="+", default=[15.0, 60.0])
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    trees = [("this checkout", os.path.join(here, "..", "src"))] + ([("--src", args.src)] if args.src else [])
    print(f"{args.mixture} mixture, {args.nfe} model evaluations; scored on 40000 held-out noise draws against the converged solve\n")
    print("| source | sampler | search s (asked) | sampler runs | start grid | mean distance to the solve | paired logp gap |")
    print("|---|---|---:|---:|---|---:|---:|")
    for name, options in CONFIGS:
        for tree, src in trees:
            for seconds in args.seconds:
                code = ONE.format(src=os.path.abspath(src), bench=here, mixture=args.mixture, sampler=name, options=options, nfe=args.nfe, seconds=seconds)
                env = {**os.environ, "PYTHONPATH": os.path.abspath(src), "OMP_NUM_THREADS": "1"}
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(out.stderr.strip().splitlines()[-1])
                r = json.loads(out.stdout.strip().splitlines()[-1])
                extra = ",".join(f"{k}={v}" for k, v in options.items())
                print(f"| {tree} | {name}{f'({extra})' if extra else ''} | {r['seconds']:.0f} ({seconds:g}) | {r['calls']} | {r['start']} | "
                      f"{r['distance']:.4f} | {r['paired_gap']:+.4f} ± {r['se']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
