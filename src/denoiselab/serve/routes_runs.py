"""The runs directory: /api/runs (every run folder and its state), /api/runs/<name> (one run's
details: losses, metrics and a preview of its training data) and /api/default-run (the run the
Reverse view opens on first use, training it when the machine has none).
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter

from ..runs import tuned_grid_list
from ..runs.folder import RunFolder, normalization_of
from .limits import DATA_PREVIEW, DEFAULT_RUN, HELD_OUT_PREVIEW, IMAGE_PREVIEW, TEXT_EXAMPLES
from .payloads import json_response, panel
from .request_models import RunName, TrainRequest
from .routes_training import start_training
from .state import ServeState


def runs_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    runs, jobs = state.runs, state.jobs

    @router.get("/api/runs")
    def list_runs():
        """Every run folder with its status and step; a run being trained shows the job's live step."""
        busy = jobs.busy_runs()
        live = {job["run"]: job for job in jobs.list() if job["active"]}
        items = [runs.summary(name, busy) for name in runs.names()]
        for item in items:
            job = live.get(item["name"])
            if job is not None and item.get("status") not in ("refused", "unreadable"):
                item.update(status="training" if job["status"] != "finishing" else "finishing", step=job["step"], steps=job["steps"])
        items.sort(key=lambda r: -(r.get("modified") or 0))
        return {"runs": items, "default": default_run_name(items)}

    @router.get("/api/runs/{name}")
    def get_run(name: RunName):
        path = runs.existing(name)
        folder = RunFolder(path)
        out = runs.summary(name, jobs.busy_runs())
        out["losses"] = [round(float(v), 5) for v in folder.read_losses(max_points=1000)]
        out["tuned_grids"] = tuned_grid_list(path)  # what the Reverse view's grid choice offers
        if out.get("text"):
            out.update(_text_examples(folder))
        metrics = folder.read_metrics()
        if metrics is not None:
            out["metrics"] = metrics
        if out.get("kind") == "points" and folder.data_path.is_file():
            try:
                data = folder.read_data()
                norm = normalization_of(folder.read_info())
                idx = np.random.default_rng(0).permutation(len(data))[:DATA_PREVIEW]
                out["data_preview"] = panel(norm.encode(data[idx]))
            except Exception:  # noqa: BLE001 - the preview is optional
                pass
        elif out.get("kind") == "image" and folder.data_path.is_file():
            try:
                out.update(_image_preview(folder, out["num_classes"], out["class_names"]))
            except Exception:  # noqa: BLE001 - the preview is optional
                pass
            try:  # the first held-out images: what the Reverse view's inpainting completes
                held = folder.read_held_out(mmap_mode="r")
                out.update(held_out_count=len(held), held_out_preview=panel(np.asarray(held[:HELD_OUT_PREVIEW], dtype=np.float32)))
            except Exception:  # noqa: BLE001 - optional too
                pass
        return json_response(out)

    @router.post("/api/default-run", status_code=200)
    def default_run():
        """The run the reverse view needs: an existing usable one, the job training it, or a new job."""
        busy = jobs.busy_runs()
        name = default_run_name([runs.summary(n, busy) for n in runs.names()], points_only=True)
        if name is not None:
            return {"run": name, "job": None}
        for job in jobs.list():
            if job["active"]:
                return {"run": job["run"], "job": job}
        name = runs.free_name(DEFAULT_RUN)
        return {"run": name, "job": start_training(state, TrainRequest(), name)}

    return router


def default_run_name(items: list[dict], *, points_only: bool = False) -> str | None:
    """The run the Reverse and Playground views open with, among run summaries (RunStore.summary):
    a usable run that no job is training; a complete run before one whose figures and metrics are
    not yet made; a point run before an image run, and the default model's data (the 2D set the
    tour speaks of) before other data; then the newest.  None when no run is usable
    (``points_only``: no point run)."""
    usable = [r for r in items if r.get("usable") and not r.get("busy") and (r.get("kind") == "points" or not points_only)]
    if not usable:
        return None
    data = TrainRequest.model_fields["data"].default  # what /api/default-run trains

    def rank(r: dict) -> tuple:
        return (r.get("status") != "complete", r.get("kind") != "points", r.get("data") != data, -(r.get("modified") or 0))

    return min(usable, key=rank)["name"]


def _image_preview(folder: RunFolder, num_classes: int, class_names: list[str]) -> dict:
    """Up to IMAGE_PREVIEW training images of an image run (classes in turn: 0, 1, ..., K-1, 0,
    ...), as the playground's clean x0, with their classes."""
    data = folder.read_data(mmap_mode="r")
    if data.ndim != 4 or not len(data):
        return {}
    rng = np.random.default_rng(0)
    count = min(IMAGE_PREVIEW, len(data))
    if num_classes:
        labels = folder.read_labels().astype(np.int64)
        pools = [np.flatnonzero(labels == c) for c in range(num_classes)]
        pools = [rng.permutation(p) for p in pools if len(p)]
        idx = [int(pools[i % len(pools)][(i // len(pools)) % len(pools[i % len(pools)])]) for i in range(count)]
        classes = [int(labels[i]) for i in idx]
        names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
        extra = {"data_preview_labels": classes, "data_preview_names": names}
    else:
        idx, extra = sorted(rng.choice(len(data), count, replace=False).tolist()), {}
    return {"data_preview": panel(np.asarray(data[idx], dtype=np.float32)), **extra}


def _text_examples(folder: RunFolder) -> dict:
    """A text-to-image run's first held-out captions (TEXT_EXAMPLES): prompts in its own
    vocabulary for the Reverse view's prompt box."""
    try:
        held = [str(c) for c in folder.read_captions().get("held_out", [])][:TEXT_EXAMPLES]
    except (OSError, ValueError, AttributeError):  # the examples are optional
        return {}
    return {"text_examples": held}
