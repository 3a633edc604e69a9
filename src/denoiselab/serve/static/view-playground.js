/* 4. Playground: forward then reverse in one animation.  The run's own training data is noised
 * on the sampler's grid with the very noise x_T the reverse process then starts from. */

import { $, api, showError, state } from "./api.js";
import { fieldValue, fillSelect, fmtDb } from "./controls.js";
import { combine, signalShare } from "./noising.js";
import { COLORS, drawPanel, lineChart, mixColor } from "./plot.js";
import { DefaultRun } from "./runs.js";

/** The first n images of an image panel, as a panel. */
function firstImages(img, n) {
  const [N, C, H, W] = img.shape;
  const m = Math.min(N, n);
  return { kind: "image", shape: [m, C, H, W], data: img.data.slice(0, m * C * H * W) };
}

export const Playground = {
  token: 0,
  idx: 0,
  dir: 1,
  frames: [],
  init() {
    fillSelect($("pg-sampler"), state.info.samplers, "dpm++2m");
    $("pg-load").addEventListener("click", () => this.load());
    $("pg-run").addEventListener("change", () => this.load());
    $("pg-play").addEventListener("click", () => this.toggle());
    $("pg-direction").addEventListener("change", () => { this.dir = +$("pg-direction").value; });
    $("pg-speed").addEventListener("input", () => { $("pg-speedlabel").textContent = $("pg-speed").value + "×"; });
    DefaultRun.readyListeners.push(() => { if (state.view === "playground") this.load(); });
  },
  shown() { DefaultRun.ensure().then((ok) => { if (ok && !this.frames.length) this.load(); }); },
  async load() {
    const name = $("pg-run").value;
    if (!name) { await DefaultRun.ensure(); return; }
    this.stop();
    const token = ++this.token;
    try {
      const detail = await api(`/api/runs/${encodeURIComponent(name)}`);
      if (!detail.data_preview) throw new Error("this run has no training data to animate");
      const image = detail.data_preview.kind === "image";
      const steps = fieldValue("pg-steps");
      if (steps === null) return; // said beside the field
      let x0, body = { sampler: $("pg-sampler").value, steps, seed: 0, frames: true };
      if (image) {
        // As many of the preview images as the response cap allows at this many steps; each is
        // regenerated with its own class (labels), so noise from a "3" is denoised as a "3".
        const [N, C, H, W] = detail.data_preview.shape;
        const fit = Math.floor(state.info.caps.frame_image_values / (steps * C * H * W));
        if (fit < 1) throw new Error(`steps: too many steps for ${H} × ${W} images; try fewer`);
        x0 = firstImages(detail.data_preview, Math.min(N, fit, state.info.caps.sample_images));
        body.n = x0.shape[0];
        if (detail.data_preview_labels) body.labels = detail.data_preview_labels.slice(0, body.n);
        this.labels = detail.data_preview_names ? detail.data_preview_names.slice(0, body.n) : undefined;
      } else {
        x0 = { kind: "points", points: detail.data_preview.points.slice(0, 600) };
        body.n = x0.points.length;
        this.labels = undefined;
      }
      const res = await api(`/api/runs/${encodeURIComponent(name)}/sample`, body);
      if (token !== this.token) return;
      const T = res.T;
      // Forward frames on the sampler's grid, from k = 0 up to k = T, with the very noise x_T the
      // reverse process starts from: x_k = alpha_k x0 + sigma_k x_T.
      const ks = res.grid.slice().reverse();
      const frames = [];
      for (const k of ks) {
        const a = res.grid_alphas[res.grid.indexOf(k)], s = res.grid_sigmas[res.grid.indexOf(k)];
        frames.push({ phase: "forward", k, snr: res.grid_snr_db[res.grid.indexOf(k)], a, s, panel: combine(x0, res.x_T, a, s) });
      }
      for (const f of res.frames) {
        const j = res.grid.indexOf(f.k_next);
        frames.push({ phase: "reverse", k: f.k_next, snr: f.snr_db_next, a: res.grid_alphas[j], s: res.grid_sigmas[j], panel: f.x_next });
      }
      this.frames = frames;
      this.T = T;
      $("pg-model-note").textContent = res.explanation;
      this.kind = res.kind;
      this.latent = !!res.latent; // its noise is added in the latent space: the forward half here is a blend in pixels
      this.data = image ? null : detail.data_preview.points;
      this.idx = 0;
      showError("pg-error", null);
      this.show(0);
      $("pg-canvas").dataset.frames = frames.length;
    } catch (err) { showError("pg-error", err); }
  },
  show(i) {
    const n = this.frames.length;
    if (!n) return;
    this.idx = Math.max(0, Math.min(n - 1, i));
    const f = this.frames[this.idx];
    const share = signalShare(f.a, f.s);
    const color = f.phase === "forward" ? mixColor(COLORS.data, COLORS.noise, share) : mixColor(COLORS.sample, COLORS.noise, share);
    const bg = f.phase === "reverse" && this.data ? [{ pts: this.data, color: COLORS.data, alpha: 0.1, r: 2 }] : [];
    drawPanel($("pg-canvas"), f.panel, { color, alpha: 0.7, r: 2.4, background: bg, labels: this.labels });
    const snr = f.snr === null ? (f.k === 0 ? "+∞ dB" : "−∞ dB") : fmtDb(f.snr);
    const what = f.phase === "forward" ? "forward: adding noise" : "reverse: the model removes noise";
    $("pg-counter").textContent = `step ${this.idx} / ${n - 1} · ${what} · t = ${(f.k / this.T).toFixed(3)}${Number.isInteger(f.k) ? ` (k = ${f.k} of ${this.T})` : ""} · SNR ${snr}`;
    $("pg-progress").style.width = ((100 * this.idx) / (n - 1)).toFixed(1) + "%";
    const clampDb = (v, k) => (v === null ? (k === 0 ? 40 : -40) : Math.max(-40, Math.min(40, v)));
    const fwd = this.frames.filter((g) => g.phase === "forward").length;
    const xs = this.frames.map((_, j) => j);
    const ys = this.frames.map((g) => clampDb(g.snr, g.k));
    lineChart($("pg-snr"), [
      { xs: xs.slice(0, fwd), ys: ys.slice(0, fwd), color: COLORS.noise, label: "forward (noising)" },
      { xs: xs.slice(fwd - 1), ys: [ys[fwd - 1]].concat(ys.slice(fwd)), color: COLORS.sample, label: "reverse (model)" },
    ], { xMin: 0, xMax: n - 1, yMin: -40, yMax: 40, marker: this.idx, xLabel: "animation step", yLabel: "SNR (dB)", legendLeft: true, legendBottom: true,
      dots: [{ x: this.idx, y: ys[this.idx], color: COLORS.ink }] });
    if (this.kind === "image") {
      $("pg-caption").textContent = f.phase === "forward"
        ? (this.latent ? "training images blended with the decoded starting noise (this latent run adds its noise to latents, which the reverse frames show decoded)" : "training images turning into noise")
        : "the model turns that noise into new images" + (this.labels ? " of the same classes" : "");
    } else {
      $("pg-caption").innerHTML = f.phase === "forward"
        ? `<span style="color:${COLORS.data}">■ data</span> turning into <span style="color:${COLORS.noise}">■ noise</span>`
        : `<span style="color:${COLORS.noise}">■ noise</span> turning into <span style="color:${COLORS.sample}">■ generated samples</span> (faint blue: training data)`;
    }
  },
  toggle() {
    if (this.playing) { this.stop(); return; }
    if (!this.frames.length) { this.load().then(() => this.frames.length && this.toggle()); return; }
    const n = this.frames.length;
    if (this.dir > 0 && this.idx >= n - 1) this.idx = 0;
    if (this.dir < 0 && this.idx <= 0) this.idx = n - 1;
    this.playing = true;
    $("pg-play").textContent = "❚❚ Pause";
    const step = () => {
      if (!this.playing) return;
      const next = this.idx + this.dir;
      if (next < 0 || next >= this.frames.length) { this.stop(); return; }
      this.show(next);
      this.timer = setTimeout(step, 90 / +$("pg-speed").value);
    };
    this.timer = setTimeout(step, 90);
  },
  stop() { this.playing = false; clearTimeout(this.timer); $("pg-play").textContent = "▶ Play"; },
};
