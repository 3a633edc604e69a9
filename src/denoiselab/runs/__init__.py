"""Run folders: load one (folder.py), sample from it (sampling.py), measure it (evaluation.py),
draw its figures (figures.py).  Nothing here imports the training loop."""

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
from .sampling import SamplingError, class_labels, guided_model_fn, resolve_label, sample_points

__all__ = [
    "CHECKPOINT",
    "GRID_PER_CLASS",
    "GUIDANCE_SWEEP",
    "HELD_OUT",
    "HELD_OUT_LABELS",
    "LABELS",
    "WEIGHTS",
    "ImageRunMetrics",
    "Run",
    "RunError",
    "SamplingError",
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
    "read_losses",
    "records_to_frames",
    "reference_draws",
    "render_figures",
    "render_image_figures",
    "render_path_comparison",
    "resolve_label",
    "run_source",
    "sample_points",
    "write_metrics",
    "write_run_info",
]
