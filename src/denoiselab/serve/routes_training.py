"""Training jobs: /api/jobs (start one, list them), /api/jobs/<id> (its state and the losses
since a step) and /api/jobs/<id>/cancel.  Jobs run in their own processes (jobs.py).

The Train view trains 2D models with the spiral recipe, and a quick demo of the image path with
the patterns recipe on a smaller U-Net (IMAGE_DEMO_OVERRIDES); `denoiselab train --config
patterns` trains the full one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from ..config import ConfigError, load_config
from .limits import IMAGE_DEMO_OVERRIDES, IMAGE_TRAIN_RECIPE, TRAIN_RECIPE
from .payloads import json_response
from .request_models import JobId, TrainRequest
from .state import ServeState


def start_training(state: ServeState, req: TrainRequest, name: str) -> dict:
    """Start a job training the page's recipe for ``req`` into run folder ``name``; its state."""
    steps = req.train_steps
    overrides = [
        f'data.name="{req.data}"',
        f"data.seed={req.seed}",
        f"train.seed={req.seed}",
        f"train.steps={steps}",
        f"train.checkpoint_every={max(100, steps // 4)}",
        f'schedule.kind="{req.schedule}"',
    ]
    if req.is_image:
        # The quick demo: a smaller U-Net, and a warm-up in proportion to the short run.
        overrides += [*IMAGE_DEMO_OVERRIDES, f"train.warmup_steps={min(200, steps // 10)}"]
    if req.classes:
        overrides.append("data.classes=[" + ", ".join(f'"{c}"' for c in req.classes) + "]")
    try:
        cfg = load_config(IMAGE_TRAIN_RECIPE if req.is_image else TRAIN_RECIPE, overrides)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    state.runs.path(name)  # checks the name once more
    data = " + ".join(req.classes) if req.classes else f"{req.data} (image demo)" if req.is_image else req.data
    return state.jobs.start(name, cfg, data=data)


def training_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    runs, jobs = state.runs, state.jobs

    @router.post("/api/jobs", status_code=202)
    def start_job(req: TrainRequest):
        name = req.name or runs.free_name(f"{'-'.join(req.classes) if req.classes else req.data}-{req.train_steps}")
        return start_training(state, req, name)

    @router.get("/api/jobs")
    def list_jobs():
        return {"jobs": jobs.list()}

    @router.get("/api/jobs/{job_id}")
    def get_job(job_id: JobId, since: Annotated[int, Query(ge=0)] = 0):
        return json_response(jobs.snapshot(job_id, since))

    @router.post("/api/jobs/{job_id}/cancel", status_code=202)
    def cancel_job(job_id: JobId):
        return jobs.cancel(job_id)

    return router
