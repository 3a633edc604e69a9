"""Gradient guidance of a run in data units: classifier guidance, observed coordinates, regions, inpainting.

The wrappers are gradient_guidance.py's; this module turns a run's request into them: values
and regions given in data units are read in the model's units (the run's normalisation), the
classifier comes from the run folder (classifiers.py), and the observed values are pasted into
every returned sample.  Coordinates are named x1, x2, ... (1-based) as in p(x2 | x1 = a).

Errors are plan.PlanError naming the request's field ("observe", "mask", "method",
"classifier_scale", "region", "inpaint", "image"), never a command-line flag: the command line
and the playground each put their own name on the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..classifiers import ClassifierError
from ..gradient_guidance import GuidanceCounts, classifier_guidance, counted, loss_guidance, observation_loss, paste_observed, replacement
from ..regions import RegionError, region_from
from ..samplers.noise import REPLACEMENT_STREAM, SampleNoise
from .classifier import load_classifier
from .evaluation import held_out_images
from .folder import HELD_OUT, RunError
from .guided_smc import SMC, ClassifierTwist, check_particles, draw_smc, observe_twist, region_twist_of
from .load import Run
from .plan import PlanError, SamplingPlan
from .sampling import Drawn, batch_count, plan_from_options, sample, sample_range

# How known values steer the rest: replacement (RePaint-style), DPS (gradient of the misfit of
# x0_hat through the denoiser) or universal guidance (DPS plus one backward step on x0_hat).
OBSERVE_METHODS = ("replace", "dps", "universal")
# ... and the sampler that weights particles instead of steering one chain (runs/guided_smc.py):
# twisted SMC, for observed coordinates, regions, inpainting and classifier guidance.
CONDITIONAL_METHODS = (*OBSERVE_METHODS, SMC)
# Default scales, chosen on the exact-denoiser benchmark (BENCHMARKS.md, "Gradient guidance"):
# the DPS step on |x0_hat - a|^2 / 2 in the model's (unit-scale) coordinates, and the weight of
# the squared region violation.
DEFAULT_OBSERVE_SCALE = 3.0
DEFAULT_REGION_SCALE = 10.0
# Each method of steering by known values, in the words every face uses.
METHOD_WORDS = {"replace": "replacement (RePaint-style)", "dps": "DPS", "universal": "universal guidance", SMC: "twisted SMC"}


def _method_words(method: str, scale: float | None, particles: int | None = None) -> str:
    """"DPS, scale 3", "replacement (RePaint-style)" (which has no scale), "twisted SMC, 16
    particles" (whose twist has no scale)."""
    if method == "replace":
        return METHOD_WORDS[method]
    if method == SMC:
        return f"{METHOD_WORDS[method]}, {check_particles(particles)} particles"
    return f"{METHOD_WORDS[method]}, scale {DEFAULT_OBSERVE_SCALE if scale is None else scale:g}"


@dataclass
class GuidanceRequest:
    classifier_scale: float | None = None  # classifier guidance towards each sample's label
    observe: dict[int, float] = field(default_factory=dict)  # 0-based coordinate -> value (data units)
    region: str | Callable | None = None  # an expression over x1, x2, ... or a callable (data units)
    method: str = "dps"  # for observe: one of CONDITIONAL_METHODS; for a region or a classifier: smc, or gradient guidance otherwise
    scale: float | None = None  # observe (dps, universal) or region scale; None: the defaults above
    particles: int | None = None  # smc: particles per sample; None: guided_smc.DEFAULT_PARTICLES

    @property
    def active(self) -> bool:
        return self.classifier_scale is not None or bool(self.observe) or self.region is not None

    @property
    def steers_classes(self) -> bool:
        """Classifier guidance steers the unconditional model, so no classifier-free scale applies."""
        return self.classifier_scale is not None

    def describe(self, classes: str = "") -> str:
        """The guidance in words, its parts joined by "; ": "classifier guidance towards class
        circle, scale 2", "observed x1 = 0.5 by DPS, scale 3", "region abs(x1) < 0.3 by loss
        guidance, scale 10".  ``classes``: plan.describe_classes of the plan (the class a
        classifier steers to).  plan.describe_draw puts it after the plan's own words."""
        parts = []
        if self.classifier_scale is not None:
            towards = classes or "the class of each sample"
            by = f" by {_method_words(SMC, None, self.particles)}" if self.method == SMC else ""
            parts.append(f"classifier guidance towards {towards}, scale {self.classifier_scale:g}{by}")
        if self.observe:
            values = ", ".join(f"x{i + 1} = {v:g}" for i, v in sorted(self.observe.items()))
            parts.append(f"observed {values} by {_method_words(self.method, self.scale, self.particles)}")
        if self.region is not None:
            text = self.region.strip() if isinstance(self.region, str) else getattr(self.region, "__name__", "a callable")
            if self.method == SMC:
                parts.append(f"region {text} by {_method_words(SMC, None, self.particles)}")
            else:
                parts.append(f"region {text} by loss guidance, scale {DEFAULT_REGION_SCALE if self.scale is None else self.scale:g}")
        return "; ".join(parts)


