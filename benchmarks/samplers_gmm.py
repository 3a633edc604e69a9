"""Sampler accuracy at few steps, with the model error taken out.

The model is the exact noise prediction of a known 2D Gaussian mixture
(denoiselab.oracles.two_d_mixture), so every difference from the data distribution is the
sampler's own discretisation error.  For each sampler, grid spacing and step count it draws
N samples and reports exact W2 and energy distance against fresh mixture samples, as ratios
to the floor (mixture against mixture at the same N), averaged over R seeds.

    python benchmarks/samplers_gmm.py            # about a minute on 2 CPU cores
    python benchmarks/samplers_gmm.py --steps 5 10 --repeats 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from denoiselab.metrics import energy_distance, w2_exact
from denoiselab.oracles import two_d_mixture
from denoiselab.samplers import SAMPLERS
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
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()

    gmm = two_d_mixture()
    schedule = make_schedule(args.schedule, 1000)
    model = gmm.eps_model(schedule)
    refs = [gmm.sample(args.n, torch.Generator().manual_seed(1000 + i)).numpy() for i in range(2 * args.repeats)]
    floor_w2 = np.mean([w2_exact(refs[i], refs[args.repeats + i]) for i in range(args.repeats)])
    floor_ed = np.mean([energy_distance(refs[i], refs[args.repeats + i]) for i in range(args.repeats)])

    print(f"Exact mixture denoiser, {args.schedule} schedule, T = 1000, n = {args.n}, mean of {args.repeats} seeds")
    print(f"floor: W2 {floor_w2:.4f}, energy {floor_ed:.5f}\n")
    print("| sampler | spacing | " + " | ".join(f"{s} steps: W2 / energy (x floor)" for s in args.steps) + " |")
    print("|---|---|" + "---|" * len(args.steps))
    t0 = time.perf_counter()
    for name, spacing in CONTENDERS:
        cells = []
        for steps in args.steps:
            w2s, eds = [], []
            for i in range(args.repeats):
                gen = torch.Generator().manual_seed(i)
                x_T = torch.randn(args.n, 2, generator=gen, dtype=torch.float64)
                x = SAMPLERS[name](model, x_T, schedule, steps, spacing=spacing, generator=gen).numpy()
                w2s.append(w2_exact(x, refs[i]))
                eds.append(energy_distance(x, refs[i]))
            cells.append(f"{np.mean(w2s) / floor_w2:.2f} / {np.mean(eds) / floor_ed:.2f}")
        print(f"| {name} | {spacing} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
