"""Sampling a run in data units: labels, classifier-free guidance, any sampler on any grid.

Conditional runs: every sampling function takes ``label`` (a class index or name; None samples
every class in proportion to the training set) and ``guidance`` (the classifier-free guidance
scale, guidance.classifier_free; the run's sample.guidance by default).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.sources import proportional_counts
from ..errors import InputError
from ..guidance import classifier_free
from ..samplers import SAMPLERS, CountingModel, time_grid
from .load import Run


class SamplingError(InputError):
    """A request this run cannot serve (a label it does not have, guidance without labels)."""


def resolve_label(run: Run, label) -> int:
    """A class index from an index or a class name (a name wins over a number-like string)."""
    names, given = run.class_names, label
    if run.num_classes == 0:
        raise SamplingError(f"label: {run.path} is unconditional (trained without classes), so it takes no label")
    if isinstance(label, str):
        if label in names:
            return names.index(label)
        try:
            label = int(label)
        except ValueError:
            raise SamplingError(f"label: unknown class {label!r}; expected one of {', '.join(names)} or 0..{len(names) - 1}") from None
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < run.num_classes:
        return int(label)
    raise SamplingError(f"label: {given!r} is out of range; this run has classes 0..{run.num_classes - 1} ({', '.join(names)})")


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


def guided_model_fn(run: Run, guidance: float | None = None):
    """The run's model function, wrapped in classifier-free guidance on a conditional run."""
    if run.num_classes == 0:
        if guidance is not None:
            raise SamplingError(f"guidance: {run.path} is unconditional (trained without classes), so it has nothing to guide")
        return run.model_fn()
    scale = run.config.sample.guidance if guidance is None else guidance
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale >= 0):
        raise SamplingError(f"guidance: expected a number >= 0, got {scale!r}")
    return classifier_free(run.model_fn(), float(scale))


def sample_points(
    run: Run,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    on_step=None,
    return_noise: bool = False,
    label=None,
    guidance: float | None = None,
    grid=None,
    counter: list | None = None,
    model_wrapper=None,
    decode: bool = True,
    **options,
):
    """Draw ``n`` points from a run with any sampler; returns an (n, D) array in data units.

    Defaults come from the run's [sample] section.  ``grid`` (a list of times ending at 0)
    replaces ``steps`` and the named grid.  ``options`` go to the sampler (eta, variance,
    spacing).  With ``return_noise`` the starting x_T (model units) is returned too; a list
    passed as ``counter`` gets the number of model evaluations appended.  ``model_wrapper``
    (model_fn -> model_fn) wraps the model after classifier-free guidance (runs/guided.py).
    Conditional runs: ``label`` is a class (index or name), an array of n class indices, or
    None for every class in proportion (the order of ``class_labels(run, n)``).
    A latent run's samples are decoded to images (``decode=False``: the latents themselves).
    """
    if run.is_autoencoder:
        raise SamplingError(f"{run.path} is an autoencoder: it encodes and decodes images but samples nothing; train a latent run on it (latent.autoencoder = \"{run.path}\")")
    sc = run.config.sample
    sampler = sampler or sc.sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    steps = sc.steps if steps is None else steps
    rho = options.pop("rho", sc.rho)
    if grid is None and options.get("spacing", sc.spacing) == "karras":
        grid = time_grid(run.schedule, steps, "karras", rho=rho)
    n = sc.n if n is None else n
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seed = sc.seed if seed is None else seed
    options.setdefault("spacing", sc.spacing)
    if sampler == "ddim":
        options.setdefault("eta", sc.eta)
    if sampler == "ddpm":
        options.setdefault("variance", sc.variance)
    if sc.clip_x0:
        # eps-prediction reads x0 = (x - sigma eps) / alpha, which near alpha = 0 (the first
        # steps, especially of a cosine schedule) multiplies small errors of eps by sigma / alpha
        # (> 10^4 at the cosine schedule's last step); clamping to the data's box removes those
        # far outliers and leaves every estimate inside the box unchanged.
        options.setdefault("clip_x0", run.info.get("x0_bound"))
    if isinstance(label, np.ndarray) and label.ndim == 1:
        if run.num_classes == 0 or len(label) != n or not ((label >= 0) & (label < run.num_classes)).all():
            raise SamplingError(f"label: expected {n} class indices in 0..{max(run.num_classes - 1, 0)}")
        labels = label.astype(np.int64)
    else:
        labels = class_labels(run, n, label)
    model_fn = guided_model_fn(run, guidance)
    model_fn = CountingModel(model_wrapper(model_fn) if model_wrapper is not None else model_fn)
    y = None if labels is None else torch.as_tensor(labels, device=run.device)
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, *run.sample_shape, generator=gen).to(run.device)
    x0 = SAMPLERS[sampler](
        model_fn,
        x_T,
        run.schedule,
        steps if grid is None else grid,
        y=y,
        prediction=run.config.model.prediction,
        generator=gen if run.device.type == "cpu" else None,
        on_step=on_step,
        **options,
    )
    if counter is not None:
        counter.append(model_fn.calls)
    out = run.to_data_units(x0) if decode else x0.float().cpu().numpy()
    return (out, x_T) if return_noise else out
