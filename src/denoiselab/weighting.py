"""Loss weightings over noise levels, each stated once on the x0-error and converted per target.

Notation: x_t = alpha x0 + sigma eps (schedules.py), SNR = alpha^2 / sigma^2, and here
lambda = ln SNR (Kingma et al.'s convention; schedules.py's half_log_snr_at is log(alpha / sigma), half of it).
At a fixed x_t every prediction type is an affine function of the network's clean estimate
x0_hat, so each target's squared error is a fixed multiple of the x0 squared error
||x0_hat - x0||^2 (Kingma et al. 2021, "Variational diffusion models", App. on weightings;
Salimans & Ho 2022, Sec. 4):

    eps       eps = (x_t - alpha x0) / sigma             ||e_eps||^2 = SNR ||e_x0||^2
    x0                                                   ||e_x0||^2
    v         v = alpha eps - sigma x0
                = alpha x_t / sigma - (alpha^2 + sigma^2) x0 / sigma
                                                         ||e_v||^2 = (alpha^2 + sigma^2)^2 / sigma^2 ||e_x0||^2
                                                         (= (SNR + 1) ||e_x0||^2 on a variance-preserving
                                                          path, where alpha^2 + sigma^2 = 1)
    velocity  u = eps - x0 = x_t / sigma - (alpha + sigma) x0 / sigma
                                                         ||e_u||^2 = (alpha + sigma)^2 / sigma^2 ||e_x0||^2
                                                         (= 1 / t^2 on the flow path, alpha + sigma = 1)

The factor c_target(alpha, sigma) in the right column is ``x0_error_factor``.  A weighting is a
function w(lambda) applied to ||e_x0||^2; with a network that predicts ``target`` the same loss
is (w / c_target) ||e_target||^2, so a weighting means the same thing whatever the network
predicts (diffusers applied eps's min-SNR weight to v-prediction until its #5654 / PR #6307).

Weightings (w on the x0-error):

    none      no weight: each target's own simple loss, ||e_target||^2 (w = c_target; DDPM's
              L_simple for eps, Ho et al. 2020, Eq. 14; flow matching for velocity).
    p2        SNR / (k + SNR)^gamma (Choi et al. 2022, "Perception prioritized training", Eq. 8:
              lambda'_t = lambda_t / (k + SNR(t))^gamma with lambda_t the weight that makes the
              eps loss simple).  gamma = 0 is the simple eps loss; gamma = 1, k = 1 their choice.
              It lowers the weight of the near-clean levels, where only imperceptible details are
              learnt.
    min-snr   min(SNR, gamma) (Hang et al. 2023, "Efficient diffusion training via min-SNR
              weighting", Eq. 9; gamma = 5): the x0 loss with the near-clean levels capped.  In eps
              units min(SNR, gamma) / SNR, in v units min(SNR, gamma) / (SNR + 1).
    edm       (s^2 + s_d^2) / (s s_d)^2 = SNR + 1 / s_d^2 with s = sigma / alpha the noise level of
              x_t / alpha = x0 + s eps (Karras et al. 2022, "Elucidating the design space",
              Table 1, lambda(sigma); their denoiser D regresses x0 directly).  s_d is the data's
              standard deviation.  EDM draws s log-normally: ``train.timesteps = "edm"``
              (objectives.py).
    sigmoid   SNR * sigmoid(b - lambda), i.e. sigmoid(b - lambda) on the eps loss (Kingma & Gao
              2023, "Understanding diffusion objectives as the ELBO", Sec. 5, their weighting
              w(lambda) = sigmoid(b - lambda)).  Their total weighting also multiplies by the density
              of lambda; here that density is the one train.timesteps draws from.
    snr+1     SNR + 1 (Salimans & Ho 2022, Sec. 4, "SNR+1" weighting): the v loss of a
              variance-preserving path, on any target and path.
    likelihood  SNR r(t) / p(t), i.e. r(t) / p(t) on the eps loss, with r = -d log SNR / d t
              (Schedule.log_snr_rate_at) and p the density of the times train.timesteps draws
              (objectives.time_density; importance-sampled times count as uniform, their own
              q / p factor does the rest).  Then E_t [w ||e_x0||^2] = int r ||e_eps||^2 dt, twice
              the diffusion term of the continuous-time ELBO (Kingma et al. 2021, "Variational
              diffusion models", Eq. 17: L = -1/2 E_t [SNR'(t) ||x0 - x0_hat||^2]).  It is the
              likelihood weighting lambda(t) = g(t)^2 of Song et al. 2021, "Maximum likelihood
              training of score-based diffusion models", Thm. 1: with s = -eps / sigma,
              g^2 ||s_err||^2 = g^2 / sigma^2 ||e_eps||^2 and g^2 = -sigma^2 d log SNR / d t for
              x_t = alpha x0 + sigma eps.  Their importance sampling of t, p proportional to
              g^2 / sigma^2 = r, is train.timesteps = "logsnr": uniform in log SNR, where the
              weight is the constant log-SNR range.  (Kingma & Gao 2023 call it w(lambda) = 1.)
              Unlike the others it depends on the schedule's speed, not only on SNR: the caller
              passes r / p as ``elbo_rate``.  Under logit-normal or EDM times r / p grows faster
              than the loss falls in their Gaussian tails (the loss's variance is infinite), so
              config.py refuses those pairs.

Guards: the flow path reaches SNR = 0 at t = 1 (alpha = 0).  Every w above is finite there (the
likelihood weight SNR r = 2 alpha / sigma^3 on the flow path goes to 0 there, where r is infinite) and
c_target > 0 for x0, v and velocity; eps has c_eps = 0 there, which is why config.py refuses eps on
the flow path.  SNR = inf (t = 0, sigma = 0) is never drawn (objectives.sample_times).  Weights are
computed in float64 from alpha and sigma, never from a stored SNR that could overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .choices import WEIGHTINGS  # the names, importable without torch
from .prediction import PREDICTIONS


def x0_error_factor(prediction: str, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """c such that ||e_prediction||^2 = c ||e_x0||^2 at (alpha, sigma) (the module's table)."""
    if prediction == "eps":
        return (alpha / sigma) ** 2
    if prediction == "x0":
        return torch.ones_like(alpha)
    if prediction == "v":
        return (alpha**2 + sigma**2) ** 2 / sigma**2
    if prediction == "velocity":
        return ((alpha + sigma) / sigma) ** 2
    raise ValueError(f"unknown prediction {prediction!r}; expected one of {', '.join(PREDICTIONS)}")


@dataclass(frozen=True)
class Weighting:
    """A weighting w(lambda) on the x0-error and its parameters (defaults: the papers' values)."""

    name: str = "none"
    p2_gamma: float = 1.0
    p2_k: float = 1.0
    min_snr_gamma: float = 5.0
    sigma_data: float = 1.0
    sigmoid_bias: float = 0.0

    def __post_init__(self):
        if self.name not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.name!r}; expected one of {', '.join(WEIGHTINGS)}")
        for key in ("p2_k", "min_snr_gamma", "sigma_data"):
            if not getattr(self, key) > 0:
                raise ValueError(f"weighting {key} must be > 0, got {getattr(self, key)!r}")
        if not self.p2_gamma >= 0:
            raise ValueError(f"weighting p2_gamma must be >= 0, got {self.p2_gamma!r}")

    @property
    def needs_elbo_rate(self) -> bool:
        """Whether the weight depends on the schedule and the time distribution (``elbo_rate``)."""
        return self.name == "likelihood"

    def on_x0(self, alpha: torch.Tensor, sigma: torch.Tensor, elbo_rate: torch.Tensor | None = None) -> torch.Tensor:
        """w at (alpha, sigma), the weight of ||x0_hat - x0||^2 (float64).  ``elbo_rate``: the
        likelihood weighting's -d log SNR / d t over the density of t (objectives.elbo_rate)."""
        alpha, sigma = alpha.double(), sigma.double()
        snr = (alpha / sigma) ** 2
        if self.name == "none":
            raise ValueError("the 'none' weighting has no x0 form of its own: it is each target's simple loss")
        if self.name == "likelihood":
            rate = self._rate(elbo_rate)
            return torch.where(alpha == 0, torch.zeros_like(snr), snr * rate)  # SNR r -> 0 where r -> inf as 1 / alpha
        if self.name == "p2":
            return snr / (self.p2_k + snr) ** self.p2_gamma
        if self.name == "min-snr":
            return snr.clamp(max=self.min_snr_gamma)
        if self.name == "edm":
            return snr + 1.0 / self.sigma_data**2
        if self.name == "sigmoid":
            # SNR * sigmoid(b - lambda) = SNR / (1 + SNR e^-b): finite at SNR = 0 and as SNR -> inf
            return snr / (1.0 + snr * torch.exp(torch.tensor(-self.sigmoid_bias, dtype=snr.dtype)))
        return snr + 1.0  # snr+1

    def on_target(self, prediction: str, alpha: torch.Tensor, sigma: torch.Tensor, elbo_rate: torch.Tensor | None = None) -> torch.Tensor:
        """The weight of ||prediction_hat - prediction||^2: w / c_prediction (float64, shape of alpha)."""
        if self.name == "none":
            return torch.ones_like(alpha, dtype=torch.float64)
        alpha, sigma = alpha.double(), sigma.double()
        if prediction == "eps" and self.name == "likelihood":
            return self._rate(elbo_rate).clone()  # exact: SNR r / SNR
        if prediction == "eps" and self.name in ("p2", "min-snr", "sigmoid"):
            # Closed forms of w / SNR, exact at SNR = 0 where the division would be 0 / 0.
            snr = (alpha / sigma) ** 2
            if self.name == "p2":
                return 1.0 / (self.p2_k + snr) ** self.p2_gamma
            if self.name == "min-snr":
                return (self.min_snr_gamma / snr).clamp(max=1.0)
            return torch.sigmoid(self.sigmoid_bias - torch.log(snr))
        return self.on_x0(alpha, sigma, elbo_rate) / x0_error_factor(prediction, alpha, sigma)

    def _rate(self, elbo_rate: torch.Tensor | None) -> torch.Tensor:
        if elbo_rate is None:
            raise ValueError("the likelihood weighting needs elbo_rate, -d log SNR / d t over the density of t (objectives.elbo_rate)")
        return torch.as_tensor(elbo_rate, dtype=torch.float64)

    @property
    def describe(self) -> str:
        detail = {
            "none": "",
            "p2": f" (gamma {self.p2_gamma:g}, k {self.p2_k:g})",
            "min-snr": f" (gamma {self.min_snr_gamma:g})",
            "edm": f" (sigma_data {self.sigma_data:g})",
            "sigmoid": f" (b {self.sigmoid_bias:g})",
            "snr+1": "",
            "likelihood": " (-d log SNR / dt over the density of t: the ELBO)",
        }[self.name]
        return f"{self.name} weighting{detail}"
