"""denoiselab.viz: every figure is written (valid PNG/GIF), 1D and 2D, with shared limits."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from denoiselab import viz
from denoiselab.samplers import Denoiser, sample_ddim, time_grid
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.viz import gif
from denoiselab.viz import points as vpoints
from denoiselab.viz import schedules as vsched
from denoiselab.viz.frames import unpack_frames
from denoiselab.viz.images import as_images
from denoiselab.viz.style import as_points, save_figure


def _spiral(n=300, seed=0):
    rng = np.random.default_rng(seed)
    theta = np.sqrt(rng.random(n)) * 4 * np.pi
    x = 0.5 * theta[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1) + 0.3 * rng.standard_normal((n, 2))
    return x / np.abs(x).max()


def _bimodal(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2, 0.3, n // 2), rng.normal(2, 0.3, n - n // 2)])[:, None]


def _frames(data, n=10, seed=1):
    z = np.random.default_rng(seed).standard_normal(data.shape)
    return [(1 - i / (n - 1), (1 - i / (n - 1)) * z + i / (n - 1) * data) for i in range(n)]


@pytest.fixture(params=["2d", "1d"])
def data(request):
    return _spiral() if request.param == "2d" else _bimodal()


def _png(path):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] > 100 and im.size[1] > 100
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"
    return path


def _no_pyplot_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []


# --- limits --------------------------------------------------------------------------------------


def test_limits_ignore_a_far_outlier():
    x = np.concatenate([np.linspace(-1, 1, 1000), [50.0]])[:, None]
    lim = viz.compute_limits(x)
    assert lim.shape == (1, 2)
    np.testing.assert_allclose(lim[0], [-1.1, 1.1], atol=0.02)


def test_limits_pool_all_sets_and_handle_degenerate_input():
    a = np.zeros((50, 2))
    b = np.full((50, 2), 3.0)
    lim = viz.compute_limits(a, b)
    assert (lim[:, 0] < 0).all() and (lim[:, 1] > 3).all()
    const = viz.compute_limits(np.full((10, 1), 5.0))
    assert const[0, 0] < 5 < const[0, 1]
    nan = viz.compute_limits(np.array([[np.nan], [np.inf], [1.0], [2.0]]))
    assert np.isfinite(nan).all() and nan[0, 0] < 1 and nan[0, 1] > 2


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.zeros((5, 2, 2)), np.zeros((0, 2)), "abc"])
def test_bad_point_shapes_are_rejected(tmp_path, bad):
    with pytest.raises(ValueError):
        viz.compute_limits(bad)
    with pytest.raises(ValueError):
        viz.plot_samples(bad, _spiral(), tmp_path / "x.png")
    with pytest.raises(ValueError):
        viz.plot_forward(make_schedule("linear", 100), bad, tmp_path / "x.png")
    with pytest.raises(ValueError):
        viz.save_trajectory_gif([(1.0, bad)], tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())


def test_mismatched_dimensions_and_labels_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="dimension"):
        viz.plot_samples(_spiral(), _bimodal(), tmp_path / "x.png")
    with pytest.raises(ValueError, match="labels"):
        viz.plot_samples(_spiral(), _spiral(), tmp_path / "x.png", labels=np.zeros(3, int))
    with pytest.raises(ValueError):
        viz.plot_progression(_frames(_spiral()), tmp_path / "x.png", data=_bimodal())


# --- data vs samples ------------------------------------------------------------------------------


def test_plot_samples_writes_png(tmp_path, data):
    samples = data + 0.05
    out = viz.plot_samples(data, samples, tmp_path / "sub" / "samples.png", title="test")
    assert out == tmp_path / "sub" / "samples.png"
    _png(out)
    _no_pyplot_figures()


def test_plot_samples_panels_share_limits():
    data, samples = _spiral(), 2.0 * _spiral(seed=3)
    fig = vpoints._samples_figure(data, samples)
    a, b = fig.axes[:2]
    assert a.get_xlim() == b.get_xlim() and a.get_ylim() == b.get_ylim()
    lo, hi = a.get_xlim()
    assert lo <= samples[:, 0].min() and hi >= samples[:, 0].max()


def test_plot_samples_with_class_labels(tmp_path, data):
    labels = (np.arange(len(data)) % 3).astype(int)
    fig = vpoints._samples_figure(data, data, labels=labels, data_labels=labels)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["class 0", "class 1", "class 2"]
    _png(save_figure(fig, tmp_path / "labels.png"))


def test_hidden_points_are_reported_not_silently_dropped(tmp_path, data):
    samples = data.copy()
    samples[:5] = np.nan
    samples[5] = 1e9
    fig = vpoints._samples_figure(data, samples)
    sample_ax = fig.axes[1] if data.shape[1] == 2 else fig.axes[0]
    notes = " ".join(t.get_text() for t in sample_ax.texts)
    assert "1 point outside view" in notes and "5 non-finite" in notes
    assert sample_ax.get_xlim()[1] < 10  # the outlier does not stretch the axes
    _png(save_figure(fig, tmp_path / "s.png"))


# --- forward process -------------------------------------------------------------------------------


def test_plot_forward_default_panels(tmp_path, data):
    sched = make_schedule("linear", 200)
    fig = vpoints._forward_figure(sched, data)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6
    titles = [ax.get_title() for ax in axes]
    for k, title in zip([0, 20, 50, 100, 150, 200], titles, strict=True):
        assert title.startswith(f"k = {k} ")
    assert "SNR" in titles[1] and "dB" in titles[1] and "ᾱ" in titles[1]
    assert len({ax.get_xlim() for ax in axes}) == 1 and len({ax.get_ylim() for ax in axes}) == 1
    _png(save_figure(fig, tmp_path / "forward.png"))


def test_plot_forward_ks_and_validation(tmp_path):
    sched = make_schedule("cosine", 50)
    _png(viz.plot_forward(sched, _spiral(), tmp_path / "f.png", ks=[0, 25, 50]))
    assert viz.default_forward_ks(1) == [0, 1]
    for bad in ([51], [-1], [1.5], []):
        with pytest.raises(ValueError):
            viz.plot_forward(sched, _spiral(), tmp_path / "bad.png", ks=bad)


def test_plot_forward_units_label_the_axes(tmp_path, data):
    sched = make_schedule("linear", 100)
    fig = vpoints._forward_figure(sched, data, units="normalised units")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    xlabels = {ax.get_xlabel() for ax in axes} - {""}
    assert xlabels == {("$x_1$" if data.shape[1] == 2 else "$x$") + " (normalised units)"}
    if data.shape[1] == 2:
        assert axes[0].get_ylabel() == "$x_2$ (normalised units)"
    else:
        assert axes[0].get_ylabel() == "density"  # a density, not a coordinate: no units appended
    plain = vpoints._forward_figure(sched, data)
    plain_labels = {ax.get_xlabel() for ax in plain.axes if ax.get_visible()} - {""}
    assert plain_labels == {"$x_1$" if data.shape[1] == 2 else "$x$"}
    _png(viz.plot_forward(sched, data, tmp_path / "forward.png", units="normalised units"))


def _overlap(a, b, tol=0.5):
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _layout_problems(fig) -> list[str]:
    """Text that leaves the figure, texts on each other, panel titles on another panel's frame."""
    r = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    texts = [ax.title for ax in axes] + [ax.xaxis.label for ax in axes] + [ax.yaxis.label for ax in axes]
    texts = [t for t in texts if t.get_text()] + ([fig._suptitle] if fig._suptitle is not None else [])
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in texts]
    boxes += [("legend", leg.get_window_extent(r)) for leg in fig.legends]
    page, problems = fig.bbox, []
    for name, b in boxes:
        if b.x0 < -0.5 or b.y0 < -0.5 or b.x1 > page.x1 + 0.5 or b.y1 > page.y1 + 0.5:
            problems.append(f"{name!r} leaves the figure")
    for i, (n1, a) in enumerate(boxes):
        problems += [f"{n1!r} on {n2!r}" for n2, b in boxes[i + 1 :] if _overlap(a, b)]
    for ax in axes:
        frame = ax.get_window_extent(r)
        others = [o for o in axes if o is not ax]
        problems += [f"{o.get_title()!r} on a panel" for o in others if _overlap(o.title.get_window_extent(r), frame)]
    return problems


