"""Shared fixtures: tiny recipes and one trained run folder shared by the CLI tests."""

from __future__ import annotations

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
