"""Where a checkerboard run's likelihood gap lies: by distance to the squares' edges, and whether
the solve has converged.

Run, on a trained checkerboard run (e.g. one of benchmarks/likelihood.py --runs DIR):

    python benchmarks/checkerboard_edges.py RUN --rtol 1e-3 5e-4

The checkerboard's density (data/densities.py) is 1/8 on eight closed unit squares and 0 elsewhere;
every edge of a dark square borders a light square or the outside, so every edge is a jump.  A
flow's density is smooth: near an edge it must fall from 1/8 to 0 over some width, and the points
there pay for it.  For the same fresh draws as ``denoiselab likelihood`` (likelihood_points, seed
0) this prints the paired gap NLL_model - NLL_true of each point, binned by the point's distance to
the nearest edge (the distance of a coordinate to the nearest integer, the smaller of the two): the
share of the points in each bin, their mean gap, and the bin's share of the total gap.  With
several --rtol it also solves at each and prints how far the NLL moved from the first: a gap that
moves by much less than its standard error has converged in the solver.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from denoiselab.runs import load_run
from denoiselab.runs.likelihood import likelihood_points, measure_likelihood

BINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # 0.5: the farthest a point can be from an edge of its unit square


def distance_to_edge(x: np.ndarray) -> np.ndarray:
    """The distance of each point (n, 2) to the nearest line of the unit grid, where every edge lies."""
    frac = x - np.floor(x)
    return np.minimum(frac, 1 - frac).min(axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a trained run of the checkerboard")
    p.add_argument("--rtol", type=float, nargs="+", default=[1e-3], help="rk45 tolerances (rtol = atol); the first is binned")
    p.add_argument("-n", "--n", type=int, default=2000, help="fresh points (default 2000, as denoiselab likelihood)")
    args = p.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    if run.info.get("data") != "checkerboard":
        p.error(f"run: {args.run} is a run of {run.info.get('data')!r}; expected a run of the checkerboard")
    points = likelihood_points(run, n=args.n, seed=0)
    results = []
    for tol in args.rtol:
        start = time.perf_counter()
        r = measure_likelihood(run, points, rtol=tol, atol=tol)
        gap = r.nll - r.true_nll
        print(f"rtol = atol = {tol:g}: gap {gap.mean():.4f} ± {gap.std(ddof=1) / np.sqrt(len(gap)):.4f} nats, "
              f"{time.perf_counter() - start:.1f} s, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        results.append(r)
    gap, d = results[0].nll - results[0].true_nll, distance_to_edge(points.x)
    print("\n| distance to the nearest edge | share of the points | mean gap there | its share of the total |\n|---|---:|---:|---:|")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        k = (d >= lo) & (d < hi)
        print(f"| [{lo:g}, {hi:g}) | {k.mean():.3f} | {gap[k].mean() if k.any() else float('nan'):.3f} | {gap[k].sum() / len(gap):.3f} |")
    for tol, r in zip(args.rtol[1:], results[1:]):
        moved = results[0].nll - r.nll
        print(f"\nrtol {args.rtol[0]:g} against {tol:g}: mean gap moved {moved.mean():+.5f}, each point {np.abs(moved).mean():.5f} on average")


if __name__ == "__main__":
    main()
