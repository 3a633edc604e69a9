"""Noise schedules: how much signal and how much noise at each time.

Time convention (the only one in denoiselab)
--------------------------------------------
A schedule is a grid of ``T + 1`` points indexed by an integer ``k = 0..T``.
``k = 0`` is clean data, ``k = T`` is (nearly) pure noise, and the continuous time
handed to networks is ``t = k / T`` in ``[0, 1]``.  At every grid point

    x_k = alpha_k * x_0 + sigma_k * eps,        eps ~ N(0, I).

For a DDPM chain (Ho et al. 2020) ``alpha_k = sqrt(alpha_bar_k)``,
``sigma_k = sqrt(1 - alpha_bar_k)`` and ``alpha_bar_k = prod_{s<=k} (1 - beta_s)``;
our ``k`` is the 1-based step of the paper, so diffusers' 0-based timestep ``j``
is our ``k = j + 1``.  The flow-matching path (``alpha = 1 - t``, ``sigma = t``) is the
same type with a different grid.  Samplers only ever read ``alpha_k`` and ``sigma_k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Betas above this make alpha_bar collapse to 0 in one step (Nichol & Dhariwal 2021, Sec. 3.2).
MAX_BETA = 0.999
# Terminal SNR above this means x_T still carries visible data, so sampling from N(0, I) is off.
TERMINAL_SNR_WARN_DB = -20.0


@dataclass(frozen=True)
class Schedule:
    """A noise schedule read at the grid ``k = 0..T`` (float64, CPU; cast where used)."""

    name: str
    alphas: torch.Tensor  # alpha_k, shape (T + 1,), alphas[0] == 1
    sigmas: torch.Tensor  # sigma_k, shape (T + 1,), sigmas[0] == 0

    @property
    def T(self) -> int:
        return self.alphas.numel() - 1

    @property
    def alpha_bars(self) -> torch.Tensor:
        """alpha_bar_k = alpha_k^2 (the DDPM notation), shape (T + 1,)."""
        return self.alphas**2

    @property
    def betas(self) -> torch.Tensor:
        """Per-step variance beta_k = 1 - alpha_bar_k / alpha_bar_{k-1} for k = 1..T (shape (T,))."""
        ab = self.alpha_bars
        return 1.0 - ab[1:] / ab[:-1]

    @property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_k^2 / sigma_k^2 (inf at k = 0)."""
        return self.alphas**2 / self.sigmas**2

    @property
    def snr_db(self) -> torch.Tensor:
        return 10.0 * torch.log10(self.snr)

    @property
    def log_snr(self) -> torch.Tensor:
        """lambda_k = log(alpha_k / sigma_k), the half log-SNR of DPM-Solver (Lu et al. 2022)."""
        return torch.log(self.alphas) - torch.log(self.sigmas)

    def time(self, k: torch.Tensor | int) -> torch.Tensor:
        """Continuous time t = k / T in [0, 1] for grid index k."""
        return torch.as_tensor(k, dtype=torch.float64) / self.T

    def terminal_snr_db(self) -> float:
        return float(self.snr_db[-1])


def _from_betas(name: str, betas: torch.Tensor) -> Schedule:
    betas = betas.to(torch.float64)
    alpha_bars = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, 0)])
    return Schedule(name, alpha_bars.sqrt(), (1.0 - alpha_bars).sqrt())


def linear_betas(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """DDPM's linear schedule (Ho et al. 2020, Sec. 4): beta from beta_start to beta_end."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def quadratic_betas(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Linear in sqrt(beta) (latent diffusion's "scaled_linear")."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def sigmoid_betas(T: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """Betas along a sigmoid over [-6, 6] (GeoDiff, Xu et al. 2022)."""
    return torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start


def cosine_betas(T: int, offset: float = 0.008) -> torch.Tensor:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal 2021, Eq. 17), betas clipped at 0.999."""
    k = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((k / T + offset) / (1 + offset) * math.pi / 2) ** 2
    alpha_bars = f / f[0]
    return (1.0 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=MAX_BETA)


BETA_SCHEDULES = {"linear": linear_betas, "quadratic": quadratic_betas, "sigmoid": sigmoid_betas}
SCHEDULE_KINDS = ("linear", "cosine", "quadratic", "sigmoid")


def make_schedule(
    kind: str = "linear",
    T: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    scale_with_T: bool = True,
) -> Schedule:
    """Build a discrete DDPM schedule with ``T`` steps.

    ``scale_with_T`` multiplies the beta range by ``1000 / T`` (as improved-diffusion does) so
    that a short chain still ends in noise: with the unscaled 1e-4..0.02, T = 50 ends at +2 dB.
    The cosine schedule is defined by its alpha_bar curve and ignores the beta range.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown schedule {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    if not (isinstance(T, int) and T >= 1):
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    if kind == "cosine":
        return _from_betas(kind, cosine_betas(T))
    scale = 1000.0 / T if scale_with_T else 1.0
    lo, hi = beta_start * scale, min(beta_end * scale, MAX_BETA)
    if not (0.0 < lo < 1.0 and 0.0 < hi < 1.0):
        raise ValueError(f"betas must lie in (0, 1); got {lo:g}..{hi:g} after scaling by 1000/T")
    return _from_betas(kind, BETA_SCHEDULES[kind](T, min(lo, hi), hi))


def flow_schedule(T: int = 1000) -> Schedule:
    """The rectified-flow / flow-matching path x_t = (1 - t) x_0 + t eps (Lipman et al. 2023).

    alpha_T = 0 exactly, so the last grid point is pure noise.
    """
    t = torch.arange(T + 1, dtype=torch.float64) / T
    return Schedule("flow", 1.0 - t, t)
