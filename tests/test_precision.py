"""train.precision: the loss under torch.autocast (bf16, or fp16 with a gradient scaler), the
weights, optimiser and EMA in fp32; fp32 is the arithmetic every earlier run had (test_golden)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from denoiselab.builders import objective_from, schedule_from
from denoiselab.config import ConfigError, load_config
from denoiselab.training import TrainingInterrupted, train
from denoiselab.training.checkpoint import init_state
from denoiselab.training.denoiser import load_training_data
from denoiselab.training.step import optimiser_step


def _first_losses(precision: str, steps: int = 3):
    cfg = load_config("spiral", [f"train.precision={precision}", "train.batch_size=128", "train.threads=1"])
    data = load_training_data(cfg)
    x = torch.as_tensor(data.normalization.encode(data.train), dtype=torch.float32)
    objective = objective_from(cfg, schedule_from(cfg))
    state = init_state(cfg, x.shape[1], torch.device("cpu"))
    for _ in range(steps):
        optimiser_step(cfg, state, objective, x, None)
    return state


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_computes_the_loss_in_half_precision_and_keeps_fp32_weights(precision):
    exact, mixed = _first_losses("fp32"), _first_losses(precision)
    # The same draws: the losses agree to half precision's few digits, and are not fp32's bits.
    assert mixed.losses == pytest.approx(exact.losses, rel=2e-2)
    assert mixed.losses != exact.losses
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    assert all(p.dtype == torch.float32 for p in mixed.ema.model.parameters())
    assert (mixed.scaler is not None) == (precision == "fp16")


def test_fp16_resumes_with_its_loss_scale(tmp_path):
    """The gradient scaler's scale and growth count are in the checkpoint: an fp16 run stopped
    and resumed ends with the bytes of an uninterrupted one."""
    cfg = load_config("quick", ["train.precision=fp16", "train.steps=60", "train.threads=1", "train.checkpoint_every=1000"])
    _assert_resume_is_bit_exact(cfg, tmp_path, stop_at=25)


def _assert_resume_is_bit_exact(cfg, tmp_path, stop_at: int) -> None:
    """A run stopped after ``stop_at`` steps and resumed ends with an uninterrupted run's bytes."""
    train(cfg, tmp_path / "whole", progress=False, log=lambda *a: None)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "parts", progress=False, log=lambda *a: None, stop_at=stop_at)
    train(cfg, tmp_path / "parts", resume=True, progress=False, log=lambda *a: None)
    a, b = (load_file(str(tmp_path / run / "checkpoint.safetensors")) for run in ("whole", "parts"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_unknown_precision_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="train.precision.*fp32.*bf16.*fp16"):
        load_config("spiral", ["train.precision=fp8"])


def test_the_loss_scale_survives_a_checkpoint(tmp_path):
    from denoiselab.training.checkpoint import load_checkpoint, save_checkpoint

    cfg = load_config("quick", ["train.precision=fp16"])
    saved = init_state(cfg, 2, torch.device("cpu"))
    saved.scaler.load_state_dict({**saved.scaler.state_dict(), "scale": 1024.0, "_growth_tracker": 7})  # as after overflows
    save_checkpoint(saved, tmp_path / "c.safetensors", tmp_path / "w.safetensors")
    restored = init_state(cfg, 2, torch.device("cpu"))
    load_checkpoint(restored, tmp_path / "c.safetensors")
    assert restored.scaler.get_scale() == 1024.0 and restored.scaler.state_dict()["_growth_tracker"] == 7


def _image_losses(sets: list[str], steps: int = 2):
    cfg = load_config("digits", ["train.batch_size=16", "train.threads=1", *sets])
    data = load_training_data(cfg)
    x = torch.as_tensor(data.train, dtype=torch.float32)
    y = torch.as_tensor(data.labels, dtype=torch.long)
    objective = objective_from(cfg, schedule_from(cfg))
    state = init_state(cfg, x.shape[1], torch.device("cpu"), len(data.class_names), tuple(x.shape[1:]))
    network = torch.compile(state.model) if cfg.train.compile else state.model  # init_state orders the channels
    for _ in range(steps):
        optimiser_step(cfg, state, objective, x, y, network=network)
    return state


def test_channels_last_trains_the_same_network_in_another_memory_order():
    plain, nhwc = _image_losses([]), _image_losses(["train.channels_last=true"])
    assert nhwc.losses == pytest.approx(plain.losses, rel=1e-4)
    conv = next(p for p in nhwc.model.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.slow
def test_a_compiled_network_trains_the_same_losses():
    """torch.compile (TorchInductor, the system's C++ compiler on a CPU) fuses the network's
    kernels: the point MLP (a U-Net compiles for a minute on a CPU; BENCHMARKS.md)."""
    cfg = load_config("spiral", ["train.batch_size=128", "train.threads=1"])
    data = load_training_data(cfg)
    x = torch.as_tensor(data.normalization.encode(data.train), dtype=torch.float32)
    objective = objective_from(cfg, schedule_from(cfg))
    plain, compiled = (init_state(cfg, x.shape[1], torch.device("cpu")) for _ in range(2))
    network = torch.compile(compiled.model)
    for _ in range(3):
        optimiser_step(cfg, plain, objective, x, None)
        optimiser_step(cfg, compiled, objective, x, None, network=network)
    assert compiled.losses == pytest.approx(plain.losses, rel=1e-4)


def test_the_memory_and_compiler_options_are_refused_where_they_do_not_apply():
    with pytest.raises(ConfigError, match="train.channels_last: orders the channels of images; model.arch = residual-mlp"):
        load_config("spiral", ["train.channels_last=true"])
    with pytest.raises(ConfigError, match="train.compile: MeanFlow differentiates"):
        load_config("spiral-meanflow", ["train.compile=true"])


def test_channels_last_resumes_bit_exactly(tmp_path):
    """The optimiser's moments are restored in their parameters' layout, as an uninterrupted run
    makes them (a contiguous moment beside an NHWC parameter rounds the fused update differently)."""
    cfg = load_config("digits", ["train.steps=6", "train.batch_size=16", "train.channels_last=true", "train.threads=1"])
    _assert_resume_is_bit_exact(cfg, tmp_path, stop_at=3)
