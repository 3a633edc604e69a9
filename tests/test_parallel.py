"""Data parallelism without the processes: a global batch's draws kept for some rows equal those
rows of the whole draw (batch_draws.py); a step split into micro-batches (train.accumulate, the
same split as over processes) computes the same loss, weights, generator state and importance
history as one pass, for every objective; and every objective trains through
DistributedDataParallel (unused parameters, MeanFlow's Jacobian-vector product) in a gloo group
of one.  The real multi-process runs are in test_parallel_processes.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.distributed as dist

from denoiselab.batch_draws import BatchDraws
from denoiselab.builders import objective_from, schedule_from
from denoiselab.config import ConfigError, check_world_size, load_config
from denoiselab.training.checkpoint import init_state
from denoiselab.training.denoiser import load_training_data
from denoiselab.training.parallel import Processes, wrap
from denoiselab.training.step import optimiser_step


def _generator(seed=3):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("start,stop", [(0, 12), (0, 4), (4, 8), (9, 12), (5, 5)])
def test_the_rows_of_a_batch_draw_are_the_rows_of_the_whole_draw(start, stop):
    whole = BatchDraws(_generator(), 12)
    part = BatchDraws(_generator(), 12, start, stop)
    n = stop - start
    for draw in (
        lambda d, n: d.randn((n, 3)),
        lambda d, n: d.rand((n,)),
        lambda d, n: d.randint(1, 1000, (n,)),
        lambda d, n: d.multinomial(torch.tensor([0.2, 0.5, 0.3]), n),
        lambda d, n: d.randn((2, n), dtype=torch.float64, batch_dim=1),
    ):
        full, mine = draw(whole, 12), draw(part, n)
        assert torch.equal(full.narrow(-1 if full.ndim == 2 and full.shape[0] == 2 else 0, start, n), mine)
    # both generators stand at the same place afterwards: the next step's draws agree on every rank
    assert torch.equal(whole.generator.get_state(), part.generator.get_state())


def test_a_generator_draws_exactly_what_torch_draws():
    """One process keeps the bits it always had: BatchDraws.of(generator) is torch's own draw."""
    g1, g2 = _generator(), _generator()
    d = BatchDraws.of(g1, 7)
    assert torch.equal(d.randn((7, 2)), torch.randn(7, 2, generator=g2))
    assert torch.equal(d.rand((7,)), torch.rand(7, generator=g2, dtype=torch.float64))
    assert torch.equal(d.randint(0, 9, (7,)), torch.randint(0, 9, (7,), generator=g2))


def test_a_part_of_the_batch_keeps_the_callers_rows_inside_it():
    d = BatchDraws(None, 16, 4, 12)  # this process: rows 4..11 of 16
    head, tail = d.part(0, 6), d.part(6, 16)
    assert (head.total, head.start, head.stop) == (6, 4, 6)  # rows 4, 5 of the first six
    assert (tail.total, tail.start, tail.stop) == (10, 0, 6)  # rows 6..11 = the tail's 0..5
    assert d.part(12, 16).rows == 0 and d.part(0, 3).rows == 0


def test_wrong_row_counts_are_refused():
    with pytest.raises(ValueError, match="rows"):
        BatchDraws(None, 8, 6, 10)
    with pytest.raises(ValueError, match="for 4 rows"):
        BatchDraws(None, 8, 0, 4).randn((5, 2))


# Every kind of objective: the chain (eps, uniform), importance-sampled times, flow matching,
# OT-CFM (the coupling solved over the global batch), conditional with label dropout, MeanFlow,
# shortcut, improved consistency training.
RECIPES = {
    "chain": ("spiral", []),
    "importance": ("spiral", ["train.timesteps=importance", "train.importance_history=2", "train.importance_bins=8"]),
    "flow": ("spiral-flow", []),
    "ot-cfm": ("spiral-otcfm", []),
    "conditional": ("four-shapes", ["data.n=200"]),
    "meanflow": ("spiral-meanflow", []),
    "shortcut": ("spiral-shortcut", []),
    "ict": ("spiral-ict", []),
}


