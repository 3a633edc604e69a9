"""A run's figures: samples, the forward and reverse processes (GIF and strip), schedule, loss,
and a guidance sweep for conditional runs; image runs get grids of images instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..samplers import StepRecord
from .load import Run
from .plan import describe_draw
from .sampling import class_labels, plan_from_options, sample, sample_points


def records_to_frames(records: list[StepRecord], x_T: torch.Tensor, run: Run) -> list[tuple[float, np.ndarray]]:
    """Reverse-process snapshots [(t, points in data units)], from x_T to the final sample."""
    decode = run.to_data_units  # a latent run's steps are decoded to images
    frames = [(records[0].t if records else 1.0, decode(x_T))]
    frames += [(r.t_next, decode(r.x_next)) for r in records]
    return frames


def reverse_animation(run: Run, n: int, least_steps: int) -> tuple[list[tuple[float, np.ndarray]], str]:
    """The frames of the trajectory GIF and progression strip, and how they were sampled in words
    (plan.describe_draw).  They take at least ``least_steps`` steps of the run's sampler (as many as
    T allows), so that they show the process rather than a handful of jumps; where that is more
    than the run's own sample.steps, the words say so."""
    sc = run.config.sample
    if sc.sampler == "consistency":
        # Multistep consistency sampling noises again between its jumps (samplers/consistency.py):
        # more steps would draw fresh noise, not show a path, so the frames are the run's own jumps.
        least_steps = sc.steps
    plan = plan_from_options(run, n=n, steps=max(sc.steps, min(run.schedule.T, least_steps)))
    records: list[StepRecord] = []
    drawn = sample(run, plan, on_step=records.append)
    words = describe_draw(run, plan)
    if plan.steps != sc.steps:
        words += f" (samples.png: {sc.steps} steps)"
    return records_to_frames(records, drawn.x_T, run), words


# Steps at least in the reverse-process animations of point and of image runs.
POINT_ANIMATION_STEPS, IMAGE_ANIMATION_STEPS = 60, 40

# forward.png's last title line: why its axes differ from samples.png's.
_FORWARD_UNITS = "normalised units: the data centred, scaled to unit variance (samples.png: data units)"

# Guidance scales of a conditional run's guidance.png (seed 004's sweep).
GUIDANCE_SWEEP = (0.0, 1.0, 2.0, 4.0, 8.0)


def render_point_figures(run: Run, out_dir: Path, *, samples: np.ndarray | None = None) -> list[Path]:
    """Draw every figure of a point run (samples, forward, trajectory GIF, progression, schedule,
    loss; a guidance sweep for a conditional run, whose points are coloured by class throughout)."""
    from .. import viz  # matplotlib is imported only when figures are drawn

    sc = run.config.sample
    names = run.class_names or None
    n_gif = min(sc.n, 1000)
    frames, how = reverse_animation(run, n_gif, POINT_ANIMATION_STEPS)
    if samples is None:
        samples = sample_points(run)
    by_class = dict(labels=class_labels(run, len(samples)), data_labels=run.labels, class_names=names)
    frame_classes = dict(labels=class_labels(run, n_gif), class_names=names)
    written = [
        viz.plot_samples(run.data, samples, out_dir / "samples.png", title=_sample_title(run), units="data units", **by_class),
        # The forward process acts on the normalised data the model sees.
        viz.plot_forward(
            run.schedule, run.normalization.encode(run.data), out_dir / "forward.png",
            units="normalised units" if run.config.data.normalize else "data units",
            note=_FORWARD_UNITS if run.config.data.normalize else None,
        ),
        viz.save_trajectory_gif(frames, out_dir / "trajectory.gif", data=run.data, note=how, **frame_classes),
        viz.plot_progression(frames, out_dir / "progression.png", data=run.data, note=how, **frame_classes),
        viz.plot_schedule(run.schedule, out_dir / "schedule.png"),
    ]
    if run.num_classes:
        n = min(sc.n, 1000)
        sweep = {
            s: [sample_points(run, n=n, label=c, guidance=s) for c in range(run.num_classes)] for s in GUIDANCE_SWEEP
        }
        written.append(
            viz.plot_guidance_sweep_points(
                run.data, run.labels, sweep, out_dir / "guidance.png", class_names=run.class_names,
                title=f"Classifier-free guidance: {sc.sampler}, {sc.steps} steps, n = {n} per panel",
            )
        )  # fmt: skip
    if run.dim == 2:
        written += _flow_figures(run, frames, out_dir)
    losses = run.folder.read_losses()
    if len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
        written.append(render_loss_by_noise(run, out_dir / "loss-by-noise.png"))
    return written


