/* The trained runs and the training job being watched, shared by the Reverse, Playground and
 * Train views.  Runs.refresh fills the run choices and tells its listeners; Jobs polls the job
 * and tells its listeners of every change. */

import { $, api, showError, state } from "./api.js";
import { fillSelect } from "./controls.js";

function imageSize(shape) { return shape && shape.length === 3 ? `${shape[1]} × ${shape[2]}` : ""; }
/** "complete", or where a run stopped: "interrupted at step 186 of 20000" (cancelled, resumable),
 * "training: step 900 of 3000" (in progress; its model is the last checkpoint's). */
export function runState(r) {
  const at = r.step !== null && r.step !== undefined && r.steps ? ` step ${r.step} of ${r.steps}` : "";
  if (r.status === "complete" || r.status === "trained" || !at) return r.status;
  if (r.status === "training" || r.status === "finishing") return `training:${at}`;
  return `${r.status} at${at}`;
}

export const Runs = {
  listeners: [], // called after each refresh (the Train view's table of runs)
  async refresh() {
    try {
      const res = await api("/api/runs");
      state.runs = res.runs;
    } catch (err) { showError("tr-error", err); }
    const usable = state.runs.filter((r) => r.usable);
    const items = usable.map((r) => ({ value: r.name, label: `${r.name} (${r.data}${r.kind === "image" ? " · " + imageSize(r.shape) + " images" : ""}${r.latent_shape ? " from a " + r.latent_shape.join("×") + " latent" : ""}, ${runState(r)})` }));
    for (const id of ["rev-run", "pg-run"]) {
      const sel = $(id), before = sel.value;
      fillSelect(sel, items.length ? items : [{ value: "", label: "no trained model yet", disabled: true }], before);
    }
    for (const fn of this.listeners) fn(state.runs);
    return usable;
  },
  byName(name) { return state.runs.find((r) => r.name === name); },
};

export const Jobs = {
  current: null, // the job being watched (state from the server)
  losses: [],
  listeners: [],
  timer: null,
  async attach() {
    try {
      const res = await api("/api/jobs");
      const active = res.jobs.find((j) => j.active);
      if (active) this.watch(active);
    } catch (err) { /* the banner stays hidden */ }
  },
  watch(job) {
    if (!this.current || this.current.id !== job.id) this.losses = [];
    this.current = job;
    if (job.losses) this.losses = this.losses.slice(0, job.losses_from).concat(job.losses);
    this.notify();
    if (!this.timer) this.timer = setTimeout(() => this.poll(), 400);
  },
  async poll() {
    this.timer = null;
    const job = this.current;
    if (!job) return;
    try {
      const fresh = await api(`/api/jobs/${job.id}?since=${this.losses.length}`);
      this.losses = this.losses.slice(0, fresh.losses_from).concat(fresh.losses || []);
      const wasUsable = job.usable, wasStatus = job.status, hadSteps = job.step > 0;
      this.current = fresh;
      if ((fresh.usable && !wasUsable) || fresh.status !== wasStatus || (fresh.step > 0 && !hadSteps)) await Runs.refresh();
      this.notify();
      if (fresh.active) this.timer = setTimeout(() => this.poll(), 500);
      else await Runs.refresh();
    } catch (err) {
      this.timer = setTimeout(() => this.poll(), 2000);
    }
  },
  notify() {
    const j = this.current;
    state.job = j;
    const banner = $("job-banner");
    if (j && j.active) {
      banner.hidden = false;
      $("job-banner-text").textContent = `training ${j.run}: ${j.status === "finishing" ? "usable; drawing figures" : Math.round(100 * j.progress) + " %"}`;
      $("job-banner-bar").style.width = (100 * j.progress).toFixed(1) + "%";
    } else banner.hidden = true;
    for (const fn of this.listeners) fn(j, this.losses);
  },
};
