"""The denoiser a sampler sees: D(x, t) -> (x0_hat, eps_hat), built once per sampling call.

A sampler asks one question of the model at each point it visits: what are the clean data and
the noise behind x at time t?  ``Denoiser`` answers it for any model function, whatever it
predicts (eps, x0, v or a flow velocity: prediction.resolve), with its labels and the optional
clamp of the clean estimate fixed when it is built.  This is the contract of k-diffusion
(Crowson's ``sampling.py``: every sampler takes a denoiser and the noise levels it visits) and of
EDM (Karras et al. 2022, Algorithm 1, D(x; sigma)), written in time t with the schedule's
(alpha, sigma) rather than in sigma alone, so one sampler serves every path of schedules.py.

Guidance (guidance.classifier_free, gradient_guidance.*) and counting (stepping.CountingModel)
wrap the model function, ``model_fn -> model_fn``, before the Denoiser is built: no sampler
knows about either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..prediction import Denoised, resolve
from ..schedules import Schedule

ModelFn = Callable[..., torch.Tensor]  # model_fn(x_t, t, y=None) -> prediction


@dataclass(frozen=True, eq=False)
class Denoiser:
    """``model_fn`` read on ``schedule`` as a ``prediction``, with labels ``y`` (None: an
    unconditional model) and the clean estimate clamped to [-clip_x0, clip_x0] when set."""

    model_fn: ModelFn
    schedule: Schedule
    prediction: str = "eps"
    y: torch.Tensor | None = None
    clip_x0: float | None = None

    def __call__(self, x: torch.Tensor, t: float) -> Denoised:
        """Call the model at time t and read its output as (x0, eps).

        The clamp recomputes eps from the clamped x0 so that the two stay consistent:
        x = alpha x0 + sigma eps holds after it as before.
        """
        schedule, prediction, clip_x0 = self.schedule, self.prediction, self.clip_x0
        t = float(t)
        alpha, sigma = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        if alpha == 0.0 and prediction == "eps":
            # x0 = (x - sigma eps) / alpha has no value where the path holds no signal.
            raise ValueError(
                f"an eps-prediction model cannot be read at t = {t:g}, where alpha = 0 ({schedule.name} path); "
                "start the grid below 1 or predict velocity, x0 or v"
            )
        tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        out = resolve(self.model_fn(x, tt, self.y), prediction, x, alpha, sigma)
        if clip_x0 is not None:
            x0 = out.x0.clamp(-clip_x0, clip_x0)
            out = Denoised(x0, (x - alpha * x0) / sigma)
        return out
