"""The names that recipes and the command line accept, in a module that imports nothing heavy:
`denoiselab --help`, a bad option and a bad recipe key are answered without loading torch.

Each name list is defined here once; the module that implements the choices imports it from
here (and a test checks that SAMPLER_NAMES are the keys of samplers.SAMPLERS)."""

from __future__ import annotations

SAMPLER_NAMES = ("ddpm", "ddim", "dpm++2m", "dpm++3m", "dpm++2s", "unipc", "ipndm", "euler", "heun", "edm-heun")  # samplers.SAMPLERS
GRIDS = ("trailing", "leading", "linspace", "logsnr", "karras", "time-uniform")  # samplers/grids.py
TUNING_CALLS = 1200  # tuning.tune_grid's search budget in sampler runs, tune-steps' --max-calls (BENCHMARKS.md, "The tuning budget")
KARRAS_RHO = 7.0  # Karras et al. 2022, Sec. 3: rho = 7 spends steps near the data
VARIANCES = ("small", "large")  # samplers/ddpm.py: the reverse variance
SCHEDULE_KINDS = ("linear", "cosine", "quadratic", "sigmoid")  # the DDPM chains (schedules.py)
ALL_SCHEDULE_KINDS = SCHEDULE_KINDS + ("flow",)
PREDICTIONS = ("eps", "x0", "v", "velocity")  # prediction.py
TEXT_CONDITIONINGS = ("cross-attention", "pooled")  # models/unet.py: how a text-to-image U-Net reads its caption
TIMESTEP_SAMPLING = ("uniform", "logsnr", "logit-normal", "edm", "importance")  # objectives.py, importance.py
WEIGHTINGS = ("none", "p2", "min-snr", "edm", "sigmoid", "snr+1", "likelihood")  # weighting.py
PRECONDITIONINGS = ("none", "edm")  # models/preconditioning.py
PRECISIONS = ("fp32", "bf16", "fp16")  # training/step.py: the loss under torch.autocast (mixed precision)
COUPLINGS = ("independent", "ot", "reflow")  # objectives.py; reflow: the fixed pairs of `denoiselab distill` (distill.py)
OBJECTIVES = ("denoising", "meanflow", "shortcut", "consistency-distillation", "consistency-training", "progressive")  # objectives.py, meanflow.py, shortcut.py, consistency.py, progressive.py
INTERVAL_OBJECTIVES = ("meanflow", "shortcut")  # a network of two times u(z, r, t), sampled by the meanflow sampler
# samplers.JUMP_SAMPLERS: each answered only by the models trained for it: meanflow calls a network of two times
# (INTERVAL_OBJECTIVES), consistency a consistency function (CONSISTENCY_OBJECTIVES)
JUMP_SAMPLER_NAMES = ("meanflow", "consistency")
# consistency.py: a consistency function f(x_t, t) (a clean estimate with the boundary condition built in), sampled by
# multistep consistency sampling (samplers/consistency.py); distillation needs a teacher run (train.teacher)
CONSISTENCY_OBJECTIVES = ("consistency-distillation", "consistency-training")
TEACHER_OBJECTIVES = ("consistency-distillation", "progressive")  # they learn from a teacher run named by train.teacher
POINT_ARCHITECTURES = ("residual-mlp", "simple-mlp")  # models/
AUTOENCODER = "autoencoder"  # latent diffusion's first stage (models/autoencoder.py)
IMAGE_ARCHITECTURES = ("unet", AUTOENCODER)
ARCHITECTURES = POINT_ARCHITECTURES + IMAGE_ARCHITECTURES
# sample / evaluate --batch for image runs when none is given: samples drawn at a time (point runs: all at once);
# the samples are the same for any batch (samplers/noise.py), so this only bounds the memory of a draw
IMAGE_SAMPLE_BATCH = 256
