"""Twisted SMC (smc.py) for a run: observed coordinates, a region, known pixels, or a classifier.

A request with method "smc" is drawn here instead of through a guidance wrapper and a sampler:
K particles per requested sample (``particles``), moved by ancestral DDPM steps on the plan's
times with the twist's guidance, weighted and resampled, one particle per sample at the end.
The observed values and the region are read in the model's units as runs/guided.py reads them
for gradient guidance.  What the population did (its ESS over the steps, the evaluations) comes
back with the draw as a ``ParticleRecord``.

An evaluation here is one sample's pass through the model, as elsewhere in denoiselab: a call of
the model on the n K particles is K evaluations per sample, and so is its backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..gradient_guidance import GuidanceCounts, counted
from ..samplers import Denoiser
from ..samplers.fixed_shape import ROWS_PER_CALL, fixed_shape
from ..samplers.noise import SampleNoise
from ..smc import ParticleRecord, Twist, classifier_twist, concatenate_records, observation_twist, region_twist, sample_smc
from .load import Run
from .plan import PlanError, SamplingPlan
from .sampling import Drawn, batch_ranges, guided_model_fn

SMC = "smc"
DEFAULT_PARTICLES = 16
# Without steps given, smc takes this many times the run's sample.steps: ancestral DDPM steps
# shrink the spread at 20 steps where dpm++2m does not, and SMC converges to the conditional of
# the chain it weights (BENCHMARKS.md, "Twisted SMC against the true conditional").  With
# DEFAULT_PARTICLES that is 64 times the evaluations of an unguided sample.
STEP_FACTOR = 4


def default_steps(run: Run) -> int:
    """The steps of an smc draw when none are given: STEP_FACTOR x the run's sample.steps, at
    most the chain's T."""
    return min(STEP_FACTOR * int(run.config.sample.steps), int(run.schedule.T))
# A warning when the population's mean ESS falls below this share of K at some step, or ends
# below it: the conditional lies where the model puts little mass, and the particles carry it
# with a few weights only.
COLLAPSED_ESS = 0.1


def check_smc_plan(plan: SamplingPlan) -> None:
    """PlanError unless the plan steps the ancestral DDPM transition: the weights are its exact
    Gaussian densities, so no other sampler can be weighted."""
    if plan.sampler != "ddpm":
        raise PlanError(
            "sampler", f"{plan.sampler!r}: smc weights particles by the densities of ancestral DDPM steps; leave the sampler out or name ddpm"
        )


def check_particles(particles: int | None) -> int:
    k = DEFAULT_PARTICLES if particles is None else particles
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise PlanError("particles", f"expected a whole number >= 1 of particles per sample, got {particles!r}")
    return k


@dataclass(frozen=True)
class ClassifierTwist:
    """Classifier guidance as a twist (smc.classifier_twist) towards each sample's label: made
    for each batch from its samples' labels, each repeated for the sample's K particles.  The
    model runs unconditional, as classifier guidance steers it (gradient_guidance.classifier_guidance)."""

    classifier_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the run's noise-conditional classifier: logits (B, C)
    scale: float

    def for_rows(self, labels: torch.Tensor) -> Twist:
        return classifier_twist(self.classifier_fn, labels, self.scale)


