"""Hard negatives for the text encoder's contrastive stage (NegCLIP, Yuksekgonul et al. 2023): a
two-object caption with its objects' colours, shapes or both swapped, and the loss that scores
every image against them."""

from __future__ import annotations

import math

import pytest
import torch

from denoiselab.config import ConfigError, from_dict
from denoiselab.data.scenes import SYNONYMS, attribute_words, make_scenes
from denoiselab.text import Tokenizer
from denoiselab.text.contrastive import (
    ContrastiveObjective,
    ContrastivePair,
    Embedded,
    contrastive_loss,
    embedded_loss,
    pair_logits,
    swap_accuracy,
)
from denoiselab.text.encoder import TextEncoder
from denoiselab.text.negatives import hard_negatives, swap_words, value_table
from denoiselab.training.text_stage import swap_negatives

CAPTIONS = [
    "a red circle left of a blue square",
    "a red circle left of a red square",  # one colour: swapping it gives the caption itself
    "small box in green above a tiny disc in yellow",
    "a big red circle on the left",  # one object: nothing to swap
    "",
]


@pytest.fixture
def tok():
    return Tokenizer.fit(CAPTIONS + make_scenes(200, seed=3).captions, 16)


def test_the_swaps_are_the_same_words_in_the_other_binding(tok):
    ids = torch.as_tensor(tok.encode_batch(CAPTIONS))
    negatives, real = swap_negatives(tok)(ids)
    text = [[tok.decode(n) for n in row] for row in negatives]
    assert text[0] == ["a blue circle left of a red square", "a red square left of a blue circle", "a blue square left of a red circle"]
    assert real[0].tolist() == [True, True, True]
    # the same colour twice: the colour swap is the caption itself, no negative; the shapes still are
    assert text[1][0] == CAPTIONS[1] and real[1].tolist() == [False, True, False]
    # synonyms and the other word order
    assert text[2] == ["small box in yellow above a tiny disc in green", "small disc in green above a tiny box in yellow", "small disc in yellow above a tiny box in green"]
    assert real[2].all()
    assert not real[3:].any() and torch.equal(negatives[3, 0], ids[3]) and torch.equal(negatives[4, 2], ids[4])


def test_every_synonym_is_a_value_and_a_swap_keeps_the_multiset_of_words(tok):
    assert attribute_words("shape")["disc"] == attribute_words("shape")["circle"] != attribute_words("shape")["box"]
    assert set(attribute_words("colour")) == {w for c in ("red", "green", "blue", "yellow") for w in SYNONYMS[c]}
    ids = torch.as_tensor(tok.encode_batch(make_scenes(300, seed=4, pairs=1.0).captions))
    swapped, real = swap_words(ids, value_table(tok.vocab, attribute_words("colour")))
    assert real.float().mean() > 0.6  # four colours: three of four pairs differ
    assert torch.equal(swapped.sort(1).values, ids.sort(1).values)
    assert (swapped != ids).sum(1).eq(torch.where(real, 2, 0)).all()  # exactly the two colour words move
    assert hard_negatives(ids, *(value_table(tok.vocab, attribute_words(a)) for a in ("colour", "shape")))[0].shape == (300, 3, 16)


def _embedded(negatives: torch.Tensor, real: torch.Tensor) -> Embedded:
    eye = torch.eye(3)
    return Embedded(eye, eye, torch.tensor(2.0), negatives, real)


def test_the_loss_scores_each_image_against_every_real_negative():
    """Closed form: unit images e_i, captions e_i, scale 2, so row i's logits are 2 at i and 0
    elsewhere; a real negative equal to caption 0 adds a logit 2 for image 0 and 0 for the others."""
    negatives = torch.zeros(3, 1, 3)
    negatives[1, 0] = torch.tensor([1.0, 0, 0])
    none = _embedded(negatives, torch.zeros(3, 1, dtype=torch.bool))
    assert embedded_loss(none).item() == pytest.approx(contrastive_loss(pair_logits(none)).item())
    one = _embedded(negatives, torch.tensor([[False], [True], [False]]))
    row0 = -math.log(math.exp(2) / (2 * math.exp(2) + 2))  # image 0: its caption and the negative tie
    rows = -math.log(math.exp(2) / (math.exp(2) + 3))  # images 1 and 2: one more column at 0
    columns = -math.log(math.exp(2) / (math.exp(2) + 2))  # caption -> image, unchanged
    assert embedded_loss(one).item() == pytest.approx(0.5 * ((row0 + 2 * rows) / 3 + columns), rel=1e-6)


def test_the_objective_adds_the_swaps_only_when_asked(tok):
    s = make_scenes(24, seed=5, pairs=0.5)
    ids = torch.as_tensor(tok.encode_batch(s.captions))
    torch.manual_seed(0)
    model = ContrastivePair(TextEncoder(tok.size, 16, width=16, layers=1, heads=2), 3, embed=16)
    plain = ContrastiveObjective()(model, s.images, None, y=ids)
    with_swaps = ContrastiveObjective(swap_negatives(tok))(model, s.images, None, y=ids)
    assert plain.item() == pytest.approx(contrastive_loss(model.logits(s.images, ids)).item())
    assert with_swaps.item() > plain.item()  # more columns, none of them an answer
    one = make_scenes(8, seed=6, pairs=0.0)  # no pair: no negative, the same loss
    ids1 = torch.as_tensor(tok.encode_batch(one.captions))
    assert ContrastiveObjective(swap_negatives(tok))(model, one.images, None, y=ids1).item() == pytest.approx(
        ContrastiveObjective()(model, one.images, None, y=ids1).item()
    )
    negatives, real = swap_negatives(tok)(ids)
    scores = swap_accuracy(model, s.images, ids, negatives, real)
    assert list(scores) == ["colour", "shape", "both"] and scores["colour"]["images"] == int(real[:, 0].sum())


def test_hard_negatives_are_refused_on_your_own_captions(tmp_path):
    (tmp_path / "c.txt").write_text("a\nb\n")
    with pytest.raises(ConfigError, match="text.hard_negatives"):
        from_dict({"data": {"name": "x.npz"}, "model": {"arch": "unet"}, "text": {"captions": str(tmp_path / "c.txt"), "hard_negatives": True}})
    from_dict({"data": {"name": "x.npz"}, "model": {"arch": "unet"}, "text": {"captions": str(tmp_path / "c.txt")}})  # without it: accepted


def test_the_loss_of_one_process_among_several_keeps_the_negatives(tmp_path):
    """contrastive_loss_of_rows gathers the negatives with the captions: in a group of one it is
    the one-process loss (the gathering itself is tested with real processes for the captions)."""
    import torch.distributed as dist

    from denoiselab.text.contrastive import contrastive_loss_of_rows

    torch.manual_seed(0)
    unit = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape), dim=-1)  # noqa: E731
    e = Embedded(unit(5, 4), unit(5, 4), torch.tensor(3.0), unit(5, 3, 4), torch.rand(5, 3) > 0.4)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert contrastive_loss_of_rows(e, 0).item() == pytest.approx(embedded_loss(e).item(), rel=1e-6)
        assert contrastive_loss_of_rows(e, 0).item() != pytest.approx(embedded_loss(e._replace(negatives=None)).item())
    finally:
        dist.destroy_process_group()