def _problems_as_saved(fig, path) -> list[str]:
    """_layout_problems of the figure as save_figure draws it into the file."""
    found = []
    savefig = fig.savefig

    def spy(*args, **kwargs):
        savefig(*args, **kwargs)
        found.extend(_layout_problems(fig))

    fig.savefig = spy
    _png(save_figure(fig, path))
    return found


@pytest.mark.parametrize("which", ["forward", "forward-flow", "progression", "samples", "samples-region"])
def test_titles_and_labels_do_not_collide(tmp_path, which, data):
    """Equal-aspect 2D panels once misled the layout: the second row's titles ran into the first
    row, the suptitle into the panel titles, the x labels off the bottom of the figure; the flow
    path's panel titles (SNR, alpha and sigma) once ran into each other."""
    if data.shape[1] == 2:
        data = data * [2.0, 2.4]  # a little taller than wide, about the size of normalised data: it showed all three
    if which == "forward":
        fig = vpoints._forward_figure(make_schedule("linear", 100), data, units="normalised units")
    elif which == "forward-flow":
        fig = vpoints._forward_figure(flow_schedule(1000), data, units="normalised units", note="a note")
    elif which == "samples-region":
        fig = vpoints._samples_figure(data, data + 0.05, title="two\nlines", region=lambda x: x[:, 0] > 0.5, region_label="region x1 > 0.5")
    elif which == "progression":
        fig = vpoints._progression_figure(_frames(data, n=20), data=data)
    else:
        fig = vpoints._samples_figure(data, data + 0.05, title="a title")
    assert _problems_as_saved(fig, tmp_path / "fig.png") == []


