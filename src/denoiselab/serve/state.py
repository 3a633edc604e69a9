"""What every router of one app shares: its runs directory, its training jobs and the limit on
sampling requests computing at once.  ``create_app`` builds one and hands it to each router
factory; nothing is kept in module globals, so two apps never share state."""

from __future__ import annotations

from dataclasses import dataclass

from .gate import Gate
from .jobs import JobManager
from .run_store import RunStore


@dataclass(frozen=True)
class ServeState:
    runs: RunStore
    jobs: JobManager
    sampling_gate: Gate  # MAX_CONCURRENT_SAMPLING requests sample at once, a few wait, the rest get 503
