/* The Reverse view's words for one step, computed from the very numbers its panels draw, so the
 * text never disagrees with the pictures: how spread the network's x-hat-0 is against the data,
 * how much of it lies beyond the panel's edge, and how much the sampler clamped. */

import { BOX } from "./plot.js";

function pct(v) { return v > 0 && v < 0.005 ? "<1 %" : `${Math.round(100 * v)} %`; }

function rms(points) {
  let sum = 0;
  for (const p of points) sum += p[0] * p[0] + (p.length > 1 ? p[1] * p[1] : 0);
  return Math.sqrt(sum / Math.max(1, points.length));
}

/** How the network's x0-hat compares with the data: "spread 12× as wide as the data" etc. */
export function spreadText(x0, data) {
  if (!x0 || x0.kind !== "points" || !data || data.kind !== "points") return "";
  const ratio = rms(x0.points) / Math.max(1e-9, rms(data.points));
  if (ratio > 1.5) return `The network's x̂₀ is spread ${ratio.toFixed(1)}× as wide as the data: at this noise level it cannot tell yet where the points belong.`;
  if (ratio < 0.75) return `The network's x̂₀ is bunched towards the middle (${ratio.toFixed(2)}× the data's spread): it predicts an average of the places a point could have come from.`;
  return `The network's x̂₀ is about as spread as the data (${ratio.toFixed(2)}×) and takes on its shape.`;
}

/** The half-width of a square that shows 95 % of the points: BOX (the other panels' square), or a
 * round number above it when more than 5 % of the network's x0-hat lies outside (the panel then
 * zooms out; a few stray points are counted in the note instead). */
export function zoomExtent(panel) {
  if (!panel || panel.kind !== "points" || !panel.points.length) return BOX;
  const far = panel.points.map((p) => Math.max(Math.abs(p[0]), p.length > 1 ? Math.abs(p[1]) : 0)).sort((a, b) => a - b);
  const q = far[Math.floor(0.95 * (far.length - 1))] * 1.1;
  if (q <= BOX) return BOX;
  const mag = 10 ** Math.floor(Math.log10(q));
  return [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= q);
}

/** Share of points outside the panel's drawn square (they are not visible). */
export function beyondPanel(x0, extent = BOX) {
  if (!x0 || x0.kind !== "points" || !x0.points.length) return 0;
  let n = 0;
  for (const p of x0.points) if (Math.abs(p[0]) > extent || (p.length > 1 && Math.abs(p[1]) > extent)) n++;
  return n / x0.points.length;
}

/** The clamp at this step, as it is: how much, to which box, and what the sampler uses next. */
export function clipText(res, frame) {
  // A latent run clamps its latent x̂₀ (drawn decoded) to the training latents' box.
  const unit = res.latent ? "latent numbers" : res.kind === "image" ? "pixels" : "points";
  if (res.clip_x0 === null || res.clip_x0 === undefined) return "This run samples without clamping x̂₀.";
  const box = res.latent ? `the training latents' box ±${res.clip_x0.toFixed(2)}` : res.kind === "image" ? "the pixel range [−1, 1]" : `the dashed square ±${res.clip_x0.toFixed(2)}`;
  if (!frame.clipped) return `Nothing is clamped at this step: every x̂₀ lies inside ${box}.`;
  return `The sampler clamps ${pct(frame.clipped)} of these ${unit} onto ${box} (sample.clip_x0) before it steps; ` +
    "the next sample is built from the clamped x̂₀ and the noise recomputed from it, not from the network's raw prediction shown here.";
}

export function stepNote(res, frame, x0, data, extent = BOX) {
  const parts = [spreadText(x0, data)];
  if (extent > BOX) parts.push(`Its panel is zoomed out to ±${extent} to show them (the other panels show ±${BOX}).`);
  const beyond = beyondPanel(x0, extent);
  if (beyond > 0) parts.push(`${pct(beyond)} of its points lie beyond ${extent > BOX ? "even that" : "the panel's"} edge.`);
  parts.push(clipText(res, frame));
  return parts.filter(Boolean).join(" ");
}
