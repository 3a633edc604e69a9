"""Sampling a run in data units: a plan (plan.py) -> guidance wrappers -> one call of the sampler.

Conditional runs: the plan holds the class of each sample (one ``label`` for all, one per sample,
or every class in proportion) and the classifier-free guidance scale (guidance.classifier_free;
the run's sample.guidance by default).  Gradient guidance (runs/guided.py) wraps the model
function after classifier-free guidance, through ``model_wrapper``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..guidance import classifier_free
from ..samplers import JUMP_SAMPLERS, SAMPLERS, CountingModel, Denoiser
from .load import Run
from .plan import PlanError, SamplingError, SamplingPlan, class_labels, guidance_scale, plan_sampling, resolve_label

__all__ = [
    "Drawn",
    "PlanError",
    "SamplingError",
    "class_labels",
    "denoiser",
    "guided_model_fn",
    "plan_from_options",
    "resolve_label",
    "sample",
    "sample_points",
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


def sample(run: Run, plan: SamplingPlan, *, model_wrapper=None, on_step=None, decode: bool = True) -> Drawn:
    """Draw ``plan.n`` samples of ``run`` as ``plan`` says.  ``model_wrapper`` (model_fn ->
    model_fn) wraps the model after classifier-free guidance (runs/guided.py); ``on_step`` gets
    each step's record; ``decode=False`` keeps a latent run's samples as latents."""
    if model_wrapper is not None and plan.sampler in JUMP_SAMPLERS:
        # The guidance wrappers steer a denoiser of one time; a jump sampler calls another network.
        raise PlanError(
            "sampler", f"{plan.sampler} jumps with the run's own network, which gradient guidance cannot steer; "
            "give a sampler of the probability-flow ODE or chain (e.g. --sampler euler) or leave the guidance out"
        )  # fmt: skip
    model_fn = guided_model_fn(run, plan.guidance)
    model_fn = CountingModel(model_wrapper(model_fn) if model_wrapper is not None else model_fn)
    generator = torch.Generator().manual_seed(plan.seed)
    x_T = torch.randn(plan.n, *run.sample_shape, generator=generator).to(run.device)
    x0 = _solve(run, plan, model_fn, x_T, generator if run.device.type == "cpu" else None, on_step)
    x = run.to_data_units(x0) if decode else x0.float().cpu().numpy()
    return Drawn(x, x_T, model_fn.calls)


def denoiser(run: Run, plan: SamplingPlan, model_fn, *, clip: bool = True) -> Denoiser:
    """The model function read as a denoiser at the plan's labels and clamp (``clip=False``:
    the network's own estimate, which the playground shows beside the clamped one)."""
    y = None if plan.labels is None else torch.as_tensor(plan.labels, device=run.device)
    return Denoiser(model_fn, run.schedule, run.config.model.prediction, y, plan.clip_x0 if clip else None)


def _solve(run: Run, plan: SamplingPlan, model_fn, x_T: torch.Tensor, generator, on_step) -> torch.Tensor:
    """The one call of the sampler: the plan's times and the sampler's own options."""
    sampler = SAMPLERS.get(plan.sampler) or JUMP_SAMPLERS[plan.sampler]
    return sampler(denoiser(run, plan, model_fn), x_T, plan.times, generator=generator, on_step=on_step, **plan.options)


def plan_from_options(run: Run, **options) -> SamplingPlan:
    """``plan_sampling`` with the Python API's defaults: no tuned grid unless asked (``tuned``),
    and ``label`` may also be an array of one class per sample (``labels``)."""
    options.setdefault("tuned", False)
    label = options.get("label")
    if isinstance(label, np.ndarray) and label.ndim == 1:
        options["labels"] = options.pop("label")
    return plan_sampling(run, **options)


def sample_points(
    run: Run, *, on_step=None, return_noise: bool = False, model_wrapper=None, decode: bool = True, **options
):
    """Draw ``n`` points from a run with any sampler; returns an (n, D) array in data units.

    ``options`` are ``plan_sampling``'s (sampler, steps, grid: a grid's name or a list of times
    ending at 0, rho, eta, variance, n, seed, label, guidance, ...; defaults from the run's
    [sample] section); ``label`` may be a class (index or name), an array of n class indices, or
    None for every class in proportion (the order of ``class_labels(run, n)``).  With
    ``return_noise`` the starting x_T (model units) is returned too.  ``model_wrapper`` (model_fn
    -> model_fn) wraps the model after classifier-free guidance (runs/guided.py).  A latent run's
    samples are decoded to images (``decode=False``: the latents themselves).
    """
    drawn = sample(run, plan_from_options(run, **options), model_wrapper=model_wrapper, on_step=on_step, decode=decode)
    return (drawn.x, drawn.x_T) if return_noise else drawn.x
