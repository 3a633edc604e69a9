/* denoiselab playground: plain JavaScript, no build step, nothing loaded from the internet.
 *
 * Every number and picture comes from the server's JSON API (app.py), which runs denoiselab's
 * schedules, forward process, samplers and trained runs.  The forward and schedules views get
 * x0, one noise draw eps and the schedule's alpha_k, sigma_k once, and combine them for each
 * slider position exactly as q_sample does: x_k = alpha_k x0 + sigma_k eps.
 */
"use strict";

const COLORS = {
  data: "#1f77b4", sample: "#ff7f0e", noise: "#d62728", estimate: "#2ca02c",
  ink: "#1d2330", muted: "#5b6475", grid: "#eceef3", axis: "#b8bfcc",
};
const SCHEDULE_COLORS = { linear: "#1f77b4", cosine: "#ff7f0e", quadratic: "#2ca02c", sigmoid: "#9467bd", flow: "#8c564b" };
const BOX = 3.5; // point panels show [-BOX, BOX]^2 in normalised units
const NOISE_FLOOR_DB = -20;

const $ = (id) => document.getElementById(id);
const state = { info: null, runs: [], view: "forward", fwd: {}, sch: {}, rev: {}, pg: {}, tr: {} };
window.playground = state; // for the browser tests and the curious

// --- API --------------------------------------------------------------------------------------
async function api(path, body, method) {
  const init = { method: method || (body !== undefined ? "POST" : "GET"), headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const detail = data && data.detail !== undefined ? data.detail : res.statusText;
    const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    err.status = res.status;
    throw err;
  }
  return data;
}

function showError(id, err) {
  const el = $(id);
  if (el) el.textContent = err ? (err.message || String(err)) : "";
}

