"""Run folders: load one (folder.py), plan what to sample (plan.py), sample it (sampling.py),
measure it (evaluation.py), draw its figures (figures.py).  Nothing here imports the training
loop."""

from .evaluation import (
    ImageRunMetrics,
    complete_run,
    evaluate_classes,
    evaluate_images,
    evaluate_run,
    floors_in_background,
    held_out_images,
    image_classifier,
    reference_draws,
    run_source,
    write_metrics,
)
from .figures import GRID_PER_CLASS, GUIDANCE_SWEEP, records_to_frames, render_figures, render_image_figures, render_path_comparison
from .folder import CHECKPOINT, HELD_OUT, HELD_OUT_LABELS, LABELS, WEIGHTS, Run, RunError, load_run, read_losses, write_run_info
from .plan import PlanError, SamplingPlan, plan_sampling, tuned_grid_list
from .sampling import Drawn, SamplingError, class_labels, guided_model_fn, plan_from_options, resolve_label, sample, sample_points

__all__ = [
    "CHECKPOINT",
    "GRID_PER_CLASS",
    "GUIDANCE_SWEEP",
    "HELD_OUT",
    "HELD_OUT_LABELS",
    "LABELS",
    "WEIGHTS",
    "Drawn",
    "ImageRunMetrics",
    "PlanError",
    "Run",
    "RunError",
    "SamplingError",
    "SamplingPlan",
    "class_labels",
    "complete_run",
    "evaluate_classes",
    "evaluate_images",
    "evaluate_run",
    "floors_in_background",
    "guided_model_fn",
    "held_out_images",
    "image_classifier",
    "load_run",
    "plan_from_options",
    "plan_sampling",
    "read_losses",
    "records_to_frames",
    "reference_draws",
    "render_figures",
    "render_image_figures",
    "render_path_comparison",
    "resolve_label",
    "run_source",
    "sample",
    "sample_points",
    "tuned_grid_list",
    "write_metrics",
    "write_run_info",
]
