"""The playground page in a real browser: Playwright driving the system's Chromium.

No browser is ever downloaded: the tests launch the Chromium at DENOISELAB_CHROMIUM (default
/usr/bin/chromium, Debian's package) and fail with a clear message when it is missing.  The
server is the real app under uvicorn, in a thread, on a free port of 127.0.0.1, over a
temporary runs folder holding one quickly trained run.

Screenshots of every view go to tmp_path, or to docs/img/playground-<view>.png with
DENOISELAB_SCREENSHOTS=1 (which also trains the runs long enough to look like a spiral and like
digits: a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from denoiselab import load_config, train
from denoiselab.training import train_classifier
from denoiselab.classifiers import ClassifierSettings

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("DENOISELAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("DENOISELAB_SCREENSHOTS") == "1"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
VIEWPORT = {"width": 1400, "height": 950}
RUN_STEPS = 3000 if SCREENSHOTS else 150  # the README's pictures need a model that draws a spiral
# A class-conditional digits run (8 x 8 images): a few seconds here; for the pictures a U-Net of
# 16 channels trained long enough to draw digits (about two minutes on one thread).
DIGITS = ["train.steps=2000", "model.hidden=16"] if SCREENSHOTS else ["train.steps=20", "model.hidden=8", "model.time_dim=16", "sample.n=40"]
IMAGE_STEPS = 20 if SCREENSHOTS else 6  # reverse steps on the digits run

# Pixels whose colour channels differ by more than this are coloured (points), not grey/white.
COLOURED_PIXELS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
  }
  return n;
}"""
# Distinct grey levels on a canvas: more than a handful means an image, not a blank panel.
GREY_LEVELS = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4) seen.add(d[i]);
  return seen.size;
}"""

# Share of a canvas's pixels that are not (near) white: drawn content, not an empty panel.
INKED = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] < 200) n++;
  return n / (c.width * c.height);
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """The app under uvicorn in a thread; ``url`` is its address."""

    def __init__(self, runs_dir: Path):
        import uvicorn

        from denoiselab.serve.app import create_app

        self.app = create_app(runs_dir, job_threads=1, finish_runs=False)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the playground server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory, one_thread):
    runs = tmp_path_factory.mktemp("browser-runs")
    # The digits run first: the newest run (the spiral) is the one the page opens by default.
    train(load_config("digits", DIGITS), runs / "digits", progress=False, log=lambda *a: None)
    # A noise-conditional classifier for classifier guidance (a few steps: the page needs one, not a good one).
    classifier = ClassifierSettings(steps=600 if SCREENSHOTS else 3, batch_size=64, hidden=8)
    train_classifier(runs / "digits", classifier, progress=False, log=lambda *a: None)
    recipe = "spiral" if SCREENSHOTS else "quick"
    train(load_config(recipe, [f"train.steps={RUN_STEPS}"]), runs / "spiral", progress=False, log=lambda *a: None)
    with _Server(runs) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium package (apt-get install chromium) "
            "or point DENOISELAB_CHROMIUM at a Chromium binary. These tests never download a browser.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # The page may fetch nothing but its own server.
    pg.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.url) else route.abort())
    pg.set_default_timeout(45_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _open(page, server, view: str):
    page.goto(f"{server.url}/#{view}")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector(f"#view-{view}.active")


def _shot(page, tmp_path: Path, view: str) -> Path:
    if SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        path = DOCS_IMG / f"playground-{view}.png"
    else:
        path = tmp_path / f"playground-{view}.png"
    page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring
    page.mouse.move(0, 0)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_forward_view_slider_moves_the_snr(page, server, tmp_path):
    _open(page, server, "forward")
    page.wait_for_function("document.getElementById('fwd-snr').textContent.includes('dB')")
    assert page.evaluate(COLOURED_PIXELS, "fwd-canvas") > 200
    snr_before = page.text_content("#fwd-snr")
    signal_before = page.text_content("#fwd-signal")
    page.fill("#fwd-t", "600")
    page.wait_for_function(f"document.getElementById('fwd-snr').textContent !== {snr_before!r}")
    assert page.text_content("#fwd-signal") != signal_before
    assert "k = 600" in page.text_content("#fwd-tlabel")
    assert page.text_content("#fwd-snr").startswith("−")  # at t = 0.6 the noise dominates
    # The same t under another schedule: another SNR.
    linear = page.text_content("#fwd-snr")
    page.select_option("#fwd-schedule", "cosine")
    page.wait_for_function(f"document.getElementById('fwd-snr').textContent !== {linear!r}")
    # Play animates towards pure noise.
    page.fill("#fwd-t", "0")
    page.click("#fwd-play")
    page.wait_for_function("+document.getElementById('fwd-t').value > 200")
    page.click("#fwd-play")  # pause
    # Image data: a pattern set is drawn as images.
    page.select_option("#fwd-data", "patterns:checkerboard")
    page.wait_for_function("window.playground.fwd.kind === 'image'")
    page.fill("#fwd-t", "30")
    assert page.evaluate(GREY_LEVELS, "fwd-canvas") > 20
    # The page's quick check answers.
    page.check("input[name=q-forward][value=c]")
    page.click("[data-quiz=forward] .check")
    assert "Right" in page.text_content("[data-quiz=forward] .feedback")
    page.select_option("#fwd-data", "spiral")
    page.select_option("#fwd-schedule", "linear")
    page.wait_for_function("window.playground.fwd.kind === 'points' && window.playground.fwd.schedule.name === 'linear'")
    page.fill("#fwd-t", "60")
    _shot(page, tmp_path, "forward")


def test_schedules_view_compares_schedules(page, server, tmp_path):
    _open(page, server, "schedules")
    page.wait_for_selector("#sch-table tbody tr[data-schedule=flow]")
    rows = page.locator("#sch-table tbody tr")
    assert rows.count() == 5
    for canvas in ("sch-alphabar", "sch-snr"):
        assert page.evaluate(COLOURED_PIXELS, canvas) > 500
    cosine = page.text_content("#sch-table tr[data-schedule=cosine]")
    linear = page.text_content("#sch-table tr[data-schedule=linear]")
    assert cosine != linear
    page.fill("#sch-t", "0.8")
    page.wait_for_function(f"document.querySelector('#sch-table tr[data-schedule=cosine]').textContent !== {cosine!r}")
    # Another T: new curves, the same image noised under each schedule.
    page.select_option("#sch-T", "100")
    page.wait_for_function("window.playground.sch.curves && window.playground.sch.curves.T === 100")
    assert page.locator("#sch-row canvas").count() == 6  # clean + five schedules
    page.select_option("#sch-T", "1000")
    page.wait_for_function("window.playground.sch.curves.T === 1000")
    page.fill("#sch-t", "0.2")
    _shot(page, tmp_path, "schedules")


def test_reverse_view_draws_every_step(page, server, tmp_path):
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")
    steps = int(page.input_value("#rev-steps"))
    assert int(page.get_attribute("#rev-panels", "data-frames")) == steps
    assert page.locator("#rev-ticks span").count() == steps
    assert page.get_attribute("#rev-timeline", "max") == str(steps - 1)
    for canvas in ("rev-xt", "rev-eps", "rev-x0", "rev-next", "rev-final"):
        assert page.evaluate(COLOURED_PIXELS, canvas) > 100, canvas
    # Another sampler and step count: a new timeline of that length.
    page.select_option("#rev-sampler", "ddim")
    page.fill("#rev-steps", "7")
    page.click("#rev-go")
    page.wait_for_selector("#rev-panels[data-frames='7']")
    assert page.locator("#rev-ticks span").count() == 7
    label = page.text_content("#rev-steplabel")
    page.fill("#rev-timeline", "5")
    page.wait_for_function(f"document.getElementById('rev-steplabel').textContent !== {label!r}")
    assert "step 6 / 7" in page.text_content("#rev-steplabel")
    # Out-of-range input is said beside its field, not changed silently (steps 0 used to become 50).
    for value, said in (("999", "must be 1 to 250; got 999"), ("0", "must be 1 to 250; got 0")):
        page.fill("#rev-steps", value)
        page.click("#rev-go")
        page.wait_for_function(f"document.querySelector('#rev-steps + .field-msg').textContent === {said!r}")
        assert page.get_attribute("#rev-panels", "data-frames") == "7"  # nothing was sent
    page.fill("#rev-seed", "-1")
    page.click("#rev-go")
    page.wait_for_function("document.querySelector('#rev-seed + .field-msg').textContent.startsWith('must be 0 to')")
    page.fill("#rev-seed", "0")
    page.select_option("#rev-sampler", "dpm++2m")
    page.fill("#rev-steps", "20")
    page.click("#rev-go")
    page.wait_for_selector("#rev-panels[data-frames='20']")
    page.fill("#rev-timeline", "8")
    _shot(page, tmp_path, "reverse")


def test_reverse_view_draws_the_grid_time_points(page, server, tmp_path):
    """Under the step slider, the grid's N + 1 time points on a t axis; the run's tuned grid is
    offered, used and named."""
    from denoiselab.runs.folder import TUNED_GRIDS, RunFolder
    from denoiselab.tuning import TunedGrid

    grid = [1.0, 0.62, 0.3, 0.11, 0.03, 0.0]
    run_dir = server.app.state.runs.root / "spiral"
    RunFolder(run_dir).save_tuned_grid(TunedGrid("dpm++2m", 5, grid, "given", grid, 0.0, 0.0, 0.0, n=1))
    try:
        _open(page, server, "reverse")
        page.wait_for_selector("#rev-panels[data-frames]")
        ticks = "#rev-gridline .grid-tick"
        assert page.locator(ticks).count() == int(page.input_value("#rev-steps")) + 1
        page.select_option("#rev-sampler", "dpm++2m")
        page.fill("#rev-steps", "5")
        page.select_option("#rev-grid", "tuned")
        page.click("#rev-go")
        page.wait_for_selector("#rev-panels[data-frames='5']")
        assert page.eval_on_selector_all(ticks, "els => els.map((e) => +e.dataset.t)") == grid
        assert "tuned grid" in page.text_content("#rev-status") and "tuned grid" in page.text_content("#rev-gridline-caption")
        page.fill("#rev-timeline", "2")  # step 3: from t_2 to t_3, highlighted
        page.wait_for_function("document.getElementById('rev-steplabel').textContent.startsWith('step 3 / 5')")
        assert page.eval_on_selector_all(f"{ticks}.current", "els => els.map((e) => +e.dataset.t)") == grid[2:4]
        page.screenshot(path=str(tmp_path / "playground-reverse-grid.png"))
    finally:
        (run_dir / TUNED_GRIDS).unlink()


def test_reverse_view_on_an_image_run(page, server, tmp_path):
    """The digits run: class names in the label control, guidance, image grids at every step."""
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")  # the default (spiral) run has been drawn
    page.select_option("#rev-run", "digits")
    page.wait_for_function("document.getElementById('rev-n-label').textContent === 'Images'")
    assert page.input_value("#rev-n") == "16" and page.is_visible("#rev-label")
    names = page.eval_on_selector_all("#rev-label option", "os => os.map((o) => o.textContent)")
    assert names == ["all classes (mixed)", *(str(d) for d in range(10))]
    page.select_option("#rev-label", label="7")
    page.fill("#rev-guidance", "3")
    page.fill("#rev-steps", str(IMAGE_STEPS))
    page.click("#rev-go")
    page.wait_for_function("(() => { const r = window.playground.rev.result; return r && r.kind === 'image'; })()")
    assert page.get_attribute("#rev-panels", "data-frames") == str(IMAGE_STEPS)
    res = page.evaluate("(() => { const r = window.playground.rev.result; return {kind: r.kind, label: r.label_name, guidance: r.guidance_used, n: r.n, shape: r.frames[0].x0.shape}; })()")
    assert res == {"kind": "image", "label": "7", "guidance": 3, "n": 16, "shape": [16, 1, 8, 8]}
    assert page.locator("#rev-ticks span").count() == IMAGE_STEPS
    assert page.get_attribute("#rev-timeline", "max") == str(IMAGE_STEPS - 1)
    assert "class 7" in page.text_content("#rev-status") and "guidance 3" in page.text_content("#rev-status")
    for canvas in ("rev-xt", "rev-eps", "rev-x0", "rev-next", "rev-final"):
        assert page.evaluate(INKED, canvas) > 0.15, canvas  # image grids, not blank panels
    assert page.evaluate(GREY_LEVELS, "rev-xt") > 20  # noisy x_t: every shade of grey
    page.fill("#rev-timeline", str(IMAGE_STEPS - 2))
    page.wait_for_function(f"document.getElementById('rev-steplabel').textContent.startsWith('step {IMAGE_STEPS - 1} / {IMAGE_STEPS}')")
    # The playground animates the run's own training images into noise and back.
    page.click("#tabs button[data-view=playground]")
    page.wait_for_selector("#pg-canvas[data-frames]")
    assert page.input_value("#pg-run") == "digits"
    frames = int(page.get_attribute("#pg-canvas", "data-frames"))
    assert frames == 2 * int(page.input_value("#pg-steps")) + 1
    assert page.evaluate(GREY_LEVELS, "pg-canvas") > 20 and page.evaluate(INKED, "pg-canvas") > 0.15
    page.evaluate(f"Playground.show({frames - 1})")
    assert "of the same classes" in page.text_content("#pg-caption")
    # Back in the reverse view the controls keep what was chosen.
    page.click("#tabs button[data-view=reverse]")
    assert page.input_value("#rev-guidance") == "3" and page.input_value("#rev-steps") == str(IMAGE_STEPS)
    assert page.eval_on_selector("#rev-label", "s => s.options[s.selectedIndex].textContent") == "7"
    if SCREENSHOTS:  # every class, at the run's own guidance, two thirds of the way
        page.select_option("#rev-label", "")
        page.fill("#rev-guidance", "2")
        page.click("#rev-go")
        page.wait_for_function("window.playground.rev.result.label_name === null")
        page.fill("#rev-timeline", str(IMAGE_STEPS * 2 // 3))
        _shot(page, tmp_path, "reverse-digits")


def test_reverse_view_applies_gradient_guidance(page, server, tmp_path):
    """Inpainting a held-out digit with a box drawn by the mouse, then classifier guidance: the
    guidance-term panel appears beside the predicted noise, with its caption and its counts."""
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")
    assert page.is_hidden("#rev-guide-fig")
    assert page.eval_on_selector_all("#rev-guide option", "os => os.map((o) => o.value)") == ["none", "observe", "region"]  # spiral: a coordinate to fix, a region
    page.select_option("#rev-run", "digits")
    page.wait_for_function("document.getElementById('rev-n-label').textContent === 'Images'")
    assert page.eval_on_selector_all("#rev-guide option", "os => os.map((o) => o.value)") == ["none", "classifier", "inpaint"]
    page.select_option("#rev-guide", "inpaint")
    page.fill("#rev-steps", str(IMAGE_STEPS))
    page.fill("#rev-n", "8")
    # Drag a box over the right half of the 8 x 8 image (the canvas is 150 px, the image 138 px inside it).
    box = page.locator("#rev-guide-mask").bounding_box()
    page.mouse.move(box["x"] + 6 + 138 * 5 / 8, box["y"] + 6 + 138 * 2 / 8)
    page.mouse.down()
    page.mouse.move(box["x"] + 6 + 138 * 7 / 8, box["y"] + 6 + 138 * 6 / 8, steps=4)
    page.mouse.up()
    assert "columns 5–6, rows 2–5" in page.text_content("#rev-guide-box")
    page.select_option("#rev-guide-method", "dps")
    page.click("#rev-go")
    page.wait_for_function("(() => { const r = window.playground.rev.result; return r && r.gradient_guidance && r.gradient_guidance.kind === 'inpaint'; })()")
    g = page.evaluate("window.playground.rev.result.gradient_guidance")
    assert g["method"] == "dps" and g["backward_passes"] == g["evaluations"] > 0
    assert page.is_visible("#rev-guide-fig") and page.evaluate(INKED, "rev-guide-term") > 0.1
    assert "(noise space, × σ_t)" in page.text_content("#rev-guide-caption")
    assert "backward passes through the model" in page.text_content("#rev-guide-counts")
    # Keep the top half, replacement: the final samples keep the held-out image's top rows.
    page.click("#rev-guide-top")
    page.select_option("#rev-guide-method", "replace")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result.gradient_guidance.method === 'replace'")
    page.fill("#rev-timeline", str(IMAGE_STEPS // 2))
    _shot(page, tmp_path, "reverse-guidance")  # the README's picture with DENOISELAB_SCREENSHOTS=1
    # Classifier guidance towards one class.
    page.select_option("#rev-guide", "classifier")
    page.select_option("#rev-guide-label", label="3")
    page.fill("#rev-guide-scale", "5")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result.gradient_guidance.kind === 'classifier'")
    assert "p(y = 3 | x_t), s = 5" in page.text_content("#rev-guide-counts")
    assert page.evaluate(INKED, "rev-guide-term") > 0.1
    # Classifier guidance steers the unconditional model towards the class beside it: the Class
    # and (classifier-free) Guidance boxes do not apply and are not shown, and the status names
    # what steered the samples, as the command line would, with no classifier-free scale.
    assert page.is_hidden("#rev-label") and page.is_hidden("#rev-guidance")
    status = page.text_content("#rev-status")
    assert "; classifier guidance towards class 3, scale 5;" in status and "classifier-free" not in status, status
    assert page.evaluate("window.playground.rev.result.guidance_used") is None
    if not SCREENSHOTS:
        _shot(page, tmp_path, "reverse-classifier")
    page.select_option("#rev-guide", "none")
    assert page.is_visible("#rev-label") and page.is_visible("#rev-guidance")
    page.click("#rev-go")
    page.wait_for_function("!window.playground.rev.result.gradient_guidance")
    assert page.is_hidden("#rev-guide-fig") and page.text_content("#rev-guide-counts") == ""
    assert "classifier-free guidance" in page.text_content("#rev-status")
    # Another run after a guided one: nothing of the guidance stays on the page.
    page.select_option("#rev-guide", "classifier")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result.gradient_guidance && window.playground.rev.result.gradient_guidance.kind === 'classifier'")
    page.select_option("#rev-run", "spiral")
    page.wait_for_function("document.getElementById('rev-n-label').textContent === 'Points'")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result.kind === 'points'")
    assert page.input_value("#rev-guide") == "none" and page.text_content("#rev-guide-counts") == ""
    assert page.is_hidden("#rev-guide-fig") and "guidance" not in page.text_content("#rev-status")


# Every disc (arc) and text the page draws, by canvas id: the sizes and labels it really drew.
CANVAS_SPY = """(() => {
  window.drawn = { arcs: {}, texts: {} };
  const arc = CanvasRenderingContext2D.prototype.arc, text = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.arc = function (x, y, r, a, b) {
    (window.drawn.arcs[this.canvas.id] ||= []).push(r);
    return arc.call(this, x, y, r, a, b);
  };
  CanvasRenderingContext2D.prototype.fillText = function (t, x, y) {
    (window.drawn.texts[this.canvas.id] ||= []).push(String(t));
    return text.call(this, t, x, y);
  };
  window.drawnReset = () => { window.drawn = { arcs: {}, texts: {} }; };
})();"""


def test_reverse_view_draws_the_smc_population(page, server, tmp_path):
    """Observing x1 on the point run by twisted SMC: every particle drawn with its size by weight,
    the drawn particle of each sample ringed, and the ESS over the steps with its axis labels."""
    page.add_init_script(CANVAS_SPY)
    _open(page, server, "reverse")
    page.wait_for_selector("#rev-panels[data-frames]")
    page.select_option("#rev-guide", "observe")
    assert page.is_hidden("#rev-guide-particles")  # K belongs to SMC
    page.select_option("#rev-guide-observe-method", "smc")
    assert page.input_value("#rev-sampler") == "ddpm"  # the transition SMC weights by
    page.fill("#rev-guide-value", "0.5")
    page.fill("#rev-guide-particles", "16")
    page.fill("#rev-n", "30")
    page.fill("#rev-steps", "40")
    page.click("#rev-go")
    page.wait_for_function("(() => { const r = window.playground.rev.result; return r && r.smc && r.frames.length === 40; })()")
    res = page.evaluate("(() => { const r = window.playground.rev.result; return { smc: r.smc, weights: r.frames.map((f) => f.weights) }; })()")
    smc, k = res["smc"], 16
    assert smc["particles"] == k and smc["samples"] == 30
    assert page.is_hidden("#rev-guide-fig") and page.is_visible("#rev-ess-fig")
    # The frame whose weights differ most: its x_t is drawn as 30 x 16 discs of several sizes,
    # the heaviest clearly bigger than the lightest.
    spread = [max(w) / max(min(w), 1e-12) for w in res["weights"]]
    i = spread.index(max(spread))
    page.evaluate("window.drawnReset()")
    page.fill("#rev-timeline", str(i))
    page.wait_for_function(f"document.getElementById('rev-steplabel').textContent.startsWith('step {i + 1} /')")
    radii = page.evaluate("window.drawn.arcs['rev-xt']")
    assert len(radii) == 30 * k
    assert max(radii) >= 2 * min(radii) and min(radii) >= 1.0, (min(radii), max(radii))  # the lightest still visible
    # The final panel: every particle by its final weight, then one ring per sample.
    final = page.evaluate("window.drawn.arcs['rev-final']")
    assert len(final) == 30 * k + 30 and len(set(final[: 30 * k])) > 1
    # The ESS plot, with the axis labels a newcomer reads, and the caption's numbers.
    assert page.evaluate(COLOURED_PIXELS, "rev-ess") > 500  # the orange and red lines and the dots
    texts = page.evaluate("window.drawn.texts['rev-ess']")
    assert "step" in texts and f"ESS (of {k})" in texts, texts
    caption = page.text_content("#rev-guide-counts")
    assert caption.startswith(f"Twisted SMC: K = {k} particles per sample") and f"ESS min {smc['ess_min']:.1f} of {k}" in caption
    assert f"{smc['evaluations_per_sample']} model evaluations per sample" in caption
    assert "twisted SMC, 16 particles" in page.text_content("#rev-status")
    _shot(page, tmp_path, "reverse-smc")
    # Back to DPS: no SMC figure or caption stays.
    page.select_option("#rev-guide-observe-method", "dps")
    page.select_option("#rev-sampler", "ddim")
    page.fill("#rev-steps", "10")
    page.click("#rev-go")
    page.wait_for_function("(() => { const r = window.playground.rev.result; return r && !r.smc && r.gradient_guidance; })()")
    assert page.is_hidden("#rev-ess-fig") and page.is_visible("#rev-guide-fig")
    assert "Twisted SMC" not in page.text_content("#rev-guide-counts")
    # A region by SMC: the same population view, and the caption counts the samples inside.
    page.select_option("#rev-guide", "region")
    page.fill("#rev-guide-region", "x1 > 0.5")
    page.select_option("#rev-guide-region-method", "smc")
    assert page.input_value("#rev-sampler") == "ddpm" and page.is_visible("#rev-guide-particles")
    page.fill("#rev-n", "20")
    page.click("#rev-go")
    page.wait_for_function("(() => { const r = window.playground.rev.result; return r && r.smc && r.gradient_guidance.kind === 'region'; })()")
    assert page.is_visible("#rev-ess-fig") and "samples inside x1 > 0.5" in page.text_content("#rev-guide-counts")
    assert "region x1 > 0.5 by twisted SMC, 16 particles" in page.text_content("#rev-status")


def test_playground_view_animates_both_ways(page, server, tmp_path):
    _open(page, server, "playground")
    page.wait_for_selector("#pg-canvas[data-frames]")
    frames = int(page.get_attribute("#pg-canvas", "data-frames"))
    assert frames == 2 * int(page.input_value("#pg-steps")) + 1  # forward grid + reverse steps
    assert page.text_content("#pg-counter").startswith(f"step 0 / {frames - 1}")
    page.fill("#pg-speed", "4")
    page.click("#pg-play")
    page.wait_for_function("document.getElementById('pg-counter').textContent.includes('reverse')")
    page.click("#pg-play")  # pause
    progress = page.evaluate("parseFloat(document.getElementById('pg-progress').style.width)")
    assert progress > 50
    # Backwards: the counter goes down.
    page.select_option("#pg-direction", "-1")
    before = page.text_content("#pg-counter")
    page.click("#pg-play")
    page.wait_for_function(f"document.getElementById('pg-counter').textContent !== {before!r}")
    page.click("#pg-play")
    after = int(page.text_content("#pg-counter").split()[1])
    assert after < int(before.split()[1])
    assert page.evaluate(COLOURED_PIXELS, "pg-canvas") > 200
    page.select_option("#pg-direction", "1")
    page.evaluate(f"Playground.show({frames - 8})")
    _shot(page, tmp_path, "playground")


def test_train_view_starts_and_cancels_a_job(browser, page, server, tmp_path):
    first = browser.new_context(viewport=VIEWPORT)
    tab = first.new_page()
    _open(tab, server, "train")
    tab.wait_for_selector("#tr-runs tr[data-run=spiral]")
    # The image demo says what it is and has its own step count; 2D sets keep theirs.
    tab.select_option("#tr-data", "patterns")
    assert tab.is_visible("#tr-image-note") and "denoiselab train --config patterns" in tab.text_content("#tr-image-note")
    assert tab.input_value("#tr-steps") == "500"
    assert tab.is_enabled("#tr-runs tr[data-run=digits] button")  # image runs open too
    tab.select_option("#tr-data", "moons")
    assert not tab.is_visible("#tr-image-note") and tab.input_value("#tr-steps") == "3000"
    tab.fill("#tr-steps", "3000")
    tab.fill("#tr-name", "moons-from-the-page")
    tab.click("#tr-start")
    tab.wait_for_selector("#job-banner:not([hidden])")
    first.close()  # the job goes on without the page that started it
    _open(page, server, "train")
    page.wait_for_selector("#job-banner:not([hidden])")
    wanted = 1500 if SCREENSHOTS else 20
    page.wait_for_function(
        f"(() => {{ const j = window.playground.job; return j && j.status === 'running' && j.step >= {wanted}; }})()",
        timeout=90_000,
    )
    assert page.is_enabled("#tr-cancel") and not page.is_enabled("#tr-start")
    assert page.evaluate(COLOURED_PIXELS, "tr-loss") > 50  # the live loss curve
    _shot(page, tmp_path, "train")
    page.click("#tr-cancel")
    page.wait_for_function("document.getElementById('tr-status').dataset.status === 'cancelled'")
    assert page.is_enabled("#tr-start")
    page.wait_for_selector("#tr-runs tr[data-run='moons-from-the-page']")
    assert "interrupted" in page.text_content("#tr-runs tr[data-run='moons-from-the-page']")


# Whether the tour's card covers the view's quick check once the learner has scrolled to it
# (the part of the check its scrolling column shows).
TOUR_COVERS_QUIZ = """(view) => {
  const quiz = document.querySelector(`#view-${view} [data-quiz]`);
  quiz.scrollIntoView({ block: "end" });
  const q = quiz.getBoundingClientRect(), column = quiz.closest(".learn").getBoundingClientRect();
  const card = document.getElementById("tour").getBoundingClientRect();
  const top = Math.max(q.top, column.top), bottom = Math.min(q.bottom, column.bottom, window.innerHeight);
  if (bottom <= top) return "the quick check is not in view";
  return Math.min(q.right, card.right) > Math.max(q.left, card.left) && Math.min(bottom, card.bottom) > Math.max(top, card.top);
}"""


def _copy_run(src: Path, dst: Path, *, complete: bool, modified: float) -> None:
    """A copy of a trained run folder, marked complete or not, its run.json dated ``modified``."""
    import shutil

    from denoiselab.runs.folder import RunFolder

    shutil.copytree(src, dst)
    folder = RunFolder(dst)
    info = folder.read_info()
    info["status"] = "complete" if complete else "trained"
    folder.write_info(info)
    os.utime(folder.info_path, (modified, modified))


def test_the_page_opens_on_a_complete_point_run_and_the_tour_matches_the_page(browser, server, tmp_path):
    """Issue 29: the Reverse view opened on the newest run (an image model drawing grey blobs);
    the tour's first step spoke of a 2D point set beside digits, recommended a run still listed
    "trained", and its card covered the quick check."""
    root, runs, now = server.app.state.runs.root, tmp_path / "runs", time.time()
    _copy_run(root / "spiral", runs / "spiral", complete=True, modified=now - 300)
    _copy_run(root / "digits", runs / "digits-done", complete=True, modified=now - 200)
    _copy_run(root / "digits", runs / "blobs", complete=False, modified=now - 100)  # the newest
    with _Server(runs) as srv:
        context = browser.new_context(viewport=VIEWPORT)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        _open(pg, srv, "reverse")
        pg.wait_for_selector("#rev-panels[data-frames]")
        assert pg.input_value("#rev-run") == "spiral" and pg.evaluate("window.playground.rev.result.kind") == "points"
        assert pg.input_value("#pg-run") == "spiral"
        pg.click("#tabs button[data-view=forward]")
        pg.select_option("#fwd-data", "digits")
        pg.wait_for_function("window.playground.fwd.kind === 'image'")
        pg.click("#tour-start")
        for i in range(7):
            pg.wait_for_function(f"window.playground.tour === {i} && Tour.index === {i} && !document.getElementById('tour').hidden")
            text, view = pg.text_content("#tour-text"), pg.evaluate("window.playground.view")
            if i == 0:
                assert "8 × 8 images of “handwritten digits”" in text and "2D point set" not in text, text
                _shot(pg, tmp_path, "tour-digits")
            if i == 5:
                assert '"digits-done" (complete) is one' in text, text
            assert pg.evaluate(TOUR_COVERS_QUIZ, view) is False, (i, view)
            pg.click("#tour-next")
        pg.wait_for_selector("#tour", state="hidden")
        assert pg.evaluate("document.body.classList.contains('touring')") is False
        context.close()
        assert not errors, errors


def test_first_use_trains_the_default_model(browser, tmp_path):
    """With no run on the machine the reverse view starts training the default model."""
    with _Server(tmp_path / "runs") as srv:
        context = browser.new_context(viewport=VIEWPORT)
        pg = context.new_page()
        pg.goto(f"{srv.url}/#reverse")
        pg.wait_for_selector("#rev-setup:not([hidden])")
        pg.wait_for_function("document.getElementById('rev-setup-text').textContent.includes('step')", timeout=60_000)
        jobs = srv.app.state.jobs.list()
        assert len(jobs) == 1 and jobs[0]["run"] == "playground-spiral" and jobs[0]["active"]
        srv.app.state.jobs.cancel(jobs[0]["id"])
        context.close()


def _word(text: str, phrase: str) -> bool:
    """``phrase`` in ``text`` as a whole (not "0 dB" inside "+10 dB")."""
    import re

    return re.search(r"(?<![\w+\u2212.])" + re.escape(phrase) + r"(?!\w)", text) is not None


def test_what_the_page_teaches_agrees_with_itself(page, server, tmp_path):
    """Issue 16's learner's reading: one definition of signal % and SNR (the flow path too), the
    network's own x0-hat with the clamp said as it is, quick checks whose right answers vary in
    place and whose wrong answers explain without giving it away, and a guided tour."""
    _open(page, server, "forward")
    page.select_option("#fwd-schedule", "flow")
    page.wait_for_function("window.playground.fwd.schedule.name === 'flow'")
    page.fill("#fwd-t", "500")
    page.wait_for_function("document.getElementById('fwd-tlabel').textContent.includes('k = 500')")
    assert page.text_content("#fwd-signal") == "50 %" and page.text_content("#fwd-snr") == "0.0 dB"
    assert "SNR(t) = αt² / σt²" in page.text_content("#fwd-snr-formula")
    _shot(page, tmp_path, "forward-flow")
    page.click("#tabs button[data-view=schedules]")
    page.wait_for_selector("#sch-table tbody tr[data-schedule=flow]")
    page.fill("#sch-t", "0.5")
    page.wait_for_function("document.getElementById('sch-tlabel').textContent.startsWith('t = 0.500')")
    flow = [c.strip() for c in page.locator("#sch-table tr[data-schedule=flow] td").all_text_contents()]
    assert flow[1:4] == ["0.250", "50 %", "0.0 dB"], flow  # alpha-bar, signal %, SNR: as the Forward view says
    _shot(page, tmp_path, "schedules-flow")

    # Quick checks: find each right answer by trying every option.
    positions = []
    for quiz in ("forward", "schedules", "reverse", "playground", "train"):
        options = page.locator(f"[data-quiz={quiz}] label")
        feedback = {}
        for i in range(options.count()):
            value = page.get_attribute(f"[data-quiz={quiz}] label >> nth={i} >> input", "value")
            page.evaluate(f"document.querySelector('[data-quiz={quiz}] input[value={value}]').checked = true")
            page.evaluate(f"document.querySelector('[data-quiz={quiz}] .check').click()")
            feedback[i] = (page.text_content(f"[data-quiz={quiz}] .feedback"), options.nth(i).text_content().strip())
        right = [i for i, (text, _) in feedback.items() if text.startswith("Right")]
        assert len(right) == 1, (quiz, feedback)
        positions.append(right[0])
        right_label = feedback[right[0]][1]
        wrongs = [text for i, (text, _) in feedback.items() if i != right[0]]
        assert len(set(wrongs)) == len(wrongs), (quiz, wrongs)  # each wrong answer gets its own explanation
        for text in wrongs:
            assert text.startswith("Not quite.") and not _word(text, right_label), (quiz, text)
    assert len(set(positions)) >= 3, positions

    # The Reverse view at step 1: the network's x0-hat, and the clamp said as it is.
    page.click("#tabs button[data-view=reverse]")
    page.wait_for_selector("#rev-panels[data-frames]")
    page.select_option("#rev-run", "spiral")  # the newest run (the Train test's) was opened first
    # Choosing a run sets its own sampler and steps once its details arrive: wait for that first.
    page.wait_for_function("window.playground.rev.detail && window.playground.rev.detail.name === 'spiral'")
    page.select_option("#rev-sampler", "ddim")
    page.fill("#rev-steps", "10")
    page.click("#rev-go")
    page.wait_for_selector("#rev-panels[data-frames='10']")
    page.evaluate("Reverse.show(0)")
    first = page.evaluate("window.playground.rev.result.frames[0].clipped")
    note = page.text_content("#rev-step-note")
    assert note.startswith("Step 1:") and "as wide as the data" in note, note
    assert f"clamps {int(100 * first + 0.5)} %" in note and "raw prediction" in note, note  # JavaScript's rounding
    page.wait_for_function("document.getElementById('rev-status').textContent.includes('ready in')")  # the wait the learner had
    assert "s on the server" in page.text_content("#rev-status")
    _shot(page, tmp_path, "reverse-step1")
    page.evaluate("Reverse.show(9)")
    last = page.evaluate("window.playground.rev.result.frames[9]")
    note = page.text_content("#rev-step-note")
    assert note.startswith("Step 10:") and ("Nothing is clamped" in note) == (last["clipped"] == 0), note

    # The tour: seven steps through the views, from noise to guided generation and training.
    page.click("#tour-start")
    page.wait_for_selector("#tour:not([hidden])")
    seen = []
    for _ in range(7):
        page.wait_for_function("window.playground.tour !== null && window.playground.tour === Tour.index")
        seen.append((page.evaluate("window.playground.view"), page.text_content("#tour-title")))
        if seen[-1][1].startswith("6."):
            assert "digits" in page.text_content("#tour-text")  # the conditional run on this machine
            _shot(page, tmp_path, "tour")
        assert page.locator(".tour-target").count() >= 1
        page.click("#tour-next")
    assert [v for v, _ in seen] == ["forward", "forward", "schedules", "reverse", "playground", "reverse", "train"]
    page.wait_for_selector("#tour", state="hidden")
    assert page.locator(".tour-target").count() == 0