# --- schedules and loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("sched", [make_schedule("linear", 1000), make_schedule("cosine", 100), flow_schedule(20)])
def test_plot_schedule(tmp_path, sched):
    fig = vsched._schedule_figure(sched)
    snr_ax = fig.axes[2]
    assert any(np.allclose(line.get_ydata(), -20.0) for line in snr_ax.get_lines())
    texts = [t.get_text() for t in snr_ax.texts]
    assert any("SNR_T" in t for t in texts)
    _png(save_figure(fig, tmp_path / "schedule.png"))


def test_plot_schedule_public(tmp_path):
    _png(viz.plot_schedule(flow_schedule(20), tmp_path / "schedule.png"))


def test_plot_schedules_compare(tmp_path):
    schedules = [make_schedule(k, 100) for k in ("linear", "cosine", "quadratic", "sigmoid")]
    fig = vsched._compare_figure(schedules)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == 4 and all("ᾱ_T" in t for t in labels)
    assert all("SNR_T" in t.get_text() for t in fig.axes[1].get_legend().get_texts()[:4])
    _png(viz.plot_schedules_compare(schedules[:2], tmp_path / "compare.png"))
    with pytest.raises(ValueError):
        viz.plot_schedules_compare([], tmp_path / "none.png")


def test_plot_loss(tmp_path):
    losses = 1.0 / np.arange(1, 501) + 0.05
    fig = vsched._loss_figure(losses)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "training step" and ax.get_ylabel().startswith("loss (MSE)")
    _png(viz.plot_loss(losses, tmp_path / "loss.png", smooth=10))
    assert vsched._loss_figure(np.array([1.0, -1.0, np.nan])).axes[0].get_yscale() == "linear"
    assert vsched._loss_figure([0.5]).axes[0].get_yscale() == "log"
    with pytest.raises(ValueError):
        viz.plot_loss(np.zeros((3, 2)), tmp_path / "bad.png")
    with pytest.raises(ValueError):
        viz.plot_loss([1.0, 2.0], tmp_path / "bad.png", smooth=0)
    np.testing.assert_allclose(viz.moving_average(np.array([1.0, 3.0, 5.0]), 2), [1.0, 2.0, 4.0])


# --- reverse process --------------------------------------------------------------------------------


def test_pick_frames_keeps_first_and_last():
    assert viz.pick_frames(40, 8)[0] == 0 and viz.pick_frames(40, 8)[-1] == 39
    assert len(viz.pick_frames(40, 8)) == 8
    assert viz.pick_frames(3, 8) == [0, 1, 2]
    assert viz.pick_frames(5, 1) == [4]


