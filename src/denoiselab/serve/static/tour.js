/* The guided tour: seed 002's "complete diffusion journey" through the page's own views, one step
 * at a time: noise, the forward process, schedules, the reverse process, sampling, guided
 * generation, and training your own.  Each step opens its view, sets it up where that helps, and
 * outlines the part of the page it talks about.  No external library: a card and a CSS outline. */

import { $, state } from "./api.js";
import { Runs, runState } from "./runs.js";
import { showView } from "./tabs.js";

function setSlider(id, fraction) {
  const el = $(id);
  el.value = String(Math.round(fraction * (+el.max || 1) * 1000) / 1000);
  el.dispatchEvent(new Event("input"));
}

/** The Forward view's data in words: what its x₀ panel shows. */
function forwardData() {
  const option = $("fwd-data").selectedOptions[0];
  if (!option) return "a data set";
  if (state.fwd.kind === "image") {
    const size = (option.parentElement.label.match(/\((.*)\)/) || ["", "small"])[1];
    return `${size} images of “${option.textContent.replace(" (image)", "")}”, each pixel one number`;
  }
  return `the 2D point set “${option.textContent}”, in the units the model sees`;
}

/** The class-conditional run to recommend: a complete one before one still being finished, 2D points before images. */
function conditionalRun(runs) {
  const rank = (r) => [r.status === "complete" ? 0 : 1, r.kind === "points" ? 0 : 1];
  const cond = runs.filter((r) => r.num_classes > 0);
  cond.sort((a, b) => { const [p, q] = [rank(a), rank(b)]; return p[0] - q[0] || p[1] - q[1]; });
  return cond[0];
}

export const STEPS = [
  { view: "forward", target: "#fwd-x0, #fwd-eps", title: "1. Data and noise",
    text: "", // set by enter(): the data the view shows
    enter: (step) => {
      setSlider("fwd-t", 0);
      step.body = `Every diffusion model starts from two things: clean data x₀ (here ${forwardData()}) and Gaussian noise ε ~ N(0, I), one draw of the same shape. The two small panels show them.`;
    } },
  { view: "forward", target: ".readouts, #fwd-canvas", title: "2. The forward process",
    text: "Noising mixes the two in one line: x_t = α_t x₀ + σ_t ε. The tour has moved the slider to the middle: read the SNR and the signal share, then drag the slider to t = 1 and watch the data dissolve into noise. Press ▶ Play to animate it.",
    enter: () => setSlider("fwd-t", 0.5) },
  { view: "schedules", target: "#sch-table", title: "3. Schedules",
    text: "How fast the signal goes is the schedule's choice. Compare ᾱ and the signal share at the same t; a schedule should end below about −20 dB, so that generation can start from pure noise.",
    enter: () => setSlider("sch-t", 0.25) },
  { view: "reverse", target: "#rev-panels", title: "4. The reverse process",
    text: "A trained network runs the chain backwards. At each step it predicts the noise in x_t, hence a guess x̂₀ of the clean data, and the sampler steps to a lower noise level. Scrub the timeline and read the note under the panels: the first guesses are poor (and clamped), the last ones sharp." },
  { view: "playground", target: "#pg-canvas", title: "5. Sampling",
    text: "Sampling is the reverse process started from fresh noise. This animation noises the training data all the way, then hands that very noise to the model: the points come back onto the data's shape, each somewhere new. Press ▶ Play." },
  { view: "reverse", target: "#rev-run", title: "6. Guided generation",
    text: "", // set by enter(): it depends on whether a class-conditional model exists
    enter: async (step) => {
      const cond = conditionalRun(await Runs.refresh());
      if (cond) {
        step.body = `A class-conditional model takes a class as well. "${cond.name}" (${runState(cond)}) is one: choose it in Model, pick a Class and a Guidance w (1: the plain conditional model, larger: more typical, less varied samples), and run the reverse process.`;
        step.target = "#rev-run, #view-reverse .cond";
      } else {
        step.body = "A class-conditional model takes a class as well, and guidance w trades variety for typical samples. There is none on this machine yet: train one in the Train view (choose a “spiral + circle” data set), then come back here and pick a Class and a Guidance.";
        step.target = "#rev-run";
      }
    } },
  { view: "train", target: "#tr-data, #tr-start", title: "7. Train your own",
    text: "Training repeats one move: noise a data point to a random t and ask the network which noise was added. Start a job here and watch the loss; it runs in the background and appears in the Model lists when it is usable." },
];

export const Tour = {
  index: -1,
  init() {
    $("tour-start").addEventListener("click", () => this.go(0));
    $("tour-next").addEventListener("click", () => this.go(this.index + 1));
    $("tour-back").addEventListener("click", () => this.go(this.index - 1));
    $("tour-close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && this.index >= 0) this.close(); });
  },
  async go(i) {
    if (i < 0 || i >= STEPS.length) { this.close(); return; }
    this.index = i;
    const step = STEPS[i];
    step.body = step.text;
    showView(step.view);
    if (step.enter) await step.enter(step);
    if (this.index !== i) return; // moved on meanwhile
    for (const el of document.querySelectorAll(".tour-target")) el.classList.remove("tour-target");
    const targets = document.querySelectorAll(step.target);
    for (const el of targets) el.classList.add("tour-target");
    if (targets.length) targets[0].scrollIntoView({ block: "nearest", behavior: "smooth" });
    $("tour-title").textContent = step.title;
    $("tour-text").textContent = step.body;
    $("tour-count").textContent = `${i + 1} / ${STEPS.length}`;
    $("tour-back").disabled = i === 0;
    $("tour-next").textContent = i === STEPS.length - 1 ? "Finish" : "Next →";
    $("tour").hidden = false;
    document.body.classList.add("touring"); // style.css: the page keeps clear of the card
    document.body.style.setProperty("--tour-h", `${$("tour").offsetHeight}px`);
    state.tour = i;
  },
  close() {
    this.index = -1;
    state.tour = null;
    $("tour").hidden = true;
    document.body.classList.remove("touring");
    for (const el of document.querySelectorAll(".tour-target")) el.classList.remove("tour-target");
  },
};
