/* The Reverse view on a text-to-image run: a prompt box (the caption every sample is denoised
 * from, and the classifier-free guidance scale on it), the prompt's words as the tokenizer read
 * them (an unknown word is its unknown token), and for the word clicked, its cross-attention map
 * beside the predicted image at each step: which pixels attend to that word (Rombach et al. 2022,
 * Sec. 3.3; the server's serve/prompt_sampling.py sends every word's maps with the frames). */

import { $, state } from "./api.js";
import { escapeHtml, fieldValue } from "./controls.js";
import { drawPanel } from "./plot.js";

// Words that name no object or place: the first other word is the one shown first.
const FILLER = new Set(["a", "an", "the", "at", "on", "in", "to", "of", "and", "with", "up", ",", ".", ":", ";", "-"]);

/** The maps of one word, (n, L, H, W) -> (n, 3, H, W) heat images in pixel units [-1, 1]: black
 * at the smallest share of attention the word gets in that image, through red and yellow to white
 * at the largest (each image stretched to its own range, whose extremes the caption gives). */
function heat(maps, word) {
  const [N, L, H, W] = maps.shape, plane = H * W;
  const data = new Float32Array(N * 3 * plane);
  let lowest = Infinity, highest = 0;
  for (let n = 0; n < N; n++) {
    const src = (n * L + word) * plane;
    let lo = Infinity, hi = -Infinity;
    for (let p = 0; p < plane; p++) { lo = Math.min(lo, maps.data[src + p]); hi = Math.max(hi, maps.data[src + p]); }
    lowest = Math.min(lowest, lo);
    highest = Math.max(highest, hi);
    for (let p = 0; p < plane; p++) {
      const v = hi > lo ? (maps.data[src + p] - lo) / (hi - lo) : 0;
      const rgb = [Math.min(1, 3 * v), Math.min(1, Math.max(0, 3 * v - 1)), Math.max(0, 3 * v - 2)];
      for (let c = 0; c < 3; c++) data[(n * 3 + c) * plane + p] = 2 * rgb[c] - 1;
    }
  }
  return { panel: { kind: "image", shape: [N, 3, H, W], data }, lowest, highest };
}

export const Prompt = {
  word: null, // the token position whose map is shown
  init() {
    $("rev-prompt-text").addEventListener("keydown", (ev) => { if (ev.key === "Enter") $("rev-go").click(); });
    $("rev-prompt-example").addEventListener("click", () => {
      const ex = this.examples || [];
      if (!ex.length) return;
      this.nextExample = ((this.nextExample || 0) + 1) % ex.length;
      $("rev-prompt-text").value = ex[this.nextExample];
    });
  },
  /** A run was chosen: the prompt box on a text-to-image run, nothing of it elsewhere. */
  onRun(detail) {
    const text = !!detail.text;
    $("rev-prompt").hidden = !text;
    if (!text) { $("rev-attn-section").hidden = true; return; }
    this.examples = detail.text_examples || [];
    if (!$("rev-prompt-text").value && this.examples.length) $("rev-prompt-text").value = this.examples[0];
    if (detail.sample && detail.sample.guidance !== undefined) $("rev-prompt-guidance").value = detail.sample.guidance;
  },
  /** What the sample request adds: {prompt, guidance} on a text run, {} elsewhere, undefined
   * when the guidance field is wrong (said beside it). */
  request(detail) {
    if (!detail || !detail.text) return {};
    const guidance = fieldValue("rev-prompt-guidance");
    if (guidance === null) return undefined;
    return { prompt: $("rev-prompt-text").value, guidance };
  },
  /** A new reply: the prompt's words as chips, the first word that names something chosen. */
  prepare(res) {
    const p = res.prompt;
    this.res = res;
    $("rev-attn-section").hidden = !p;
    if (!p) return;
    const chips = $("rev-prompt-words");
    chips.innerHTML = "";
    const mapped = !!p.attention;
    p.tokens.forEach((t, j) => {
      const b = document.createElement("button");
      b.className = "chip" + (t.known ? "" : " unknown");
      b.textContent = t.known ? t.word : `${t.word} → ${t.token}`;
      b.title = t.known ? `show where the pixels attend to “${t.word}”` : `“${t.word}” is a word the tokenizer never saw: the network reads the unknown token ${t.token}`;
      b.dataset.index = j;
      b.disabled = !mapped;
      b.addEventListener("click", () => this.choose(j));
      chips.appendChild(b);
    });
    const unknown = p.unknown.length
      ? ` Unknown to the tokenizer: ${p.unknown.map((w) => `“${escapeHtml(w)}”`).join(", ")}, read as the unknown token.` : "";
    let note;
    if (!p.tokens.length) note = "The empty prompt: every sample is drawn unconditionally (the caption with no word), so no word has a map.";
    else if (!mapped) note = `No maps: ${escapeHtml(p.no_maps || "none in this reply")}.`;
    else note = `Click a word to see which pixels attend to it. Maps: ${escapeHtml(p.attention.note)}.`;
    $("rev-prompt-note").innerHTML = note + unknown;
    const first = p.tokens.findIndex((t) => t.known && !FILLER.has(t.word));
    this.word = mapped ? (first >= 0 ? first : 0) : null;
    this.markChips();
  },
  choose(j) {
    this.word = j;
    this.markChips();
    if (this.frame) this.draw(this.res, this.frame);
  },
  markChips() {
    for (const b of $("rev-prompt-words").children) b.classList.toggle("chosen", +b.dataset.index === this.word);
  },
  /** Step f: the predicted image x̂0 and, beside it, the chosen word's map. */
  draw(res, f) {
    this.frame = f;
    if (!res.prompt || this.word === null || !f.attention) return;
    const t = res.prompt.tokens[this.word];
    drawPanel($("rev-attn-image"), f.x0_net || f.x0, {});
    const { panel, lowest, highest } = heat(f.attention, this.word);
    drawPanel($("rev-attn"), panel, {});
    const pct = (v) => `${(100 * v).toFixed(0)} %`;
    $("rev-attn-caption").textContent = `where the pixels attend to “${t.known ? t.word : t.token}”: dark the least, white the most in each image (from ${pct(lowest)} to ${pct(highest)} of a pixel's attention here)`;
    $("rev-attn-image-caption").innerHTML = `the predicted clean image x̂<sub>0</sub> at step ${f.index + 1}`;
    $("rev-attn").dataset.word = t.word;
    $("rev-attn").dataset.step = f.index;
  },
};
