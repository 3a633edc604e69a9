"""A prompt in the playground's sampling request (serve/prompt_sampling.py): on a text-to-image run
every sample is denoised from the caption, the reply says how each word was read (an unknown
word is the unknown token), each frame carries every word's cross-attention maps, capturing
them changes no sample, and a prompt on a run without captions gets one clear 422."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from denoiselab import load_config, train
from denoiselab.serve.app import create_app
from denoiselab.serve.limits import MAX_ATTENTION_VALUES
from denoiselab.serve.payloads import decode_panel
from test_text_runs import QUIET, TINY_TEXT


@pytest.fixture(scope="module")
def client(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("prompt-runs")
    train(load_config("scenes-text", TINY_TEXT), root / "text", **QUIET)
    train(load_config("quick", ["train.steps=20", "model.hidden=16", "data.n=200", "sample.steps=3"]), root / "points", **QUIET)
    return TestClient(create_app(root))


def _sample(client, body: dict, run: str = "text"):
    return client.post(f"/api/runs/{run}/sample", json={"n": 3, "steps": 4, "seed": 0, **body})


def test_the_prompt_is_read_word_by_word_and_mapped_at_every_step(client):
    r = _sample(client, {"prompt": "a big red circle at the left, zorblax", "guidance": 3})
    assert r.status_code == 200, r.text
    d = r.json()
    prompt = d["prompt"]
    assert [t["word"] for t in prompt["tokens"]] == ["a", "big", "red", "circle", "at", "the", "left", ",", "zorblax"]
    assert [t["token"] for t in prompt["tokens"] if not t["known"]] == ["<unk>"] and prompt["unknown"] == ["zorblax"]
    assert prompt["guidance"] == 3.0 and 'prompt "a big red circle at the left, zorblax", classifier-free guidance 3' in d["description"]
    # TINY_TEXT's U-Net has levels 16 x 16 and 8 x 8: cross-attention at 8 x 8 after the down block,
    # the two up blocks and in the middle.
    assert prompt["attention"]["resolution"] == [8, 8] and prompt["attention"]["layers"] == 4
    assert len(d["frames"]) == 4
    for frame in d["frames"]:
        maps = decode_panel(frame["attention"])
        assert maps.shape == (3, 9, 16, 16)
        # Each pixel's attention over the prompt's words sums to 1 (float16 on the way).
        np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=3e-3)


def test_capturing_the_maps_changes_no_sample(client):
    """With frames the maps are captured, without frames they are not: the samples are the same."""
    body = {"prompt": "small blue square on top", "guidance": 2.5}
    with_maps = _sample(client, {**body, "frames": True}).json()
    without = _sample(client, {**body, "frames": False}).json()
    assert "attention" in with_maps["frames"][0] and "frames" not in without
    assert with_maps["samples"] == without["samples"]


def test_the_empty_prompt_is_unconditional_and_has_no_words(client):
    empty = _sample(client, {"prompt": "", "guidance": 4}).json()
    plain = _sample(client, {"guidance": 4}).json()  # a text run without a prompt: no caption either
    assert empty["prompt"]["tokens"] == [] and "attention" not in empty["prompt"]
    assert "attention" not in empty["frames"][0]
    assert empty["samples"] == plain["samples"]


def test_a_prompt_on_a_run_without_captions_gets_one_clear_message(client):
    r = _sample(client, {"prompt": "a red circle"}, run="points")
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "prompt: run 'points' was trained without captions, so it takes no prompt; "
        "choose a text-to-image run (recipe scenes-text) or leave the prompt out"
    )


def test_the_maps_are_held_to_their_bound(client):
    r = _sample(client, {"prompt": "a big red circle at the left", "n": 16, "steps": 100})
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"n: n x steps x words x H x W of the attention maps must be at most {MAX_ATTENTION_VALUES} with frames, got 16 x 100 x 7 x 16 x 16")
    assert _sample(client, {"prompt": "a big red circle at the left", "n": 16, "steps": 100, "frames": False}).status_code == 200
    too_long = _sample(client, {"prompt": "x" * 301})
    assert too_long.status_code == 422 and too_long.json()["detail"].startswith("prompt:")
