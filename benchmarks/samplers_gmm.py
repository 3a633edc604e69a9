"""Sampler accuracy at few steps, with the model error taken out.

The model is the exact noise prediction of a known 2D Gaussian mixture
(denoiselab.oracles.two_d_mixture), so every difference from the data distribution is the
sampler's own discretisation error.  For each sampler, grid spacing and step count it draws
N samples with each of R seeds and reports exact W2 and energy distance against 16 fresh
mixture draws (denoiselab.metrics.point_metrics, what `denoiselab evaluate` reports), as ratios
to the floor (those draws against each other).

    python benchmarks/samplers_gmm.py            # about 3 minutes on 2 CPU cores
    python benchmarks/samplers_gmm.py --steps 5 10 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import torch

from denoiselab.metrics import REFERENCE_DRAWS, point_metrics, reference_floor
from denoiselab.oracles import two_d_mixture
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule

CONTENDERS = [
    ("ddpm", "trailing"),
    ("ddim", "trailing"),
    ("ddim", "logsnr"),
    ("dpm++2m", "trailing"),
    ("dpm++2m", "logsnr"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--schedule", default="linear", choices=("linear", "cosine", "quadratic", "sigmoid"))
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=8, help="sample seeds per cell (default 8)")
    args = ap.parse_args()

    gmm = two_d_mixture()
    schedule = make_schedule(args.schedule, 1000)
    denoise = Denoiser(gmm.eps_model(schedule), schedule)
    refs = [gmm.sample(args.n, torch.Generator().manual_seed(1000 + i)).numpy() for i in range(REFERENCE_DRAWS)]
    floor = reference_floor(refs)

    print(
        f"Exact mixture denoiser, {args.schedule} schedule, T = 1000, n = {args.n}, "
        f"{args.repeats} seeds against {len(refs)} reference draws"
    )
    print(f"floor: W2 {floor.w2:.4f}, energy {floor.energy:.5f}\n")
    print("| sampler | spacing | " + " | ".join(f"{s} steps: W2 / energy (x floor)" for s in args.steps) + " |")
    print("|---|---|" + "---|" * len(args.steps))
    t0 = time.perf_counter()
    # The control: exact draws from the mixture score what a perfect sampler would, at this
    # number of seeds.  W2 between two draws of a mixture with separated components scatters
    # by about 30% (it moves the imbalance of component counts), so read sampler rows
    # against this one.
    exact = [gmm.sample(args.n, torch.Generator().manual_seed(2000 + i)).numpy() for i in range(args.repeats)]
    m = point_metrics(exact, refs, floor)
    print("| exact draws (control) | | " + " | ".join([f"{m.w2_ratio:.2f} / {m.energy_ratio:.2f}"] * len(args.steps)) + " |", flush=True)
    for name, spacing in CONTENDERS:
        cells = []
        for steps in args.steps:
            samples = []
            for i in range(args.repeats):
                gen = torch.Generator().manual_seed(i)
                x_T = torch.randn(args.n, 2, generator=gen, dtype=torch.float64)
                samples.append(SAMPLERS[name](denoise, x_T, time_grid(schedule, steps, spacing), generator=gen).numpy())
            m = point_metrics(samples, refs, floor)
            cells.append(f"{m.w2_ratio:.2f} / {m.energy_ratio:.2f}")
        print(f"| {name} | {spacing} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