# loss-by-noise.png: noise levels (equally spaced in log-SNR over the trained range) and the
# training points or images scored at each (a U-Net on 512 images x 40 levels takes 20 s on a
# CPU; 32 x 24 takes about 2 s and still draws the curve).
NOISE_LEVELS, NOISE_LEVEL_BATCH = 40, 512
IMAGE_NOISE_LEVELS, IMAGE_NOISE_LEVEL_BATCH = 24, 32


def render_loss_by_noise(run: Run, path: Path) -> Path:
    """The trained model's unweighted x0-error against log-SNR (objectives.x0_error_by_noise_level)
    over the levels training draws from, and the learned density of an importance-sampled run,
    read from its checkpoint."""
    from .. import viz
    from ..builders import objective_from
    from ..objectives import x0_error_by_noise_level

    schedule, cfg = run.schedule, run.config
    if schedule.is_chain:
        lo, hi = float(schedule.half_log_snr[-1]), float(schedule.half_log_snr[1])
    else:
        lo, hi = (float(schedule.half_log_snr_at(v)) for v in (1.0 - 1.0 / schedule.T, 1.0 / schedule.T))
    levels, batch = (IMAGE_NOISE_LEVELS, IMAGE_NOISE_LEVEL_BATCH) if run.is_image else (NOISE_LEVELS, NOISE_LEVEL_BATCH)
    lam = torch.linspace(hi, lo, levels, dtype=torch.float64)
    n = min(len(run.data), batch)
    x0 = torch.as_tensor(run.normalization.encode(run.data[:n]), dtype=torch.float32, device=run.device)
    y = None if run.labels is None else torch.as_tensor(run.labels[:n], device=run.device)
    generator = torch.Generator().manual_seed(cfg.sample.seed)
    mse = x0_error_by_noise_level(run.model_fn(), x0, schedule, cfg.model.prediction, lam, generator, y=y)
    density = None
    objective = objective_from(cfg, schedule)
    sampler = objective.new_time_sampler()
    stored = run.folder.checkpoint_section("importance.") if sampler is not None else None
    if stored is not None:  # the importance sampler's loss history, as training left it
        sampler.load_state_dict(stored)
        density = sampler.density()
    reference = float(((x0 - x0.mean(0)).double() ** 2).mean())
    return viz.plot_loss_by_noise(
        20.0 / np.log(10.0) * lam.numpy(), mse.numpy(), path, reference=reference, density=density,
        title=f"{_method_name(run)}: {objective.describe}",
        note=f"{n} training {'images' if run.is_image else 'points'} per level, fresh noise, no weighting",
    )  # fmt: skip


# Paths drawn in paths.png and by render_path_comparison (a few hundred stay legible).
PATHS_SHOWN = 300


def _flow_figures(run: Run, frames, out_dir: Path) -> list[Path]:
    """paths.png (the reverse process of PATHS_SHOWN points, with how straight the paths are) and
    velocity.png (the learned velocity field at a few t) of a 2-D point run."""
    from .. import viz

    sc = run.config.sample
    shown = [(t, x[:PATHS_SHOWN]) for t, x in frames]
    steps = len(frames) - 1
    paths = viz.plot_sampling_paths(
        {f"{_method_name(run)}, {sc.sampler}": shown}, out_dir / "paths.png", data=run.data,
        title=f"Sampling paths: {len(shown[0][1])} points, {steps} steps, noise (t = 1) → data (t = 0)",
    )  # fmt: skip
    field = viz.plot_velocity_field(
        run.model_fn(), run.schedule, out_dir / "velocity.png", prediction=run.config.model.prediction,
        lims=_field_limits(run), data=run.data, normalization=run.normalization, device=run.device,
        clip_x0=run.info.get("x0_bound") if sc.clip_x0 else None,
        title=f"Learned velocity of the probability-flow ODE: {_method_name(run)}",
    )  # fmt: skip
    return [paths, field]


def _field_limits(run: Run):
    """The data's box widened to 2 standard deviations of the noise, in data units."""
    from .. import viz

    box = run.normalization.decode(np.array([[-2.0] * run.dim, [2.0] * run.dim], dtype=np.float32))
    return viz.compute_limits(run.data, box, margin=0.02)


def _method_name(run: Run) -> str:
    """"DDPM (eps)", "rectified flow", "OT-CFM", "reflow ...", "MeanFlow": what the run was trained as."""
    cfg = run.config
    one_step = {"meanflow": "MeanFlow", "shortcut": "shortcut model", "consistency-distillation": "consistency model",
                "consistency-training": "consistency model", "progressive": "progressive student"}.get(cfg.train.objective)  # fmt: skip
    if one_step is not None:
        return one_step
    if cfg.schedule.kind != "flow":
        return f"DDPM ({cfg.model.prediction}, {cfg.schedule.kind})"
    return {"ot": "OT-CFM", "reflow": "reflow (rectified flow on a teacher's pairs)"}.get(cfg.train.coupling, "rectified flow")


