"""Hard negatives for the contrastive stage: a two-object caption with its objects' attribute words
swapped (Yuksekgonul et al. 2023, "When and why vision-language models behave like bags-of-words,
and what to do about it", Sec. 4: NegCLIP).

"a red circle left of a blue square" becomes "a blue circle left of a red square" (colours
swapped), "a red square left of a blue circle" (shapes swapped) and "a blue square left of a red
circle" (both): the same words in another binding, each a description of another image.  A
contrastive loss over random batches rarely meets two captions with the same words, so a
mean-pooled encoder can score well while blind to which colour goes with which shape and where;
with the swaps among the captions each image is scored against, it cannot.

A swap is real only when the two words it exchanges name different values ("red ... red" swapped
is the caption itself, which is a right answer, not a negative): ``real`` says which are.
"""

from __future__ import annotations

import torch

SWAPS = ("colour", "shape", "both")  # the hard negatives of one caption, in this order


def value_table(vocab: list[str], words: dict[str, int]) -> torch.Tensor:
    """(vocab size,) int64: each token's value index among ``words`` (word -> value, synonyms
    sharing one value), -1 for a token that names none."""
    return torch.tensor([words.get(w, -1) for w in vocab], dtype=torch.int64)


def swap_words(ids: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each caption (B, L) with its two words of one attribute exchanged, where it has exactly two
    such words naming different values; (swapped ids (B, L), real (B,) bool).  A caption without
    a real swap comes back as it is."""
    value = table.to(ids.device)[ids.clamp(min=0)]
    value = torch.where(ids >= 0, value, torch.full_like(value, -1))
    named = value >= 0
    two = named.sum(1) == 2
    # the positions of the first and the last word naming a value (equal where there is at most one)
    where = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    first = torch.where(named, where, ids.shape[1]).amin(1).clamp(max=ids.shape[1] - 1)
    last = torch.where(named, where, -1).amax(1).clamp(min=0)
    rows = torch.arange(ids.shape[0], device=ids.device)
    real = two & (value[rows, first] != value[rows, last])
    swapped = ids.clone()
    swapped[rows[real], first[real]] = ids[rows[real], last[real]]
    swapped[rows[real], last[real]] = ids[rows[real], first[real]]
    return swapped, real


def hard_negatives(ids: torch.Tensor, colour: torch.Tensor, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The SWAPS of each caption: (B, 3, L) ids and (B, 3) bool, True where it is a real negative
    (another binding of the same words); ``colour`` and ``shape`` are value_table's of the vocabulary."""
    by_colour, real_colour = swap_words(ids, colour)
    by_shape, real_shape = swap_words(ids, shape)
    both, _ = swap_words(by_colour, shape)
    # "both" is a negative of its own only where each swap is (else it repeats the one that is)
    return torch.stack([by_colour, by_shape, both], 1), torch.stack([real_colour, real_shape, real_colour & real_shape], 1)
