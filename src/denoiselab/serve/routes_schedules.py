"""Schedules and the forward process: /api/schedules (every schedule's grid at one T) and
/api/forward (clean data, one noise draw and a schedule, for the Forward and Schedules views).

Schedules come from ``make_schedule`` and ``flow_schedule``, x_k from ``q_sample``; the page
combines x0 and eps for any k itself, exactly as q_sample does.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from fastapi import APIRouter, HTTPException, Query

from ..data import Normalization
from ..data import images as image_data
from ..data.sources import draw
from ..forward_process import q_sample
from ..schedules import Schedule, flow_schedule, make_schedule
from .limits import FORWARD_SCHEDULES, MAX_T, PATTERN_PREFIX, POINT_SETS
from .payloads import finite_or_none, json_response, panel, schedule_json
from .request_models import ForwardRequest


def schedules_router() -> APIRouter:
    router = APIRouter()

    @router.get("/api/schedules")
    def schedules(
        T: Annotated[int, Query(ge=2, le=MAX_T)] = 1000,
        beta_start: Annotated[float, Query(gt=0.0, lt=1.0, allow_inf_nan=False)] = 1e-4,
        beta_end: Annotated[float, Query(gt=0.0, lt=1.0, allow_inf_nan=False)] = 0.02,
        scale_with_T: bool = True,
    ):
        if beta_start > beta_end:
            raise HTTPException(400, f"beta_start: must be <= beta_end ({beta_end:g}), got {beta_start:g}")
        out = [schedule_json(_schedule(kind, T, beta_start, beta_end, scale_with_T)) for kind in FORWARD_SCHEDULES]
        return json_response({"T": T, "schedules": out})

    @router.post("/api/forward")
    def forward(req: ForwardRequest):
        """Clean data x0, one fixed noise draw eps and the schedule: x_k = alpha_k x0 + sigma_k eps.

        The page combines them for any k itself (the slider needs no round trip); ``k`` asks for
        x_k computed here by q_sample as well.
        """
        if req.k is not None and req.k > req.T:
            raise HTTPException(422, f"k: must be at most T = {req.T}, got {req.k}")
        schedule = _schedule(req.schedule, req.T)
        out: dict = {"data": req.data, "seed": req.seed}
        if req.data in POINT_SETS:
            raw = draw(req.data, req.n, np.random.default_rng([req.seed, 0]))
            x0 = torch.from_numpy(Normalization.fit(raw).encode(raw)).float()
            out["units"] = "normalised (mean 0, unit variance): the units the model sees"
        else:
            x0, names = _images(req.data, req.images, req.size, req.seed)
            out["units"] = "pixels in [-1, 1] (-1 black, 1 white)"
            out["labels"] = names
        gen = torch.Generator().manual_seed(req.seed + 1)  # per request: nothing shared
        eps = torch.randn(x0.shape, generator=gen)
        out.update(kind="points" if x0.ndim == 2 else "image", x0=panel(x0), eps=panel(eps), schedule=schedule_json(schedule))
        if req.k is not None:
            xk = q_sample(schedule, x0.double(), req.k, eps.double())
            out["k"] = req.k
            out["x_t"] = panel(xk)
            out["snr_db"] = finite_or_none(schedule.snr_db[req.k], 3)
        return json_response(out)

    return router


def _schedule(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02, scale_with_T: bool = True) -> Schedule:
    if kind == "flow":
        return flow_schedule(T)
    try:
        return make_schedule(kind, T, beta_start, beta_end, scale_with_T)
    except ValueError as exc:
        raise HTTPException(400, f"beta_end: {exc}") from None


def _images(name: str, count: int, size: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """``count`` images of one pattern kind, or ``count`` different digits, in [-1, 1]."""
    if name == "digits":
        digits = image_data.load_digits(upscale=max(1, size // 8))
        rng = np.random.default_rng(seed)
        labels = digits.labels.numpy()
        # One image of each digit first (0, 1, 2, ...), then any: a varied row.
        wanted = [int(rng.choice(np.flatnonzero(labels == d % 10))) for d in range(count)]
        return digits.images[wanted].float(), [digits.class_names[labels[i]] for i in wanted]
    kind = name.removeprefix(PATTERN_PREFIX)
    patterns = image_data.make_patterns(count, size=size, seed=seed, kinds=(kind,))
    return patterns.images.float(), [kind] * count
