"""Few-step samplers: denoiselab's solvers and grids against diffusers' schedulers, one model.

The model is the exact noise prediction of a known 2D Gaussian mixture under the linear
schedule (T = 1000), so every difference from the data distribution is the sampler's own
discretisation error.  Two mixtures: ``three`` (denoiselab.oracles.two_d_mixture: three
separated components) and ``ring`` (oracles.ring_mixture: eight narrow modes of std 0.05 on a
ring, unequal weights, around a wide centre).  Every sampler starts from the same noise.
diffusers calls the model at its integer (or, for the Karras Euler grid, fractional) timestep j,
which is read as t = (j + 1) / T, as a network trained on the chain would be.

Three scores per cell:
  * energy: denoiselab.metrics.energy_distance of the first n samples against a fresh exact draw of n,
    as a multiple of the floor (the same between independent exact draws; a perfect sampler
    scores about 1);
  * logp gap (over all --n-gap samples): |mean log p(samples) - E log p| with the mixture's exact density (oracles.log_prob),
    E log p from 10^6 draws; an exact draw of n scores about its standard error, which is the
    same for every sampler (they share the noise) and hides differences smaller than it;
  * paired gap: the same gap estimated with a control variate, |mean over z of
    log p(S(z)) - log p(R(z))|, where R(z) is a high-accuracy solve of the same probability-flow
    ODE from the same noise z (reference_solve; its change with twice the steps is printed).
    R pushes N(0, I) forward to the data (up to the chain's terminal SNR, 4e-5), so
    E_z log p(R(z)) = E log p and both gaps estimate the same number;
    the shared noise cancels, leaving a standard error (printed per mixture for exact-ish
    samplers) far below the unpaired one.  This is the score the targets are read on.

    python benchmarks/samplers_vs_diffusers.py                  # both mixtures, 5 8 10 20 NFE
    python benchmarks/samplers_vs_diffusers.py --mixture ring --nfe 5 10 -n 2000
    python benchmarks/samplers_vs_diffusers.py --tuned --json out.json   # + tuned grids (~40 min; --mixture three / ring in two processes: ~20 each)
    python benchmarks/samplers_vs_diffusers.py --from-json out.json      # reprint the summaries
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np
import torch

from denoiselab.choices import TUNING_CALLS
from denoiselab.metrics import energy_distance
from denoiselab.oracles import ring_mixture, two_d_mixture
from denoiselab.samplers import SAMPLERS, TWO_EVALUATIONS_PER_STEP, CountingModel, Denoiser, time_grid
from denoiselab.schedules import make_schedule

warnings.filterwarnings("ignore", category=DeprecationWarning)

MIXTURES = {"three": two_d_mixture, "ring": ring_mixture}
T = 1000
OURS = [
    # (sampler, options)
    ("ddim", {}),
    ("dpm++2m", {}),
    ("dpm++3m", {}),
    ("unipc", {"order": 2, "variant": "bh2"}),
    ("unipc", {"order": 3, "variant": "bh2"}),
    ("unipc", {"order": 3, "variant": "bh1"}),
    ("ipndm", {"order": 4}),
    ("ipndm", {"order": 3}),
    ("dpm++2s", {}),
    ("heun", {}),
    ("edm-heun", {}),
]
# The configurations whose grid is also tuned with --tuned (tuning costs --tune-calls sampler runs each).
TUNED = {("dpm++2m", ()), ("dpm++3m", ()), ("unipc", (("order", 2), ("variant", "bh2"))), ("unipc", (("order", 3), ("variant", "bh2"))), ("ipndm", (("order", 3),))}
OUR_GRIDS = ("trailing", "logsnr", "karras")  # time-uniform is trailing on a T = 1000 chain


def theirs():
    """(label, scheduler factory) for every diffusers configuration compared."""
    import diffusers as d

    base = {"num_train_timesteps": T, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02}
    dpm = {**base, "algorithm_type": "dpmsolver++"}
    return [
        ("DDIM trailing", lambda: d.DDIMScheduler(**base, timestep_spacing="trailing", clip_sample=False)),
        ("DPM++ 2M", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=2)),
        ("DPM++ 2M karras", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=2, use_karras_sigmas=True)),
        ("DPM++ 2M lu-lambdas", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=2, use_lu_lambdas=True)),
        ("DPM++ 3M", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=3)),
        ("DPM++ 3M karras", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=3, use_karras_sigmas=True)),
        ("DPM++ 3M lu-lambdas", lambda: d.DPMSolverMultistepScheduler(**dpm, solver_order=3, use_lu_lambdas=True)),
        ("UniPC", lambda: d.UniPCMultistepScheduler(**base)),
        ("UniPC karras", lambda: d.UniPCMultistepScheduler(**base, use_karras_sigmas=True)),
        ("UniPC-3", lambda: d.UniPCMultistepScheduler(**base, solver_order=3)),
        ("DEIS", lambda: d.DEISMultistepScheduler(**base)),
        ("DEIS-3", lambda: d.DEISMultistepScheduler(**base, solver_order=3)),
        ("Euler karras", lambda: d.EulerDiscreteScheduler(**base, use_karras_sigmas=True)),
    ]


def run_theirs(make, model_fn, x_T: torch.Tensor, nfe: int) -> tuple[torch.Tensor, int]:
    """diffusers' own loop: scale_model_input, the model at timestep j (t = (j + 1) / T), step."""
    sched = make()
    sched.set_timesteps(nfe)
    counting = CountingModel(model_fn)
    x = x_T * sched.init_noise_sigma
    for j in sched.timesteps:
        x_in = sched.scale_model_input(x, j)
        t = torch.full((x.shape[0],), (float(j) + 1) / T, dtype=x.dtype)
        x = sched.step(counting(x_in, t), j, x).prev_sample
    return x, counting.calls


