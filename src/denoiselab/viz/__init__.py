"""Figures for denoiselab: point sets, the forward and reverse processes, schedules, the loss,
sampling paths and the probability-flow velocity field.

All functions take NumPy arrays in data units ((N, 1) points are drawn as density
histograms, (N, 2) points as scatter plots), write their file atomically and return its path.
Matplotlib is used through its Agg canvas only, so importing this never opens a window or
changes the backend a notebook has chosen.  Colours: training data blue, generated orange.
"""

from .flow import (
    path_straightness,
    plot_sampling_paths,
    plot_velocity_field,
    velocity_arrows,
)
from .frames import frames_from_records, pick_frames
from .images import (
    as_images,
    compare_panels,
    forward_captions,
    image_grid,
    noised_images,
    plot_forward_strip,
    plot_guidance_sweep,
    plot_image_grid,
    plot_image_progression,
    plot_schedule_compare_images,
    rows_by_class,
    save_grid_gif,
)
from .points import (
    default_forward_ks,
    plot_forward,
    plot_guidance_sweep_points,
    plot_progression,
    plot_samples,
    save_trajectory_gif,
)
from .schedules import moving_average, plot_loss, plot_loss_by_noise, plot_schedule, plot_schedules_compare
from .style import DATA_COLOR, SAMPLE_COLOR, compute_limits

__all__ = [
    "DATA_COLOR",
    "SAMPLE_COLOR",
    "as_images",
    "compare_panels",
    "compute_limits",
    "default_forward_ks",
    "forward_captions",
    "frames_from_records",
    "image_grid",
    "moving_average",
    "noised_images",
    "path_straightness",
    "pick_frames",
    "plot_forward",
    "plot_forward_strip",
    "plot_guidance_sweep",
    "plot_guidance_sweep_points",
    "plot_image_grid",
    "plot_image_progression",
    "plot_loss",
    "plot_loss_by_noise",
    "plot_progression",
    "plot_sampling_paths",
    "plot_samples",
    "plot_schedule",
    "plot_schedule_compare_images",
    "plot_schedules_compare",
    "plot_velocity_field",
    "rows_by_class",
    "save_grid_gif",
    "save_trajectory_gif",
    "velocity_arrows",
]
