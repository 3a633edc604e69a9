"""CLIP-style contrastive pretraining of the text encoder (Radford et al. 2021, Sec. 2.3 and
Fig. 3): a batch of N (image, caption) pairs is embedded by an image encoder and the text
encoder's pooled vector, both projected to one space and L2-normalised; the N x N cosine
similarities, times a learned temperature exp(t), are the logits of a cross-entropy that picks
each image's caption among the N and each caption's image, averaged over both directions.

Chance is log N: a loss below it means the two encoders agree on which caption goes with which
image.

Over several processes (training/parallel.py), each holding rows [s, s + n) of the global batch,
every process gathers the whole batch's embeddings (CLIP's own scheme, Radford et al. 2021, Sec.
2.5: the similarity matrix over all GPUs' pairs) with an all-gather whose backward sums each
copy's gradient back into the process that made it (``gather_rows``), and takes the loss of its
own n rows and n columns of the global logit matrix only (``contrastive_loss_of_rows``).  The
processes' losses average to the one-process loss L.  Process r's parameters then get the
gradient of the *sum* of all processes' losses through what it computed, i.e. of W L; DDP
averages over the W processes and the step's gradient is that of L, as in one process.  (The
temperature's gradient reaches it through each process's own loss alone, and its average is that
of L too.)

Zero-shot retrieval accuracy is the share of held-out pairs whose own partner has the
largest similarity among the N (caption -> image and image -> caption), chance 1 / N.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
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


class Embedded(NamedTuple):
    """A batch of pairs in the shared space: unit vectors of the images and of the captions, and
    the logits' scale exp(t)."""

    images: torch.Tensor
    captions: torch.Tensor
    scale: torch.Tensor


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

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> Embedded:
        """The pairs embedded, in one call: what DistributedDataParallel synchronises the gradients of."""
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        return Embedded(self.embed_images(x), self.embed_text(ids), scale)

    def logits(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, N) image-to-caption logits: exp(t) cos(image_i, caption_j)."""
        return pair_logits(self(x, ids))


def pair_logits(e: Embedded) -> torch.Tensor:
    return e.scale * e.images @ e.captions.T


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """The symmetric cross-entropy of CLIP (Radford et al. 2021, Fig. 3): pair i is the right
    answer in row i and in column i."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def contrastive_loss_of_rows(e: Embedded, first: int) -> torch.Tensor:
    """This process's part of the symmetric cross-entropy over the global batch, whose pairs
    [first, first + n) it embedded (``e``): its images' rows and its captions' columns of the
    global logit matrix, each entry computed as one process computes it.  The processes' losses
    average to ``contrastive_loss`` of the whole batch (see the module text for the gradient)."""
    images, captions = gather_rows(e.images), gather_rows(e.captions)
    target = torch.arange(first, first + e.images.shape[0], device=e.images.device)
    rows = e.scale * e.images @ captions.T  # (n, N): each of our images against every caption
    columns = (e.scale * images @ e.captions.T).T  # (n, N): each of our captions against every image
    return 0.5 * (F.cross_entropy(rows, target) + F.cross_entropy(columns, target))


class _GatherRows(torch.autograd.Function):
    """Every process's (n, d) rows, concatenated in rank order; the backward sums the (W n, d)
    gradient over the processes (an all-reduce, which gloo has) and keeps this process's rows:
    the reduce-scatter of torch.distributed.nn's all_gather, deprecated in torch 2.13."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.n = dist.get_rank(), rows.shape[0]
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """The global batch's rows from every process's own, with the gradient flowing back to each."""
    return _GatherRows.apply(rows)


def _shares_batch() -> bool:
    """Whether this process trains a part of the batch among others (torch.distributed's group)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ContrastiveObjective:
    """The loss the training loop calls: ``objective(model, images, generator, y=ids) -> loss``;
    among several processes ``generator`` is the batch's BatchDraws, which says which rows are
    this process's (batch_draws.py)."""

    def __call__(self, model: ContrastivePair, x0: torch.Tensor, generator, y=None, time_sampler=None) -> torch.Tensor:
        embedded = model(x0, y)
        if not _shares_batch():
            return contrastive_loss(pair_logits(embedded))
        first = getattr(generator, "start", 0)
        return contrastive_loss_of_rows(embedded, first)


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
