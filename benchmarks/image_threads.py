"""Training steps per second of every image recipe's networks on one torch thread against two,
on the machine as it is and with one core kept busy by another program, in one invocation.

Run:

    python benchmarks/image_threads.py                      # 30 timed steps per measurement
    python benchmarks/image_threads.py --steps 20 --stages digits patterns

The stages: the U-Net of `digits`, `digits-flow` and `patterns`; the autoencoder (stage one) and
the latent U-Net (stage two) of `digits-latent` and `patterns-latent`; and the noise-conditional
classifier that `train-classifier` trains on `digits` and on `patterns`.  Each measurement is a
fresh child process that builds the recipe's network, loss and optimiser exactly as training
does (training.init_state, builders.objective_from, training.step.optimiser_step), sets torch's
thread count, takes --warmup untimed steps, then times --steps steps (or as many as fit in
--max-seconds, at least 3).  A latent U-Net trains on random latents of the autoencoder's latent
shape (a step's cost does not depend on the values).

The busy program is one Python process spinning on one core (`while True: pass`), this script's
own child, started before the busy measurements and stopped right after them.  Each child also
reports how many cores other programs kept busy while it was timed: /proc/stat's busy time
over the timed steps less the child's own CPU time (the spinner included, so "one core busy"
reads about one more than "as it is" on a machine with other load).  Measurements alternate
between one and two threads, and the machine's states follow each other per round, so a change
of the machine's other load hits both thread counts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

STAGES = {
    # name: (recipe, what trains)
    "digits": ("digits", "denoiser"),
    "digits-flow": ("digits-flow", "denoiser"),
    "patterns": ("patterns", "denoiser"),
    "digits-latent: autoencoder": ("digits-latent", "autoencoder"),
    "digits-latent: latent U-Net": ("digits-latent", "latent"),
    "patterns-latent: autoencoder": ("patterns-latent", "autoencoder"),
    "patterns-latent: latent U-Net": ("patterns-latent", "latent"),
    "digits: train-classifier": ("digits", "classifier"),
    "patterns: train-classifier": ("patterns", "classifier"),
}

CHILD = r"""
import json, sys, time
import torch
threads, recipe, what, warmup, steps, max_seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
torch.set_num_threads(threads)
from denoiselab.builders import objective_from, schedule_from
from denoiselab.classifiers import ClassifierObjective, ClassifierSettings, build_classifier
from denoiselab.config import load_config
from denoiselab.training.checkpoint import init_state
from denoiselab.training.classifier import loop_config
from denoiselab.training.denoiser import load_training_data
from denoiselab.training.stages import stage_one_config
from denoiselab.training.step import optimiser_step

cfg = load_config(recipe)
data = load_training_data(cfg)
x = torch.as_tensor(data.train, dtype=torch.float32)
y = None if data.labels is None else torch.as_tensor(data.labels, dtype=torch.long)
classes = len(data.class_names)
if what == "autoencoder":
    cfg = stage_one_config(cfg)
    objective, y, classes = objective_from(cfg), None, 0
