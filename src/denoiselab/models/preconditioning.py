"""EDM preconditioning (Karras et al. 2022, "Elucidating the design space of diffusion-based
generative models", Sec. 5 and Table 1) as a wrapper around any network, on any schedule.

EDM writes a noised example as x = x0 + s n with noise level s, and the denoiser as (Eq. 7)

    D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x; c_noise(s)),

with F the raw network and (Table 1, "Network and preconditioning", sigma_data = s_d)

    c_skip = s_d^2 / (s^2 + s_d^2),  c_out = s s_d / sqrt(s^2 + s_d^2),  c_in = 1 / sqrt(s^2 + s_d^2),

chosen so that F's input and its effective training target both have unit variance at every
noise level (App. B.6), and the skip carries what the input already says about x0.  Any of our
schedules is such a path after scaling: x_t = alpha x0 + sigma eps gives x_t / alpha = x0 + s eps
with s = sigma / alpha (EDM Sec. 2, their s(t) scaling), so D is an x0-prediction in the EDM
coordinates x = x_t / alpha.  Written on x_t, with alpha and sigma, every factor stays finite
where alpha = 0 (the flow path's t = 1, s = infinity):

    c_in x   = x_t / sqrt(sigma^2 + alpha^2 s_d^2)
    c_skip x = s_d^2 alpha x_t / (sigma^2 + alpha^2 s_d^2)
    c_out    = sigma s_d / sqrt(sigma^2 + alpha^2 s_d^2).

c_noise: EDM's VP column of Table 1 conditions the network on the time itself ((M - 1) t), and
so does this wrapper: the network sees the schedule's t in [0, 1], the input its time embedding
is built for (a monotone function of s, so the same information as EDM's ln(s) / 4).

The wrapper's output is converted from D to the recipe's prediction type (prediction.target at
the same alpha and sigma), so objectives, weightings, samplers and guidance read it as they read
any network; x0 is the natural type (no conversion, no division by a small sigma).  With
train.weighting = "edm" (weighting.py: SNR + 1 / s_d^2 on the x0-error, EDM's lambda(s)) and
train.timesteps = "edm" (objectives.py: ln s ~ N(P_mean, P_std^2)) the loss is EDM's: unit
weight on F's error.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..prediction import expand, target
from ..schedules import Schedule

# (alpha, sigma) -> (a_skip, a_out, a_in), per-sample factors on x_t:
# D = a_skip x_t + a_out F(a_in x_t, t).
Coefficients = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def edm_coefficients(sigma_data: float) -> Coefficients:
    """EDM's c_skip, c_out and c_in (Table 1) for data of standard deviation ``sigma_data``,
    as factors on x_t = alpha (x0 + s eps): a_skip = c_skip / alpha, a_out = c_out, a_in = c_in / alpha."""

    def coefficients(alpha: torch.Tensor, sigma: torch.Tensor):
        norm = sigma**2 + (alpha * sigma_data) ** 2  # alpha^2 (s^2 + s_d^2)
        return sigma_data**2 * alpha / norm, sigma * sigma_data / norm.sqrt(), norm.rsqrt()

    return coefficients


def edm_reference(s: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """c_skip, c_out, c_in of Table 1 at noise level s, in the paper's coordinates x = x0 + s n."""
    return sigma_data**2 / (s**2 + sigma_data**2), s * sigma_data / (s**2 + sigma_data**2).sqrt(), 1 / (s**2 + sigma_data**2).sqrt()


class Preconditioned(nn.Module):
    """``net`` wrapped as D(x_t, t) = a_skip x_t + a_out net(a_in x_t, t, y), read out as
    ``prediction`` (the model-function contract: ``forward(x_t, t, y=None)``; t float (B,) or a
    scalar in [0, 1]).  Only the network has parameters: the wrapped state dict is net's, under
    ``net.``."""

    def __init__(self, net: nn.Module, schedule: Schedule, prediction: str, coefficients: Coefficients, name: str = "edm"):
        super().__init__()
        self.net, self.schedule, self.prediction, self.coefficients, self.name = net, schedule, prediction, coefficients, name

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        t64 = t.detach().double().cpu()
        alpha = self.schedule.alpha_at(t64)
        sigma = self.schedule.sigma_at(t64)
        a_skip, a_out, a_in = (expand(c.to(x_t.dtype).to(x_t.device), x_t) for c in self.coefficients(alpha, sigma))
        denoised = a_skip * x_t + a_out * self.net(a_in * x_t, t, y)
        if self.prediction == "x0":
            return denoised
        a, s = alpha.to(x_t.dtype).to(x_t.device), sigma.to(x_t.dtype).to(x_t.device)
        return target(self.prediction, denoised, (x_t - expand(a, x_t) * denoised) / expand(s, x_t), a, s)


def precondition(net: nn.Module, kind: str, schedule: Schedule, prediction: str, sigma_data: float) -> nn.Module:
    """The recipe's model.precondition: "none" (``net`` itself) or "edm" (Preconditioned)."""
    if kind == "none":
        return net
    if kind == "edm":
        return Preconditioned(net, schedule, prediction, edm_coefficients(sigma_data))
    raise ValueError(f"unknown preconditioning {kind!r}; expected none or edm")
