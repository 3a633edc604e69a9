"""Conditional samples p(x2 | x1 = V) against the truth: twisted SMC against gradient guidance.

Two models, one table each:

1. the mixture oracle (denoiselab.oracles.labelled_mixture with its exact denoiser), whose
   conditional p(x2 | x1 = V) is a reweighted mixture in closed form: what is left is each
   method's own error (no model error);
2. a trained run (default: the `spiral` recipe as `denoiselab train` makes it), against the true
   conditional of its data generator, drawn by rejection: seed 001's spiral drawn as the run's
   training set was (data.sources.draw), the points with |x1 - V| < BAND kept.

For each observed value V and method: x2 of n samples against n true draws by the 1-D W2
(sorted differences), as a ratio to its floor (the W2 between two independent true draws of n,
averaged over pairs), and the mass in each mode of the truth (modes: the runs of 0.02-wide bins
holding at least 2 % of the densest bin's truth mass, gaps of up to 3 bins bridged; "off" is the
mass outside every mode).  On the trained run, a first row scores the model's own conditional:
its unguided samples (dpm++2m, 20 steps) with |x1 - V| < 0.01, which separates the model's error
from the method's (an exact conditional sampler of this model approaches that row); a second row
the same drawn by 80 ancestral DDPM steps, the chain the default SMC runs, whose own conditional
is what SMC approaches as K grows.  Above them, "the truth itself" scores n more true draws (another
seed) against the same floor and references: what a perfect sampler gets, which is well above 1
where two modes of near-equal mass make one pair's W2 mostly the binomial imbalance of their
counts (``--refs K`` averages the floor over 2K pairs and a ratio over K references; default 4).
Methods: dps (scales 1, 3, 10), replace, universal (scale 10; the defaults of runs/guided.py
otherwise), on the run's default sampler (dpm++2m, 20 steps, logsnr grid), and twisted SMC
(smc.py) at K = 4, 16, 64 particles on 20 ancestral DDPM steps, and K = 16 on 80 steps (the
budget of K = 64 spent on steps instead).  "evals" is model evaluations
per sample, "+bwd" adds backward passes through the model; seconds are wall-clock for the n
samples on this machine (CPU, one thread).

Regions (``--table regions``): the true conditional is the data restricted to the region, drawn
by rejection from the generator; each method's samples (2-D) against it by the 2-D W2 (an exact
assignment between equal-size samples) and the energy distance (Szekely & Rizzo 2013), each as a
ratio to its floor (two independent true draws of n), with the share of samples inside the
region.  Methods: region guidance (the squared violation as a loss on x0_hat, gradient through
the denoiser; weights 3, 10, 30) on dpm++2m, and twisted SMC at K = 4, 16, 64 on 20 DDPM steps
and K = 16 on 80.  The observed values and regions of each data set (VALUES, REGIONS) include
values whose conditional has several separated modes.  A run with classes (four-shapes) is drawn
from its unconditional branch, every class together (``marginal``), its truth from its classes'
generators in equal numbers.

Classifier guidance (``--table classifier``): the mixture oracle's class 0 with its exact noisy
classifier p(y | x_t), against p(x | y) in closed form (2-D W2 and energy distance to their
floors, and the share of samples at each component): classifier guidance at scale 1 on dpm++2m
and on DDPM, and twisted SMC with the classifier's twist (smc.classifier_twist) read on x_t (the
noisy classifier itself, TDS's optimal twist when exact) or on x0_hat (TDS's twist for a
classifier of clean data), at K = 1, 4, 16, 64 on 20 DDPM steps.

    python benchmarks/smc_conditional.py --run runs/spiral            # both tables
    python benchmarks/smc_conditional.py --run runs/spiral --quick    # n = 200, two values, K <= 16
    python benchmarks/smc_conditional.py --run runs/swiss-roll --table observe
    python benchmarks/smc_conditional.py --run runs/four-shapes --table regions
    python benchmarks/smc_conditional.py --table classifier
    python benchmarks/smc_conditional.py --run runs/spiral --table observe --methods own,smc:16x80   # two rows

``--methods`` keeps only the rows it names (``--help`` lists the names): ``own`` is the trained
run's own conditional (its unguided pool is not drawn without it), ``own:ddpm80`` the same drawn
by the chain of the default SMC (80 DDPM steps: SMC's limit as K grows, which the 20-step
dpm++2m draw can miss by its own sampling error), the others a method's name and its scale,
particles or steps.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from denoiselab.gradient_guidance import GuidanceCounts, counted, loss_guidance, observation_loss, paste_observed, replacement
from denoiselab.oracles import labelled_mixture
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule
from denoiselab.smc import observation_twist, sample_smc

BAND = 0.005  # half-width of the rejection band |x1 - V| < BAND, data units
BIN = 0.02
GAP_BINS = 3
MODEL_POOL = 400_000  # unguided samples of the trained run, for its own conditional by rejection
MODEL_BAND = 0.01
MIXTURE_VALUES = (-1.5, -0.75, 0.0, 0.4, 0.8)
SPIRAL_VALUES = (-0.5, -0.2, 0.1, 0.4, 0.7)
# Observed x1 values and regions per data set (data units): a vertical line through several arms
# of the roll or several of the four shapes gives a conditional with separated modes.
VALUES = {
    "spiral": SPIRAL_VALUES,
    "swiss-roll": (-0.8, -0.3, 0.0, 0.4, 0.9),
    "circle+moons+eight-gaussians+swiss-roll": (-2.0, -1.41, 0.0, 0.8, 1.41),
}
REGIONS = {
    "spiral": ("x1 > 0.4", "x1**2 + x2**2 < 0.16", "abs(x2) < 0.1"),
    "swiss-roll": ("x2 > 0.6", "x1**2 + x2**2 < 0.36", "abs(x1 - 0.2) < 0.1"),
    "circle+moons+eight-gaussians+swiss-roll": ("x1 > 1", "x1**2 + x2**2 < 1", "abs(x2) < 0.2"),
}
REGION_SCALES = (3.0, 10.0, 30.0)
STEPS = 20


@dataclass
class Method:
    name: str  # "dps", "replace", "universal", "smc"
    scale: float | None = None
    particles: int = 1
    steps: int = 20

    @property
    def key(self) -> str:
        """The name ``--methods`` selects it by: dps:3, replace, universal:10, smc:16, smc:16x80."""
        if self.name == "smc":
            return f"smc:{self.particles}" + (f"x{self.steps}" if self.steps != STEPS else "")
        return self.name if self.scale is None else f"{self.name}:{self.scale:g}"

    @property
    def label(self) -> str:
        if self.name == "region":
            return f"region guidance s = {self.scale:g}"
        if self.name == "smc":
            return f"smc K = {self.particles}" + (f", {self.steps} steps" if self.steps != STEPS else "")
        return self.name if self.scale is None else f"{self.name} s = {self.scale:g}"


def methods(quick: bool) -> list[Method]:
    gradient = [Method("dps", 1.0), Method("dps", 3.0), Method("dps", 10.0), Method("replace"), Method("universal", 10.0)]
    smc = [Method("smc", particles=k) for k in ((4, 16) if quick else (4, 16, 64))]
    # The same budget as K = 64 at 20 steps, spent on steps: DDPM's own error at 20 steps.
    return gradient + smc + ([] if quick else [Method("smc", particles=16, steps=80)])


def region_methods(quick: bool) -> list[Method]:
    return [Method("region", s) for s in REGION_SCALES] + [m for m in methods(quick) if m.name == "smc"]


# --methods' names of the model's own conditional (a trained run's first rows), drawn by
# (sampler, steps): the run's default draw, and the chain the default SMC runs (K = 16 on 80 DDPM
# steps), whose own conditional is SMC's limit as K grows (TDS: exact for the chain, not the model).
OWNS = {"own": ("dpm++2m", STEPS), "own:ddpm80": ("ddpm", 80)}


def select(ms: list[Method], keys: set[str] | None) -> list[Method]:
    """The methods ``--methods`` names (every one without it)."""
    return ms if keys is None else [m for m in ms if m.key in keys]


# -- scores ---------------------------------------------------------------------------------------


def w2_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-D W2 between equal-size samples: the RMS of the sorted differences."""
    return float(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)))


