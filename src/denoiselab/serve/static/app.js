/* denoiselab playground: plain JavaScript modules, no build step, nothing loaded from the internet.
 *
 * Every number and picture comes from the server's JSON API (app.py), which runs denoiselab's
 * schedules, forward process, samplers and trained runs.  This module puts the page together:
 * one module per view (view-*.js), the runs and jobs they share (runs.js), the tabs (tabs.js)
 * the quick checks (quiz.js) and the guided tour (tour.js), over the server calls (api.js), canvas drawing (plot.js), the
 * forward process (noising.js) and shared controls (controls.js).
 */

import { api, state } from "./api.js";
import { escapeHtml } from "./controls.js";
import { initQuizzes } from "./quiz.js";
import { DefaultRun, Jobs, Runs } from "./runs.js";
import { initTabs, showView } from "./tabs.js";
import { Tour } from "./tour.js";
import { Forward } from "./view-forward.js";
import { Playground } from "./view-playground.js";
import { Reverse } from "./view-reverse.js";
import { Schedules } from "./view-schedules.js";
import { Train } from "./view-train.js";

// For the browser tests and the curious, beside window.playground (the state).
Object.assign(window, { Forward, Schedules, Reverse, Playground, Train, Runs, Jobs, DefaultRun, Tour });

async function main() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    document.body.insertAdjacentHTML("afterbegin", `<p class="error">Cannot reach the denoiselab server: ${escapeHtml(err.message)}</p>`);
    return;
  }
  initQuizzes();
  initTabs({ forward: Forward, schedules: Schedules, reverse: Reverse, playground: Playground, train: Train });
  DefaultRun.init();
  Reverse.init();
  Playground.init();
  Train.init();
  Tour.init();
  await Promise.all([Forward.init(), Schedules.init(), Runs.refresh(), Jobs.attach()]);
  showView((location.hash || "#forward").slice(1));
  document.body.dataset.ready = "1";
}

main();
