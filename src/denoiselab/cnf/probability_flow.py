"""log p(x) of a diffusion or flow model: its probability-flow ODE as a continuous normalising flow.

The probability-flow ODE (Song et al. 2021, Sec. 4.3 and App. D.2) moves the data distribution
p_0 into the noise distribution p_1 along a deterministic flow, so the instantaneous change of
variables of a continuous normalising flow (Chen et al. 2018, Theorem 1; FFJORD, Grathwohl et
al. 2019, Eq. 4) gives the density of every point:

    d z / d tau = u(z, tau),     d log p(z(tau)) / d tau = -div u(z(tau), tau),

    log p_0(z(0)) = log p_1(z(1)) + int_0^1 div u(z(tau), tau) d tau.

Direction: the solve starts at the data point (tau = 0) and runs to the noise end, where the
prior's log-density is read, and the divergence integral is ADDED.  (Starting from noise, or
subtracting it, is the classic failure: about 31 bits/dim on CIFAR-10, openai/consistency_models
issue 12; tests/test_likelihood.py pins the sign against closed forms.)

Coordinates.  The ODE is written on the straight flow path, as samplers/ode.py writes it: with
tau = sigma / (alpha + sigma) and z = x_t / (alpha + sigma), z = (1 - tau) x0 + tau eps for every
schedule, and its velocity is u = E[eps - x0 | z] = eps_hat - x0_hat (the DDIM ODE, Song et al.
2021a, Eq. 14, rescaled).  u stays finite at the flow path's t = 1 (alpha = 0) for a model that
predicts velocity, x0 or v.  The change of coordinates is a scaling: x_t = (alpha + sigma) z adds
D log(alpha + sigma) at either end.

The ends.  The solve starts where sigma / alpha = 1e-5, not at sigma = 0 (score_sde's eps = 1e-5,
Song et al. 2021, App. D.2): at sigma = 0 the closed-form denoisers divide 0 by 0, and no network
was trained there.  The point x is read as x_0, placed at alpha x there (x_t = alpha x_0 +
sigma eps), and D log alpha added, so the density found is that of the data convolved with
N(0, (sigma / alpha)^2): a change of order D (sigma / alpha)^2 / (2 s^2) nats for data of noise
scale s, 1e-8 for s = 0.1 (in model units).  Where the model cannot be read at all
(prediction.resolve divides by zero) the solve stays further away:
  - eps prediction where alpha = 0 (the flow path's t = 1): it ends at alpha = 1e-3 (t = 0.999);
  - x0 prediction, whose eps = (x - alpha x0) / sigma magnifies the network's error by
    1 / sigma: it starts at sigma / alpha = 1e-3 (1e-4 nats for s = 0.1).
``t_start`` and ``t_end`` override these.

The prior at the noise end is the density of x_{t_end} = alpha x_0 + sigma eps: by default
the Gaussian of the data's first two moments, N(alpha m, alpha^2 C + sigma^2 I) (``gaussian_prior``;
m = 0 and C = I, the normalised data's, unless given), which is N(0, I) on the flow path's t = 1
and for a DDPM chain whose alpha_T^2 + sigma_T^2 = 1 (score_sde's prior), and exact for Gaussian
data; or any log-density of x_{t_end} given as ``prior`` (the exact marginal of a mixture, in
tests).  For a chain whose terminal SNR is not negligible the moment-matched Gaussian is the
convention: x_1 differs from it only through the data's third and higher cumulants, scaled by
alpha_1^3 and higher powers (alpha_1 = 0.0064 at the end of a 1000-step linear chain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..samplers.denoiser import Denoiser, ModelFn
from ..schedules import Schedule
from .divergence import PROBES, draw_probes, field_and_divergence
from .solvers import DEFAULT_ATOL, DEFAULT_RTOL, FIXED_STEP_SOLVERS, SOLVERS, solve

# Exact divergence (D backward passes per evaluation) up to this dimension, Hutchinson above.
EXACT_UP_TO = 64
# The noise sigma / alpha where the solve starts (score_sde's eps), and how far from a singular
# end it stays (see the module docstring).
START_NOISE = 1e-5
SINGULAR_OFFSET = 1e-3
DIVERGENCES = ("auto", "exact", "hutchinson")

LogDensityFn = Callable[[torch.Tensor], torch.Tensor]  # x (B, *shape) -> log p (B,)


@dataclass(frozen=True)
class LogDensity:
    """log p(x) of each point and its parts.  ``log_prob = prior_log_prob + divergence_integral
    - log_jacobian``; all (B,), in nats, in the units of the x given."""

    log_prob: torch.Tensor
    prior_log_prob: torch.Tensor  # log p_1(z(1)) of the end point in z coordinates
    divergence_integral: torch.Tensor  # int div u d tau (exact, or Hutchinson's estimate), plus D log(alpha / (alpha + sigma)) at t_start
    log_jacobian: float  # D log(scale) of the data normalisation (0 in model units)
    z_end: torch.Tensor  # z(1), shape of x
    t_start: float
    t_end: float
    method: str
    divergence: str  # exact or hutchinson
    probes: int  # Hutchinson's K (0 for exact)
    evaluations: float  # model calls per point (the mean over batches where the solves differ)
    vector_jacobian_products: float  # per point: D (exact) or K (Hutchinson) per model call

    @property
    def nll(self) -> torch.Tensor:
        return -self.log_prob


def tau_at(schedule: Schedule, t: float) -> float:
    """tau = sigma / (alpha + sigma) at time t: 0 at t = 0, 1 where alpha = 0."""
    a, s = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
    return s / (a + s)


def time_at_tau(schedule: Schedule, tau: float) -> float:
    """The inverse of tau_at: lambda = log((1 - tau) / tau), then the schedule's time of lambda."""
    if tau <= 0.0:
        return 0.0
    if tau >= 1.0:
        return 1.0
    return float(schedule.time_at_half_log_snr(math.log1p(-tau) - math.log(tau)))