def our_steps(name: str, nfe: int) -> int:
    """Steps within the budget: two-call samplers take 2 N - 1 <= nfe."""
    return (nfe + 1) // 2 if name in TWO_EVALUATIONS_PER_STEP else nfe


def label(name: str, options: dict) -> str:
    extra = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{name}({extra})" if extra else name


# The paired gap's reference: DPM-Solver++(3M) on REFERENCE_STEPS points uniform in log-SNR
# from t = 1 down to t = REFERENCE_T_MIN, then the last step to 0.  It goes below the chain's
# last step t = 1 / T on purpose (the closed-form model is defined at any t): from t = 1 / T
# (sigma = 0.01) every sampler here, ours and diffusers', ends with one step to the
# posterior mean E[x0 | x_t], which pulls points towards the centres of modes as narrow as
# the ring's (std 0.05) and raises the mean log-density by about 0.03 there; continued to
# t = 1e-5 (sigma 3e-4) the solve lands on the data distribution itself (its mean log p is
# E log p within the standard error; both are printed).
REFERENCE_STEPS = 500
REFERENCE_T_MIN = 1e-5


def reference_solve(denoise: Denoiser, x_T: torch.Tensor, steps: int = REFERENCE_STEPS, t_min: float = REFERENCE_T_MIN) -> torch.Tensor:
    schedule = denoise.schedule
    ends = schedule.half_log_snr_at(torch.tensor([1.0, t_min], dtype=torch.float64))
    lam = torch.linspace(float(ends[0]), float(ends[1]), steps, dtype=torch.float64)
    grid = torch.cat([schedule.time_at_half_log_snr(lam).to(torch.float64), torch.zeros(1, dtype=torch.float64)])
    grid[0] = 1.0  # exactly the start of every other sampler here
    return SAMPLERS["dpm++3m"](denoise, x_T, grid)


class Scorer:
    def __init__(self, mixture, n: int, seed: int, reference_end: torch.Tensor):
        self.mixture, self.n = mixture, n
        g = torch.Generator().manual_seed(seed)
        self.reference = mixture.sample(n, g).numpy()
        floors = [energy_distance(mixture.sample(n, g).numpy(), self.reference) for _ in range(4)]
        self.floor, self.floor_std = float(np.mean(floors)), float(np.std(floors))
        self.mean_logp = float(mixture.log_prob(mixture.sample(10**6, g)).mean())
        exact = mixture.sample(len(reference_end), g)
        self.logp_se = float(mixture.log_prob(exact).std()) / math.sqrt(len(exact))
        self.reference_logp = mixture.log_prob(reference_end.double())

    def __call__(self, x: torch.Tensor) -> tuple[float, float, float, float]:
        """(energy / floor, unpaired gap, paired gap, standard error of the paired gap)."""
        x = x.double()
        if not bool(torch.isfinite(x).all()):
            return math.inf, math.inf, math.inf, math.inf
        ed = energy_distance(x[: self.n].numpy(), self.reference) / self.floor
        logp = self.mixture.log_prob(x)
        gap = abs(float(logp.mean()) - self.mean_logp)
        diff = logp - self.reference_logp
        return ed, gap, abs(float(diff.mean())), float(diff.std()) / math.sqrt(len(diff))


