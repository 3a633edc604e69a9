/* What several views' controls and readouts share: filling select boxes, escaping text for
 * HTML, and SNR readouts in dB. */

export function fmtDb(v) {
  if (v === null || v === undefined) return "";
  return (v > 0 ? "+" : v < 0 ? "−" : "") + Math.abs(v).toFixed(1) + " dB";
}
export function snrText(db, k, T, alpha) {
  if (db !== null && db !== undefined) return fmtDb(db);
  return k === 0 || alpha > 0 ? "+∞ dB" : "−∞ dB";
}

/** A signal share (noising.signalShare) as the Forward view's readout and the Schedules table show it. */
export function sharePct(v) { return (100 * v).toFixed(v > 0.995 || v < 0.005 ? 1 : 0) + " %"; }

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function fillSelect(sel, items, value) {
  sel.innerHTML = "";
  for (const it of items) {
    const o = document.createElement("option");
    if (typeof it === "string") { o.value = it; o.textContent = it; } else { o.value = it.value; o.textContent = it.label; if (it.disabled) o.disabled = true; }
    sel.appendChild(o);
  }
  if (value !== undefined && [...sel.options].some((o) => o.value === value)) sel.value = value;
}

/** The Forward and Schedules views' data choice: 2D point sets, pattern images, digits. */
export function fillDataSelect(sel, info, value) {
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

/** A number input's value, checked against its own min, max and step: out of range or not a whole
 * number, it is said beside the field ("must be 1 to 250; got 0") and null comes back, instead of
 * a silent change to some other value. */
export function fieldValue(id) {
  const el = document.getElementById(id);
  const raw = el.value.trim(), v = Number(raw);
  const lo = el.min !== "" ? Number(el.min) : -Infinity, hi = el.max !== "" ? Number(el.max) : Infinity;
  const whole = !el.step || el.step === "any" ? true : Number.isInteger(Number(el.step));
  let msg = "";
  if (raw === "" || !Number.isFinite(v)) msg = "enter a number";
  else if (whole && !Number.isInteger(v)) msg = "must be a whole number";
  else if (v < lo || v > hi) msg = `must be ${lo} to ${hi}; got ${raw}`;
  setFieldMessage(el, msg);
  return msg ? null : v;
}

/** Show ``msg`` beside input ``el`` (or clear it). */
export function setFieldMessage(el, msg) {
  let note = el.parentElement.querySelector(".field-msg");
  if (!note) {
    note = document.createElement("span");
    note.className = "field-msg";
    note.setAttribute("role", "alert");
    el.insertAdjacentElement("afterend", note);
  }
  note.textContent = msg;
  el.classList.toggle("invalid", Boolean(msg));
}

/** A server error that names a field this view has ("seed: ..." and #rev-seed): said beside that
 * field; true when it was. */
export function fieldError(prefix, err) {
  const m = /^([A-Za-z_]+): (.*)$/s.exec((err && err.message) || "");
  const el = m && document.getElementById(`${prefix}-${m[1]}`);
  if (!el || el.tagName !== "INPUT") return false;
  setFieldMessage(el, m[2]);
  return true;
}
