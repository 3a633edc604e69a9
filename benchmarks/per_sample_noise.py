"""What per-sample seeds cost: one generator against EDM's per-sample generators and Philox streams.

Four ways to draw the same plan (ancestral DDPM, so every step draws fresh noise), timed in one
invocation on the same machine, each `--repeats` times, interleaved, the fastest kept:

* one generator: the design before issue 25's per-sample seeds: x_T = randn(n) from one
  torch.Generator, which then draws every step's noise for the whole batch (a sample's noise
  depends on the batch);
* EDM's per-sample generators (NVlabs/edm generate.py, StackedRandomGenerator): one
  torch.Generator per sample, a Python call per sample per draw;
* Philox streams: samplers/noise.SampleNoise, one vectorised counter-based draw per step;
* denoiselab: `runs.sample`, Philox streams and the network called on the fixed grid of
  samplers/fixed_shape.py (ROWS_PER_CALL rows a call), which makes the samples bit-identical
  in any batch.

The first three call the network once a step on the whole batch.  A line per draw gives the
seconds, the ratio to one generator, and the noise alone (the draws of one path, without the
network).  A last table shows why the network's calls have a fixed shape: the largest change of
a spiral sample (dpm++2m, 20 steps) drawn in batches of 1, 7, 64 and 500 rather than all at once,
with per-sample streams and one network call a batch, and as `runs.sample` draws it.  The runs are the recipes' networks after one training step (the cost of a draw
does not depend on the weights), on one torch thread.

    python benchmarks/per_sample_noise.py                           # spiral n 10000, 100 steps; digits n 500, 20 steps
    python benchmarks/per_sample_noise.py --quick                   # spiral n 2000, 20 steps; digits n 100, 5 steps
    python benchmarks/per_sample_noise.py --differences-only        # the last table alone
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from denoiselab import training
from denoiselab.config import load_config
from denoiselab.runs import load_run, plan_sampling, sample
from denoiselab.runs.sampling import denoiser, guided_model_fn
from denoiselab.samplers import SAMPLERS, CountingModel
from denoiselab.samplers.noise import SampleNoise


class StackedGenerators(SampleNoise):
    """EDM's StackedRandomGenerator: a torch.Generator per sample seeded by its index, each
    drawing its sample's rows in a Python loop."""

    def __init__(self, seed: int, count: int):
        super().__init__(seed, 0, count)
        self.generators = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(count)]

    def normal(self, shape, dtype=torch.float32, device=None):
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, dtype=dtype) for g in self.generators]).to(device)


def _draw(run, plan, noise_kind: str):
    """One draw of ``plan`` with the network called once a step, the noise from ``noise_kind``."""
    shape = (plan.n, *run.sample_shape)
    if noise_kind == "one generator":
        generator = torch.Generator().manual_seed(plan.seed)
        x_T = torch.randn(shape, generator=generator)
    else:
        generator = StackedGenerators(plan.seed, plan.n) if noise_kind == "EDM per-sample generators" else SampleNoise(plan.seed, 0, plan.n)
        x_T = generator.normal(shape)
    model_fn = CountingModel(guided_model_fn(run, plan.guidance))
    return SAMPLERS[plan.sampler](denoiser(run, plan, model_fn), x_T, plan.times, generator=generator, **plan.options)


def _noise_only(run, plan, noise_kind: str) -> float:
    """Seconds to draw one path's noise alone: x_T and one draw per step but the last."""
    shape = (plan.n, *run.sample_shape)
    t0 = time.perf_counter()
    if noise_kind == "one generator":
        g = torch.Generator().manual_seed(plan.seed)
        for _ in range(plan.steps):
            torch.randn(shape, generator=g)
    else:
        noise = StackedGenerators(plan.seed, plan.n) if noise_kind == "EDM per-sample generators" else SampleNoise(plan.seed, 0, plan.n)
        for _ in range(plan.steps):
            noise.normal(shape)
    return time.perf_counter() - t0


