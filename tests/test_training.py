"""Training: learning-rate schedule, EMA, objective, timestep sampling, reproducibility, resume."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from denoiselab import files
from denoiselab.builders import pick_device
from denoiselab.config import ConfigError, load_config
from denoiselab.objectives import diffusion_loss, sample_timesteps
from denoiselab.oracles import two_d_mixture
from denoiselab.runs.folder import CHECKPOINT, WEIGHTS
from denoiselab.schedules import make_schedule
from denoiselab.training import (
    EMA,
    CheckpointError,
    TrainingInterrupted,
    learning_rate,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["train.steps=40", "train.checkpoint_every=20", "train.warmup_steps=5", "train.batch_size=64", "model.hidden=16"]


def quiet(*args, **kwargs):
    pass


def small_config(*extra):
    return load_config("quick", [*SMALL, *extra])


def read_checkpoint(run_dir):
    with safe_open(str(run_dir / CHECKPOINT), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def any_differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# --- learning rate -------------------------------------------------------------------------
def test_learning_rate_warmup_then_cosine():
    cfg = load_config("quick", ["train.lr=1e-3", "train.warmup_steps=10", "train.steps=110"])
    lr = lambda step: learning_rate(cfg, step)  # noqa: E731
    assert lr(0) == pytest.approx(1e-4)  # (step + 1) / warmup: never exactly 0
    assert lr(4) == pytest.approx(5e-4)
    assert lr(9) == pytest.approx(1e-3)
    assert lr(10) == pytest.approx(1e-3)  # cosine starts at the peak
    assert lr(35) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr(60) == pytest.approx(0.5e-3)  # half way
    assert lr(109) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert lr(110) == pytest.approx(0.0, abs=1e-15)
    assert lr(500) == pytest.approx(0.0, abs=1e-15)  # past the end (e.g. raised steps on resume): stays 0
    values = [lr(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # monotone decay


def test_learning_rate_constant_and_no_warmup():
    cfg = load_config("quick", ["train.lr=2e-3", "train.warmup_steps=0", "train.lr_schedule=constant"])
    assert [learning_rate(cfg, s) for s in (0, 1, 150, 299)] == [2e-3] * 4
    cfg = load_config("quick", ["train.lr=2e-3", "train.warmup_steps=0", "train.steps=100"])
    assert learning_rate(cfg, 0) == pytest.approx(2e-3)
    assert learning_rate(cfg, 50) == pytest.approx(1e-3)


# --- EMA -----------------------------------------------------------------------------------
class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.register_buffer("stat", torch.zeros(3))

    def forward(self, x):
        return self.lin(x) + self.stat


def test_ema_decay_warmup():
    ema = EMA(nn.Linear(1, 1), 0.995)
    expected = [min(0.995, (1 + n) / (10 + n)) for n in range(2000)]
    got = []
    model = nn.Linear(1, 1)
    for _ in range(2000):
        got.append(ema.current_decay())
        ema.update(model)
    assert got == pytest.approx(expected)
    assert got[0] == pytest.approx(0.1) and got[1] == pytest.approx(2 / 11) and got[-1] == 0.995
    assert ema.updates == 2000
    assert got[1000] < 0.995 == got[1800]  # (1 + n) / (10 + n) reaches 0.995 at n = 1790


def test_ema_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    model = WithBuffer()
    ema = EMA(model, 0.9)
    assert ema.model is not model and not any(p.requires_grad for p in ema.model.parameters())
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # step 1: decay min(0.9, 1/10) = 0.1
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.stat.fill_(5.0)
    ema.update(model)
    for name in ("lin.weight", "lin.bias"):
        manual = 0.1 * start[name] + 0.9 * model.state_dict()[name]
        torch.testing.assert_close(ema.model.state_dict()[name], manual, rtol=0, atol=1e-6)
    torch.testing.assert_close(ema.model.stat, torch.full((3,), 5.0), rtol=0, atol=0)  # copied, not 0.9 * 5
    # step 2: decay 2/11
    prev = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-2.0)
        model.stat.fill_(-1.0)
    ema.update(model)
    d = 2 / 11
    for name in ("lin.weight", "lin.bias"):
        manual = d * prev[name] + (1 - d) * model.state_dict()[name]
        torch.testing.assert_close(ema.model.state_dict()[name], manual, rtol=0, atol=1e-6)
    assert torch.equal(ema.model.stat, torch.full((3,), -1.0))
    # the live model was not touched by the update
    assert model.stat[0].item() == -1.0
    # full decay after warm-up
    ema.updates = 1000
    assert ema.current_decay() == 0.9


# --- objective -------------------------------------------------------------------------------
def test_diffusion_loss_of_zero_model_and_of_the_exact_denoiser():
    schedule = make_schedule("linear", 1000)
    mixture = two_d_mixture()
    x0 = mixture.sample(8192, torch.Generator().manual_seed(0)).float()
    zero = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    loss_zero = diffusion_loss(zero, x0, schedule, torch.Generator().manual_seed(1)).item()
    assert loss_zero == pytest.approx(1.0, abs=0.03)  # E[eps^2] = 1
    loss_oracle = diffusion_loss(mixture.eps_model(schedule), x0, schedule, torch.Generator().manual_seed(1)).item()
    assert loss_oracle < 0.5 * loss_zero
    # the x0 target does not depend on the noise: a zero model scores exactly E[x0^2]
    loss_x0 = diffusion_loss(zero, x0, schedule, torch.Generator().manual_seed(1), prediction="x0")
    torch.testing.assert_close(loss_x0, torch.mean(x0**2))


def test_diffusion_loss_is_reproducible_with_a_generator():
    schedule = make_schedule("cosine", 100)
    x0 = torch.randn(64, 2)
    model = nn.Linear(2, 2)
    fn = lambda x, t, y=None: model(x) * t[:, None]  # noqa: E731
    a = diffusion_loss(fn, x0, schedule, torch.Generator().manual_seed(3))
    b = diffusion_loss(fn, x0, schedule, torch.Generator().manual_seed(3))
    c = diffusion_loss(fn, x0, schedule, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    a.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


@pytest.mark.parametrize("how", ["uniform", "logsnr"])
def test_timestep_sampling_stays_in_1_to_T(how):
    schedule = make_schedule("linear", 200)
    k = sample_timesteps(schedule, 20000, torch.Generator().manual_seed(0), how)
    assert k.dtype == torch.long and k.shape == (20000,)
    assert int(k.min()) >= 1 and int(k.max()) <= 200
    assert int(k.min()) <= 3 and int(k.max()) >= 195  # both ends reached
    if how == "logsnr":
        # uniform in log-SNR spends more of the batch on the near-clean steps of a linear schedule
        assert (k <= 20).float().mean() > 0.2
    else:
        assert (k <= 20).float().mean() == pytest.approx(0.1, abs=0.01)
    tiny = make_schedule("linear", 3, scale_with_T=False)
    assert set(sample_timesteps(tiny, 500, torch.Generator().manual_seed(0), how).tolist()) <= {1, 2, 3}
    with pytest.raises(ValueError, match="unknown timestep sampling"):
        sample_timesteps(schedule, 4, None, "cosine")


# --- the loop: reproducibility, weights written, resume --------------------------------------
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """40 uninterrupted steps with checkpoints every 20."""
    run_dir = tmp_path_factory.mktemp("train") / "A"
    state = train(small_config(), run_dir, progress=False, log=quiet)
    return run_dir, state


def test_train_writes_run_folder(reference_run):
    run_dir, state = reference_run
    assert state.step == 40 and len(state.losses) == 40 and all(math.isfinite(v) for v in state.losses)
    for name in ("config.toml", "run.json", "data.npy", CHECKPOINT, WEIGHTS):
        assert (run_dir / name).is_file(), name
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave nothing behind
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "trained" and info["step"] == 40 and info["dim"] == 2
    tensors, meta = read_checkpoint(run_dir)
    assert meta["step"] == "40" and meta["ema_updates"] == "40"
    # model.safetensors holds the EMA weights (used for sampling), not the raw ones
    weights = load_file(str(run_dir / WEIGHTS))
    assert_same_tensors(weights, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    assert any_differs(weights, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    assert torch.equal(tensors["losses"], torch.tensor(state.losses, dtype=torch.float64))


def test_no_ema_writes_the_raw_weights(tmp_path):
    run_dir = tmp_path / "noema"
    train(small_config("train.ema_decay=0", "train.steps=5"), run_dir, progress=False, log=quiet)
    tensors, _ = read_checkpoint(run_dir)
    assert not [k for k in tensors if k.startswith("ema.")]
    assert_same_tensors(load_file(str(run_dir / WEIGHTS)), {k[6:]: v for k, v in tensors.items() if k.startswith("model.")})


def test_same_seed_same_weights_other_seed_differs(reference_run, tmp_path):
    run_dir, _ = reference_run
    train(small_config(), tmp_path / "again", progress=False, log=quiet)
    assert_same_tensors(load_file(str(tmp_path / "again" / WEIGHTS)), load_file(str(run_dir / WEIGHTS)))
    train(small_config("train.seed=1"), tmp_path / "other", progress=False, log=quiet)
    assert any_differs(load_file(str(tmp_path / "other" / WEIGHTS)), load_file(str(run_dir / WEIGHTS)))


def _rewrite_checkpoint(run_dir, change):
    tensors, meta = read_checkpoint(run_dir)
    tensors, meta = change(dict(tensors), dict(meta))
    save_file(tensors, str(run_dir / CHECKPOINT), metadata=meta)


def test_resume_is_bitwise_equal_and_needs_every_piece_of_state(reference_run, tmp_path):
    ref_dir, _ = reference_run
    cfg = small_config()
    run_dir = tmp_path / "B"
    with pytest.raises(TrainingInterrupted) as err:
        train(cfg, run_dir, progress=False, log=quiet, stop_at=20)
    assert err.value.step == 20 and f"denoiselab train --resume {run_dir}" in str(err.value)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["step"] == 20
    interrupted_weights = load_file(str(run_dir / WEIGHTS))

    # Copies of the interrupted run, each with one piece of state dropped from its checkpoint.
    def fresh_optimizer(t, m):
        return {k: v for k, v in t.items() if not k.startswith("optim.")}, m

    def fresh_rng(t, m):
        return {**t, "rng": torch.Generator().manual_seed(cfg.train.seed + 1).get_state()}, m

    def fresh_ema_count(t, m):
        return t, {**m, "ema_updates": "0"}

    variants = {}
    for name, change in [("optimizer", fresh_optimizer), ("rng", fresh_rng), ("ema", fresh_ema_count)]:
        shutil.copytree(run_dir, tmp_path / name)
        _rewrite_checkpoint(tmp_path / name, change)
        variants[name] = tmp_path / name

    state = train(cfg, run_dir, resume=True, progress=False, log=quiet)
    assert state.step == 40
    ref_tensors, ref_meta = read_checkpoint(ref_dir)
    tensors, meta = read_checkpoint(run_dir)
    assert_same_tensors(tensors, ref_tensors)  # model, EMA, optimiser moments, RNG, losses
    assert meta == ref_meta
    assert_same_tensors(load_file(str(run_dir / WEIGHTS)), load_file(str(ref_dir / WEIGHTS)))
    assert any_differs(interrupted_weights, load_file(str(run_dir / WEIGHTS)))  # it did train on
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "trained" and info["step"] == 40

    # Without any one of those pieces the resumed run ends elsewhere: the equality above is
    # not vacuous.
    for name, path in variants.items():
        train(cfg, path, resume=True, progress=False, log=quiet)
        assert any_differs(load_file(str(path / WEIGHTS)), load_file(str(ref_dir / WEIGHTS))), name


def test_resume_rejects_corrupt_or_mismatched_checkpoints(tmp_path):
    cfg = small_config("train.steps=10", "train.checkpoint_every=5")
    run_dir = tmp_path / "C"
    with pytest.raises(TrainingInterrupted):
        train(cfg, run_dir, progress=False, log=quiet, stop_at=5)
    good = (run_dir / CHECKPOINT).read_bytes()
    # another architecture than the checkpoint's
    with pytest.raises(CheckpointError, match=r"checkpoint\.safetensors: does not match") as err:
        train(small_config("train.steps=10", "model.hidden=32"), run_dir, resume=True, progress=False, log=quiet)
    assert "\n" not in str(err.value)
    (run_dir / CHECKPOINT).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match=r"checkpoint\.safetensors: cannot read checkpoint"):
        train(cfg, run_dir, resume=True, progress=False, log=quiet)
    (run_dir / CHECKPOINT).write_bytes(good)
    assert train(cfg, run_dir, resume=True, progress=False, log=quiet).step == 10


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.npy"
    files.write_array(target, np.arange(3))

    def broken(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_with(target, broken)
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"train\.device: unknown device 'banana'"):
        pick_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"train\.device: 'cuda:0' is not available"):
            pick_device("cuda:0")


def test_a_second_trainer_on_the_same_run_is_refused(tmp_path):
    from denoiselab.runs.folder import RunBusyError, RunFolder

    folder = RunFolder(tmp_path)
    held = folder.lock()  # as if another process were training into tmp_path
    try:
        with pytest.raises(RunBusyError, match="another process is training"):
            folder.lock()
    finally:
        held.close()
    folder.lock().close()  # free again once the holder is gone