// --- formatting -----------------------------------------------------------------------------------
function fmtDb(v) {
  if (v === null || v === undefined) return "";
  return (v > 0 ? "+" : v < 0 ? "−" : "") + Math.abs(v).toFixed(1) + " dB";
}
function snrText(db, k, T, alpha) {
  if (db !== null && db !== undefined) return fmtDb(db);
  return k === 0 || alpha > 0 ? "+∞ dB" : "−∞ dB";
}
function fmtAb(v) {
  if (v === 0) return "0";
  return v >= 0.01 ? v.toFixed(3) : v.toExponential(1);
}
function pct(v) { return (100 * v).toFixed(v > 0.995 || v < 0.005 ? 1 : 0) + " %"; }
function mixColor(a, b, w) { // w = 1 -> a, w = 0 -> b
  const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
  const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
  const c = pa.map((x, i) => Math.round(w * x + (1 - w) * pb[i]));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

// --- canvas helpers -------------------------------------------------------------------------------
function prep(canvas) {
  const dpr = window.devicePixelRatio || 1;
  if (!canvas.dataset.cssw) {
    canvas.dataset.cssw = canvas.width;
    canvas.dataset.cssh = canvas.height;
    canvas.style.width = canvas.width + "px";
    canvas.style.height = canvas.height + "px";
    canvas.width = Math.round(canvas.width * dpr);
    canvas.height = Math.round(canvas.height * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const w = +canvas.dataset.cssw, h = +canvas.dataset.cssh;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  return { ctx, w, h };
}

function jitter(i) { return ((i * 0.6180339887) % 1) - 0.5; }

/** Scatter plot of point layers [{pts, color, alpha, r}] in the fixed box [-BOX, BOX]^2. */
function drawPoints(canvas, layers, opts = {}) {
  const { ctx, w, h } = prep(canvas);
  const pad = 18, size = Math.min(w, h) - 2 * pad;
  const ox = (w - size) / 2, oy = (h - size) / 2;
  const sx = (x) => ox + ((x + BOX) / (2 * BOX)) * size;
  const sy = (y) => oy + size - ((y + BOX) / (2 * BOX)) * size;
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  for (let g = -3; g <= 3; g++) {
    ctx.beginPath(); ctx.moveTo(sx(g), oy); ctx.lineTo(sx(g), oy + size); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(ox, sy(g)); ctx.lineTo(ox + size, sy(g)); ctx.stroke();
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.strokeRect(ox, oy, size, size);
  ctx.fillStyle = COLORS.muted;
  ctx.font = "10px DejaVu Sans, sans-serif";
  ctx.textAlign = "center";
  for (const g of [-3, 0, 3]) ctx.fillText(String(g).replace("-", "−"), sx(g), oy + size + 12);
  ctx.textAlign = "right";
  for (const g of [-3, 0, 3]) ctx.fillText(String(g).replace("-", "−"), ox - 3, sy(g) + 3);
  ctx.save();
  ctx.beginPath(); ctx.rect(ox, oy, size, size); ctx.clip();
  for (const layer of layers) {
    if (!layer || !layer.pts) continue;
    ctx.globalAlpha = layer.alpha === undefined ? 0.75 : layer.alpha;
    ctx.fillStyle = layer.color;
    const r = layer.r || 1.8;
    const pts = layer.pts;
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i];
      const x = p[0], y = p.length > 1 ? p[1] : jitter(i) * 0.6;
      ctx.fillRect(sx(x) - r / 2, sy(y) - r / 2, r, r);
    }
  }
  ctx.restore();
  ctx.globalAlpha = 1;
  if (opts.label) {
    ctx.fillStyle = COLORS.ink;
    ctx.textAlign = "left";
    ctx.font = "12px DejaVu Sans, sans-serif";
    ctx.fillText(opts.label, ox + 5, oy + 15);
  }
}

/** A grid of images: {shape: [N, C, H, W], data: flat array}, pixel values in [-1, 1]. */
function drawImages(canvas, img, opts = {}) {
  const { ctx, w, h } = prep(canvas);
  const [N, C, H, W] = img.shape;
  const count = Math.min(N, opts.max || N);
  const cols = opts.cols || Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const labelH = opts.labels ? 14 : 0;
  const gap = 6;
  const cell = Math.floor(Math.min((w - gap * (cols + 1)) / cols, (h - gap * (rows + 1)) / rows - labelH));
  const off = document.createElement("canvas");
  off.width = W; off.height = H;
  const octx = off.getContext("2d");
  const plane = H * W;
  ctx.imageSmoothingEnabled = false;
  const x0 = (w - (cols * cell + (cols - 1) * gap)) / 2;
  const y0 = (h - (rows * (cell + labelH) + (rows - 1) * gap)) / 2;
  for (let n = 0; n < count; n++) {
    const im = octx.createImageData(W, H);
    const base = n * C * plane;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) {
        const v = img.data[base + (C === 1 ? 0 : c) * plane + p];
        im.data[4 * p + c] = Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));
      }
      im.data[4 * p + 3] = 255;
    }
    octx.putImageData(im, 0, 0);
    const cx = x0 + (n % cols) * (cell + gap), cy = y0 + Math.floor(n / cols) * (cell + labelH + gap);
    ctx.drawImage(off, cx, cy, cell, cell);
    ctx.strokeStyle = COLORS.axis;
    ctx.strokeRect(cx - 0.5, cy - 0.5, cell + 1, cell + 1);
    if (opts.labels && opts.labels[n] !== undefined) {
      ctx.fillStyle = COLORS.muted;
      ctx.textAlign = "center";
      // Class names narrower than their cell: a smaller font, then an ellipsis.
      let text = String(opts.labels[n]), size = 11;
      const room = cell + gap - 2;
      ctx.font = `${size}px DejaVu Sans, sans-serif`;
      while (ctx.measureText(text).width > room && size > 8) ctx.font = `${--size}px DejaVu Sans, sans-serif`;
      while (ctx.measureText(text).width > room && text.length > 2) text = text.slice(0, -2) + "…";
      ctx.fillText(text, cx + cell / 2, cy + cell + 12);
    }
  }
}

