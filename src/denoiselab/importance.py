"""Importance sampling of training times by the loss (Nichol & Dhariwal 2021, "Improved denoising
diffusion probabilistic models", Sec. 3.3, Eq. 18; improved-diffusion's LossSecondMomentResampler).

The objective is L = E_{t ~ q} [l(t)] with q the uniform time distribution (uniform k on a chain,
uniform t in (0, 1] on the flow path) and l(t) a term's loss.  Drawing t from another density p
and weighting each term by q(t) / p(t) keeps the expectation:

    E_{t ~ p} [ q(t) / p(t) l(t) ] = E_{t ~ q} [ l(t) ],

and the variance of that estimate is smallest for p proportional to q(t) sqrt(E[l(t)^2]).  Time is
cut into ``bins`` (consecutive chain steps, or equal intervals of t on the flow path; uniform
within a bin), each bin keeps the last ``history`` per-sample losses it was trained with, and

    p_b = (1 - u) q_b sqrt(mean l_b^2) / sum_c q_c sqrt(mean l_c^2) + u q_b,

mixing in a share u of the uniform distribution so no bin's weight q_b / p_b exceeds 1 / u.
Until every bin holds ``history`` losses, p = q (and every weight is exactly 1).  With equal bins,
q_b = 1 / bins and the weight is 1 / (bins p_b) as in the paper.

The state (the loss history and how many losses each bin has seen) is a pair of tensors that the
training checkpoint stores, so a resumed run draws the same times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batch_draws import BatchDraws
from .schedules import Schedule


@dataclass(frozen=True)
class TimeDraw:
    """Training times t (float64), the bin of each, and its weight q / p (float64)."""

    t: torch.Tensor
    bins: torch.Tensor
    weights: torch.Tensor


class ImportanceSampler:
    """Loss-aware time sampler; ``draw`` and ``update`` are called once per training step."""

    def __init__(self, schedule: Schedule, bins: int = 50, history: int = 10, uniform: float = 0.01):
        if schedule.is_chain and bins > schedule.T:
            raise ValueError(f"importance bins ({bins}) must be <= the chain's T ({schedule.T}): each bin holds whole steps")
        self.schedule, self.n_bins, self.history_length, self.uniform = schedule, bins, history, uniform
        if schedule.is_chain:
            # bin b holds the steps edges[b] + 1 .. edges[b + 1]
            self.step_edges = torch.round(torch.linspace(0, schedule.T, bins + 1, dtype=torch.float64)).long()
            self.time_edges = self.step_edges.double() / schedule.T
        else:
            self.time_edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
        self.q = self.time_edges.diff()  # the uniform distribution's mass of each bin
        self.history = torch.zeros(bins, history, dtype=torch.float64)
        self.counts = torch.zeros(bins, dtype=torch.int64)

    @property
    def warmed_up(self) -> bool:
        return bool((self.counts >= self.history_length).all())

    def probabilities(self) -> torch.Tensor:
        """p_b of each bin (float64, sums to 1)."""
        if not self.warmed_up:
            return self.q.clone()
        score = self.q * self.history.pow(2).mean(1).sqrt()
        if not float(score.sum()) > 0:  # every loss exactly 0: nothing to prefer
            return self.q.clone()
        return (1.0 - self.uniform) * score / score.sum() + self.uniform * self.q

    def density(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin edges in t, p per unit of t in each bin): the learned density over time."""
        return self.time_edges.numpy(), (self.probabilities() / self.q).numpy()

    def draw(self, n: int, generator) -> TimeDraw:
        p = self.probabilities()
        draws = BatchDraws.of(generator, n)  # a generator, or a global batch's draws (batch_draws.py)
        bins = draws.multinomial(p, n)
        u = draws.rand((n,))
        if self.schedule.is_chain:
            lo = self.step_edges[bins]
            size = self.step_edges[bins + 1] - lo
            k = lo + 1 + (u * size).long().clamp(max=size - 1)
            t = k.double() / self.schedule.T
        else:
            # (lo, hi]: never t = 0 (clean data), as sample_times
            t = self.time_edges[bins + 1] - u * (self.time_edges[bins + 1] - self.time_edges[bins])
        return TimeDraw(t, bins, self.q[bins] / p[bins])

    def update(self, bins: torch.Tensor, losses: torch.Tensor) -> None:
        """Append each term's loss to its bin's history (a ring of the last ``history`` losses);
        within a batch, terms count in order, so only a bin's last ``history`` terms are kept."""
        b = bins.cpu().numpy()
        values = losses.detach().double().cpu()
        order = np.argsort(b, kind="stable")
        sorted_bins = b[order]
        first = np.searchsorted(sorted_bins, sorted_bins, side="left")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(b)) - first  # how many earlier terms of this batch share the bin
        per_bin = np.bincount(b, minlength=self.n_bins)
        keep = rank >= per_bin[b] - self.history_length
        kb = torch.as_tensor(b[keep])
        slot = (self.counts[kb] + torch.as_tensor(rank[keep])) % self.history_length
        self.history[kb, slot] = values[torch.as_tensor(keep)]
        self.counts += torch.as_tensor(per_bin)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"history": self.history.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        history, counts = state["history"], state["counts"]
        if history.shape != self.history.shape or counts.shape != self.counts.shape:
            raise ValueError(
                f"importance sampler state of shape {tuple(history.shape)} does not match "
                f"{self.n_bins} bins x {self.history_length} losses"
            )
        self.history = history.to(torch.float64).cpu().clone()
        self.counts = counts.to(torch.int64).cpu().clone()
