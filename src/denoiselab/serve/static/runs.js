/* The trained runs and the training job being watched, shared by the Reverse, Playground and
 * Train views.  Runs.refresh fills the run choices and tells its listeners; Jobs polls the job
 * and tells its listeners of every change; DefaultRun makes sure there is a run to show, training
 * the default model when the machine has none. */

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
      state.defaultRun = res.default; // the server's choice (routes_runs.default_run_name): complete, 2D points, the newest
    } catch (err) { showError("tr-error", err); }
    const usable = state.runs.filter((r) => r.usable);
    const items = usable.map((r) => ({ value: r.name, label: `${r.name} (${r.data}${r.kind === "image" ? " · " + imageSize(r.shape) + " images" : ""}${r.latent_shape ? " from a " + r.latent_shape.join("×") + " latent" : ""}, ${runState(r)})` }));
    for (const id of ["rev-run", "pg-run"]) {
      const sel = $(id), before = sel.value || state.defaultRun; // a run chosen stays chosen
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

/** The run the Reverse and Playground views open with.  ensure() resolves true when a trained run
 * exists (after the views' selectors have taken the chosen one); with none, it starts the default
 * model's training once (/api/default-run), shows its progress in the Reverse view's notice, and
 * resolves false; the views' ready listeners are told when that model becomes usable. */
export const DefaultRun = {
  selectors: [], // async fn(name): a view takes the chosen run (the Reverse view's selectRun)
  readyListeners: [], // fn(name), once the default model trained here is usable
  starting: false,
  ready: false,
  init() { Jobs.listeners.push((job) => this.onJob(job)); },
  async select(name) {
    for (const fn of this.selectors) await fn(name);
  },
  async ensure() {
    const usable = await Runs.refresh();
    if (usable.length) { await this.select($("rev-run").value); return true; }
    if (this.starting) return false;
    this.starting = true;
    const setup = $("rev-setup");
    setup.hidden = false;
    $("rev-setup-text").textContent = "No trained model on this machine yet: training the default spiral model in the background…";
    try {
      const res = await api("/api/default-run", {});
      if (res.job) Jobs.watch(res.job);
      else { setup.hidden = true; await Runs.refresh(); await this.select(res.run); }
    } catch (err) { showError("rev-error", err); }
    return false;
  },
  /** A Jobs listener: the default model's progress in the notice, then the run, once usable. */
  async onJob(job) {
    const setup = $("rev-setup");
    if (!job || setup.hidden) return;
    const eta = job.eta_s !== null && job.eta_s !== undefined ? `, about ${Math.ceil(job.eta_s)} s left` : "";
    $("rev-setup-text").textContent = job.status === "failed"
      ? `Training the default model failed: ${job.error}`
      : `Training the default model "${job.run}" (${job.data}): step ${job.step} of ${job.steps}${eta}. It is usable as soon as it finishes.`;
    $("rev-setup-bar").style.width = (100 * job.progress).toFixed(1) + "%";
    if (job.usable && !this.ready) {
      this.ready = true;
      setup.hidden = true;
      await Runs.refresh();
      $("rev-run").value = job.run;
      await this.select(job.run);
      for (const fn of this.readyListeners) fn(job.run);
    }
  },
};
