/* The Reverse view's gradient guidance (the sample request's gradient_guidance block): steer an
 * unconditional model towards a class by the run's classifier, complete one of the run's
 * held-out images where a box drawn on it says unknown, or fix a coordinate of a point run
 * (DPS, replacement, universal guidance or twisted SMC with K particles: reverse-smc.js draws
 * its population); and the panel of the guidance term, eps_guided - eps_unguided, beside the
 * predicted noise. */

import { $, state } from "./api.js";
import { fieldValue, fillSelect } from "./controls.js";
import { BOX, COLORS, drawPanel } from "./plot.js";

const MASK_SIDE = 150; // the inpainting canvas, in CSS pixels

export const Guidance = {
  box: null, // the unknown box [x0, y0, x1, y1] in image pixels
  init() {
    $("rev-guide").addEventListener("change", () => this.showControls());
    $("rev-guide-observe-method").addEventListener("change", () => this.showControls());
    $("rev-guide-region-method").addEventListener("change", () => this.showControls());
    $("rev-guide-particles").addEventListener("change", () => this.fitParticles());
    $("rev-guide-image").addEventListener("change", () => this.drawMask());
    $("rev-guide-left").addEventListener("click", () => this.half("left"));
    $("rev-guide-top").addEventListener("click", () => this.half("top"));
    const c = $("rev-guide-mask");
    const at = (ev) => { // the mouse in image pixels, on the grid's corners
      const r = c.getBoundingClientRect(), [H, W] = this.size(), { ox, oy, cell } = this.cell();
      const clamp = (v, hi) => Math.max(0, Math.min(hi, Math.round(v)));
      return [clamp(((ev.clientX - r.left - ox) / cell) * W, W), clamp(((ev.clientY - r.top - oy) / cell) * H, H)];
    };
    c.addEventListener("mousedown", (ev) => { this.drag = at(ev); });
    c.addEventListener("mousemove", (ev) => { if (this.drag) { this.setBox(this.drag, at(ev)); } });
    window.addEventListener("mouseup", (ev) => { if (this.drag) { this.setBox(this.drag, at(ev)); this.drag = null; } });
  },
  /** A run was chosen: offer what it can do (classifier only with one; inpainting on image runs). */
  onRun(detail) {
    const opts = [{ value: "none", label: "none" }];
    if (detail.has_classifier) opts.push({ value: "classifier", label: "classifier (towards a class)" });
    else if (detail.num_classes > 0) opts.push({ value: "classifier", label: "classifier (none trained: denoiselab train-classifier)", disabled: true });
    if (detail.kind === "image" && detail.held_out_preview) opts.push({ value: "inpaint", label: "inpaint a held-out image" });
    if (detail.kind === "points") {
      opts.push({ value: "observe", label: "observe a coordinate (sample the other)" });
      opts.push({ value: "region", label: "keep inside a region" });
    }
    // A latent run: the guides work on pixels while its sampler steps in the latent space (the server refuses them).
    if (detail.latent_shape) opts.splice(1, opts.length, { value: "latent", label: "none available for a latent run", disabled: true });
    const before = $("rev-guide").value;
    fillSelect($("rev-guide"), opts, before);
    if (detail.num_classes > 0) fillSelect($("rev-guide-label"), detail.class_names.map((c, i) => ({ value: String(i), label: c })));
    if (detail.held_out_preview) {
      $("rev-guide-image").max = detail.held_out_preview.shape[0] - 1;
      this.preview = detail.held_out_preview;
      const [H, W] = this.size();
      if (!this.box || this.box[2] > W || this.box[3] > H) this.box = [W / 2, 0, W, H]; // the right half unknown
    } else this.preview = null;
    this.showControls();
  },
  /** Where drawPanel put the one image: a square cell centred with a gap of 6 around it. */
  cell() {
    const side = MASK_SIDE, cell = Math.floor(side - 12);
    return { ox: (side - cell) / 2, oy: (side - cell) / 2, cell };
  },
  size() { return this.preview ? this.preview.shape.slice(2) : [1, 1]; },
  kind() { return $("rev-guide").value || "none"; },
  showControls() {
    const kind = this.kind();
    for (const el of document.querySelectorAll("#view-reverse .guide-classifier")) el.hidden = kind !== "classifier";
    for (const el of document.querySelectorAll("#view-reverse .guide-inpaint")) el.hidden = kind !== "inpaint";
    for (const el of document.querySelectorAll("#view-reverse .guide-observe")) el.hidden = kind !== "observe";
    for (const el of document.querySelectorAll("#view-reverse .guide-region")) el.hidden = kind !== "region";
    const smc = this.smc();
    for (const el of document.querySelectorAll("#view-reverse .guide-smc")) el.hidden = !smc;
    if (smc && !this.wasSmc) {
      // Twisted SMC weights particles by the densities of ancestral DDPM steps, on 4x the run's
      // steps as the command line takes them (runs/guided_smc.py, STEP_FACTOR).
      $("rev-sampler").value = "ddpm";
      const detail = state.rev.detail;
      if (detail && detail.sample) $("rev-steps").value = Math.min(state.info.caps.steps, 4 * detail.sample.steps);
    }
    this.wasSmc = smc;
    this.fitParticles();
    if (kind === "inpaint") this.drawMask();
    // Classifier guidance steers the unconditional model towards the class chosen beside it: the
    // Class and (classifier-free) Guidance boxes do not apply then, so they are not shown.
    const detail = state.rev.detail, cond = !!detail && detail.num_classes > 0;
    for (const el of document.querySelectorAll("#view-reverse .cond")) el.hidden = !cond || kind === "classifier";
  },
  smc() {
    const kind = this.kind();
    return (kind === "observe" && $("rev-guide-observe-method").value === "smc") || (kind === "region" && $("rev-guide-region-method").value === "smc");
  },
  /** Every frame holds n x K particles, at most caps.frame_points: the Points box's bound follows K. */
  fitParticles() {
    const n = $("rev-n"), caps = state.info.caps, detail = state.rev.detail;
    if (!detail || detail.kind !== "points") return;
    const k = Math.max(1, Math.min(caps.particles, Math.round(+$("rev-guide-particles").value) || 1));
    n.max = this.smc() ? Math.max(1, Math.floor(caps.frame_points / k)) : caps.frame_points;
    n.min = Math.min(10, +n.max);
    if (+n.value > +n.max) n.value = Math.min(+n.max, 40);
  },
  half(which) {
    const [H, W] = this.size();
    this.box = which === "left" ? [Math.floor(W / 2), 0, W, H] : [0, Math.floor(H / 2), W, H]; // keep left / top: the rest unknown
    this.drawMask();
  },
  setBox(a, b) {
    const box = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
    if (box[2] > box[0] && box[3] > box[1]) { this.box = box; this.drawMask(); }
  },
  /** The chosen held-out image with the unknown box shaded red. */
  drawMask() {
    if (!this.preview) return;
    const c = $("rev-guide-mask"), [N, C, H, W] = this.preview.shape;
    const i = Math.max(0, Math.min(N - 1, +$("rev-guide-image").value || 0)), plane = C * H * W;
    const one = { kind: "image", shape: [1, C, H, W], data: this.preview.data.slice(i * plane, (i + 1) * plane) };
    drawPanel(c, one, {});
    const ctx = c.getContext("2d"), { ox, oy, cell } = this.cell();
    const [x0, y0, x1, y1] = this.box;
    ctx.fillStyle = "rgba(214, 39, 40, 0.45)";
    ctx.fillRect(ox + (x0 / W) * cell, oy + (y0 / H) * cell, ((x1 - x0) / W) * cell, ((y1 - y0) / H) * cell);
    $("rev-guide-box").textContent = `unknown: columns ${x0}–${x1 - 1}, rows ${y0}–${y1 - 1} (drag on the image to draw another box)`;
  },
  /** The request's gradient_guidance block; null for none, undefined when a field is wrong (said beside it). */
  block(detail) {
    const kind = this.kind();
    if (kind === "classifier") {
      const scale = fieldValue("rev-guide-scale");
      if (scale === null) return undefined;
      return { classifier: { label: detail.class_names[+$("rev-guide-label").value], scale } };
    }
    if (kind === "inpaint") {
      const image = fieldValue("rev-guide-image");
      if (image === null) return undefined;
      return { inpaint: { image, boxes: [this.box.map(Math.round)], method: $("rev-guide-method").value } };
    }
    if (kind === "observe") {
      const value = fieldValue("rev-guide-value"), method = $("rev-guide-observe-method").value;
      const particles = method === "smc" ? fieldValue("rev-guide-particles") : undefined;
      if (value === null || particles === null) return undefined;
      return { observe: { values: { [$("rev-guide-coord").value]: value }, method, ...(method === "smc" ? { particles } : {}) } };
    }
    if (kind === "region") {
      const method = $("rev-guide-region-method").value;
      const particles = method === "smc" ? fieldValue("rev-guide-particles") : undefined;
      if (particles === null) return undefined;
      return { region: { expression: $("rev-guide-region").value, method, ...(method === "smc" ? { particles } : {}) } };
    }
    return null;
  },
  /** One scale for the whole timeline, so the term of different steps can be compared. */
  prepare(res) {
    const g = res.gradient_guidance;
    const term = !!g && res.frames.some((f) => f.guidance_term); // twisted SMC steers by weights, with no term of its own
    $("rev-guide-fig").hidden = !term;
    $("rev-panels").classList.toggle("five", term);
    $("rev-eps-caption").textContent = term ? "the guided predicted noise ε̂ (network + guidance)" : "the network's predicted noise ε̂";
    if (!term) { $("rev-guide-counts").textContent = ""; return; } // nothing of an earlier guided run stays (SMC writes its own)
    // One gain for the whole timeline (so steps compare), from the 99th percentile of |term|:
    // a few extreme values saturate instead of turning the rest grey.
    const mags = [];
    for (const f of res.frames) {
      const p = f.guidance_term;
      if (!p) continue;
      if (p.kind === "image") for (const v of p.data) mags.push(Math.abs(v));
      else for (const q of p.points) mags.push(Math.max(Math.abs(q[0]), q.length > 1 ? Math.abs(q[1]) : 0));
    }
    mags.sort((a, b) => a - b);
    const typical = mags.length ? mags[Math.floor(0.99 * (mags.length - 1))] : 0;
    const full = res.kind === "image" ? 1 : 0.9 * BOX;
    this.gain = typical > 0 ? full / typical : 1;
    const known = res.kind === "image" ? "pixels" : "coordinates";
    const what = g.kind === "classifier"
      ? `−s σ_t ∇ log p(y = ${res.class_names ? res.class_names[g.label] : g.label} | x_t), s = ${g.scale}`
      : g.kind === "region" ? `loss guidance: the gradient of s × (how far x̂₀ lies outside ${g.region})², through the network, × σ_t`
      : g.method === "dps" ? `DPS: the gradient of ‖known − x̂₀‖²/2 on the known ${known}, through the network, × s σ_t`
        : g.method === "universal" ? `universal guidance: DPS on the known ${known} plus one backward step on x̂₀`
          : `replacement: the known ${known} re-noised before the network sees them, and pasted into x̂₀`;
    const extra = g.display_evaluations ? ` (+${g.display_evaluations} plain evaluations only to draw the guidance panel)` : "";
    const gain = Math.abs(this.gain - 1) < 1e-3 ? "" : ` drawn ×${+this.gain.toPrecision(2)}`;
    $("rev-guide-caption").textContent = `guidance term ε̂_guided − ε̂_unguided (noise space, × σ_t),${gain}`;
    $("rev-guide-counts").textContent = `Guidance term: ${what}. Cost: ${g.cost}${extra}.` +
      (g.paste_max_change !== undefined ? ` The known ${res.kind === "image" ? "pixels" : "values"} are pasted into the final samples (the largest change that made: ${+g.paste_max_change.toPrecision(2)}).` : "");
  },
  draw(res, f) {
    if (!res.gradient_guidance || !f.guidance_term) return;
    const p = f.guidance_term, k = this.gain;
    const scaled = p.kind === "image" ? { kind: "image", shape: p.shape, data: p.data.map((v) => v * k) } : { kind: "points", dim: p.dim, points: p.points.map((q) => q.map((v) => v * k)) };
    drawPanel($("rev-guide-term"), scaled, { color: COLORS.estimate, alpha: 0.6 });
  },
};
