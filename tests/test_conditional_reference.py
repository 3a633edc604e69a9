"""The figure of `sample --observe`: x2 of the samples against the true conditional.

``runs.guided.conditional_reference`` draws the reference by rejection from a built-in
generator, or takes the training points near the observed value for a data file; the figure
gains a third panel with both histograms.
"""

from __future__ import annotations

import numpy as np

from denoiselab import cli
from denoiselab.data.sources import draw
from denoiselab.runs import load_run
from denoiselab.runs.guided import CONDITIONAL_BAND, conditional_reference
from denoiselab.viz.points import _samples_figure


def test_the_reference_of_a_generator_run_is_its_conditional(trained_run):
    run = load_run(trained_run)
    value = 0.4
    values, words = conditional_reference(run, {0: value})
    band = CONDITIONAL_BAND * float(np.std(run.data[:, 0]))
    assert "generator" in words and f"{band:.2g}" in words and len(values) == 20_000
    # An independent rejection draw of the same conditional agrees in its quantiles (a wrong
    # free coordinate, band or value would move them by far more than the sampling noise).
    points = draw(run.config.data.name, 4_000_000, np.random.default_rng(99))
    truth = points[np.abs(points[:, 0] - value) < band, 1]
    assert len(truth) > 2000
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    assert np.allclose(np.quantile(values, q), np.quantile(truth, q), atol=0.05)
    assert not np.allclose(np.quantile(values, q), np.quantile(points[:, 1], q), atol=0.05)  # not the marginal


def test_a_data_file_run_uses_its_training_points_near_the_value(trained_run, tmp_path):
    run = load_run(trained_run)
    run.config.data.name = str(tmp_path / "points.csv")  # as a run trained on a file would say
    values, words = conditional_reference(run, {1: 0.0})
    band = CONDITIONAL_BAND * float(np.std(run.data[:, 1]))
    assert words.startswith("training data")
    assert sorted(values) == sorted(run.data[np.abs(run.data[:, 1]) < band, 0])


def test_a_conditional_run_has_each_class_and_every_class_together(shapes_run):
    """A class's reference is that generator's conditional; the model without a class is compared
    with the classes together, each reweighted by the observation (rejection from the mixture)."""
    run = load_run(shapes_run)
    value = 0.2
    band = CONDITIONAL_BAND * float(np.std(run.data[:, 0]))
    together, words = conditional_reference(run, {0: value})
    assert "the classes' generators" in words
    q = [0.1, 0.25, 0.75, 0.9]  # not the median: it can fall between two modes
    parts = []
    for label, name in enumerate(run.config.data.classes):
        values, words = conditional_reference(run, {0: value}, label=label)
        assert f"(class {name})" in words and f"{name}'s generator" in words
        points = draw(name, 2_000_000, np.random.default_rng(7 + label))
        truth = points[np.abs(points[:, 0] - value) < band, 1]
        assert np.allclose(np.quantile(values, q), np.quantile(truth, q), atol=0.05)
        parts.append((values, len(truth)))
    # The mixture's conditional (equal class sizes here): rejection from both classes pooled,
    # each reweighted by its own mass near x1 = value; not either class alone.
    pooled = np.concatenate([draw(name, 2_000_000, np.random.default_rng(11 + k)) for k, name in enumerate(run.config.data.classes)])
    truth = pooled[np.abs(pooled[:, 0] - value) < band, 1]
    assert np.allclose(np.quantile(together, q), np.quantile(truth, q), atol=0.05)
    assert abs(np.mean(together > 0) - np.mean(truth > 0)) < 0.02
    assert all(abs(np.mean(together > 0) - np.mean(v > 0)) > 0.05 or not np.allclose(np.quantile(together, q), np.quantile(v, q), atol=0.05) for v, _ in parts)


def test_no_reference_where_there_is_no_such_conditional(trained_run):
    run = load_run(trained_run)
    assert conditional_reference(run, {0: 50.0}) is None  # no data near the value


def test_the_figure_has_the_third_panel_only_with_a_reference():
    rng = np.random.default_rng(0)
    data, samples = rng.normal(size=(300, 2)), np.c_[np.full(200, 0.5), rng.normal(size=200)]
    fig = _samples_figure(data, samples, observed={0: 0.5}, conditional=(rng.normal(size=500), "true conditional"))
    assert len(fig.axes) == 3
    assert "given $x_1$ = 0.5" in fig.axes[2].get_xlabel() and fig.axes[2].get_ylabel() == "density"
    assert len(_samples_figure(data, samples, observed={0: 0.5}).axes) == 2


def test_sample_observe_draws_the_truth_beside_the_samples(trained_run, tmp_path, monkeypatch):
    out = "obs.png"
    seen = {}
    import denoiselab.viz as viz

    real = viz.plot_samples

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(viz, "plot_samples", spy)
    rc = cli.main(["sample", str(trained_run), "--observe", "x1=0.3", "--method", "dps", "-n", "50", "--steps", "5", "--out", str(tmp_path / out), "--no-progress"])
    assert rc == 0 and (tmp_path / out).exists()
    values, words = seen["conditional"]
    assert "generator" in words and len(values) > 100
