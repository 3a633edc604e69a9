"""CLIP-style contrastive pretraining of the text encoder (Radford et al. 2021, Sec. 2.3 and
Fig. 3): a batch of N (image, caption) pairs is embedded by an image encoder and the text
encoder's pooled vector, both projected to one space and L2-normalised; the N x N cosine
similarities, times a learned temperature exp(t), are the logits of a cross-entropy that picks
each image's caption among the N and each caption's image, averaged over both directions.

Chance is log N: a loss below it means the two encoders agree on which caption goes with which
image.  Zero-shot retrieval accuracy is the share of held-out pairs whose own partner has the
largest similarity among the N (caption -> image and image -> caption), chance 1 / N.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoder import TextEncoder

# CLIP's initial temperature 0.07 (Radford et al. 2021, Sec. 2.5), and its cap of 100 on exp(t).
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100.0)


class ImageEncoder(nn.Module):
    """A small convolutional encoder: three stride-2 convolutions, global average pooling."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        w = width // 2
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.width = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, width): the spatial features averaged over positions."""
        return self.net(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ContrastivePair(nn.Module):
    """The text encoder and an image encoder with their projections into one embedding space."""

    def __init__(self, text: TextEncoder, channels: int, embed: int = 64):
        super().__init__()
        self.text = text
        self.image = ImageEncoder(channels, embed)
        self.text_proj = nn.Linear(text.width, embed, bias=False)
        self.image_proj = nn.Linear(embed, embed, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(INITIAL_LOGIT_SCALE))

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text(ids).pooled), dim=-1)

    def embed_images(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image(x)), dim=-1)

    def logits(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, N) image-to-caption logits: exp(t) cos(image_i, caption_j)."""
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        return scale * self.embed_images(x) @ self.embed_text(ids).T


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """The symmetric cross-entropy of CLIP (Radford et al. 2021, Fig. 3): pair i is the right
    answer in row i and in column i."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class ContrastiveObjective:
    """The loss the training loop calls: ``objective(model, images, generator, y=ids) -> loss``."""

    def __call__(self, model: ContrastivePair, x0: torch.Tensor, generator, y=None, time_sampler=None) -> torch.Tensor:
        return contrastive_loss(model.logits(x0, y))


@torch.no_grad()
def retrieval_accuracy(model: ContrastivePair, images: torch.Tensor, ids: torch.Tensor, group: int = 100) -> dict[str, float]:
    """Top-1 zero-shot retrieval among groups of ``group`` held-out pairs: caption -> image (each
    caption's image ranks first among the group's images) and image -> caption; ``chance`` is 1 / group."""
    was_training = model.training
    model.eval()
    n = (len(images) // group) * group
    if n == 0:
        group = n = len(images)
    hits_t2i = hits_i2t = 0
    for start in range(0, n, group):
        logits = model.logits(images[start : start + group], ids[start : start + group])
        target = torch.arange(logits.shape[0], device=logits.device)
        hits_i2t += int((logits.argmax(1) == target).sum())
        hits_t2i += int((logits.argmax(0) == target).sum())
    model.train(was_training)
    return {"caption_to_image": hits_t2i / n, "image_to_caption": hits_i2t / n, "chance": 1 / group, "pairs": n}
