"""Progressive distillation (Salimans & Ho 2022, "Progressive distillation for fast sampling of
diffusion models", Algorithm 2): a student learns to take in one DDIM step what its teacher
takes in two, so a sampler of 2N steps becomes one of N; the student then teaches the next
round, halving the steps each time down to one.

One round, for a student of N steps on the time-uniform grid (t = i / N): i ~ U{1 .. N},
z_t = alpha_t x + sigma_t eps, and two DDIM steps of the teacher (eta = 0; Song et al. 2021,
Eq. 12, which is also the exact solve for a constant clean estimate, samplers.first_order_step)
from t to t' = t - 1 / (2N) to t'' = t - 1 / N,

    z_t'  = alpha_t' x^(z_t)  + (sigma_t' / sigma_t) (z_t - alpha_t x^(z_t)),
    z_t'' = alpha_t'' x^(z_t') + (sigma_t'' / sigma_t') (z_t' - alpha_t' x^(z_t')),

give the clean estimate that ONE DDIM step from t would need to land on z_t'',

    x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t),

which the student regresses in its own prediction type (at t: eps~ = (z_t - alpha_t x~) / sigma_t).
Salimans & Ho parameterise the student by v (Sec. 4): an eps-prediction cannot be read at t = 1
where alpha = 0, the one step every one-step sampler takes; the squared error on v is their
"SNR + 1" weighting of the x-error on a variance-preserving path.  The student starts from the
teacher's weights (Algorithm 2, theta <- eta).
"""

from __future__ import annotations

import torch

from .batch_draws import BatchDraws
from .prediction import expand, resolve, target
from .schedules import Schedule


def _coefficients(schedule: Schedule, t: torch.Tensor, like: torch.Tensor):
    return (expand(schedule.alpha_at(t).to(like.dtype).to(like.device), like), expand(schedule.sigma_at(t).to(like.dtype).to(like.device), like))


def ddim_step(z: torch.Tensor, x0: torch.Tensor, at_t, at_s) -> torch.Tensor:
    """DDIM (eta = 0) from (alpha_t, sigma_t) to (alpha_s, sigma_s) for the clean estimate x0."""
    (alpha_t, sigma_t), (alpha_s, sigma_s) = at_t, at_s
    return alpha_s * x0 + (sigma_s / sigma_t) * (z - alpha_t * x0)


def two_step_target(teacher, prediction: str, schedule: Schedule, z: torch.Tensor, t: torch.Tensor, steps: int, y=None) -> torch.Tensor:
    """x~: the clean estimate whose one DDIM step from t (float64, (B,)) to t - 1 / steps lands
    where the teacher's two DDIM steps of 1 / (2 steps) do (Salimans & Ho 2022, Alg. 2)."""
    t1, t2 = (t - 0.5 / steps).clamp(min=0.0), (t - 1.0 / steps).clamp(min=0.0)
    at = [_coefficients(schedule, u, z) for u in (t, t1, t2)]

    def clean(z_at, u, coefficients):
        return resolve(teacher(z_at, u.to(z.dtype).to(z.device), y), prediction, z_at, *coefficients).x0

    with torch.no_grad():
        z1 = ddim_step(z, clean(z, t, at[0]), at[0], at[1])
        z2 = ddim_step(z1, clean(z1, t1, at[1]), at[1], at[2])
    (alpha, sigma), (alpha2, sigma2) = at[0], at[2]
    ratio = sigma2 / sigma
    return (z2 - ratio * z) / (alpha2 - ratio * alpha)


def progressive_loss(model_fn, teacher, teacher_prediction: str, x0: torch.Tensor, schedule: Schedule, generator, *,
                     prediction: str, steps: int, y=None) -> torch.Tensor:  # fmt: skip
    """One Monte Carlo estimate of a progressive-distillation round's loss over a batch x0: the
    student (``model_fn``, of type ``prediction``) at t = i / ``steps`` against the target of the
    teacher's two half steps, in the student's prediction type."""
    draws = BatchDraws.of(generator, x0.shape[0])
    i = draws.randint(1, steps + 1, (x0.shape[0],))
    t = i.to(torch.float64) / steps
    eps = draws.randn(x0.shape, dtype=x0.dtype).to(x0.device)
    alpha, sigma = _coefficients(schedule, t, x0)
    z = alpha * x0 + sigma * eps
    x_tilde = two_step_target(teacher, teacher_prediction, schedule, z, t, steps, y)
    aim = target(prediction, x_tilde, (z - alpha * x_tilde) / sigma, alpha, sigma)
    return torch.mean((model_fn(z, t.to(x0.dtype).to(x0.device), y) - aim) ** 2)
