/* 5. Train: start a training job from the page, watch its loss live, cancel it; the table of
 * every run on the machine. */

import { $, api, showError, state } from "./api.js";
import { escapeHtml, fieldError, fieldValue, fillSelect } from "./controls.js";
import { lineChart } from "./plot.js";
import { Jobs, Runs } from "./runs.js";
import { showView } from "./tabs.js";
import { Reverse } from "./view-reverse.js";

export const Train = {
  init() {
    const sel = $("tr-data");
    fillSelect(sel, state.info.train.data, "spiral");
    const g = document.createElement("optgroup");
    g.label = "class-conditional (one class per set)";
    for (const combo of [["spiral", "circle"], ["moons", "eight-gaussians", "circle"]]) {
      if (!combo.every((c) => state.info.train.data.includes(c))) continue;
      const o = document.createElement("option");
      o.value = "classes:" + combo.join(",");
      o.textContent = combo.join(" + ");
      g.appendChild(o);
    }
    if (g.children.length) sel.appendChild(g);
    const images = state.info.train.image_data || [];
    if (images.length) {
      const gi = document.createElement("optgroup");
      gi.label = "images: a quick demo (small U-Net)";
      for (const name of images) {
        const o = document.createElement("option");
        o.value = name;
        o.textContent = name === "patterns" ? "pattern images, 16 × 16, 4 classes" : name;
        gi.appendChild(o);
      }
      sel.appendChild(gi);
    }
    fillSelect($("tr-schedule"), state.info.train_schedules, "linear");
    $("tr-steps").value = state.info.train.default_steps;
    $("tr-steps").max = state.info.caps.train_steps;
    $("tr-image-steps").textContent = state.info.train.image_default_steps;
    this.kind = "points";
    sel.addEventListener("change", () => this.onData());
    $("tr-start").addEventListener("click", () => this.start());
    $("tr-cancel").addEventListener("click", () => this.cancel());
    Jobs.listeners.push((job, losses) => this.onJob(job, losses));
    Runs.listeners.push(() => this.renderRuns());
    this.drawLoss([]);
  },
  shown() {
    Runs.refresh();
    if (!Jobs.current || !Jobs.current.active) Jobs.attach(); // a job started from another tab
  },
  /** The image demo has its own step default and cap, and says what it is. */
  onData() {
    const t = state.info.train, image = (t.image_data || []).includes($("tr-data").value);
    const kind = image ? "image" : "points";
    $("tr-image-note").hidden = !image;
    if (kind === this.kind) return;
    this.kind = kind;
    $("tr-steps").value = image ? t.image_default_steps : t.default_steps;
    $("tr-steps").max = image ? t.image_max_steps : state.info.caps.train_steps;
  },
  async start() {
    const choice = $("tr-data").value;
    const steps = fieldValue("tr-steps"), seed = fieldValue("tr-seed");
    if (steps === null || seed === null) return; // said beside the field
    const body = { data: choice.startsWith("classes:") ? "spiral" : choice, steps, schedule: $("tr-schedule").value, seed };
    if (choice.startsWith("classes:")) body.classes = choice.slice(8).split(",");
    const name = $("tr-name").value.trim();
    if (name) body.name = name;
    try {
      const job = await api("/api/jobs", body);
      showError("tr-error", null);
      Jobs.watch(job);
      Runs.refresh();
    } catch (err) { if (!fieldError("tr", err)) showError("tr-error", err); }
  },
  async cancel() {
    const j = Jobs.current;
    if (!j) return;
    try { Jobs.watch(await api(`/api/jobs/${j.id}/cancel`, {})); } catch (err) { showError("tr-error", err); }
  },
  onJob(job, losses) {
    if (!job) return;
    const running = job.active && job.status !== "finishing";
    $("tr-cancel").disabled = !running || job.cancel_requested;
    $("tr-start").disabled = job.active;
    $("tr-progress").style.width = (100 * job.progress).toFixed(1) + "%";
    // The rate is the training process's own (optimiser steps over the time spent in them), so it
    // does not fall while metrics and figures are drawn; what follows training is said as such.
    const rate = job.steps_per_s ? ` · ${job.steps_per_s} steps/s` : "";
    const eta = job.eta_s !== null && job.eta_s !== undefined ? ` · training ends in about ${Math.ceil(job.eta_s)} s` : "";
    const usable = job.usable_after_s ? ` · usable after ${job.usable_after_s.toFixed(1)} s` : "";
    const finishing = job.status === "finishing" && job.finishing_s !== null && job.finishing_s !== undefined
      ? ` · the model is usable now; computing metrics and figures for ${job.finishing_s.toFixed(0)} s so far` : "";
    let text = `${job.run}: ${job.status} · step ${job.step} / ${job.steps}${rate}${eta}${usable}${finishing}`;
    if (job.status === "failed") text += ` · ${job.error}`;
    else if (job.message && !job.active) text += ` · ${job.message}`;
    $("tr-status").textContent = text;
    $("tr-status").dataset.status = job.status;
    this.drawLoss(losses);
    const row = document.querySelector(`#tr-runs tr[data-run="${CSS.escape(job.run)}"]`);
    if (row && job.active) row.children[3].textContent = `${job.step} / ${job.steps}`;
  },
  drawLoss(losses) {
    const n = losses.length;
    const xs = [], raw = [], smooth = [];
    const stride = Math.max(1, Math.floor(n / 1500));
    let ema = null;
    for (let i = 0; i < n; i++) {
      ema = ema === null ? losses[i] : 0.98 * ema + 0.02 * losses[i];
      if (i % stride === 0 || i === n - 1) { xs.push(i + 1); raw.push(losses[i]); smooth.push(ema); }
    }
    const sorted = raw.slice().sort((a, b) => a - b);
    const top = n ? sorted[Math.floor(0.99 * (sorted.length - 1))] : 1;
    const steps = Jobs.current ? Jobs.current.steps : 1000;
    lineChart($("tr-loss"), [
      { xs, ys: raw, color: "#9ec5e6", width: 1, alpha: 0.8, label: "loss of each step" },
      { xs, ys: smooth, color: "#0b3d91", width: 2.5, label: "moving average" },
    ], { xMin: 0, xMax: Math.max(steps, n, 1), yMin: 0, yMax: Math.max(top * 1.05, 1e-3), xLabel: "optimiser step", yLabel: "loss ‖ε − ε̂‖²" });
  },
  renderRuns() {
    const body = $("tr-runs").querySelector("tbody");
    body.innerHTML = "";
    if (!state.runs.length) {
      body.innerHTML = `<tr><td colspan="6">No runs yet. Train one above, or with <code>denoiselab train</code>.</td></tr>`;
      return;
    }
    for (const r of state.runs) {
      const tr = document.createElement("tr");
      tr.dataset.run = r.name;
      const sched = r.schedule ? `${r.schedule.kind}, T = ${r.schedule.T}` : "";
      const live = Jobs.current && Jobs.current.active && Jobs.current.run === r.name ? Jobs.current : null;
      const status = live ? `training (${live.status})` : r.busy ? "training" : r.status;
      const step = live ? live.step : r.step ?? "";
      tr.innerHTML = `<td>${escapeHtml(r.name)}</td><td>${escapeHtml(r.data || "")}</td><td>${escapeHtml(status)}</td><td>${escapeHtml(step)} / ${escapeHtml(r.steps ?? "")}</td><td>${escapeHtml(sched)}</td><td></td>`;
      const btn = document.createElement("button");
      btn.textContent = "Open";
      btn.disabled = !r.usable;
      btn.title = r.error || (r.usable ? "open in the Reverse view" : "not usable yet");
      btn.addEventListener("click", async () => {
        showView("reverse");
        $("rev-run").value = r.name;
        await Reverse.selectRun(r.name);
        Reverse.run();
      });
      tr.lastChild.appendChild(btn);
      body.appendChild(tr);
    }
  },
};
