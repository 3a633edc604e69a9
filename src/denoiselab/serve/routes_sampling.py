"""The reverse process of a trained run: /api/runs/<name>/sample, for the Reverse and Playground
views.

A request is answered in four steps, each with one job: it becomes a sampling plan
(``plan_request``: runs/plan.py, the command line's own, held to the page's bounds), its gradient
guidance is prepared (guided_sampling.py), the plan is drawn by the real sampler (``draw``), and
the reply is built (sample_reply.py: with ``frames`` every step's record, x_t, predicted noise,
predicted x0 and next sample).  A plan's error answers 422 naming the request's field (409 where
one of the run's files stands in the way), the run named by its name.

Sampling keeps all its state in the request (its own torch.Generator, sampler locals), so
concurrent requests never share mutable state; the loaded model is read-only.  At most
MAX_CONCURRENT_SAMPLING requests compute at once, and each builds its reply before it lets the
next one in (gate.py); one that cannot get a slot within SAMPLING_WAIT_S gets 503 with
Retry-After, having held no worker thread while it waited.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from ..runs import PlanError, SamplingPlan, plan_sampling, sample
from ..runs.guided import check_guidable
from .gate import give_memory_back
from .guided_sampling import prepare as prepare_guidance
from .guided_sampling import request_field, uses_gradients
from .limits import (
    DEFAULT_SAMPLE_IMAGES,
    MAX_FRAME_IMAGE_VALUES,
    MAX_FRAME_POINTS,
    MAX_FRAME_VALUES,
    MAX_SAMPLE_IMAGES,
    MAX_STEPS,
)
from .payloads import json_response
from .prompt_sampling import prepare as prepare_prompt
from .request_models import RunName, SampleRequest
from .sample_reply import build_reply
from .smc_sampling import SmcSampling, is_smc, plan_defaults
from .smc_sampling import check_bounds as check_smc_bounds
from .smc_sampling import prepare as prepare_smc
from .state import ServeState


def sampling_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    runs, gate = state.runs, state.sampling_gate

    @router.post("/api/runs/{name}/sample")
    async def sample_route(name: RunName, req: SampleRequest):
        """Run the reverse process; with ``frames`` every step's x_t, eps-hat, x0-hat and x_next.

        Point runs answer with point panels, image runs with image grids (N, C, H, W); both are
        capped so that no request can ask for an unbounded response.
        """
        async with gate.slot():  # 503 + Retry-After when busy; the reply is built inside the slot
            return await run_in_threadpool(sample_reply_and_trim, name, req)

    def sample_reply_and_trim(name: str, req: SampleRequest):
        try:
            return sample_reply(name, req)
        finally:
            if gate.in_use <= 1:  # the last request of a burst hands the freed heap back
                give_memory_back()

    def sample_reply(name: str, req: SampleRequest):
        runs.existing(name)  # 400 / 404 before anything is loaded
        run = runs.load(name)
        if req.gradient_guidance is not None:
            try:
                check_guidable(run, "gradient_guidance")
            except PlanError as exc:
                raise refusal(exc, name, "gradient_guidance") from None
        plan = plan_request(run, name, req)
        prompted = prepare_prompt(run, name, req, plan)
        if prompted is not None:
            plan = prompted.plan
        check_bounds(run, plan, req)
        guided = None
        if req.gradient_guidance is not None:
            prepare = prepare_smc if is_smc(req.gradient_guidance) else prepare_guidance
            try:
                guided = prepare(run, req.gradient_guidance, plan)
            except PlanError as exc:
                raise refusal(exc, name, request_field(req.gradient_guidance, exc.field)) from None
        if isinstance(guided, SmcSampling):
            check_smc_bounds(plan, guided.particles, req.frames)
        x_T, records, seconds = draw(run, plan, guided, frames=req.frames, prompted=prompted)
        reply = build_reply(run, name, req, plan, x_T, records, seconds, guided)
        if prompted is not None:
            reply = prompted.add_to_reply(reply)
        if isinstance(guided, SmcSampling):
            reply = guided.add_to_reply(run, reply, records[-1].x_next, req.frames)
        return json_response(reply)

    return router


def plan_request(run, name: str, req: SampleRequest) -> SamplingPlan:
    """The request's sampling plan; what it leaves out comes from the run's [sample] section,
    held to the page's own defaults (n, and steps at most MAX_STEPS)."""
    sc = run.config.sample
    label, fields = req.label, {"grid": "spacing" if req.spacing is not None else "grid"}
    guide = req.gradient_guidance
    if guide is not None and guide.classifier is not None:  # every sample is guided to its class
        if req.label is not None or req.labels is not None:
            raise HTTPException(422, "gradient_guidance.classifier.label: the class to guide to goes here, not also in label or labels")
        label, fields["label"] = guide.classifier.label, "gradient_guidance.classifier"
    n = req.n
    if n is None and req.labels is None:
        n = min(sc.n, DEFAULT_SAMPLE_IMAGES if run.is_image else 500)
    sampler, steps = req.sampler, min(sc.steps, MAX_STEPS) if req.steps is None else req.steps
    if is_smc(guide):  # twisted SMC's own defaults
        sampler, steps, smc_n = plan_defaults(run, guide, req.sampler, req.steps, req.n)
        n = n if req.labels is not None else smc_n
    try:
        return plan_sampling(
            run,
            sampler=sampler,
            steps=steps,
            grid=req.grid_name,
            eta=req.eta,
            n=n,
            seed=req.seed,
            label=label,
            labels=req.labels,
            guidance=req.guidance,
            tuned=req.tuned_grid,
            conditioned=guide is not None and guide.classifier is None,  # inpaint, observe, region
        )
    except PlanError as exc:
        raise refusal(exc, name, fields.get(exc.field, exc.field)) from None


