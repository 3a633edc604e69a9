"""Noise schedules: how much signal and how much noise at each time.

Time convention (the only one in denoiselab)
--------------------------------------------
Time ``t`` runs over ``[0, 1]``: ``t = 0`` is clean data, ``t = 1`` is (nearly) pure noise,
and at every time

    x_t = alpha(t) * x_0 + sigma(t) * eps,        eps ~ N(0, I).

Networks take this ``t`` as their time input; samplers walk strictly decreasing grids of
times ending at 0 (samplers/grids.py).  The flow-matching literature (Lipman et al. 2023;
Liu et al. 2023) often runs the other way (t = 1 is data); such a t is converted only where
a formula is quoted, never inside the package.

A DDPM chain of ``T`` steps (Ho et al. 2020) is a schedule read at ``t = k / T``,
``k = 0..T``, with ``alpha_k = sqrt(alpha_bar_k)``, ``sigma_k = sqrt(1 - alpha_bar_k)`` and
``alpha_bar_k = prod_{s<=k} (1 - beta_s)``; our ``k`` is the 1-based step of the paper, so
diffusers' 0-based timestep ``j`` is our ``k = j + 1``.  Between grid points such a chain is
interpolated linearly in log-SNR (exact at every grid point, monotone; on the first interval
(0, 1/T), where log-SNR rises to +inf, sigma^2 is linear in t instead).

Two families share the type: variance preserving (``alpha^2 + sigma^2 = 1``: the DDPM
kinds) and the straight flow path (``alpha = 1 - t``, ``sigma = t``: flow matching, in
closed form at every t).  Any path is the flow path rescaled: with
``tau = sigma / (alpha + sigma)``, ``x_t / (alpha + sigma)`` is the flow path's point at tau.

lambda = log(alpha / sigma) is the half log-SNR of DPM-Solver (Lu et al. 2022); it is +inf at
t = 0 and, for the flow path, -inf at t = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

# Betas above this make alpha_bar collapse to 0 in one step (Nichol & Dhariwal 2021, Sec. 3.2).
MAX_BETA = 0.999
# Terminal SNR above this means x_T still carries visible data, so sampling from N(0, I) is off.
TERMINAL_SNR_WARN_DB = -20.0


PATHS = ("vp", "flow")


@dataclass(frozen=True)
class Schedule:
    """A noise schedule: (alpha, sigma) at any t in [0, 1], and its grid ``t = k / T``.

    ``alphas``/``sigmas`` (and betas, snr, half_log_snr, ...) are the schedule read at the grid
    (float64, CPU; cast where used).  ``alpha_at``, ``sigma_at``, ``half_log_snr_at`` and
    ``time_at_half_log_snr`` evaluate it at any time (vectorised, float64).
    """

    name: str
    alphas: torch.Tensor  # alpha_k, shape (T + 1,), alphas[0] == 1
    sigmas: torch.Tensor  # sigma_k, shape (T + 1,), sigmas[0] == 0
    path: str = "vp"  # "vp" (alpha^2 + sigma^2 = 1, interpolated in log-SNR) or "flow" (closed form)

    @property
    def is_chain(self) -> bool:
        """A discrete DDPM chain: its grid points are where the network was trained."""
        return self.path == "vp"

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

    @cached_property
    def half_log_snr(self) -> torch.Tensor:
        """lambda_k = log(alpha_k / sigma_k), the half log-SNR of DPM-Solver (Lu et al. 2022).
        Computed once: a sampler reads it at every step through half_log_snr_at (the tuning
        search's sampler runs spent a third of their time recomputing it)."""
        return torch.log(self.alphas) - torch.log(self.sigmas)

    def time(self, k: torch.Tensor | int) -> torch.Tensor:
        """Continuous time t = k / T in [0, 1] for grid index k."""
        return torch.as_tensor(k, dtype=torch.float64) / self.T

    def terminal_snr_db(self) -> float:
        return float(self.snr_db[-1])

    # -- continuous time ------------------------------------------------------------------------

    def half_log_snr_at(self, t) -> torch.Tensor:
        """lambda(t) = log(alpha(t) / sigma(t)) at any t in [0, 1] (+inf at t = 0)."""
        t = _times(t)
        if self.path == "flow":
            return torch.log1p(-t) - torch.log(t)
        T, knots = self.T, self.half_log_snr
        pos = t * T
        k0 = pos.floor().long().clamp(0, T - 1)
        frac = pos - k0
        inner = knots[k0] + frac * (knots[(k0 + 1).clamp(max=T)] - knots[k0])  # nan where k0 = 0: replaced below
        # First interval: sigma^2(t) = sigma_1^2 * t * T, so lambda = 0.5 * log((1 - s2) / s2).
        s2 = float(self.sigmas[1] ** 2) * pos.clamp(max=1.0)
        first = 0.5 * (torch.log1p(-s2) - torch.log(s2))
        lam = torch.where(k0 == 0, first, inner)
        k, on_grid = self._grid_index(t)
        return torch.where(on_grid, knots[k], lam)

    def alpha_at(self, t) -> torch.Tensor:
        t = _times(t)
        if self.path == "flow":
            return 1.0 - t
        k, on_grid = self._grid_index(t)
        if bool(on_grid.all()):  # the common case (training and sampling on the chain): a table read
            return self.alphas[k]
        return torch.where(on_grid, self.alphas[k], torch.sigmoid(2.0 * self.half_log_snr_at(t)).sqrt())

    def sigma_at(self, t) -> torch.Tensor:
        t = _times(t)
        if self.path == "flow":
            return t.clone()
        k, on_grid = self._grid_index(t)
        if bool(on_grid.all()):  # the common case (training and sampling on the chain): a table read
            return self.sigmas[k]
        return torch.where(on_grid, self.sigmas[k], torch.sigmoid(-2.0 * self.half_log_snr_at(t)).sqrt())

    def log_snr_rate_at(self, t) -> torch.Tensor:
        """-d log SNR / d t at any t in (0, 1] (float64, >= 0; +inf at t = 0 and at the flow path's t = 1).

        Flow: log SNR = 2 log((1 - t) / t), so the rate is 2 / (t (1 - t)).  A chain's log-SNR is
        linear in t between grid points: at t in ((k - 1) / T, k / T] (a grid point k / T
        included) the slope of that interval, 2 T (lambda_{k-1} - lambda_k), the one over which
        the chain's step k falls, so (1 / T) sum_k rate(k / T) telescopes to the chain's whole
        log-SNR range.  On the first interval sigma^2 = sigma_1^2 t T (s2 below), and the rate
        sigma_1^2 T / (s2 (1 - s2)) is its derivative there, T / alpha_1^2 at k = 1.
        """
        t = _times(t)
        if self.path == "flow":
            return 2.0 / (t * (1.0 - t))
        T, knots = self.T, self.half_log_snr
        pos = t * T
        k = torch.ceil(pos - 1e-9).long().clamp(1, T)
        inner = 2.0 * T * (knots[(k - 1).clamp(min=1)] - knots[k])  # k = 1 is replaced below
        s2 = float(self.sigmas[1] ** 2) * pos.clamp(max=1.0)
        first = float(self.sigmas[1] ** 2) * T / (s2 * (1.0 - s2))
        return torch.where(k == 1, first, inner)

    def time_at_half_log_snr(self, lam) -> torch.Tensor:
        """The inverse of ``half_log_snr_at``: the t where lambda(t) = lam.  +inf gives 0; a lam
        below the schedule's last lambda gives 1."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        if self.path == "flow":
            return torch.sigmoid(-lam)  # lambda = log((1 - t) / t)
        T, knots = self.T, self.half_log_snr  # knots[k] = lambda(k / T), decreasing, knots[0] = +inf
        # On the increasing array [lambda_T .. lambda_1], c elements are <= lam, so
        # lambda_k <= lam < lambda_{k-1} for k = T + 1 - c.
        c = torch.searchsorted(knots[1:].flip(0).contiguous(), lam, right=True)
        k = (T + 1 - c).clamp(min=min(2, T), max=T)
        hi, lo = knots[k - 1], knots[k]
        t_inner = (k - 1 + ((hi - lam) / (hi - lo)).clamp(0.0, 1.0)) / T
        # Above lambda_1: the first interval, where sigma^2 is linear in t.
        t_first = torch.sigmoid(-2.0 * lam) / float(self.sigmas[1] ** 2) / T
        t = torch.where(lam >= knots[1], t_first, t_inner)
        return torch.where(lam < knots[-1], torch.ones_like(t), t).clamp(0.0, 1.0)

    def _grid_index(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest grid index k of each t, and whether t is that grid point (t = k / T up to
        rounding): there the tables are read as they are, bit for bit."""
        pos = t * self.T
        k = pos.round()
        return k.long().clamp(0, self.T), (pos - k).abs() <= 1e-9


def _times(t) -> torch.Tensor:
    if isinstance(t, (float, int)):  # a sampler's step time: checked without building tensors
        if not 0.0 <= t <= 1.0:  # NaN fails this too
            raise ValueError(f"time must lie in [0, 1], got {t:g}")
        return torch.tensor(float(t), dtype=torch.float64)
    t = torch.as_tensor(t, dtype=torch.float64)
    if bool(((t < 0) | (t > 1) | torch.isnan(t)).any()):
        raise ValueError(f"time must lie in [0, 1], got {t.min().item():g}..{t.max().item():g}")
    return t


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
from .choices import ALL_SCHEDULE_KINDS, SCHEDULE_KINDS  # noqa: E402 - the DDPM chains, and the flow path


def make_schedule(
    kind: str = "linear",
    T: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    scale_with_T: bool = True,
) -> Schedule:
    """Build a schedule: a DDPM chain with ``T`` steps, or (kind "flow") the flow path on a grid of T.

    ``scale_with_T`` multiplies the beta range by ``1000 / T`` (as improved-diffusion does) so
    that a short chain still ends in noise: with the unscaled 1e-4..0.02, T = 50 ends at +2 dB.
    The cosine schedule is defined by its alpha_bar curve and ignores the beta range.
    """
    if kind not in ALL_SCHEDULE_KINDS:
        raise ValueError(f"unknown schedule {kind!r}; expected one of {', '.join(ALL_SCHEDULE_KINDS)}")
    if not (isinstance(T, int) and T >= 1):
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    if kind == "flow":
        return flow_schedule(T)
    if kind == "cosine":
        return _from_betas(kind, cosine_betas(T))
    scale = 1000.0 / T if scale_with_T else 1.0
    lo, hi = beta_start * scale, min(beta_end * scale, MAX_BETA)
    if not (0.0 < lo < 1.0 and 0.0 < hi < 1.0):
        raise ValueError(f"betas must lie in (0, 1); got {lo:g}..{hi:g} after scaling by 1000/T")
    return _from_betas(kind, BETA_SCHEDULES[kind](T, min(lo, hi), hi))


def flow_schedule(T: int = 1000) -> Schedule:
    """The rectified-flow / flow-matching path x_t = (1 - t) x_0 + t eps (Lipman et al. 2023).

    alpha(1) = 0 exactly, so t = 1 is pure noise (log-SNR -inf).  The schedule is continuous
    in closed form; ``T`` only sets its grid (the figures', and the named step grids' finest
    resolution).
    """
    if not (isinstance(T, int) and T >= 1):
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    t = torch.arange(T + 1, dtype=torch.float64) / T
    return Schedule("flow", 1.0 - t, t, path="flow")
