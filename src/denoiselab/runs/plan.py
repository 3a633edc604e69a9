"""What exactly will be sampled: a sampling request resolved once into a ``SamplingPlan``.

A request (``denoiselab sample``, ``evaluate`` and ``inpaint``, the playground's sample route,
``sample_points``) names some of: a sampler, its steps, a grid, the sampler's own options, n, a
seed, a class or one class per sample, a classifier-free guidance scale.  ``plan_sampling``
fills in the rest from the run's [sample] section and resolves it all in one place: the times
t_0 > ... > t_N = 0 the sampler visits, the labels of the samples, the guidance scale, the box
x0-hat is clamped to and the model evaluations it costs.  What is sampled then goes down in one
direction (runs/sampling.py: plan -> guidance wrappers -> one call of the sampler), and every
face says it with the same words (``SamplingPlan.describe``).

Errors are ``PlanError(field, message)``: the field is a parameter of ``plan_sampling`` (or
"run"), and the message never names the run's path, so that each face puts its own name on it:
the command line maps ``eta`` to ``--eta``, the playground answers 422 "eta: ...".

The tuned-grid rule (one rule for the command line and the playground).  ``denoiselab
tune-steps`` tunes the time points of one sampler at one evaluation count on the run's own model
function: every class in proportion and the run's sample.guidance (tuning.py).  A plan samples on
that tuned grid (the run's tuned_grids.json) when ``tuned`` is None, no grid is named and the
request keeps the model function the grid was tuned on: no label, no labels (a class for gradient
guidance included), and a guidance scale that is None or equal to the run's own.  ``tuned=True``
requires the tuned grid (an error when there is none, or when a grid is named too);
``tuned=False`` never uses it, which is the Python API's default (``plan_from_options``:
``sample_points`` and ``evaluate_run`` sample on the grid they are given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np
import torch

from ..data.sources import proportional_counts
from ..choices import CONSISTENCY_OBJECTIVES, INTERVAL_OBJECTIVES
from ..consistency import consistency_grid, on_grid, trained_discretisation
from ..errors import InputError
from ..samplers import GRIDS, JUMP_SAMPLERS, SAMPLERS, check_grid, evaluations, parse_grid, time_grid
from .folder import TUNED_GRIDS, RunError, RunFolder
from .load import Run


class SamplingError(InputError):
    """A request this run cannot serve (a label it does not have, guidance without labels)."""


class PlanError(SamplingError):
    """A sampling request that cannot be planned: ``field`` names what is wrong (a parameter of
    ``plan_sampling``, of gradient guidance (runs/guided.py), or "run") and ``message`` why.

    With ``of_run`` the message is a predicate whose subject is the run ("is unconditional
    (trained with no classes), so it takes no label"): each face names the run its own way (the
    command line by its folder, the playground by its name), and no message carries a path of the
    machine.  ``conflict``: the request is well formed, but one of the run's files stands in its
    way (the playground answers 409)."""

    def __init__(self, field: str, message: str, *, of_run: bool = False, conflict: bool = False):
        super().__init__(f"{field}: {'the run ' if of_run else ''}{message}")
        self.field, self.message, self.of_run, self.conflict = field, message, of_run, conflict


def check_samples(run: Run) -> None:
    """PlanError where the run has no model to sample: an autoencoder (what plan_sampling and
    tune-steps, which tunes a sampler on the run's model, both refuse)."""
    if run.is_autoencoder:
        raise PlanError(
            "run", "is an autoencoder: it encodes and decodes images and samples nothing; sample a latent run trained on it", of_run=True
        )


# -- classes and guidance -------------------------------------------------------------------------


def resolve_label(run: Run, label) -> int:
    """A class index from an index or a class name (a name wins over a number-like string)."""
    names, given = run.class_names, label
    if run.num_classes == 0:
        raise PlanError("label", "is unconditional (trained with no classes), so it takes no label", of_run=True)
    if isinstance(label, str):
        if label in names:
            return names.index(label)
        try:
            label = int(label)
        except ValueError:
            raise PlanError("label", f"unknown class {label!r}; expected one of {', '.join(names)} or 0..{len(names) - 1}") from None
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < run.num_classes:
        return int(label)
    raise PlanError("label", f"{given!r} is out of range; this run has classes 0..{run.num_classes - 1} ({', '.join(names)})")


def class_labels(run: Run, n: int, label=None) -> np.ndarray | None:
    """The class of each of ``n`` samples: all ``label``, or every class in proportion to the
    training set when ``label`` is None (exact counts, largest remainder, in class order).
    None for an unconditional run."""
    if run.num_classes == 0:
        if label is not None:
            resolve_label(run, label)  # raises: no classes
        return None
    if label is None:
        return np.repeat(np.arange(run.num_classes), proportional_counts(run.class_weights, n))
    return np.full(n, resolve_label(run, label), dtype=np.int64)


def describe_classes(run: Run, plan: SamplingPlan) -> str:
    """The classes of a plan's samples in words: "class circle", "every class in proportion",
    "one class given per sample"; "" for an unconditional run."""
    if plan.labels is None:
        return ""
    if plan.label is not None:
        return f"class {run.class_names[plan.label]}"
    if np.array_equal(plan.labels, class_labels(run, plan.n)):
        return "every class in proportion"
    return "one class given per sample"


def drawn_classes(plan: SamplingPlan, guidance: Guidance | None = None) -> np.ndarray | None:
    """The class each sample was drawn as, for the faces that colour, write or list it (a PNG,
    the CSV, the playground's reply); None where the model ran without a class: an unconditional
    run, or classifier-free guidance 0, which is the unconditional branch alone
    (guidance.classifier_free: uncond + 0 * (cond - uncond)), unless classifier guidance steers
    that branch towards the plan's classes."""
    if plan.labels is None:
        return None
    if plan.guidance == 0 and not (guidance is not None and guidance.active and guidance.steers_classes):
        return None
    return plan.labels


class Guidance(Protocol):
    """Gradient guidance as describe_draw reads it (runs/guided.py's requests)."""

    active: bool  # whether it steers anything
    steers_classes: bool  # classifier guidance: the model runs unconditional, no classifier-free scale

    def describe(self, classes: str = "") -> str: ...


def describe_draw(run: Run, plan: SamplingPlan, guidance: Guidance | None = None) -> str:
    """What a draw is, in the one wording of the command line's line, a PNG's title and the
    playground's reply: the plan (SamplingPlan.describe), the classes with their classifier-free
    scale, and the gradient guidance, joined by "; ".  Under classifier guidance the model runs
    unconditional (gradient_guidance.classifier_guidance), so no classifier-free scale is named."""
    parts = [plan.describe()]
    classes = describe_classes(run, plan)
    active = guidance is not None and guidance.active
    if classes and plan.guidance == 0 and plan.label is None:
        parts.append("the model without a class (classifier-free guidance 0)")
    elif classes and not (active and guidance.steers_classes):
        parts.append(f"{classes}, classifier-free guidance {plan.guidance:g}")
    if active:
        parts.append(guidance.describe(classes))
    return "; ".join(parts)


def guidance_scale(run: Run, guidance: float | None, *, conditioned_without_class: bool = False) -> float | None:
    """The classifier-free guidance scale a sample of ``run`` uses: ``guidance``, or the run's
    sample.guidance; None for an unconditional run (which refuses a scale).  A text-to-image run
    is guided on its prompt (runs/prompts.py).

    ``conditioned_without_class``: the samples are conditioned on part of themselves (an
    observation, a region, known pixels) and no class is asked for.  Their target is then
    p(x | condition) = sum_c p(c | condition) p(x | c, condition): the condition decides the
    class.  Classes drawn in the training proportions and guided towards (the run's default)
    cannot move mass between classes, so such a draw defaults to the model without a class
    (scale 0) wherever the run learned one (train.label_dropout > 0)."""
    if run.num_classes == 0 and not run.is_text:
        if guidance is not None:
            raise PlanError("guidance", "is unconditional (trained with no classes), so it has nothing to guide", of_run=True)
        return None
    if guidance is None and conditioned_without_class and run.config.train.label_dropout > 0:
        return 0.0
    scale = run.config.sample.guidance if guidance is None else guidance
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and np.isfinite(scale) and scale >= 0):
        raise PlanError("guidance", f"expected a number >= 0, got {scale!r}")
    return float(scale)


