"""Where training computes: the device, and torch's thread count on a CPU."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..builders import pick_device
from ..config import Config
from ..models import POINT_ARCHITECTURES


def auto_threads(cfg: Config) -> int | None:
    """Torch threads for ``train.threads = 0`` on a CPU: one for a point network, None (torch's
    default, one per core) for an image network.

    A point MLP's kernels are too small to share out: two threads train the default spiral at
    most 1.3x faster than one on an idle 2-core machine, and several times slower when another
    program keeps a core busy (the threads wait on each other), while one thread keeps its own
    core (benchmarks/busy_machine.py).  The count is fixed per model kind, not
    read from the load, because it changes the last bits of the weights: a seeded run gives
    the same weights every time on the same machine."""
    return 1 if cfg.model.arch in POINT_ARCHITECTURES else None


def set_up_compute(cfg: Config, log) -> torch.device:
    """The recipe's device, with torch's thread count set (train.threads, or auto_threads)."""
    device = pick_device(cfg.train.device)
    threads = cfg.train.threads or (auto_threads(cfg) if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    elif device.type == "cpu":
        warn_if_cores_busy(log)
    return device


def busy_cores(window_s: float = 0.1) -> float | None:
    """Cores kept busy by other programs right now (from /proc/stat over ``window_s``, while
    this process sleeps); None where /proc/stat is not available."""

    def snapshot() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]  # all time (without guest), idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(window_s)
        total1, idle1 = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def warn_if_cores_busy(log) -> None:
    """Torch's threads (one per core) wait on each other when another program holds a core: the
    digits U-Net then trains many times slower.  An image network keeps torch's thread count
    (auto_threads; changing it with the load would change the last bits of the weights), but
    the user is told."""
    busy, cores, threads = busy_cores(), os.cpu_count() or 1, torch.get_num_threads()
    if busy is not None and threads > 1 and cores - busy < threads - 0.5:
        log(
            f"note: other programs keep {busy:.1f} of {cores} cores busy; torch's {threads} threads then slow "
            "each other down badly, and --set train.threads=1 is several times faster"
        )