@dataclass(frozen=True)
class InpaintRequest:
    """Completing an image where it is unknown: what is completed, and how (OBSERVE_METHODS)."""

    image: str  # what is completed, in words: a file's name, "held-out image 3"
    method: str = "replace"
    scale: float | None = None  # dps and universal; None: DEFAULT_OBSERVE_SCALE
    particles: int | None = None  # smc; None: guided_smc.DEFAULT_PARTICLES
    active = True
    steers_classes = False

    def describe(self, classes: str = "") -> str:
        """"digit.png completed by replacement (RePaint-style)", "... by DPS, scale 3"."""
        return f"{self.image} completed by {_method_words(self.method, self.scale, self.particles)}"


def parse_observations(texts: list[str]) -> dict[int, float]:
    """``x1=0.5`` (repeatable, or comma-separated ``x1=0.5,x2=-1``) -> {0: 0.5}; which
    coordinates a run has is checked where they are used (``guided_wrapper``)."""
    out: dict[int, float] = {}
    for text in texts:
        for part in text.split(","):
            m = re.fullmatch(r"\s*x(\d+)\s*=\s*(\S+)\s*", part)
            if not m or int(m.group(1)) < 1:
                raise PlanError("observe", f"{part.strip()!r}: expected xI=VALUE with I >= 1, e.g. x1=0.5")
            try:
                value = float(m.group(2))
            except ValueError:
                raise PlanError("observe", f"{part.strip()!r}: {m.group(2)!r} is not a number") from None
            if not np.isfinite(value):
                raise PlanError("observe", f"{part.strip()!r}: the value must be finite")
            out[int(m.group(1)) - 1] = value
    return out


