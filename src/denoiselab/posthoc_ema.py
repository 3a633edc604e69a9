"""Post-hoc EMA (Karras et al. 2024, "Analyzing and improving the training dynamics of diffusion
models", EDM2, Sec. 3 and App. C): choose the EMA length after training.

A power-function EMA averages the weights theta_1 .. theta_t of a run with the profile
p_{t,gamma}(tau) = (gamma + 1) tau^gamma / t^(gamma + 1) on 0 < tau < t (EDM2 Eq. 2), updated
after step t as theta_hat_t = beta_t theta_hat_{t-1} + (1 - beta_t) theta_t with

    beta_t = (1 - 1 / t)^(gamma + 1)                                       (EDM2 Eq. 3),

which weights theta_tau by exactly the profile's mass on (tau - 1, tau]: the product of the
betas after tau is (tau / t)^(gamma + 1).  Its length is stated relative to the training so far,
sigma_rel = the standard deviation of the profile over t (EDM2 Eq. 4):

    sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3)),

so gamma follows from sigma_rel as the largest real root of
gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + 12 - sigma_rel^-2 = 0 (EDM2 App. C.2).

Training tracks two such EMAs (EDM2: sigma_rel 0.05 and 0.10) and stores both every few steps.
Any profile p_r is then approximated by a combination sum_i x_i p_i of the stored ones, the x
solving the least-squares problem in L2 over tau (App. C.3): A x = b with A_ij = <p_i, p_j> and
b_i = <p_i, p_r>, where for two profiles (t_a >= t_b, either way round by symmetry)

    <p_{t_a,g_a}, p_{t_b,g_b}> = (g_a + 1)(g_b + 1) t_b^(g_a + g_b + 1) / ((g_a + g_b + 1) t_a^(g_a + 1) t_b^(g_b + 1)),

and the same combination of the stored weights is the reconstructed EMA.  Here the fit is
constrained to sum_i x_i = 1 (a Lagrange multiplier; EDM2's fit is unconstrained): every profile
has mass 1, and the constraint keeps a weight that has not moved exactly where it is, which the
unconstrained fit misses by (sum_i x_i - 1) times the weight, far more than the weight's own
movement for large weights that training barely changes.  Because the discrete
EMA is the profile integrated over unit steps, a profile that the stored ones span exactly is
reconstructed exactly; otherwise the error of any reconstructed weight is at most the fit's L2
residual times the L2 norm of the weight's trajectory (Cauchy-Schwarz), which ``PosthocFit``
reports relative to the target profile's norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# EDM2's two tracked EMA lengths (Sec. 3, "we track two EMAs with sigma_rel = 0.05 and 0.10").
TRACKED_SIGMA_RELS = (0.05, 0.10)
# sigma_rel at gamma = 0 (a uniform average of the whole run); longer profiles need gamma < 0,
# whose weights grow towards the start of training.
MAX_SIGMA_REL = float(np.sqrt(1.0 / 12.0))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The power gamma of the profile of relative standard deviation ``sigma_rel`` (0 < it < 1 / sqrt 12)."""
    if not 0.0 < sigma_rel < MAX_SIGMA_REL:
        raise ValueError(f"sigma_rel must lie in (0, {MAX_SIGMA_REL:.4f}), got {sigma_rel!r}")
    t = sigma_rel**-2
    return float(np.roots([1.0, 7.0, 16.0 - t, 12.0 - t]).real.max())


def gamma_to_sigma_rel(gamma: float) -> float:
    return float(np.sqrt((gamma + 1.0) / ((gamma + 2.0) ** 2 * (gamma + 3.0))))


def power_beta(gamma: float, step: int) -> float:
    """beta_t of the update after step ``step`` (1 for the first: the average starts at theta_1)."""
    return (1.0 - 1.0 / step) ** (gamma + 1.0)


def profile_inner(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """<p_{t_a,gamma_a}, p_{t_b,gamma_b}> in L2 over tau (vectorised, broadcasting)."""
    t_a, g_a, t_b, g_b = (np.asarray(v, dtype=np.float64) for v in (t_a, gamma_a, t_b, gamma_b))
    lo, hi = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
    g_hi = np.where(t_a >= t_b, g_a, g_b)
    # t_lo^(g_a + g_b + 1) / (t_a^(g_a + 1) t_b^(g_b + 1)) = (t_lo / t_hi)^(g_hi + 1) / t_lo,
    # written so that no large power of a step count is formed.
    return (g_a + 1.0) * (g_b + 1.0) / (g_a + g_b + 1.0) * (lo / hi) ** (g_hi + 1.0) / lo


@dataclass(frozen=True)
class PosthocFit:
    """The weights of the stored EMAs that reconstruct the target, and the fit's relative L2 residual."""

    coefficients: np.ndarray
    relative_error: float


def fit_profile(steps, gammas, target_step: int, target_gamma: float) -> PosthocFit:
    """Least-squares coefficients, summing to 1, of the stored profiles (``steps[i]``,
    ``gammas[i]``) for the profile (``target_step``, ``target_gamma``), EDM2 App. C.3."""
    steps, gammas = np.asarray(steps, dtype=np.float64), np.asarray(gammas, dtype=np.float64)
    A = profile_inner(steps[:, None], gammas[:, None], steps[None, :], gammas[None, :])
    b = profile_inner(steps, gammas, float(target_step), float(target_gamma))
    n = len(steps)
    kkt = np.block([[A, np.ones((n, 1))], [np.ones((1, n)), np.zeros((1, 1))]])
    x = np.linalg.lstsq(kkt, np.append(b, 1.0), rcond=None)[0][:n]
    norm = float(profile_inner(target_step, target_gamma, target_step, target_gamma))
    residual = max(norm - 2.0 * float(x @ b) + float(x @ A @ x), 0.0)
    return PosthocFit(x, float(np.sqrt(residual / norm)))