class Truth:
    """A large pool of true x2 given x1 = V: the W2 floor at n, the modes and their masses.

    The floor is the mean W2 of 2 ``refs`` pairs of true draws of n, a ratio the mean W2 to
    ``refs`` true draws of n.  Where the truth has two modes of near-equal mass, one pair's W2 is
    mostly the binomial imbalance of the modes' counts, so both means vary a lot from one set of
    draws to another; ``fresh`` (n more true draws, from another seed) scores what a perfect
    sampler scores against the same floor and references."""

    def __init__(self, pool: np.ndarray, n: int, rng: np.random.Generator, refs: int = 4, fresh: np.ndarray | None = None):
        self.pool, self.n, self.fresh = np.asarray(pool, dtype=np.float64), n, fresh
        pairs = [rng.choice(self.pool, size=2 * n, replace=False) for _ in range(2 * refs)]
        self.floor = float(np.mean([w2_1d(p[:n], p[n:]) for p in pairs]))
        self.refs = [rng.choice(self.pool, size=n, replace=False) for _ in range(refs)]
        lo, hi = self.pool.min() - BIN, self.pool.max() + BIN
        self.edges = np.arange(lo, hi + BIN, BIN)
        hist, _ = np.histogram(self.pool, self.edges)
        keep = np.flatnonzero(hist >= 0.02 * hist.max())
        # A mode: bins above 2 % of the densest, gaps of fewer than GAP_BINS such bins bridged.
        runs = np.split(keep, np.flatnonzero(np.diff(keep) > GAP_BINS) + 1)
        self.modes = [(self.edges[r[0]], self.edges[r[-1] + 1]) for r in runs]

    def ratio(self, x2: np.ndarray) -> float:
        return float(np.mean([w2_1d(x2, r) for r in self.refs])) / self.floor

    def masses(self, x2: np.ndarray) -> list[float]:
        """Share of x2 in each mode, then outside every mode."""
        inside = [float(np.mean((x2 >= a) & (x2 < b))) for a, b in self.modes]
        return inside + [1.0 - sum(inside)]


