"""The playground's web app: one page (static/) and a small JSON API over denoiselab.

``create_app`` builds the shared state (the runs directory, the training jobs, the limit on
concurrent sampling), installs the error handlers and includes one router per concern:

- routes_info.py: health, and what the page offers with every cap;
- routes_schedules.py: schedules and the forward process;
- routes_runs.py: the run folders, one run's details, the default run;
- routes_sampling.py: the reverse process of a run;
- routes_jumps.py: the jumps of a run trained to jump, beside its ODE path;
- routes_training.py: training jobs;
- routes_page.py: the page and its static files.

Safety rules of the API:
- every request body and query is a pydantic model with bounds (request_models.py); a bad one
  gets 422 with ``detail`` naming the field ("steps: Input should be less than or equal to 250");
- sizes are capped by the constants in limits.py, so no request can ask for unbounded memory;
- a run is addressed by its folder name only, checked against RUN_NAME and resolved inside the
  runs directory (no "..", no slashes, no absolute paths; run_store.py);
- only the files in static/ are served, by exact name;
- a state-changing request must come from the app's own page (Origin, Sec-Fetch-Site) with a
  JSON body (guard.py), so a page on another site cannot start work here;
- sampling keeps all its state in the request (its own torch.Generator, sampler locals), so
  concurrent requests never share mutable state; the loaded model is read-only.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from .. import __version__
from .errors import add_error_handlers
from .gate import Gate
from .guard import SameOriginGuard
from .jobs import JobManager
from .limits import (
    DEFAULT_IMAGE_TRAIN_STEPS,
    MAX_CONCURRENT_SAMPLING,
    MAX_FRAME_IMAGE_VALUES,
    MAX_FRAME_POINTS,
    MAX_FRAME_VALUES,
    MAX_IMAGE_TRAIN_STEPS,
    MAX_IMAGES,
    MAX_POINTS,
    MAX_SAMPLE_IMAGES,
    MAX_STEPS,
    MAX_T,
    MAX_TRAIN_STEPS,
    MAX_WAITING_SAMPLING,
    MIN_TRAIN_STEPS,
    SAMPLING_WAIT_S,
)
from .routes_info import info_router
from .routes_jumps import jumps_router
from .routes_page import page_router
from .routes_runs import runs_router
from .routes_sampling import sampling_router
from .routes_schedules import schedules_router
from .routes_training import training_router
from .run_store import RunStore
from .state import ServeState

# create_app, and the caps callers (and the tests) read from here.
__all__ = [
    "DEFAULT_IMAGE_TRAIN_STEPS",
    "MAX_FRAME_IMAGE_VALUES",
    "MAX_FRAME_POINTS",
    "MAX_FRAME_VALUES",
    "MAX_IMAGE_TRAIN_STEPS",
    "MAX_IMAGES",
    "MAX_POINTS",
    "MAX_SAMPLE_IMAGES",
    "MAX_STEPS",
    "MAX_T",
    "MAX_TRAIN_STEPS",
    "MIN_TRAIN_STEPS",
    "create_app",
]


def create_app(
    runs_dir: str | Path = "runs",
    *,
    max_jobs: int = 1,
    job_threads: int | None = None,
    finish_runs: bool = True,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The playground app over the run folders in ``runs_dir``.

    ``max_jobs`` training jobs may run at once (more get 429); ``finish_runs`` draws metrics and
    figures after training, as `denoiselab train` does.  ``allowed_hosts`` (e.g. 127.0.0.1 and
    localhost) refuses requests for any other Host header, so a web page on another site cannot
    reach the app through DNS rebinding.
    """
    state = ServeState(
        runs=RunStore(Path(runs_dir)),
        jobs=JobManager(Path(runs_dir), max_jobs=max_jobs, threads=job_threads, finish=finish_runs),
        sampling_gate=Gate(MAX_CONCURRENT_SAMPLING, MAX_WAITING_SAMPLING, SAMPLING_WAIT_S),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.shutdown()

    app = FastAPI(title="denoiselab playground", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runs = state.runs
    app.state.jobs = state.jobs
    app.state.sampling_gate = state.sampling_gate
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(SameOriginGuard)  # no cross-site request changes anything (guard.py)
    add_error_handlers(app)
    for router in (info_router(state), schedules_router(), runs_router(state), sampling_router(state), jumps_router(state), training_router(state)):
        app.include_router(router)
    app.include_router(page_router())
    return app