def draw_smc(
    run: Run, plan: SamplingPlan, twist: Twist | ClassifierTwist, particles: int, counts: GuidanceCounts, on_step=None, record: ParticleRecord | None = None,
    *, batch: int | None = None, start: int = 0, stop: int | None = None,
) -> tuple[Drawn, ParticleRecord]:
    """Samples [start, stop) of ``plan`` (default: all) drawn by twisted SMC with ``particles``
    per sample, ``batch`` samples at a time (None: all at once), in model units (Drawn.x is left
    undecoded: the caller writes the values it knows); ``counts`` gets the evaluations per
    sample, ``on_step`` each step's record of each batch and ``record`` (a new one if None) what
    the population did.  A sample's K particles are one unit of its own random stream
    (samplers/noise.py), so the samples are the same for any batch and any range."""
    check_smc_plan(plan)
    k = check_particles(particles)
    stop = plan.n if stop is None else stop
    if not 0 <= start < stop <= plan.n:
        raise PlanError("batch", f"samples [{start}, {stop}): expected 0 <= start < stop <= n = {plan.n}")
    record = ParticleRecord(k) if record is None else record
    steers = isinstance(twist, ClassifierTwist)
    if steers and plan.labels is None:
        raise PlanError("classifier_scale", "classifier guidance needs a label for each sample")
    ranges = batch_ranges(start, stop, batch)
    xs, starts, records, calls = [], [], [], GuidanceCounts()
    for a, b in ranges:
        calls = GuidanceCounts()
        network = fixed_shape(guided_model_fn(run, plan.guidance), a * k, min(ROWS_PER_CALL, plan.n * k))  # as runs/sampling.py
        model_fn = counted(network, calls)
        y = None if plan.labels is None else torch.as_tensor(np.repeat(plan.labels[a:b], k), device=run.device)
        batch_twist = twist.for_rows(y) if steers else twist
        denoise = Denoiser(model_fn, run.schedule, run.config.model.prediction, None if steers else y, plan.clip_x0)
        noise = SampleNoise(plan.seed, a, b - a)
        # K = 1 starts from the noise of an unguided draw of the same plan (runs/sampling.sample).
        x_T = noise.normal(((b - a) * k, *run.sample_shape), device=run.device)
        part = record if len(ranges) == 1 else ParticleRecord(k, weights=None if record.weights is None else [])
        x0 = sample_smc(
            denoise, x_T, plan.times, twist=batch_twist, particles=k, generator=noise,
            variance=plan.options.get("variance", "small"), record=part, on_step=on_step,
        )  # fmt: skip
        xs.append(x0.float().cpu().numpy())
        starts.append(x_T)
        records.append(part)
    if len(ranges) > 1:
        concatenate_records(records, into=record)
    counts.evaluations += calls.evaluations * k  # one batch's calls: each sample's K particles
    # One gradient of the twist per call: through the model, or through the classifier alone.
    if steers:
        counts.other_gradients += calls.evaluations * k
    else:
        counts.model_backward += calls.evaluations * k
    return Drawn(np.concatenate(xs), torch.cat(starts), calls.evaluations * k), record


def observe_twist(run: Run, mask: torch.Tensor, values: torch.Tensor) -> Twist:
    """The twist of known values (model units, one sample's shape)."""
    return observation_twist(mask, values, run.schedule)


def region_twist_of(run: Run, region) -> Twist:
    """The twist of a region given in data units (regions.Region), read on model-unit estimates."""
    mean = torch.as_tensor(run.normalization.mean, dtype=torch.float32, device=run.device)
    unit = float(run.normalization.scale)
    return region_twist(lambda x0: region.violation(x0 * unit + mean.to(x0)) / unit, run.schedule)


def ess_line(record: ParticleRecord, evaluations: int) -> str:
    """"SMC: 16 particles per sample, ESS min 3.2 / mean 11.0 of 16 over the steps, 320 model
    evaluations per sample"."""
    s = record.ess_summary()
    return (
        f"SMC: {s['particles']} particles per sample, ESS min {s['ess_min']:.1f} / mean {s['ess_mean']:.1f} of {s['particles']} "
        f"over the steps (final {s['ess_final']:.1f}), {s['resampling_steps']} resampling steps, {evaluations} model evaluations per sample"
    )


def collapse_warning(record: ParticleRecord, remedy: str = "more --particles or --steps help") -> str | None:
    """One line when the population collapsed (COLLAPSED_ESS), else None; ``remedy`` names the
    face's own knobs."""
    s = record.ess_summary()
    k = s["particles"]
    if k < 2:
        return None
    if s["dead_groups"]:
        return f"warning: for {s['dead_groups']} samples no particle ended inside the region; those samples are outside it"
    worst = min(s["ess_min"], s["ess_final"])
    if worst < max(1.5, COLLAPSED_ESS * k):
        where = "at the end" if s["ess_final"] <= s["ess_min"] else f"at t = {s['ess_min_at_t']:.3g}"
        return (
            f"warning: the effective sample size fell to {worst:.1f} of {k} particles {where}: the condition lies where the "
            "model puts little mass, so the samples rest on a few particles ({remedy})"
        )
    return None


def report(record: ParticleRecord, evaluations: int) -> dict:
    """The JSON form: the ESS summary and the evaluations per sample."""
    return {**record.ess_summary(), "evaluations_per_sample": evaluations}
