"""denoiselab.viz.flow: path straightness, the velocity arrows against a closed form, both figures."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from denoiselab import viz
from denoiselab.data.sources import Normalization
from denoiselab.oracles import GaussianMixture
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.viz import flow as vflow
from denoiselab.viz.style import DPI

# A Gaussian data distribution N(MU, S0^2 I) in 2D: its noisy marginals stay Gaussian.
MU = np.array([1.5, -0.5])
S0 = 0.4


def _gaussian() -> GaussianMixture:
    return GaussianMixture(
        means=torch.tensor(MU[None], dtype=torch.float64),
        stds=torch.tensor([S0], dtype=torch.float64),
        weights=torch.tensor([1.0], dtype=torch.float64),
    )


def _closed_form_minus_u(x: np.ndarray, a: float, s: float) -> np.ndarray:
    """-u = E[x0 | x_t] - E[eps | x_t] for x_t = a x0 + s eps, x0 ~ N(MU, S0^2 I), eps ~ N(0, I).

    x_t ~ N(a MU, (a^2 S0^2 + s^2) I); both posterior means are linear in x_t - a MU."""
    var = a * a * S0 * S0 + s * s
    r = x - a * MU
    x0 = MU + a * S0 * S0 / var * r
    eps = s / var * r
    return x0 - eps


def _grid(n=7, lo=-3.0, hi=3.0) -> np.ndarray:
    g = np.linspace(lo, hi, n)
    return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)


def _png_size(path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        size = im.size
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []
    return size


# --- path_straightness -------------------------------------------------------------------------


def test_straight_paths_have_straightness_one():
    rng = np.random.default_rng(0)
    start, end = rng.standard_normal((50, 2)), rng.standard_normal((50, 2))
    # Uneven steps along each straight segment: the ratio depends on the shape, not the spacing.
    fracs = [0.0, 0.1, 0.15, 0.5, 0.9, 1.0]
    frames = [(1.0 - f, (1 - f) * start + f * end) for f in fracs]
    assert vflow.path_straightness(frames) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(vflow.path_ratios(frames), 1.0, atol=1e-12)


def test_l_shaped_path_has_the_known_ratio():
    # Point 0: (0, 0) -> (1, 0) -> (1, 1): length 2 over a chord of sqrt(2).
    # Point 1: (0, 0) -> (3, 0) -> (3, 4): length 7 over a chord of 5.
    frames = [
        (1.0, np.array([[0.0, 0.0], [0.0, 0.0]])),
        (0.5, np.array([[1.0, 0.0], [3.0, 0.0]])),
        (0.0, np.array([[1.0, 1.0], [3.0, 4.0]])),
    ]
    np.testing.assert_allclose(vflow.path_ratios(frames), [math.sqrt(2), 7 / 5])
    assert vflow.path_straightness(frames) == pytest.approx((math.sqrt(2) + 1.4) / 2)
    assert viz.path_straightness(frames[:1] + frames[2:]) == pytest.approx(1.0)  # only the end points: straight


def test_straightness_skips_points_that_do_not_move_and_rejects_bad_frames():
    frames = [(1.0, np.array([[0.0, 0.0], [2.0, 2.0]])), (0.5, np.array([[1.0, 0.0], [3.0, 2.0]])),
              (0.0, np.array([[1.0, 1.0], [2.0, 2.0]]))]  # fmt: skip
    assert np.isnan(vflow.path_ratios(frames)[1])  # a round trip has no chord
    assert vflow.path_straightness(frames) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="at least 2"):
        vflow.path_straightness(frames[:1])
    with pytest.raises(ValueError, match="same points"):
        vflow.path_straightness([(1.0, np.zeros((3, 2))), (0.0, np.zeros((4, 2)))])


# --- velocity_arrows ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.9, 0.6, 0.3, 0.05, 0.3337])
def test_velocity_arrows_equal_the_closed_form_on_the_flow_path(t):
    schedule = flow_schedule(1000)
    model_fn = _gaussian().denoiser(schedule, "velocity")
    xs = _grid()
    got = vflow.velocity_arrows(model_fn, schedule, t, torch.as_tensor(xs), "velocity")
    want = _closed_form_minus_u(xs, 1.0 - t, t)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # At the mean of x_t, (1 - t) MU, the posterior means are MU and 0: the arrow is MU itself.
    centre = torch.as_tensor(((1.0 - t) * MU)[None])
    np.testing.assert_allclose(vflow.velocity_arrows(model_fn, schedule, t, centre, "velocity")[0], MU, atol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "velocity"])
@pytest.mark.parametrize("kind", ["flow", "linear", "cosine"])
def test_velocity_arrows_read_every_prediction_on_every_schedule(kind, prediction):
    """u = eps_hat - x0_hat is resolved from the prediction with alpha(t), sigma(t) of the
    schedule: every (schedule, prediction) pair gives the same closed form."""
    schedule = make_schedule(kind, 1000)
    model_fn = _gaussian().denoiser(schedule, prediction)
    xs = _grid(5)
    for t in (0.7, 0.25):
        a, s = float(schedule.alpha_at(t)), float(schedule.sigma_at(t))
        got = vflow.velocity_arrows(model_fn, schedule, t, torch.as_tensor(xs), prediction)
        np.testing.assert_allclose(got, _closed_form_minus_u(xs, a, s), rtol=1e-8, atol=1e-8)


def test_velocity_arrows_pass_time_and_labels_to_the_model():
    seen = {}

    def model_fn(x, t, y=None):
        seen.update(x=x, t=t, y=y)
        return torch.zeros_like(x)

    xs = np.zeros((6, 2))
    out = vflow.velocity_arrows(model_fn, flow_schedule(1000), 0.6, xs, "velocity", y=2)
    assert out.shape == (6, 2) and out.dtype == np.float64
    assert seen["x"].dtype == torch.float32  # a NumPy grid goes to the network as float32
    assert seen["t"].shape == (6,) and torch.allclose(seen["t"], torch.full((6,), 0.6))
    assert seen["y"].tolist() == [2] * 6
    with pytest.raises(ValueError, match="alpha = 0"):
        vflow.velocity_arrows(model_fn, flow_schedule(1000), 1.0, xs, "eps")
    with pytest.raises(ValueError, match="prediction"):
        vflow.velocity_arrows(model_fn, flow_schedule(1000), 0.5, xs, "score")


def test_field_arrows_in_data_units_scale_with_the_normalisation():
    """With a normalization the grid is encoded for the model and arrows come back in data
    units: x_data = mean + scale x_model, so an arrow is `scale` times longer."""
    schedule = flow_schedule(1000)
    model_fn = _gaussian().denoiser(schedule, "velocity")
    norm = Normalization(mean=np.array([10.0, -4.0]), scale=2.5)
    grid_data = norm.decode(_grid(4).astype(np.float32)).astype(np.float64)
    got = vflow._data_arrows(model_fn, schedule, 0.4, grid_data, "velocity", None, norm, None)
    want = 2.5 * _closed_form_minus_u(norm.encode(grid_data.astype(np.float32)).astype(np.float64), 0.6, 0.4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --- the figures -------------------------------------------------------------------------------


def _panels():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((200, 2))
    theta = rng.uniform(0, 2 * np.pi, 200)
    data = np.stack([np.cos(theta), np.sin(theta)], 1) * 2.0
    straight = [(1 - f, (1 - f) * noise + f * data) for f in np.linspace(0, 1, 11)]
    bent = [(t, x + np.sin(np.pi * (1 - t)) * 0.8 * np.array([1.0, 0.0])) for t, x in straight]
    return {"straight (flow), Euler": straight, "bent, toy": bent}, data


def test_plot_sampling_paths_writes_a_png_of_the_expected_size(tmp_path):
    panels, data = _panels()
    panels["third"] = panels["bent, toy"]
    out = viz.plot_sampling_paths(panels, tmp_path / "paths.png", data=data, title="toy paths")
    limits = viz.compute_limits(*[x for fr in panels.values() for x in (fr[0][1], fr[-1][1])], data)
    w, h = vflow.paths_figure_size(3, limits)
    assert _png_size(out) == (round(w * DPI), round(h * DPI))
    narrower = viz.plot_sampling_paths({"one": panels["third"], "two": panels["third"]}, tmp_path / "p2.png")
    assert _png_size(narrower)[0] < round(w * DPI)
    with pytest.raises(ValueError):
        viz.plot_sampling_paths({}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="2D"):
        viz.plot_sampling_paths({"1d": [(1.0, np.zeros((3, 1))), (0.0, np.ones((3, 1)))]}, tmp_path / "bad.png")


def test_plot_velocity_field_writes_a_png_of_the_expected_size(tmp_path):
    schedule = flow_schedule(1000)
    model_fn = _gaussian().denoiser(schedule, "velocity")
    lims = [[-3.0, 3.0], [-3.0, 3.0]]
    data = _gaussian().sample(300, torch.Generator().manual_seed(0)).numpy()
    out = viz.plot_velocity_field(model_fn, schedule, tmp_path / "field.png", prediction="velocity", lims=lims, data=data)
    w, h = vflow.field_figure_size(4, lims, legend=True)
    assert _png_size(out) == (round(w * DPI), round(h * DPI))
    vp = make_schedule("linear", 1000)
    out2 = viz.plot_velocity_field(_gaussian().denoiser(vp, "eps"), vp, tmp_path / "vp.png", prediction="eps",
                                   times=(0.5, 0.1), lims=lims)  # fmt: skip
    w2, h2 = vflow.field_figure_size(2, lims)
    assert _png_size(out2)[1] == round(h2 * DPI) and _png_size(out2)[0] >= round(w2 * DPI)
    with pytest.raises(ValueError, match="lims"):
        viz.plot_velocity_field(model_fn, schedule, tmp_path / "bad.png", prediction="velocity", lims=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="times"):
        viz.plot_velocity_field(model_fn, schedule, tmp_path / "bad.png", prediction="velocity", lims=lims, times=(0.0,))