def _labels_given(run: Run, labels, n: int | None) -> np.ndarray:
    """One class index per sample, checked against the run and ``n``."""
    labels = np.asarray(labels)
    if run.num_classes == 0:
        raise PlanError("labels", "is unconditional (trained with no classes), so it takes no labels", of_run=True)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise PlanError("labels", "expected a list of class indices, one per sample")
    if n is not None and len(labels) != n:
        raise PlanError("labels", f"expected one class per sample ({n}), got {len(labels)}")
    bad = labels[(labels < 0) | (labels >= run.num_classes)]
    if len(bad):
        raise PlanError("labels", f"each must be in 0..{run.num_classes - 1} for this run, got {int(bad[0])}")
    return labels.astype(np.int64)


# -- the times ------------------------------------------------------------------------------------


def tuned_grid_list(run_dir) -> list[dict]:
    """The run's tuned grids, for the page and for messages: sampler, evaluations and steps ([]
    when none, or when the file cannot be read: a plan then says why)."""
    try:
        grids = RunFolder(run_dir).read_tuned_grids()
    except RunError:
        return []
    out = []
    for key, entry in grids.items():  # keyed "sampler/evaluations" (folder.tuned_grid_key)
        sampler, _, count = key.partition("/")
        out.append({"sampler": sampler, "evaluations": int(count) if count.isdigit() else count, "steps": len(entry["grid"]) - 1})
    return sorted(out, key=lambda e: (e["sampler"], str(e["evaluations"]).zfill(6)))


