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
