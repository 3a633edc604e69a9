"""Where training computes: the device, torch's thread count on a CPU, and the hint when other
programs leave fewer free cores than torch has threads."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..builders import pick_device
from ..config import Config

# The flag that sets the thread count, as each training command spells it.
TRAIN_THREADS_FLAG = "--set train.threads=1"
CLASSIFIER_THREADS_FLAG = "--threads 1"

FIRST_WINDOW_S = 5.0  # the hint's first look, over the first seconds of training
WINDOW_S = 60.0  # then a look over each following minute, until it has said something


def auto_threads(cfg: Config) -> int:
    """Torch threads for ``train.threads = 0`` on a CPU: one, for every network.

    On a 2-core machine with one core kept busy by another program, two threads trained each
    image recipe's networks (the U-Nets of digits, digits-flow and patterns, the latent recipes'
    autoencoders and latent U-Nets, the noise-conditional classifiers) several times slower than
    one, and a point MLP too, because torch's threads wait on each other for the one that has no
    core; idle, two threads were at most 1.6x faster than one (benchmarks/image_threads.py,
    benchmarks/busy_machine.py; BENCHMARKS.md, "Threads").  One thread is the better choice
    in the worst case by far, and it keeps its core whatever else runs.  The count is fixed, not
    read from the load, because it changes the last bits of the weights: a seeded run gives the
    same weights every time, on machines with any number of cores.  ``cfg`` is the recipe (the
    rule once depended on its network)."""
    return 1


@dataclass
class Compute:
    """Where a network trains: its device, torch's thread count on a CPU (None elsewhere), and
    ``after_step``, the busy-cores watch the training loop calls after each step."""

    device: torch.device
    threads: int | None
    after_step: Callable[[], None]


def set_up_compute(cfg: Config, log, threads_flag: str = TRAIN_THREADS_FLAG, device: torch.device | None = None) -> Compute:
    """The recipe's device (or ``device``: a process's own GPU under torchrun), with torch's
    thread count set (train.threads, or auto_threads) on a CPU, and a watch that logs one hint
    naming ``threads_flag`` (the command's own way to ask for one thread) when other programs
    leave fewer free cores than those threads."""
    device = device or pick_device(cfg.train.device)
    if device.type != "cpu":
        return Compute(device, None, lambda: None)
    threads = cfg.train.threads or auto_threads(cfg)
    torch.set_num_threads(threads)
    return Compute(device, threads, BusyCoresWatch(threads, threads_flag, log) if threads > 1 else lambda: None)


def _cpu_times() -> tuple[int, int] | None:
    """The machine's CPU time from /proc/stat, in clock ticks: (all of it without guest time,
    idle + iowait); None where it cannot be read."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]
    except (OSError, ValueError, IndexError):
        return None


def busy_cores(window_s: float = 0.1) -> float | None:
    """Cores kept busy right now (from /proc/stat over ``window_s``, while this process sleeps);
    None where /proc/stat is not available."""
    before = _cpu_times()
    time.sleep(window_s)
    after = _cpu_times()
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (os.cpu_count() or 1) * (1 - (after[1] - before[1]) / (after[0] - before[0]))


class BusyCoresWatch:
    """How many cores other programs keep busy while this process trains, and one hint when
    they leave fewer free cores than torch has threads: torch's threads then wait on each other
    for the one without a core, and training runs several times slower than on one thread.

    Other programs' load is the machine's busy time (/proc/stat) over a window of training less
    this process's own CPU time (every thread's) over the same window, so the training itself
    does not count and nothing sleeps.  The first window is the first FIRST_WINDOW_S seconds of
    training, long enough to average out a load that comes and goes in bursts; then each
    following WINDOW_S, until the hint has been given once.  The thread count itself never
    follows the load (auto_threads: it would change the weights' last bits)."""

    def __init__(self, threads: int, flag: str, log):
        self.threads, self.flag, self.log = threads, flag, log
        self.first_window_s, self.window_s = FIRST_WINDOW_S, WINDOW_S
        self.cores = os.cpu_count() or 1
        self.done = False
        self._start: tuple[float, float, tuple[int, int]] | None = None
        self._due = 0.0

    def _mark(self, window_s: float) -> None:
        machine = _cpu_times()
        if machine is None:  # no /proc/stat: nothing to watch
            self.done = True
            return
        now = time.monotonic()
        self._start, self._due = (now, time.process_time(), machine), now + window_s

    def others_busy(self) -> float | None:
        """Cores other programs kept busy since the window began; None before it or without /proc/stat."""
        machine = _cpu_times()
        if self._start is None or machine is None:
            return None
        t0, cpu0, (total0, idle0) = self._start
        wall, ticks = time.monotonic() - t0, machine[0] - total0
        if wall <= 0 or ticks <= 0:
            return None
        all_busy = self.cores * (1 - (machine[1] - idle0) / ticks)
        return max(0.0, all_busy - (time.process_time() - cpu0) / wall)

    def __call__(self) -> None:
        if self.done:
            return
        if self._start is None:
            self._mark(self.first_window_s)
            return
        if time.monotonic() < self._due:
            return
        others = self.others_busy()
        if others is not None and self.cores - others < self.threads - 0.5:
            self.done = True
            message = (
                f"note: other programs keep {others:.1f} of {self.cores} cores busy; torch's {self.threads} threads then wait "
                f"on each other and train several times slower than one thread: press Ctrl-C (a checkpoint is kept) and resume with {self.flag}"
            )
            from tqdm.auto import tqdm

            with tqdm.external_write_mode(file=sys.stderr):  # above the progress bar, not through it
                self.log(message)
            return
        self._mark(self.window_s)
