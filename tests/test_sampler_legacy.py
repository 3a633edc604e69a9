"""The samplers' previous signature (samplers/legacy.py), kept for one release: every sampler
still answers ``sampler(model_fn, x_T, schedule, steps, *, grid, spacing, y, prediction, clip_x0,
generator, on_step, **own)`` with a DeprecationWarning naming the new form, and gives the same
numbers, bit for bit, as ``sampler(Denoiser(...), x_T, times, ...)``."""

from __future__ import annotations

import inspect

import pytest
import torch

import denoiselab
from denoiselab.guidance import classifier_free
from denoiselab.oracles import two_d_mixture
from denoiselab.samplers import SAMPLERS, Denoiser, StepRecord, evaluate, time_grid
from denoiselab.samplers.stepping import evaluate as evaluate_by_its_old_path
from denoiselab.schedules import flow_schedule, make_schedule

MIX = two_d_mixture()
SCHED = make_schedule("linear", 1000)
FLOW = flow_schedule(1000)
OPTIONS = {"ddim": {"eta": 0.6}, "ddpm": {"variance": "large"}, "unipc": {"order": 3, "variant": "bh1"}, "ipndm": {"order": 3}}


def labelled(x, t, y=None):
    """A conditional model: the mixture's eps, shifted by the label (-1: none)."""
    return MIX.eps_model(SCHED)(x, t) + 0.1 * (y.double()[:, None] + 1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(n: int = 40) -> torch.Tensor:
    return torch.randn(n, 2, generator=gen(0), dtype=torch.float64)


def both(name, model_fn, schedule, *, legacy_args, legacy_kwargs, times, prediction="eps", y=None, clip_x0=None):
    """(the old call's output and records, the new call's), with the old call's warnings."""
    own = OPTIONS.get(name, {})
    old_records: list[StepRecord] = []
    new_records: list[StepRecord] = []
    with pytest.warns(DeprecationWarning, match=rf"{SAMPLERS[name].__name__}\(Denoiser\("):
        old = SAMPLERS[name](model_fn, noise(), schedule, *legacy_args, prediction=prediction, y=y, clip_x0=clip_x0,
                             generator=gen(1), on_step=old_records.append, **legacy_kwargs, **own)
    denoise = Denoiser(model_fn, schedule, prediction, y, clip_x0)
    new = SAMPLERS[name](denoise, noise(), times, generator=gen(1), on_step=new_records.append, **own)
    return (old, old_records), (new, new_records)


def assert_identical(a, b):
    (x_a, rec_a), (x_b, rec_b) = a, b
    assert torch.equal(x_a, x_b)
    assert len(rec_a) == len(rec_b)
    for r, s in zip(rec_a, rec_b, strict=True):
        assert (r.index, r.t, r.t_next, r.T) == (s.index, s.t, s.t_next, s.T)
        for field in ("x_t", "x0", "eps", "x_next"):
            assert torch.equal(getattr(r, field), getattr(s, field))


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("spacing", ["trailing", "logsnr", "karras"])
def test_the_old_call_warns_and_matches_the_new_one_on_a_named_grid(name, spacing):
    old, new = both(name, MIX.eps_model(SCHED), SCHED, legacy_args=(5,), legacy_kwargs={"spacing": spacing}, times=time_grid(SCHED, 5, spacing))
    assert_identical(old, new)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_the_old_call_with_a_grid_labels_clipping_and_the_flow_path(name):
    grid = [1.0, 0.6, 0.25, 0.05, 0.0]
    y = torch.tensor([0, 1] * 20)
    old, new = both(name, classifier_free(labelled, 2.0), SCHED, legacy_args=(), legacy_kwargs={"grid": grid}, times=grid, y=y, clip_x0=1.5)
    assert_identical(old, new)
    old, new = both(name, MIX.denoiser(FLOW, "velocity"), FLOW, legacy_args=(grid,), legacy_kwargs={}, times=grid, prediction="velocity")
    assert_identical(old, new)


@pytest.mark.parametrize("name,steps", [("ddpm", 1000), ("ddim", 50), ("dpm++2m", 20), ("euler", 20), ("unipc", 10), ("edm-heun", 10)])
def test_the_old_default_step_counts(name, steps):
    """The old call's default steps: T for ddpm, the sampler's own for the others."""
    old, new = both(name, MIX.eps_model(SCHED), SCHED, legacy_args=(), legacy_kwargs={}, times=time_grid(SCHED, steps))
    assert_identical(old, new)


def test_the_old_call_keeps_its_errors():
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="steps must be an integer"):
        SAMPLERS["ddim"](MIX.eps_model(SCHED), noise(), SCHED, None)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="eta must be >= 0"):
        SAMPLERS["ddim"](MIX.eps_model(SCHED), noise(), SCHED, 10, eta=-1)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        SAMPLERS["dpm++2m"](MIX.eps_model(SCHED), noise(), SCHED, 10, eta=0.5)  # not its option


def test_evaluate_is_the_denoiser_with_a_warning():
    x, model_fn = noise(), MIX.eps_model(SCHED)
    want = Denoiser(model_fn, SCHED, "eps", None, 0.5)(x, 0.3)
    for old in (evaluate, evaluate_by_its_old_path):
        with pytest.warns(DeprecationWarning, match=r"Denoiser\(model_fn, schedule"):
            got = old(model_fn, x, SCHED, 0.3, clip_x0=0.5)
        assert torch.equal(got.x0, want.x0) and torch.equal(got.eps, want.eps)


def test_the_package_exports_the_samplers_and_the_denoiser():
    assert denoiselab.sample_ddim is SAMPLERS["ddim"] and denoiselab.Denoiser is Denoiser
    assert list(inspect.signature(denoiselab.sample_ddim).parameters)[:3] == ["denoise", "x_T", "times"]
