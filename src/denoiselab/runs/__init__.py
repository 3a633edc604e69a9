"""Run folders: their files (folder.py: ``RunFolder``), loading one (load.py), planning what to
sample (plan.py: ``SamplingPlan``), sampling it (sampling.py), measuring it (evaluation.py),
drawing its figures (figures.py), autoencoder and latent runs (latent.py), and completing a run
of any kind (complete.py).  Nothing here imports the training loop.

The names below are loaded on first use (PEP 562), so that ``denoiselab.runs.folder`` (which the
command line imports to check a run folder) comes without torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    ".complete": ("complete_run", "evaluate_run", "render_figures", "write_metrics"),
    ".evaluation": (
        "RunMetrics",
        "evaluate_classes",
        "evaluate_images",
        "evaluate_points",
        "floors_in_background",
        "held_out_images",
        "image_classifier",
        "reference_draws",
        "run_source",
    ),
    ".figures": ("GRID_PER_CLASS", "GUIDANCE_SWEEP", "records_to_frames", "render_image_figures", "render_path_comparison"),
    ".folder": (
        "CHECKPOINT",
        "HELD_OUT",
        "HELD_OUT_LABELS",
        "LABELS",
        "WEIGHTS",
        "RunBusyError",
        "RunError",
        "RunFolder",
        "RunFolderError",
        "read_losses",
    ),
    ".load": ("Run", "load_run"),
    ".plan": ("PlanError", "SamplingError", "SamplingPlan", "check_samples", "class_labels", "describe_draw", "plan_sampling", "resolve_label", "tuned_grid_list"),
    ".sampling": ("Drawn", "denoiser", "guided_model_fn", "plan_from_options", "sample", "sample_points", "sample_range"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
