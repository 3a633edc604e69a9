"""The request bodies and path parameters the API accepts, as pydantic models with bounds.

A body with an unknown field, a value out of bounds or a check across fields that fails gets 422
with ``detail`` naming the field (errors.py formats it): "steps: Input should be less than or
equal to 250".  Run names are checked by ``check_run_name`` wherever they appear.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..runs.folder import TUNED_GRIDS
from ..samplers import GRIDS, JUMP_SAMPLERS, SAMPLERS
from ..schedules import SCHEDULE_KINDS
from .limits import (
    DEFAULT_IMAGE_TRAIN_STEPS,
    DEFAULT_JUMP_POINTS,
    DEFAULT_TRAIN_STEPS,
    FORWARD_SCHEDULES,
    IMAGE_SETS,
    IMAGE_TRAIN_DATA,
    IMAGE_TRAIN_RECIPE,
    MAX_BOXES,
    MAX_CLASSIFIER_SCALE,
    MAX_FRAME_POINTS,
    MAX_GUIDANCE,
    MAX_GUIDE_SCALE,
    MAX_MASK_B64,
    MAX_PARTICLES,
    MAX_PROMPT_CHARS,
    MAX_IMAGE_SIZE,
    MAX_IMAGE_TRAIN_STEPS,
    MAX_IMAGES,
    MAX_POINTS,
    MAX_SEED,
    MAX_STEPS,
    MAX_T,
    MAX_TRAIN_STEPS,
    MIN_IMAGE_SIZE,
    MIN_TRAIN_STEPS,
    POINT_SETS,
    RUN_NAME,
)


class _Strict(BaseModel):
    # strict: JSON types as they are ("100" is not an int, true is not 1, "yes" is not a bool).
    model_config = ConfigDict(extra="forbid", strict=True)


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
            raise ValueError(f"unknown data {value[:80]!r}; expected one of {', '.join(known)}")
        return value


def _class_label(value):
    """A class index 0..10000 or a class name of 1-64 characters (checked against the run later)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 10_000:
            raise ValueError(f"expected a class index 0..10000 or a class name, got {value}")
        return value
    if isinstance(value, str) and 1 <= len(value) <= 64:
        return value
    raise ValueError(f"expected a class index or a class name (1-64 characters), got {str(value)[:80]!r}")


class ClassifierGuide(_Strict):
    """Classifier guidance towards ``label`` by the run's noise-conditional classifier."""

    label: int | str
    scale: float = Field(1.0, ge=0.0, le=MAX_CLASSIFIER_SCALE, allow_inf_nan=False)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value):
        return _class_label(value)


Box = Annotated[list[Annotated[int, Field(ge=0, le=MAX_IMAGE_SIZE)]], Field(min_length=4, max_length=4)]


class InpaintGuide(_Strict):
    """Complete one of the run's held-out images (by index) where the mask says unknown.

    The mask is ``boxes`` (pixel boxes [x0, y0, x1, y1], columns x0..x1-1 and rows y0..y1-1,
    that are unknown) or ``bitmask`` (base64 of the H x W known-pixel bits, row-major, most
    significant bit first, 1 = known), exactly one of them."""

    image: int = Field(0, ge=0, le=1_000_000, description="index of a held-out image of the run")
    boxes: list[Box] | None = Field(None, min_length=1, max_length=MAX_BOXES)
    bitmask: str | None = Field(None, min_length=1, max_length=MAX_MASK_B64)
    method: Literal["replace", "dps"] = "replace"
    scale: float | None = Field(None, gt=0.0, le=MAX_GUIDE_SCALE, allow_inf_nan=False, description="dps only")

    @model_validator(mode="after")
    def _one_mask(self):
        if (self.boxes is None) == (self.bitmask is None):
            raise ValueError("give the unknown pixels as boxes or as a bitmask (exactly one)")
        if self.scale is not None and self.method != "dps":
            raise ValueError("scale: applies to method dps only")
        return self


class _Particles(_Strict):
    """What a block twisted SMC can draw adds: its particles K, with the command line's rules
    (cli._check_smc_options): K belongs to method smc, and smc has no scale."""

    particles: int | None = Field(None, ge=1, le=MAX_PARTICLES, description="smc only: particles per sample (default 16)")

    @model_validator(mode="after")
    def _smc_options(self):
        if self.particles is not None and self.method != "smc":
            raise ValueError("particles: applies to method smc only")
        if self.scale is not None and self.method == "smc":
            raise ValueError("scale: method smc has no scale (its twist tightens to the exact condition by itself)")
        return self


