/* 1. Forward: one data set noised by one schedule.  The server sends x0, one noise draw eps and
 * the schedule's alpha_k, sigma_k once; the slider combines them for each k exactly as q_sample
 * does: x_k = alpha_k x0 + sigma_k eps. */

import { $, api, showError, state } from "./api.js";
import { fieldValue, fillDataSelect, fillSelect, sharePct as pct, snrText } from "./controls.js";
import { combine, signalShare } from "./noising.js";
import { COLORS, SCHEDULE_COLORS, drawPanel, lineChart, mixColor } from "./plot.js";


export const Forward = {
  token: 0,
  init() {
    fillDataSelect($("fwd-data"), state.info, "spiral");
    fillSelect($("fwd-schedule"), state.info.schedules, "linear");
    for (const id of ["fwd-data", "fwd-schedule", "fwd-T", "fwd-seed"]) $(id).addEventListener("change", () => this.load());
    $("fwd-t").addEventListener("input", () => this.render());
    $("fwd-play").addEventListener("click", () => this.toggle());
    return this.load();
  },
  async load() {
    const token = ++this.token;
    const T = +$("fwd-T").value;
    const slider = $("fwd-t");
    const frac = +slider.value / (+slider.max || 1);
    try {
      const seed = fieldValue("fwd-seed");
      if (seed === null) return; // said beside the field
      const body = { data: $("fwd-data").value, schedule: $("fwd-schedule").value, T, seed, n: 1000, images: 4, size: 16 };
      const res = await api("/api/forward", body);
      if (token !== this.token) return;
      state.fwd = res;
      slider.max = T;
      slider.value = Math.round(frac * T);
      showError("fwd-error", null);
      this.render();
    } catch (err) { showError("fwd-error", err); }
  },
  render() {
    const d = state.fwd;
    if (!d.schedule) return;
    const sch = d.schedule, T = sch.T;
    const k = Math.min(T, +$("fwd-t").value);
    const a = sch.alphas[k], s = sch.sigmas[k];
    const share = signalShare(a, s);
    const xt = combine(d.x0, d.eps, a, s);
    $("fwd-snr").textContent = snrText(sch.snr_db[k], k, T, a);
    $("fwd-signal").textContent = pct(share);
    $("fwd-noise").textContent = pct(1 - share);
    $("fwd-mix").style.width = (100 * share).toFixed(1) + "%";
    $("fwd-tlabel").textContent = `k = ${k} of T = ${T}  (t = ${(k / T).toFixed(3)})`;
    $("fwd-equation").innerHTML = `x<sub>t</sub> = <b style="color:${COLORS.data}">${a.toFixed(3)}</b>·x<sub>0</sub> + <b style="color:${COLORS.noise}">${s.toFixed(3)}</b>·ε`;
    $("fwd-caption").innerHTML = `x<sub>t</sub> at t = ${(k / T).toFixed(3)}: ${d.kind === "image" ? "images, pixels from −1 (black) to 1 (white)" : "points in normalised units"}`;
    const labels = d.labels || null;
    const color = mixColor(COLORS.data, COLORS.noise, share);
    drawPanel($("fwd-canvas"), xt, { color, labels, alpha: 0.7, r: 2.2 });
    drawPanel($("fwd-x0"), d.x0, { color: COLORS.data, labels, alpha: 0.6 });
    drawPanel($("fwd-eps"), d.eps, { color: COLORS.noise, alpha: 0.6 });
    const xs = sch.snr_db.map((_, i) => i / T);
    lineChart($("fwd-snrplot"), [{ xs, ys: sch.snr_db, color: SCHEDULE_COLORS[sch.name] || COLORS.ink }], {
      xMin: 0, xMax: 1, yMin: -40, yMax: 40, marker: k / T, xLabel: "t", yTicks: 4, xTicks: 2,
      dots: [{ x: k / T, y: sch.snr_db[k] === null ? (k === 0 ? 40 : -40) : sch.snr_db[k], color: COLORS.ink }],
    });
  },
  toggle() {
    if (this.playing) { this.stop(); return; }
    const slider = $("fwd-t");
    if (+slider.value >= +slider.max) slider.value = 0;
    this.playing = true;
    $("fwd-play").textContent = "❚❚ Pause";
    const start = performance.now(), k0 = +slider.value, T = +slider.max, dur = 5000 * (1 - k0 / T) + 200;
    const tick = (now) => {
      if (!this.playing) return;
      const k = Math.min(T, Math.round(k0 + ((now - start) / dur) * (T - k0)));
      slider.value = k;
      this.render();
      if (k >= T) { this.stop(); return; }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  },
  stop() { this.playing = false; $("fwd-play").textContent = "▶ Play"; },
};