def parse_mask(text: str, height: int, width: int) -> torch.Tensor:
    """The known pixels (H, W) of ``left`` (left half), ``top`` (top half) or
    ``box:X0,Y0,X1,Y1`` (a box of pixel columns X0..X1-1 and rows Y0..Y1-1 is *unknown*, the rest known)."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    if text == "left":
        mask[:, : width // 2] = True
    elif text == "top":
        mask[: height // 2, :] = True
    elif text.startswith("box:"):
        try:
            x0, y0, x1, y1 = (int(v) for v in text[4:].split(","))
        except ValueError:
            raise PlanError("mask", f"{text!r}: expected box:X0,Y0,X1,Y1 (four integers)") from None
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise PlanError("mask", f"{text!r}: the box must lie inside the {width} x {height} image with X0 < X1 and Y0 < Y1")
        mask[:] = True
        mask[y0:y1, x0:x1] = False
    else:
        raise PlanError("mask", f"{text!r}: expected left, top or box:X0,Y0,X1,Y1")
    return mask


def check_guidable(run: Run, field: str) -> None:
    """PlanError naming ``field`` where a run cannot be guided at all: a latent run, whose sampler
    steps in its autoencoder's latent space while every guide (a classifier of the data, known
    pixels or coordinates, a region) reads samples in data units."""
    if run.is_latent:
        raise PlanError(
            field, "is a latent run: gradient guidance reads samples in data units (pixels, points) while this run's "
            "sampler steps in its autoencoder's latent space; guide a pixel image run (e.g. digits) or a point run", of_run=True,
        )  # fmt: skip


# A figure's reference for an observed coordinate: the points within this share of the observed
# coordinate's standard deviation in the data count as "at" the value.
CONDITIONAL_BAND = 0.02
CONDITIONAL_DRAWS = 20_000


def conditional_reference(
    run: Run, observe: dict[int, float], seed: int = 0, *, label: int | None = None
) -> tuple[np.ndarray, str] | None:
    """The free coordinate of the true conditional p(x_free | x_i = value) of a 2-D run with one
    observed coordinate, for the figure beside its guided samples: drawn by rejection from the
    run's built-in generator (up to CONDITIONAL_DRAWS values, points within the band), else the
    training points within the band; with the words that say which.  A conditional run's
    reference is class ``label``'s conditional, or with ``label`` None the conditional of every
    class together in the training proportions (what the model without a class learned:
    p(x2 | x1) = sum_c p(c | x1) p(x2 | x1, c), the classes reweighted by the observation).
    None where there is no such reference (images, other dimensions, fewer than 20 points near
    the value)."""
    if run.is_image or run.dim != 2 or len(observe) != 1:
        return None
    from .evaluation import drawn_by_generators, run_source

    ((i, value),) = observe.items()
    free = 1 - i
    band = CONDITIONAL_BAND * float(np.std(run.data[:, i]))
    source = run_source(run) if drawn_by_generators(run.config.data) else None
    of = "" if label is None or not run.class_names else f" (class {run.class_names[label]})"
    if source is not None:
        found = []
        for k in range(50):  # at most 10 million draws: a value with no mass gives up
            points = source.reference(200_000, seed=1000 * (seed + 1) + k, label=label)
            found.append(points[np.abs(points[:, i] - value) < band, free])
            if sum(map(len, found)) >= CONDITIONAL_DRAWS:
                break
        whose = f"{source.generators[label]}'s generator" if label is not None else (
            "the classes' generators in the training proportions" if run.class_names else f"{source.name}'s generator"
        )  # fmt: skip
        values, words = np.concatenate(found)[:CONDITIONAL_DRAWS], f"true conditional{of}: {whose}"
    else:
        near = np.abs(run.data[:, i] - value) < band
        if label is not None and run.labels is not None:
            near &= run.labels == label
        values, words = run.data[near, free], f"training data{of}"
    if len(values) < 20:
        return None
    return values, f"{words}, |x{i + 1} - {value:g}| < {band:.2g}"


def reference_label(plan: SamplingPlan, request) -> tuple[bool, int | None]:
    """(whether the figure of a guided draw has a true conditional to show, of which class):
    the model without a class (classifier-free guidance 0) is compared with every class together,
    a draw of one class with that class; classes in proportion, each guided towards its own, have
    no one conditional to compare with."""
    from .plan import drawn_classes

    if drawn_classes(plan, request) is None:
        return True, None
    return plan.label is not None, plan.label


def observed_point(run: Run, observe: dict[int, float]) -> np.ndarray:
    """One point in data units: the observed coordinates, the data's mean elsewhere (the
    unobserved entries are masked out wherever the point is used)."""
    check_guidable(run, "observe")
    if run.is_image:
        raise PlanError(
            "observe", "is an image run; observe fixes coordinates of point runs (an image is completed by inpainting)", of_run=True
        )
    bad = [i for i in observe if not 0 <= i < run.dim]
    if bad:
        raise PlanError("observe", f"x{bad[0] + 1}: this run has coordinates x1..x{run.dim}")
    if len(observe) >= run.dim:
        raise PlanError("observe", f"every coordinate is observed; leave at least one of x1..x{run.dim} to sample")
    for i, v in observe.items():
        lo, hi = float(run.data[:, i].min()), float(run.data[:, i].max())
        span = hi - lo
        if not lo - span <= v <= hi + span:
            raise PlanError(
                "observe", f"x{i + 1} = {v:g} is far outside the training data's x{i + 1} (from {lo:.3g} to {hi:.3g}); "
                f"expected a value between {lo - span:.3g} and {hi + span:.3g}, where the model has seen data",
            )  # fmt: skip
    point = np.asarray(run.normalization.mean, dtype=np.float32).copy()
    for i, v in observe.items():
        point[i] = v
    return point


def _to_model_units(run: Run, x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(run.normalization.encode(np.asarray(x, dtype=np.float32)), dtype=torch.float32, device=run.device)


def _known(run: Run, mask: torch.Tensor, values_data: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask and the known values in model units, both of one sample's shape."""
    values = _to_model_units(run, values_data)
    return mask.to(run.device), torch.where(mask.to(run.device), values, torch.zeros_like(values))


