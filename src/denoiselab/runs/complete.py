"""A run of any kind measured, drawn and completed: the one place that tells point, image, latent
and autoencoder runs apart for their metrics (``evaluate_run``) and figures (``render_figures``),
and ``complete_run``, which the CLI's ``train`` and the playground's training jobs both end with.

It sits above evaluation.py (point and image metrics), figures.py (point and image figures) and
latent.py (autoencoder and latent runs, built on the other two).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import ClassMetrics, PointMetrics
from .evaluation import Progress, RunMetrics, evaluate_classes, evaluate_images, evaluate_points
from .figures import render_image_figures, render_point_figures
from .latent import evaluate_latent_run, render_latent_figures, store_latent_scale
from .likelihood import WithDensity, with_density
from .load import Run, load_run
from .plan import SamplingPlan
from .sampling import plan_from_options

Metrics = PointMetrics | ClassMetrics | RunMetrics | WithDensity


def evaluate_run(
    run: Run,
    plan: SamplingPlan | None = None,
    *,
    repeats: int = 8,
    progress: Progress | None = None,
    density: bool = True,
    likelihood: bool = False,
    batch: int | None = None,
    **plan_options,
) -> tuple[Metrics, np.ndarray]:
    """The run's metrics on the samples of ``plan``, and the first sample set.  Without a plan,
    one is made of ``plan_options`` (sampling.plan_from_options: sampler, steps, grid, n, seed,
    label, guidance, ...).

    A point run: W2 and energy distance of ``repeats`` sample sets (seeds plan.seed,
    plan.seed + 1, ...) against fresh reference draws, beside the floor between those draws
    (metrics.point_metrics).  A conditional point run gets ClassMetrics: each class (or only the
    plan's label) against its own reference draws, the proportional mixture against the mixture,
    and label accuracy.  An image run: class accuracy and Frechet distance
    (evaluation.evaluate_images); an autoencoder (which samples nothing) or a latent run: its
    reconstructions beside them (latent.evaluate_latent_run).  A 2-D point run also gets the
    data's entropy where its density is known (``density``), and with ``likelihood`` the model's
    NLL of fresh points beside it (likelihood.with_density; not by default: an ODE solve a point,
    hundreds of model evaluations).

    ``progress(done, total, now)`` hears of each unit of work (evaluation.Progress).  ``batch``:
    samples drawn at a time (None: all at once; the samples are the same for any batch)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if run.is_autoencoder:
        seed = plan_options.pop("seed", None)
        return evaluate_latent_run(run, seed=run.config.sample.seed if seed is None else seed, progress=progress, **plan_options)
    plan = plan_from_options(run, **plan_options) if plan is None else plan
    if run.is_latent:
        options = {"sampler": plan.sampler, "grid": plan.times, "n": plan.n, "batch": batch, **plan.options}
        return evaluate_latent_run(run, seed=plan.seed, label=plan.label, guidance=plan.guidance, progress=progress, **options)
    if run.is_image:
        return evaluate_images(run, plan, progress=progress, batch=batch)
    evaluate = evaluate_classes if run.num_classes else evaluate_points
    metrics, first = evaluate(run, plan, repeats=repeats, progress=progress, batch=batch)
    if (density or likelihood) and run.sample_shape == (2,):
        metrics = with_density(run, metrics, label=plan.label, seed=plan.seed, likelihood=likelihood)
    return metrics, first


def render_figures(run: Run, out_dir: Path | None = None, *, samples: np.ndarray | None = None) -> list[Path]:
    """Draw every figure of a run into ``out_dir`` (default: the run folder)."""
    out_dir = Path(out_dir or run.path)
    if run.is_latent or run.is_autoencoder:
        return render_latent_figures(run, out_dir)
    if run.is_image:
        return render_image_figures(run, out_dir)  # its grid has every class, not the metrics' mix
    return render_point_figures(run, out_dir, samples=samples)


def write_metrics(run: Run, metrics: Metrics, extra: dict | None = None) -> Path:
    """The metrics with the sampling settings they were measured with, into the run folder (an
    autoencoder samples nothing: its reconstructions have only the seed of their draws)."""
    sc = run.config.sample
    sampling = {} if run.is_autoencoder else {"sampler": sc.sampler, "steps": sc.steps, "spacing": sc.grid}
    return run.folder.write_metrics({**sampling, "seed": sc.seed, **metrics.to_dict(), **(extra or {})})


def measured_words(run: Run) -> str:
    """What complete_run's metrics were measured on: "dpm++2m, 20 steps", or an autoencoder's
    "reconstructions of its held-out images" (it samples nothing)."""
    if run.is_autoencoder:
        return "reconstructions of its held-out images"
    sc = run.config.sample
    return f"{sc.sampler}, {sc.steps} step{'' if sc.steps == 1 else 's'}"


# Sample sets that complete_run measures (`denoiselab evaluate` takes 8 by default): the
# ratios to the floor move by a few hundredths against 8 sets, and the metrics then cost a
# quarter as much.  The reference draws and their floor are evaluate's own (cached).
COMPLETE_RUN_REPEATS = 2


def complete_run(run_dir: str | Path, log=print, *, figures: bool = True) -> tuple[Run, Metrics]:
    """After training: measure the run, draw its figures (unless ``figures`` is False: `denoiselab
    plot RUN` draws them later) and mark it complete.

    The metrics (COMPLETE_RUN_REPEATS sample sets; scipy's assignment solver and torch's
    distances release the GIL) are measured on a second thread while this one draws the
    figures, which hold it (matplotlib): on two cores the two take about as long as the
    longer of them."""
    from concurrent.futures import ThreadPoolExecutor

    run = load_run(run_dir)
    if run.is_autoencoder:  # measured and stored before anything uses its latents
        store_latent_scale(run)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics") as pool:
        measuring = pool.submit(evaluate_run, run, repeats=COMPLETE_RUN_REPEATS, density=False)
        written = render_figures(run) if figures else []
        metrics, _ = measuring.result()
    write_metrics(run, metrics)
    for path in written:
        log(f"wrote {path}")
    run.folder.mark_complete(run.info)
    log(f"metrics ({measured_words(run)}): {metrics.summary()}")
    return run, metrics
