"""Consistency models (Song et al. 2023, "Consistency Models"; Song & Dhariwal 2024, "Improved
techniques for training consistency models"): a network f(x_t, t) that maps every point of a
probability-flow ODE trajectory to the trajectory's start, so that one evaluation at t = 1 is a
sample (samplers/consistency.py).

Parameterisation (Song et al. 2023, Eq. 7 and Appendix C): in the variance-exploding form
x = x0 + s n of a noise level s,

    f(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, t),
    c_skip = s_d^2 / ((s - eps)^2 + s_d^2),   c_out = s_d (s - eps) / sqrt(s_d^2 + s^2),
    c_in = 1 / sqrt(s^2 + s_d^2)  (EDM's, which Song et al. keep),

so that c_skip(eps) = 1 and c_out(eps) = 0: the boundary condition f(x, eps) = x holds for any
network F.  Our schedules' x_t = alpha x0 + sigma eps is that form after scaling, x = x_t / alpha
with s = sigma / alpha (models/preconditioning.py writes EDM's factors the same way); eps is the
level at t = 1 / T (samplers.consistency.boundary_level), the clean end of every karras grid.
Written on x_t every factor stays finite where alpha = 0 (the flow path's t = 1):

    a_skip = c_skip / alpha = s_d^2 alpha / ((sigma - eps alpha)^2 + s_d^2 alpha^2)
    a_out  = c_out          = s_d (sigma - eps alpha) / sqrt(sigma^2 + s_d^2 alpha^2)
    a_in   = c_in / alpha   = 1 / sqrt(sigma^2 + s_d^2 alpha^2).

The network's output is f, a clean estimate (read out as model.prediction: x0 is f itself, v or
velocity are converted from it, ``clean_estimate`` reads them back; eps is refused, as it has no
clean estimate at t = 1 of the flow path, where one-step sampling starts): at the boundary it is
x_t / alpha = x0 + eps n, the trajectory's start at level eps, as in Song et al.

The discretisation (Song et al. 2023, Sec. 3, Karras et al. 2022's grid): N times t_1 = 1 / T <
... < t_N = 1 spaced in the noise level by rho = 7 (samplers/grids.py's karras grid).

Consistency distillation (Song et al. 2023, Algorithm 2): n ~ U{1 .. N - 1}, x_{t_{n+1}} =
alpha x0 + sigma z, one Heun step of the teacher's probability-flow ODE from t_{n+1} to t_n
(samplers/ode.py's heun, in the flow coordinates of the teacher's own schedule) gives
x^_{t_n}, and the loss is lambda d(f_theta(x_{t_{n+1}}, t_{n+1}), f_theta-(x^_{t_n}, t_n)) with
lambda = 1, d the squared L2 distance (their Table 3's L2 option; LPIPS is for images), and
theta- the EMA of theta (train.ema_decay is their mu).

Improved consistency training (Song & Dhariwal 2024): no teacher, the ODE step replaced by the
same noise z at both levels (x_{t_i} = alpha_i x0 + sigma_i z, the one-sample estimate of the
score); no EMA target: theta- = stop-gradient(theta) (Sec. 3.2); the pseudo-Huber distance
d(a, b) = sqrt(||a - b||^2 + c^2) - c with c = 0.00054 sqrt(dim) (Sec. 3.3); the weight
lambda(s_i) = 1 / (s_{i+1} - s_i) (Sec. 3.1); the level index drawn from a discretised
log-normal, p(i) ~ erf((ln s_{i+1} - P_mean) / (sqrt 2 P_std)) - erf((ln s_i - P_mean) /
(sqrt 2 P_std)), P_mean = -1.1, P_std = 2 (Sec. 3.5); and N doubled on a schedule (Eq. 5, Sec.
3.4): N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2 floor(s1 / s0) + 1)).
"""

from __future__ import annotations

import math

import torch

from .batch_draws import BatchDraws
from .choices import KARRAS_RHO
from .models.preconditioning import Coefficients, Preconditioned
from .prediction import expand, resolve
from .samplers.consistency import boundary_level
from .samplers.grids import time_grid
from .schedules import Schedule

# Song & Dhariwal 2024, Sec. 3.5: the log-normal proposal of the noise levels.
ICT_P_MEAN, ICT_P_STD = -1.1, 2.0
# Song & Dhariwal 2024, Sec. 3.3: the pseudo-Huber constant per square root of the dimension.
PSEUDO_HUBER_C = 0.00054


