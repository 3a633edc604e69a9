"""Facts about the server: /api/health, and /api/info with what the page offers (data sets,
schedules, samplers, the training recipes) and every cap, so the page sets its controls' bounds
from the server's."""

from __future__ import annotations

from fastapi import APIRouter

from .. import __version__
from ..samplers import SAMPLERS, SPACINGS
from ..schedules import SCHEDULE_KINDS
from .limits import (
    DEFAULT_IMAGE_TRAIN_STEPS,
    DEFAULT_RUN,
    DEFAULT_TRAIN_STEPS,
    FORWARD_SCHEDULES,
    IMAGE_DEMO_OVERRIDES,
    IMAGE_SETS,
    IMAGE_TRAIN_DATA,
    IMAGE_TRAIN_RECIPE,
    MAX_FRAME_IMAGE_VALUES,
    MAX_FRAME_POINTS,
    MAX_FRAME_VALUES,
    MAX_GUIDANCE,
    MAX_IMAGE_SIZE,
    MAX_IMAGE_TRAIN_STEPS,
    MAX_IMAGES,
    MAX_PARTICLES,
    MAX_POINTS,
    MAX_SAMPLE_IMAGES,
    MAX_STEPS,
    MAX_T,
    MAX_TRAIN_STEPS,
    MIN_TRAIN_STEPS,
    POINT_SETS,
    TRAIN_RECIPE,
)
from .state import ServeState


def info_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    jobs = state.jobs

    @router.get("/api/health")
    async def health():  # on the event loop: answers even while every worker thread is busy
        return {"ok": True, "version": __version__}

    @router.get("/api/info")
    def info():
        return {
            "version": __version__,
            "point_sets": list(POINT_SETS),
            "image_sets": list(IMAGE_SETS),
            "schedules": list(FORWARD_SCHEDULES),
            "train_schedules": list(SCHEDULE_KINDS),
            "samplers": list(SAMPLERS),
            "spacings": list(SPACINGS),
            "default_run": DEFAULT_RUN,
            "train": {
                "recipe": TRAIN_RECIPE, "default_steps": DEFAULT_TRAIN_STEPS, "data": list(POINT_SETS),
                "image_recipe": IMAGE_TRAIN_RECIPE, "image_data": list(IMAGE_TRAIN_DATA),
                "image_default_steps": DEFAULT_IMAGE_TRAIN_STEPS, "image_max_steps": MAX_IMAGE_TRAIN_STEPS,
                "image_overrides": list(IMAGE_DEMO_OVERRIDES),
            },
            "caps": {
                "T": MAX_T, "points": MAX_POINTS, "frame_points": MAX_FRAME_POINTS, "steps": MAX_STEPS,
                "frame_values": MAX_FRAME_VALUES, "images": MAX_IMAGES, "image_size": MAX_IMAGE_SIZE,
                "sample_images": MAX_SAMPLE_IMAGES, "frame_image_values": MAX_FRAME_IMAGE_VALUES,
                "train_steps": MAX_TRAIN_STEPS, "min_train_steps": MIN_TRAIN_STEPS, "guidance": MAX_GUIDANCE,
                "jobs": jobs.max_jobs, "particles": MAX_PARTICLES,
            },
        }

    return router
