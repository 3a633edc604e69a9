"""Text-to-image runs end to end: the text stage and the denoiser resume bit-exactly, sample
--prompt draws one row per prompt, the empty prompt is the unconditional model, and bad input
(captions, prompts, recipe keys) gets one line and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import set_args
from denoiselab import cli, training
from denoiselab.config import ConfigError, load_config

# A text run that trains in seconds: 6 contrastive steps, 10 denoiser steps, a tiny U-Net.
TINY_TEXT = [
    "data.n=120", "text.clip_steps=6", "text.clip_batch=16", "text.width=16", "text.layers=1", "text.heads=2",
    "train.steps=10", "train.batch_size=16", "train.checkpoint_every=4", "train.warmup_steps=2", "model.hidden=8",
    "model.mults=[1, 2]", "sample.n=8", "sample.steps=3",
]  # fmt: skip
QUIET = dict(progress=False, log=lambda *_: None)


def _tensors(path):
    return load_file(str(path))


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("text") / "run"
    training.train(load_config("scenes-text", TINY_TEXT), out, **QUIET)
    return out


def test_the_run_records_its_captions_and_text_encoder(text_run):
    info = json.loads((text_run / "run.json").read_text())
    stage = json.loads((text_run / "text-encoder" / "run.json").read_text())
    assert info["text"]["encoder"] == "text-encoder" and info["text"]["length"] == 16
    assert stage["status"] == "complete" and stage["step"] == 6
    for split in ("held_out", "unseen_combinations"):
        r = stage["retrieval"][split]
        assert 0 <= r["caption_to_image"] <= 1 and r["pairs"] >= 12
    tokens = np.load(text_run / "tokens.npy")
    captions = json.loads((text_run / "captions.json").read_text())
    assert tokens.shape == (len(captions["train"]), 16) == (info["n_train"], 16)
    # The denoiser starts from the pretrained text encoder, and keeps it frozen.
    pretrained = {k[5:]: v for k, v in _tensors(text_run / "text-encoder" / "model.safetensors").items() if k.startswith("text.")}
    trained = {k[8:]: v for k, v in _tensors(text_run / "model.safetensors").items() if k.startswith("encoder.")}
    assert _same(pretrained, trained)


def test_both_stages_resume_bit_exactly(text_run, tmp_path, capsys, one_thread):
    cfg = load_config("scenes-text", TINY_TEXT)
    # Stopped inside the text stage: the same command again continues it.
    with pytest.raises(training.TrainingInterrupted, match="same denoiselab train command"):
        training.train(cfg, tmp_path / "a", stop_at=3, **QUIET)
    assert not (tmp_path / "a" / "run.json").exists()
    assert cli.main(["train", "--resume", str(tmp_path / "a")]) == 2  # --resume names the command that continues it
    assert "stopped in the text stage" in capsys.readouterr().err
    training.train(cfg, tmp_path / "a", **QUIET)
    # Stopped inside the denoiser's loop: --resume continues it.
    with pytest.raises(training.TrainingInterrupted):
        training.train(cfg, tmp_path / "b", stop_at=7, **QUIET)
    training.train(load_config(str(tmp_path / "b" / "config.toml")), tmp_path / "b", resume=True, **QUIET)
    for run in (tmp_path / "a", tmp_path / "b"):
        assert _same(_tensors(text_run / "text-encoder" / "checkpoint.safetensors"), _tensors(run / "text-encoder" / "checkpoint.safetensors"))
        assert _same(_tensors(text_run / "checkpoint.safetensors"), _tensors(run / "checkpoint.safetensors"))


def test_sample_prompts_one_row_each_with_a_warning_for_an_unknown_word(text_run, tmp_path, capsys):
    out = tmp_path / "p.npy"
    args = ["sample", str(text_run), "--prompt", "a big red circle on the left", "--prompt", "a purple square", "-n", "3", "--guidance", "3", "--out", str(out)]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "never saw 'purple'" in err and err.count("warning") == 1
    x = np.load(out)
    assert x.shape == (6, 3, 16, 16) and not np.array_equal(x[:3], x[3:])
    png = tmp_path / "p.png"
    assert cli.main(["sample", str(text_run), "--prompt", "top: small blue square", "--prompt", "", "-n", "2", "--out", str(png)]) == 0
    assert png.stat().st_size > 0


def test_the_empty_prompt_is_the_unconditional_model(text_run, tmp_path):
    """An empty prompt at guidance 3 draws the very samples of the model called without text."""
    empty, plain = tmp_path / "empty.npy", tmp_path / "plain.npy"
    assert cli.main(["sample", str(text_run), "--prompt", "", "-n", "4", "--guidance", "3", "--out", str(empty)]) == 0
    assert cli.main(["sample", str(text_run), "-n", "4", "--out", str(plain)]) == 0
    assert np.array_equal(np.load(empty), np.load(plain))


def _one_line_error(capsys, args, words: str):
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err


def test_a_prompt_on_a_run_without_text(trained_run, tmp_path, capsys):
    _one_line_error(capsys, ["sample", str(trained_run), "--prompt", "a red circle", "--out", str(tmp_path / "x.png")], "is not a text-to-image run")


def test_a_text_run_is_no_teacher(text_run, tmp_path, capsys):
    from conftest import assert_refused_in_one_line

    assert_refused_in_one_line(["distill", str(text_run), "--method", "reflow", "--out", str(tmp_path / "d")], capsys, "text-to-image run", tmp_path / "d")


def test_bad_captions_files(tmp_path, capsys):
    images = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    images[..., 0] = np.arange(5)[:, None, None] * 40
    np.savez(tmp_path / "imgs.npz", x=images)
    (tmp_path / "four.txt").write_text("a\nb\nc\nd\n")
    (tmp_path / "empty.txt").write_text("")
    for captions, words in (("four.txt", "has 4 captions for 5 images"), ("empty.txt", "is empty")):
        recipe = tmp_path / f"own-{captions}.toml"
        recipe.write_text(
            f'[data]\nname = {json.dumps(str(tmp_path / "imgs.npz"))}\n[text]\ncaptions = {json.dumps(str(tmp_path / captions))}\n'
            '[model]\narch = "unet"\nhidden = 8\n[train]\nsteps = 2\n'
        )
        _one_line_error(capsys, ["train", "--config", str(recipe), "--out", str(tmp_path / f"run-{captions}"), "--no-progress"], words)


@pytest.mark.parametrize(
    "recipe, overrides, words",
    [
        ("patterns", ["text.width=32"], "text.width: this is not a text-to-image run"),
        ("scenes-text", ["text.heads=3"], "text.heads: must divide text.width"),
        ("scenes-text", ["text.cross_levels=4"], "the unet has 3 levels"),
        ("scenes-text", ["model.precondition=edm"], "built without preconditioning"),
        ("scenes-text", ["train.ema_snapshot_every=100"], "not taken on text-to-image runs"),
        ("scenes-text", ["text.held_out=[\"purple circle\"]"], None),
    ],
)
def test_text_recipe_keys_are_checked(recipe, overrides, words):
    if words is None:  # a word that is no attribute value is refused when the scenes are drawn
        from denoiselab.data.point_files import DataError
        from denoiselab.training.text_stage import load_scenes

        with pytest.raises(DataError, match="'purple'"):
            load_scenes(load_config(recipe, overrides))
        return
    with pytest.raises(ConfigError, match=words):
        load_config(recipe, overrides)