def _setup(recipe: str, sets: list[str], accumulate: int = 1):
    cfg = load_config(recipe, [*sets, "train.batch_size=64", f"train.accumulate={accumulate}", "train.threads=1", "train.warmup_steps=2"])
    data = load_training_data(cfg)
    x = torch.as_tensor(data.normalization.encode(data.train), dtype=torch.float32)
    y = None if data.labels is None else torch.as_tensor(data.labels, dtype=torch.long)
    objective = objective_from(cfg, schedule_from(cfg))
    state = init_state(cfg, x.shape[1], torch.device("cpu"), len(data.class_names))
    state.time_sampler = objective.new_time_sampler()
    return cfg, state, objective, x, y


def _weights(state):
    return torch.cat([p.detach().flatten() for p in state.model.parameters()])


@pytest.mark.parametrize("kind", list(RECIPES))
def test_micro_batches_train_what_one_pass_trains(kind):
    """train.accumulate = 4 splits each step's batch as 4 processes would: the same loss terms,
    so the same losses, weights and EMA up to float rounding, and the same generator state and
    importance history exactly."""
    recipe, sets = RECIPES[kind]
    runs = []
    for parts in (1, 4):
        cfg, state, objective, x, y = _setup(recipe, sets, parts)
        for _ in range(6):
            optimiser_step(cfg, state, objective, x, y)
        runs.append(state)
    one, split = runs
    np.testing.assert_allclose(split.losses, one.losses, rtol=2e-5)
    torch.testing.assert_close(_weights(split), _weights(one), rtol=0, atol=2e-5)
    torch.testing.assert_close(
        torch.cat([p.flatten() for p in split.ema.model.parameters()]), torch.cat([p.flatten() for p in one.ema.model.parameters()]), rtol=0, atol=2e-5
    )
    assert torch.equal(split.generator.get_state(), one.generator.get_state())
    if one.time_sampler is not None:
        assert torch.equal(split.time_sampler.counts, one.time_sampler.counts)
        torch.testing.assert_close(split.time_sampler.history, one.time_sampler.history, rtol=1e-5, atol=1e-7)


def test_the_autoencoder_trains_in_micro_batches_too():
    """A variational autoencoder draws its reparameterisation noise per row (latent.py): four
    micro-batches train what one pass trains."""
    runs = []
    for parts in (1, 4):
        cfg = load_config("digits-latent", ["train.batch_size=32", f"train.accumulate={parts}", "train.threads=1", "data.n=200"])
        from denoiselab.training.stages import stage_one_config

        ae = stage_one_config(cfg)
        data = load_training_data(ae)
        x = torch.as_tensor(data.train, dtype=torch.float32)
        objective = objective_from(ae, schedule_from(ae))
        state = init_state(ae, x.shape[1], torch.device("cpu"), 0, tuple(x.shape[1:]))
        for _ in range(3):
            optimiser_step(ae, state, objective, x, None)
        runs.append(state)
    np.testing.assert_allclose(runs[1].losses, runs[0].losses, rtol=2e-5)
    assert torch.equal(runs[1].generator.get_state(), runs[0].generator.get_state())


def test_the_batch_coupled_stages_take_their_batch_whole():
    """The text encoder's contrastive loss and the classifier's training ignore train.accumulate."""
    from denoiselab.classifiers import ClassifierSettings
    from denoiselab.training.classifier import loop_config
    from denoiselab.training.text_stage import stage_config

    assert stage_config(load_config("scenes-text", ["train.accumulate=2"])).train.accumulate == 1
    assert loop_config(load_config("four-shapes", ["train.accumulate=2"]), ClassifierSettings()).train.accumulate == 1


def test_an_unequal_split_is_refused_in_one_line():
    cfg = load_config("spiral", ["train.batch_size=100"])
    with pytest.raises(ConfigError, match="train.batch_size: 100 is the global batch.*multiple of 8"):
        check_world_size(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, accumulate=4)), 2)
    with pytest.raises(ConfigError, match="train.accumulate: must divide"):
        load_config("spiral", ["train.batch_size=100", "train.accumulate=3"])
    check_world_size(load_config("digits-latent"), 2)  # the first stages train in several processes too
    check_world_size(load_config("scenes-text"), 2)


