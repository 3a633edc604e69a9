/* The Reverse view's jump view, for a run trained to jump (MeanFlow, shortcut, consistency):
 * one panel each for 1, 2 and 4 jumps, every jump a segment from where it starts to where it
 * lands, beside the ODE path from the same noise in grey (routes_jumps.py computes them).  Runs
 * that do not jump are not offered it: its section stays hidden and nothing is asked. */

import { $, api, showError, state } from "./api.js";
import { COLORS, drawPanel } from "./plot.js";

const PATH_COLOR = "#8a8f99";

function plural(k) { return k === 1 ? "1 jump" : `${k} jumps`; }

/** The segments from each start point to its landing, [[start, landing], ...]. */
function segments(start, landing) { return start.points.map((p, i) => [p, landing.points[i]]); }

export const JumpView = {
  token: 0,
  /** A run was chosen: offer the view when it jumps, forget the last one's picture. */
  onRun(detail) {
    const jumps = !!(detail && detail.jump_sampler && detail.kind === "points");
    $("rev-jumps").hidden = !jumps;
    state.rev.jumps = null;
    if (!jumps) $("rev-jumps-panels").innerHTML = "";
  },
  /** The jumps from the Reverse view's seed (its own count of starting points). */
  async load(name, detail, seed) {
    if (!detail || !detail.jump_sampler || detail.kind !== "points") return;
    const token = ++this.token;
    $("rev-jumps-status").textContent = "drawing the jumps and the ODE path…";
    try {
      const res = await api(`/api/runs/${encodeURIComponent(name)}/jumps`, { seed });
      if (token !== this.token) return; // a newer request wins
      state.rev.jumps = res;
      this.draw(res, detail);
      showError("rev-jumps-error", null);
      $("rev-jumps-status").textContent = `${res.n} starting points, seed ${res.seed}; computed in ${res.seconds.toFixed(2)} s on the server.`;
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
};
