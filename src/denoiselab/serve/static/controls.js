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
