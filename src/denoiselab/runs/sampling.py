"""Sampling a run in data units: a plan (plan.py) -> guidance wrappers -> one call of the sampler.

Every sample has its own random stream, keyed by (plan.seed, its index in the plan): its x_T and
every fresh noise of its path (samplers/noise.py).  A plan is drawn in batches of any size, or a
range of its samples [start, stop) alone (``sample_range``: one process's share of a draw split
over several), and each sample comes out the same to the bit: the network is called on a fixed
grid of rows aligned to the sample indices (samplers/fixed_shape.py), so a sample's arithmetic
does not depend on its batch either.

Conditional runs: the plan holds the class of each sample (one ``label`` for all, one per sample,
or every class in proportion) and the classifier-free guidance scale (guidance.classifier_free;
the run's sample.guidance by default).  Gradient guidance (runs/guided.py) wraps the model
function after classifier-free guidance, through ``model_wrapper``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch

from ..guidance import classifier_free
from ..samplers import JUMP_SAMPLERS, SAMPLERS, CountingModel, Denoiser
from ..samplers.fixed_shape import ROWS_PER_CALL, fixed_shape
from ..samplers.noise import SampleNoise
from .load import Run
from .plan import PlanError, SamplingError, SamplingPlan, class_labels, guidance_scale, plan_sampling, resolve_label

__all__ = [
    "Drawn",
    "batch_count",
    "batch_ranges",
    "PlanError",
    "SamplingError",
    "class_labels",
    "denoiser",
    "guided_model_fn",
    "plan_from_options",
    "resolve_label",
    "sample",
    "sample_points",
    "sample_range",
]


def guided_model_fn(run: Run, guidance: float | None = None):
    """The run's model function, wrapped in classifier-free guidance on a conditional run."""
    scale = guidance_scale(run, guidance)
    return run.model_fn() if scale is None else classifier_free(run.model_fn(), scale)


@dataclass(frozen=True)
class Drawn:
    """One draw of a plan."""

    x: np.ndarray  # the samples: data units (a latent run's decoded images), or model units undecoded
    x_T: torch.Tensor  # the starting noise, model units
    evaluations: int  # the model evaluations the sampler really made (CountingModel)
    particles: object = None  # twisted SMC's smc.ParticleRecord (runs/guided_smc.py), else None


