"""denoiselab: diffusion models you can run, see and measure.

The pieces compose along the mathematics::

    schedule = make_schedule("cosine", T=1000)          # alpha, sigma, SNR at t = k / T and any t
    x_k = q_sample(schedule, x0, k, eps)                # forward process, closed form
    state = train(load_config("quick"), "runs/quick")   # eps-prediction training
    run = load_run("runs/quick")
    x = sample_points(run, sampler="dpm++2m", steps=20, n=2000)
"""

__version__ = "0.1.0"

from .config import Config, ConfigError, load_config  # noqa: E402
from .forward_process import q_chain, q_posterior, q_sample, q_step  # noqa: E402
from .metrics import energy_distance, point_metrics, w2_exact  # noqa: E402
from .runs import Run, RunError, evaluate_run, load_run, render_figures, sample_points  # noqa: E402
from .samplers import SAMPLERS, sample_ddim, sample_ddpm, sample_dpmpp_2m, sample_euler, sample_heun, time_grid  # noqa: E402
from .schedules import Schedule, flow_schedule, make_schedule  # noqa: E402
from .training import train  # noqa: E402

__all__ = [
    "SAMPLERS",
    "Config",
    "ConfigError",
    "Run",
    "RunError",
    "Schedule",
    "energy_distance",
    "evaluate_run",
    "flow_schedule",
    "load_config",
    "load_run",
    "make_schedule",
    "point_metrics",
    "q_chain",
    "q_posterior",
    "q_sample",
    "q_step",
    "render_figures",
    "sample_points",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "time_grid",
    "train",
    "w2_exact",
]