def test_frame_lists_are_checked_once_for_points_images_and_paths():
    pts = np.zeros((4, 2))
    ts, xs = unpack_frames([(1.0, pts), [0.0, pts]], as_points, what="points", timed=True)
    assert ts == [1.0, 0.0] and all(x.dtype == np.float64 and x.shape == (4, 2) for x in xs)
    times, imgs = unpack_frames(np.zeros((3, 2, 1, 8, 8)), as_images, what="images", times=[1.0, 0.5, 0.0])
    assert times == [1.0, 0.5, 0.0] and len(imgs) == 3
    assert unpack_frames([np.zeros((2, 1, 8, 8))], as_images, what="images")[0] is None
    bad = [
        ([], "empty"),
        ([(1.0, pts)], "at least 2"),
        ([(1.0, pts), pts], "mix"),
        ([pts, pts], r"\(t, points\) pairs"),
        ([(1.0, pts), (0.0, np.zeros((5, 2)))], "same points"),
        ([(1.0, pts), (float("nan"), pts)], "finite"),
        ([(1.0, pts), (0.0, "abc")], r"frames\[1\]"),
    ]
    for frames, match in bad:
        with pytest.raises(ValueError, match=match):
            unpack_frames(frames, as_points, what="points", timed=True, least=2)


def test_gif_timing_and_key_colours():
    assert gif.frame_durations(3, 10, 5) == [100.0, 100.0, 600.0]
    for fps, hold, match in [(0, 1, "fps"), (101, 1, "fps"), (True, 1, "fps"), (10, -1, "hold_last"), (10, True, "hold_last"),
                             (10, 1.5, "hold_last")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            gif.frame_durations(3, fps, hold)
    # A key colour covering one pixel in a white frame still comes out exact.
    frame = np.full((20, 30, 3), 255, np.uint8)
    frame[3, 4] = (31, 119, 180)  # DATA_COLOR
    palette = gif.key_colour_palette([frame], ["#ffffff", viz.DATA_COLOR])
    [picture] = gif.to_palette([frame], palette)
    rgb = np.asarray(picture.convert("RGB"))
    assert tuple(rgb[3, 4]) == (31, 119, 180) and (rgb[0, 0] == 255).all()


def test_plot_progression(tmp_path, data):
    frames = _frames(data, n=20)
    fig = vpoints._progression_figure(frames, data=data, n_panels=6)
    axes = fig.axes
    assert len(axes) == 6
    assert axes[0].get_title().startswith("t = 1.00") and axes[-1].get_title().startswith("t = 0.00")
    assert len({ax.get_xlim() for ax in axes}) == 1 and len({ax.get_ylim() for ax in axes}) == 1
    _png(viz.plot_progression(frames[:3], tmp_path / "progression.png", data=data, n_panels=3))
    _png(viz.plot_progression(frames[:1], tmp_path / "single.png"))
    with pytest.raises(ValueError):
        viz.plot_progression([], tmp_path / "empty.png")


def test_save_trajectory_gif(tmp_path, data):
    frames = _frames(data, n=12)
    out = viz.save_trajectory_gif(frames, tmp_path / "traj.gif", data=data, fps=10, hold_last=5)
    assert out == tmp_path / "traj.gif" and out.stat().st_size > 0
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == len(frames)
        assert im.info.get("loop") == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        first = im.convert("RGB")
    assert durations[0] == 100 and durations[-1] == 600  # last frame held for 1 + hold_last frames
    assert first.getpixel((1, 1)) == (255, 255, 255)
    with pytest.raises(ValueError):
        viz.save_trajectory_gif(frames, tmp_path / "bad.gif", fps=0)
    with pytest.raises(ValueError):
        viz.save_trajectory_gif(frames, tmp_path / "bad.gif", hold_last=-1)
    _no_pyplot_figures()


# --- sampler records --------------------------------------------------------------------------------


def test_frames_from_records_follow_the_sampler_grid(tmp_path):
    sched = make_schedule("linear", 100)
    records = []
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    x0 = sample_ddim(Denoiser(lambda x, t, y=None: torch.zeros_like(x), sched), x_T, time_grid(sched, 10), on_step=records.append)
    frames = viz.frames_from_records(records)
    ts = [t for t, _ in frames]
    np.testing.assert_allclose(ts, np.linspace(1.0, 0.0, 11))
    np.testing.assert_allclose(frames[0][1], x_T.numpy())
    np.testing.assert_allclose(frames[-1][1], x0.numpy(), rtol=1e-6)
    assert all(isinstance(x, np.ndarray) and x.shape == (64, 2) for _, x in frames)
    with pytest.raises(ValueError):
        viz.frames_from_records([])
    _png(viz.plot_progression(frames, tmp_path / "p.png"))
