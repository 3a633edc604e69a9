/* The tabs: which view is shown.  Each view may have a shown() method, called every time its
 * tab opens (the Reverse view, say, makes sure a trained run exists and samples it once). */

import { state } from "./api.js";

let views = {};

/** Wire the tab buttons to the views, {name: view}; the name is the section's id without "view-". */
export function initTabs(byName) {
  views = byName;
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showView(b.dataset.view));
}

export function showView(name) {
  if (!document.getElementById("view-" + name)) name = "forward";
  state.view = name;
  for (const v of document.querySelectorAll(".view")) v.classList.toggle("active", v.id === "view-" + name);
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === name);
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  const view = views[name];
  if (view && view.shown) view.shown();
}
