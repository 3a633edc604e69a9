"""The sample request's gradient_guidance block: classifier guidance, inpainting a held-out
image, observed coordinates of a point run, and the guidance term of each reverse step.

The wrappers are gradient_guidance.py's, built by runs/guided.py exactly as the CLI builds them
(``guided_wrapper``, ``inpaint_wrapper``); this module turns the request into their arguments
(a 422 naming the field where the run cannot serve it) and records what the guidance changed.

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

from ..classifiers import ClassifierError
from ..gradient_guidance import GuidanceCounts, paste_observed
from ..prediction import resolve
from ..runs import HELD_OUT, RunError, SamplingError, held_out_images, resolve_label
from ..runs.guided import GuidanceRequest, guided_wrapper, inpaint_wrapper
from .request_models import GradientGuide


@dataclass
class GuidedSampling:
    """What one request's guidance needs: the model wrapper, the sampler's label, the known
    values to paste, and per sampler step the guidance term."""

    guide: GradientGuide
    wrap: object
    label: int | None = None
    known: tuple[torch.Tensor, torch.Tensor] | None = None  # (mask, values), one sample's shape, model units
    known_data: np.ndarray | None = None  # the known values in data units (the image, or the point)
    counts: GuidanceCounts = field(default_factory=GuidanceCounts)
    display_evaluations: int = 0
    _pending: list = field(default_factory=list)  # (term, x0, eps) of the model calls since the last step
    steps: list = field(default_factory=list)  # per sampler step: (guidance term, guided x0-hat, guided eps-hat) or None

    @property
    def uses_gradients(self) -> bool:
        g = self.guide
        return g.classifier is not None or (g.inpaint or g.observe).method != "replace"

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

    def paste_data(self, x_data: np.ndarray) -> np.ndarray:
        mask, _ = self.known
        return paste_observed(torch.as_tensor(x_data), mask.cpu(), torch.as_tensor(self.known_data, dtype=torch.float32)).numpy()

    def summary(self) -> dict:
        g = self.guide
        out: dict = {"kind": g.kind, "uses_gradients": self.uses_gradients}
        if g.classifier is not None:
            out.update(label=self.label, scale=g.classifier.scale)
        else:
            spec = g.inpaint or g.observe
            out.update(method=spec.method, scale=spec.scale)
        c = self.counts
        out.update(
            evaluations=c.evaluations,
            backward_passes=c.model_backward,
            other_gradients=c.other_gradients,
            display_evaluations=self.display_evaluations,
            cost=c.summary(),
        )
        return out


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


def prepare(run, name: str, guide: GradientGuide, seed: int) -> GuidedSampling:
    """The wrapper and known values for ``guide`` on ``run``, or a 422 naming the field."""
    counts = GuidanceCounts()
    if guide.classifier is not None:
        if run.num_classes == 0:
            raise _fail("classifier", f"run {name!r} has no classes (trained without labels), so it has no classifier")
        if not run.folder.has_classifier():
            raise _fail("classifier", f"run {name!r} has no classifier; train one with: denoiselab train-classifier RUN")
        try:
            label = resolve_label(run, guide.classifier.label)
            wrap, _ = guided_wrapper(run, GuidanceRequest(classifier_scale=guide.classifier.scale), seed, counts)
        except (SamplingError, ClassifierError) as exc:
            raise _fail("classifier", str(exc).replace(str(run.path), name)) from None
        return GuidedSampling(guide, wrap, label=label, counts=counts)
    if guide.inpaint is not None:
        spec = guide.inpaint
        if not run.is_image:
            raise _fail("inpaint", f"run {name!r} is a point run; fix coordinates with observe")
        try:
            held, _ = held_out_images(run)
        except RunError:
            raise _fail("inpaint", f"run {name!r} has no held-out images ({HELD_OUT})") from None
        if spec.image >= len(held):
            raise _fail("inpaint.image", f"expected a held-out image index in 0..{len(held) - 1}, got {spec.image}")
        image = np.asarray(held[spec.image], dtype=np.float32)
        mask = known_mask(spec, image.shape[-2], image.shape[-1])
        wrap, known = inpaint_wrapper(run, image, mask, spec.method, spec.scale, seed, counts)
        return GuidedSampling(guide, wrap, known=known, known_data=image, counts=counts)
    spec = guide.observe
    if run.is_image:
        raise _fail("observe", f"run {name!r} is an image run; complete images with inpaint")
    observe = {int(k[1:]) - 1: v for k, v in spec.values.items()}
    bad = [f"x{i + 1}" for i in observe if i >= run.dim]
    if bad:
        raise _fail("observe.values", f"{bad[0]}: this run has coordinates x1..x{run.dim}")
    if len(observe) >= run.dim:
        raise _fail("observe.values", f"every coordinate is observed; leave at least one of x1..x{run.dim} to sample")
    request = GuidanceRequest(observe=observe, method=spec.method, scale=spec.scale)
    wrap, known = guided_wrapper(run, request, seed, counts)
    point = np.asarray(run.normalization.mean, dtype=np.float32).copy()
    for i, v in observe.items():
        point[i] = v
    return GuidedSampling(guide, wrap, known=known, known_data=point, counts=counts)
