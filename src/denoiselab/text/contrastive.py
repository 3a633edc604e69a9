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

Hard negatives (Yuksekgonul et al. 2023, NegCLIP, Sec. 4; text/negatives.py): each caption may
bring K captions of the same words in another binding (its objects' colours or shapes swapped),
embedded by the same text encoder.  They join the captions each image is scored against (K N more
columns of the image -> caption cross-entropy, every image against every negative of the batch,
those that are no real swap masked out); the caption -> image direction is unchanged, a negative
having no image of its own.

Zero-shot retrieval accuracy is the share of held-out pairs whose own partner has the
largest similarity among the N (caption -> image and image -> caption), chance 1 / N.  The swap
accuracy is the share of two-object images that score their own caption above a swap of it
(chance 1 / 2): a bag-of-words text encoder is at chance there whatever its retrieval.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .encoder import TextEncoder
from .negatives import SWAPS

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
    the logits' scale exp(t); with hard negatives, their unit vectors (B, K, d) and which of them
    are real (B, K)."""

    images: torch.Tensor
    captions: torch.Tensor
    scale: torch.Tensor
    negatives: torch.Tensor | None = None
    real: torch.Tensor | None = None


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

    def forward(self, x: torch.Tensor, ids: torch.Tensor, negatives: torch.Tensor | None = None, real: torch.Tensor | None = None) -> Embedded:
        """The pairs embedded, in one call: what DistributedDataParallel synchronises the gradients
        of; ``negatives`` (B, K, L) ids of hard negatives, ``real`` (B, K) which of them count."""
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        if negatives is None:
            return Embedded(self.embed_images(x), self.embed_text(ids), scale)
        b, k, length = negatives.shape
        text = self.embed_text(torch.cat([ids, negatives.reshape(b * k, length)]))
        return Embedded(self.embed_images(x), text[:b], scale, text[b:].reshape(b, k, -1), real)

    def logits(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, N) image-to-caption logits: exp(t) cos(image_i, caption_j)."""
        return pair_logits(self(x, ids))


def pair_logits(e: Embedded) -> torch.Tensor:
    return e.scale * e.images @ e.captions.T


def negative_logits(e: Embedded) -> torch.Tensor:
    """(n, B K): each of the batch's images against every hard negative of the batch, -inf where a
    negative is no real swap."""
    negatives, real = e.negatives.flatten(0, 1), e.real.flatten()
    logits = e.scale * e.images @ negatives.T
    return logits.masked_fill(~real[None, :], float("-inf"))


def contrastive_loss(logits: torch.Tensor, negatives: torch.Tensor | None = None) -> torch.Tensor:
    """The symmetric cross-entropy of CLIP (Radford et al. 2021, Fig. 3): pair i is the right
    answer in row i and in column i.  ``negatives`` (N, M): more captions each image is scored
    against in its row (NegCLIP's hard negatives), none of them its answer."""
    target = torch.arange(logits.shape[0], device=logits.device)
    rows = logits if negatives is None else torch.cat([logits, negatives], 1)
    return 0.5 * (F.cross_entropy(rows, target) + F.cross_entropy(logits.T, target))


def embedded_loss(e: Embedded) -> torch.Tensor:
    """The contrastive loss of a batch embedded in one process, with its hard negatives if any."""
    return contrastive_loss(pair_logits(e), None if e.negatives is None else negative_logits(e))


def contrastive_loss_of_rows(e: Embedded, first: int) -> torch.Tensor:
    """This process's part of the symmetric cross-entropy over the global batch, whose pairs
    [first, first + n) it embedded (``e``): its images' rows and its captions' columns of the
    global logit matrix, each entry computed as one process computes it.  The processes' losses
    average to ``contrastive_loss`` of the whole batch (see the module text for the gradient)."""
    images, captions = gather_rows(e.images), gather_rows(e.captions)
    target = torch.arange(first, first + e.images.shape[0], device=e.images.device)
    rows = e.scale * e.images @ captions.T  # (n, N): each of our images against every caption
    columns = (e.scale * images @ e.captions.T).T  # (n, N): each of our captions against every image
    if e.negatives is not None:  # every process's negatives, as one process has them all
        every = e._replace(negatives=gather_rows(e.negatives), real=gather_rows(e.real))
        rows = torch.cat([rows, negative_logits(every)], 1)
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
    this process's (batch_draws.py).  ``negatives(ids) -> (ids (B, K, L), real (B, K))`` makes
    each caption's hard negatives (text/negatives.py), None for none."""

    def __init__(self, negatives=None):
        self.negatives = negatives

    def __call__(self, model: ContrastivePair, x0: torch.Tensor, generator, y=None, time_sampler=None) -> torch.Tensor:
        embedded = model(x0, y) if self.negatives is None else model(x0, y, *self.negatives(y))
        if not _shares_batch():
            return embedded_loss(embedded)
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


@torch.no_grad()
def swap_accuracy(model: ContrastivePair, images: torch.Tensor, ids: torch.Tensor, negatives: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """For each kind k of hard negative (negatives (N, K, L), real (N, K)): the share of images,
    among those with a real negative of that kind, that score their own caption above it (chance
    1 / 2; a tie counts as a miss) and how many images that was, by the kind's name (negatives.SWAPS)."""
    was_training = model.training
    model.eval()
    e = model(images, ids, negatives, real)
    own = (e.images * e.captions).sum(-1)  # (N,)
    other = (e.images[:, None, :] * e.negatives).sum(-1)  # (N, K)
    model.train(was_training)
    out = {}
    for k, name in enumerate(SWAPS[: negatives.shape[1]]):
        keep = real[:, k]
        hits = float((own[keep] > other[keep, k]).float().mean()) if keep.any() else float("nan")
        out[name] = {"accuracy": hits, "images": int(keep.sum())}
    return out