def _tuned_times(run: Run, sampler: str, steps: int, required: bool) -> torch.Tensor | None:
    count = evaluations(sampler, steps)
    try:
        times = run.folder.tuned_grid(sampler, count)
    except RunError:
        raise PlanError(
            "tuned_grid", f"has a {TUNED_GRIDS} that cannot be read; delete it or run denoiselab tune-steps again", of_run=True, conflict=True
        ) from None
    if required and times is None:
        have = ", ".join(f"{e['sampler']} at {e['evaluations']}" for e in tuned_grid_list(run.path)) or "none"
        raise PlanError(
            "tuned_grid",
            f"has no tuned grid for {sampler} at {count} model evaluations (it has: {have}); "
            f"make one with: denoiselab tune-steps RUN --sampler {sampler} --nfe {count}",
            of_run=True,
        )
    return None if times is None else check_grid(times)


def _check_steps(run: Run, steps) -> None:
    if steps is not None:
        if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
            raise PlanError("steps", f"must be an integer >= 1, got {steps!r}")
        if steps > run.schedule.T:
            raise PlanError("steps", f"must be at most the run's T = {run.schedule.T}, got {steps}")


def _check_rho(rho, grid: str | None) -> None:
    """``rho`` of the named ``grid`` (None: times given)."""
    if rho is not None:
        if not (isinstance(rho, (int, float)) and not isinstance(rho, bool) and rho > 0):
            raise PlanError("rho", f"must be > 0, got {rho!r}")
        if grid != "karras":
            raise PlanError("rho", f"applies to the karras grid only, not {'a given grid' if grid is None else f'the {grid} grid'}")


def _given_times(grid, steps: int | None) -> torch.Tensor:
    """A grid given as times (a sequence, a tensor, or text: times separated by commas, or a
    file of them), which set the steps."""
    try:
        times = parse_grid(grid) if isinstance(grid, str) else check_grid(grid)
    except ValueError as exc:
        raise PlanError("grid", str(exc).removeprefix("grid: ")) from None
    if steps is not None and steps != len(times) - 1:
        raise PlanError("steps", f"the grid given has {len(times) - 1} steps, not {steps}; give one or the other")
    return times


