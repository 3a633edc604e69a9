"""Twisted SMC in the Reverse view: the observe or region block with method "smc" on a point run.

The draw is runs/guided_smc.py's (``draw_smc`` with the twist runs/guided.py builds for the
command line, ``smc_twist``): K particles per requested sample moved by ancestral DDPM steps,
weighted and resampled (smc.py; Wu et al. 2023, TDS, Algorithm 1).  So every frame of the reply
holds the whole population, n x K particles (rows g K .. g K + K - 1 are sample g's), and this
module adds what a picture of it needs:

* per frame, ``weights``: each particle's normalised weight within its sample's K (they sum to 1
  over each group), the weights of the frame's x_t after any resampling at that step;
* ``smc``: the ESS per step (the mean over the n samples of (sum w)^2 / sum w^2, before that
  step's resampling, so a dip shows what triggered it), the steps that resampled, the final
  population's weights and the particle each sample was drawn from (``chosen``, rows of the last
  frame's x_next), the model evaluations per sample, the command line's ESS line and its collapse
  warning; the observed values in the reply's (model) units (``observed``, for a line on the
  page), or for a region how many samples lie inside it (``inside``).

The reply's ``samples`` are the n drawn particles.  Nothing is pasted: the last step conditions on
the observed values (smc.observation_twist), so they hold exactly already; a region's last step
weighs by its hard indicator (smc.region_twist).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from fastapi import HTTPException

from ..gradient_guidance import GuidanceCounts
from ..runs import SamplingPlan
from ..runs.guided import GuidanceRequest, describe_inside, observed_point, request_region, smc_twist
from ..runs.guided_smc import SMC, check_particles, check_smc_plan, collapse_warning, default_steps, draw_smc, ess_line, report
from ..smc import DEFAULT_ESS_THRESHOLD, ParticleRecord, Twist
from .guided_sampling import observed
from .limits import MAX_FRAME_POINTS, MAX_FRAME_VALUES, MAX_STEPS
from .payloads import panel
from .request_models import GradientGuide


def is_smc(guide: GradientGuide | None) -> bool:
    """Whether the request's guidance is drawn by twisted SMC."""
    return guide is not None and (guide.observe or guide.region) is not None and guide.spec.method == SMC


