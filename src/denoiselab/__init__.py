"""denoiselab: diffusion models you can run, see and measure.

The pieces compose along the mathematics::

    schedule = make_schedule("cosine", T=1000)          # alpha, sigma, SNR at t = k / T and any t
    x_k = q_sample(schedule, x0, k, eps)                # forward process, closed form
    state = train(load_config("quick"), "runs/quick")   # eps-prediction training
    run = load_run("runs/quick")
    x = sample_points(run, sampler="dpm++2m", steps=20, n=2000)
"""

from ._lazy import lazy_exports

__version__ = "0.1.0"

# What ``import denoiselab`` offers, loaded on first use (PEP 562): the command line imports
# this package too, and `denoiselab --help` should not wait for torch.
_EXPORTS = {
    ".cnf": ("LogDensity", "likelihood"),
    ".config": ("Config", "ConfigError", "load_config"),
    ".forward_process": ("q_chain", "q_posterior", "q_sample", "q_step"),
    ".metrics": ("energy_distance", "point_metrics", "w2_exact"),
    ".runs": ("Run", "RunError", "SamplingPlan", "evaluate_run", "load_run", "plan_sampling", "render_figures", "sample", "sample_points"),
    ".samplers": ("SAMPLERS", "Denoiser", "sample_ddim", "sample_ddpm", "sample_dpmpp_2m", "sample_euler", "sample_heun", "time_grid"),
    ".schedules": ("Schedule", "flow_schedule", "make_schedule"),
    ".training": ("train",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
