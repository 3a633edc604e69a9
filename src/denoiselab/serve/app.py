"""The playground's web app: one page (static/) and a small JSON API over denoiselab.

Everything the page shows is computed here from the library: schedules by ``make_schedule``,
noised data by ``q_sample``, reverse processes by the real samplers through
``runs.sample_points`` (each step's record: x_t, predicted noise, predicted x0, next sample),
training by ``training.train`` in a background process (jobs.py).

Safety rules of the API:
- every request body and query is a pydantic model with bounds; a bad one gets 422 with
  ``detail`` naming the field ("steps: Input should be less than or equal to 250");
- sizes are capped by the constants below, so no request can ask for unbounded memory;
- a run is addressed by its folder name only, checked against RUN_NAME and resolved inside the
  runs directory (no "..", no slashes, no absolute paths);
- only the files in static/ are served, by exact name;
- sampling keeps all its state in the request (its own torch.Generator, sampler locals), so
  concurrent requests never share mutable state; the loaded model is read-only.

Reverse-process frames carry a ``kind``: ``{"kind": "points", "points": [[x, y], ...]}`` for
point runs, ``{"kind": "image", "shape": [N, C, H, W], "data": [...]}`` (values in model units,
[-1, 1] for clean pixels) for image data, so the page draws either.  An image response holds
4 panels x steps x n x C x H x W numbers; ``MAX_FRAME_IMAGE_VALUES`` bounds n x steps x C x H x W.

The Train view trains 2D models with the spiral recipe, and a quick demo of the image path with
the patterns recipe on a smaller U-Net (IMAGE_DEMO_OVERRIDES); `denoiselab train --config
patterns` trains the full one.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import __version__
from ..config import ConfigError, config_from_run_file, load_config
from ..data import GENERATORS, Normalization
from ..data import images as image_data
from ..data.sources import draw
from ..forward_process import q_sample
from ..runs import RunError, SamplingError, class_labels, load_run, read_losses, resolve_label, sample_points
from ..samplers import SAMPLERS, SPACINGS, step_grid
from ..schedules import SCHEDULE_KINDS, Schedule, flow_schedule, make_schedule
from ..training import WEIGHTS
from .jobs import JobError, JobManager

# --- caps (every request is bounded by these) --------------------------------------------------
MAX_T = 2000  # schedule length in the forward and schedules views
MAX_POINTS = 4000  # points in one request (forward view, samples without frames)
MAX_FRAME_POINTS = 1000  # points per panel when every reverse step is returned
MAX_STEPS = 250  # sampler steps in one request
MAX_FRAME_VALUES = 200_000  # n * steps: bounds a reverse response to about 4 panels x 200k points
MAX_IMAGES = 16  # images in one forward request
MAX_SAMPLE_IMAGES = 64  # images in one sampling request of an image run
MAX_FRAME_IMAGE_VALUES = 500_000  # n x steps x C x H x W with frames: 4 panels make <= 2M numbers
DEFAULT_SAMPLE_IMAGES = 16  # an image run's default n on the page (a 4 x 4 grid)
IMAGE_PREVIEW = 16  # training images sent with an image run's details (the playground's x0)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 64
MAX_TRAIN_STEPS = 20_000
MIN_TRAIN_STEPS = 50
MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 20.0
MAX_CONCURRENT_SAMPLING = 4  # sampling requests computing at once; more wait (then 503)
SAMPLING_WAIT_S = 30.0
RUN_CACHE_SIZE = 8
DATA_PREVIEW = 1000  # training points sent as the faint reference behind samples

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The page's training recipe: the spiral recipe's model (residual MLP, Fourier features),
# trained for fewer steps: 3000 steps give W2 within a few % of the floor on the spiral.
TRAIN_RECIPE = "spiral"
DEFAULT_TRAIN_STEPS = 3000
DEFAULT_RUN = "playground-spiral"  # what the reverse view trains on first use
# The page's image demo: the patterns recipe (16 x 16, 4 classes) on a U-Net of 16 channels
# instead of 32, for a few hundred steps instead of 3000: about a minute on one CPU thread, and
# it draws recognisable (if rough) patterns.  `denoiselab train --config patterns` trains the
# full model.
IMAGE_TRAIN_RECIPE = "patterns"
IMAGE_TRAIN_DATA = ("patterns",)
DEFAULT_IMAGE_TRAIN_STEPS = 500
MAX_IMAGE_TRAIN_STEPS = 3000  # the full recipe's own step count
IMAGE_DEMO_OVERRIDES = ("model.hidden=16",)

STATIC_DIR = Path(str(resources.files("denoiselab.serve").joinpath("static")))
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip
FORWARD_SCHEDULES = (*SCHEDULE_KINDS, "flow")
PATTERN_PREFIX = "patterns:"  # image pattern sets are "patterns:checkerboard" etc. ("checkerboard" is the 2D set)


def point_sets() -> list[str]:
    """The built-in 2D point sets (bimodal-1d is 1D and has no place on a 2D canvas)."""
    rng = np.random.default_rng(0)
    return [name for name, fn in GENERATORS.items() if fn(2, rng).shape[1] == 2]


POINT_SETS = tuple(point_sets())


IMAGE_SETS = (*(f"{PATTERN_PREFIX}{k}" for k in image_data.PATTERN_KINDS), "digits")  # the Forward view's images


# --- request models -----------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
RunName = Annotated[str, PathParam(max_length=200)]  # checked by RunStore.path (400 names "run")
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{1,32}$")]


class ForwardRequest(_Strict):
    data: str = Field("spiral", description="a 2D point set, an image pattern kind or 'digits'")
    schedule: Literal[FORWARD_SCHEDULES] = "linear"  # type: ignore[valid-type]
    T: int = Field(1000, ge=2, le=MAX_T)
    n: int = Field(1000, ge=1, le=MAX_POINTS, description="points (point sets)")
    images: int = Field(4, ge=1, le=MAX_IMAGES, description="images (image sets)")
    size: int = Field(16, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, description="image side in pixels (patterns)")
    seed: Seed = 0
    k: int | None = Field(None, ge=0, le=MAX_T, description="also return x_k from q_sample")

    @field_validator("data")
    @classmethod
    def _known_data(cls, value: str) -> str:
        known = (*POINT_SETS, *IMAGE_SETS)
        if value not in known:
            raise ValueError(f"unknown data {value!r}; expected one of {', '.join(known)}")
        return value


class SampleRequest(_Strict):
    sampler: Literal[tuple(SAMPLERS)] | None = None  # type: ignore[valid-type]
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    n: int | None = Field(None, ge=1, le=MAX_POINTS)
    seed: Seed | None = None
    spacing: Literal[SPACINGS] | None = None  # type: ignore[valid-type]
    eta: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    label: int | str | None = Field(None, description="class index or class name (conditional runs)")
    labels: list[Annotated[int, Field(ge=0, le=10_000)]] | None = Field(
        None, max_length=MAX_POINTS, description="one class index per sample (length n), instead of label"
    )
    guidance: float | None = Field(None, ge=0.0, le=MAX_GUIDANCE, allow_inf_nan=False)
    frames: bool = True

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value):
        if value is None:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= 10_000:
                raise ValueError(f"expected a class index 0..10000 or a class name, got {value}")
            return value
        if isinstance(value, str) and 1 <= len(value) <= 64:
            return value
        raise ValueError(f"expected a class index or a class name (1-64 characters), got {str(value)[:80]!r}")


class TrainRequest(_Strict):
    data: str = Field("spiral", description="a 2D point set, or 'patterns' (the image demo)")
    steps: int | None = Field(None, ge=MIN_TRAIN_STEPS, le=MAX_TRAIN_STEPS, description=f"default {DEFAULT_TRAIN_STEPS} (2D), {DEFAULT_IMAGE_TRAIN_STEPS} (images)")
    schedule: Literal[SCHEDULE_KINDS] = "linear"  # type: ignore[valid-type]
    classes: list[str] | None = Field(None, min_length=2, max_length=6, description="class-conditional: one 2D set per class")
    name: str | None = Field(None, description="run folder name; default <data>-<steps>")
    seed: Seed = 0

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            unknown = [v for v in value if v not in POINT_SETS]
            if unknown:
                raise ValueError(f"unknown set {unknown[0]!r}; expected names from {', '.join(POINT_SETS)}")
            if len(set(value)) != len(value):
                raise ValueError("each set may appear once")
        return value

    @field_validator("data")
    @classmethod
    def _trainable(cls, value: str) -> str:
        trainable = (*POINT_SETS, *IMAGE_TRAIN_DATA)
        if value not in trainable:
            raise ValueError(f"cannot train on {value!r} from the page; expected one of {', '.join(trainable)}")
        return value

    @model_validator(mode="after")
    def _image_demo(self):
        if self.data in IMAGE_TRAIN_DATA:
            if self.classes is not None:
                raise ValueError(f"classes: the {self.data} image set has its own classes; classes apply to 2D sets only")
            if self.steps is not None and self.steps > MAX_IMAGE_TRAIN_STEPS:
                raise ValueError(
                    f"steps: at most {MAX_IMAGE_TRAIN_STEPS} for the image demo from the page, got {self.steps}; "
                    f"train the full model with: denoiselab train --config {IMAGE_TRAIN_RECIPE}"
                )
        return self

    @property
    def is_image(self) -> bool:
        return self.data in IMAGE_TRAIN_DATA

    @property
    def train_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return DEFAULT_IMAGE_TRAIN_STEPS if self.is_image else DEFAULT_TRAIN_STEPS

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            check_run_name(value)
        return value


def check_run_name(name: str) -> str:
    if not RUN_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            "expected 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..' "
            f"(got {name[:80]!r})"
        )
    return name


# --- JSON helpers ---------------------------------------------------------------------------------
def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=1e4, neginf=-1e4)


def panel(x, decimals: int = 4) -> dict:
    """A batch as the page draws it: points (N, D) or images (N, C, H, W)."""
    # Rounded in float64: float32 values rounded to 3 decimals print as 0.12300000339746475.
    a = _array(x).astype(np.float64)
    if a.ndim == 2:
        return {"kind": "points", "dim": int(a.shape[1]), "points": np.round(a, decimals).tolist()}
    if a.ndim == 4:
        return {"kind": "image", "shape": [int(s) for s in a.shape], "data": np.round(a.reshape(-1), 3).tolist()}
    raise ValueError(f"cannot display an array of shape {a.shape}")


def _finite(v: float, digits: int = 4) -> float | None:
    return round(float(v), digits) if math.isfinite(float(v)) else None


def _sig(values: torch.Tensor, digits: int = 6) -> list[float | None]:
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in values.tolist()]


def schedule_json(s: Schedule) -> dict:
    """A schedule's grid: alphas, sigmas, alpha-bars and SNR in dB (null where infinite)."""
    snr_db = s.snr_db
    return {
        "name": s.name,
        "T": s.T,
        "alphas": _sig(s.alphas),
        "sigmas": _sig(s.sigmas),
        "alpha_bars": _sig(s.alpha_bars),
        "snr_db": [round(v, 3) if math.isfinite(v) else None for v in snr_db.tolist()],
        "terminal_alpha_bar": float(f"{float(s.alpha_bars[-1]):.6g}"),
        "terminal_snr_db": _finite(s.terminal_snr_db(), 3),
    }


