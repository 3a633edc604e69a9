"""Text for text-to-image runs: a word tokenizer fitted on captions, a small transformer encoder,
and its CLIP-style contrastive pretraining against an image encoder."""

from .tokenizer import PAD, UNK, Tokenizer, normalise, words

__all__ = ["PAD", "UNK", "Tokenizer", "normalise", "words"]
