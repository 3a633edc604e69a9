"""The jump view of a run trained to jump: /api/runs/<name>/jumps, for the Reverse view.

The reply holds what runs/jumps.py computes: for 1, 2 and 4 jumps where each jump starts and
lands, the final samples and how far they land from the ODE path's end; the ODE path itself from
the same noise (or why there is none); and one sentence on what the network learned to predict.
Points and images travel as compact panels (payloads.frame_panel); an image run's reply holds
image strips and the path's end only (jump_reply).  A run that does not jump, or a latent
run, is answered 422 naming the run.  The request shares the sampling gate with
/api/runs/<name>/sample (routes_sampling.py): at most MAX_CONCURRENT_SAMPLING compute at once.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from ..runs import PlanError
from ..runs.jumps import JumpView, jump_view
from .gate import give_memory_back
from .limits import MAX_JUMP_IMAGES
from .payloads import frame_panel, json_response
from .request_models import JumpRequest, RunName
from .routes_sampling import refusal
from .state import ServeState


def jumps_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    runs, gate = state.runs, state.sampling_gate

    @router.post("/api/runs/{name}/jumps")
    async def jumps_route(name: RunName, req: JumpRequest):
        """The run's jumps for 1, 2 and 4 steps beside its ODE path, from the same noise."""
        async with gate.slot():
            return await run_in_threadpool(reply_and_trim, name, req)

    def reply_and_trim(name: str, req: JumpRequest):
        try:
            runs.existing(name)  # 400 / 404 before anything is loaded
            run = runs.load(name)
            if run.is_image and req.n > MAX_JUMP_IMAGES:  # each image costs the U-Net 7 jumps and the path's steps
                raise refusal(PlanError("n", f"an image run's jump view draws at most {MAX_JUMP_IMAGES} images; got {req.n}"), name, "n")
            start = time.perf_counter()
            try:
                view = jump_view(run, n=req.n, seed=req.seed)
            except PlanError as exc:
                raise refusal(exc, name, exc.field) from None
            return json_response(jump_reply(name, req, view, time.perf_counter() - start))
        finally:
            if gate.in_use <= 1:
                give_memory_back()

    return router


def jump_reply(name: str, req: JumpRequest, view: JumpView, seconds: float) -> dict:
    """The reply: every number in the model's (normalised) units, as the Reverse view's panels.

    A point run's draws hold every jump's start and landing and the whole ODE path, drawn as
    segments and lines; an image run's are image strips: the final samples and each jump's
    landing, and of the path only its end (the many-step result from the same noise), beside
    which the page sets the jumps' samples, off_path being then the RMS per pixel."""
    image = view.x_T.ndim == 4
    draws = []
    for d in view.draws:
        draw = {
            "asked": d.asked,
            "steps": d.steps,
            "description": d.description,
            "off_path": None if d.off_path is None else round(d.off_path, 4),
            "samples": frame_panel(d.samples),
            # Jump i goes from starts[i] at time times[i][0] to landings[i] at times[i][1]: flat lists, as
            # api.js decodes the panels down to a depth of four.
            "times": [[round(j.t, 6), round(j.s, 6)] for j in d.jumps],
            "landings": [frame_panel(j.landing) for j in d.jumps],
        }
        if not image:
            draw["starts"] = [frame_panel(j.start) for j in d.jumps]
        draws.append(draw)
    reply = {
        "run": name,
        "kind": "image" if image else "points",
        "sampler": view.sampler,
        "n": req.n,
        "seed": req.seed,
        "learned": view.learned,
        "path_source": view.path_source,
        "x_T": frame_panel(view.x_T),
        "draws": draws,
        "seconds": round(seconds, 3),
    }
    if image:
        return reply | {
            "path_end": None if view.path is None else frame_panel(view.path[-1]),
            "units": "pixels: -1 black, 1 white; off_path is the RMS over every pixel of every image",
        }
    return reply | {
        "path": None if view.path is None else [frame_panel(p) for p in view.path],
        "path_times": [round(t, 6) for t in view.path_times],
        "units": "normalised (the units the model sees)",
    }
