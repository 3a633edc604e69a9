/* 2. Schedules: every schedule at one T side by side: alpha-bar and SNR curves, a table at the
 * chosen t, and the same clean sample noised under each. */

import { $, api, showError, state } from "./api.js";
import { fillDataSelect, fmtDb, sharePct, snrText } from "./controls.js";
import { combine, signalShare } from "./noising.js";
import { COLORS, SCHEDULE_COLORS, drawPanel, lineChart, mixColor } from "./plot.js";

const NOISE_FLOOR_DB = -20;

function fmtAb(v) {
  if (v === 0) return "0";
  return v >= 0.01 ? v.toFixed(3) : v.toExponential(1);
}

export const Schedules = {
  token: 0,
  init() {
    fillDataSelect($("sch-data"), state.info, state.info.image_sets.includes("patterns:checkerboard") ? "patterns:checkerboard" : "spiral");
    for (const id of ["sch-T", "sch-data"]) $(id).addEventListener("change", () => this.load());
    $("sch-t").addEventListener("input", () => this.render());
    return this.load();
  },
  shown() { this.render(); },
  async load() {
    const token = ++this.token;
    const T = +$("sch-T").value;
    try {
      const [curves, sample] = await Promise.all([
        api(`/api/schedules?T=${T}`),
        api("/api/forward", { data: $("sch-data").value, T, seed: 0, n: 600, images: 1, size: 16 }),
      ]);
      if (token !== this.token) return;
      state.sch = { curves, sample };
      showError("sch-error", null);
      this.buildRow();
      this.render();
    } catch (err) { showError("sch-error", err); }
  },
  buildRow() {
    const row = $("sch-row");
    row.innerHTML = `<figure><canvas width="134" height="134" data-schedule="clean"></canvas><figcaption>clean x<sub>0</sub> (t = 0)</figcaption></figure>`;
    const sample = state.sch.sample;
    drawPanel(row.querySelector("canvas"), sample.x0, { color: COLORS.data, alpha: 0.7, max: 1, cols: 1 });
    for (const s of state.sch.curves.schedules) {
      const fig = document.createElement("figure");
      fig.innerHTML = `<canvas width="134" height="134" data-schedule="${s.name}"></canvas><figcaption></figcaption>`;
      row.appendChild(fig);
    }
  },
  render() {
    const { curves, sample } = state.sch;
    if (!curves) return;
    const T = curves.T;
    const t = +$("sch-t").value, k = Math.round(t * T);
    $("sch-tlabel").textContent = `t = ${t.toFixed(3)}  (k = ${k} of ${T})`;
    const xs = curves.schedules[0].alpha_bars.map((_, i) => i / T);
    const series = (key) => curves.schedules.map((s) => ({ xs, ys: s[key], color: SCHEDULE_COLORS[s.name], label: s.name }));
    lineChart($("sch-alphabar"), series("alpha_bars"), {
      xMin: 0, xMax: 1, yMin: 0, yMax: 1, marker: t, xLabel: "t = k / T", yLabel: "ᾱ = α²",
      dots: curves.schedules.map((s) => ({ x: t, y: s.alpha_bars[k], color: SCHEDULE_COLORS[s.name] })),
    });
    lineChart($("sch-snr"), series("snr_db"), {
      xMin: 0, xMax: 1, yMin: -50, yMax: 50, marker: t, xLabel: "t = k / T", yLabel: "SNR (dB)",
      hlines: [{ y: NOISE_FLOOR_DB, color: "#444" }],
      dots: curves.schedules.map((s) => ({ x: t, y: s.snr_db[k], color: SCHEDULE_COLORS[s.name] })),
    });
    const body = $("sch-table").querySelector("tbody");
    body.innerHTML = "";
    for (const s of curves.schedules) {
      const tr = document.createElement("tr");
      tr.dataset.schedule = s.name;
      const endDb = s.terminal_snr_db === null ? "−∞ dB" : fmtDb(s.terminal_snr_db);
      const ok = s.terminal_snr_db === null || s.terminal_snr_db <= NOISE_FLOOR_DB;
      tr.innerHTML = `<td><span class="swatch" style="background:${SCHEDULE_COLORS[s.name]}"></span>${s.name}</td>` +
        `<td>${fmtAb(s.alpha_bars[k])}</td><td>${sharePct(signalShare(s.alphas[k], s.sigmas[k]))}</td><td>${snrText(s.snr_db[k], k, T, s.alphas[k])}</td>` +
        `<td>${fmtAb(s.terminal_alpha_bar)}</td><td title="${ok ? "ends in noise" : "x_T still carries data"}">${endDb} ${ok ? "✓" : "⚠"}</td>`;
      body.appendChild(tr);
    }
    for (const s of curves.schedules) {
      const canvas = $("sch-row").querySelector(`canvas[data-schedule="${s.name}"]`);
      if (!canvas) continue;
      const a = s.alphas[k], sg = s.sigmas[k], share = signalShare(a, sg);
      drawPanel(canvas, combine(sample.x0, sample.eps, a, sg), { color: mixColor(COLORS.data, COLORS.noise, share), alpha: 0.7, max: 1, cols: 1 });
      canvas.nextElementSibling.innerHTML = `<span class="swatch" style="background:${SCHEDULE_COLORS[s.name]}"></span>${s.name}: ${snrText(s.snr_db[k], k, T, a)}`;
    }
  },
};
