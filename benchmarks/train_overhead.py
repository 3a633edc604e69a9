"""Where `denoiselab train` spends its time after the last training step (metrics, figures,
checkpoints), measured on a real `denoiselab train` process.

Run:

    python benchmarks/train_overhead.py                      # the default recipe, as a user runs it
    python benchmarks/train_overhead.py --set train.steps=2000 --fresh-cache

The command runs as a child process with --no-progress; each line it prints is time-stamped
as it arrives.  "after training" is the time from the line "trained N steps in ..." to the
process's exit: the metrics (runs.complete_run), the figures and the last writes.  The child's
CPU time (user + system, from wait4) is reported beside the wall times, because on a shared
machine the wall time depends on the other programs; the load average is printed at the start
and the end.  --fresh-cache gives the child an empty cache folder, so it also measures the
metrics' floor (measured once per data set and machine, then cached; `train` measures it on
a lowest-priority background thread while the model trains).  --busy keeps one core busy with
a spinning child process for the whole run, to see what a busy machine does to the training
time and to the time after it.  --src runs another copy of the code (e.g. an older commit's
src/ from `git worktree add`), for a before/after comparison.  Target (issue 15): within 8 s
of the end of training on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process so far (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="spiral")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--fresh-cache", action="store_true", help="an empty cache folder: the floor is measured too")
    ap.add_argument("--busy", action="store_true", help="keep one core busy (a spinning process) during the run")
    ap.add_argument("--src", type=Path, default=SRC, help="the src/ folder of the code to run (default: this checkout's)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average at start {load()}; code from {args.src}")
    busy = None
    if args.busy:  # bounded: it stops itself after 10 minutes in any case
        busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 600\nwhile time.time() < end: pass"])
    try:
        run(args)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def run(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.src.resolve()), os.environ.get("PYTHONPATH", "")])}
        if args.fresh_cache:
            env["DENOISELAB_CACHE"] = str(Path(tmp) / "cache")
        overrides = [a for item in args.set for a in ("--set", item)]
        command = [sys.executable, "-m", "denoiselab.cli", "train", "--config", args.config, *overrides, "--out", str(Path(tmp) / "run"), "--no-progress"]
        print("command:", " ".join(["denoiselab", *command[3:]]))
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        trained_at = cpu_at_trained = None
        lines = []
        for line in proc.stdout:
            now = time.perf_counter() - start
            lines.append((now, line.rstrip()))
            if line.startswith("trained ") and trained_at is None:
                trained_at, cpu_at_trained = now, cpu_seconds(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        end = time.perf_counter() - start
    for now, line in lines:
        print(f"  {now:7.2f} s  {line}")
    if trained_at is None:
        sys.exit(f"train did not finish (status {status}); see the lines above")
    cpu = usage.ru_utime + usage.ru_stime
    print(f"\nwall: {end:.1f} s in all, {trained_at:.1f} s to the end of training, {end - trained_at:.1f} s after training")
    after = "" if cpu_at_trained is None else f", {cpu - cpu_at_trained:.1f} s of it after training"
    print(f"child CPU time (user + system, all threads): {cpu:.1f} s{after}")
    print(f"load average at the end {load()}")


if __name__ == "__main__":
    main()