class ObserveGuide(_Particles):
    """Point runs: fix coordinates ({"x1": 0.5}, 1-based as in p(x2 | x1 = a)) and sample the rest."""

    values: dict[Annotated[str, Field(pattern=r"^x[1-9][0-9]?$")], Annotated[float, Field(ge=-1e4, le=1e4, allow_inf_nan=False)]] = Field(
        min_length=1, max_length=16
    )
    method: Literal["replace", "dps", "universal", "smc"] = "dps"
    scale: float | None = Field(None, gt=0.0, le=MAX_GUIDE_SCALE, allow_inf_nan=False, description="dps and universal")


class RegionGuide(_Particles):
    """Point runs: samples restricted to a region, an expression over x1, x2, ... in data units
    ("abs(x1) < 0.3", regions.py), by loss guidance (the command line's default) or twisted SMC."""

    expression: str = Field(min_length=1, max_length=200)
    method: Literal["loss", "smc"] = "loss"
    scale: float | None = Field(None, gt=0.0, le=MAX_GUIDE_SCALE, allow_inf_nan=False, description="loss only")


class GradientGuide(_Strict):
    """Guidance at test time (gradient_guidance.py): exactly one of classifier, inpaint, observe, region."""

    classifier: ClassifierGuide | None = None
    inpaint: InpaintGuide | None = None
    observe: ObserveGuide | None = None
    region: RegionGuide | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("classifier", "inpaint", "observe", "region") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of classifier, inpaint, observe, region; got {', '.join(given) or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return "classifier" if self.classifier else "inpaint" if self.inpaint else "observe" if self.observe else "region"

    @property
    def spec(self):
        """The one block given: the classifier, inpaint, observe or region block."""
        return getattr(self, self.kind)


class SampleRequest(_Strict):
    # A jump sampler is answered only by the runs trained for it (runs/plan.py says which).
    sampler: Literal[tuple(SAMPLERS) + tuple(JUMP_SAMPLERS)] | None = None  # type: ignore[valid-type]
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    n: int | None = Field(None, ge=1, le=MAX_POINTS)
    seed: Seed | None = None
    grid: Literal[GRIDS] | None = Field(None, description="a named grid (the reply's own grid is the time points, as steps of the chain)")  # type: ignore[valid-type]
    spacing: Literal[GRIDS] | None = Field(None, description="the older name of grid")  # type: ignore[valid-type]
    tuned_grid: bool | None = Field(
        None, description=f"the run's tuned grid ({TUNED_GRIDS}): true = required, false = never, default = when one fits (runs/plan.py)"
    )
    eta: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    label: int | str | None = Field(None, description="class index or class name (conditional runs)")
    labels: list[Annotated[int, Field(ge=0, le=10_000)]] | None = Field(
        None, max_length=MAX_POINTS, description="one class index per sample (length n), instead of label"
    )
    guidance: float | None = Field(None, ge=0.0, le=MAX_GUIDANCE, allow_inf_nan=False)
    gradient_guidance: GradientGuide | None = Field(None, description="classifier guidance, inpainting or observed coordinates")
    frames: bool = True
    prompt: str | None = Field(
        None, max_length=MAX_PROMPT_CHARS, description="text-to-image runs: the caption every sample is denoised from (\"\": unconditional)"
    )

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value):
        return value if value is None else _class_label(value)

    @model_validator(mode="after")
    def _one_grid(self):
        if self.grid is not None and self.spacing is not None:
            raise ValueError("spacing: the older name of grid; give one")
        return self

    @property
    def grid_name(self) -> str | None:
        """The named grid asked for, by either name."""
        return self.spacing if self.grid is None else self.grid


class JumpRequest(_Strict):
    """The jump view of a run trained to jump (routes_jumps.py): its jumps for 1, 2 and 4 steps
    and the ODE path, from ``n`` draws of noise of ``seed``."""

    n: int = Field(DEFAULT_JUMP_POINTS, ge=1, le=MAX_FRAME_POINTS)
    seed: Seed = 0


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
                raise ValueError(f"unknown set {unknown[0][:80]!r}; expected names from {', '.join(POINT_SETS)}")
            if len(set(value)) != len(value):
                raise ValueError("each set may appear once")
        return value

    @field_validator("data")
    @classmethod
    def _trainable(cls, value: str) -> str:
        trainable = (*POINT_SETS, *IMAGE_TRAIN_DATA)
        if value not in trainable:
            raise ValueError(f"cannot train on {value[:80]!r} from the page; expected one of {', '.join(trainable)}")
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
