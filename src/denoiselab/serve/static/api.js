/* The page's state and its calls to the server's JSON API (app.py and its routers). */

export const $ = (id) => document.getElementById(id);
export const state = { info: null, runs: [], defaultRun: null, view: "forward", fwd: {}, sch: {}, rev: {}, pg: {}, tr: {} };
window.playground = state; // for the browser tests and the curious

/* Float16 -> float32 for every 16-bit pattern, built on first use (256 kB). */
let HALF = null;
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    HALF[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return HALF;
}

/** A compact panel (payloads.frame_panel: base64 little-endian float16 or float32) as the plain
 * panel the views draw: points as [[x, y], ...], images as a Float32Array of pixels. */
export function decodePanel(p) {
  const bytes = Uint8Array.from(atob(p.b64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  let flat;
  if (p.dtype === "float16") {
    const table = halfTable();
    flat = new Float32Array(bytes.length / 2);
    for (let i = 0; i < flat.length; i++) flat[i] = table[view.getUint16(2 * i, true)];
  } else {
    flat = new Float32Array(bytes.length / 4);
    for (let i = 0; i < flat.length; i++) flat[i] = view.getFloat32(4 * i, true);
  }
  if (p.kind === "image") return { kind: "image", shape: p.shape, data: flat };
  const pts = new Array(p.n);
  for (let i = 0; i < p.n; i++) pts[i] = p.dim > 1 ? [flat[i * p.dim], flat[i * p.dim + 1]] : [flat[i]];
  return { kind: "points", dim: p.dim, points: pts };
}

/** Every compact panel inside an answer, decoded in place (they sit in frames[i].x_t and the like). */
function decodeAll(value, depth) {
  if (!value || typeof value !== "object" || depth > 4) return value;
  if (typeof value.b64 === "string" && value.kind) return decodePanel(value);
  if (Array.isArray(value)) { for (let i = 0; i < value.length; i++) value[i] = decodeAll(value[i], depth + 1); return value; }
  for (const key of Object.keys(value)) value[key] = decodeAll(value[key], depth + 1);
  return value;
}

/** GET (no body) or POST (a JSON body); a non-2xx answer throws an Error carrying the server's detail. */
export async function api(path, body, method) {
  const init = { method: method || (body !== undefined ? "POST" : "GET"), headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = decodeAll(await res.json(), 0); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const detail = data && data.detail !== undefined ? data.detail : res.statusText;
    const err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    err.status = res.status;
    throw err;
  }
  return data;
}

export function showError(id, err) {
  const el = $(id);
  if (el) el.textContent = err ? (err.message || String(err)) : "";
}