def _observe_wrapper(run: Run, mask, values, method: str, scale: float | None, seed: int, counts: GuidanceCounts):
    if method not in OBSERVE_METHODS:
        raise PlanError("method", f"{method!r}: expected one of {', '.join(OBSERVE_METHODS)}")
    schedule, prediction = run.schedule, run.config.model.prediction
    s = DEFAULT_OBSERVE_SCALE if scale is None else scale
    if method == "replace":
        # The noised known values come from each sample's own stream, apart from the sampler's
        # (samplers/noise.py); without the batch's noise, the rows are samples 0, 1, ... (one batch).
        def replaced(fn, noise: SampleNoise | None = None):
            noise = SampleNoise(seed) if noise is None else noise
            return replacement(fn, mask, values, schedule, prediction, generator=noise.spawn(REPLACEMENT_STREAM))

        return replaced
    misfit = observation_loss(mask, values, noise_std=1.0)
    steps = 1 if method == "universal" else 0
    return lambda fn, noise=None: loss_guidance(fn, misfit, s, schedule, prediction, backward_steps=steps, backward_lr=1.0, counts=counts)


def _classifier(run: Run):
    check_guidable(run, "classifier_scale")
    if run.num_classes == 0:
        raise PlanError("classifier_scale", "has no classes, so it has no classifier", of_run=True)
    if not run.folder.has_classifier():
        raise PlanError("classifier_scale", "has no classifier; train one with: denoiselab train-classifier RUN", of_run=True)
    try:
        return load_classifier(run)
    except ClassifierError as exc:  # a damaged file: the message names it
        raise PlanError("classifier_scale", str(exc)) from None


