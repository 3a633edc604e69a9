/* Drawing on canvas: scatter plots of points, grids of images, line charts, and the colours
 * every view uses.  Canvases keep their CSS size and draw at the device's pixel ratio. */

export const COLORS = {
  data: "#1f77b4", sample: "#ff7f0e", noise: "#d62728", estimate: "#2ca02c",
  ink: "#1d2330", muted: "#5b6475", grid: "#eceef3", axis: "#b8bfcc",
};
export const SCHEDULE_COLORS = { linear: "#1f77b4", cosine: "#ff7f0e", quadratic: "#2ca02c", sigmoid: "#9467bd", flow: "#8c564b" };
export const BOX = 3.5; // point panels show [-BOX, BOX]^2 in normalised units

export function mixColor(a, b, w) { // w = 1 -> a, w = 0 -> b
  const pa = [1, 3, 5].map((i) => parseInt(a.slice(i, i + 2), 16));
  const pb = [1, 3, 5].map((i) => parseInt(b.slice(i, i + 2), 16));
  const c = pa.map((x, i) => Math.round(w * x + (1 - w) * pb[i]));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

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
  // opts.extent: a wider square [-extent, extent]^2 (a zoomed-out panel), grid lines at a round step.
  const E = opts.extent && opts.extent > BOX ? opts.extent : BOX;
  const step = E === BOX ? 1 : niceTicks(0, E, 3)[1] || E;
  const edge = E === BOX ? 3 : step * Math.floor(E / step);
  const sx = (x) => ox + ((x + E) / (2 * E)) * size;
  const sy = (y) => oy + size - ((y + E) / (2 * E)) * size;
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  for (let g = -edge; g <= edge + 1e-9; g += step) {
    ctx.beginPath(); ctx.moveTo(sx(g), oy); ctx.lineTo(sx(g), oy + size); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(ox, sy(g)); ctx.lineTo(ox + size, sy(g)); ctx.stroke();
  }
  ctx.strokeStyle = COLORS.axis;
  ctx.strokeRect(ox, oy, size, size);
  ctx.fillStyle = COLORS.muted;
  ctx.font = "10px DejaVu Sans, sans-serif";
  ctx.textAlign = "center";
  for (const g of [-edge, 0, edge]) ctx.fillText(String(g).replace("-", "−"), sx(g), oy + size + 12);
  ctx.textAlign = "right";
  if (E === BOX) for (const g of [-edge, 0, edge]) ctx.fillText(String(g).replace("-", "−"), ox - 3, sy(g) + 3); // zoomed: the x ticks and opts.label say the scale
  ctx.save();
  ctx.beginPath(); ctx.rect(ox, oy, size, size); ctx.clip();
  // opts.lines: polylines under the points, [{paths: [[[x, y], ...], ...], color, alpha, width}]
  // (the jump view's ODE paths and jump segments).
  for (const set of opts.lines || []) {
    ctx.globalAlpha = set.alpha === undefined ? 0.5 : set.alpha;
    ctx.strokeStyle = set.color;
    ctx.lineWidth = set.width || 1;
    ctx.beginPath();
    for (const path of set.paths) {
      path.forEach((p, j) => (j ? ctx.lineTo(sx(p[0]), sy(p[1])) : ctx.moveTo(sx(p[0]), sy(p[1]))));
    }
    ctx.stroke();
  }
  for (const layer of layers) {
    if (!layer || !layer.pts) continue;
    ctx.globalAlpha = layer.alpha === undefined ? 0.75 : layer.alpha;
    ctx.fillStyle = layer.color;
    const r = layer.r || 1.8;
    const pts = layer.pts;
    // layer.sizes: one diameter per point, drawn as discs (e.g. by weight); layer.ring: circles.
    if (layer.ring) { ctx.strokeStyle = layer.color; ctx.lineWidth = layer.lineWidth || 1.5; }
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i];
      const x = p[0], y = p.length > 1 ? p[1] : jitter(i) * 0.6;
      if (layer.sizes || layer.ring) {
        ctx.beginPath(); ctx.arc(sx(x), sy(y), (layer.sizes ? layer.sizes[i] : r) / 2, 0, 2 * Math.PI);
        if (layer.ring) ctx.stroke(); else ctx.fill();
      } else ctx.fillRect(sx(x) - r / 2, sy(y) - r / 2, r, r);
    }
  }
  for (const g of opts.guides || []) { // a dashed line where a coordinate is fixed: {axis: 0 (x) or 1 (y), at}
    ctx.globalAlpha = 1;
    ctx.strokeStyle = COLORS.ink;
    ctx.lineWidth = 1;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    if (g.axis === 0) { ctx.moveTo(sx(g.at), oy); ctx.lineTo(sx(g.at), oy + size); } else { ctx.moveTo(ox, sy(g.at)); ctx.lineTo(ox + size, sy(g.at)); }
    ctx.stroke();
    ctx.setLineDash([]);
  }
  if (opts.box) { // a dashed square [-box, box]^2: e.g. the box the sampler clamps x0-hat to
    ctx.globalAlpha = 1;
    ctx.strokeStyle = COLORS.ink;
    ctx.setLineDash([4, 3]);
    ctx.strokeRect(sx(-opts.box), sy(opts.box), sx(opts.box) - sx(-opts.box), sy(-opts.box) - sy(opts.box));
    ctx.setLineDash([]);
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
export function drawPanel(canvas, panel, opts = {}) {
  if (panel.kind === "image") return drawImages(canvas, panel, opts);
  const main = { pts: panel.points, color: opts.color || COLORS.sample, alpha: opts.alpha, r: opts.r, sizes: opts.sizes };
  const layers = (opts.background || []).concat([main], opts.overlay || []);
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
export function lineChart(canvas, series, opts = {}) {
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