/** Draw a panel from the API: {kind: "points", points} or {kind: "image", shape, data}. */
function drawPanel(canvas, panel, opts = {}) {
  if (panel.kind === "image") return drawImages(canvas, panel, opts);
  const layers = (opts.background || []).concat([{ pts: panel.points, color: opts.color || COLORS.sample, alpha: opts.alpha, r: opts.r }]);
  return drawPoints(canvas, layers, opts);
}

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.abs(v) < 1e-12 ? 0 : v);
  return out;
}

/** Line chart: series [{xs, ys (null = gap), color, label, width, alpha, dash}]. */
function lineChart(canvas, series, opts = {}) {
  const { ctx, w, h } = prep(canvas);
  const m = { l: 52, r: 22, t: opts.title ? 22 : 10, b: 38 };
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  let [xMin, xMax] = [opts.xMin, opts.xMax];
  let [yMin, yMax] = [opts.yMin, opts.yMax];
  if (yMin === undefined || yMax === undefined) {
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const y of s.ys) if (y !== null && isFinite(y)) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (yMin === undefined) yMin = lo;
    if (yMax === undefined) yMax = hi === lo ? lo + 1 : hi;
  }
  const X = (x) => m.l + ((x - xMin) / (xMax - xMin)) * pw;
  const Y = (y) => m.t + ph - ((y - yMin) / (yMax - yMin)) * ph;
  ctx.font = "11px DejaVu Sans, sans-serif";
  ctx.lineWidth = 1;
  for (const ty of niceTicks(yMin, yMax, opts.yTicks || 5)) {
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath(); ctx.moveTo(m.l, Y(ty)); ctx.lineTo(m.l + pw, Y(ty)); ctx.stroke();
    ctx.fillStyle = COLORS.muted; ctx.textAlign = "right";
    ctx.fillText(opts.yFmt ? opts.yFmt(ty) : String(+ty.toPrecision(4)).replace("-", "−"), m.l - 5, Y(ty) + 4);
  }
  for (const tx of niceTicks(xMin, xMax, opts.xTicks || 5)) {
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath(); ctx.moveTo(X(tx), m.t); ctx.lineTo(X(tx), m.t + ph); ctx.stroke();
    ctx.fillStyle = COLORS.muted; ctx.textAlign = "center";
    ctx.fillText(opts.xFmt ? opts.xFmt(tx) : String(+tx.toPrecision(4)), X(tx), m.t + ph + 14);
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.strokeRect(m.l, m.t, pw, ph);
  ctx.fillStyle = COLORS.ink; ctx.textAlign = "center";
  if (opts.xLabel) ctx.fillText(opts.xLabel, m.l + pw / 2, h - 6);
  if (opts.yLabel) {
    ctx.save(); ctx.translate(12, m.t + ph / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(opts.yLabel, 0, 0); ctx.restore();
  }
  if (opts.title) { ctx.font = "bold 12px DejaVu Sans, sans-serif"; ctx.fillText(opts.title, m.l + pw / 2, 14); ctx.font = "11px DejaVu Sans, sans-serif"; }
  ctx.save();
  ctx.beginPath(); ctx.rect(m.l, m.t, pw, ph); ctx.clip();
  for (const hl of opts.hlines || []) {
    ctx.strokeStyle = hl.color || "#555"; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(m.l, Y(hl.y)); ctx.lineTo(m.l + pw, Y(hl.y)); ctx.stroke();
    ctx.setLineDash([]);
  }
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = s.width || 2; ctx.globalAlpha = s.alpha === undefined ? 1 : s.alpha;
    if (s.dash) ctx.setLineDash(s.dash);
    ctx.beginPath();
    let pen = false;
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (y === null || !isFinite(y)) { pen = false; continue; }
      const py = Y(Math.max(yMin - (yMax - yMin), Math.min(yMax + (yMax - yMin), y)));
      if (pen) ctx.lineTo(X(s.xs[i]), py); else { ctx.moveTo(X(s.xs[i]), py); pen = true; }
    }
    ctx.stroke(); ctx.setLineDash([]); ctx.globalAlpha = 1;
  }
  if (opts.marker !== undefined) {
    ctx.strokeStyle = COLORS.ink; ctx.lineWidth = 1.2; ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(X(opts.marker), m.t); ctx.lineTo(X(opts.marker), m.t + ph); ctx.stroke(); ctx.setLineDash([]);
  }
  for (const dot of opts.dots || []) {
    if (dot.y === null || !isFinite(dot.y)) continue;
    ctx.fillStyle = dot.color; ctx.beginPath(); ctx.arc(X(dot.x), Y(dot.y), 4, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.restore();
  const legend = series.filter((s) => s.label);
  if (legend.length) {
    ctx.font = "11px DejaVu Sans, sans-serif"; ctx.textAlign = "left";
    const lw = 28 + Math.max(...legend.map((s) => ctx.measureText(s.label).width));
    const lx = opts.legendLeft ? m.l + 8 : m.l + pw - lw - 4;
    let ly = opts.legendBottom ? m.t + ph - 8 - 15 * (legend.length - 1) : m.t + 14;
    ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(lx - 4, ly - 11, lw, 15 * legend.length + 2);
    for (const s of legend) {
      ctx.fillStyle = s.color; ctx.fillRect(lx, ly - 6, 14, 3);
      ctx.fillStyle = COLORS.ink; ctx.fillText(s.label, lx + 20, ly);
      ly += 15;
    }
  }
}

// --- combining x0 and eps exactly as q_sample ------------------------------------------------------
function combine(x0, eps, a, s) {
  if (x0.kind === "image") {
    const out = new Float32Array(x0.data.length);
    for (let i = 0; i < out.length; i++) out[i] = a * x0.data[i] + s * eps.data[i];
    return { kind: "image", shape: x0.shape, data: out };
  }
  const pts = new Array(x0.points.length);
  for (let i = 0; i < pts.length; i++) {
    const p = x0.points[i], e = eps.points[i];
    pts[i] = p.length > 1 ? [a * p[0] + s * e[0], a * p[1] + s * e[1]] : [a * p[0] + s * e[0]];
  }
  return { kind: "points", points: pts };
}
function signalShare(a, s) { return a * a + s * s > 0 ? (a * a) / (a * a + s * s) : 0; }

function imageSize(shape) { return shape && shape.length === 3 ? `${shape[1]} × ${shape[2]}` : ""; }

/** The first n images of an image panel, as a panel. */
function firstImages(img, n) {
  const [N, C, H, W] = img.shape;
  const m = Math.min(N, n);
  return { kind: "image", shape: [m, C, H, W], data: img.data.slice(0, m * C * H * W) };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function fillSelect(sel, items, value) {
  sel.innerHTML = "";
  for (const it of items) {
    const o = document.createElement("option");
    if (typeof it === "string") { o.value = it; o.textContent = it; } else { o.value = it.value; o.textContent = it.label; if (it.disabled) o.disabled = true; }
    sel.appendChild(o);
  }
  if (value !== undefined && [...sel.options].some((o) => o.value === value)) sel.value = value;
}

function fillDataSelect(sel, info, value) {
  sel.innerHTML = "";
  const group = (label, items) => {
    if (!items.length) return;
    const g = document.createElement("optgroup");
    g.label = label;
    for (const [v, text] of items) { const o = document.createElement("option"); o.value = v; o.textContent = text; g.appendChild(o); }
    sel.appendChild(g);
  };
  group("2D point sets", info.point_sets.map((n) => [n, n]));
  group("Image patterns (16 × 16)", info.image_sets.filter((n) => n.startsWith("patterns:")).map((n) => [n, n.slice(9) + " (image)"]));
  group("Digits (8 × 8)", info.image_sets.filter((n) => n === "digits").map((n) => [n, "handwritten digits"]));
  if (value) sel.value = value;
}

// =================================================================================================
// 1. Forward
// =================================================================================================
const Forward = {
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
      const body = { data: $("fwd-data").value, schedule: $("fwd-schedule").value, T, seed: Math.max(0, +$("fwd-seed").value || 0), n: 1000, images: 4, size: 16 };
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

// =================================================================================================
// 2. Schedules
// =================================================================================================
const Schedules = {
  token: 0,
  init() {
    fillDataSelect($("sch-data"), state.info, state.info.image_sets.includes("patterns:checkerboard") ? "patterns:checkerboard" : "spiral");
    for (const id of ["sch-T", "sch-data"]) $(id).addEventListener("change", () => this.load());
    $("sch-t").addEventListener("input", () => this.render());
    return this.load();
  },
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
      xMin: 0, xMax: 1, yMin: 0, yMax: 1, marker: t, xLabel: "t = k / T", yLabel: "ᾱ (signal kept)",
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
        `<td>${fmtAb(s.alpha_bars[k])}</td><td>${snrText(s.snr_db[k], k, T, s.alphas[k])}</td>` +
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

// =================================================================================================
// Runs and training jobs (shared by Reverse, Playground and Train)
// =================================================================================================
const Runs = {
  async refresh() {
    try {
      const res = await api("/api/runs");
      state.runs = res.runs;
    } catch (err) { showError("tr-error", err); }
    const usable = state.runs.filter((r) => r.usable);
    const items = usable.map((r) => ({ value: r.name, label: `${r.name} (${r.data}${r.kind === "image" ? " · " + imageSize(r.shape) + " images" : ""}, ${r.status})` }));
    for (const id of ["rev-run", "pg-run"]) {
      const sel = $(id), before = sel.value;
      fillSelect(sel, items.length ? items : [{ value: "", label: "no trained model yet", disabled: true }], before);
    }
    Train.renderRuns();
    return usable;
  },
  byName(name) { return state.runs.find((r) => r.name === name); },
};

const Jobs = {
  current: null, // the job being watched (state from the server)
  losses: [],
  listeners: [],
  timer: null,
  async attach() {
    try {
      const res = await api("/api/jobs");
      const active = res.jobs.find((j) => j.active);
      if (active) this.watch(active);
    } catch (err) { /* the banner stays hidden */ }
  },
  watch(job) {
    if (!this.current || this.current.id !== job.id) this.losses = [];
    this.current = job;
    if (job.losses) this.losses = this.losses.slice(0, job.losses_from).concat(job.losses);
    this.notify();
    if (!this.timer) this.timer = setTimeout(() => this.poll(), 400);
  },
  async poll() {
    this.timer = null;
    const job = this.current;
    if (!job) return;
    try {
      const fresh = await api(`/api/jobs/${job.id}?since=${this.losses.length}`);
      this.losses = this.losses.slice(0, fresh.losses_from).concat(fresh.losses || []);
      const wasUsable = job.usable, wasStatus = job.status, hadSteps = job.step > 0;
      this.current = fresh;
      if ((fresh.usable && !wasUsable) || fresh.status !== wasStatus || (fresh.step > 0 && !hadSteps)) await Runs.refresh();
      this.notify();
      if (fresh.active) this.timer = setTimeout(() => this.poll(), 500);
      else await Runs.refresh();
    } catch (err) {
      this.timer = setTimeout(() => this.poll(), 2000);
    }
  },
  notify() {
    const j = this.current;
    state.job = j;
    const banner = $("job-banner");
    if (j && j.active) {
      banner.hidden = false;
      $("job-banner-text").textContent = `training ${j.run}: ${j.status === "finishing" ? "usable; drawing figures" : Math.round(100 * j.progress) + " %"}`;
      $("job-banner-bar").style.width = (100 * j.progress).toFixed(1) + "%";
    } else banner.hidden = true;
    for (const fn of this.listeners) fn(j, this.losses);
  },
};

// =================================================================================================
// 3. Reverse
// =================================================================================================
const Reverse = {
  frame: 0,
  async ensureRun() {
    const usable = await Runs.refresh();
    if (usable.length) { await this.selectRun($("rev-run").value); return true; }
    if (this.starting) return false;
    this.starting = true;
    const setup = $("rev-setup");
    setup.hidden = false;
    $("rev-setup-text").textContent = "No trained model on this machine yet: training the default spiral model in the background…";
    try {
      const res = await api("/api/default-run", {});
      if (res.job) Jobs.watch(res.job);
      else { setup.hidden = true; await Runs.refresh(); await this.selectRun(res.run); }
    } catch (err) { showError("rev-error", err); }
    return false;
  },
  init() {
    fillSelect($("rev-sampler"), state.info.samplers, "dpm++2m");
    $("rev-run").addEventListener("change", () => this.selectRun($("rev-run").value));
    $("rev-go").addEventListener("click", () => this.run());
    $("rev-timeline").addEventListener("input", () => this.show(+$("rev-timeline").value));
    $("rev-play").addEventListener("click", () => this.toggle());
    Jobs.listeners.push((job) => this.onJob(job));
  },
  async onJob(job) {
    const setup = $("rev-setup");
    if (!job || setup.hidden) return;
    const eta = job.eta_s !== null && job.eta_s !== undefined ? `, about ${Math.ceil(job.eta_s)} s left` : "";
    $("rev-setup-text").textContent = job.status === "failed"
      ? `Training the default model failed: ${job.error}`
      : `Training the default model "${job.run}" (${job.data}): step ${job.step} of ${job.steps}${eta}. It is usable as soon as it finishes.`;
    $("rev-setup-bar").style.width = (100 * job.progress).toFixed(1) + "%";
    if (job.usable && !this.autoRan) {
      this.autoRan = true;
      setup.hidden = true;
      await Runs.refresh();
      $("rev-run").value = job.run;
      await this.selectRun(job.run);
      if (state.view === "reverse") this.run();
      if (state.view === "playground") Playground.load();
    }
  },
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
      if (detail.sample) {
        $("rev-sampler").value = detail.sample.sampler;
        $("rev-steps").value = Math.min(250, detail.sample.steps);
      }
      const cond = detail.num_classes > 0;
      for (const el of document.querySelectorAll("#view-reverse .cond")) el.hidden = !cond;
      if (cond) {
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
    $("rev-x0-caption").innerHTML = image ? "predicted clean x̂<sub>0</sub>" : "predicted clean x̂<sub>0</sub> (faint blue: data)";
    $("rev-final-caption").innerHTML = image ? "final samples x<sub>0</sub> (the class of each under it)" : "final samples (orange) over the training data (blue)";
  },
  async run() {
    const name = $("rev-run").value;
    if (!name) { await this.ensureRun(); return; }
    if (!state.rev.detail || state.rev.detail.name !== name) await this.selectRun(name);
    const detail = state.rev.detail;
    const body = {
      sampler: $("rev-sampler").value,
      steps: +$("rev-steps").value,
      n: +$("rev-n").value,
      seed: Math.max(0, +$("rev-seed").value || 0),
      frames: true,
    };
    if (detail && detail.num_classes > 0) {
      if ($("rev-label").value !== "") body.label = detail.class_names[+$("rev-label").value]; // by name
      body.guidance = +$("rev-guidance").value;
    }
    $("rev-go").disabled = true;
    $("rev-status").textContent = "running the reverse process…";
    try {
      const res = await api(`/api/runs/${encodeURIComponent(name)}/sample`, body);
      state.rev.result = res;
      const tl = $("rev-timeline");
      tl.max = res.frames.length - 1;
      tl.disabled = false;
      const ticks = $("rev-ticks");
      ticks.innerHTML = "";
      res.frames.forEach((f, i) => {
        const span = document.createElement("span");
        span.title = `step ${i + 1}: k ${f.k} → ${f.k_next}`;
        span.addEventListener("click", () => this.show(i));
        ticks.appendChild(span);
      });
      $("rev-panels").dataset.frames = res.frames.length;
      const what = res.kind === "image" ? `${res.n} images` : `${res.n} points`;
      const cls = res.label_name !== null && res.label_name !== undefined ? `, class ${res.label_name}` : res.labels ? ", every class" : "";
      const guided = res.guidance_used !== undefined ? `, guidance ${res.guidance_used}` : "";
      $("rev-status").textContent = `${res.sampler}, ${res.steps} steps, ${what}${cls}${guided}, seed ${res.seed}: computed in ${res.seconds.toFixed(2)} s. Scrub the timeline or press Play.`;
      showError("rev-error", null);
      this.show(0);
    } catch (err) {
      showError("rev-error", err);
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
    drawPanel($("rev-xt"), f.x_t, { color: COLORS.sample, alpha: 0.6 });
    drawPanel($("rev-eps"), f.eps, { color: COLORS.noise, alpha: 0.6 });
    drawPanel($("rev-x0"), f.x0, { color: COLORS.estimate, alpha: 0.6, background: bg });
    drawPanel($("rev-next"), f.x_next, { color: COLORS.sample, alpha: 0.65, background: bg });
    const last = res.frames[res.frames.length - 1];
    drawPanel($("rev-final"), last.x_next, { color: COLORS.sample, alpha: 0.7, background: bg, labels: res.kind === "image" ? res.labels : undefined });
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

// =================================================================================================
// 4. Playground: forward then reverse in one animation
// =================================================================================================
const Playground = {
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
  },
  async load() {
    const name = $("pg-run").value;
    if (!name) { await Reverse.ensureRun(); return; }
    this.stop();
    const token = ++this.token;
    try {
      const detail = await api(`/api/runs/${encodeURIComponent(name)}`);
      if (!detail.data_preview) throw new Error("this run has no training data to animate");
      const image = detail.data_preview.kind === "image";
      const steps = Math.max(2, Math.min(250, +$("pg-steps").value || 50));
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
      this.kind = res.kind;
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
    $("pg-counter").textContent = `step ${this.idx} / ${n - 1} · ${what} · k = ${f.k} of ${this.T} · SNR ${snr}`;
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
        ? "training images turning into noise"
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

// =================================================================================================
// 5. Train
// =================================================================================================
const Train = {
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
    this.drawLoss([]);
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
    const body = { data: choice.startsWith("classes:") ? "spiral" : choice, steps: +$("tr-steps").value, schedule: $("tr-schedule").value, seed: Math.max(0, +$("tr-seed").value || 0) };
    if (choice.startsWith("classes:")) body.classes = choice.slice(8).split(",");
    const name = $("tr-name").value.trim();
    if (name) body.name = name;
    try {
      const job = await api("/api/jobs", body);
      showError("tr-error", null);
      Jobs.watch(job);
      Runs.refresh();
    } catch (err) { showError("tr-error", err); }
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
    const rate = job.steps_per_s ? ` · ${job.steps_per_s} steps/s` : "";
    const eta = job.eta_s !== null && job.eta_s !== undefined ? ` · about ${Math.ceil(job.eta_s)} s left` : "";
    const usable = job.usable_after_s ? ` · usable after ${job.usable_after_s.toFixed(1)} s` : "";
    let text = `${job.run}: ${job.status} · step ${job.step} / ${job.steps}${rate}${eta}${usable}`;
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

// =================================================================================================
// Quick checks
// =================================================================================================
const QUIZ = {
  forward: { answer: "b",
    right: "Right. Equal power means SNR = ᾱ/(1 − ᾱ) = 1, i.e. ᾱ = 0.5, and 10·log₁₀(1) = 0 dB. Drag the slider to where the readout crosses 0 dB: signal and noise are both 50 %.",
    wrong: "Not quite. SNR is a ratio of powers: equally strong means a ratio of 1, and 10·log₁₀(1) = 0 dB, whatever T is. Try the slider until signal and noise both read 50 %." },
  schedules: { answer: "b",
    right: "Right. At t = 0.25 the cosine schedule still has ᾱ ≈ 0.85 against ≈ 0.52 for linear: its signal decays gently at first, so fewer steps are wasted on near-pure noise.",
    wrong: "Look at the ᾱ chart at t = 0.25 (move the t slider): the orange cosine curve is well above the blue linear one, ᾱ ≈ 0.85 against ≈ 0.52." },
  reverse: { answer: "b",
    right: "Right. The network is trained to minimise squared error, so it predicts the average of every clean point that could have produced this x_t. From pure noise that is the middle of the data; the guess sharpens as the noise drops.",
    wrong: "Not quite. Scrub the timeline: x̂₀ sharpens as t falls. A squared-error predictor returns the mean of all clean points consistent with x_t, and at t near 1 almost every point is consistent, so the mean sits in the middle." },
  playground: { answer: "b",
    right: "Right. The forward process forgets where a point came from. The reverse process draws a new sample from the data distribution, so points land on the spiral (or moons…), but not on their own starting place.",
    wrong: "Not quite. Watch a cluster during the reverse phase: the points end on the data's shape, but the noise at t = 1 no longer knows which data point made it, so each lands somewhere new." },
  train: { answer: "b",
    right: "Right. Given x_t, several (x₀, ε) pairs are possible, so even the best network can only predict the average ε: the leftover variance is a floor that no model can remove.",
    wrong: "Not quite. The loss has a floor: x_t does not pin down ε exactly (many clean points could have led to it), so even a perfect model keeps some error. A flat loss above 0 is normal." },
};

function initQuizzes() {
  for (const quiz of document.querySelectorAll(".quiz")) {
    const key = quiz.dataset.quiz;
    quiz.querySelector(".check").addEventListener("click", () => {
      const chosen = quiz.querySelector("input:checked");
      const fb = quiz.querySelector(".feedback");
      if (!chosen) { fb.textContent = "Pick an answer first."; fb.className = "feedback"; return; }
      const ok = chosen.value === QUIZ[key].answer;
      fb.textContent = ok ? QUIZ[key].right : QUIZ[key].wrong;
      fb.className = "feedback " + (ok ? "right" : "wrong");
    });
  }
}

// =================================================================================================
// Views
// =================================================================================================
function showView(name) {
  if (!document.getElementById("view-" + name)) name = "forward";
  state.view = name;
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("active", v.id === "view-" + name);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === name);
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  if (name === "schedules") Schedules.render();
  if (name === "reverse") Reverse.ensureRun().then((ok) => { if (ok && !state.rev.result) Reverse.run(); });
  if (name === "playground") Reverse.ensureRun().then((ok) => { if (ok && !Playground.frames.length) Playground.load(); });
  if (name === "train") {
    Runs.refresh();
    if (!Jobs.current || !Jobs.current.active) Jobs.attach(); // a job started from another tab
  }
}

async function main() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    document.body.insertAdjacentHTML("afterbegin", `<p class="error">Cannot reach the denoiselab server: ${escapeHtml(err.message)}</p>`);
    return;
  }
  initQuizzes();
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showView(b.dataset.view));
  Reverse.init();
  Playground.init();
  Train.init();
  await Promise.all([Forward.init(), Schedules.init(), Runs.refresh(), Jobs.attach()]);
  showView((location.hash || "#forward").slice(1));
  document.body.dataset.ready = "1";
}

main();