def fmt_masses(m: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in m[:-1]) + f" (off {m[-1]:.2f})"


# -- the mixture oracle -----------------------------------------------------------------------------


def mixture_draw(method: Method, value: float, n: int, seed: int) -> tuple[np.ndarray, int, int, float]:
    """x2 of n samples given x1 = value, with (evaluations, backward passes) per sample and seconds."""
    mix, schedule = labelled_mixture(), make_schedule("linear", 1000)
    model = mix.denoiser(schedule, "eps")
    mask, values = torch.tensor([True, False]), torch.tensor([value, 0.0], dtype=torch.float64)
    counts = GuidanceCounts()
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    if method.name == "smc":
        k = method.particles
        times = time_grid(schedule, method.steps, "logsnr")
        x_T = torch.randn(n * k, 2, generator=g, dtype=torch.float64)
        fn = counted(model, counts)
        x = sample_smc(Denoiser(fn, schedule, "eps"), x_T, times, twist=observation_twist(mask, values, schedule), particles=k, generator=g)
        evals, backward = counts.evaluations * k, counts.evaluations * k
    else:
        fn = counted(model, counts)
        if method.name == "replace":
            fn = replacement(fn, mask, values, schedule, "eps", generator=torch.Generator().manual_seed(seed + 1))
        else:
            steps = 1 if method.name == "universal" else 0
            fn = loss_guidance(fn, observation_loss(mask, values, 1.0), method.scale, schedule, "eps", backward_steps=steps, backward_lr=1.0, counts=counts)
        x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
        x = SAMPLERS["dpm++2m"](Denoiser(fn, schedule, "eps"), x_T, time_grid(schedule, STEPS, "logsnr"))
        x = paste_observed(x, mask, values)
        evals, backward = counts.evaluations, counts.model_backward
    return x[:, 1].numpy(), evals, backward, time.perf_counter() - start