def summary(cells: list[dict], mix_name: str, nfes: list[int]) -> None:
    """Best of each side at each budget, by each score (the paired gap with its standard error);
    and, because a signed gap can cross zero by luck (too narrow in one mode, too wide in
    another), the paired gap of the configuration that is best in energy distance, and a
    conservative ratio: the smallest gap + 2 standard errors of ours against the smallest
    gap - 2 standard errors of diffusers'."""
    print(f"\nBest of each at the same evaluation budget ({mix_name}); ratio = denoiselab / diffusers "
          "(target <= 0.67 at 5-10 NFE, <= 1 at 20):\n")
    keys = [("energy", "energy", "{:.2f}")] + ([("paired_gap", "paired logp gap", "{:.4f}")] if any("paired_gap" in c for c in cells) else []) + [("logp_gap", "unpaired logp gap", "{:.4f}")]
    head = ["NFE"]
    for _, name, _ in keys:
        head += [f"denoiselab best {name}", f"diffusers best {name}", "ratio"]
    gap_key = keys[1][0]
    head.append(f"{keys[1][1]} of the best-energy configs: denoiselab / diffusers")
    bounded = gap_key == "paired_gap"
    if bounded:
        head.append("conservative paired gap: denoiselab's smallest gap + 2 SE / diffusers' smallest gap - 2 SE (ratio)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for nfe in nfes:
        here = [c for c in cells if c["mixture"] == mix_name and c["nfe"] == nfe]
        parts, best_energy = [f"{nfe}"], {}
        for key, _, fmt in keys:
            ours = min((c for c in here if c["who"] == "denoiselab"), key=lambda c: c[key])
            them = min((c for c in here if c["who"] == "diffusers"), key=lambda c: c[key])

            def show(c):
                se = f" ± {c['paired_se']:.4f}" if key == "paired_gap" else ""
                return f"{fmt.format(c[key])}{se} {c['sampler']} {c['grid']}".strip()

            parts += [show(ours), show(them), f"{ours[key] / them[key]:.2f}" if them[key] > 0 else "-"]
            if key == "energy":
                best_energy = {"ours": ours, "them": them}
        parts.append(f"{best_energy['ours'][gap_key]:.4f} / {best_energy['them'][gap_key]:.4f}")
        if bounded:  # a best-of-many minimum of a signed, noisy gap favours zero crossings; this does not
            upper = min((c for c in here if c["who"] == "denoiselab"), key=lambda c: c["paired_gap"] + 2 * c["paired_se"])
            lower = min((c for c in here if c["who"] == "diffusers"), key=lambda c: c["paired_gap"] - 2 * c["paired_se"])
            up, low = upper["paired_gap"] + 2 * upper["paired_se"], max(lower["paired_gap"] - 2 * lower["paired_se"], 0.0)
            parts.append(f"{up:.4f} {upper['sampler']} {upper['grid']} / {low:.4f} {lower['sampler']} ({up / low:.2f})" if low > 0 else f"{up:.4f} / 0 (-)")
        print("| " + " | ".join(parts) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixture", nargs="+", choices=tuple(MIXTURES), default=list(MIXTURES))
    ap.add_argument("--nfe", type=int, nargs="+", default=[5, 8, 10, 20])
    ap.add_argument("-n", type=int, default=4000, help="samples per cell for the energy distance (default 4000; it costs n^2)")
    ap.add_argument("--n-gap", type=int, default=40000, help="samples per cell for the log-density gaps (default 40000; the first n also give the energy)")
    ap.add_argument("--tuned", action="store_true", help="add grids tuned by denoiselab.tuning for a few samplers (on their own noise, scored on this one)")
    ap.add_argument("--tune-calls", type=int, default=TUNING_CALLS, help=f"sampler runs per tuned grid's search (default {TUNING_CALLS}, the same as denoiselab tune-steps)")
    ap.add_argument("--tune-seconds", type=float, help="also stop each search after this many seconds (the tables of BENCHMARKS.md were tuned for 60 s each, before the budget was counted in calls)")
    ap.add_argument("--tune-n", type=int, default=1000, help="starting points of each tuning search (default 1000)")
    ap.add_argument("--json", help="write every cell here")
    ap.add_argument("--from-json", help="only reprint the summaries of a saved --json file")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            cells = json.load(f)
        for mix_name in dict.fromkeys(c["mixture"] for c in cells):
            summary(cells, mix_name, sorted({c["nfe"] for c in cells if c["mixture"] == mix_name}))
        return
    torch.set_num_threads(1)
    schedule = make_schedule("linear", T)
    cells = []
    t0 = time.perf_counter()
    for mix_name in args.mixture:
        mixture = MIXTURES[mix_name]()
        model_fn = mixture.eps_model(schedule)
        x_T = torch.randn(max(args.n, args.n_gap), 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        denoise = Denoiser(model_fn, schedule)
        reference_end = reference_solve(denoise, x_T)
        finer = reference_solve(denoise, x_T, 2 * REFERENCE_STEPS, REFERENCE_T_MIN / 100)
        chain_end = reference_solve(denoise, x_T, REFERENCE_STEPS, 1 / T)
        score = Scorer(mixture, args.n, seed=7, reference_end=reference_end)
        shift = float((mixture.log_prob(finer.double()) - score.reference_logp).mean())
        print(f"\n## {mix_name}: n = {args.n} for energy, {len(x_T)} for the gaps; energy floor {score.floor:.2e} (std {score.floor_std:.1e} over 4 exact draws), "
              f"E log p = {score.mean_logp:.4f}, standard error of a mean over {len(x_T)} exact draws {score.logp_se:.4f}; "
              f"paired reference: DPM-Solver++(3M), {REFERENCE_STEPS} log-SNR-uniform steps to t = {REFERENCE_T_MIN:g}, mean log p of its endpoints "
              f"{float(score.reference_logp.mean()):.4f} (twice the steps to t = {REFERENCE_T_MIN / 100:g}: mean log p changes by {shift:+.1e}, "
              f"mean |x| change {float((finer - reference_end).norm(dim=1).mean()):.1e}; stopped at the chain's last step t = 1/T instead: "
              f"{float(mixture.log_prob(chain_end.double()).mean()):.4f}, the floor every sampler that ends there shares)\n")
        print("| sampler | grid | " + " | ".join(f"{k} NFE: energy (x floor) / logp gap / paired gap" for k in args.nfe) + " |")
        print("|---|---|" + "---|" * len(args.nfe))

        def row(who, sampler, grid, results):
            line = " | ".join(f"{ed:.2f} / {gap:.4f} / {pg:.4f}" + (f" ({calls})" if calls != nfe else "") for nfe, (ed, gap, pg, se, calls) in zip(args.nfe, results))
            print(f"| {sampler} | {grid} | {line} |", flush=True)
            for nfe, (ed, gap, pg, se, calls) in zip(args.nfe, results):
                cells.append({"mixture": mix_name, "who": who, "sampler": sampler, "grid": grid, "nfe": nfe, "evaluations": calls,
                              "energy": ed, "logp_gap": gap, "paired_gap": pg, "paired_se": se})

        exact = mixture.sample(len(x_T), torch.Generator().manual_seed(99))
        row("exact", "exact draws (control)", "", [(*score(exact), nfe) for nfe in args.nfe])
        for name, options in OURS:
            for grid_name in OUR_GRIDS:
                results = []
                for nfe in args.nfe:
                    counting = CountingModel(model_fn)
                    grid = time_grid(schedule, our_steps(name, nfe), grid_name)
                    x = SAMPLERS[name](Denoiser(counting, schedule), x_T, grid, **options)
                    results.append((*score(x), counting.calls))
                row("denoiselab", label(name, options), grid_name, results)
            if args.tuned and (name, tuple(options.items())) in TUNED:
                from denoiselab.tuning import steps_for, tune_grid

                results = []
                for nfe in args.nfe:
                    budget = nfe if name not in TWO_EVALUATIONS_PER_STEP else 2 * steps_for(name, nfe - (nfe + 1) % 2) - 1
                    tuned = tune_grid(denoise, name, budget, shape=(2,), seed=1, n=args.tune_n, options=options, max_calls=args.tune_calls, max_seconds=args.tune_seconds)
                    counting = CountingModel(model_fn)
                    x = SAMPLERS[name](Denoiser(counting, schedule), x_T, tuned.grid, **options)  # x_T: not the tuning noise
                    results.append((*score(x), counting.calls))
                row("denoiselab", label(name, options), "tuned", results)
        for their_label, make in theirs():
            results = []
            for nfe in args.nfe:
                x, calls = run_theirs(make, model_fn, x_T, nfe)
                results.append((*score(x), calls))
            row("diffusers", their_label, "", results)

        summary(cells, mix_name, args.nfe)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(cells, f, indent=1)


if __name__ == "__main__":
    main()
