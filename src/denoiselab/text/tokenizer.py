"""A word tokenizer fitted on a set of captions: lower-case words and punctuation marks, each word
seen in the captions one id, every other word the unknown token.

Ids: PAD (0) fills a caption up to the fixed length and is masked out everywhere (an all-PAD
caption is the empty caption, the null condition of classifier-free guidance); UNK (1) stands for
a word the captions never held.  ``decode(encode(c))`` gives back ``normalise(c)`` for a caption
of known words that fits the length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PAD, UNK = 0, 1
SPECIAL = ("<pad>", "<unk>")
_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")
_GLUE = set(",.:;!?)")  # written straight after the word before them


def words(text: str) -> list[str]:
    """The caption's tokens: lower-case words and single punctuation marks."""
    return _TOKEN.findall(text.lower())


def normalise(text: str) -> str:
    """A caption as its tokens give it back: lower case, single spaces, punctuation after its word."""
    out = ""
    for w in words(text):
        out += w if (not out or w in _GLUE) else " " + w
    return out


@dataclass
class Tokenizer:
    vocab: list[str]  # id -> token, SPECIAL first
    length: int  # ids per caption (longer captions are cut, shorter ones padded)
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        if tuple(self.vocab[:2]) != SPECIAL:
            raise ValueError(f"a tokenizer's vocabulary starts with {SPECIAL}, got {self.vocab[:2]}")
        if self.length < 1:
            raise ValueError(f"tokenizer length must be >= 1, got {self.length}")
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def fit(cls, captions, length: int = 16) -> Tokenizer:
        """Every token of ``captions``, in sorted order (the ids do not depend on the captions' order)."""
        seen = sorted({w for c in captions for w in words(c)} - set(SPECIAL))
        return cls([*SPECIAL, *seen], length)

    @property
    def size(self) -> int:
        return len(self.vocab)

    def unknown_words(self, text: str) -> list[str]:
        """The caption's words the tokenizer never saw, each once, in order."""
        return list(dict.fromkeys(w for w in words(text) if w not in self.index))

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(w, UNK) for w in words(text)][: self.length]
        return ids + [PAD] * (self.length - len(ids))

    def encode_batch(self, texts):
        """int64 (N, length) ids of ``texts`` (numpy, so the light callers need no torch)."""
        import numpy as np

        return np.asarray([self.encode(t) for t in texts], dtype=np.int64).reshape(len(texts), self.length)

    def decode(self, ids) -> str:
        return normalise(" ".join(self.vocab[int(i)] for i in ids if int(i) != PAD))

    def to_dict(self) -> dict:
        return {"vocab": list(self.vocab), "length": self.length}

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        return cls(list(d["vocab"]), int(d["length"]))