def guided_wrapper(run: Run, request: GuidanceRequest, seed: int, counts: GuidanceCounts):
    """(wrap, known): the model wrapper for ``request`` and the (mask, values) to paste, or None."""
    wrappers, known = [], None
    schedule, prediction = run.schedule, run.config.model.prediction
    if request.classifier_scale is not None:
        classifier = _classifier(run)
        scale = request.classifier_scale
        wrappers.append(lambda fn, noise=None: classifier_guidance(fn, classifier, scale, schedule, prediction, counts=counts))
    if request.observe:
        point = observed_point(run, request.observe)
        mask = torch.zeros(run.dim, dtype=torch.bool)
        mask[list(request.observe)] = True
        known = _known(run, mask, point)
        wrappers.append(_observe_wrapper(run, *known, request.method, request.scale, seed, counts))
    if request.region is not None:
        _check_region_run(run)
        region = request_region(run, request)
        mean = torch.as_tensor(run.normalization.mean, dtype=torch.float32, device=run.device)
        unit = float(run.normalization.scale)
        weight = DEFAULT_REGION_SCALE if request.scale is None else request.scale

        def region_loss(x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return region.loss(x0 * unit + mean.to(x0))  # the region is in data units

        wrappers.append(lambda fn, noise=None: loss_guidance(fn, region_loss, weight, schedule, prediction, counts=counts))

    def wrap(model_fn, noise: SampleNoise | None = None):
        model_fn = counted(model_fn, counts)
        for w in wrappers:
            model_fn = w(model_fn, noise)
        return model_fn

    wrap.takes_noise = True  # runs/sampling.with_noise: the batch's noise, for replacement's draws
    return wrap, known


def _check_region_run(run: Run) -> None:
    check_guidable(run, "region")
    if run.is_image:
        raise PlanError("region", "is an image run; a region is a set of points", of_run=True)


def request_region(run: Run, request: GuidanceRequest):
    """The request's region (regions.Region, data units), or None without one."""
    if request.region is None:
        return None
    try:
        return region_from(request.region, run.dim)
    except RegionError as exc:
        raise PlanError("region", str(exc)) from None


def inside(region, points: np.ndarray) -> np.ndarray:
    """Whether each of ``points`` (N, D, data units) lies in ``region``."""
    return region.contains(torch.as_tensor(np.asarray(points, dtype=np.float64))).numpy()


def describe_inside(run: Run, region, samples: np.ndarray) -> str:
    """How many samples a region holds against the training data's share, e.g. "1399 of 2000
    samples inside abs(x1) < 0.3 (70.0 %); the training data: 42.1 %"."""
    held, share = int(inside(region, samples).sum()), float(inside(region, run.data).mean())
    return f"{held} of {len(samples)} samples inside {region.text} ({100 * held / len(samples):.1f} %); the training data: {100 * share:.1f} %"


def draw_guided(run: Run, plan: SamplingPlan, request: GuidanceRequest, counts: GuidanceCounts, *, on_step=None, batch: int | None = None,
                start: int = 0, stop: int | None = None) -> Drawn:  # fmt: skip
    """Samples [start, stop) of ``plan`` (default: all) drawn with gradient guidance, ``batch``
    at a time (None: all at once): the rows of the full draw, as sampling.sample_range's;
    observed coordinates are exact in every sample (written in at the end, except by smc, whose
    last step conditions on them).  ``on_step`` gets each sampler step's record."""
    stop = plan.n if stop is None else stop
    if request.method == SMC:
        return _draw_smc(run, plan, request, counts, on_step, batch, start, stop)
    batched = GuidanceCounts()
    wrap, known = guided_wrapper(run, request, plan.seed, batched)
    drawn = sample_range(run, plan, start, stop, model_wrapper=wrap, on_step=on_step, batch=batch)
    _add_one_batch(counts, batched, batch_count(stop - start, batch))
    if known is not None:
        for i, v in request.observe.items():
            drawn.x[:, i] = v
    return drawn


def _add_one_batch(counts: GuidanceCounts, batched: GuidanceCounts, batches: int) -> None:
    """Add to ``counts`` one batch's share of ``batched``, what ``batches`` batches cost: every
    batch makes the same calls, and a draw's cost is counted per sample, as in one batch."""
    counts.evaluations += batched.evaluations // batches
    counts.model_backward += batched.model_backward // batches
    counts.other_gradients += batched.other_gradients // batches


def _draw_smc(run: Run, plan: SamplingPlan, request: GuidanceRequest, counts: GuidanceCounts, on_step=None, batch: int | None = None,
              start: int = 0, stop: int | None = None) -> Drawn:  # fmt: skip
    """``draw_guided`` by twisted SMC: one twist, of the observed coordinates, the region or the classifier."""
    drawn, record = draw_smc(run, plan, smc_twist(run, request), request.particles, counts, on_step, batch=batch, start=start, stop=stop)
    return replace(drawn, x=run.to_data_units(torch.as_tensor(drawn.x)), particles=record)


def smc_twist(run: Run, request: GuidanceRequest):
    """The SMC twist of ``request``: of its observed coordinates, its region or its classifier
    (smc.Twist, or a ClassifierTwist made per batch), which must be its one condition."""
    if sum((request.classifier_scale is not None, bool(request.observe), request.region is not None)) > 1:
        raise PlanError("method", "smc twists by one condition: give classifier guidance, observed coordinates or a region, not two")
    if request.classifier_scale is not None:
        return ClassifierTwist(_classifier(run), request.classifier_scale)
    if request.observe:
        point = observed_point(run, request.observe)
        mask = torch.zeros(run.dim, dtype=torch.bool)
        mask[list(request.observe)] = True
        return observe_twist(run, *_known(run, mask, point))
    _check_region_run(run)
    return region_twist_of(run, request_region(run, request))


def sample_guided(run: Run, request: GuidanceRequest, counts: GuidanceCounts | None = None, **plan_options) -> np.ndarray:
    """``sample_points`` with gradient guidance (``plan_options`` as plan.plan_sampling takes them)."""
    counts = counts if counts is not None else GuidanceCounts()
    return draw_guided(run, plan_from_options(run, **plan_options), request, counts).x


def inpaint(
    run: Run,
    image: np.ndarray,
    mask: torch.Tensor,
    *,
    method: str = "replace",
    scale: float | None = None,
    n: int = 8,
    counts: GuidanceCounts | None = None,
    plan: SamplingPlan | None = None,
    particles: int | None = None,
    on_step=None,
    **plan_options,
) -> np.ndarray:
    """``n`` completions (n, C, H, W) of ``image`` (C, H, W, pixels in [-1, 1]) where ``mask``
    (H, W) is False; the known pixels are copied from the image into every completion (smc:
    its last step conditions on them).  The sampling is ``plan``'s, or one made of ``n`` and
    ``plan_options``; ``particles``: smc's per completion; ``on_step`` gets each sampler step's
    record."""
    counts = counts if counts is not None else GuidanceCounts()
    plan = plan_from_options(run, n=n, **plan_options) if plan is None else plan
    return inpaint_draw(run, image, mask, method, scale, counts, plan, particles, on_step).x


def inpaint_draw(run: Run, image: np.ndarray, mask: torch.Tensor, method: str, scale: float | None, counts: GuidanceCounts,
                 plan: SamplingPlan, particles: int | None = None, on_step=None, batch: int | None = None) -> Drawn:  # fmt: skip
    """``inpaint``'s draw, ``batch`` completions at a time (None: all at once): the completions
    (data units) with the SMC population's record."""
    if method == SMC:
        check_inpaintable(run)
        twist = observe_twist(run, *_known(run, mask[None].expand(run.sample_shape), image))
        drawn, record = draw_smc(run, plan, twist, particles, counts, on_step, batch=batch)
        return replace(drawn, x=run.to_data_units(torch.as_tensor(drawn.x)), particles=record)
    batched = GuidanceCounts()
    wrap, (full, _) = inpaint_wrapper(run, image, mask, method, scale, plan.seed, batched)
    drawn = sample(run, plan, model_wrapper=wrap, on_step=on_step, batch=batch)
    _add_one_batch(counts, batched, batch_count(plan.n, batch))
    return replace(drawn, x=paste_observed(torch.as_tensor(drawn.x), full, torch.as_tensor(image, dtype=torch.float32)).numpy())


def check_inpaintable(run: Run) -> None:
    """PlanError unless the run samples images in pixel space, the only place known pixels can be
    kept (an autoencoder, which samples nothing, is refused by plan_sampling)."""
    if not run.is_image:
        raise PlanError("inpaint", "is a point run; inpainting completes images, and a point's coordinates are fixed with observe", of_run=True)
    if run.is_latent:
        raise PlanError(
            "inpaint", "is a latent run: inpainting keeps known pixels at every step, so it needs a run that samples pixels "
            "(a pixel image run, e.g. digits), while this one samples its autoencoder's latents", of_run=True,
        )  # fmt: skip


def held_out_image(run: Run, index: int) -> np.ndarray:
    """Held-out image ``index`` (C, H, W, pixels in [-1, 1]) of an image run, to inpaint."""
    check_inpaintable(run)
    try:
        held, _ = held_out_images(run)
    except RunError:
        raise PlanError("image", f"has no held-out images ({HELD_OUT})", of_run=True) from None
    if not 0 <= index < len(held):
        raise PlanError("image", f"expected a held-out image index in 0..{len(held) - 1}, got {index}")
    return np.asarray(held[index], dtype=np.float32)


def inpaint_wrapper(run: Run, image: np.ndarray, mask: torch.Tensor, method: str, scale: float | None, seed: int, counts: GuidanceCounts):
    """(wrap, known) for completing ``image`` (C, H, W, data units) where ``mask`` (H, W) is
    False: the counted model wrapper, and the known (mask, values) of one sample's shape in model
    units (what ``guided_wrapper`` returns for observed coordinates)."""
    check_inpaintable(run)
    known = _known(run, mask[None].expand(run.sample_shape), image)
    observe = _observe_wrapper(run, *known, method, scale, seed, counts)

    def wrap(model_fn, noise: SampleNoise | None = None):
        return observe(counted(model_fn, counts), noise)

    wrap.takes_noise = True
    return wrap, known