def _named_or_tuned(run: Run, sampler: str, steps: int, name: str, rho: float, tuned: bool | None, *, departs: bool):
    """(times, how they were chosen): the run's tuned grid where the rule of this module's
    docstring uses it and it exists, else the named grid.  ``departs``: the request names a grid
    or departs from the model function the tuned grid was tuned on."""
    if tuned or (tuned is None and not departs):
        times = _tuned_times(run, sampler, steps, required=bool(tuned))
        if times is not None:
            return times, "tuned"
    try:
        return time_grid(run.schedule, steps, name, rho=rho), name
    except ValueError as exc:
        raise PlanError("grid", str(exc)) from None


def _own_options(sampler: str, sc, eta, variance, options: dict) -> dict:
    """The sampler's own options: ``options`` as given, with eta (ddim) and variance (ddpm)."""
    own = dict(options)
    for key, value, owner in (("eta", eta, "ddim"), ("variance", variance, "ddpm")):
        if value is not None and sampler != owner:
            raise PlanError(key, f"applies to the {owner} sampler only (the sampler here is {sampler})")
    if sampler == "ddim":
        own["eta"] = sc.eta if eta is None else eta
    if sampler == "ddpm":
        own["variance"] = sc.variance if variance is None else variance
    return own


def _classes(run: Run, n, label, labels):
    """(n, label, labels, one_per_sample): the sample count and the class of each sample."""
    one_per_sample = labels is not None
    if one_per_sample:
        if label is not None:
            raise PlanError("labels", "give either label (one class for all) or labels (one per sample), not both")
        labels = _labels_given(run, labels, n)
        n = len(labels)
    n = run.config.sample.n if n is None else n
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise PlanError("n", f"must be an integer >= 1, got {n!r}")
    label = None if label is None else resolve_label(run, label)
    return n, label, class_labels(run, n, label) if labels is None else labels, one_per_sample


# -- the plan -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingPlan:
    """What exactly will be sampled, resolved once (``plan_sampling``)."""

    sampler: str  # a name of samplers.SAMPLERS
    times: torch.Tensor  # t_0 > ... > t_N = 0 (float64), the times the sampler visits
    grid: str  # how the times were chosen: a named grid (samplers/grids.py), "given" or "tuned"
    rho: float | None  # the karras grid's exponent (None for any other grid)
    options: Mapping  # the sampler's own options (eta for ddim, variance for ddpm, ...)
    n: int
    seed: int  # of x_T and of the sampler's noise
    label: int | None  # the one class asked for (None: every class in proportion, or one per sample)
    labels: np.ndarray | None  # the class of each sample; None for an unconditional run
    guidance: float | None  # the classifier-free guidance scale; None for an unconditional run
    clip_x0: float | None  # the box [-clip_x0, clip_x0] that x0-hat is clamped to, or None
    evaluations: int  # the model evaluations the sampler makes (samplers.evaluations)

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    @property
    def tuned(self) -> bool:
        return self.grid == "tuned"

    @property
    def named(self) -> bool:
        """The times are a named grid (as opposed to given or tuned ones)."""
        return self.grid in GRIDS

    def describe(self) -> str:
        """The sampler, its times and its own options in the words every face uses (the CLI's
        line, a PNG's title, the playground's reply): "heun, 5 steps, karras grid, rho 7",
        "ddim, 20 steps, trailing grid, eta 0".  ``describe_draw`` adds the classes and the guidance."""
        grid = f"tuned grid from {TUNED_GRIDS}" if self.tuned else f"{self.grid} grid" + ("" if self.rho is None else f", rho {self.rho:g}")
        own = "".join(f", {key} {value:g}" if isinstance(value, float) else f", {key} {value}" for key, value in self.options.items())
        return f"{self.sampler}, {self.steps} step{'' if self.steps == 1 else 's'}, {grid}{own}"

    def with_seed(self, seed: int) -> SamplingPlan:
        return dataclasses.replace(self, seed=seed)

    def for_class(self, label: int) -> SamplingPlan:
        """The same plan with every sample of class ``label`` (an index of the run's classes)."""
        return dataclasses.replace(self, label=label, labels=np.full(self.n, label, dtype=np.int64))


def _on_consistency_grid(run: Run, times: torch.Tensor) -> torch.Tensor:
    return on_grid(times, consistency_grid(run.schedule, trained_discretisation(run.config.train))[0])


