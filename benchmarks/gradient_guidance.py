"""Gradient guidance against the exact conditional, with the model error taken out.

The model is the exact denoiser of a labelled 2D Gaussian mixture (denoiselab.oracles.
labelled_mixture), whose conditionals are known in closed form: p(x | y) (a sub-mixture),
p(x2 | x1 = a) (a reweighted mixture) and, by rejection, p(x | x in a region).  So every
distance left is the guidance method's own error plus the sampler's discretisation error, and
the exact-likelihood rows show the latter alone.

Tables (every cell: W2 / energy distance as ratios to the floor, by metrics.point_metrics,
R sample sets of n points against 16 exact draws of the conditional; "evals" is model
evaluations + backward passes through the model per sample):

1. classifier guidance with the exact noisy classifier p(y | x_t) at scales 0, 0.5, 1, 2 vs p(x | y);
2. conditioning on x1 = a for several a: the exact observation likelihood (guidance by
   grad log p(x1_0 = a | x_t), which is exact at s = 1), replacement (RePaint-style, no
   resampling), DPS (forward guidance by the Gaussian misfit |x0_hat,1 - a|^2 / 2 through the
   denoiser, scale s) and universal guidance (forward s plus one backward step) vs p(x2 | x1 = a),
   across sampler steps;
3. a region constraint (x2 > 1) by loss guidance at several scales vs the truncated mixture.

    python benchmarks/gradient_guidance.py              # about 11 minutes on 2 busy CPU cores
    python benchmarks/gradient_guidance.py --quick      # a smoke run (fewer sets, steps, a)
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from denoiselab.gradient_guidance import (
    GuidanceCounts,
    classifier_guidance,
    counted,
    likelihood_guidance,
    loss_guidance,
    observation_loss,
    paste_observed,
    replacement,
)
from denoiselab.metrics import REFERENCE_DRAWS, point_metrics, reference_floor
from denoiselab.oracles import GaussianMixture, labelled_mixture
from denoiselab.regions import parse_region
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule

MIX = labelled_mixture()
SCHEDULE = make_schedule("linear", 1000)


def references(mix: GaussianMixture, n: int) -> tuple[list[np.ndarray], object]:
    refs = [mix.sample(n, torch.Generator().manual_seed(1000 + i)).numpy() for i in range(REFERENCE_DRAWS)]
    return refs, reference_floor(refs)


def draw_sets(make_model, n: int, repeats: int, sampler: str, steps: int, finish=lambda x: x):
    """``repeats`` sample sets (seeds 0..R-1), each from a fresh model (its own counts)."""
    sets, counts = [], GuidanceCounts()
    for seed in range(repeats):
        counts = GuidanceCounts()
        gen = torch.Generator().manual_seed(seed)
        x_T = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        model = make_model(counts, seed)
        x = SAMPLERS[sampler](Denoiser(model, SCHEDULE), x_T, time_grid(SCHEDULE, steps, "logsnr"), generator=gen)
        sets.append(finish(x).numpy())
    return sets, counts


def cell(sets, refs, floor) -> str:
    m = point_metrics(sets, refs, floor)
    return f"{m.w2_ratio:.2f} / {m.energy_ratio:.2f}"


def classifier_table(args) -> None:
    print("\n### 1. Classifier guidance with the exact classifier vs p(x | y)\n")
    print(f"{args.sampler}, {args.steps_main} steps, logsnr grid. Scale 1 is the exact conditional; 0 is the unguided model.\n")
    scales = (0.0, 0.5, 1.0, 2.0)
    print("| class | exact draws (control) | " + " | ".join(f"s = {s:g}" for s in scales) + " |")
    print("|---|---|" + "---|" * len(scales))
    denoiser, classifier = MIX.denoiser(SCHEDULE), MIX.classifier(SCHEDULE)
    for y in range(MIX.num_classes):
        target = MIX.class_conditional(y)
        refs, floor = references(target, args.n)
        control = [target.sample(args.n, torch.Generator().manual_seed(2000 + i)).numpy() for i in range(args.repeats)]
        cells = [cell(control, refs, floor)]
        for s in scales:
            sets, _ = draw_sets(
                lambda c, seed, s=s: classifier_guidance(denoiser, classifier, s, SCHEDULE, "eps", label=y, counts=c),
                args.n, args.repeats, args.sampler, args.steps_main,
            )  # fmt: skip
            cells.append(cell(sets, refs, floor))
        print(f"| {y} | " + " | ".join(cells) + " |", flush=True)


def observation_methods(a: float, dps_scales, universal_scales):
    """(name, scale, make_model(counts, seed)) for conditioning on x1 = a."""
    mask, values = torch.tensor([True, False]), torch.tensor([a, 0.0], dtype=torch.float64)
    denoiser = MIX.denoiser(SCHEDULE)
    exact = MIX.observation_likelihood(SCHEDULE, mask, values)
    misfit = observation_loss(mask, values, noise_std=1.0)  # |x0_1 - a|^2 / 2: the scale is the DPS step
    methods = [
        ("exact likelihood", "1", lambda c, seed: likelihood_guidance(counted(denoiser, c), lambda x, t, y: exact(x, t), 1.0, SCHEDULE, "eps", counts=c)),
        ("replacement (RePaint, no resampling)", "-", lambda c, seed: replacement(counted(denoiser, c), mask, values, SCHEDULE, "eps", generator=torch.Generator().manual_seed(10_000 + seed))),
    ]  # fmt: skip
    for s in dps_scales:
        methods.append(("DPS", f"{s:g}", lambda c, seed, s=s: loss_guidance(counted(denoiser, c), misfit, s, SCHEDULE, "eps", counts=c)))
    for s in universal_scales:
        methods.append((
            "universal (forward + 1 backward step)", f"{s:g}",
            lambda c, seed, s=s: loss_guidance(counted(denoiser, c), misfit, s, SCHEDULE, "eps", backward_steps=1, backward_lr=1.0, counts=c),
        ))  # fmt: skip
    return mask, values, methods


def observation_table(args) -> None:
    print("\n### 2. Conditioning on x1 = a vs p(x2 | x1 = a)\n")
    print(
        f"{args.sampler} on the logsnr grid; columns are sampler steps.  Scores are of x2 alone (x1 is set to a in every "
        "returned sample).  DPS and universal guidance use the misfit |x0_hat,1 - a|^2 / 2, so s is the step on it.\n"
    )
    for a in args.a:
        target = MIX.condition({0: a})
        refs, floor = references(target, args.n)
        mask, values, methods = observation_methods(a, args.dps_scales, args.universal_scales)
        print(f"\n**a = {a:g}** (p(x2 | x1 = a): weights {', '.join(f'{w:.2f}' for w in target.weights.tolist())})\n")
        print("| method | s | " + " | ".join(f"{k} steps (evals)" for k in args.steps) + " |")
        print("|---|---|" + "---|" * len(args.steps))
        control = [target.sample(args.n, torch.Generator().manual_seed(2000 + i)).numpy() for i in range(args.repeats)]
        print("| exact draws (control) | | " + " | ".join([cell(control, refs, floor)] * len(args.steps)) + " |")
        for name, scale, make in methods:
            cells = []
            for steps in args.steps:
                sets, counts = draw_sets(make, args.n, args.repeats, args.sampler, steps, lambda x: paste_observed(x, mask, values)[:, 1:])
                cells.append(f"{cell(sets, refs, floor)} ({counts.evaluations + counts.model_backward})")
            print(f"| {name} | {scale} | " + " | ".join(cells) + " |", flush=True)


def truncated_draws(region, n: int, seed: int) -> np.ndarray:
    """Exact draws of p(x | x in region) by rejection from the mixture."""
    gen, kept = torch.Generator().manual_seed(seed), []
    while sum(len(k) for k in kept) < n:
        x = MIX.sample(20 * n, gen)
        kept.append(x[region.contains(x)])
    return torch.cat(kept)[:n].numpy()


def region_table(args) -> None:
    region = parse_region(args.region, 2)
    print(f"\n### 3. A region constraint ({args.region}) vs the truncated mixture\n")
    print(
        f"Loss guidance by L = violation^2 on x0_hat (regions.py), {args.sampler}, {args.steps_main} steps.  The exact "
        "conditional p(x | x in region) is drawn by rejection.  Share inside: the share of guided samples in the region.\n"
    )
    refs = [truncated_draws(region, args.n, 1000 + i) for i in range(REFERENCE_DRAWS)]
    floor = reference_floor(refs)
    control = [truncated_draws(region, args.n, 2000 + i) for i in range(args.repeats)]
    print("| scale | W2 / energy (x floor) | share inside |")
    print("|---|---|---|")
    print(f"| exact draws (control) | {cell(control, refs, floor)} | 1.00 |")
    denoiser = MIX.denoiser(SCHEDULE)
    for s in args.region_scales:
        sets, _ = draw_sets(
            lambda c, seed, s=s: loss_guidance(denoiser, lambda x0, t: region.loss(x0), s, SCHEDULE, "eps", counts=c),
            args.n, args.repeats, args.sampler, args.steps_main,
        )  # fmt: skip
        inside = np.mean([region.contains(torch.as_tensor(x)).double().mean().item() for x in sets])
        print(f"| {s:g} | {cell(sets, refs, floor)} | {inside:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="points per sample set (default 1000)")
    ap.add_argument("--repeats", type=int, default=4, help="sample sets per cell (default 4)")
    ap.add_argument(
        "--sampler", default="dpm++2m", choices=tuple(SAMPLERS),
        help="default dpm++2m, whose own error is at the floor by 20 steps on this mixture (ddpm needs about 200)",
    )  # fmt: skip
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50], help="sampler steps of table 2")
    ap.add_argument("--steps-main", type=int, default=50, help="sampler steps of tables 1 and 3")
    ap.add_argument("--a", type=float, nargs="+", default=[-1.5, 0.0, 0.8], help="observed values of x1")
    ap.add_argument("--dps-scales", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    ap.add_argument("--universal-scales", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--region", default="x2 > 1")
    ap.add_argument("--region-scales", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--quick", action="store_true", help="smoke run: n 500, 2 sets, 20 steps, one a")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeats, args.steps, args.steps_main, args.a = 500, 2, [20], 20, [0.0]
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(
        f"Exact denoiser of oracles.labelled_mixture (4 components, 2 classes), linear schedule, T = 1000, n = {args.n}, "
        f"{args.repeats} sample sets per cell, 16 reference draws; torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread"
    )
    classifier_table(args)
    observation_table(args)
    region_table(args)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
