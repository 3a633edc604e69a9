"""Captioned scenes: small RGB images of one or two objects whose every attribute is known, with
captions written from templates, and the user's own images with a captions file.

A scene holds one object (shape, colour, size, position) or two objects side by side or one above
the other, with the relation between them ("a red circle left of a blue square").  Captions come
from several templates with synonyms ("large" / "big", "centre" / "middle") and free word order
("a large green triangle at the top", "top: big green triangle"), so a text encoder must read
words, not template slots.  Every image keeps its attribute record (``SceneSet.attributes``), which
is what an attribute classifier checks a generated image against.

Held-out combinations: ``held_out`` names combinations of attribute words ("red triangle",
"cross left"); a scene with an object that has all the words of one of them is never drawn for
training and forms the compositional test set (``make_scenes(..., unseen=True)``).

Nothing is downloaded: scenes are drawn on the spot from a seed.  Pixels follow data/images.py:
float32 (N, 3, H, W) in [-1, 1], -1 black.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .images import load_image_data
from .point_files import DataError

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ("red", "green", "blue", "yellow")
RGB = {"red": (1.0, 0.15, 0.1), "green": (0.1, 0.85, 0.2), "blue": (0.15, 0.35, 1.0), "yellow": (1.0, 0.9, 0.1)}
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "centre")
RELATIONS = ("left of", "right of", "above", "below")
ATTRIBUTES = ("shape", "colour", "size", "position", "relation")  # what a one-object caption or a pair states
DEFAULT_HELD_OUT = ("red triangle", "blue circle", "cross top")
DEFAULT_SIZE = 16
NONE = -1  # an attribute a scene does not have (a one-object scene's relation)

# Where an object's centre sits, as a share of the side (x to the right, y downwards).
_CENTRES = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73), "centre": (0.5, 0.5)}
# A pair: the first object's and the second's position for each relation.
_PAIR_POSITIONS = {"left of": ("left", "right"), "right of": ("right", "left"), "above": ("top", "bottom"), "below": ("bottom", "top")}
_INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
_RADIUS = {"small": 0.14, "large": 0.22}  # share of the side

# Synonyms: the caption writer picks one at random, so every word below must be read as its attribute.
SYNONYMS = {
    "circle": ("circle", "disc", "round"), "square": ("square", "box"), "triangle": ("triangle",),
    "cross": ("cross", "plus"), "small": ("small", "little", "tiny"), "large": ("large", "big"),
    "red": ("red",), "green": ("green",), "blue": ("blue",), "yellow": ("yellow",),
}  # fmt: skip
_AT = {
    "left": ("on the left", "at the left", "to the left"), "right": ("on the right", "at the right", "to the right"),
    "top": ("at the top", "on top", "up top"), "bottom": ("at the bottom", "down below", "on the bottom"),
    "centre": ("in the centre", "in the middle", "at the center"),
}  # fmt: skip
_BARE = {"left": ("left",), "right": ("right",), "top": ("top",), "bottom": ("bottom",), "centre": ("centre", "middle", "center")}
_RELATION_WORDS = {"left of": ("left of", "to the left of"), "right of": ("right of", "to the right of"), "above": ("above", "over"), "below": ("below", "under")}


def attribute_words(name: str) -> dict[str, int]:
    """Every word a caption may use for a value of ``name`` ("colour" or "shape"), synonyms
    included, with the value's index: what the text stage's hard negatives swap (text/negatives.py)."""
    values = {"colour": COLOURS, "shape": SHAPES}[name]
    return {word: i for i, value in enumerate(values) for word in SYNONYMS[value]}


@dataclass(frozen=True, eq=False)
class SceneSet:
    """Images with one caption each and, for built-in scenes, the attribute records.

    ``attributes[name]`` is an int64 (N,) array indexing the attribute's values (SHAPES, COLOURS,
    SIZES, POSITIONS, RELATIONS) for the first object, ``attributes[name + "2"]`` the second
    object's (NONE in a one-object scene); None for the user's own data."""

    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    captions: list[str]
    attributes: dict[str, np.ndarray] | None = None

    def __post_init__(self):
        if len(self.captions) != len(self.images):
            raise ValueError(f"SceneSet: {len(self.images)} images but {len(self.captions)} captions")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx) -> SceneSet:
        idx = np.asarray(idx, dtype=np.int64)
        attributes = None if self.attributes is None else {k: v[idx] for k, v in self.attributes.items()}
        return SceneSet(self.images[torch.as_tensor(idx)], [self.captions[i] for i in idx], attributes)


# --- held-out combinations --------------------------------------------------------------------
_VALUE_OF = {v: ("shape", i) for i, v in enumerate(SHAPES)}
_VALUE_OF |= {v: ("colour", i) for i, v in enumerate(COLOURS)}
_VALUE_OF |= {v: ("size", i) for i, v in enumerate(SIZES)}
_VALUE_OF |= {v: ("position", i) for i, v in enumerate(POSITIONS)}


def parse_combinations(held_out) -> list[dict[str, int]]:
    """Each held-out combination ("red triangle", "cross top") as {attribute: value index}; a
    DataError (one line) names a word that is no attribute value, or two words of one attribute."""
    combos = []
    for text in held_out:
        combo: dict[str, int] = {}
        for word in str(text).split():
            if word not in _VALUE_OF:
                values = ", ".join((*SHAPES, *COLOURS, *SIZES, *POSITIONS))
                raise DataError(f"text.held_out: {word!r} in {text!r} is no attribute value; expected words among {values}")
            name, index = _VALUE_OF[word]
            if name in combo:
                raise DataError(f"text.held_out: {text!r} names two {name}s; a combination names each attribute once")
            combo[name] = index
        if len(combo) < 2:
            raise DataError(f"text.held_out: {text!r} names one attribute; a combination names two or more, e.g. \"red triangle\"")
        combos.append(combo)
    return combos


def _object_held_out(record: dict[str, int], combos: list[dict[str, int]]) -> bool:
    return any(all(record[k] == v for k, v in combo.items()) for combo in combos)


# --- drawing ----------------------------------------------------------------------------------
_SUPERSAMPLE = 4  # shapes are drawn at 4x and averaged: edges get partial coverage, not jaggies


def _mask(shape: str, size: str, centre: tuple[float, float], side: int) -> np.ndarray:
    """The share of each pixel the shape covers, (side, side) in [0, 1]."""
    n = side * _SUPERSAMPLE
    s = (np.arange(n) + 0.5) / n
    x, y = s[None, :] - centre[0], s[:, None] - centre[1]
    r = _RADIUS[size]
    if shape == "circle":
        inside = x**2 + y**2 <= r**2
    elif shape == "square":
        inside = (np.abs(x) <= 0.82 * r) & (np.abs(y) <= 0.82 * r)
    elif shape == "triangle":  # pointing up, base at the bottom
        inside = (y <= 0.8 * r) & (np.abs(x) <= (y + r) / 1.8)  # apex at y = -r, base as wide as 2r
    else:  # cross: a plus sign
        arm = 0.32 * r
        inside = ((np.abs(x) <= arm) & (np.abs(y) <= r)) | ((np.abs(y) <= arm) & (np.abs(x) <= r))
    return inside.reshape(side, _SUPERSAMPLE, side, _SUPERSAMPLE).mean(axis=(1, 3))


def render(objects: list[dict], side: int = DEFAULT_SIZE, jitter: np.ndarray | None = None) -> np.ndarray:
    """One scene as float32 (3, side, side) in [-1, 1] on black; ``objects`` are records with
    shape, colour, size, position (names), ``jitter`` (len(objects), 2) shifts in shares of the side."""
    canvas = np.zeros((3, side, side), dtype=np.float64)
    for i, obj in enumerate(objects):
        cx, cy = _CENTRES[obj["position"]]
        if jitter is not None:
            cx, cy = cx + jitter[i, 0], cy + jitter[i, 1]
        cover = _mask(obj["shape"], obj["size"], (cx, cy), side)
        colour = np.asarray(RGB[obj["colour"]])[:, None, None]
        canvas = canvas * (1 - cover) + colour * cover
    return (2 * canvas - 1).astype(np.float32)


def _pick(options, rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _noun_phrase(obj: dict, rng: np.random.Generator, forms: int = 3) -> str:
    """'a big red circle', 'big circle in red' or 'a red circle, big': the object's words in one of
    ``forms`` orders (a pair's phrases leave out the one with a comma, which would run into the relation)."""
    size, colour, shape = (_pick(SYNONYMS[obj[k]], rng) for k in ("size", "colour", "shape"))
    form = int(rng.integers(forms))
    if form == 0:
        return f"a {size} {colour} {shape}"
    if form == 1:
        return f"{size} {shape} in {colour}"
    return f"a {colour} {shape}, {size}"


def caption_one(obj: dict, rng: np.random.Generator) -> str:
    """A one-object caption in one of four word orders."""
    noun, form = _noun_phrase(obj, rng), int(rng.integers(4))
    if form == 0:
        return f"{noun} {_pick(_AT[obj['position']], rng)}"
    if form == 1:
        return f"{_pick(_BARE[obj['position']], rng)}: {noun}"
    if form == 2:
        return f"{_pick(_AT[obj['position']], rng)} {noun}"
    return f"{noun}, {_pick(_BARE[obj['position']], rng)}"


def caption_pair(first: dict, second: dict, relation: str, rng: np.random.Generator) -> str:
    """'a red circle left of a blue square', or the same scene read from the other object."""
    if rng.integers(2):
        first, second, relation = second, first, _INVERSE[relation]
    return f"{_noun_phrase(first, rng, 2)} {_pick(_RELATION_WORDS[relation], rng)} {_noun_phrase(second, rng, 2)}"


def _draw_object(rng: np.random.Generator, position: str) -> dict:
    return {"shape": _pick(SHAPES, rng), "colour": _pick(COLOURS, rng), "size": _pick(SIZES, rng), "position": position}


def _indices(obj: dict) -> dict[str, int]:
    return {"shape": SHAPES.index(obj["shape"]), "colour": COLOURS.index(obj["colour"]), "size": SIZES.index(obj["size"]), "position": POSITIONS.index(obj["position"])}


def make_scenes(
    n: int, side: int = DEFAULT_SIZE, seed: int = 0, *, pairs: float = 0.3, held_out=DEFAULT_HELD_OUT, unseen: bool = False
) -> SceneSet:
    """``n`` captioned scenes, a share ``pairs`` of them with two objects.  Scenes with an object
    in a ``held_out`` combination are redrawn (``unseen=False``, the training distribution) or are
    the only ones kept (``unseen=True``, the compositional test set).  A pure function of its
    arguments."""
    if not 0.0 <= pairs <= 1.0:
        raise DataError(f"text.pairs: expected a share in [0, 1], got {pairs}")
    combos = parse_combinations(held_out)
    if unseen and not combos:
        raise DataError("text.held_out: no held-out combinations, so there is no unseen test set")
    rng = np.random.default_rng(seed)
    images, captions = [], []
    keys = ("shape", "colour", "size", "position")
    records = {k: [] for k in (*keys, "relation", *(k + "2" for k in keys))}
    while len(images) < n:
        if rng.random() < pairs:
            relation = _pick(RELATIONS, rng)
            where = _PAIR_POSITIONS[relation]
            objects = [_draw_object(rng, where[0]), _draw_object(rng, where[1])]
            objects[1]["size"] = objects[0]["size"] = "small"  # two large shapes would overlap
        else:
            relation, objects = None, [_draw_object(rng, _pick(POSITIONS, rng))]
        jitter = rng.uniform(-0.05, 0.05, size=(len(objects), 2))
        caption = caption_pair(objects[0], objects[1], relation, rng) if relation else caption_one(objects[0], rng)
        if any(_object_held_out(_indices(o), combos) for o in objects) != unseen:
            continue
        images.append(render(objects, side, jitter))
        captions.append(caption)
        first = _indices(objects[0])
        second = _indices(objects[1]) if relation else dict.fromkeys(keys, NONE)
        for k in keys:
            records[k].append(first[k])
            records[k + "2"].append(second[k])
        records["relation"].append(RELATIONS.index(relation) if relation else NONE)
    attributes = {k: np.asarray(v, dtype=np.int64) for k, v in records.items()}
    return SceneSet(torch.from_numpy(np.stack(images)) if images else torch.zeros(0, 3, side, side), captions, attributes)


# --- the user's own images with captions ------------------------------------------------------
def read_captions(path: str | Path) -> list[str]:
    """One caption per line (an empty line is the empty caption: unconditional); a missing or
    empty file is a DataError (one line)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"text.captions: cannot read {p} ({' '.join(str(exc).split())}); expected a text file, one caption per line") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"text.captions: {p} is empty; expected one caption per line, one line per image")
    return [line.strip() for line in lines]


def load_captioned(name: str, captions: str | Path, *, size: int | None = None, channels: str = "auto") -> SceneSet:
    """The user's images (a .npz or a folder, data/images.py, in its sorted file order) with a
    captions file holding one line per image; a count mismatch is a DataError (one line)."""
    lines = read_captions(captions)
    images = load_image_data(name, size=size, channels=channels).images
    if len(lines) != len(images):
        raise DataError(
            f"text.captions: {captions} has {len(lines)} captions for {len(images)} images in {name}; expected one line per image, in the images' order"
        )
    return SceneSet(images, lines)