def plan_sampling(
    run: Run,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    grid=None,
    rho: float | None = None,
    eta: float | None = None,
    variance: str | None = None,
    n: int | None = None,
    seed: int | None = None,
    label=None,
    labels=None,
    guidance: float | None = None,
    tuned: bool | None = None,
    spacing: str | None = None,
    conditioned: bool = False,
    **options,
) -> SamplingPlan:
    """Resolve a sampling request on ``run`` into a SamplingPlan; what is not given comes from
    the run's [sample] section.

    ``grid``: a grid's name (samplers/grids.py), or times t_0 > ... > 0 (a sequence, a tensor, or
    text as the CLI's --grid takes it), which then set the steps.  ``spacing`` is the older name of
    a named ``grid``.  ``rho``: the karras grid's exponent.  ``eta`` (ddim) and ``variance``
    (ddpm) and any further ``options`` go to the sampler.  ``label``: one class (index or name)
    for every sample; ``labels``: one class index per sample (n defaults to their number).
    ``tuned``: the run's tuned grid, by the rule of this module's docstring.  ``conditioned``: the
    samples are conditioned on part of themselves (guidance_scale's ``conditioned_without_class``)."""
    sc = run.config.sample
    check_samples(run)
    sampler = sc.sampler if sampler is None else sampler
    if sampler not in SAMPLERS and sampler not in JUMP_SAMPLERS:
        raise PlanError("sampler", f"unknown sampler {sampler!r}; expected one of {', '.join([*SAMPLERS, *JUMP_SAMPLERS])}")
    if sampler == "meanflow" and run.config.train.objective not in INTERVAL_OBJECTIVES:
        raise PlanError("sampler", "predicts one velocity, not MeanFlow's average velocity u(z, r, t); use euler or heun", of_run=True)
    if sampler == "consistency" and run.config.train.objective not in CONSISTENCY_OBJECTIVES:
        raise PlanError("sampler", "is not a consistency model: its clean estimate is a posterior mean, not a trajectory's end; use an ODE sampler", of_run=True)
    if spacing is not None:
        if grid is not None:
            raise PlanError("grid", "spacing is the older name of grid; give one")
        grid = spacing
    if tuned and grid is not None:
        raise PlanError("tuned_grid", "give either a grid or tuned_grid, not both")
    _check_steps(run, steps)
    own = _own_options(sampler, sc, eta, variance, options)
    name = sc.grid if grid is None else grid if isinstance(grid, str) and grid in GRIDS else None
    _check_rho(rho, name)
    times = None if name is not None else _given_times(grid, steps)
    n, label, labels, one_per_sample = _classes(run, n, label, labels)
    scale = guidance_scale(run, guidance, conditioned_without_class=conditioned and label is None and not one_per_sample)
    source = "given"
    if times is None:
        # A tuned grid fits the model function it was tuned on: every class, the run's guidance.
        departs = grid is not None or label is not None or one_per_sample or scale not in (None, sc.guidance)
        steps, rho = sc.steps if steps is None else steps, sc.rho if rho is None else rho
        times, source = _named_or_tuned(run, sampler, steps, name, rho, tuned, departs=departs)
        if sampler == "consistency":  # re-noise only to times the consistency function was trained at
            times = _on_consistency_grid(run, times)
    return SamplingPlan(
        sampler=sampler,
        times=times,
        grid=source,
        rho=float(rho) if source == "karras" else None,
        options=MappingProxyType(own),
        n=n,
        seed=sc.seed if seed is None else seed,
        label=label,
        labels=labels,
        guidance=scale,
        # eps-prediction reads x0 = (x - sigma eps) / alpha, which near alpha = 0 (the first
        # steps, especially of a cosine schedule) multiplies small errors of eps by sigma / alpha
        # (> 10^4 at the cosine schedule's last step); clamping to the data's box removes those
        # far outliers and leaves every estimate inside the box unchanged.
        clip_x0=run.info.get("x0_bound") if sc.clip_x0 else None,
        evaluations=evaluations(sampler, len(times) - 1),
    )