def consistency_coefficients(sigma_data: float, eps: float) -> Coefficients:
    """Song et al. 2023's c_skip, c_out (Eq. 7 with Appendix C) and EDM's c_in, as factors on
    x_t = alpha (x0 + s n): a_skip = c_skip / alpha, a_out = c_out, a_in = c_in / alpha."""

    def coefficients(alpha: torch.Tensor, sigma: torch.Tensor):
        shifted = sigma - eps * alpha  # alpha (s - eps)
        norm = sigma**2 + (alpha * sigma_data) ** 2  # alpha^2 (s^2 + s_d^2)
        return sigma_data**2 * alpha / (shifted**2 + (alpha * sigma_data) ** 2), sigma_data * shifted / norm.sqrt(), norm.rsqrt()

    return coefficients


def consistency_model(net: torch.nn.Module, schedule: Schedule, sigma_data: float, prediction: str = "x0") -> Preconditioned:
    """``net`` wrapped as the consistency function f(x_t, t), exact at the boundary, read out as
    ``prediction`` (x0 is f itself; v or velocity are f's, so that every sampler reads f as the clean estimate)."""
    return Preconditioned(net, schedule, prediction, consistency_coefficients(sigma_data, boundary_level(schedule)), name="consistency")


def clean_estimate(model_fn, schedule: Schedule, prediction: str):
    """``model_fn`` of type ``prediction`` as the function (x_t, t, y) -> its clean estimate, f."""
    if prediction == "x0":
        return model_fn

    def f(x_t, t, y=None):
        t64 = t.detach().double().cpu()
        alpha, sigma = (_per_sample(c, x_t) for c in (schedule.alpha_at(t64), schedule.sigma_at(t64)))
        return resolve(model_fn(x_t, t, y), prediction, x_t, alpha, sigma).x0

    return f


def consistency_grid(schedule: Schedule, n: int, rho: float = KARRAS_RHO) -> tuple[torch.Tensor, torch.Tensor]:
    """(times, levels), float64 (n,), increasing: the karras grid's n times from t_1 = 1 / T to
    t_n = 1 and their noise levels s = sigma / alpha (where alpha = 0, at the flow path's t = 1,
    the level the grid stands for there: the one at t = 1 - 1 / T, samplers/grids.py)."""
    if n < 2:
        raise ValueError(f"a consistency grid needs at least 2 times, got {n}")
    times = time_grid(schedule, n, "karras", rho=rho)[:-1].flip(0).contiguous()
    times[0] = 1.0 / schedule.T  # exactly the boundary: a_out = 0 there to the bit
    alpha, sigma = schedule.alpha_at(times), schedule.sigma_at(times)
    top = 1.0 - 1.0 / schedule.T
    levels = torch.where(alpha > 0, sigma / alpha.clamp(min=1e-300), schedule.sigma_at(top) / schedule.alpha_at(top))
    return times, levels


def trained_discretisation(train) -> int:
    """N of the grid a consistency run ends its training on (``train``: the recipe's [train])."""
    if train.objective == "consistency-training":
        return ict_discretisation(train.steps, train.steps, train.ict_start, train.ict_end)
    return train.consistency_steps