elif what == "latent":
    a = cfg.autoencoder
    side = [s // 2 ** a.downsample for s in x.shape[2:]]
    x = torch.randn(len(x), a.channels, *side, generator=torch.Generator().manual_seed(0))
    objective = objective_from(cfg)
elif what == "classifier":
    settings = ClassifierSettings()
    cfg = loop_config(cfg, settings)
    objective = ClassifierObjective(schedule_from(cfg))
else:
    objective = objective_from(cfg)
shape = tuple(x.shape[1:])
build = (lambda: build_classifier(shape, classes, settings)) if what == "classifier" else None
state = init_state(cfg, shape[0], torch.device("cpu"), classes, shape, build_model=build)
state.time_sampler = getattr(objective, "new_time_sampler", lambda: None)()


def stat():
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


for _ in range(warmup):
    optimiser_step(cfg, state, objective, x, y)
total0, idle0 = stat()
cpu0, t0 = time.process_time(), time.perf_counter()
done = 0
while done < steps and (done < 3 or time.perf_counter() - t0 < max_seconds):
    optimiser_step(cfg, state, objective, x, y)
    done += 1
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
total1, idle1 = stat()
cores = len(__import__("os").sched_getaffinity(0))
busy_all = cores * (1 - (idle1 - idle0) / max(1, total1 - total0))
print(json.dumps({"steps": done, "seconds": wall, "others_busy": max(0.0, busy_all - cpu / wall), "threads": torch.get_num_threads()}))
"""

SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _measure(stage: str, threads: int, args) -> dict:
    recipe, what = STAGES[stage]
    argv = [sys.executable, "-c", CHILD, str(threads), recipe, what, str(args.warmup), str(args.steps), str(args.max_seconds)]
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{stage}, {threads} thread(s): the child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def print_table(rows: list[dict], stages: list[str], rounds: int) -> None:
    def cell(stage, busy, threads):
        got = [row for row in rows if (row["stage"], row["busy"], row["threads"]) == (stage, busy, threads)]
        return statistics.median(row["steps"] / row["seconds"] for row in got), statistics.median(row["others_busy"] for row in got)

    print(f"\nsteps per second, median of {rounds} round(s); in brackets: the cores other programs kept busy while it was timed\n")
    print("| stage | as it is: 1 thread | 2 threads | 1 / 2 threads | one core busy: 1 thread | 2 threads | 1 / 2 threads | worst case (the slower state of each): 1 / 2 threads |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for stage in stages:
        cells, worst = [], {1: math.inf, 2: math.inf}
        for busy in (False, True):
            (one, one_busy), (two, two_busy) = cell(stage, busy, 1), cell(stage, busy, 2)
            cells += [f"{one:.2f} ({one_busy:.1f})", f"{two:.2f} ({two_busy:.1f})", f"{one / two:.2f}x"]
            worst = {1: min(worst[1], one), 2: min(worst[2], two)}
        print(f"| {stage} | " + " | ".join(cells) + f" | {worst[1] / worst[2]:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", nargs="+", default=list(STAGES), help=f"stage names or recipe names (default: all of {', '.join(STAGES)})")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement (default 30)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop timing a measurement after this long (default 60; at least 3 steps)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--table", metavar="JSON", help="print the table of an earlier run's --json file, measuring nothing")
    args = ap.parse_args()
    stages = [s for s in STAGES if s in args.stages or STAGES[s][0] in args.stages]
    if args.table:
        rows = json.loads(Path(args.table).read_text())
        print_table(rows, [s for s in stages if any(row["stage"] == s for row in rows)], max(Counter((r["stage"], r["busy"], r["threads"]) for r in rows).values()))
        return
    print(f"machine: {len(os.sched_getaffinity(0))} cores available, {os.cpu_count()} in all; load average at start {_load()}", flush=True)
    rows = []
    for r in range(args.rounds):
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN, "3600"]) if busy else None
            try:
                for stage in stages:
                    order = (1, 2) if (r + len(rows)) % 2 == 0 else (2, 1)
                    for threads in order:
                        m = _measure(stage, threads, args)
                        rows.append({"stage": stage, "busy": busy, "threads": threads, **m, "load": _load()})
                        print(
                            f"  {stage:<32} {'one core busy' if busy else 'as it is':<14} {threads} thread(s): "
                            f"{m['steps'] / m['seconds']:6.2f} steps/s ({m['steps']} steps, {m['seconds']:.1f} s; "
                            f"other programs' busy cores {m['others_busy']:.2f}; load {_load()})",
                            file=sys.stderr, flush=True,
                        )  # fmt: skip
            finally:
                if spinner is not None:
                    spinner.terminate()
                    spinner.wait()

    print_table(rows, stages, args.rounds)
    print(f"\nload average at the end {_load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
