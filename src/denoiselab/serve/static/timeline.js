/* The Reverse view's time grid: the choice of grid (a named grid or the run's tuned grid, see
 * serve/grid_choice.py) and a strip that draws the grid's N + 1 time points t_0 = 1 > ... > t_N = 0
 * on a t axis, with the current step's span highlighted.  Where the points crowd, the sampler
 * takes small steps; at 5 to 10 steps that placement matters as much as the solver. */

const SVG = "http://www.w3.org/2000/svg";

/** The grid select's choices: the run's default (tuned where one fits), the named grids, and
 * "tuned" when the run has tuned grids (tuned_grids.json, from denoiselab tune-steps). */
export function gridChoices(spacings, detail) {
  const own = detail && detail.sample ? detail.sample.spacing : null;
  const tuned = (detail && detail.tuned_grids) || [];
  const items = [{ value: "", label: tuned.length ? `default (tuned, else ${own})` : `default${own ? ` (${own})` : ""}` }];
  for (const name of spacings) items.push({ value: name, label: name });
  const have = tuned.slice(0, 3).map((g) => `${g.sampler} at ${g.steps} steps`).join(", ") + (tuned.length > 3 ? ", …" : "");
  items.push({ value: "tuned", label: tuned.length ? `tuned (${have})` : "tuned (none for this run)", disabled: !tuned.length });
  return items;
}

/** The request fields for a grid choice. */
export function gridRequest(value) {
  if (value === "tuned") return { tuned_grid: true };
  return value ? { spacing: value } : {};
}

/** How a reply's grid is named in the page: "logsnr grid" or "tuned grid (tuned_grids.json)". */
export function gridText(res) {
  return res.tuned_grid ? "tuned grid (this run's tuned_grids.json)" : `${res.spacing} grid`;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

/** Draw the grid of reply ``res`` (its grid_times, t_0 = 1 ... t_N = 0) on ``svg``, step
 * ``current`` (t_current -> t_current+1) highlighted; a click on a time point calls pick(step). */
export function drawGridTimeline(svg, caption, res, current, pick) {
  const times = res.grid_times, n = times.length - 1;
  const w = Math.max(300, svg.clientWidth || 900), h = 50, pad = 14;
  const x = (t) => pad + (1 - t) * (w - 2 * pad); // t = 1 (noise) on the left, t = 0 (data) on the right
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  el("line", { x1: x(1), x2: x(0), y1: 18, y2: 18, class: "grid-axis" }, svg);
  for (const t of [0.75, 0.5, 0.25]) {
    el("line", { x1: x(t), x2: x(t), y1: 18, y2: 31, class: "grid-axis" }, svg);
    el("text", { x: x(t), y: 43, "text-anchor": "middle" }, svg).textContent = String(t);
  }
  el("text", { x: x(1), y: 43, "text-anchor": "start" }, svg).textContent = "t = 1 (noise)";
  el("text", { x: x(0), y: 43, "text-anchor": "end" }, svg).textContent = "t = 0 (data)";
  const a = x(times[current]), b = x(times[current + 1]);
  el("rect", { x: a, y: 6, width: Math.max(2, b - a), height: 24, class: "grid-step" }, svg);
  times.forEach((t, j) => {
    const state = j === current || j === current + 1 ? " current" : j < current ? " done" : "";
    const tick = el("line", { x1: x(t), x2: x(t), y1: 6, y2: 30, class: "grid-tick" + state, "data-t": t }, svg);
    el("title", {}, tick).textContent = `t${sub(j)} = ${t}` + (res.grid ? ` (k = ${res.grid[j]})` : "");
    tick.addEventListener("click", () => pick(Math.min(j, n - 1)));
  });
  const f = res.frames[current];
  caption.textContent = `The ${gridText(res)}: the ${n + 1} time points the sampler visits, from t = 1 (pure noise, left) ` +
    `to t = 0 (data, right). Highlighted: step ${current + 1}, from t = ${f.t.toFixed(3)} to ${f.t_next.toFixed(3)}. ` +
    "Where the points crowd, the steps are small.";
}

function sub(j) { return String(j).replace(/\d/g, (d) => "₀₁₂₃₄₅₆₇₈₉"[+d]); }
