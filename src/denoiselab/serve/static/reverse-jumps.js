/* The Reverse view's jump view, for a run trained to jump (MeanFlow, shortcut, consistency):
 * one panel each for 1, 2 and 4 jumps, every jump a segment from where it starts to where it
 * lands, beside the ODE path from the same noise in grey (routes_jumps.py computes them).  An
 * image run's panels are strips instead: the starting noise, the ODE path's many-step end, and
 * the samples of 1, 2 and 4 jumps from the same noise, each image under the one it should equal.
 * Runs that do not jump are not offered it: its section stays hidden and nothing is asked. */

import { $, api, showError, state } from "./api.js";
import { COLORS, drawPanel } from "./plot.js";

const PATH_COLOR = "#8a8f99";
const JUMP_IMAGES = 8; // an image run's strips: few enough that each image is large enough to compare
const STRIP_CELL = 64; // pixels a strip gives each image

function plural(k) { return k === 1 ? "1 jump" : `${k} jumps`; }

/** The segments from each start point to its landing, [[start, landing], ...]. */
function segments(start, landing) { return start.points.map((p, i) => [p, landing.points[i]]); }

export const JumpView = {
  token: 0,
  /** A run was chosen: offer the view when it jumps, forget the last one's picture. */
  onRun(detail) {
    const jumps = !!(detail && detail.jump_sampler);
    $("rev-jumps").hidden = !jumps;
    $("rev-jumps-hint").hidden = !!detail && detail.kind === "image";
    $("rev-jumps-hint-images").hidden = !detail || detail.kind !== "image";
    state.rev.jumps = null;
    if (!jumps) $("rev-jumps-panels").innerHTML = "";
  },
  /** The jumps from the Reverse view's seed (its own count of starting points). */
  async load(name, detail, seed) {
    if (!detail || !detail.jump_sampler) return;
    const token = ++this.token;
    const image = detail.kind === "image";
    $("rev-jumps-status").textContent = "drawing the jumps and the ODE path…";
    try {
      const res = await api(`/api/runs/${encodeURIComponent(name)}/jumps`, image ? { seed, n: JUMP_IMAGES } : { seed });
      if (token !== this.token) return; // a newer request wins
      state.rev.jumps = res;
      if (res.kind === "image") this.drawImages(res); else this.draw(res, detail);
      showError("rev-jumps-error", null);
      $("rev-jumps-status").textContent = `${res.n} starting ${res.kind === "image" ? "images" : "points"}, seed ${res.seed}; computed in ${res.seconds.toFixed(2)} s on the server.`;
    } catch (err) {
      showError("rev-jumps-error", err);
      $("rev-jumps-status").textContent = "";
    }
  },
  draw(res, detail) {
    const box = $("rev-jumps-panels");
    box.innerHTML = "";
    const bg = detail.data_preview && detail.data_preview.kind === "points" ? [{ pts: detail.data_preview.points, color: COLORS.data, alpha: 0.12, r: 2 }] : [];
    const two = res.x_T.dim > 1; // segments need a second coordinate
    const paths = res.path && two ? [{ paths: res.x_T.points.map((_, i) => res.path.map((p) => p.points[i])), color: PATH_COLOR, alpha: 0.7, width: 2.5 }] : [];
    // The path's end, where an exact jump would land: a dark ring around it.
    const ends = res.path ? [{ pts: res.path[res.path.length - 1].points, color: COLORS.ink, alpha: 0.8, r: 7, ring: true, lineWidth: 1 }] : [];
    for (const d of res.draws) {
      const fig = document.createElement("figure");
      fig.dataset.jumps = d.asked;
      const canvas = document.createElement("canvas");
      canvas.width = 300; canvas.height = 300;
      canvas.id = `rev-jumps-${d.asked}`;
      const cap = document.createElement("figcaption");
      const made = d.steps === d.asked ? "" : ` (${d.steps} made: two of the times fall on one time the model was trained at)`;
      cap.textContent = `${plural(d.asked)}${made}` + (d.off_path === null ? "" : `: lands ${d.off_path.toFixed(2)} from the path's end (RMS)`);
      fig.append(canvas, cap);
      box.appendChild(fig);
      const hops = two ? [{ paths: d.starts.flatMap((start, i) => segments(start, d.landings[i])), color: COLORS.sample, alpha: 0.9, width: 1.2 }] : [];
      // Later jumps of a consistency model start from re-noised landings: drawn as small noise-coloured dots.
      const starts = d.starts.slice(1).map((p) => ({ pts: p.points, color: COLORS.noise, alpha: 0.35, r: 2 }));
      const landings = d.landings.slice(0, -1).map((p) => ({ pts: p.points, color: COLORS.sample, alpha: 0.5, r: 2.5 }));
      drawPanel(canvas, d.samples, {
        color: COLORS.sample, alpha: 0.95, r: 4, lines: paths.concat(hops), overlay: ends,
        background: bg.concat([{ pts: res.x_T.points, color: COLORS.noise, alpha: 0.8, r: 3.5 }], starts, landings),
      });
    }
    const off = res.draws.filter((d) => d.off_path !== null).map((d) => `${plural(d.asked)} ${d.off_path.toFixed(2)}`);
    $("rev-jumps-note").textContent = `${res.learned} Grey: ${res.path ? res.path_source : "no path: " + res.path_source}. ` +
      (off.length ? `RMS distance of the final samples from the path's end (ringed), in normalised units: ${off.join(", ")}.` : "");
  },
  /** An image run: one strip a row, the noise, the path's end and the samples of each count of jumps, in columns by starting noise. */
  drawImages(res) {
    const box = $("rev-jumps-panels");
    box.innerHTML = "";
    const strip = (id, panel, caption) => {
      const fig = document.createElement("figure");
      fig.className = "jump-strip";
      const canvas = document.createElement("canvas");
      canvas.id = id;
      canvas.width = panel.shape[0] * STRIP_CELL; canvas.height = STRIP_CELL;
      const cap = document.createElement("figcaption");
      cap.textContent = caption;
      fig.append(canvas, cap);
      box.appendChild(fig);
      drawPanel(canvas, panel, { cols: panel.shape[0] });
      return fig;
    };
    strip("rev-jumps-noise", res.x_T, "the starting noise x₁, one image a column");
    if (res.path_end) strip("rev-jumps-path", res.path_end, `the ODE path's end from the same noise: ${res.path_source}`);
    for (const d of res.draws) {
      const made = d.steps === d.asked ? "" : ` (${d.steps} made: two of the times fall on one time the model was trained at)`;
      const off = d.off_path === null ? "" : `: ${d.off_path.toFixed(3)} from the path's end (RMS per pixel, -1 black to 1 white)`;
      strip(`rev-jumps-${d.asked}`, d.samples, `${plural(d.asked)}${made}${off}`).dataset.jumps = d.asked;
    }
    const off = res.draws.filter((d) => d.off_path !== null).map((d) => `${plural(d.asked)} ${d.off_path.toFixed(3)}`);
    $("rev-jumps-note").textContent = `${res.learned} ` + (res.path_end
      ? `RMS distance per pixel of each count's samples from the path's end, column by column: ${off.join(", ")}.`
      : `No path: ${res.path_source}.`);
  },
};