def render_path_comparison(runs: list[Run], out_path: Path, *, n: int = PATHS_SHOWN, seed: int = 0, **sample_options) -> Path:
    """Sampling paths of several 2-D point runs side by side, each from the same noise with its
    own sampler and steps (or those in ``sample_options``): diffusion against flow against OT-CFM."""
    from .. import viz

    panels = {}
    for run in runs:
        if run.dim != 2:
            raise ValueError(f"{run.path}: paths are drawn for 2-D point runs only (this one has shape {run.sample_shape})")
        records: list[StepRecord] = []
        _, x_T = sample_points(run, n=n, seed=seed, on_step=records.append, return_noise=True, **sample_options)
        sampler = sample_options.get("sampler") or run.config.sample.sampler
        name = f"{_method_name(run)}, {sampler}"
        while name in panels:
            name += "'"
        panels[name] = records_to_frames(records, x_T, run)
    steps = {len(f) - 1 for f in panels.values()}
    what = f"{steps.pop()} steps" if len(steps) == 1 else "steps as each run samples"
    return viz.plot_sampling_paths(
        panels, out_path, data=runs[0].data,
        title=f"Sampling paths: {n} points from the same noise, {what}, noise (t = 1) → data (t = 0)",
    )  # fmt: skip


# Images per class in an image run's sample grid, GIF and guidance sweep.
GRID_PER_CLASS = 10


def render_image_figures(run: Run, out_dir: Path) -> list[Path]:
    """An image run's figures: sample grid (a row per class), reverse-process GIF and strip, one
    image's forward process with SNR, linear vs cosine on that image, schedule, loss, and a
    guidance sweep for a conditional run."""
    from .. import viz
    from ..schedules import make_schedule

    names = run.class_names or None
    K = max(run.num_classes, 1)
    n_grid = GRID_PER_CLASS * K if run.num_classes else 64
    frames, how = reverse_animation(run, n_grid, IMAGE_ANIMATION_STEPS)
    labels = class_labels(run, n_grid)
    # The grid has GRID_PER_CLASS of every class (metrics' samples are a proportional mix).
    samples = sample_points(run, n=n_grid)
    title = f"{run.info.get('data', run.config.data.name)}: {default_words(run, n_grid)}".replace("; ", "\n")
    image = run.data[:1]
    s = run.config.schedule
    compare = {k: make_schedule(k, s.T, s.beta_start, s.beta_end, s.scale_with_T) for k in ("linear", "cosine")}
    written = [
        viz.plot_image_grid(samples, out_dir / "samples.png", labels=labels, class_names=names, title=title),
        viz.save_grid_gif(frames, out_dir / "trajectory.gif", labels=labels, class_names=names, title="Reverse process: noise → images", note=how),
        viz.plot_image_progression(one_per_class(frames, labels), out_dir / "progression.png", max_images=K if run.num_classes else 8, note=how),
        viz.plot_forward_strip(run.schedule, image, out_dir / "forward.png"),
        viz.plot_schedule_compare_images(compare, image, out_dir / "schedules-compared.png"),
        viz.plot_schedule(run.schedule, out_dir / "schedule.png"),
    ]  # fmt: skip
    if run.num_classes:
        sweep = {g: sample_points(run, n=n_grid, guidance=g) for g in GUIDANCE_SWEEP}
        written.append(viz.plot_guidance_sweep(sweep, out_dir / "guidance.png", labels=labels, class_names=names))
    losses = run.folder.read_losses()
    if len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
        written.append(render_loss_by_noise(run, out_dir / "loss-by-noise.png"))
    return written


def one_per_class(frames, labels: np.ndarray | None):
    """Reverse-process frames cut to the first image of each class (all images when unlabelled)."""
    if labels is None:
        return frames
    idx = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    return [(t, x[idx]) for t, x in frames]


def default_words(run: Run, n: int) -> str:
    """How ``n`` samples with the run's [sample] defaults are drawn, in plan.describe_draw's words."""
    return describe_draw(run, plan_from_options(run, n=n))


def _sample_title(run: Run) -> str:
    sc = run.config.sample
    data = run.info.get("data", run.config.data.name)
    return f"{data}, {sc.n} samples: {default_words(run, sc.n)}".replace("; ", "\n")
