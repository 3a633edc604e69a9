"""denoiselab.viz.images: grids tile exactly, captions follow the closed form, one eps for all
panels, GIFs are small and atomic, and bad input is rejected with the argument's name."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from denoiselab import viz
from denoiselab.schedules import flow_schedule, make_schedule
from denoiselab.viz import gif as vgif
from denoiselab.viz import images as vimg


def _digits(n=100, size=16, seed=0):
    """Blobby stand-in digits in [-1, 1]: a bright ring or bar per class on a dark ground."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    labels = np.arange(n) % 10
    out = np.empty((n, 1, size, size), np.float32)
    for i, k in enumerate(labels):
        r = np.hypot(xx - 0.1 * (k - 5) / 5, yy)
        ring = np.exp(-(((r - 0.3 - 0.04 * k) / 0.12) ** 2))
        out[i, 0] = np.clip(2 * ring - 1 + 0.1 * rng.standard_normal((size, size)), -1, 1)
    return out, labels


def _reverse_frames(x0, n=20, seed=1):
    """n frames from N(0, I) to x0 along a cosine-like alpha_bar: noise first, data last."""
    z = np.random.default_rng(seed).standard_normal(x0.shape).astype(np.float32)
    ts = np.linspace(1.0, 0.0, n)
    abar = np.cos(ts * np.pi / 2) ** 2
    return [np.sqrt(a) * x0 + np.sqrt(1 - a) * z for a in abar], ts


def _png(path, min_side=150, max_side=2500):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert min_side <= im.size[0] <= max_side and min_side <= im.size[1] <= max_side, im.size
        size = im.size
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "temp file left behind"
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []
    return size


# --- image_grid --------------------------------------------------------------------------------


def test_image_grid_places_each_image_and_the_gaps_exactly():
    h, w, pad, pv = 2, 3, 1, 0.25
    values = [-1.0, -0.5, 0.0, 0.5, 1.0]
    x = np.stack([np.full((1, h, w), v, np.float32) for v in values])
    g = viz.image_grid(x, nrow=3, pad=pad, pad_value=pv)
    assert g.shape == (2 * (h + pad) + pad, 3 * (w + pad) + pad)
    covered = np.zeros(g.shape, bool)
    for i, v in enumerate(values):
        r, c = divmod(i, 3)
        y0, x0 = pad + r * (h + pad), pad + c * (w + pad)
        np.testing.assert_allclose(g[y0 : y0 + h, x0 : x0 + w], (v + 1) / 2)  # [-1, 1] -> [0, 1]
        covered[y0 : y0 + h, x0 : x0 + w] = True
    np.testing.assert_allclose(g[~covered], pv)  # gaps, border and the empty sixth place
    assert g[0, 0] == pv and g[-1, -1] == pv


def test_image_grid_without_pad_is_a_plain_block_and_clips():
    a = np.full((1, 2, 2), 5.0)  # above +1: white
    b = np.full((1, 2, 2), -3.0)  # below -1: black
    c = np.full((1, 2, 2), np.nan)  # shown mid grey
    d = np.array([[[-1.0, 1.0], [0.0, 0.5]]])
    g = viz.image_grid(np.stack([a, b, c, d]), nrow=2, pad=0)
    expect = np.block([[np.ones((2, 2)), np.zeros((2, 2))], [np.full((2, 2), 0.5), np.array([[0.0, 1.0], [0.5, 0.75]])]])
    np.testing.assert_allclose(g, expect)
    assert g.min() >= 0 and g.max() <= 1