def _schedule(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02, scale_with_T: bool = True) -> Schedule:
    if kind == "flow":
        return flow_schedule(T)
    try:
        return make_schedule(kind, T, beta_start, beta_end, scale_with_T)
    except ValueError as exc:
        raise HTTPException(400, f"beta_end: {exc}") from None


def json_response(content: dict, status: int = 200) -> Response:
    """json.dumps directly: FastAPI's encoder walks every float of a large frame list in Python."""
    return Response(json.dumps(content, separators=(",", ":"), allow_nan=False), status, media_type="application/json")


# --- the runs directory --------------------------------------------------------------------------
class RunStore:
    """Finds, describes and loads the runs under one directory; caches loaded models."""

    def __init__(self, runs_dir: Path):
        self.root = Path(runs_dir)
        self._cache: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The folder of run ``name``, guaranteed to lie directly inside the runs directory."""
        try:
            check_run_name(name)
        except ValueError as exc:
            raise HTTPException(400, f"run: {exc}") from None
        root = self.root.resolve()
        path = (root / name).resolve()
        if path.parent != root:  # e.g. a symlink pointing out of the runs directory
            raise HTTPException(400, f"run: {name!r} is not inside the runs directory")
        return path

    def existing(self, name: str) -> Path:
        path = self.path(name)
        if not (path / "run.json").is_file():
            raise HTTPException(404, f"run: no run called {name!r} in the runs directory")
        return path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and RUN_NAME.fullmatch(p.name) and (p / "run.json").is_file():
                out.append(p.name)
        return out

    def summary(self, name: str, busy: set[str] = frozenset()) -> dict:
        path = self.path(name)
        out: dict = {"name": name, "busy": name in busy, "has_weights": (path / WEIGHTS).is_file()}
        try:
            info = json.loads((path / "run.json").read_text())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return {**out, "status": "unreadable", "usable": False, "error": f"run.json: {exc}"}
        out.update(
            status=str(info.get("status", "unknown")),
            step=info.get("step"),
            steps=info.get("steps"),
            data=info.get("data"),
            dim=info.get("dim"),
            # run.json's "shape" is (D,) for points and (C, H, W) for images (runs.Run.sample_shape).
            kind="image" if isinstance(info.get("shape"), list) and len(info["shape"]) == 3 else "points",
            shape=info.get("shape"),
            num_classes=int(info.get("num_classes", 0) or 0),
            class_names=[str(c) for c in info.get("class_names") or []],
            train_seconds=info.get("train_seconds"),
            modified=(path / "run.json").stat().st_mtime,
        )
        try:
            cfg = config_from_run_file(path / "config.toml")
            out["schedule"] = {"kind": cfg.schedule.kind, "T": cfg.schedule.T}
            sc = cfg.sample
            out["sample"] = {"sampler": sc.sampler, "steps": sc.steps, "n": sc.n, "seed": sc.seed, "spacing": sc.spacing, "eta": sc.eta}
            if hasattr(sc, "guidance"):
                out["sample"]["guidance"] = sc.guidance
        except (ConfigError, OSError) as exc:
            out["error"] = str(exc)
        out["usable"] = out["has_weights"] and "error" not in out and out["status"] != "failed"
        return out

    def load(self, name: str):
        """The loaded run (cached until its weights, run.json or config.toml change)."""
        path = self.existing(name)
        stamp = tuple((path / f).stat().st_mtime_ns if (path / f).exists() else 0 for f in (WEIGHTS, "run.json", "config.toml"))
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
            try:
                run = load_run(path, device="cpu")
            except (RunError, ConfigError) as exc:
                msg = " ".join(str(exc).split()).replace(str(self.root.resolve()) + "/", "")
                raise HTTPException(422, f"run: {name!r} cannot be loaded: {msg}") from None
            except Exception as exc:  # noqa: BLE001 - a folder edited by hand can fail anywhere
                raise HTTPException(422, f"run: {name!r} cannot be loaded ({type(exc).__name__}: {exc})") from None
            self._cache[name] = (stamp, run)
            while len(self._cache) > RUN_CACHE_SIZE:
                self._cache.popitem(last=False)
            return run


# --- the app -----------------------------------------------------------------------------------
def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        named = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*): (.*)$", msg, re.DOTALL)
        if field == "body" and named:  # a check across fields (model_validator) names its field itself
            field, msg = named.groups()
        errors.append({"field": field, "message": msg})
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors


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
    runs = RunStore(Path(runs_dir))
    jobs = JobManager(Path(runs_dir), max_jobs=max_jobs, threads=job_threads, finish=finish_runs)
    sampling_slots = threading.BoundedSemaphore(MAX_CONCURRENT_SAMPLING)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.shutdown()

    app = FastAPI(title="denoiselab playground", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runs = runs
    app.state.jobs = jobs
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, errors = _validation_message(exc)
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.exception_handler(JobError)
    async def _job_error(request: Request, exc: JobError):
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})

    # -- the page ------------------------------------------------------------------------------
    static_files = {p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in STATIC_TYPES} if STATIC_DIR.is_dir() else set()

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type=STATIC_TYPES[".html"], headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in static_files:  # exact names only: nothing outside static/ can be reached
            raise HTTPException(404, f"name: no static file {name[:80]!r}")
        path = STATIC_DIR / name
        return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    # -- facts -----------------------------------------------------------------------------------
    @app.get("/api/health")
    def health():
        return {"ok": True, "version": __version__}

    @app.get("/api/info")
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
                "jobs": jobs.max_jobs,
            },
        }

    # -- schedules and the forward process ---------------------------------------------------------
    @app.get("/api/schedules")
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

    @app.post("/api/forward")
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
            out["snr_db"] = _finite(schedule.snr_db[req.k], 3)
        return json_response(out)

    # -- runs --------------------------------------------------------------------------------------
    @app.get("/api/runs")
    def list_runs():
        busy = jobs.busy_runs()
        items = [runs.summary(name, busy) for name in runs.names()]
        items.sort(key=lambda r: -(r.get("modified") or 0))
        return {"runs": items}

    @app.get("/api/runs/{name}")
    def get_run(name: RunName):
        path = runs.existing(name)
        out = runs.summary(name, jobs.busy_runs())
        out["losses"] = [round(float(v), 5) for v in read_losses(path, max_points=1000)]
        metrics = path / "metrics.json"
        if metrics.is_file():
            try:
                out["metrics"] = json.loads(metrics.read_text())
            except (OSError, ValueError):
                pass
        if out.get("kind") == "points" and (path / "data.npy").is_file():
            try:
                data = np.load(path / "data.npy", allow_pickle=False)
                info = json.loads((path / "run.json").read_text())
                norm = Normalization.from_dict(info["normalization"])
                idx = np.random.default_rng(0).permutation(len(data))[:DATA_PREVIEW]
                out["data_preview"] = panel(norm.encode(data[idx]))
            except Exception:  # noqa: BLE001 - the preview is optional
                pass
        elif out.get("kind") == "image" and (path / "data.npy").is_file():
            try:
                out.update(_image_preview(path, out["num_classes"], out["class_names"]))
            except Exception:  # noqa: BLE001 - the preview is optional
                pass
        return json_response(out)

    @app.post("/api/runs/{name}/sample")
    def sample(name: RunName, req: SampleRequest):
        """Run the reverse process; with ``frames`` every step's x_t, eps-hat, x0-hat and x_next.

        Point runs answer with point panels, image runs with image grids (N, C, H, W); both are
        capped so that no request can ask for an unbounded response.
        """
        runs.existing(name)  # 400 / 404 before anything is loaded
        run = runs.load(name)
        is_image = run.is_image
        sc = run.config.sample
        T = run.schedule.T
        steps = sc.steps if req.steps is None else req.steps
        if req.n is not None:
            n = req.n
        elif req.labels is not None:
            n = len(req.labels)
        else:
            n = min(sc.n, DEFAULT_SAMPLE_IMAGES if is_image else 500)
        seed = sc.seed if req.seed is None else req.seed
        sampler = req.sampler or sc.sampler
        if steps > T:
            raise HTTPException(422, f"steps: must be at most the run's T = {T}, got {steps}")
        steps = min(steps, MAX_STEPS)  # a run's own default can exceed the page's cap
        if is_image:
            shape = run.sample_shape
            size = int(np.prod(shape))
            if n > MAX_SAMPLE_IMAGES:
                raise HTTPException(422, f"n: at most {MAX_SAMPLE_IMAGES} images per request for an image run, got {n}")
            if req.frames and n * steps * size > MAX_FRAME_IMAGE_VALUES:
                dims = " x ".join(str(d) for d in shape)
                raise HTTPException(
                    422,
                    f"n: n x steps x C x H x W must be at most {MAX_FRAME_IMAGE_VALUES} with frames, got "
                    f"{n} x {steps} x {dims} = {n * steps * size}; ask for fewer images or steps",
                )
        else:
            if req.frames and n > MAX_FRAME_POINTS:
                raise HTTPException(422, f"n: at most {MAX_FRAME_POINTS} points when every step is returned (frames), got {n}")
            if req.frames and n * steps > MAX_FRAME_VALUES:
                raise HTTPException(422, f"n: n x steps must be at most {MAX_FRAME_VALUES} with frames, got {n} x {steps}")
        options: dict = {}
        if req.spacing is not None:
            options["spacing"] = req.spacing
        if req.eta is not None:
            if sampler != "ddim":
                raise HTTPException(422, f"eta: applies to the ddim sampler only (this request uses {sampler})")
            options["eta"] = req.eta
        num_classes = run.num_classes
        names = run.class_names
        try:
            label = None if req.label is None else resolve_label(run, req.label)
        except SamplingError as exc:
            raise HTTPException(422, str(exc)) from None
        if req.labels is not None:
            if req.label is not None:
                raise HTTPException(422, "labels: give either label (one class for all) or labels (one per sample), not both")
            if len(req.labels) != n:
                raise HTTPException(422, f"labels: expected one class per sample ({n}), got {len(req.labels)}")
        if req.label is not None or req.labels is not None or req.guidance is not None:
            if num_classes == 0:
                field = "label" if req.label is not None else "labels" if req.labels is not None else "guidance"
                raise HTTPException(422, f"{field}: run {name!r} has no classes (trained without labels)")
            if req.labels is not None and max(req.labels) >= num_classes:
                raise HTTPException(422, f"labels: each must be in 0..{num_classes - 1} for this run, got {max(req.labels)}")
            if label is not None:
                options["label"] = label
            if req.labels is not None:
                options["label"] = np.asarray(req.labels, dtype=np.int64)
            if req.guidance is not None:
                options["guidance"] = req.guidance
        records: list = []
        if not sampling_slots.acquire(timeout=SAMPLING_WAIT_S):
            raise HTTPException(503, "busy: too many sampling requests at once; try again")
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                _, x_T = sample_points(
                    run,
                    sampler=sampler,
                    steps=steps,
                    n=n,
                    seed=seed,
                    return_noise=True,
                    on_step=records.append if req.frames else _keep_last(records),
                    **options,
                )
            seconds = time.perf_counter() - t0
        except ValueError as exc:  # runs.SamplingError and the samplers' own checks
            raise HTTPException(422, " ".join(str(exc).split())) from None
        finally:
            sampling_slots.release()
        grid = [int(r.k) for r in records] + [0] if req.frames else [int(k) for k in step_grid(run.schedule, steps, options.get("spacing", sc.spacing))]
        snr = run.schedule.snr_db
        final = records[-1].x_next
        out = {
            "run": name,
            "kind": "image" if is_image else "points",
            "sampler": sampler,
            "steps": steps,
            "n": n,
            "seed": seed,
            "spacing": options.get("spacing", sc.spacing),
            "label": label,
            "label_name": names[label] if label is not None and label < len(names) else None,
            "guidance": req.guidance,
            "T": T,
            "grid": grid,
            "grid_alphas": [float(run.schedule.alphas[k]) for k in grid],
            "grid_sigmas": [float(run.schedule.sigmas[k]) for k in grid],
            "grid_snr_db": [_finite(snr[k], 3) for k in grid],
            "seconds": round(seconds, 3),
            "units": "pixels: -1 black, 1 white (x_t and the predicted noise have unit variance)" if is_image else "normalised (the units the model sees)",
            "x_T": panel(x_T),
            "samples": panel(final),
        }
        if num_classes:
            if req.labels is not None:
                sample_labels = req.labels
            else:
                sample_labels = class_labels(run, n, label).tolist()
            out["class_names"] = names
            out["labels"] = [names[int(c)] for c in sample_labels]  # the class of each sample, by name
            out["guidance_used"] = float(sc.guidance if req.guidance is None else req.guidance)
        if req.frames:
            out["frames"] = [
                {
                    "index": r.index,
                    "k": int(r.k),
                    "k_next": int(r.k_next),
                    "t": round(r.k / T, 6),
                    "t_next": round(r.k_next / T, 6),
                    "snr_db": _finite(snr[r.k], 3),
                    "snr_db_next": _finite(snr[r.k_next], 3),
                    "x_t": panel(r.x_t),
                    "eps": panel(r.eps),
                    "x0": panel(r.x0),
                    "x_next": panel(r.x_next),
                }
                for r in records
            ]
        return json_response(out)

    # -- training jobs -------------------------------------------------------------------------------
    def _start(req: TrainRequest, name: str) -> dict:
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
        runs.path(name)  # checks the name once more
        data = " + ".join(req.classes) if req.classes else f"{req.data} (image demo)" if req.is_image else req.data
        return jobs.start(name, cfg, data=data)

    @app.post("/api/jobs", status_code=202)
    def start_job(req: TrainRequest):
        name = req.name or _free_name(runs, f"{'-'.join(req.classes) if req.classes else req.data}-{req.train_steps}")
        return _start(req, name)

    @app.post("/api/default-run", status_code=200)
    def default_run():
        """The run the reverse view needs: an existing usable one, the job training it, or a new job."""
        busy = jobs.busy_runs()
        for item in sorted((runs.summary(n, busy) for n in runs.names()), key=lambda r: -(r.get("modified") or 0)):
            if item.get("usable") and item.get("kind") == "points" and not item.get("busy"):
                return {"run": item["name"], "job": None}
        for job in jobs.list():
            if job["active"]:
                return {"run": job["run"], "job": job}
        name = DEFAULT_RUN if not runs.path(DEFAULT_RUN).exists() else _free_name(runs, DEFAULT_RUN)
        return {"run": name, "job": _start(TrainRequest(), name)}

    @app.get("/api/jobs")
    def list_jobs():
        return {"jobs": jobs.list()}

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: JobId, since: Annotated[int, Query(ge=0)] = 0):
        return json_response(jobs.snapshot(job_id, since))

    @app.post("/api/jobs/{job_id}/cancel", status_code=202)
    def cancel_job(job_id: JobId):
        return jobs.cancel(job_id)

    return app


def _image_preview(path: Path, num_classes: int, class_names: list[str]) -> dict:
    """Up to IMAGE_PREVIEW training images of an image run (classes in turn: 0, 1, ..., K-1, 0,
    ...), as the playground's clean x0, with their classes."""
    data = np.load(path / "data.npy", mmap_mode="r", allow_pickle=False)
    if data.ndim != 4 or not len(data):
        return {}
    rng = np.random.default_rng(0)
    count = min(IMAGE_PREVIEW, len(data))
    if num_classes:
        labels = np.load(path / "labels.npy", allow_pickle=False).astype(np.int64)
        pools = [np.flatnonzero(labels == c) for c in range(num_classes)]
        pools = [rng.permutation(p) for p in pools if len(p)]
        idx = [int(pools[i % len(pools)][(i // len(pools)) % len(pools[i % len(pools)])]) for i in range(count)]
        classes = [int(labels[i]) for i in idx]
        names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
        extra = {"data_preview_labels": classes, "data_preview_names": names}
    else:
        idx, extra = sorted(rng.choice(len(data), count, replace=False).tolist()), {}
    return {"data_preview": panel(np.asarray(data[idx], dtype=np.float32)), **extra}


def _keep_last(records: list):
    """on_step that keeps only the last record (the final sample), not every frame."""

    def keep(record):
        records[:] = [record]

    return keep


def _free_name(runs: RunStore, base: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", base)[:56].strip(".-") or "run"
    if not runs.path(base).exists():
        return base
    i = 2
    while runs.path(f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


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