def plan_defaults(run, guide: GradientGuide, sampler: str | None, steps: int | None, n: int | None) -> tuple[str, int, int | None]:
    """The sampler, steps and n of an SMC request that leaves them out: as the command line picks
    them, DDPM (the transition whose densities weight the particles) on guided_smc.default_steps,
    held to the page's MAX_STEPS; and as many samples as fill a frame with particles."""
    k = check_particles(guide.spec.particles)
    if n is None:
        n = max(1, min(run.config.sample.n, MAX_FRAME_POINTS // k))
    return sampler or "ddpm", min(default_steps(run), MAX_STEPS) if steps is None else steps, n


@dataclass
class SmcSampling:
    """One SMC request: its twist and particles, and what the draw left (counts, record).  It
    answers build_reply as guided_sampling.GuidedSampling does: ``request`` for the description,
    ``summary()``, no ``known`` values to paste and no guidance-term panel (``steps``)."""

    guide: GradientGuide
    request: GuidanceRequest
    twist: Twist
    particles: int
    counts: GuidanceCounts = field(default_factory=GuidanceCounts)
    record: ParticleRecord | None = None
    evaluations: int = 0  # per sample
    steps: list = field(default_factory=list)  # one None per step: SMC has no guidance-term panel
    observed: dict = field(default_factory=dict)  # "x1" -> the observed value in model units (the reply's units)
    known = None  # nothing to paste

    def draw(self, run, plan: SamplingPlan, on_step) -> tuple[torch.Tensor, float]:
        """x_T (n K particles) and the seconds the draw took; ``on_step`` gets every step's record."""
        self.record = ParticleRecord(self.particles, weights=[])
        t0 = time.perf_counter()
        try:
            drawn, _ = draw_smc(run, plan, self.twist, self.particles, self.counts, on_step=self._stepped(on_step), record=self.record)
        except ValueError as exc:  # the sampler's own checks
            raise HTTPException(422, " ".join(str(exc).split())) from None
        self.evaluations = drawn.evaluations
        return drawn.x_T, time.perf_counter() - t0

    def _stepped(self, on_step):
        def both(r):
            on_step(r)
            self.steps.append(None)

        return both

    def summary(self) -> dict:
        c = self.counts
        where = {"region": self.request.region} if self.guide.region is not None else {
            "known_values": {f"x{i + 1}": v for i, v in sorted(self.request.observe.items())},  # data units
        }  # fmt: skip
        return {
            "kind": self.guide.kind,
            "uses_gradients": True,
            "method": SMC,
            "scale": None,
            "particles": self.particles,
            "evaluations": c.evaluations,
            "backward_passes": c.model_backward,
            "other_gradients": c.other_gradients,
            "display_evaluations": 0,
            "cost": c.summary(),
            **where,
        }

    def add_to_reply(self, run, out: dict, final_particles: torch.Tensor, frames: bool) -> dict:
        """``out`` (build_reply's) with the drawn samples (rows of ``final_particles``, the last
        step's n K particles), each frame's weights and the ``smc`` block."""
        rec, k, n, steps = self.record, self.particles, out["n"], len(self.steps)
        if k == 1:  # one particle per sample: nothing is weighted, and each particle is its sample
            weights, final, chosen, ess, worst = [torch.ones(n, 1)] * steps, torch.ones(n, 1), torch.arange(n), [1.0] * steps, [1.0] * steps
        else:
            weights, final, chosen = rec.weights, rec.final_weights, rec.pick + k * torch.arange(n)
            ess, worst = [float(e.mean()) for e in rec.ess], [float(e.min()) for e in rec.ess]
        samples = final_particles[chosen]
        out["samples"] = panel(samples)
        if frames:
            for f, w in zip(out["frames"], weights):
                f["weights"] = _rounded(w)
        out["smc"] = {
            **report(rec, self.evaluations),
            "samples": n,
            "ess": [round(e, 4) for e in ess],
            "ess_worst": [round(e, 4) for e in worst],
            "ess_threshold": DEFAULT_ESS_THRESHOLD,
            "resampled": list(rec.resampled),
            "final_weights": _rounded(final),
            "chosen": [int(i) for i in chosen],
            "line": ess_line(rec, self.evaluations),
            "warning": collapse_warning(rec, "more particles K or more steps help"),
            "observed": self.observed,
        }
        if self.request.region is not None:  # "12 of 30 samples inside abs(x1) < 0.3 (40.0 %); the training data: 9.5 %"
            out["smc"]["inside"] = describe_inside(run, request_region(run, self.request), run.to_data_units(samples))
        return out


def prepare(run, guide: GradientGuide, plan: SamplingPlan) -> SmcSampling:
    """The twist and particles of ``guide`` (an observe or region block with method smc) on
    ``run``; a PlanError where the run or the plan cannot have it (an image run, a sampler other
    than DDPM, a value far outside the data, an expression that is not a region)."""
    check_smc_plan(plan)
    spec, k = guide.spec, check_particles(guide.spec.particles)
    if guide.region is not None:
        request = GuidanceRequest(region=spec.expression, method=SMC, particles=spec.particles)
        return SmcSampling(guide, request, smc_twist(run, request), k)
    request = GuidanceRequest(observe=observed(spec), method=SMC, particles=spec.particles)
    twist = smc_twist(run, request)  # checks the values against the run (observed_point)
    model = run.normalization.encode(observed_point(run, request.observe))
    in_model_units = {f"x{i + 1}": round(float(model[i]), 6) for i in sorted(request.observe)}
    return SmcSampling(guide, request, twist, k, observed=in_model_units)


def check_bounds(plan: SamplingPlan, particles: int, frames: bool) -> None:
    """The page's bounds on the population: n K particles per panel with frames, and n K x steps
    (each a forward and a backward pass) with or without them."""
    n, k, steps = plan.n, particles, plan.steps
    if frames and n * k > MAX_FRAME_POINTS:
        raise HTTPException(
            422, f"n: n x particles must be at most {MAX_FRAME_POINTS} when every step is returned (frames), got {n} x {k} = {n * k}; ask for fewer points or particles"
        )
    if n * k * steps > MAX_FRAME_VALUES:
        raise HTTPException(422, f"n: n x particles x steps must be at most {MAX_FRAME_VALUES}, got {n} x {k} x {steps} = {n * k * steps}; ask for fewer points, particles or steps")


def _rounded(w: torch.Tensor) -> list[float]:
    """Weights (groups, K) as one row-major list, 4 significant digits (about 10 characters each)."""
    return [float(f"{v:.4g}") for v in w.reshape(-1).tolist()]
