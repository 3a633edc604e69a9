"""Guidance: wrappers that take a model function and return another one.

Classifier-free guidance (Ho & Salimans 2022, Eq. 6; seed 004):

    pred = pred(x, t, none) + s * (pred(x, t, c) - pred(x, t, none))

s = 1 is the conditional model, s = 0 the unconditional one, s > 1 pushes samples towards
what distinguishes class c.  The combination is linear in the prediction at fixed x_t, so it
holds for eps, x0 and v outputs alike.  "No label" is the label -1 (models.LabelEmbedding maps
it to its extra null class).  Samplers need no change: they see one more model function.
"""

from __future__ import annotations

import torch

NO_LABEL = -1


def _labels(y, batch: int, device) -> torch.Tensor:
    """Labels (B,) or a scalar, or a caption's token ids (B, L) (models/text_unet.py), for ``batch``
    samples; "no label" written as -1 is the empty caption there."""
    y = torch.as_tensor(y, device=device).long()
    return y.expand(batch, *y.shape[1:])


def classifier_free(model_fn, scale: float):
    """Wrap ``model_fn(x, t, y)`` with classifier-free guidance of strength ``scale``.

    A call without a label (y None) is passed through unconditional.  s = 0 and s = 1 call the
    model once (so they equal the unconditional and conditional model exactly); any other s
    evaluates both branches in one batched call.
    """
    if scale < 0:
        raise ValueError(f"guidance scale must be >= 0, got {scale}")

    def guided(x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        if y is None:
            return model_fn(x, t, None)
        y = _labels(y, x.shape[0], x.device)
        null = torch.full_like(y, NO_LABEL)
        if scale == 1:
            return model_fn(x, t, y)
        if scale == 0:
            return model_fn(x, t, null)
        out = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = out.chunk(2)
        return uncond + scale * (cond - uncond)

    return guided


def drop_labels(y: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each label by NO_LABEL with probability p: one network learns both the
    conditional and the unconditional model (Ho & Salimans 2022, Algorithm 1).  Token ids (B, L)
    lose their whole caption (every id NO_LABEL: the empty caption)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label dropout must be in [0, 1], got {p}")
    drop = torch.rand(y.shape[:1], generator=generator) < p
    drop = drop.reshape(-1, *[1] * (y.ndim - 1))
    return torch.where(drop.to(y.device), torch.full_like(y, NO_LABEL), y)