KINDS = ("one generator", "EDM per-sample generators", "Philox streams", "denoiselab (Philox + fixed-shape calls)")


def bench(name: str, run, plan, repeats: int) -> None:
    best = dict.fromkeys(KINDS, float("inf"))
    for _ in range(repeats):
        for kind in KINDS:
            t0 = time.perf_counter()
            if kind.startswith("denoiselab"):
                sample(run, plan)
            else:
                _draw(run, plan, kind)
            best[kind] = min(best[kind], time.perf_counter() - t0)
    print(f"\n{name}: {plan.n} samples, {plan.describe()}, one torch thread, fastest of {repeats}")
    print(f"{'noise':42s} {'draw s':>8s} {'/ one gen':>10s} {'noise alone s':>14s}")
    for kind in KINDS:
        alone = _noise_only(run, plan, "Philox streams" if kind.startswith("denoiselab") else kind)
        print(f"{kind:42s} {best[kind]:8.2f} {best[kind] / best['one generator']:10.2f} {alone:14.3f}")


def _plain_batches(run, plan, batch: int):
    """``plan`` drawn ``batch`` samples at a time with per-sample streams but the network called
    once a step on each batch: what the per-sample noise alone makes of a batch."""
    xs = []
    for a in range(0, plan.n, batch):
        b = min(a + batch, plan.n)
        noise = SampleNoise(plan.seed, a, b - a)
        x_T = noise.normal((b - a, *run.sample_shape))
        denoise = denoiser(run, plan, guided_model_fn(run, plan.guidance), rows=slice(a, b))
        xs.append(SAMPLERS[plan.sampler](denoise, x_T, plan.times, generator=noise, **plan.options))
    return torch.cat(xs)


def batch_differences(name: str, run, plan, batches=(1, 7, 64, 500)) -> None:
    """The largest difference of a sample drawn in batches from the same sample drawn all at once."""
    print(f"\n{name}: {plan.n} samples, {plan.describe()}: max |sample in batches - sample all at once| (model units)")
    print(f"{'batch':>6s} {'one call a batch':>18s} {'fixed-shape calls':>18s}")
    whole_plain, whole = _plain_batches(run, plan, plan.n), torch.as_tensor(sample(run, plan, decode=False).x)
    for batch in batches:
        plain = float((_plain_batches(run, plan, batch) - whole_plain).abs().max())
        fixed = float((torch.as_tensor(sample(run, plan, batch=batch, decode=False).x) - whole).abs().max())
        print(f"{batch:6d} {plain:18.2e} {fixed:18.2e}")


def _run(recipe: str, root: Path):
    path = root / recipe
    training.train(load_config(recipe, ["train.steps=1", "train.threads=1"]), path, progress=False, log=lambda *a, **k: None)
    return load_run(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small draws, to check the script")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--differences-only", action="store_true", help="only the last table (no timing)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    points, images = ((2000, 20), (100, 5)) if args.quick else ((10_000, 100), (500, 20))
    with tempfile.TemporaryDirectory() as tmp:
        spiral, digits = _run("spiral", Path(tmp)), _run("digits", Path(tmp))
        with torch.inference_mode():
            if args.differences_only:
                batch_differences("spiral", spiral, plan_sampling(spiral, sampler="dpm++2m", steps=20, n=points[0] // 5, tuned=False))
                return
            bench("spiral", spiral, plan_sampling(spiral, sampler="ddpm", steps=points[1], n=points[0], tuned=False), args.repeats)
            bench("digits", digits, plan_sampling(digits, sampler="ddpm", steps=images[1], n=images[0], tuned=False), args.repeats)
            batch_differences("spiral", spiral, plan_sampling(spiral, sampler="dpm++2m", steps=20, n=points[0] // 5, tuned=False))


if __name__ == "__main__":
    main()
