/* 3. Reverse: one sampler run of a trained model, every step's x_t, predicted noise, predicted
 * x0 and next sample on a timeline.  With no trained run on the machine it waits for the default
 * model (runs.js: DefaultRun), whose training progress shows in this view's notice. */

import { $, api, showError, state } from "./api.js";
import { fieldError, fieldValue, fillSelect, fmtDb } from "./controls.js";
import { BOX, COLORS, drawPanel, lineChart } from "./plot.js";
import { DefaultRun } from "./runs.js";
import { stepNote, zoomExtent } from "./reverse-notes.js";
import { Guidance } from "./reverse-guidance.js";
import { Prompt } from "./reverse-prompt.js";
import { Smc } from "./reverse-smc.js";
import { JumpView } from "./reverse-jumps.js";
import { drawGridTimeline, gridChoices, gridRequest } from "./timeline.js";

export const Reverse = {
  frame: 0,
  init() {
    fillSelect($("rev-sampler"), state.info.samplers, "dpm++2m");
    fillSelect($("rev-grid"), gridChoices(state.info.spacings, null), "");
    $("rev-run").addEventListener("change", () => this.selectRun($("rev-run").value));
    $("rev-go").addEventListener("click", () => this.run());
    $("rev-timeline").addEventListener("input", () => this.show(+$("rev-timeline").value));
    $("rev-play").addEventListener("click", () => this.toggle());
    DefaultRun.selectors.push((name) => this.selectRun(name));
    DefaultRun.readyListeners.push(() => { if (state.view === "reverse") this.run(); });
    Guidance.init();
    Prompt.init();
  },
  shown() { DefaultRun.ensure().then((ok) => { if (ok && !state.rev.result) this.run(); }); },
  async selectRun(name) {
    if (!name) return;
    try {
      const detail = await api(`/api/runs/${encodeURIComponent(name)}`);
      const prev = state.rev.detail;
      state.rev.detail = detail;
      if ($("pg-run").value !== name && [...$("pg-run").options].some((o) => o.value === name)) $("pg-run").value = name;
      // The same run again (back from another view): keep the sampler, steps, class and guidance chosen.
      if (prev && prev.name === name) { showError("rev-error", null); return; }
      this.setKind(detail.kind, prev ? prev.kind : "points");
      Prompt.onRun(detail);
      Guidance.onRun(detail);
      JumpView.onRun(detail);
      // A run trained to jump also offers its own jump sampler (the others are refused it: runs/plan.py).
      fillSelect($("rev-sampler"), (detail.jump_sampler ? [detail.jump_sampler] : []).concat(state.info.samplers), $("rev-sampler").value);
      if (detail.sample) {
        $("rev-sampler").value = detail.sample.sampler;
        $("rev-steps").value = Math.min(250, detail.sample.steps);
      }
      fillSelect($("rev-grid"), gridChoices(state.info.spacings, detail), "");
      if (detail.num_classes > 0) {
        fillSelect($("rev-label"), [{ value: "", label: "all classes (mixed)" }].concat(detail.class_names.map((c, i) => ({ value: String(i), label: c }))));
        if (detail.sample && detail.sample.guidance !== undefined) $("rev-guidance").value = detail.sample.guidance;
      }
      showError("rev-error", null);
    } catch (err) { showError("rev-error", err); }
  },
  /** Points or images: the count control, its bounds and the captions follow the run's kind. */
  setKind(kind, before) {
    const image = kind === "image", n = $("rev-n"), caps = state.info.caps;
    $("rev-n-label").textContent = image ? "Images" : "Points";
    n.min = image ? 1 : 10;
    n.max = image ? caps.sample_images : caps.frame_points;
    if (kind !== before) n.value = image ? 16 : 600;
    $("rev-image-note").hidden = !image;
    this.captions(kind);
  },
  captions(kind) {
    const image = kind === "image";
    $("rev-x0-caption").innerHTML = image ? "the network's predicted clean x̂<sub>0</sub>" : "the network's x̂<sub>0</sub> (blue: data; dashed: clamp box)";
    $("rev-final-caption").innerHTML = image ? "final samples x<sub>0</sub> (the class of each under it)" : "final samples (orange) over the training data (blue)";
  },
  async run() {
    const name = $("rev-run").value;
    if (!name) { await DefaultRun.ensure(); return; }
    if (!state.rev.detail || state.rev.detail.name !== name) await this.selectRun(name);
    const detail = state.rev.detail;
    const steps = fieldValue("rev-steps"), n = fieldValue("rev-n"), seed = fieldValue("rev-seed");
    const guide = detail ? Guidance.block(detail) : null;
    // Classes and classifier-free guidance, unless classifier guidance chooses the class (the Class and Guidance boxes are hidden then).
    const classes = detail && detail.num_classes > 0 && !(guide && guide.classifier);
    const guidance = classes ? fieldValue("rev-guidance") : 0;
    if (steps === null || n === null || seed === null || guidance === null || guide === undefined) return; // said beside the field
    const body = { sampler: $("rev-sampler").value, steps, n, seed, frames: true, ...gridRequest($("rev-grid").value) };
    const prompted = Prompt.request(detail); // a text run's prompt and its guidance (undefined: said beside the field)
    if (prompted === undefined) return;
    Object.assign(body, prompted);
    if (classes) {
      if ($("rev-label").value !== "") body.label = detail.class_names[+$("rev-label").value]; // by name
      body.guidance = guidance;
    }
    if (guide) body.gradient_guidance = guide;
    $("rev-go").disabled = true;
    $("rev-status").textContent = "running the reverse process…";
    const asked = performance.now(), token = (this.token = (this.token || 0) + 1);
    try {
      const res = await api(`/api/runs/${encodeURIComponent(name)}/sample`, body);
      if (token !== this.token) return; // a newer run was asked for meanwhile: its answer wins
      state.rev.result = res;
      const tl = $("rev-timeline");
      tl.max = res.frames.length - 1;
      tl.disabled = false;
      const ticks = $("rev-ticks");
      ticks.innerHTML = "";
      res.frames.forEach((f, i) => {
        const span = document.createElement("span");
        span.title = `step ${i + 1}: t ${f.t} → ${f.t_next}`;
        span.addEventListener("click", () => this.show(i));
        ticks.appendChild(span);
      });
      $("rev-panels").dataset.frames = res.frames.length;
      Guidance.prepare(res);
      Prompt.prepare(res);
      this.captions(res.kind);
      Smc.prepare(res); // twisted SMC's own captions over these
      // A latent run: x_t, x̂0 and the next sample arrive decoded; the noise stays the latent's own numbers.
      if (res.latent) $("rev-eps-caption").textContent = `the predicted latent noise ε̂ (${res.latent.shape.join(" × ")}; channels side by side)`;
      $("rev-model-note").textContent = res.explanation;
      const what = res.kind === "image" ? `${res.n} images` : `${res.n} points`;
      showError("rev-error", null);
      this.show(0);
      // The wait the learner had (request, sampling, reply, decoding, drawing), and the sampling part of it.
      // What was sampled in the server's own words (the command line's and the figures' too).
      JumpView.load(name, detail, seed); // a run trained to jump: its jumps from the same seed, below
      const waited = (performance.now() - asked) / 1000;
      $("rev-status").textContent = `${res.description}; ${what}, seed ${res.seed}: ready in ${waited.toFixed(2)} s ` +
        `(sampling ${res.seconds.toFixed(2)} s on the server; the rest is sending ${res.frames.length} steps × 4 panels and drawing). Scrub the timeline or press Play.`;
    } catch (err) {
      if (!fieldError("rev", err)) showError("rev-error", err);
      $("rev-status").textContent = "";
    } finally { $("rev-go").disabled = false; }
  },
  show(i) {
    const res = state.rev.result;
    if (!res) return;
    i = Math.max(0, Math.min(res.frames.length - 1, i));
    this.frame = i;
    $("rev-timeline").value = i;
    const f = res.frames[i];
    const detail = state.rev.detail;
    const bg = detail && detail.data_preview && detail.data_preview.kind === "points" ? [{ pts: detail.data_preview.points, color: COLORS.data, alpha: 0.12, r: 2 }] : [];
    const sizes = Smc.sizes(res, i); // twisted SMC: every particle, size by weight
    drawPanel($("rev-xt"), f.x_t, { color: COLORS.sample, alpha: sizes ? 0.45 : 0.6, sizes });
    // What the network predicts (before the sampler's clamp, where it clamped), and the clamp's box.
    const x0 = f.x0_net || f.x0, eps = f.eps_net || f.eps;
    drawPanel($("rev-eps"), eps, { color: COLORS.noise, alpha: 0.6 });
    Guidance.draw(res, f);
    Prompt.draw(res, f);
    const extent = zoomExtent(x0);
    drawPanel($("rev-x0"), x0, { color: COLORS.estimate, alpha: sizes ? 0.45 : 0.6, background: bg, box: res.kind === "points" ? res.clip_x0 : null,
      extent, label: extent > BOX ? `zoomed out: ±${extent}` : undefined, sizes });
    $("rev-step-note").textContent = `Step ${i + 1}: ` + stepNote(res, f, x0, detail && detail.data_preview, extent) + Smc.stepText(res, i);
    drawPanel($("rev-next"), f.x_next, { color: COLORS.sample, alpha: 0.65, background: bg });
    const last = res.frames[res.frames.length - 1];
    drawPanel($("rev-final"), last.x_next, { color: COLORS.sample, alpha: res.smc ? 0.5 : 0.7, background: bg, labels: res.kind === "image" ? res.labels : undefined,
      sizes: Smc.finalSizes(res), ...Smc.finalOverlay(res, last.x_next) });
    Smc.draw(res, i);
    const clampDb = (v) => (v === null ? 40 : Math.max(-40, Math.min(40, v)));
    const xs = res.frames.map((_, j) => j + 1);
    lineChart($("rev-snr"), [
      { xs: [0].concat(xs), ys: [clampDb(res.frames[0].snr_db)].concat(res.frames.map((g) => clampDb(g.snr_db_next))), color: COLORS.sample, label: "SNR of the sample" },
    ], {
      xMin: 0, xMax: res.frames.length, yMin: -40, yMax: 40, marker: i, xLabel: "sampler step", yLabel: "SNR (dB)", legendLeft: true,
      dots: [{ x: i, y: clampDb(f.snr_db), color: COLORS.ink }, { x: i + 1, y: clampDb(f.snr_db_next), color: COLORS.sample }],
    });
    const snr = f.snr_db === null ? "+∞ dB" : fmtDb(f.snr_db);
    $("rev-steplabel").textContent = `step ${i + 1} / ${res.frames.length} · k ${f.k} → ${f.k_next} · t = ${f.t.toFixed(3)} · SNR ${snr}`;
    [...$("rev-ticks").children].forEach((s, j) => { s.className = j < i ? "done" : j === i ? "current" : ""; });
    drawGridTimeline($("rev-gridline"), $("rev-gridline-caption"), res, i, (j) => this.show(j));
  },
  toggle() {
    if (this.playing) { this.stop(); return; }
    const res = state.rev.result;
    if (!res) return;
    if (this.frame >= res.frames.length - 1) this.show(0);
    this.playing = true;
    $("rev-play").textContent = "❚❚ Pause";
    const step = () => {
      if (!this.playing) return;
      if (this.frame >= state.rev.result.frames.length - 1) { this.stop(); return; }
      this.show(this.frame + 1);
      this.timer = setTimeout(step, Math.max(60, 2400 / state.rev.result.frames.length));
    };
    this.timer = setTimeout(step, 150);
  },
  stop() { this.playing = false; clearTimeout(this.timer); $("rev-play").textContent = "▶ Play"; },
};
