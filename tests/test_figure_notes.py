"""What the figures say about themselves: the forward strip names its normalised units, the
samples its data units, and a progression strip explains its uneven times."""

from __future__ import annotations

import numpy as np

from denoiselab.schedules import make_schedule
from denoiselab.viz.points import _forward_figure, _progression_figure, _samples_figure, _uneven_times_note


def test_uneven_times_are_explained_only_when_uneven():
    assert _uneven_times_note([1.0, 0.75, 0.5, 0.25, 0.0], [0, 1, 2, 3, 4], 4) == ""
    note = _uneven_times_note([1.0, 0.84, 0.42, 0.04, 0.0], [0, 15, 30, 45, 60], 60)
    assert "0, 15, 30, 45, 60 of 60" in note and "smaller steps in t near the data" in note


def test_the_figures_name_their_units():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 2))
    fig = _forward_figure(make_schedule("linear", 100), data, units="normalised units", note="normalised units: centred")
    assert fig._suptitle.get_text().endswith("\nnormalised units: centred")
    assert fig.axes[0].get_ylabel() == "$x_2$ (normalised units)"
    fig = _samples_figure(data, data, units="data units")
    assert fig.axes[0].get_xlabel() == "$x_1$ (data units)"
    # a log-SNR-like grid: equal steps, shrinking times
    ts = [float(t) for t in np.geomspace(1.0, 1e-3, 9)] + [0.0]
    fig = _progression_figure([(t, data) for t in ts], n_panels=5)
    assert "sampler steps" in fig._suptitle.get_text()


def test_a_progression_says_how_it_was_sampled_and_keeps_its_panel_titles():
    data = np.random.default_rng(0).normal(size=(40, 2))
    ts = [1.0, 0.75, 0.5, 0.25, 0.0]
    fig = _progression_figure([(t, data) for t in ts], n_panels=5, note="dpm++2m, 60 steps, logsnr grid (samples.png: 20 steps); class a")
    assert fig._suptitle.get_text().endswith("\ndpm++2m, 60 steps, logsnr grid (samples.png: 20 steps)\nclass a")
    assert [ax.get_title() for ax in fig.axes[:5:4]] == ["t = 1.00 (noise)", "t = 0.00 (result)"]


def test_a_region_is_drawn_and_its_share_inside_is_said():
    """samples.png of guided samples outlines the region on both panels and says the share of each
    panel inside it; observed coordinates are drawn as lines."""
    x = np.stack([np.linspace(-1, 1, 100), np.zeros(100)], axis=1)  # a quarter inside x1 > 0.5
    fig = _samples_figure(x, x[:50] * 0.1 + 0.9, region=lambda p: p[:, 0] > 0.5, region_label="region x1 > 0.5", observed={1: 0.25})
    data_ax, sample_ax = fig.axes[:2]
    assert data_ax.get_title().endswith("\n25.0 % inside the region") and sample_ax.get_title().endswith("\n100.0 % inside the region")
    for ax in (data_ax, sample_ax):
        assert any("ContourSet" in type(c).__name__ for c in ax.get_children())  # the region's boundary
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "region x1 > 0.5" in legend and "observed x2 = 0.25" in legend
    one = _samples_figure(x[:, :1], x[:20, :1], region=lambda p: p[:, 0] > 0.5, region_label="region x1 > 0.5")
    assert len(one.axes) == 2 and one.axes[1].get_title().startswith("generated samples (n = 20)\n")