def gaussian_prior(schedule: Schedule, t: float, mean: torch.Tensor | None = None, cov: torch.Tensor | None = None) -> LogDensityFn:
    """log N(x; alpha m, alpha^2 C + sigma^2 I) at time t: the density of x_t when x_0 has mean m
    and covariance C (flattened, D and D x D) and is Gaussian; m = 0, C = I when not given."""
    alpha, sigma = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        dim = flat.shape[1]
        centre = flat if mean is None else flat - alpha * mean.to(flat).reshape(1, dim)
        if cov is None:
            var = alpha**2 + sigma**2
            return -0.5 * (centre**2).sum(1) / var - 0.5 * dim * math.log(2 * math.pi * var)
        full = alpha**2 * cov.to(flat) + sigma**2 * torch.eye(dim, dtype=flat.dtype, device=flat.device)
        return torch.distributions.MultivariateNormal(torch.zeros_like(centre[0]), covariance_matrix=full).log_prob(centre)

    return log_prob


def default_times(schedule: Schedule, prediction: str) -> tuple[float, float]:
    """(t_start, t_end) where ``prediction`` can be read (see the module docstring)."""
    noise = SINGULAR_OFFSET if prediction == "x0" else START_NOISE
    t_start = float(schedule.time_at_half_log_snr(-math.log(noise)))
    t_end = 1.0 - SINGULAR_OFFSET if prediction == "eps" and float(schedule.alpha_at(1.0)) == 0.0 else 1.0
    return t_start, t_end