def refusal(exc: PlanError, name: str, field: str) -> HTTPException:
    """``exc`` as the reply: 422 naming the request's ``field`` (409 where a run file is in the
    way), the run named by its name, never by its path."""
    subject = (f"{name!r} " if exc.field == "run" else f"run {name!r} ") if exc.of_run else ""
    return HTTPException(409 if exc.conflict else 422, f"{field}: {subject}{exc.message}")


def check_bounds(run, plan: SamplingPlan, req: SampleRequest) -> None:
    """The page's bounds on one request (limits.py): images per request, and the numbers a reply
    with frames holds, which requests with gradient guidance are held to even without frames
    (each of their evaluations costs a backward pass too)."""
    n, steps = plan.n, plan.steps
    if run.is_image:
        shape = run.data_shape  # a latent run's frames are its decoded images
        size = int(np.prod(shape))
        if n > MAX_SAMPLE_IMAGES:
            raise HTTPException(422, f"n: at most {MAX_SAMPLE_IMAGES} images per request for an image run, got {n}")
        too_much = n * steps * size > MAX_FRAME_IMAGE_VALUES
        if req.frames and too_much:
            dims = " x ".join(str(d) for d in shape)
            raise HTTPException(
                422,
                f"n: n x steps x C x H x W must be at most {MAX_FRAME_IMAGE_VALUES} with frames, got "
                f"{n} x {steps} x {dims} = {n * steps * size}; ask for fewer images or steps",
            )
    else:
        if req.frames and n > MAX_FRAME_POINTS:
            raise HTTPException(422, f"n: at most {MAX_FRAME_POINTS} points when every step is returned (frames), got {n}")
        too_much = n * steps > MAX_FRAME_VALUES
        if req.frames and too_much:
            raise HTTPException(422, f"n: n x steps must be at most {MAX_FRAME_VALUES} with frames, got {n} x {steps}")
    if req.gradient_guidance is not None and uses_gradients(req.gradient_guidance) and too_much:
        raise HTTPException(422, "n: n x steps (x the image size) is over the frame bound, which gradient guidance is held to with or without frames")


def draw(run, plan: SamplingPlan, guided, *, frames: bool, prompted=None) -> tuple[torch.Tensor, list, float]:
    """x_T, the sampler's step records (every step with ``frames``, else the last) and the
    seconds the sampling took; ``prompted`` (prompt_sampling.PromptSampling) records the
    cross-attention maps of each step, under any gradient guidance."""
    records: list = []
    on_step = records.append if frames else _keep_last(records)
    if isinstance(guided, SmcSampling):
        x_T, seconds = guided.draw(run, plan, on_step)
        return x_T, records, seconds
    wrapper = None
    if guided is not None:
        wrapper = guided.model_wrapper(run, record=frames)
        on_step = _and_then(on_step, guided.step_done)
    if prompted is not None and prompted.capture is not None:
        outer = wrapper
        wrapper = (lambda fn: outer(prompted.wrap(fn))) if outer is not None else prompted.wrap
        on_step = _and_then(on_step, prompted.step_done)
    t0 = time.perf_counter()
    try:
        # Gradient guidance differentiates inside the sampler: no inference tensors then.
        with torch.no_grad() if guided is not None else torch.inference_mode():
            drawn = sample(run, plan, model_wrapper=wrapper, on_step=on_step, decode=False)
    except ValueError as exc:  # the samplers' own checks
        raise HTTPException(422, " ".join(str(exc).split())) from None
    return drawn.x_T, records, time.perf_counter() - t0


def _and_then(first, then):
    def both(record):
        first(record)
        then()

    return both


def _keep_last(records: list):
    """on_step that keeps only the last record (the final sample), not every frame."""

    def keep(record):
        records[:] = [record]

    return keep
