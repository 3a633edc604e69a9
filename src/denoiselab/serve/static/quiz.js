/* The quick check at the end of each view: one question, its answer and the feedback for it. */

const QUIZ = {
  forward: { answer: "b",
    right: "Right. Equal power means SNR = ᾱ/(1 − ᾱ) = 1, i.e. ᾱ = 0.5, and 10·log₁₀(1) = 0 dB. Drag the slider to where the readout crosses 0 dB: signal and noise are both 50 %.",
    wrong: "Not quite. SNR is a ratio of powers: equally strong means a ratio of 1, and 10·log₁₀(1) = 0 dB, whatever T is. Try the slider until signal and noise both read 50 %." },
  schedules: { answer: "b",
    right: "Right. At t = 0.25 the cosine schedule still has ᾱ ≈ 0.85 against ≈ 0.52 for linear: its signal decays gently at first, so fewer steps are wasted on near-pure noise.",
    wrong: "Look at the ᾱ chart at t = 0.25 (move the t slider): the orange cosine curve is well above the blue linear one, ᾱ ≈ 0.85 against ≈ 0.52." },
  reverse: { answer: "b",
    right: "Right. The network is trained to minimise squared error, so it predicts the average of every clean point that could have produced this x_t. From pure noise that is the middle of the data; the guess sharpens as the noise drops.",
    wrong: "Not quite. Scrub the timeline: x̂₀ sharpens as t falls. A squared-error predictor returns the mean of all clean points consistent with x_t, and at t near 1 almost every point is consistent, so the mean sits in the middle." },
  playground: { answer: "b",
    right: "Right. The forward process forgets where a point came from. The reverse process draws a new sample from the data distribution, so points land on the spiral (or moons…), but not on their own starting place.",
    wrong: "Not quite. Watch a cluster during the reverse phase: the points end on the data's shape, but the noise at t = 1 no longer knows which data point made it, so each lands somewhere new." },
  train: { answer: "b",
    right: "Right. Given x_t, several (x₀, ε) pairs are possible, so even the best network can only predict the average ε: the leftover variance is a floor that no model can remove.",
    wrong: "Not quite. The loss has a floor: x_t does not pin down ε exactly (many clean points could have led to it), so even a perfect model keeps some error. A flat loss above 0 is normal." },
};

export function initQuizzes() {
  for (const quiz of document.querySelectorAll(".quiz")) {
    const key = quiz.dataset.quiz;
    quiz.querySelector(".check").addEventListener("click", () => {
      const chosen = quiz.querySelector("input:checked");
      const fb = quiz.querySelector(".feedback");
      if (!chosen) { fb.textContent = "Pick an answer first."; fb.className = "feedback"; return; }
      const ok = chosen.value === QUIZ[key].answer;
      fb.textContent = ok ? QUIZ[key].right : QUIZ[key].wrong;
      fb.className = "feedback " + (ok ? "right" : "wrong");
    });
  }
}
