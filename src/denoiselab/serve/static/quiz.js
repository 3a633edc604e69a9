/* The quick check at the end of each view: one question, the right answer's explanation, and for
 * each wrong answer why it is wrong, worded so that it does not give the right one away.  The
 * right answers sit in different places (the page's order of the options is the truth). */

export const QUIZ = {
  forward: { answer: "c",
    right: "Right. Equal power means SNR = α²/σ² = 1, and 10·log₁₀(1) = 0 dB, whatever T is. Drag the slider to where the readout crosses 0 dB: signal and noise both read 50 %.",
    wrong: {
      a: "+10 dB means the signal's power is 10 times the noise's: the signal still dominates there. Find the slider position where the signal and noise readouts are equal, and read the SNR there.",
      b: "−10 dB means the noise's power is 10 times the signal's. Find the slider position where the signal and noise readouts are equal, and read the SNR there.",
      d: "SNR is a ratio of two powers at one noise level; T only sets how many steps the chain takes to get there. Switch T and watch where the signal and noise readouts meet.",
    } },
  schedules: { answer: "a",
    right: "Right. At t = 0.25 the cosine schedule still has ᾱ ≈ 0.85 against ≈ 0.52 for linear: its signal decays gently at first, so fewer steps are wasted on near-pure noise.",
    wrong: {
      b: "Move the t slider to 0.25 and compare the two curves in the ᾱ chart, or the ᾱ column of the table: the linear one is not the higher one there.",
      c: "The schedules agree at the ends (all signal at t = 0, almost none at t = 1) but not in between: compare the ᾱ column of the table at t = 0.25.",
    } },
  reverse: { answer: "d",
    right: "Right. At high noise x_t says little about x₀, so the first estimates are poor: a model that predicts ε gives x̂₀ = (x_t − σ ε̂)/α, which divides its error by a tiny α, and the sampler clamps what lands outside the data's box (the note under the panels says how much, at each step). As the noise comes off, x_t holds more of the data and x̂₀ sharpens onto its shape.",
    wrong: {
      a: "Compare the third panel at step 1 with the last step: it changes at every step, because x̂₀ is computed afresh from each new x_t.",
      b: "Put the first and third panels side by side at an early step: x_t is the noisy sample itself, x̂₀ is what the network reads out of it, and the two clouds differ.",
      c: "Watch the middle steps: the third panel does not stay noise-like until the end; the note under the panels tracks its spread against the data's at every step.",
    } },
  playground: { answer: "c",
    right: "Right. The forward process forgets where a point came from. The reverse process draws a new sample from the data distribution, so points land on the spiral (or moons…), but not on their own starting place.",
    wrong: {
      a: "Follow one cluster through the animation: by the end of the forward phase the noise keeps no record of where a point began, so the reverse process has nothing to return it with.",
      b: "Watch the last frames of the reverse phase: the cloud at the end is not the shapeless noise it started from.",
    } },
  train: { answer: "a",
    right: "Right. Given x_t, several (x₀, ε) pairs are possible, so even the best network can only predict the average ε: the leftover variance is a floor that no model can remove.",
    wrong: {
      b: "A loss of 0 would mean the network recovers the exact noise from every x_t. Ask whether one noisy x_t always comes from just one clean point.",
      c: "A smaller learning rate changes how fast and how smoothly the loss falls, not the level a trained model settles at: look at how flat the moving average already is.",
    } },
};

export function initQuizzes() {
  for (const quiz of document.querySelectorAll(".quiz")) {
    const key = quiz.dataset.quiz;
    quiz.querySelector(".check").addEventListener("click", () => {
      const chosen = quiz.querySelector("input:checked");
      const fb = quiz.querySelector(".feedback");
      if (!chosen) { fb.textContent = "Pick an answer first."; fb.className = "feedback"; return; }
      const ok = chosen.value === QUIZ[key].answer;
      fb.textContent = ok ? QUIZ[key].right : "Not quite. " + QUIZ[key].wrong[chosen.value];
      fb.className = "feedback " + (ok ? "right" : "wrong");
    });
  }
}