def test_ranks_hold_the_batch_in_order():
    rows = [Processes(rank=r, world_size=2).rows(64, 2) for r in (0, 1)]
    assert rows == [[(0, 16), (16, 32)], [(32, 48), (48, 64)]]


@pytest.fixture
def group_of_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("kind", list(RECIPES))
def test_every_objective_trains_through_distributed_data_parallel(kind, group_of_one):
    """DDP's reducer raises at the next step if a parameter got no gradient (the null label of
    classifier-free guidance, a second time input) and MeanFlow differentiates through the
    network with torch.func.jvp: the first step's loss and gradient through DDP are one
    process's, and the next steps run."""
    recipe, sets = RECIPES[kind]
    cfg, plain, objective, x, y = _setup(recipe, sets)
    _, wrapped, _, _, _ = _setup(recipe, sets)
    network = wrap(wrapped.model, torch.device("cpu"))
    optimiser_step(cfg, plain, objective, x, y)
    optimiser_step(cfg, wrapped, objective, x, y, network=network)
    assert wrapped.losses == pytest.approx(plain.losses, rel=1e-6)
    grads = [torch.cat([p.grad.flatten() for p in s.model.parameters()]) for s in (plain, wrapped)]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    for _ in range(2):
        optimiser_step(cfg, wrapped, objective, x, y, network=network)
    assert len(wrapped.losses) == 3 and all(np.isfinite(wrapped.losses))


def test_a_run_says_whether_it_is_bit_reproducible_on_its_device():
    from denoiselab.reproducible import reproducibility

    assert reproducibility(torch.device("cpu"), 1).startswith("bit-exact when run again on this machine (1 thread)")
    assert reproducibility(torch.device("cuda", 0), None).startswith("not bit-exact on cuda")