def batch_ranges(start: int, stop: int, batch: int | None) -> list[tuple[int, int]]:
    """The samples [start, stop) cut into consecutive batches of ``batch`` (None: one batch)."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise PlanError("batch", f"expected a whole number >= 1 of samples per batch, got {batch!r}")
    size = stop - start if batch is None else batch
    return [(a, min(a + size, stop)) for a in range(start, stop, max(size, 1))]


def batch_count(n: int, batch: int | None) -> int:
    """How many batches ``n`` samples take (what a progress bar over every batch's steps needs)."""
    return len(batch_ranges(0, n, batch))


def with_noise(model_wrapper, model_fn, noise: SampleNoise):
    """``model_wrapper(model_fn)``, given the batch's noise where the wrapper draws noise of its
    own per sample (``takes_noise``: replacement guidance, runs/guided.py)."""
    if getattr(model_wrapper, "takes_noise", False):
        return model_wrapper(model_fn, noise)
    return model_wrapper(model_fn)


# (run, sampler) while rank 0 of several processes measures ``run`` (shared_draws.py): its draws
# are then split among the processes by ``sampler(plan, on_step=, decode=, batch=)``.
SHARED_DRAWS: ContextVar = ContextVar("shared_draws", default=None)


def sample(run: Run, plan: SamplingPlan, *, model_wrapper=None, on_step=None, decode: bool = True, batch: int | None = None) -> Drawn:
    """Draw ``plan.n`` samples of ``run`` as ``plan`` says, ``batch`` at a time (None: all at
    once; the samples are the same for any batch).  ``model_wrapper`` (model_fn -> model_fn)
    wraps the model after classifier-free guidance (runs/guided.py); ``on_step`` gets each step's
    record of each batch; ``decode=False`` keeps a latent run's samples as latents.  Inside
    shared_draws.shared_draws(run) an unwrapped draw is shared among the processes (the same samples)."""
    shared = SHARED_DRAWS.get()
    if shared is not None and shared[0] is run and model_wrapper is None:
        return shared[1](plan, on_step=on_step, decode=decode, batch=batch)
    return sample_range(run, plan, 0, plan.n, model_wrapper=model_wrapper, on_step=on_step, decode=decode, batch=batch)


def sample_range(run: Run, plan: SamplingPlan, start: int, stop: int, *, model_wrapper=None, on_step=None, decode: bool = True,
                 batch: int | None = None) -> Drawn:  # fmt: skip
    """Samples start, ..., stop - 1 of ``plan``: those rows of ``sample(run, plan)``'s draw, to
    the bit, so that processes can each draw a range and one concatenates them (a classifier of
    classifier guidance and a latent run's decoder may round a row differently in another batch:
    samplers/fixed_shape.py).  Options as ``sample``'s; ``evaluations`` is per sample."""
    if not 0 <= start < stop <= plan.n:
        raise PlanError("batch", f"samples [{start}, {stop}): expected 0 <= start < stop <= n = {plan.n}")
    if model_wrapper is not None and plan.sampler in JUMP_SAMPLERS:
        # The guidance wrappers steer a denoiser of one time; a jump sampler calls another network.
        raise PlanError(
            "sampler", f"{plan.sampler} jumps with the run's own network, which gradient guidance cannot steer; "
            "give a sampler of the probability-flow ODE or chain (e.g. --sampler euler) or leave the guidance out"
        )  # fmt: skip
    guided = guided_model_fn(run, plan.guidance)
    xs, starts, evaluations = [], [], 0
    for a, b in batch_ranges(start, stop, batch):
        noise = SampleNoise(plan.seed, a, b - a)
        network = fixed_shape(guided, a, min(ROWS_PER_CALL, plan.n))  # the same arithmetic for a sample in any batch
        model_fn = CountingModel(with_noise(model_wrapper, network, noise) if model_wrapper is not None else network)
        x_T = noise.normal((b - a, *run.sample_shape), device=run.device)
        x0 = _solve(run, plan, model_fn, x_T, noise, on_step, slice(a, b))
        xs.append(run.to_data_units(x0) if decode else x0.float().cpu().numpy())
        starts.append(x_T)
        evaluations = model_fn.calls  # the same in every batch: a sample's evaluations
    return Drawn(np.concatenate(xs), torch.cat(starts), evaluations)


def denoiser(run: Run, plan: SamplingPlan, model_fn, *, clip: bool = True, rows: slice = slice(None)) -> Denoiser:
    """The model function read as a denoiser at the plan's labels (of the samples ``rows``) and
    clamp (``clip=False``: the network's own estimate, which the playground shows beside the
    clamped one)."""
    y = None if plan.labels is None else torch.as_tensor(plan.labels[rows], device=run.device)
    return Denoiser(model_fn, run.schedule, run.config.model.prediction, y, plan.clip_x0 if clip else None)


def _solve(run: Run, plan: SamplingPlan, model_fn, x_T: torch.Tensor, noise: SampleNoise, on_step, rows: slice) -> torch.Tensor:
    """The one call of the sampler on a batch: the plan's times and the sampler's own options."""
    sampler = SAMPLERS.get(plan.sampler) or JUMP_SAMPLERS[plan.sampler]
    return sampler(denoiser(run, plan, model_fn, rows=rows), x_T, plan.times, generator=noise, on_step=on_step, **plan.options)


def plan_from_options(run: Run, **options) -> SamplingPlan:
    """``plan_sampling`` with the Python API's defaults: no tuned grid unless asked (``tuned``),
    and ``label`` may also be an array of one class per sample (``labels``)."""
    options.setdefault("tuned", False)
    label = options.get("label")
    if isinstance(label, np.ndarray) and label.ndim == 1:
        options["labels"] = options.pop("label")
    return plan_sampling(run, **options)


def sample_points(
    run: Run, *, on_step=None, return_noise: bool = False, model_wrapper=None, decode: bool = True, batch: int | None = None, **options
):
    """Draw ``n`` points from a run with any sampler; returns an (n, D) array in data units.

    ``options`` are ``plan_sampling``'s (sampler, steps, grid: a grid's name or a list of times
    ending at 0, rho, eta, variance, n, seed, label, guidance, ...; defaults from the run's
    [sample] section); ``label`` may be a class (index or name), an array of n class indices, or
    None for every class in proportion (the order of ``class_labels(run, n)``).  With
    ``return_noise`` the starting x_T (model units) is returned too.  ``model_wrapper`` (model_fn
    -> model_fn) wraps the model after classifier-free guidance (runs/guided.py).  A latent run's
    samples are decoded to images (``decode=False``: the latents themselves).  ``batch``: samples
    drawn at a time (None: all at once; the samples are the same for any batch).
    """
    drawn = sample(run, plan_from_options(run, **options), model_wrapper=model_wrapper, on_step=on_step, decode=decode, batch=batch)
    return (drawn.x, drawn.x_T) if return_noise else drawn.x