def likelihood(
    model_fn: ModelFn, schedule: Schedule, x: torch.Tensor, *, prediction: str = "eps", y: torch.Tensor | None = None,
    divergence: str = "auto", probes: int = 1, probe_kind: str = "rademacher", seed: int = 0, method: str = "rk45",
    rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, steps: int | None = None, t_start: float | None = None,
    t_end: float | None = None, prior: LogDensityFn | None = None, normalization=None, batch_size: int | None = None,
    max_evaluations: int | None = None,
) -> LogDensity:  # fmt: skip
    """log p(x) of the model ``model_fn(x_t, t, y=None) -> prediction`` on ``schedule``, for
    points ``x`` (B, *shape), through its probability-flow ODE (module docstring).

    divergence  "exact" (autograd, D vector-Jacobian products a call), "hutchinson" (``probes``
                K probes of ``probe_kind``, rademacher or gaussian, drawn once from
                ``seed``), or "auto": exact up to EXACT_UP_TO dimensions.
    method      "rk45" (adaptive, ``rtol``/``atol``) or a fixed-step "heun" / "rk4" (``steps``).
    prior       log-density of x at t_end; default ``gaussian_prior`` with m = 0, C = I.
    normalization  when given (data.Normalization: x_model = (x - mean) / scale), ``x`` is in
                data units and the answer too: log p_data(x) = log p_model(x_model) - D log scale.
    batch_size  points per solve (default all); each batch is solved on its own.
    max_evaluations  rk45's budget of model calls a solve (cnf.SolverError beyond it).
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of {', '.join(DIVERGENCES)}")
    if probe_kind not in PROBES:
        raise ValueError(f"unknown probe kind {probe_kind!r}; expected one of {', '.join(PROBES)}")
    if method not in SOLVERS:
        raise ValueError(f"unknown solver {method!r}; expected one of {', '.join(SOLVERS)}")
    if method in FIXED_STEP_SOLVERS and steps is None:
        raise ValueError(f"{method} is a fixed-step solver: give steps")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x: expected a batch of points (B, D) or images (B, C, H, W), got shape {tuple(x.shape)}")
    dim = x[0].numel()
    exact = divergence == "exact" or (divergence == "auto" and dim <= EXACT_UP_TO)
    if not exact and not (isinstance(probes, int) and probes >= 1):
        raise ValueError(f"probes: expected an integer >= 1, got {probes!r}")
    default_start, default_end = default_times(schedule, prediction)
    t0 = default_start if t_start is None else float(t_start)
    t1 = default_end if t_end is None else float(t_end)
    if not 0.0 <= t0 < t1 <= 1.0:
        raise ValueError(f"expected 0 <= t_start < t_end <= 1, got {t0:g} and {t1:g}")
    prior = gaussian_prior(schedule, t1) if prior is None else prior

    log_jacobian = 0.0
    if normalization is not None:  # its mean: one per dimension, or one for all
        mean = torch.as_tensor(normalization.mean, dtype=x.dtype, device=x.device).reshape(1, -1)
        x = ((x.reshape(x.shape[0], -1) - mean) / float(normalization.scale)).reshape(x.shape)
        log_jacobian = dim * math.log(float(normalization.scale))

    generator = torch.Generator().manual_seed(int(seed))
    size = x.shape[0] if batch_size is None else int(batch_size)
    parts, calls_per_point = [], 0.0
    for lo in range(0, x.shape[0], size):
        xb = x[lo : lo + size]
        yb = None if y is None else y[lo : lo + size]
        probe = None if exact else draw_probes(probes, tuple(xb.shape), probe_kind, generator, xb.dtype, xb.device)
        denoise = Denoiser(model_fn, schedule, prediction, yb)
        part, calls = _solve_batch(denoise, xb, t0, t1, probe, method, rtol, atol, steps, prior, max_evaluations)
        parts.append(part)
        calls_per_point += calls * xb.shape[0] / x.shape[0]
    prior_lp, integral, z_end = (torch.cat([p[i] for p in parts]) for i in range(3))
    return LogDensity(
        prior_lp + integral - log_jacobian, prior_lp, integral, log_jacobian, z_end, t0, t1, method,
        "exact" if exact else "hutchinson", 0 if exact else probes, calls_per_point,
        calls_per_point * (dim if exact else probes),
    )  # fmt: skip


def _solve_batch(denoise: Denoiser, x, t0, t1, probe, method, rtol, atol, steps, prior, max_evaluations):
    """One solve of the augmented state (z, int div u) from tau(t0) to tau(t1): returns
    ((log p_1(z(1)), the divergence integral, z(1)), model calls)."""
    schedule, shape, batch = denoise.schedule, x.shape[1:], x.shape[0]
    dim = x[0].numel()
    calls = 0

    def rhs(tau: float, state: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        t = time_at_tau(schedule, tau)
        scale = float(schedule.alpha_at(t)) + float(schedule.sigma_at(t))

        def velocity(z: torch.Tensor) -> torch.Tensor:
            d = denoise(z * scale, t)
            return d.eps - d.x0

        z = state[:, :dim].reshape(batch, *shape)
        u, div = field_and_divergence(velocity, z, probe)
        return torch.cat([u.reshape(batch, dim), div.reshape(batch, 1)], dim=1)

    alpha0 = float(schedule.alpha_at(t0))
    scale0 = alpha0 + float(schedule.sigma_at(t0))
    start = torch.cat([x.reshape(batch, dim) * (alpha0 / scale0), torch.zeros(batch, 1, dtype=x.dtype, device=x.device)], dim=1)
    tau0, tau1 = tau_at(schedule, t0), tau_at(schedule, t1)
    # The error norm's groups: the point's D coordinates, and its log-density on its own.
    groups = (slice(0, dim), slice(dim, dim + 1))
    solution = solve(rhs, start, tau0, tau1, method=method, rtol=rtol, atol=atol, steps=steps, groups=groups, max_evaluations=max_evaluations)
    z_end = solution.y[:, :dim].reshape(batch, *shape)
    integral = solution.y[:, dim]
    scale1 = float(schedule.alpha_at(t1)) + float(schedule.sigma_at(t1))
    # x_1 = scale1 z(1): log p_z(z) = log p_x(scale1 z) + D log scale1; at the start the other
    # way round, z(0) = (alpha0 / scale0) x, which the integral's end carries.
    prior_lp = prior(z_end * scale1) + dim * math.log(scale1)
    return (prior_lp, integral + dim * math.log(alpha0 / scale0), z_end), calls
