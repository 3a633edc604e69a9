"""The latent text-to-image recipe (scenes-text-latent) end to end: stage one's autoencoder on the
captioned scenes (their images, not their captions), the text encoder, the U-Net on the latents
with cross-attention; sample --prompt decodes to images; the denoiser resumes bit-exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import set_args
from denoiselab import cli, training
from denoiselab.config import ConfigError, is_captioned_data, is_text_run, load_config
from denoiselab.runs import load_run

# Seconds, not minutes: 4 autoencoder steps, 6 contrastive steps, 10 denoiser steps, tiny networks.
TINY_LATENT_TEXT = [
    "data.n=120", "autoencoder.steps=4", "autoencoder.hidden=8", "text.clip_steps=6", "text.clip_batch=16",
    "text.width=16", "text.layers=1", "text.heads=2", "train.steps=10", "train.batch_size=16",
    "train.checkpoint_every=4", "train.warmup_steps=2", "model.hidden=8", "sample.n=8", "sample.steps=3",
]  # fmt: skip
QUIET = dict(progress=False, log=lambda *_: None)

# The command trains three stages and draws every figure: about 30 s on a loaded machine.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def latent_text_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("latent-text") / "run"
    assert cli.main(["train", "--config", "scenes-text-latent", *set_args(TINY_LATENT_TEXT), "--out", str(out), "--no-progress"]) == 0
    return out


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@slow
def test_the_run_denoises_latents_and_reads_captions(latent_text_run):
    info = json.loads((latent_text_run / "run.json").read_text())
    assert info["latent"]["autoencoder"] == "autoencoder" and info["text"]["encoder"] == "text-encoder"
    latents = np.load(latent_text_run / "latents.npy")
    tokens = np.load(latent_text_run / "tokens.npy")
    assert latents.shape == (info["n_train"], 4, 8, 8) and tokens.shape == (info["n_train"], 16)
    # The autoencoder saw the same scenes' images and no captions: an image run, no text stage.
    ae = load_run(latent_text_run / "autoencoder")
    assert ae.is_autoencoder and not ae.is_text and not (latent_text_run / "autoencoder" / "text-encoder").exists()
    assert is_captioned_data(ae.config) and not is_text_run(ae.config)
    assert np.array_equal(ae.data, np.load(latent_text_run / "data.npy"))
    run = load_run(latent_text_run)
    assert run.is_latent and run.is_text and run.sample_shape == (4, 8, 8) and run.data_shape == (3, 16, 16)


@slow
def test_sample_prompts_decode_to_images(latent_text_run, tmp_path):
    out, empty, plain = tmp_path / "p.npy", tmp_path / "empty.npy", tmp_path / "plain.npy"
    args = ["sample", str(latent_text_run), "--prompt", "a big red circle on the left", "--prompt", "top: small blue square", "-n", "3", "--guidance", "3"]
    assert cli.main([*args, "--out", str(out)]) == 0
    x = np.load(out)
    assert x.shape == (6, 3, 16, 16) and not np.array_equal(x[:3], x[3:])
    # The empty prompt at any guidance is the unconditional model, in latent space as in pixels.
    assert cli.main(["sample", str(latent_text_run), "--prompt", "", "-n", "4", "--guidance", "3", "--out", str(empty)]) == 0
    assert cli.main(["sample", str(latent_text_run), "-n", "4", "--out", str(plain)]) == 0
    assert np.array_equal(np.load(empty), np.load(plain))


@slow
def test_the_denoiser_resumes_bit_exactly(latent_text_run, tmp_path, one_thread):
    """Stopped in the latent denoiser's loop (after the autoencoder's 4 and the text encoder's 6
    steps): --resume reads the stored latents and tokens and ends on the uninterrupted weights."""
    cfg = load_config("scenes-text-latent", TINY_LATENT_TEXT)
    with pytest.raises(training.TrainingInterrupted):
        training.train(cfg, tmp_path / "b", stop_at=7, **QUIET)
    training.train(load_config(str(tmp_path / "b" / "config.toml")), tmp_path / "b", resume=True, **QUIET)
    for name in ("autoencoder/model.safetensors", "text-encoder/checkpoint.safetensors", "checkpoint.safetensors"):
        assert _same(load_file(str(latent_text_run / name)), load_file(str(tmp_path / "b" / name))), name


def test_stage_one_is_an_autoencoder_of_the_scenes_images():
    """Its recipe draws the same scenes (data and SCENE_KEYS) and reads none of the text encoder's keys."""
    from denoiselab.config import unread_keys
    from denoiselab.training.stages import stage_one_config

    cfg = load_config("scenes-text-latent")
    ae = stage_one_config(cfg)
    assert is_text_run(cfg) and not is_text_run(ae) and is_captioned_data(ae)
    unread = unread_keys(ae)
    assert "text.width" in unread and "text.cross_levels" in unread
    assert not {"text.pairs", "text.held_out", "text.captions"} & set(unread)


@slow
def test_an_autoencoder_of_other_scenes_is_refused(latent_text_run, tmp_path, capsys):
    ae = latent_text_run / "autoencoder"
    args = ["train", "--config", "scenes-text-latent", *set_args([*TINY_LATENT_TEXT, f"latent.autoencoder={ae}", "text.pairs=0.5"])]
    assert cli.main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "text.pairs: the autoencoder" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="read by the text-to-image denoiser, not by an autoencoder"):
        load_config("scenes-text-latent", ["model.arch=autoencoder", "latent.autoencoder=", "text.width=32"])


@slow
def test_the_playground_maps_words_over_the_decoded_image(latent_text_run):
    """The maps are taken on the latent's 8 x 8 grid and drawn over the decoded 16 x 16 image."""
    from fastapi.testclient import TestClient

    from denoiselab.serve.app import create_app
    from denoiselab.serve.payloads import decode_panel

    client = TestClient(create_app(latent_text_run.parent))
    r = client.post(f"/api/runs/{latent_text_run.name}/sample", json={"n": 2, "steps": 3, "seed": 0, "prompt": "a big red circle on the left", "guidance": 3})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["prompt"]["attention"]["resolution"] == [8, 8]
    maps = decode_panel(d["frames"][0]["attention"])
    assert maps.shape == (2, 7, 16, 16)
    np.testing.assert_allclose(maps.sum(axis=1), 1.0, atol=3e-3)