def test_a_draw_says_whether_it_is_bit_reproducible_on_its_device(trained_run, tmp_path, capsys):
    """sample and evaluate state it, in words and in --json: one wording (reproducible.py)."""
    from denoiselab import cli
    from denoiselab.reproducible import draw_reproducibility

    threads = torch.get_num_threads()
    said = draw_reproducibility(torch.device("cpu"))
    assert said.startswith(f"bit-exact when run again on this machine (cpu, {threads} thread") and "neither --batch nor the number of processes" in said
    assert draw_reproducibility(torch.device("cpu"), 2).startswith(f"bit-exact when run again on this machine (cpu, {threads} thread{'s' if threads > 1 else ''}, 2 processes)")
    assert "not promised bit-exact" in draw_reproducibility(torch.device("cuda", 0)) and "TF32" in draw_reproducibility(torch.device("cuda", 0))
    import json

    out = str(tmp_path / "x.npy")
    assert cli.main(["sample", str(trained_run), "-n", "3", "--steps", "2", "--out", out]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"reproducible: {said}"
    assert cli.main(["sample", str(trained_run), "-n", "3", "--steps", "2", "--out", out, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reproducible"] == said
    assert cli.main(["evaluate", str(trained_run), "-n", "20", "--repeats", "1", "--steps", "2", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"reproducible: {said}"


def test_commands_that_do_not_share_their_work_refuse_torchrun(monkeypatch, capsys):
    from denoiselab import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli.main(["schedules", "--out", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "schedules runs in one process; start it without torchrun" in err


def _first_stage(kind: str):
    """The autoencoder of a latent recipe, or the text encoder's contrastive stage, ready to step."""
    from denoiselab.training.stages import stage_one_config
    from denoiselab.training.text_stage import _contrastive_model, load_captioned_data, stage_config

    if kind == "autoencoder":
        cfg = stage_one_config(load_config("digits-latent", ["train.batch_size=16", "train.threads=1", "data.n=100", "autoencoder.hidden=8"]))
        x = torch.as_tensor(load_training_data(cfg).train, dtype=torch.float32)
        return cfg, init_state(cfg, x.shape[1], torch.device("cpu"), 0, tuple(x.shape[1:])), objective_from(cfg, schedule_from(cfg)), x, None
    from denoiselab.text import Tokenizer
    from denoiselab.text.contrastive import ContrastiveObjective

    cfg = load_config("scenes-text", ["data.n=60", "text.clip_batch=16", "text.width=16", "text.layers=1", "text.heads=2", "train.threads=1"])
    data = load_captioned_data(cfg)
    tokenizer = Tokenizer.fit(data.captions, cfg.text.length)
    scfg = stage_config(cfg)
    state = init_state(scfg, 3, torch.device("cpu"), build_model=lambda: _contrastive_model(cfg, data.train.shape[1], tokenizer.size))
    return scfg, state, ContrastiveObjective(), torch.as_tensor(data.train), torch.as_tensor(tokenizer.encode_batch(data.captions))


@pytest.mark.parametrize("kind", ["autoencoder", "text encoder"])
def test_the_first_stages_train_through_distributed_data_parallel(kind, group_of_one):
    """The autoencoder's loss reads the posterior and the decoder, the contrastive loss both
    encoders: each through the network's forward, so DDP synchronises their gradients; in a group
    of one the step is one process's."""
    cfg, plain, objective, x, y = _first_stage(kind)
    _, wrapped, _, _, _ = _first_stage(kind)
    network = wrap(wrapped.model, torch.device("cpu"))
    for _ in range(2):
        optimiser_step(cfg, plain, objective, x, y)
        optimiser_step(cfg, wrapped, objective, x, y, network=network)
    assert wrapped.losses == pytest.approx(plain.losses, rel=1e-6)
    torch.testing.assert_close(_weights(wrapped), _weights(plain), rtol=0, atol=1e-6)


def test_a_measurement_with_shared_draws_measures_what_one_process_does(trained_run, group_of_one):
    """Rank 0's side of `torchrun ... evaluate` in a group of one: every draw of the measurement
    goes through the shared path (the plan sent, the share drawn, the parts gathered), and the
    metrics and the first sample set are the unshared ones to the bit."""
    from denoiselab.runs import evaluate_run, load_run
    from denoiselab.runs.shared_draws import share, shared_draws

    run = load_run(trained_run)
    plain, first = evaluate_run(run, repeats=2, n=30, steps=3, density=False)
    with shared_draws(run):
        shared, shared_first = evaluate_run(run, repeats=2, n=30, steps=3, density=False)
    assert shared.to_dict() == plain.to_dict() and np.array_equal(shared_first, first)
    assert [share(5, r, 2) for r in (0, 1)] == [(0, 2), (2, 5)] and share(1, 0, 2) == (0, 0)


def test_a_stop_inside_stage_one_says_to_resume_it_with_as_many_processes(tmp_path, monkeypatch):
    """The autoencoder trained by 2 processes: a Ctrl-C inside it names the command that resumes
    it in 2 processes (bit-exact), not one process's."""
    from denoiselab.runs.folder import RunFolder
    from denoiselab.training import denoiser

    class TwoProcesses(Processes):
        def barrier(self) -> None:
            pass

    asked = {}
    monkeypatch.setattr(denoiser, "train", lambda cfg, path, **options: asked.update(options))
    monkeypatch.setattr(denoiser, "complete_run", lambda *a, **k: None)
    cfg = load_config("digits-latent", ["autoencoder.hidden=8", "model.hidden=8"])
    options = dict(progress=False, log=lambda *_: None, stop_at=None, on_step=None)
    denoiser._stage_one(cfg, RunFolder(tmp_path / "run"), False, **options, processes=TwoProcesses(0, 2))
    assert asked["resume_command"] == f"denoiselab train --nproc 2 --resume {tmp_path / 'run' / 'autoencoder'}"
    asked.clear()
    denoiser._stage_one(cfg, RunFolder(tmp_path / "one"), False, **options, processes=Processes())
    assert "resume_command" not in asked  # one process: train's own default, denoiselab train --resume RUN/autoencoder
