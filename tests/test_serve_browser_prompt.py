"""The Reverse view's prompt box on a text-to-image run, in a real browser (Playwright driving the
system Chromium, as tests/test_serve_browser.py): the box shows on a text run only, the prompt's
words appear as chips (an unknown word marked as the unknown token), and clicking one draws its
cross-attention map beside the predicted image at every step."""

from __future__ import annotations

import pytest

from denoiselab import load_config, train
from test_serve_browser import _Server, _shot, browser, page  # noqa: F401 - the browser and page fixtures, over this file's server
from test_text_runs import QUIET, TINY_TEXT

pytestmark = pytest.mark.browser
STEPS = 5
# Share of a canvas's pixels that are not (near) white in some channel: a drawn heat map or image.
DRAWN = """(id) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (Math.min(d[i], d[i + 1], d[i + 2]) < 200) n++;
  return n / (c.width * c.height);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, one_thread):
    runs = tmp_path_factory.mktemp("prompt-browser-runs")
    train(load_config("quick", ["train.steps=30", "model.hidden=16", "data.n=200", "sample.steps=3"]), runs / "spiral", **QUIET)
    train(load_config("scenes-text", TINY_TEXT), runs / "scenes", **QUIET)
    with _Server(runs) as srv:
        yield srv


def test_the_prompt_box_draws_word_chips_and_their_maps(page, server, tmp_path):
    page.goto(f"{server.url}/#reverse")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#rev-panels[data-frames]")  # the spiral run (the page's default) is drawn
    assert page.is_hidden("#rev-prompt") and page.is_hidden("#rev-attn-section")
    page.select_option("#rev-run", "scenes")
    page.wait_for_selector("#rev-prompt", state="visible")
    assert page.input_value("#rev-prompt-text")  # an example caption of the run's own held-out scenes
    page.fill("#rev-prompt-text", "a big red circle on the left zorblax")
    page.fill("#rev-prompt-guidance", "3")
    page.fill("#rev-steps", str(STEPS))
    page.fill("#rev-n", "4")
    page.press("#rev-prompt-text", "Enter")
    page.wait_for_selector("#rev-attn-section", state="visible")
    page.wait_for_function(f"document.getElementById('rev-panels').dataset.frames === '{STEPS}'")
    chips = page.eval_on_selector_all("#rev-prompt-words .chip", "bs => bs.map((b) => [b.textContent, b.classList.contains('unknown')])")
    assert chips == [
        ["a", False], ["big", False], ["red", False], ["circle", False], ["on", False], ["the", False], ["left", False],
        ["zorblax → <unk>", True],
    ]  # fmt: skip
    assert "“zorblax”, read as the unknown token" in page.text_content("#rev-prompt-note")
    assert 'prompt "a big red circle on the left zorblax"' in page.text_content("#rev-status")
    # The first word that names something is shown first; clicking another shows that one's map.
    assert page.get_attribute("#rev-attn", "data-word") == "big"
    page.click("#rev-prompt-words .chip:has-text('circle')")
    page.wait_for_function("document.getElementById('rev-attn').dataset.word === 'circle'")
    assert page.eval_on_selector("#rev-prompt-words .chosen", "b => b.textContent") == "circle"
    assert "attend to “circle”" in page.text_content("#rev-attn-caption")
    assert page.evaluate(DRAWN, "rev-attn") > 0.15 and page.evaluate(DRAWN, "rev-attn-image") > 0.15
    before = page.evaluate("document.getElementById('rev-attn').toDataURL()")
    page.fill("#rev-timeline", str(STEPS - 1))
    page.wait_for_function(f"document.getElementById('rev-attn').dataset.step === '{STEPS - 1}'")
    assert page.evaluate("document.getElementById('rev-attn').toDataURL()") != before  # each step its own map
    page.click("#rev-prompt-words .chip.unknown")
    page.wait_for_function("document.getElementById('rev-attn').dataset.word === 'zorblax'")
    assert "attend to “<unk>”" in page.text_content("#rev-attn-caption")
    page.locator("#rev-attn-section").scroll_into_view_if_needed()
    _shot(page, tmp_path, "reverse-prompt")
    # The empty prompt: unconditional, no word, said in one sentence.
    page.fill("#rev-prompt-text", "")
    page.click("#rev-go")
    page.wait_for_function("window.playground.rev.result.prompt && window.playground.rev.result.prompt.tokens.length === 0")
    assert page.locator("#rev-prompt-words .chip").count() == 0
    assert "The empty prompt" in page.text_content("#rev-prompt-note")
    # Back on a run without captions the prompt box goes away.
    page.select_option("#rev-run", "spiral")
    page.wait_for_selector("#rev-prompt", state="hidden")
    assert page.is_hidden("#rev-attn-section")