def on_grid(times: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``times`` (decreasing, from 1 to 0) with each time strictly between them moved to the
    nearest time of ``grid``, and repeats dropped.  A consistency function is trained at its
    grid's times only (Song et al. 2023, Alg. 2), and the time embedding's high frequencies
    (models/embeddings.py) make its values between them arbitrary, so multistep sampling
    re-noises to times it was trained at (BENCHMARKS.md: with N = 18, 2 jumps at t = 0.5 score
    W2 2.34x the floor, at the grid's 0.588 1.97x)."""
    inner = times[1:-1]
    nearest = grid[torch.argmin((inner[:, None] - grid[None, :]).abs(), dim=1)] if inner.numel() else inner
    kept = torch.unique(torch.cat([times[:1], nearest, times[-1:]]))  # sorted increasing, repeats gone
    kept = kept[(kept <= times[0]) & (kept >= times[-1])]
    return kept.flip(0).contiguous()


def ict_discretisation(step: int, total: int, start: int = 10, end: int = 1280) -> int:
    """N at training step ``step`` of ``total`` (Song & Dhariwal 2024, Eq. 5): start + 1 points,
    doubled every K' steps up to end + 1."""
    doublings = math.floor(math.log2(end // start)) + 1
    stage = max(1, total // doublings)
    return min(start * 2 ** (step // stage), end) + 1


def ict_level_probabilities(levels: torch.Tensor) -> torch.Tensor:
    """p(i) for the n - 1 intervals [s_i, s_{i+1}] of ``levels`` (Song & Dhariwal 2024, Sec. 3.5)."""
    cdf = torch.erf((torch.log(levels) - ICT_P_MEAN) / (math.sqrt(2.0) * ICT_P_STD))
    p = cdf[1:] - cdf[:-1]
    return p / p.sum()


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return expand(values.to(like.dtype).to(like.device), like)


def noised(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """x_t = alpha(t) x0 + sigma(t) z at per-sample times t (float64, (B,))."""
    return _per_sample(schedule.alpha_at(t), x0) * x0 + _per_sample(schedule.sigma_at(t), x0) * z


def heun_step(teacher, prediction: str, schedule: Schedule, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, y=None) -> torch.Tensor:
    """One Heun step of the teacher's probability-flow ODE from per-sample times t to s > 0
    (float64, (B,)), in the flow coordinates z = x / (alpha + sigma), tau = sigma / (alpha + sigma),
    where dz / dtau = eps^ - x0^ (samplers/ode.py's heun, one step, every sample at its own time)."""

    def velocity(x_at, at):
        alpha, sigma = schedule.alpha_at(at), schedule.sigma_at(at)
        d = resolve(teacher(x_at, at.to(x.dtype).to(x.device), y), prediction, x_at, _per_sample(alpha, x_at), _per_sample(sigma, x_at))
        return d.eps - d.x0

    scale_t, scale_s = schedule.alpha_at(t) + schedule.sigma_at(t), schedule.alpha_at(s) + schedule.sigma_at(s)
    dtau = _per_sample(schedule.sigma_at(s) / scale_s - schedule.sigma_at(t) / scale_t, x)
    z = x / _per_sample(scale_t, x)
    u = velocity(x, t)
    predicted = (z + dtau * u) * _per_sample(scale_s, x)
    return (z + dtau * 0.5 * (u + velocity(predicted, s))) * _per_sample(scale_s, x)


def _at(f, x: torch.Tensor, t: torch.Tensor, y):
    return f(x, t.to(x.dtype).to(x.device), y)


def consistency_distillation_loss(
    f, target, teacher, teacher_prediction: str, x0: torch.Tensor, schedule: Schedule, generator, *, steps: int, y=None
) -> torch.Tensor:
    """One Monte Carlo estimate of Song et al. 2023's consistency distillation loss (Algorithm 2)
    over a batch x0: ``f`` the consistency function trained, ``target`` theta-'s (no gradient),
    ``teacher(x_t, t, y)`` the teacher's model function of prediction type ``teacher_prediction``
    on ``schedule``, ``steps`` = N."""
    times, _ = consistency_grid(schedule, steps)
    draws = BatchDraws.of(generator, x0.shape[0])
    n = draws.randint(0, steps - 1, (x0.shape[0],))
    t_n, t_next = times[n], times[n + 1]
    z = draws.randn(x0.shape, dtype=x0.dtype).to(x0.device)
    x_next = noised(schedule, x0, t_next, z)
    with torch.no_grad():
        x_hat = heun_step(teacher, teacher_prediction, schedule, x_next, t_next, t_n, y)
        aim = _at(target, x_hat, t_n, y)
    return torch.mean((_at(f, x_next, t_next, y) - aim) ** 2)


def pseudo_huber(diff: torch.Tensor) -> torch.Tensor:
    """Song & Dhariwal 2024's pseudo-Huber distance per sample, sqrt(||diff||^2 + c^2) - c,
    c = 0.00054 sqrt(dim)."""
    c = PSEUDO_HUBER_C * math.sqrt(diff[0].numel())
    return torch.sqrt((diff.flatten(1) ** 2).sum(1) + c * c) - c


def consistency_training_loss(f, x0: torch.Tensor, schedule: Schedule, generator, *, steps: int, y=None) -> torch.Tensor:
    """One Monte Carlo estimate of improved consistency training's loss (Song & Dhariwal 2024)
    over a batch x0 with ``steps`` = N(k) grid points: the target is f itself under stop-gradient."""
    times, levels = consistency_grid(schedule, steps)
    draws = BatchDraws.of(generator, x0.shape[0])
    i = draws.multinomial(ict_level_probabilities(levels), x0.shape[0])
    z = draws.randn(x0.shape, dtype=x0.dtype).to(x0.device)
    with torch.no_grad():
        aim = _at(f, noised(schedule, x0, times[i], z), times[i], y)
    weight = (1.0 / (levels[i + 1] - levels[i])).to(x0.dtype).to(x0.device)
    return torch.mean(weight * pseudo_huber(_at(f, noised(schedule, x0, times[i + 1], z), times[i + 1], y) - aim))