def test_image_grid_rgb_keeps_channels_in_order_and_accepts_tensors():
    x = torch.zeros(3, 3, 4, 5)
    x[:, 0], x[:, 1], x[:, 2] = -1.0, 0.0, 1.0
    g = viz.image_grid(x, nrow=2)
    assert g.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
    np.testing.assert_allclose(g[1, 1], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(g[0, 0], [1.0, 1.0, 1.0])  # default gap: white
    grey = viz.image_grid(np.zeros((7, 1, 4, 4)), nrow=7)
    assert grey.shape == (1 * 5 + 1, 7 * 5 + 1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((1, 8, 8)), r"images: .*\(N, C, H, W\)"),  # one image without its batch axis
        (np.zeros((2, 2, 8, 8)), r"images: .*C = 1 \(grey\) or 3"),
        (np.zeros((2, 8, 8, 3)), r"images: .*channels-first"),  # channels last
        (np.zeros((0, 1, 8, 8)), r"images: no images"),
        (np.zeros((2, 1, 0, 8)), r"images: empty"),
        ("abc", r"images: expected a numeric"),
    ],
)
def test_bad_images_are_rejected_by_name(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        viz.image_grid(bad, nrow=2)
    with pytest.raises(ValueError, match=match):
        viz.plot_image_grid(bad, tmp_path / "g.png")
    assert not list(tmp_path.iterdir())


def test_bad_arguments_name_the_argument(tmp_path):
    x, labels = _digits(20, 8)
    sched = make_schedule("linear", 50)
    cases = [
        (lambda: viz.image_grid(x, nrow=0), "nrow"),
        (lambda: viz.image_grid(x, nrow=4, pad=-1), "pad"),
        (lambda: viz.image_grid(x, nrow=4, pad_value=2.0), "pad_value"),
        (lambda: viz.plot_image_grid(x, tmp_path / "a.png", labels=labels[:5]), "labels"),
        (lambda: viz.plot_image_grid(x, tmp_path / "a.png", labels=labels, class_names=["a", "b"]), "class_names"),
        (lambda: viz.plot_image_grid(x, tmp_path / "a.png", labels=labels - 1, class_names=[str(k) for k in range(10)]), "class_names"),
        (lambda: viz.plot_forward_strip(sched, np.zeros((2, 8, 8)), tmp_path / "a.png"), "image"),
        (lambda: viz.plot_forward_strip(sched, x[0], tmp_path / "a.png", ks=[0, 51]), "ks"),
        (lambda: viz.plot_forward_strip("linear", x[0], tmp_path / "a.png"), "schedule"),
        (lambda: viz.plot_schedule_compare_images([sched], x[0], tmp_path / "a.png", ts=[0.5, 1.5]), "ts"),
        (lambda: viz.plot_schedule_compare_images([], x[0], tmp_path / "a.png"), "schedules"),
        (lambda: viz.save_grid_gif([x, x[:, :, :4]], tmp_path / "a.gif"), "frames"),
        (lambda: viz.save_grid_gif([x, np.zeros((20, 2, 8, 8))], tmp_path / "a.gif"), r"frames\[1\]"),
        (lambda: viz.save_grid_gif([], tmp_path / "a.gif"), "frames"),
        (lambda: viz.save_grid_gif([x, x], tmp_path / "a.gif", times=[1.0]), "times"),
        (lambda: viz.save_grid_gif([x, x], tmp_path / "a.gif", fps=0), "fps"),
        (lambda: viz.plot_image_progression([x, x], tmp_path / "a.png", count=0), "count"),
        (lambda: viz.plot_guidance_sweep({1.0: x}, tmp_path / "a.png", labels=labels[:5]), "labels"),
        (lambda: viz.plot_guidance_sweep({0.0: np.zeros((4, 2, 8, 8))}, tmp_path / "a.png"), r"grids\[0\]"),
    ]
    for i, (call, name) in enumerate(cases):
        with pytest.raises(ValueError, match=name):
            call()
            pytest.fail(f"case {i} ({name}) was accepted")
    assert not list(tmp_path.iterdir()), "a rejected call wrote a file"


# --- sample grid -------------------------------------------------------------------------------


def test_rows_by_class_sorts_by_label_and_keeps_order():
    assert viz.rows_by_class([2, 0, 2, 1, 0]) == [[1, 4], [3], [0, 2]]
    assert viz.rows_by_class(torch.tensor([5, 5, 3])) == [[2], [0, 1]]
    assert viz.rows_by_class(np.array([1.0, 0.0])) == [[1], [0]]
    with pytest.raises(ValueError, match="labels"):
        viz.rows_by_class([0.5, 1])
    with pytest.raises(ValueError, match="labels"):
        viz.rows_by_class(np.zeros((2, 2), int))


def test_class_layout_one_row_per_class_capped_columns():
    labels = np.array([3, 1, 3, 3, 1, 0, 3])
    slots, names, note = vimg._layout(len(labels), labels, None, {0: "zero", 1: "one", 3: "three"})
    assert names == ["zero", "one", "three"]
    np.testing.assert_array_equal(slots, [[5, -1, -1, -1], [1, 4, -1, -1], [0, 2, 3, 6]])
    assert note == ""
    slots, names, note = vimg._layout(len(labels), labels, 2, None)
    assert names == ["class 0", "class 1", "class 3"]
    np.testing.assert_array_equal(slots, [[5, -1], [1, 4], [0, 2]])
    assert "first 2" in note
    slots, names, _ = vimg._layout(10, None, None, None)  # no labels: square-ish, row-major
    assert names is None and slots.shape == (3, 4) and slots[2, 1] == 9 and slots[2, 2] == -1


def test_plot_image_grid_with_labels_writes_a_sensible_png(tmp_path):
    x, labels = _digits(60, 8)
    out = viz.plot_image_grid(x, tmp_path / "sub" / "grid.png", labels=labels, class_names=[f"digit {k}" for k in range(10)])
    assert out == tmp_path / "sub" / "grid.png"
    w, h = _png(out)
    assert h > w * 0.8  # ten class rows of six: taller than wide, not a single strip
    w2, h2 = _png(viz.plot_image_grid(x, tmp_path / "plain.png", title="plain"))
    assert 0.7 < w2 / h2 < 1.5  # without labels: square-ish


def test_grid_pixels_are_crisp_equal_squares(tmp_path):
    """Nearest-neighbour at a whole number of screen pixels per image pixel: a checkerboard
    comes out as pure black and white blocks, all of one size."""
    checker = (np.indices((8, 8)).sum(0) % 2 * 2 - 1).astype(np.float32)[None, None]
    path = viz.plot_image_grid(checker, tmp_path / "c.png", title=" ")
    a = np.asarray(Image.open(path).convert("L")).astype(int)
    ys, xs = np.nonzero(a < 128)
    box = a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert set(np.unique(box)) == {0, 255}, "blurred pixels: not nearest-neighbour"
    assert box.shape[0] == box.shape[1] and box.shape[0] % 8 == 0
    k = box.shape[0] // 8
    assert k >= 4  # an 8x8 image is upscaled, not drawn at postage-stamp size
    runs = np.diff(np.flatnonzero(np.diff(box[0]) != 0))
    assert set(runs.tolist()) == {k}


# --- forward strip -----------------------------------------------------------------------------


def test_forward_captions_follow_the_closed_form():
    s = make_schedule("linear", 100)
    ks = [0, 1, 10, 50, 100]
    caps = viz.forward_captions(s, ks)
    ab = s.alpha_bars.numpy()
    assert [c["k"] for c in caps] == ks
    assert caps[0]["signal_pct"] == 100.0 and caps[0]["noise_pct"] == 0.0 and caps[0]["snr_db"] == math.inf
    for c in caps:
        assert c["signal_pct"] + c["noise_pct"] == pytest.approx(100.0)
        assert c["t"] == pytest.approx(c["k"] / 100)
        assert c["signal_pct"] == pytest.approx(100 * ab[c["k"]])  # DDPM: the variance share alpha_bar
        if c["k"] > 0:
            assert c["snr_db"] == pytest.approx(10 * math.log10(ab[c["k"]] / (1 - ab[c["k"]])))
    sig = [c["signal_pct"] for c in viz.forward_captions(s, range(101))]
    assert all(np.diff(sig) < 0)
    end = viz.forward_captions(flow_schedule(10), [10])[0]  # pure noise: 0% signal, -inf dB
    assert end["signal_pct"] == 0.0 and end["noise_pct"] == 100.0 and end["snr_db"] == -math.inf
    lines = vimg._caption_lines(caps[0])
    assert lines == ["t = 0", "SNR +∞ dB", "signal 100%", "noise 0%"]


def test_percentages_read_100_or_0_only_when_exact():
    f = vimg.fmt_pct
    assert [f(0.0), f(100.0), f(71.2), f(0.31), f(99.96), f(99.3)] == ["0%", "100%", "71%", "0.31%", "99.96%", "99.3%"]
    assert f(99.9999) == "> 99.999%" and f(1e-6) == "< 0.001%"


def test_noised_images_use_one_eps_for_every_k():
    s = make_schedule("cosine", 50)
    x0 = _digits(1, 8)[0][0]
    ks = [0, 5, 25, 50]
    panels = viz.noised_images(s, x0, ks, seed=3)
    assert panels.shape == (4, 1, 1, 8, 8)
    np.testing.assert_allclose(panels[0, 0], x0, atol=1e-6)
    eps = [(panels[i] - float(s.alphas[k]) * x0) / float(s.sigmas[k]) for i, k in enumerate(ks) if k > 0]
    for e in eps[1:]:
        np.testing.assert_allclose(e, eps[0], atol=1e-5)
    assert not np.allclose(viz.noised_images(s, x0, [25], seed=4)[0], panels[2])  # the seed matters


def test_plot_forward_strip_default_panels(tmp_path):
    assert vimg.default_strip_ks(1000) == [0, 125, 250, 375, 500, 625, 750, 875, 1000]
    assert vimg.default_strip_ks(4) == [0, 1, 2, 3, 4]
    x0 = _digits(3, 8)[0]
    w, h = _png(viz.plot_forward_strip(make_schedule("linear", 1000), x0[0, 0], tmp_path / "f.png"))
    assert w > 3 * h  # one row of nine panels
    _, h2 = _png(viz.plot_forward_strip(flow_schedule(20), x0, tmp_path / "f3.png", ks=[0, 10, 20], title="three rows"))
    assert h2 > h


# --- schedules compared ------------------------------------------------------------------------


def test_compare_maps_t_to_each_schedules_k_and_shares_eps():
    assert vimg.time_to_k(0.25, 50) == 13  # 12.5: halves round up
    assert vimg.time_to_k(0.1, 1000) == 100 and vimg.time_to_k(1.0, 7) == 7 and vimg.time_to_k(0.0, 7) == 0
    lin, cos = make_schedule("linear", 1000), make_schedule("cosine", 50)
    x0 = _digits(1, 8)[0][0]
    ts = [0.0, 0.25, 0.5, 1.0]
    names, ks, panels, snr = viz.compare_panels({"lin": lin, "cos": cos}, x0, ts, seed=0)
    assert names == ["lin", "cos"]
    assert ks == [[0, 250, 500, 1000], [0, 13, 25, 50]]
    assert panels.shape == (2, 4, 1, 1, 8, 8)
    for i in range(2):
        np.testing.assert_allclose(panels[i, 0, 0], x0, atol=1e-6)  # t = 0: the clean image
    eps = [
        (panels[i, j] - float(s.alphas[k]) * x0) / float(s.sigmas[k])
        for i, s in enumerate((lin, cos))
        for j, k in enumerate(ks[i])
        if k > 0
    ]
    for e in eps[1:]:
        np.testing.assert_allclose(e, eps[0], atol=1e-5)
    assert snr[1][2] == pytest.approx(float(cos.snr_db[25]))
    names, *_ = viz.compare_panels([lin, make_schedule("linear", 1000), cos], x0, [0.5])
    assert names == ["linear #1", "linear #2", "cosine"]


def test_plot_schedule_compare_images(tmp_path):
    x0 = _digits(1, 16)[0]
    scheds = {"linear": make_schedule("linear", 1000), "cosine": make_schedule("cosine", 1000)}
    w, h = _png(viz.plot_schedule_compare_images(scheds, x0, tmp_path / "cmp.png"))
    assert w > 2 * h  # two rows of seven panels
    _png(viz.plot_schedule_compare_images(list(scheds.values()), x0[0], tmp_path / "cmp2.png", ts=[0, 1]))


# --- guidance sweep ----------------------------------------------------------------------------


def test_plot_guidance_sweep_and_shape_mismatch(tmp_path):
    x, labels = _digits(30, 8)
    grids = {0: x, 1.0: -x, 3: x[::-1].copy()}
    names = [str(k) for k in range(10)]
    w3, h3 = _png(viz.plot_guidance_sweep(grids, tmp_path / "g.png", labels=labels, class_names=names, title="g"))
    w1, h1 = _png(viz.plot_guidance_sweep({7.5: torch.from_numpy(x)}, tmp_path / "one.png", labels=labels, class_names=names, title="g"))
    assert w3 > 2.2 * w1 and h3 == h1  # three blocks side by side, rows aligned
    _png(viz.plot_guidance_sweep({0: x, 2: x}, tmp_path / "plain.png"))
    with pytest.raises(ValueError, match=r"same shape.*s = 1: \(29, 1, 8, 8\)"):
        viz.plot_guidance_sweep({0: x, 1: x[:29]}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="grids"):
        viz.plot_guidance_sweep([x, x], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="grids"):
        viz.plot_guidance_sweep({}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    assert vimg._scale_header(0.0) == "s = 0 (unconditional)" and vimg._scale_header(2.5) == "s = 2.5"


# --- reverse process ---------------------------------------------------------------------------


def test_save_grid_gif_frames_size_and_atomic(tmp_path):
    x0, labels = _digits(100, 16)
    frames, ts = _reverse_frames(x0, n=20)
    path = viz.save_grid_gif(frames, tmp_path / "rev.gif", times=ts, labels=labels, class_names=[str(k) for k in range(10)],
                             fps=10, hold_last=5)  # fmt: skip
    assert path == tmp_path / "rev.gif"
    assert [p.name for p in tmp_path.iterdir()] == ["rev.gif"], "temp file left behind"
    assert path.stat().st_size < vimg.GIF_BUDGET  # 400 kB: noise frames are stored coarsely
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 20
        assert im.size[0] >= 2 * (10 * 17 + 1)  # the 171-pixel grid is scaled up
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
        im.seek(0)
        first = np.asarray(im.convert("L")).astype(int)
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("L")).astype(int)
    assert durations[0] == 100 and durations[-1] == 600  # the last frame is held 1 + hold_last
    assert np.abs(first - last).mean() > 10


def test_save_grid_gif_small_images_rgb_and_pairs(tmp_path):
    x0, _ = _digits(16, 8)
    rgb = np.concatenate([x0, -x0, x0 * 0], axis=1)
    frames, ts = _reverse_frames(rgb, n=6)
    path = viz.save_grid_gif(list(zip(ts, frames)), tmp_path / "rgb.gif")  # (t, images) pairs
    with Image.open(path) as im:
        assert im.n_frames == 6
        assert im.size[0] >= 8 * (4 * 9 + 1)  # a 4x4 grid of 8x8 images, scaled up 8 times
        im.seek(5)
        px = np.asarray(im.convert("RGB"))
    assert (px[..., 0] != px[..., 1]).any(), "RGB frames came out grey"
    with pytest.raises(ValueError, match="times"):
        viz.save_grid_gif(list(zip(ts, frames)), tmp_path / "x.gif", times=ts)


def test_frame_levels_follow_the_noise_left():
    clean = np.linspace(0, 1, 64).reshape(8, 8)
    noisy = [np.clip(clean + s * np.random.default_rng(0).standard_normal((8, 8)), 0, 1) for s in (1.0, 0.3, 0.1, 0.02)]
    levels = vgif.frame_levels([*noisy, clean])
    assert levels[0] == vgif.GIF_MIN_LEVELS and levels[-1] == vgif.GIF_MAX_LEVELS
    assert levels == sorted(levels)


def test_plot_image_progression(tmp_path):
    x0, _ = _digits(12, 8)
    frames, ts = _reverse_frames(x0, n=15)
    w, h = _png(viz.plot_image_progression(frames, tmp_path / "p.png", times=ts, count=6))
    assert h > w  # eight image rows of six columns
    _png(viz.plot_image_progression(list(zip(ts, frames)), tmp_path / "p2.png", count=30))
    with pytest.raises(ValueError, match="times"):
        viz.plot_image_progression(frames, tmp_path / "p3.png", times=ts[:3])
