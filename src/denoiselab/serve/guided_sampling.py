"""The sample request's gradient_guidance block: classifier guidance, inpainting a held-out
image, observed coordinates of a point run, a region of a point run, and the guidance term of each
reverse step (twisted SMC, method "smc", is smc_sampling.py's).

The wrappers are gradient_guidance.py's, built by runs/guided.py exactly as the CLI builds them
(``guided_wrapper``, ``inpaint_wrapper``), which also say where the run cannot serve a request
(a PlanError, whose field ``request_field`` names as the request does); this module turns the
request into their arguments (a 422 naming the field where the block itself is wrong: a box, a
bitmask) and records what the guidance changed.

The guidance term of a step is eps_guided(x_t, t) - eps_unguided(x_t, t), both read at the
sampler's x_t: in eps space and already multiplied by sigma_t (gradient_guidance.py's
convention; for classifier guidance it is -s sigma_t grad log p(y | x_t)).  The unguided eps is
the one the guided wrapper computed anyway where the model saw x_t itself (classifier guidance,
DPS); replacement shows the model a different x_t (the known pixels re-noised), so there the
unguided model is called once more per step, for the panel only ("display_evaluations").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import numpy as np
import torch
from fastapi import HTTPException

from ..gradient_guidance import GuidanceCounts, paste_observed
from ..prediction import resolve
from ..runs import SamplingPlan
from ..runs.guided import GuidanceRequest, InpaintRequest, guided_wrapper, held_out_image, inpaint_wrapper, observed_point
from .request_models import GradientGuide


@dataclass
class GuidedSampling:
    """What one request's guidance needs: the model wrapper, the sampler's label, the known
    values to paste, and per sampler step the guidance term."""

    guide: GradientGuide
    wrap: object
    request: GuidanceRequest | InpaintRequest  # what the reply's description says (runs.plan.describe_draw)
    label: int | None = None
    known: tuple[torch.Tensor, torch.Tensor] | None = None  # (mask, values), one sample's shape, model units
    known_data: np.ndarray | None = None  # the known values in data units (the image, or the point)
    counts: GuidanceCounts = field(default_factory=GuidanceCounts)
    display_evaluations: int = 0
    _pending: list = field(default_factory=list)  # (term, x0, eps) of the model calls since the last step
    steps: list = field(default_factory=list)  # per sampler step: (guidance term, guided x0-hat, guided eps-hat) or None

    @property
    def uses_gradients(self) -> bool:
        return uses_gradients(self.guide)

    def model_wrapper(self, run, record: bool):
        """model_fn -> guided model_fn; with ``record`` each call's guidance term is kept."""
        schedule, prediction = run.schedule, run.config.model.prediction
        unguided_y = (lambda y: None) if self.guide.classifier is not None else (lambda y: y)

        def wrapper(model_fn):
            seen: dict = {}

            def capture(x, t, y=None):  # the model's plain output where the guided wrapper called it
                out = model_fn(x, t, y)
                seen.update(x=x, t=t, y=y, out=out)
                return out

            guided = self.wrap(capture)
            if not record:
                return guided

            def recorded(x, t, y=None):
                seen.clear()
                out = guided(x, t, y)
                if seen and seen["t"] is t and torch.equal(seen["x"].detach(), x) and seen["y"] is unguided_y(y):
                    plain = seen["out"].detach()
                else:
                    self.display_evaluations += 1
                    plain = model_fn(x, t, unguided_y(y))
                alpha = schedule.alpha_at(t.double().cpu()).to(x)
                sigma = schedule.sigma_at(t.double().cpu()).to(x)
                d = resolve(out.detach(), prediction, x, alpha, sigma)
                eps_plain = resolve(plain, prediction, x, alpha, sigma).eps
                self._pending.append((d.eps - eps_plain, d.x0, d.eps))
                return out

            return recorded

        return wrapper

    def step_done(self) -> None:
        """After each sampler step: its first model call was at (x_t, t), the record's own."""
        self.steps.append(self._pending[0] if self._pending else None)
        self._pending.clear()

    def paste(self, x_model: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The final samples (model units) with the known values pasted in, and the largest
        change that made (how far the sampler itself landed from the observation)."""
        mask, values = self.known
        pasted = paste_observed(x_model, mask, values)
        return pasted, float((pasted - x_model).abs().max())

    def summary(self) -> dict:
        g = self.guide
        out: dict = {"kind": g.kind, "uses_gradients": self.uses_gradients}
        if g.classifier is not None:
            out.update(label=self.label, scale=g.classifier.scale)
        else:
            out.update(method=g.spec.method, scale=g.spec.scale)
        if g.region is not None:
            out["region"] = g.region.expression
        c = self.counts
        out.update(
            evaluations=c.evaluations,
            backward_passes=c.model_backward,
            other_gradients=c.other_gradients,
            display_evaluations=self.display_evaluations,
            cost=c.summary(),
        )
        return out


def uses_gradients(guide: GradientGuide) -> bool:
    """Whether the guidance differentiates through the model (all but replacement)."""
    return guide.classifier is not None or guide.spec.method != "replace"


def observed(spec) -> dict[int, float]:
    """An observe block's values ({"x1": 0.5}, 1-based) as runs.guided reads them ({0: 0.5})."""
    return {int(k[1:]) - 1: v for k, v in spec.values.items()}


def request_field(guide: GradientGuide, field: str) -> str:
    """The request's name for a field that runs.guided's errors name."""
    names = {
        "classifier_scale": "gradient_guidance.classifier",
        "observe": "gradient_guidance.observe.values",
        "method": f"gradient_guidance.{guide.kind}.method",
        "image": "gradient_guidance.inpaint.image",
        "particles": f"gradient_guidance.{guide.kind}.particles",
        "region": "gradient_guidance.region.expression",
        "sampler": "sampler",
    }
    return names.get(field, f"gradient_guidance.{guide.kind}")


def _fail(where: str, message: str) -> HTTPException:
    return HTTPException(422, f"gradient_guidance.{where}: {' '.join(str(message).split())}")


def known_mask(guide, height: int, width: int) -> torch.Tensor:
    """The known pixels (H, W) of an inpaint block: everything but its boxes, or its bitmask."""
    if guide.boxes is not None:
        mask = torch.ones(height, width, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(guide.boxes):
            if not (x0 < x1 <= width and y0 < y1 <= height):
                raise _fail(f"inpaint.boxes.{i}", f"[x0, y0, x1, y1] must lie inside the {width} x {height} image with x0 < x1 and y0 < y1, got {[x0, y0, x1, y1]}")
            mask[y0:y1, x0:x1] = False
    else:
        size = -(-height * width // 8)
        try:
            raw = base64.b64decode(guide.bitmask, validate=True)
        except (binascii.Error, ValueError):
            raise _fail("inpaint.bitmask", "not valid base64") from None
        if len(raw) != size:
            raise _fail("inpaint.bitmask", f"expected {size} bytes (the {height} x {width} image's bits, row-major, 1 = known), got {len(raw)}")
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[: height * width]
        mask = torch.as_tensor(bits.reshape(height, width).astype(bool))
    if mask.all() or not mask.any():
        raise _fail("inpaint", "the mask must leave some pixels known and some unknown")
    return mask


def prepare(run, guide: GradientGuide, plan: SamplingPlan) -> GuidedSampling:
    """The wrapper and known values for ``guide`` on ``run``, sampled as ``plan`` says (its label
    is the classifier's class)."""
    counts = GuidanceCounts()
    if guide.classifier is not None:
        request = GuidanceRequest(classifier_scale=guide.classifier.scale)
        wrap, _ = guided_wrapper(run, request, plan.seed, counts)
        return GuidedSampling(guide, wrap, request, label=plan.label, counts=counts)
    if guide.inpaint is not None:
        spec = guide.inpaint
        image = held_out_image(run, spec.image)
        mask = known_mask(spec, image.shape[-2], image.shape[-1])
        wrap, known = inpaint_wrapper(run, image, mask, spec.method, spec.scale, plan.seed, counts)
        request = InpaintRequest(f"held-out image {spec.image}", spec.method, spec.scale)
        return GuidedSampling(guide, wrap, request, known=known, known_data=image, counts=counts)
    if guide.region is not None:  # loss guidance on the squared violation, as the command line's --region
        request = GuidanceRequest(region=guide.region.expression, scale=guide.region.scale)
        wrap, _ = guided_wrapper(run, request, plan.seed, counts)
        return GuidedSampling(guide, wrap, request, counts=counts)
    spec = guide.observe
    observe = observed(spec)
    request = GuidanceRequest(observe=observe, method=spec.method, scale=spec.scale)
    wrap, known = guided_wrapper(run, request, plan.seed, counts)
    return GuidedSampling(guide, wrap, request, known=known, known_data=observed_point(run, observe), counts=counts)
