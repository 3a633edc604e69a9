/* The Reverse view's twisted SMC (serve/smc_sampling.py; Wu et al. 2023, "Practical and
 * asymptotically exact conditional sampling in diffusion models"): K particles per sample, moved
 * by guided DDPM steps and weighted by how well they agree with the observed value.  The
 * particles are drawn with point size by weight, the one drawn for each sample is ringed in the
 * final panel, the ESS over the steps is plotted, and a caption names the method, K, the smallest
 * ESS and the model evaluations. */

import { $ } from "./api.js";
import { COLORS, lineChart } from "./plot.js";

/** Diameters in CSS pixels for one group-major list of normalised weights (each sample's K sum
 * to 1): by area of the relative weight K w (1 = an average particle), from a 2-px dot at weight
 * 0, which stays visible, to 10 px for a particle carrying 4 times the average or more. */
export function weightSizes(weights, K) {
  return weights.map((w) => 2 + 8 * Math.sqrt(Math.min(1, (K * w) / 4)));
}

export const Smc = {
  /** Captions and the ESS figure for a new reply (or back to the plain ones without SMC). */
  prepare(res) {
    const s = res.smc;
    $("rev-ess-fig").hidden = !s;
    $("rev-xt-caption").innerHTML = s
      ? `noisy x<sub>t</sub>: all ${s.samples} × ${s.particles} particles, size by weight`
      : "noisy x<sub>t</sub> (the current sample)";
    if (!s) return;
    const g = res.gradient_guidance, steps = res.frames.length;
    $("rev-x0-caption").innerHTML = "each particle's x̂<sub>0</sub>, size by its weight (blue: data)";
    $("rev-final-caption").innerHTML = "the particles at the end, size by final weight; <b>ringed</b>: the one drawn for each sample" +
      (g.region ? "" : " (dashed: the observed value)");
    // The legend sits in the caption, where it can cover no line of the plot.
    const swatch = (color, mark, text) => `<span style="color:${color}">${mark}</span> ${text}`;
    $("rev-ess-caption").innerHTML = `effective sample size of each sample's ${s.particles} particles, before each step's resampling: ` +
      [swatch(COLORS.sample, "━", "mean over the samples"), swatch(COLORS.noise, "┅ ●", "the lowest sample, a dot where the step resampled"),
        swatch(COLORS.muted, "┈", "K/2: a sample is resampled below it")].join("; ");
    const condition = g.region ? `the region ${g.region}` : Object.entries(g.known_values || {}).map(([k, v]) => `${k} = ${v}`).join(", ");
    $("rev-guide-counts").textContent =
      `Twisted SMC: K = ${s.particles} particles per sample move by guided DDPM steps and are weighted by how well they agree with ${condition}; ` +
      `the weighted population targets the model's own conditional, exactly as K grows. ` +
      `ESS min ${s.ess_min.toFixed(1)} of ${s.particles} (mean ${s.ess_mean.toFixed(1)}, final ${s.ess_final.toFixed(1)}); ` +
      `resampled at ${s.resampling_steps} of ${steps} steps; ${s.evaluations_per_sample} model evaluations per sample (K × steps), each with a backward pass.` +
      (s.inside ? ` ${s.inside}.` : "") + (s.warning ? ` ${s.warning.replace(/^warning: /, "Warning: ")}.` : "");
  },
  /** Point diameters of frame i's x_t (and x̂0), or undefined without SMC. */
  sizes(res, i) { return res.smc ? weightSizes(res.frames[i].weights, res.smc.particles) : undefined; },
  finalSizes(res) { return res.smc ? weightSizes(res.smc.final_weights, res.smc.particles) : undefined; },
  /** The final panel's ring around each drawn particle, and the dashed line at each observed value. */
  finalOverlay(res, particles) {
    if (!res.smc) return {};
    const chosen = res.smc.chosen.map((j) => particles.points[j]);
    const guides = Object.entries(res.smc.observed).map(([k, v]) => ({ axis: +k.slice(1) - 1, at: v }));
    return { overlay: [{ pts: chosen, color: COLORS.ink, ring: true, r: 9, alpha: 0.9 }], guides };
  },
  /** What this step did to the population, for the step note. */
  stepText(res, i) {
    const s = res.smc;
    if (!s) return "";
    const ess = s.ess[i].toFixed(1);
    return s.resampled.includes(i)
      ? ` SMC: before this step the ESS was ${ess} of ${s.particles}; the samples whose ESS fell below ${s.particles / 2} were resampled: heavy particles copied, light ones dropped, weights set equal.`
      : ` SMC: ESS ${ess} of ${s.particles} at this step; no sample needed resampling, so the weights carry over.`;
  },
  /** The ESS over the steps, the current step marked. */
  draw(res, i) {
    const s = res.smc;
    if (!s) return;
    const K = s.particles, n = s.ess.length, xs = s.ess.map((_, j) => j);
    lineChart($("rev-ess"), [
      { xs: xs.concat([n]), ys: s.ess.concat([s.ess_final]), color: COLORS.sample },
      { xs, ys: s.ess_worst, color: COLORS.noise, dash: [4, 3], width: 1.2 },
      { xs: [0, n], ys: [K / 2, K / 2], color: COLORS.muted, dash: [2, 3], width: 1 },
    ], {
      xMin: 0, xMax: n, yMin: 0, yMax: K, marker: i, xLabel: "step", yLabel: `ESS (of ${K})`,
      dots: s.resampled.map((j) => ({ x: j, y: s.ess_worst[j], color: COLORS.noise })),
    });
  },
};
