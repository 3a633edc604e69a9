"""The GPU recipes for real image sets (mnist, fashion-mnist, cifar10): valid as written, a missing
data file answered in one line that says where the files go, and, on a tiny generated file of the
real format passed by --set data.name, the recipe's own U-Net trains two steps on the CPU and is
measured (class accuracy, Frechet distance with its floor)."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
import torch
from conftest import set_args
from test_cifar_data import write_cifar

from denoiselab import cli
from denoiselab.config import load_config
from denoiselab.image_metrics import classifier_accuracy
from denoiselab.runs import load_run
from denoiselab.runs.evaluation import held_out_images, image_classifier

RECIPES = ("mnist", "fashion-mnist", "cifar10")
# The recipe's network and schedule as written; only the amounts shrink to what a CPU test affords.
TWO_STEPS = ["train.steps=2", "train.batch_size=4", "train.warmup_steps=1", "train.checkpoint_every=2"]


def write_idx(folder, n: int = 50, side: int = 28):
    """MNIST's two files, gzipped as published: n images (n / 10 a class) and their labels."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, n, side, side) + pixels.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes()))
    return folder / "train-images-idx3-ubyte"  # the recipe's spelling: the .gz beside it is found


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_recipes_are_valid_gpu_sized_unets(recipe):
    cfg = load_config(recipe, [])
    assert cfg.model.arch == "unet" and cfg.model.hidden >= 64 and cfg.model.blocks == 2
    assert cfg.data.name.startswith("data/") and cfg.train.label_dropout > 0
    assert load_config("digits", []).data.name == "digits"  # the CPU default stays the digits


@pytest.mark.parametrize("recipe, where", [("mnist", "data/mnist/"), ("fashion-mnist", "data/fashion-mnist/"), ("cifar10", "data/cifar-10-batches-py")])
def test_a_missing_real_set_is_one_line_exit_2(tmp_path, monkeypatch, capsys, recipe, where):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert cli.main(["train", "--config", recipe, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert where in err and "downloads nothing" in err and "--set data.name=PATH" in err, err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_trains_two_steps_and_is_measured(tmp_path, one_thread, capsys, recipe):
    """Training through the loop, then `evaluate` (the figures of a completed run are left out:
    at the recipe's network they take minutes on a CPU)."""
    from denoiselab.training import train

    if recipe == "cifar10":
        data = tmp_path / "cifar-10-batches-py"
        write_cifar(data, per_batch=10)  # 50 images, 5 a class: one a class held out
    else:
        data = write_idx(tmp_path / recipe)
    out = tmp_path / "run"
    train(load_config(recipe, [f"data.name={data}", *TWO_STEPS]), out, progress=False, log=lambda *a, **k: None)
    info = json.loads((out / "run.json").read_text())
    assert info["step"] == 2 and info["num_classes"] == 10 and info["train_flops_per_step"] > 0
    assert info["shape"] == ([3, 32, 32] if recipe == "cifar10" else [1, 28, 28])
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "-n", "20", "--steps", "2", "--json", "--no-progress"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] == 20 and metrics["n_held_out"] == 10
    assert metrics["frechet"] > 0 and metrics["frechet_floor"] > 0
    assert metrics["frechet_ratio"] == pytest.approx(metrics["frechet"] / metrics["frechet_floor"])
    # the accuracy's ceiling: the cached classifier on the run's real held-out images
    run = load_run(out)
    held, held_labels = held_out_images(run)
    assert metrics["held_out_accuracy"] == classifier_accuracy(image_classifier(run), torch.as_tensor(held), torch.as_tensor(held_labels))
