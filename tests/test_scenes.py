"""Captioned scenes: attributes, captions, held-out combinations, and the user's captions file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from denoiselab.data.point_files import DataError
from denoiselab.data.scenes import (
    COLOURS,
    NONE,
    POSITIONS,
    RGB,
    SHAPES,
    SYNONYMS,
    load_captioned,
    make_scenes,
    parse_combinations,
    read_captions,
    render,
)


def test_scenes_are_a_function_of_the_seed():
    a, b, c = make_scenes(40, seed=3), make_scenes(40, seed=3), make_scenes(40, seed=4)
    assert a.images.shape == (40, 3, 16, 16) and a.images.min() >= -1 and a.images.max() <= 1
    assert np.array_equal(a.images.numpy(), b.images.numpy()) and a.captions == b.captions
    assert a.captions != c.captions


def test_every_caption_names_its_attributes():
    """A one-object caption holds a synonym of its shape, colour and size; a pair's caption both objects' colours."""
    s = make_scenes(200, seed=1)
    at = s.attributes
    for i, caption in enumerate(s.captions):
        words = set(caption.replace(",", " ").replace(":", " ").split())
        for name, values in (("shape", SHAPES), ("colour", COLOURS), ("size", ("small", "large"))):
            assert words & set(SYNONYMS[values[at[name][i]]]), (caption, name)
        if at["relation"][i] == NONE:
            assert at["shape2"][i] == NONE
        else:
            assert words & set(SYNONYMS[COLOURS[at["colour2"][i]]]), caption
    assert 0 < (at["relation"] != NONE).mean() < 0.6
    assert len(set(s.captions)) > 150  # templates and synonyms vary the wording


def test_the_colour_and_place_of_a_rendered_object():
    """A large red circle on the left: the left half holds red pixels, the right half is black."""
    x = render([{"shape": "circle", "colour": "red", "size": "large", "position": "left"}], 16)
    rgb = (x + 1) / 2
    centre = rgb[:, 8, 4]
    assert np.allclose(centre, RGB["red"], atol=1e-6)
    assert rgb[:, :, 10:].max() == 0
    # Each shape's area in pixels against its closed form (r = 0.22 of the side: a large object).
    cover = {s: float(((render([{"shape": s, "colour": "red", "size": "large", "position": "centre"}], 64) + 1) / 2)[0].sum()) for s in SHAPES}
    r = 0.22 * 64  # at 64 x 64, where a shape's edge costs a few pixels
    expected = {"circle": math.pi * r**2, "square": (1.64 * r) ** 2, "triangle": 0.5 * (2 * r) * (1.8 * r), "cross": 2 * (2 * r) * (0.64 * r) - (0.64 * r) ** 2}
    for shape in SHAPES:
        assert cover[shape] == pytest.approx(expected[shape], rel=0.05), shape


def test_held_out_combinations_never_appear_in_training_and_are_the_unseen_set():
    held = ("red triangle", "cross top")
    combos = parse_combinations(held)
    seen, unseen = make_scenes(400, seed=0, held_out=held), make_scenes(100, seed=0, held_out=held, unseen=True)

    def hits(s, obj=""):
        at = s.attributes
        red_triangle = (at["colour" + obj] == COLOURS.index("red")) & (at["shape" + obj] == SHAPES.index("triangle"))
        cross_top = (at["shape" + obj] == SHAPES.index("cross")) & (at["position" + obj] == POSITIONS.index("top"))
        return red_triangle | cross_top

    assert not (hits(seen) | hits(seen, "2")).any()
    assert (hits(unseen) | hits(unseen, "2")).all()
    assert combos == [{"colour": 0, "shape": 2}, {"shape": 3, "position": 2}]


@pytest.mark.parametrize(
    "held, words",
    [(["purple circle"], "'purple'"), (["red blue"], "two colours"), (["red"], "names one attribute")],
)
def test_bad_held_out_combinations(held, words):
    with pytest.raises(DataError, match=words):
        parse_combinations(held)


def test_captions_file_with_a_folder_of_images(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), (60 * i, 0, 90), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "caps.txt").write_text("a dark one\n\na bright one\n")
    s = load_captioned(str(folder), tmp_path / "caps.txt")
    assert s.captions == ["a dark one", "", "a bright one"] and s.images.shape == (3, 3, 8, 8)
    (tmp_path / "two.txt").write_text("one\ntwo\n")
    with pytest.raises(DataError, match=r"has 2 captions for 3 images"):
        load_captioned(str(folder), tmp_path / "two.txt")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(DataError, match="is empty"):
        read_captions(tmp_path / "empty.txt")
    with pytest.raises(DataError, match="cannot read"):
        read_captions(tmp_path / "missing.txt")
