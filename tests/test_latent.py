"""Latent diffusion (issue 13): the autoencoder (shapes, KL in closed form, the loss, the stored
latent scale), latent runs end to end through the one training loop (both stages, bit-exact
resume, sampling decodes), the content hash that ties a run to its autoencoder, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import set_args
from safetensors.torch import load_file

from denoiselab import cli, files, training
from denoiselab.builders import model_from
from denoiselab.config import ConfigError, load_config
from denoiselab.latent import encode_images, reconstruction_loss
from denoiselab.runs.folder import LATENTS, RunFolder
from denoiselab.training.stages import stage_one_config
from denoiselab.models.autoencoder import Autoencoder, gaussian_kl
from denoiselab.runs import RunError, complete_run, load_run, sample_points

# Stage one and stage two small enough for seconds.
TINY_AE = ["autoencoder.hidden=8", "autoencoder.steps=30", "train.checkpoint_every=10"]
TINY_DENOISER = ["train.steps=20", "model.hidden=8", "model.time_dim=16", "sample.n=40", "sample.steps=4", "train.checkpoint_every=10"]
FLAT = ["autoencoder.latent=flat", "autoencoder.dim=2", "model.arch=residual-mlp", "model.hidden=16", "model.blocks=1"]


def _weights(path):
    return load_file(str(path / "model.safetensors"))


# --- the autoencoder ---------------------------------------------------------------------------


def test_kl_term_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 2, 4, 4, generator=gen), torch.randn(5, 2, 4, 4, generator=gen)
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_kl(mean, logvar), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, options, latent",
    [
        ((1, 8, 8), dict(downsample=1, latent_channels=2), (2, 4, 4)),  # digits
        ((1, 16, 16), dict(downsample=2, latent_channels=4), (4, 4, 4)),  # patterns
        ((1, 8, 8), dict(downsample=1, flat_dim=2), (2,)),  # a latent to draw
        ((3, 16, 16), dict(downsample=1, flat_dim=8, variational=False), (8,)),  # RGB, plain
        ((1, 28, 28), dict(downsample=2, latent_channels=1, variational=False), (1, 7, 7)),  # MNIST
    ],
)
def test_encode_decode_shapes(shape, options, latent):
    model = Autoencoder(shape, hidden=4, **options)
    x = torch.rand(3, *shape) * 2 - 1
    z = model.encode(x)
    assert model.latent_shape == latent and z.shape == (3, *latent)
    assert model.decode(z).shape == (3, *shape) and model(x).image.shape == (3, *shape)
    mean, logvar = model.posterior(x)
    assert (logvar is None) == (not options.get("variational", True)) and mean.shape == z.shape


def test_an_image_side_that_does_not_halve_is_refused():
    with pytest.raises(ValueError, match="7 x 7 images do not halve 1 times"):
        Autoencoder((1, 7, 7), downsample=1)
    cfg = load_config("digits-latent", ["autoencoder.downsample=4"])
    with pytest.raises(ConfigError, match="autoencoder.downsample: 8 x 8 images do not halve 4 times"):
        model_from(stage_one_config(cfg), 1, 10, (1, 8, 8))


def test_the_loss_is_squared_error_plus_weighted_kl_per_pixel():
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    plain = Autoencoder((1, 8, 8), hidden=4, variational=False)
    torch.testing.assert_close(reconstruction_loss(plain, x, None, kl_weight=5.0), torch.mean((plain(x).image - x) ** 2))
    vae = Autoencoder((1, 8, 8), hidden=4)
    # The same draws of z with two weights: the difference is the KL term alone.
    with_kl = reconstruction_loss(vae, x, torch.Generator().manual_seed(3), kl_weight=1.0)
    without = reconstruction_loss(vae, x, torch.Generator().manual_seed(3), kl_weight=0.0)
    mean, logvar = vae.posterior(x)
    torch.testing.assert_close(with_kl - without, gaussian_kl(mean, logvar).mean() / 64)


# --- runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory, one_thread):
    """A tiny digits VAE trained by the loop and completed (its latent scale stored)."""
    out = tmp_path_factory.mktemp("ae") / "ae"
    cfg = stage_one_config(load_config("digits-latent", TINY_AE + ["sample.n=40"]))
    training.train(cfg, out, progress=False, log=lambda *_: None)
    complete_run(out, log=lambda *_: None)
    return out


def test_the_stored_scale_gives_unit_variance_on_the_training_set(autoencoder_run):
    run = load_run(autoencoder_run)
    scale = float(run.model.latent_scale)
    assert scale != 1.0 and run.info["latent_scale"] == pytest.approx(scale)
    assert float(_weights(autoencoder_run)["latent_scale"]) == pytest.approx(scale)  # stored with the weights
    z = encode_images(run.model, run.data)
    assert z.shape == (len(run.data), 2, 4, 4) and np.std(z.astype(np.float64)) == pytest.approx(1.0, rel=1e-4)
    metrics = json.loads((autoencoder_run / "metrics.json").read_text())
    assert metrics["reconstruction_mse"] > 0 and metrics["reconstruction_psnr"] == pytest.approx(10 * np.log10(4 / metrics["reconstruction_mse"]))
    assert metrics["frechet_reconstruction"] > 0 and metrics["frechet_floor"] > 0
    # It samples nothing: no sampler, steps or grid beside its metrics, nor in complete_run's line.
    assert not {"sampler", "steps", "spacing"} & set(metrics)
    from denoiselab.runs.complete import measured_words

    assert measured_words(run) == "reconstructions of its held-out images"
    for name in ("reconstructions.png", "latent-space.png", "loss.png"):
        assert (autoencoder_run / name).stat().st_size > 1000


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory, autoencoder_run):
    out = tmp_path_factory.mktemp("latent") / "run"
    args = set_args(TINY_DENOISER + [f"latent.autoencoder={json.dumps(str(autoencoder_run))}"])
    assert cli.main(["train", "--config", "digits-latent", *args, "--out", str(out), "--no-progress"]) == 0
    return out


def test_a_latent_run_trains_on_latents_and_samples_images(latent_run, autoencoder_run, tmp_path):
    info = json.loads((latent_run / "run.json").read_text())
    assert info["status"] == "complete" and info["shape"] == [2, 4, 4] and info["latent"]["image_shape"] == [1, 8, 8]
    assert info["latent"]["autoencoder"] == str(autoencoder_run.resolve())
    assert info["latent"]["sha256"] == files_sha(autoencoder_run)
    latents, images = np.load(latent_run / LATENTS), np.load(latent_run / "data.npy")
    np.testing.assert_array_equal(latents, encode_images(load_run(autoencoder_run).model, images))  # encoded once, stored
    run = load_run(latent_run)
    x = sample_points(run, n=6, label="3", steps=4)
    assert x.shape == (6, 1, 8, 8) and np.abs(x).max() <= 1.0
    z = sample_points(run, n=6, label="3", steps=4, decode=False)
    np.testing.assert_allclose(x, np.clip(run.autoencoder.decode(torch.as_tensor(z)).detach().numpy(), -1, 1), atol=1e-5)
    metrics = json.loads((latent_run / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["frechet"] > 0 and metrics["frechet_reconstruction"] > 0
    for name in ("samples.png", "trajectory.gif", "ceiling.png", "reconstructions.png", "latent-space.png", "guidance.png"):
        assert (latent_run / name).stat().st_size > 1000, name
    assert cli.main(["sample", str(latent_run), "--label", "7", "-n", "4", "--steps", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 8, 8)


def files_sha(path):
    return RunFolder(path).weights_sha256()


def test_a_changed_or_missing_autoencoder_is_refused(latent_run, autoencoder_run, tmp_path, capsys):
    ae, run = tmp_path / "ae", tmp_path / "run"
    shutil.copytree(autoencoder_run, ae)
    shutil.copytree(latent_run, run)
    info = json.loads((run / "run.json").read_text())
    info["latent"]["autoencoder"] = str(ae)
    files.write_json(run / "run.json", info)
    load_run(run)  # the copy is the same autoencoder
    weights = _weights(ae)
    weights["latent_scale"] = weights["latent_scale"] * 2
    files.write_tensors(ae / "model.safetensors", weights)
    with pytest.raises(RunError, match="has changed since this run was trained on it"):
        load_run(run)
    assert cli.main(["sample", str(run), "-n", "2", "--out", str(tmp_path / "s.npy")]) == 2
    err = capsys.readouterr().err
    assert "has changed" in err and err.count("\n") == 1
    shutil.rmtree(ae)
    assert cli.main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is missing" in err and err.count("\n") == 1


def test_an_autoencoder_run_samples_nothing(autoencoder_run, tmp_path, capsys):
    assert cli.main(["sample", str(autoencoder_run), "-n", "2", "--out", str(tmp_path / "s.npy")]) == 2
    assert "is an autoencoder" in capsys.readouterr().err


def _train_args(tmp_path, *overrides):
    return ["train", "--config", "digits-latent", *set_args(TINY_DENOISER + list(overrides)), "--out", str(tmp_path / "new"), "--no-progress"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["latent.autoencoder=/nonexistent/ae"], "latent.autoencoder: /nonexistent/ae: no such run folder"),
        (["model.arch=residual-mlp"], "model.arch: the autoencoder's latent is spatial (2 x 4 x 4); it needs unet"),
        (["model.mults=[1,2,2,2]"], "model.mults: 4 levels halve the 2 x 4 x 4 latent 3 times"),
        (["data.upscale=2"], "data.upscale: the autoencoder"),  # a pixel-space key the autoencoder fixes
        (["data.held_out=0.3"], "data.held_out: the autoencoder"),
        (["autoencoder.kl_weight=0.1"], "autoencoder.kl_weight: the autoencoder"),
    ],
)
def test_bad_latent_recipes_get_one_line(autoencoder_run, tmp_path, capsys, overrides, message):
    if not any(o.startswith("latent.autoencoder") for o in overrides):
        overrides = [f"latent.autoencoder={json.dumps(str(autoencoder_run))}", *overrides]
    assert cli.main(_train_args(tmp_path, *overrides)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "new").exists()  # nothing written


def test_autoencoder_keys_on_a_pixel_run_are_refused():
    with pytest.raises(ConfigError, match="autoencoder.channels: this is a pixel-space run"):
        load_config("digits", ["autoencoder.channels=4"])
    with pytest.raises(ConfigError, match="latent.autoencoder: an autoencoder run"):
        load_config("digits", ["model.arch=autoencoder", "latent.autoencoder=x"])


def test_a_flat_latent_needs_an_mlp(tmp_path, capsys, one_thread):
    overrides = [*TINY_AE, "autoencoder.latent=flat", "autoencoder.steps=2", "model.arch=unet"]
    assert cli.main(_train_args(tmp_path, *overrides)) == 2
    err = capsys.readouterr().err
    assert "model.arch: the autoencoder's latent is a flat vector of 2" in err and err.count("\n") == 1
    assert not (tmp_path / "new").exists()  # refused before stage one


def _state(path):
    return {k: v for k, v in load_file(str(path / "checkpoint.safetensors")).items()}


@pytest.mark.slow
def test_both_stages_resume_bit_exactly(autoencoder_run, tmp_path, one_thread):
    quiet = dict(progress=False, log=lambda *_: None)
    ae_cfg = stage_one_config(load_config("digits-latent", TINY_AE))
    training.train(ae_cfg, tmp_path / "ae-a", **quiet)
    with pytest.raises(training.TrainingInterrupted):
        training.train(ae_cfg, tmp_path / "ae-b", stop_at=13, **quiet)
    training.train(ae_cfg, tmp_path / "ae-b", resume=True, **quiet)
    a, b = _state(tmp_path / "ae-a"), _state(tmp_path / "ae-b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    cfg = load_config("digits-latent", TINY_DENOISER + [f"latent.autoencoder={json.dumps(str(autoencoder_run))}"])
    training.train(cfg, tmp_path / "z-a", **quiet)
    with pytest.raises(training.TrainingInterrupted):
        training.train(cfg, tmp_path / "z-b", stop_at=7, **quiet)
    training.train(load_config(str(tmp_path / "z-b" / "config.toml")), tmp_path / "z-b", resume=True, **quiet)
    a, b = _state(tmp_path / "z-a"), _state(tmp_path / "z-b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_one_command_trains_a_flat_autoencoder_then_the_denoiser(tmp_path, capsys, one_thread):
    """Stage one inside the same command, with a 2-D flat latent: the residual MLP denoises it,
    samples decode to digits of the asked class, and the latent metrics are exact W2 / energy."""
    out = tmp_path / "flat"
    args = set_args(TINY_AE + TINY_DENOISER + FLAT)
    assert cli.main(["train", "--config", "digits-latent", *args, "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["shape"] == [2] and info["latent"]["autoencoder"] == "autoencoder"
    assert json.loads((out / "autoencoder" / "run.json").read_text())["status"] == "complete"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["latent_dim"] == 2 and metrics["latent_w2"] > 0 and metrics["latent_w2_floor"] > 0
    run = load_run(out)
    assert sample_points(run, n=5, label=2, steps=3).shape == (5, 1, 8, 8)
    # The run folder moves with its stage-one autoencoder (recorded relative to it).
    shutil.move(str(out), str(tmp_path / "moved"))
    assert load_run(tmp_path / "moved").autoencoder is not None


def test_resume_of_a_run_stopped_in_stage_one_says_how(tmp_path, capsys):
    (tmp_path / "run" / "autoencoder").mkdir(parents=True)
    (tmp_path / "run" / "autoencoder" / "checkpoint.safetensors").write_bytes(b"")
    assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "stopped in stage one" in err and err.count("\n") == 1


def test_mnist_idx_files_train_a_latent_run_through_data_name(tmp_path, capsys, one_thread):
    """MNIST's IDX files (gzipped, labels found beside the images) through data.name, as for
    pixel runs: both stages train in one command on their 16 x 16 images and sampling decodes to
    that shape, with the files' classes."""
    from test_image_data import write_idx

    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(10, dtype=np.uint8), 4)  # 40 images, 4 of each digit
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", 0x803, rng.integers(0, 256, (40, 16, 16), dtype=np.uint8), gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x801, labels, gz=True)
    out = tmp_path / "mnist"
    name = json.dumps(str(tmp_path / "train-images-idx3-ubyte.gz"))
    args = set_args(TINY_AE + TINY_DENOISER + [f"data.name={name}", "sample.n=20"])
    assert cli.main(["train", "--config", "digits-latent", *args, "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["latent"]["image_shape"] == [1, 16, 16] and info["shape"] == [2, 8, 8]  # 16 x 16 halved once, 2 channels
    ae = json.loads((out / "autoencoder" / "run.json").read_text())
    assert ae["status"] == "complete" and ae["shape"] == [1, 16, 16]
    run = load_run(out)
    assert run.class_names == [str(d) for d in range(10)] and run.data.shape[1:] == (1, 16, 16)
    x = sample_points(run, n=5, label="7", steps=3)
    assert x.shape == (5, 1, 16, 16) and np.abs(x).max() <= 1.0
    assert cli.main(["sample", str(out), "--label", "3", "-n", "4", "--steps", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 16, 16)
