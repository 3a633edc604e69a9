/* The page's state and its calls to the server's JSON API (app.py and its routers). */

export const $ = (id) => document.getElementById(id);
export const state = { info: null, runs: [], view: "forward", fwd: {}, sch: {}, rev: {}, pg: {}, tr: {} };
window.playground = state; // for the browser tests and the curious

/** GET (no body) or POST (a JSON body); a non-2xx answer throws an Error carrying the server's detail. */
export async function api(path, body, method) {
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

export function showError(id, err) {
  const el = $(id);
  if (el) el.textContent = err ? (err.message || String(err)) : "";
}
