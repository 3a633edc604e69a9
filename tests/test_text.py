"""The tokenizer, the text encoder and its contrastive pretraining."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from denoiselab.data.scenes import make_scenes
from denoiselab.text import PAD, UNK, Tokenizer, normalise
from denoiselab.text.contrastive import ContrastivePair, contrastive_loss, retrieval_accuracy
from denoiselab.text.encoder import TextEncoder


def test_the_tokenizer_round_trips_every_scene_caption():
    captions = make_scenes(300, seed=2).captions
    tok = Tokenizer.fit(captions, 16)
    assert all(tok.decode(tok.encode(c)) == c for c in captions)
    assert Tokenizer.from_dict(tok.to_dict()).vocab == tok.vocab


def test_unknown_words_and_padding():
    tok = Tokenizer.fit(["a red circle", "top: a big square"], 6)
    ids = tok.encode("A purple circle!")
    assert ids[1] == ids[3] == UNK and ids[4:] == [PAD] * 2 and tok.unknown_words("A purple circle!") == ["purple", "!"]
    assert tok.encode("") == [PAD] * 6
    assert len(tok.encode("a red circle a red circle a red")) == 6  # cut to the length
    assert normalise("Top :  big   Square") == "top: big square"
    assert Tokenizer.fit(["b a", "c"]).vocab == Tokenizer.fit(["c", "a b"]).vocab  # ids do not depend on order


def test_the_encoder_masks_padding_and_pools_the_empty_caption_to_zero():
    torch.manual_seed(0)
    enc = TextEncoder(10, 6, width=16, layers=2, heads=2)
    ids = torch.tensor([[4, 5, 0, 0, 0, 0], [4, 5, 0, 0, 0, 0], [0] * 6, [-1] * 6])
    out = enc(ids)
    assert torch.equal(out.present, torch.tensor([True, True, False, False]))
    assert out.pooled[2:].abs().max() == 0 and torch.isfinite(out.tokens).all()
    # The id under a PAD position cannot reach a real token: a real word there changes the pooled vector.
    other = ids.clone()
    other[0, 2] = 7
    assert not torch.allclose(enc(other).pooled[0], out.pooled[0])
    assert torch.equal(out.pooled[0], out.pooled[1]) and torch.equal(out.tokens[0, :2], enc(ids[:1]).tokens[0, :2])


def test_the_contrastive_loss_falls_below_chance_on_a_tiny_set(one_thread):
    """log N is the loss of encoders that cannot tell the pairs apart; training on 16 pairs goes well below it."""
    s = make_scenes(16, seed=0, pairs=0.0)
    tok = Tokenizer.fit(s.captions, 12)
    ids = torch.as_tensor(tok.encode_batch(s.captions))
    torch.manual_seed(0)
    model = ContrastivePair(TextEncoder(tok.size, 12, width=32, layers=1, heads=2), 3, embed=32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        loss = contrastive_loss(model.logits(s.images, ids))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert contrastive_loss(model.logits(s.images, ids)).item() < 0.5 * math.log(16)
    acc = retrieval_accuracy(model, s.images, ids, group=16)
    assert acc["chance"] == 1 / 16 and acc["caption_to_image"] > 0.5 and acc["image_to_caption"] > 0.5


def test_the_contrastive_loss_is_log_n_for_equal_logits():
    assert contrastive_loss(torch.zeros(8, 8)).item() == pytest.approx(math.log(8))
    assert contrastive_loss(100 * torch.eye(8)).item() < 1e-6
