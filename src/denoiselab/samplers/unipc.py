"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework"), data prediction.

Notation as in dpm_solver.py: lambda = log(alpha / sigma), a step from t to s has
h = lambda_s - lambda_t > 0, and m_i are the model's clean estimates at earlier points t_i with
r_i = (lambda_{t_i} - lambda_t) / h < 0.  With D_i = (m_i - m_t) / r_i (Eq. 8 and 10 in the
data-prediction form of App. B):

    UniP-p  x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) m_t
                  - alpha_s B(h) sum_{i<p} a_i D_i                              (Alg. 2)
    UniC-p  x_s^c = (same first-order part) - alpha_s B(h) (sum_{i<p} a_i^c D_i + a_p^c (m_s - m_t))

where the coefficients solve R_p a = g / B(h) (Alg. 2), R_p[k, i] = r_i^k (with r_p = 1) and
g_k = k! (-h) phi_{k+1}(-h), phi the exponential-integrator functions phi_1(z) = (e^z - 1) / z,
phi_{k+1}(z) = (phi_k(z) - 1 / k!) / z; UniP-p uses the first p - 1 rows and columns, UniC-p
all p.  UniP-2's coefficient is fixed to 1/2 and UniC-1's to 1/2 (Alg. 2).  B(h) is -h ("bh1")
or e^{-h} - 1 ("bh2"), both O(h) as the theory needs (Sec. 3.2; signs for data prediction).

The corrector costs no evaluation: m_s is the model's estimate at the predicted x_s, which the
next step needs anyway; the corrected x_s^c replaces x_s as the start of the next predictor.
After the last step nothing would reuse m_s, so the corrector is skipped there (Sec. 3.3).
Orders ramp up with the history and, as in the reference code, step i of N uses at most
order N - i (the last step is first order; to sigma = 0 it returns the clean estimate).

On the flow path (lambda = -inf at t = 1) the first step is exact first order and leaves no
usable history; nor is it corrected (its h is infinite).  ``corrector=False`` gives UniP alone:
at order 1 that is DDIM.
"""

from __future__ import annotations

import math

import torch

from .denoiser import Denoiser
from .legacy import legacy_signature
from .stepping import OnStep, StepRecord, first_order_step, visited_times

VARIANTS = ("bh1", "bh2")


def _coefficients(rks: list[float], h: float, order: int, variant: str, corrector: bool) -> tuple[list[float], float]:
    """(a_i, B(h)) of UniP-order (the a_i for the history D_i) or UniC-order (the a_i, then the
    weight of m_s - m_t last).  rks: the r_i of the order - 1 earlier points."""
    hh = -h  # data prediction integrates in -lambda
    b_h = hh if variant == "bh1" else math.expm1(hh)
    if order == 1:
        return ([0.5] if corrector else []), b_h
    if order == 2 and not corrector:
        return [0.5], b_h
    r = torch.tensor([*rks, 1.0], dtype=torch.float64)
    h_phi_k = math.expm1(hh) / hh - 1.0
    factorial, R, b = 1, [], []
    for k in range(1, order + 1):
        R.append(r ** (k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1.0 / factorial
    R, b = torch.stack(R), torch.tensor(b, dtype=torch.float64)
    rhos = torch.linalg.solve(R, b) if corrector else torch.linalg.solve(R[:-1, :-1], b[:-1])
    return rhos.tolist(), b_h


@legacy_signature(steps=10)
@torch.no_grad()
def sample_unipc(denoise: Denoiser, x_T: torch.Tensor, times, *, on_step: OnStep = None,
                 generator: torch.Generator | None = None, order: int = 2, variant: str = "bh2", corrector: bool = True) -> torch.Tensor:
    """UniPC-``order`` with B(h) = ``variant`` from x_T over ``times`` (strictly decreasing,
    ending at 0); one model evaluation per step.  The records' x_t are the points the model was
    called at.  Deterministic: ``generator`` is ignored."""
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    schedule = denoise.schedule
    times = visited_times(times)
    n = len(times) - 1
    lam = [float(schedule.half_log_snr_at(t)) if t > 0 else math.inf for t in times]
    x = x_T
    hist: list[tuple[float, torch.Tensor]] = []  # (lambda, clean estimate) of earlier points, newest first
    last = None  # the previous predictor step: (its start x, its order, its D_i and r_i)
    for i in range(n):
        t, s = times[i], times[i + 1]
        d = denoise(x, t)
        x_eval = x
        if last is not None:  # UniC: correct the point just reached with the estimate made there
            x_start, p, ds, rks = last
            t0 = times[i - 1]
            rhos, b_h = _coefficients(rks, lam[i] - lam[i - 1], p, variant, corrector=True)
            corr = sum(a * di for a, di in zip(rhos[:-1], ds)) + rhos[-1] * (d.x0 - hist[0][1])
            x = first_order_step(schedule, x_start, hist[0][1], t0, t) - float(schedule.alpha_at(t)) * b_h * corr
        # History is usable while its lambdas are finite (not across the flow path's t = 1).
        hist = [(lam[i], d.x0), *hist[: order - 1]]
        usable = 0
        while usable < len(hist) and math.isfinite(hist[usable][0]):
            usable += 1
        p = min(order, usable, n - i) if math.isfinite(lam[i]) else 1
        h = lam[i + 1] - lam[i]
        rks = [(lam_j - lam[i]) / h for lam_j, _ in hist[1:p]]
        ds = [(m_j - d.x0) / r for (_, m_j), r in zip(hist[1:p], rks)]
        x_next = first_order_step(schedule, x, d.x0, t, s)
        if p > 1:
            rhos, b_h = _coefficients(rks, h, p, variant, corrector=False)
            x_next = x_next - float(schedule.alpha_at(s)) * b_h * sum(a * di for a, di in zip(rhos, ds))
        correctable = corrector and s > 0 and math.isfinite(h)
        last = (x, p, ds, rks) if correctable else None
        if on_step is not None:
            on_step(StepRecord(i, t, s, x_eval, d.x0, d.eps, x_next, schedule.T))
        x = x_next
    return x

