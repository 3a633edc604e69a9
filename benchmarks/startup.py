"""How long `denoiselab` takes to answer --help and usage errors, and what it imports.

Run:

    python benchmarks/startup.py [--repeats 5]

Each command runs as its own process (the installed `denoiselab` entry point of this Python,
or `python -m denoiselab.cli`), --repeats times; the table gives the median and the fastest
wall time, beside a process that imports torch alone (what every command paid before the
command line's imports were made lazy) and a bare `python -c pass`.  Then `python -X
importtime` of `--help` lists the slowest imports.  Target (issue 15): under 0.5 s each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["sample", "--help"],
    ["train", "--bogus"],
    ["train", "--set", "train.lrr=1e-3"],
    ["train", "--config", "no-such-recipe"],
    ["train", "--resume", "/no/such/run"],
    ["schedules", "--T", "0"],
]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _time(argv: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(argv, env=_env(), capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    print(f"machine: {os.cpu_count()} cores, load average at start {' '.join(load)}\n")
    cli = [sys.executable, "-m", "denoiselab.cli"]
    rows = [("python -c pass", [sys.executable, "-c", "pass"]), ("python -c 'import torch'", [sys.executable, "-c", "import torch"])]
    rows += [("denoiselab " + " ".join(c), cli + c) for c in COMMANDS]
    print("| command | median (s) | fastest (s) |\n|---|---:|---:|")
    for name, argv in rows:
        times = _time(argv, args.repeats)
        print(f"| `{name}` | {statistics.median(times):.3f} | {min(times):.3f} |", flush=True)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "denoiselab.cli", "--help"], env=_env(), capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    print("\nslowest imports of `denoiselab --help` (cumulative, microseconds):")
    for us, name in sorted(rows, reverse=True)[:8]:
        print(f"  {us:>8}  {name.strip()}")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    print(f"\nload average at the end {' '.join(load)}")


if __name__ == "__main__":
    main()
