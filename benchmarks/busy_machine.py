"""Training speed of a recipe with one core kept busy by another program, against the same
training on the machine as it is, for denoiselab's automatic thread count and for torch's
default (one thread per core).

Run:

    python benchmarks/busy_machine.py                         # spiral, 2000 steps per measurement
    python benchmarks/busy_machine.py --steps 8000 --rounds 2 --compare-default

Each measurement trains the recipe (cut to --steps steps) in a fresh child process through
denoiselab.training.train and reports the training time the loop measured (no start-up, no
metrics).  The busy program is this script's own child: one Python process spinning on one
core, started before the busy measurements and stopped right after them (bounded by
--busy-limit seconds in any case).  "auto" is train.threads = 0 (training.auto_threads: one
thread for point networks); with --compare-default, "torch default" sets train.threads to
torch's own default too (on a loaded machine that one can take many times longer).
Measurements alternate (idle, busy) per round, so a change in the machine's other load hits
both.  Target (issue 15): the default recipe trains with one core busy in at most 1.5x its
time without, with auto threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

CHILD = """
import json, sys, tempfile, torch
from denoiselab.config import load_config
from denoiselab.training import train
overrides = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    state = train(load_config(sys.argv[2], overrides), tmp + "/run", progress=False, log=lambda *a: None)
    info = json.load(open(tmp + "/run/run.json"))
print(json.dumps({"seconds": info["train_seconds"], "threads": torch.get_num_threads()}))
"""

SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _train(recipe: str, overrides: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides), recipe], env=_env(), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="spiral")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--busy-limit", type=float, default=900.0, help="the busy process ends after this many seconds at most")
    ap.add_argument("--compare-default", action="store_true", help="also measure torch's default thread count")
    args = ap.parse_args()
    import torch

    default_threads = torch.get_num_threads()
    print(f"machine: {os.cpu_count()} cores, torch's default {default_threads} threads; load average at start {_load()}")
    settings = {"auto (train.threads = 0)": []}
    if args.compare_default:
        settings[f"torch default ({default_threads} threads)"] = [f"train.threads={default_threads}"]
    base = [f"train.steps={args.steps}", f"train.checkpoint_every={args.steps}"]
    times: dict = {(name, busy): [] for name in settings for busy in (False, True)}
    threads_used = {}
    for _ in range(args.rounds):
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(args.busy_limit)]) if busy else None
            try:
                for name, extra in settings.items():
                    result = _train(args.config, base + extra)
                    times[(name, busy)].append(result["seconds"])
                    threads_used[name] = result["threads"]
                    print(f"  {name:<28} {'one core busy' if busy else 'as it is':<14} {result['seconds']:7.1f} s", file=sys.stderr, flush=True)
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.wait()
    print(f"\n{args.config}, {args.steps} steps; median of {args.rounds} round(s); training time only\n")
    print("| threads | machine as it is (s) | one core busy (s) | busy / as it is |\n|---|---:|---:|---:|")
    for name in settings:
        idle, busy = statistics.median(times[(name, False)]), statistics.median(times[(name, True)])
        print(f"| {name}, {threads_used[name]} used | {idle:.1f} | {busy:.1f} | {busy / idle:.2f}x |")
    if args.compare_default:
        auto_idle, default_idle = (statistics.median(times[(name, False)]) for name in settings)
        print(f"\nauto against torch's default, machine as it is: {auto_idle / default_idle:.2f}x the time")
    print(f"load average at the end {_load()}")


if __name__ == "__main__":
    main()
