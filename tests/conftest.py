"""Shared fixtures: tiny recipes and one trained run folder shared by the CLI tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Overrides that make a full `denoiselab train` (training, metrics, figures) take a few seconds.
TINY = ["train.steps=40", "model.hidden=16", "sample.n=200", "sample.steps=5"]


def set_args(overrides: list[str]) -> list[str]:
    """["a.b=1", ...] -> ["--set", "a.b=1", ...]"""
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture(scope="session")
def one_thread():
    """Tiny tensors on a shared 2-core machine: intra-op threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread_per_worker():
    """Under `make test` two worker processes share the two cores: a test that leaves torch at its
    default (a thread per core) waits on the other worker's threads: the tuning search's test took
    263 s at two threads (load 13) and 81 s at one (load 6).  A test that sets its own count still does."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        torch.set_num_threads(1)


def train_tiny(tmp_path_factory, recipe: str, name: str, overrides: list[str] = TINY) -> Path:
    """A run of ``recipe`` trained through the CLI with ``overrides`` (TINY by default)."""
    from denoiselab import cli

    out = tmp_path_factory.mktemp(name) / recipe
    assert cli.main(["train", "--config", recipe, *set_args(overrides), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, one_thread) -> Path:
    """One run of the quick recipe trained through the CLI, shared (read-only) by many tests."""
    return train_tiny(tmp_path_factory, "quick", "shared")


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory, one_thread) -> Path:
    """A tiny conditional run (spiral and circle) trained through the CLI, shared (read-only)."""
    return train_tiny(tmp_path_factory, "shapes", "cond")


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Image classifiers are cached in the user's cache folder; tests use their own."""
    import os

    before = os.environ.get("DENOISELAB_CACHE")
    os.environ["DENOISELAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("DENOISELAB_CACHE", None)
    else:
        os.environ["DENOISELAB_CACHE"] = before


def assert_resumes_bit_exactly(cfg, tmp_path: Path, stop_at: int, prepare=None) -> None:
    """Training ``cfg`` straight through and stopped at ``stop_at`` then resumed end with the same
    weights, to the bit; ``prepare(folder)`` readies each new folder first (a reflow run's pairs)."""
    from safetensors.torch import load_file

    from denoiselab.runs.folder import WEIGHTS
    from denoiselab.training import TrainingInterrupted, train

    quiet = lambda *a, **k: None  # noqa: E731
    for name in ("A", "B"):
        if prepare is not None:
            prepare(tmp_path / name)
    train(cfg, tmp_path / "A", progress=False, log=quiet)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "B", progress=False, log=quiet, stop_at=stop_at)
    train(cfg, tmp_path / "B", resume=True, progress=False, log=quiet)
    a, b = load_file(str(tmp_path / "A" / WEIGHTS)), load_file(str(tmp_path / "B" / WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_refused_in_one_line(args: list[str], capsys, expected: str, out: Path) -> None:
    """`denoiselab ARGS` exits 2 with one line that holds ``expected``, no traceback, and ``out`` never made."""
    from denoiselab import cli

    capsys.readouterr()
    rc = cli.main(args)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err and not out.exists(), err