def mixture_truth(value: float, n: int, refs: int = 4) -> Truth:
    cond = labelled_mixture().condition({0: value})
    pool = cond.sample(200_000, torch.Generator().manual_seed(99))[:, 0].numpy()
    fresh = cond.sample(n, torch.Generator().manual_seed(98))[:, 0].numpy()
    return Truth(pool, n, np.random.default_rng(7), refs, fresh)


# -- a trained run ---------------------------------------------------------------------------------


def data_key(run) -> str:
    """The run's data as VALUES and REGIONS name it: the generator, or its classes' joined by +."""
    classes = run.config.data.classes
    return "+".join(classes) if classes else run.config.data.name


def generator_points(run, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points of the run's data generator, drawn as its training set was (data.sources.draw);
    a run of several classes draws each class's generator in equal numbers, as its recipe does."""
    from denoiselab.data.sources import draw

    classes = run.config.data.classes
    if classes:
        return np.concatenate([draw(c, n // len(classes), rng) for c in classes])
    return draw(run.config.data.name, n, rng)


def marginal(run) -> dict:
    """Plan options that sample p(x), every class together: on a run with classes the
    unconditional branch (classifier-free guidance 0, what label dropout trained).  A plan's
    default gives each sample a class in proportion, which fixes the classes' shares at the
    prior's: the condition then cannot move mass between classes (a circle cannot reach x1 =
    -1.41), and no sampler of that plan approaches p(x2 | x1 = V) of the data."""
    return {"guidance": 0.0} if run.num_classes else {}


def near_value(run, value: float, size: int, seed: int) -> np.ndarray:
    """At least ``size`` true x2 with |x1 - value| < BAND, by rejection from the generator."""
    pool, rng = [], np.random.default_rng(seed)
    while sum(len(p) for p in pool) < size:
        pts = generator_points(run, 2_000_000, rng)
        pool.append(pts[np.abs(pts[:, 0] - value) < BAND, 1])
    return np.concatenate(pool)


def run_truth(run, value: float, n: int, refs: int = 4) -> Truth:
    return Truth(near_value(run, value, 40 * n, 12345), n, np.random.default_rng(7), refs, near_value(run, value, n, 54321)[:n])


class ModelOwn:
    """The trained model's own conditional: unguided samples (dpm++2m, 20 steps, or ``sampler``
    and ``steps``) with |x1 - V| < MODEL_BAND, drawn once: what an exact conditional sampler of
    this model on that chain would approach."""

    def __init__(self, run, size: int = MODEL_POOL, sampler: str = "dpm++2m", steps: int = STEPS):
        from denoiselab.runs import sample_points

        start = time.perf_counter()
        self.pool = np.concatenate([
            sample_points(run, n=50_000, seed=100 + i, sampler=sampler, steps=steps, grid="logsnr", **marginal(run))
            for i in range(max(1, size // 50_000))
        ])  # fmt: skip
        self.seconds = time.perf_counter() - start
        self.name = "the model's own" + ("" if (sampler, steps) == OWNS["own"] else f", {sampler} {steps} steps")

    def draw(self, value: float, n: int) -> np.ndarray:
        near = self.pool[np.abs(self.pool[:, 0] - value) < MODEL_BAND, 1]
        return np.random.default_rng(3).choice(near, size=n, replace=len(near) < n)


def run_draw(run, method: Method, value: float, n: int, seed: int) -> tuple[np.ndarray, int, int, float]:
    from denoiselab.runs import plan_from_options
    from denoiselab.runs.guided import GuidanceRequest, draw_guided

    counts = GuidanceCounts()
    sampler = "ddpm" if method.name == "smc" else "dpm++2m"
    plan = plan_from_options(run, n=n, seed=seed, sampler=sampler, steps=method.steps, grid="logsnr", **marginal(run))
    request = GuidanceRequest(observe={0: value}, method=method.name, scale=method.scale, particles=method.particles if method.name == "smc" else None)
    start = time.perf_counter()
    drawn = draw_guided(run, plan, request, counts)
    seconds = time.perf_counter() - start
    return drawn.x[:, 1], counts.evaluations, counts.model_backward, seconds


# -- regions ---------------------------------------------------------------------------------------


def w2_2d(a: np.ndarray, b: np.ndarray) -> float:
    """2-D W2 between equal-size samples: the optimal assignment's RMS distance."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    cost = cdist(a, b, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def energy(a: np.ndarray, b: np.ndarray) -> float:
    """The energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013), V-statistics."""
    from scipy.spatial.distance import cdist

    return float(2 * cdist(a, b).mean() - cdist(a, a).mean() - cdist(b, b).mean())


class PointTruth:
    """A pool of true 2-D points (inside a region, of a class): the floors of W2 and of the energy
    distance at n."""

    def __init__(self, pool: np.ndarray, n: int, rng: np.random.Generator):
        self.pool, self.n = np.asarray(pool, dtype=np.float64), n
        pairs = [self.pool[rng.choice(len(self.pool), size=2 * n, replace=False)] for _ in range(4)]
        self.floor_w2 = float(np.mean([w2_2d(p[:n], p[n:]) for p in pairs]))
        self.floor_energy = float(np.mean([energy(p[:n], p[n:]) for p in pairs]))
        self.refs = [self.pool[rng.choice(len(self.pool), size=n, replace=False)] for _ in range(3)]

    def ratios(self, x: np.ndarray) -> tuple[float, float]:
        x = np.asarray(x, dtype=np.float64)
        w2 = float(np.mean([w2_2d(x, r) for r in self.refs])) / self.floor_w2
        return w2, float(np.mean([energy(x, r) for r in self.refs])) / self.floor_energy


def region_truth(run, region, n: int) -> PointTruth:
    from denoiselab.runs.guided import inside

    pool, rng = [], np.random.default_rng(12345)
    while sum(len(p) for p in pool) < 20 * n:
        pts = generator_points(run, 400_000, rng)
        pool.append(pts[inside(region, pts)])
    return PointTruth(np.concatenate(pool), n, np.random.default_rng(7))


def region_draw(run, method: Method, text: str, n: int, seed: int) -> tuple[np.ndarray, int, int, float]:
    """n samples (data units) inside region ``text`` by ``method``, with (evaluations, backward
    passes) per sample and seconds."""
    from denoiselab.runs import plan_from_options
    from denoiselab.runs.guided import GuidanceRequest, draw_guided

    counts = GuidanceCounts()
    smc = method.name == "smc"
    plan = plan_from_options(run, n=n, seed=seed, sampler="ddpm" if smc else "dpm++2m", steps=method.steps, grid="logsnr", **marginal(run))
    request = GuidanceRequest(region=text, method="smc" if smc else "dps", scale=None if smc else method.scale, particles=method.particles if smc else None)
    start = time.perf_counter()
    drawn = draw_guided(run, plan, request, counts)
    return drawn.x, counts.evaluations, counts.model_backward, time.perf_counter() - start


def region_table(run, name: str, regions, ms: list[Method], n: int, owns: list[ModelOwn]) -> list[str]:
    from denoiselab.regions import region_from
    from denoiselab.runs.guided import inside

    lines = [f"### {name}: the data restricted to a region, by rejection from the generator", ""]
    for text in regions:
        region = region_from(text, 2)
        truth = region_truth(run, region, n)
        data_share = float(np.mean(inside(region, generator_points(run, 200_000, np.random.default_rng(5)))))
        lines += [
            f"**{text}**: {100 * data_share:.1f} % of the data; W2 floor {truth.floor_w2:.4f}, energy floor {truth.floor_energy:.5f} (n = {n})",
            "",
            "| method | W2 / floor | energy / floor | inside | evals (+bwd) | s |",
            "|---|---|---|---|---|---|",
        ]
        for own in owns:
            near = own.pool[inside(region, own.pool)]
            x = np.random.default_rng(3).permutation(near)[:n] if len(near) >= n else near[np.random.default_rng(3).integers(0, len(near), n)]
            w2, en = truth.ratios(x)
            lines.append(f"| {own.name} (rejection: {len(near)} of {len(own.pool)} unguided) | {w2:.2f} | {en:.2f} | 1.00 | - | - |")
            print(lines[-1], flush=True)
        for m in ms:
            x, evals, backward, seconds = region_draw(run, m, text, n, 0)
            w2, en = truth.ratios(x)
            share = float(np.mean(inside(region, x)))
            lines.append(f"| {m.label} | {w2:.2f} | {en:.2f} | {share:.2f} | {evals} (+{backward}) | {seconds:.1f} |")
            print(lines[-1], flush=True)
        lines.append("")
    return lines


# -- classifier guidance on the mixture oracle -------------------------------------------------------

CLASS = 0  # labelled_mixture's class 0: its components 0 and 1 (weights 0.6 and 0.4 within the class)


def classifier_draw(method: str, k: int, n: int, seed: int, steps: int = STEPS) -> tuple[np.ndarray, int, float]:
    """n samples of class CLASS by classifier guidance at scale 1 (``method`` "dpm++2m" or
    "ddpm") or twisted SMC with K = ``k`` ("smc x_t": the exact noisy classifier p(y | x_t) as the
    twist; "smc x0": TDS's twist, the classifier read on x0_hat at t = 0), with model evaluations
    per sample and seconds."""
    from denoiselab.gradient_guidance import classifier_guidance
    from denoiselab.smc import classifier_twist

    mix, schedule = labelled_mixture(), make_schedule("linear", 1000)
    counts = GuidanceCounts()
    model, classifier = counted(mix.denoiser(schedule, "eps"), counts), mix.classifier(schedule)
    g = torch.Generator().manual_seed(seed)
    times = time_grid(schedule, steps, "logsnr")
    start = time.perf_counter()
    if method.startswith("smc"):
        x_T = torch.randn(n * k, 2, generator=g, dtype=torch.float64)
        twist = classifier_twist(classifier, torch.full((n * k,), CLASS), 1.0, reads=method.split()[1])
        x = sample_smc(Denoiser(model, schedule, "eps"), x_T, times, twist=twist, particles=k, generator=g)
        evals = counts.evaluations * k
    else:
        x_T = torch.randn(n, 2, generator=g, dtype=torch.float64)
        guided = classifier_guidance(model, classifier, 1.0, schedule, "eps", label=CLASS)
        extra = {"generator": g} if method == "ddpm" else {}
        x = SAMPLERS[method](Denoiser(guided, schedule, "eps"), x_T, times, **extra)
        evals = counts.evaluations
    return x.numpy(), evals, time.perf_counter() - start


def chain_conditional(n: int, steps: int) -> np.ndarray:
    """n draws of what SMC converges to on ``steps`` DDPM steps: the unguided chain's samples
    (exact denoiser) reweighted by the exact p(y | x_0), by resampling 100 n of them."""
    mix, schedule = labelled_mixture(), make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(100 * n, 2, generator=g, dtype=torch.float64)
    x = SAMPLERS["ddpm"](Denoiser(mix.denoiser(schedule, "eps"), schedule, "eps"), x_T, time_grid(schedule, steps, "logsnr"), generator=g)
    ones = torch.ones(len(x), dtype=torch.float64)
    w = torch.softmax(mix.class_log_posterior(x, ones, 0 * ones)[:, CLASS], 0)  # p(y | x_0), normalised over the draws
    return x[torch.multinomial(w, n, replacement=True, generator=g)].numpy()


def component_shares(x: np.ndarray) -> list[float]:
    """The share of samples nearest each of labelled_mixture's component means."""
    means = labelled_mixture().means.numpy()
    nearest = ((x[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    return list(np.bincount(nearest, minlength=len(means)) / len(x))


def classifier_table(n: int, quick: bool) -> list[str]:
    mix = labelled_mixture()
    pool = mix.class_conditional(CLASS).sample(200_000, torch.Generator().manual_seed(99)).numpy()
    truth = PointTruth(pool, n, np.random.default_rng(7))
    ks = (1, 4, 16) if quick else (1, 4, 16, 64)
    rows = [("classifier guidance s = 1, dpm++2m", "dpm++2m", 1, STEPS), ("classifier guidance s = 1, ddpm", "ddpm", 1, STEPS)]
    for reads, words in (("x_t", "noisy classifier on x_t"), ("x0", "classifier on x0_hat (TDS)")):
        rows += [(f"smc, twist: {words}, K = {k}", f"smc {reads}", k, STEPS) for k in ks]
        rows += [] if quick else [(f"smc, twist: {words}, K = 16, 80 steps", f"smc {reads}", 16, 80)]
    lines = [
        f"### Mixture oracle, classifier guidance towards class {CLASS}: p(x | y) in closed form",
        "",
        f"W2 floor {truth.floor_w2:.4f}, energy floor {truth.floor_energy:.5f} (n = {n}); true component shares "
        + " / ".join(f"{v:.2f}" for v in component_shares(pool)),
        "",
        "| method | W2 / floor | energy / floor | component shares | evals | s |",
        "|---|---|---|---|---|---|",
    ]
    x = chain_conditional(n, STEPS)
    w2, en = truth.ratios(x)
    lines.append(f"| the {STEPS}-step DDPM chain's own conditional (SMC's limit) | {w2:.2f} | {en:.2f} | {' / '.join(f'{v:.2f}' for v in component_shares(x))} | - | - |")
    print(lines[-1], flush=True)
    for label, method, k, steps in rows:
        x, evals, seconds = classifier_draw(method, k, n, 0, steps)
        w2, en = truth.ratios(x)
        lines.append(f"| {label} | {w2:.2f} | {en:.2f} | {' / '.join(f'{v:.2f}' for v in component_shares(x))} | {evals} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    return lines + [""]


# -- the tables -----------------------------------------------------------------------------------


def table(title: str, values, truth_of, draw_of, ms: list[Method], n: int, owns: list[ModelOwn] | None = None) -> list[str]:
    lines = [f"### {title}", ""]
    for value in values:
        truth = truth_of(value)
        lines += [
            f"**x1 = {value:g}**: W2 floor {truth.floor:.4f} (n = {n}); true mode masses {fmt_masses(truth.masses(truth.pool))}",
            "",
            "| method | W2 / floor | mode masses | evals (+bwd) | s |",
            "|---|---|---|---|---|",
        ]
        if truth.fresh is not None:
            lines.append(f"| the truth itself ({n} more true draws: a perfect sampler) | {truth.ratio(truth.fresh):.2f} | {fmt_masses(truth.masses(truth.fresh))} | - | - |")
            print(lines[-1], flush=True)
        for own in owns or []:
            x2 = own.draw(value, n)
            near = int(np.sum(np.abs(own.pool[:, 0] - value) < MODEL_BAND))
            lines.append(f"| {own.name} (rejection: {near} of {len(own.pool)} unguided) | {truth.ratio(x2):.2f} | {fmt_masses(truth.masses(x2))} | - | - |")
            print(lines[-1], flush=True)
        for m in ms:
            x2, evals, backward, seconds = draw_of(m, value, n, 0)
            lines.append(f"| {m.label} | {truth.ratio(x2):.2f} | {fmt_masses(truth.masses(x2))} | {evals} (+{backward}) | {seconds:.1f} |")
            print(lines[-1], flush=True)
        lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a trained point run (default recipe: spiral); without it only the mixture table")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--skip-mixture", action="store_true")
    parser.add_argument(
        "--table", choices=("mixture", "classifier", "observe", "regions"),
        help="one table only: the mixture oracle's observations or its classifier guidance, the run's observed values (VALUES), or the run's regions (REGIONS)",
    )  # fmt: skip
    parser.add_argument("--model-pool", type=int, default=MODEL_POOL, help="unguided samples for the model's own conditional (multiples of 50000)")
    parser.add_argument("--values", help="observed x1 values, comma-separated (default: VALUES of the run's data)")
    parser.add_argument("--refs", type=int, default=4, help="true draws of n per value that a ratio averages over (the floor over twice as many pairs); default 4, the tables so far")
    parser.add_argument(
        "--methods",
        help="rows to run, comma-separated (default: all): own (a trained run's own conditional; own:ddpm80 on the default SMC's chain), dps:S, replace, universal:S, region:S, smc:K, smc:KxSTEPS (the table's S, K and STEPS), e.g. own,smc:16x80",
    )  # fmt: skip
    args = parser.parse_args()
    if args.table in ("observe", "regions") and not args.run:
        parser.error(f"--table {args.table}: needs --run")
    n = 200 if args.quick else args.n
    if args.refs < 1:
        parser.error(f"--refs {args.refs}: must be at least 1")
    ms = methods(args.quick)
    keys = None if args.methods is None else {k.strip() for k in args.methods.split(",") if k.strip()}
    if keys is not None:
        known = set(OWNS) | {m.key for m in ms + region_methods(args.quick)}
        unknown = sorted(keys - known)
        if unknown or not keys:
            parser.error(f"--methods: unknown {', '.join(unknown) or 'empty list'}; expected some of {', '.join(sorted(known))}")
    own_rows = [chain for key, chain in OWNS.items() if keys is None or key in keys]
    torch.set_num_threads(1)
    start = time.perf_counter()
    out = [f"torch {torch.__version__}, {platform.machine()}, one thread; n = {n} samples per cell", ""]
    if not args.skip_mixture and args.table in (None, "mixture"):
        values = MIXTURE_VALUES[:2] if args.quick else MIXTURE_VALUES
        out += table("Mixture oracle (exact denoiser): p(x2 | x1 = V) in closed form", values, lambda v: mixture_truth(v, n, args.refs), mixture_draw, select(ms, keys), n)
    if args.table == "classifier":
        out += classifier_table(n, args.quick)
    if args.run and args.table == "regions":
        from denoiselab.runs import load_run

        run = load_run(args.run)
        regions = REGIONS[data_key(run)]
        owns = [ModelOwn(run, args.model_pool, *chain) for chain in own_rows]
        out += region_table(run, f"Trained run {args.run} ({data_key(run)}{', unconditional branch' if run.num_classes else ''})", regions[:1] if args.quick else regions, select(region_methods(args.quick), keys), n, owns)
        out += [f"({own.name}: {len(own.pool)} unguided samples in {own.seconds:.0f} s)" for own in owns]
    elif args.run and args.table in (None, "observe"):
        from denoiselab.runs import load_run

        run = load_run(args.run)
        values = [float(v) for v in args.values.split(",")] if args.values else VALUES[data_key(run)]
        values = values[:2] if args.quick else values
        owns = [ModelOwn(run, args.model_pool, *chain) for chain in own_rows]
        out += table(
            f"Trained run {args.run} ({data_key(run)}{', unconditional branch' if run.num_classes else ''}): p(x2 | x1 = V) by rejection from the generator",
            values, lambda v: run_truth(run, v, n, args.refs), lambda m, v, n_, s: run_draw(run, m, v, n_, s), select(ms, keys), n, owns,
        )  # fmt: skip
        out += [f"({own.name}: {len(own.pool)} unguided samples in {own.seconds:.0f} s)" for own in owns]
    out.append(f"total {time.perf_counter() - start:.0f} s")
    print("\n".join(out))


if __name__ == "__main__":
    main()
