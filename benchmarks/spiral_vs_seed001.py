"""Seed 001's spiral recipe against denoiselab's default recipe, side by side.

Run (about 5-6 minutes on 2 CPU cores, most of it the seed's 1000 epochs):

    python benchmarks/spiral_vs_seed001.py

Smoke run (seconds; the seed recipe is cut short, so its numbers are not the seed's):

    python benchmarks/spiral_vs_seed001.py --epochs 20 --repeats 2 --references 4

What it does, in one invocation:

1. seed001: seed 001's notebook (../shared/seeds/001_*.txt), copied below and adapted only to
   take a seed (numpy / torch generators instead of the global RNGs), run on the CPU, and not
   plot.  get_spiral_data(2000), SpiralDataset drawing t and noise per item in __getitem__,
   DataLoader(batch_size=256, shuffle=True), DenoiserNetwork(time_embedding_dim=32,
   hidden_dim=256) with the Python-loop SinusoidalEmbedding, Adam(lr=1e-4), MSE on the noise,
   T = 300 with betas linspace(1e-4, 0.02, 300), 1000 epochs; then reverse_diffusion: 300
   ancestral steps with sigma_t = sqrt(beta_t), the model getting integer t.
2. denoiselab: the shipped default recipe through the public API, read from the package
   (load_config("spiral")), trained into a temporary run folder and sampled with the recipe's
   own sampler and step count (sample_points).

Both train on the same 2000 points when denoiselab's data.seed equals --seed (the default;
the script says whether they did).  Quality: exact W2 and energy distance of 2000 samples
against 2000 fresh reference points, by denoiselab.metrics.point_metrics (what `denoiselab
evaluate` reports): --repeats sample seeds against --references reference draws, the same
draws for both contenders.  W2 pairs sample set i with reference i; energy distance pairs every
sample set with every reference.  The floor is the same metrics between the reference draws
(W2 over disjoint pairs, energy over all pairs).  Ratios to the floor are ratios of means.
A last row scores the 2000 training points themselves the same way.  Times are wall clock
(time.perf_counter) with torch's default thread count.  Output: a markdown table and ratio
lines on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from denoiselab.config import load_config
from denoiselab.data.sources import draw
from denoiselab.metrics import Floor, point_metrics, reference_floor
from denoiselab.runs import load_run, sample_points
from denoiselab.training import train

N_POINTS = 2000  # seed 001's n_points, and the number of samples evaluated
SEED_EPOCHS = 1000  # seed 001's num_epochs
SEED_TIMESTEPS = 300  # seed 001's timesteps

# Targets from the issue, for denoiselab's default recipe.
TARGET_TRAIN_S = 30.0
TARGET_EVALS = 20
TARGET_W2_RATIO = 1.1
TARGET_ENERGY_RATIO = 1.3
TARGET_SPEEDUP = 10.0  # issue 15: training at least 10x faster than seed 001's recipe


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Seed 001's recipe, copied from the notebook.  Changes, all marked "adapted": an explicit
# np.random.Generator / torch.Generator instead of the global RNGs, no plotting, no per-epoch
# print (the loss history is kept), CPU.
# --------------------------------------------------------------------------------------------


def get_spiral_data(n_points=1000, rng=None):  # adapted: rng (np.random.Generator)
    theta = np.sqrt(rng.random(n_points)) * 720 * (np.pi / 180)
    r = 0.5 * theta
    x = r * np.cos(theta)
    y = r * np.sin(theta)
    data = np.stack([x, y], axis=1) + rng.standard_normal((n_points, 2)) * 0.3
    data_max = np.max(np.abs(data))
    data = data / data_max
    return data.astype(np.float32)


def sample_t(x_0, t, alpha_bars, generator=None):  # adapted: generator
    # sample noise
    epsilon = torch.randn(x_0.shape, dtype=x_0.dtype, generator=generator)  # was torch.randn_like(x_0)
    # get x_t using closed form equation
    x_t = torch.sqrt(alpha_bars[t]) * x_0 + torch.sqrt(1 - alpha_bars[t]) * epsilon
    return x_t, epsilon


@torch.no_grad()
def sample(model, x_t, alpha_t, alpha_bar_t, sigma_t, t, generator=None):  # adapted: generator
    epsilon = model(x_t, t)  # The model input is x_t and t and the output is the predicted noise
    if t.numel() > 1:
        is_zero_timestep = t[0] == 0
    else:
        is_zero_timestep = t.item() == 0

    if is_zero_timestep:
        z = torch.zeros_like(x_t)
    else:
        z = torch.randn(x_t.shape, dtype=x_t.dtype, generator=generator)  # was torch.randn_like(x_t)
    x_prev = 1 / torch.sqrt(alpha_t) * (x_t - (1 - alpha_t) / torch.sqrt(1 - alpha_bar_t) * epsilon) + sigma_t * z
    return x_prev


@torch.no_grad()
def reverse_diffusion(model, x_t, timesteps, device, generator=None):  # adapted: generator
    betas = torch.linspace(1e-4, 0.02, timesteps, device=device)
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)

    batch_size = x_t.shape[0]  # Get the batch size

    model.eval()
    for t in range(timesteps - 1, -1, -1):
        alpha_t = alphas[t]
        alpha_bar_t = alpha_bars[t]
        sigma_t = torch.sqrt(betas[t])  # The standard deviation of the noise is the square root of the betas
        # Expand t to match batch size
        t_batch = torch.full((batch_size,), t, device=device, dtype=torch.long)
        x_prev = sample(model, x_t, alpha_t, alpha_bar_t, sigma_t, t_batch, generator)
        x_t = x_prev
    return x_t


class SinusoidalEmbedding(nn.Module):
    def __init__(self, embedding_dim):
        super().__init__()
        self.embedding_dim = embedding_dim

    def forward(self, t):
        device = t.device
        emb = torch.zeros(t.shape[0], self.embedding_dim, device=device)

        for i in range(self.embedding_dim // 2):
            # We ensure the constant is on the correct device too
            const = torch.tensor(10000.0, device=device)
            omega_i = torch.exp(-(2 * i / self.embedding_dim) * torch.log(const))

            emb[:, 2 * i] = torch.sin(omega_i * t)
            emb[:, 2 * i + 1] = torch.cos(omega_i * t)

        return emb


class DenoiserNetwork(nn.Module):
    def __init__(self, sample_dim=2, time_embedding_dim=64, hidden_dim=256):
        super().__init__()

        self.time_embedder = SinusoidalEmbedding(time_embedding_dim)

        # Project time embedding to hidden dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_embedding_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
        )

        # Input projection
        self.input_proj = nn.Linear(sample_dim, hidden_dim)

        # Main network with residual connections and normalization
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LayerNorm(hidden_dim),
                    nn.Linear(hidden_dim, hidden_dim),
                    nn.SiLU(),
                    nn.Linear(hidden_dim, hidden_dim),
                )
                for _ in range(3)
            ]
        )

        # Output projection
        self.output_proj = nn.Sequential(
            nn.LayerNorm(hidden_dim),
            nn.Linear(hidden_dim, hidden_dim // 2),
            nn.SiLU(),
            nn.Linear(hidden_dim // 2, sample_dim),
        )

    def forward(self, x, t):
        t_emb = self.time_embedder(t)  # (batch, time_embedding_dim)
        t_emb = self.time_mlp(t_emb)  # (batch, hidden_dim)
        h = self.input_proj(x)  # (batch, hidden_dim)
        h = h + t_emb  # additive conditioning
        for block in self.blocks:
            h = h + block(h)  # Residual connection
        return self.output_proj(h)


class SpiralDataset(Dataset):
    # adapted: takes the rng of the data draw and a torch.Generator for t and noise; no plot
    def __init__(self, n_points=1000, timesteps=200, rng=None, generator=None):
        self.data = get_spiral_data(n_points, rng)
        self.timesteps = timesteps
        self.alpha_bars = torch.cumprod(1 - torch.linspace(1e-4, 0.02, timesteps), dim=0)
        self.generator = generator

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        # sample a random timestep
        t = torch.randint(0, self.timesteps, (1,), generator=self.generator).item()
        # get the data point
        x_0 = torch.tensor(self.data[index]).float()
        # get x_t and epsilon using the forward diffusion trick
        x_t, epsilon = sample_t(x_0, torch.tensor(t), self.alpha_bars, self.generator)
        return x_t, t, epsilon


def train_seed001(seed: int, epochs: int):
    """The notebook's training cells; returns (model, training points, per-epoch losses)."""
    timesteps = SEED_TIMESTEPS
    n_points = N_POINTS
    device = torch.device("cpu")  # adapted: the notebook picks mps if present, else cpu

    generator = torch.Generator().manual_seed(seed)  # adapted: t and noise of every item
    dataset = SpiralDataset(
        n_points=n_points, timesteps=timesteps, rng=np.random.default_rng([seed, 0]), generator=generator
    )
    dataloader = DataLoader(
        dataset, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(seed + 1)  # adapted
    )

    torch.manual_seed(seed)  # adapted: weight initialisation
    model = DenoiserNetwork(sample_dim=2, time_embedding_dim=32, hidden_dim=256)
    model.to(device)

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.MSELoss()

    losses = []
    model.train()
    for epoch in range(epochs):
        epoch_losses = []
        for x_t, t, epsilon in dataloader:
            x_t = x_t.to(device)
            t = t.to(device)
            epsilon = epsilon.to(device)

            pred_epsilon = model(x_t, t)
            loss = loss_fn(pred_epsilon, epsilon)
            epoch_losses.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        avg_loss = sum(epoch_losses) / len(epoch_losses)
        losses.append(avg_loss)  # adapted: the notebook prints it every epoch
        if (epoch + 1) % 100 == 0 or epoch + 1 == epochs:
            log(f"  seed001 epoch {epoch + 1}/{epochs} loss {avg_loss:.4f}")
    return model, dataset.data, losses


def sample_seed001(model, n: int, seed: int) -> np.ndarray:
    """The notebook's generation cell: x_T ~ N(0, I), 300 reverse steps."""
    device = torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)  # adapted
    x_T = torch.randn(n, 2, generator=generator).to(device)
    generated_data = reverse_diffusion(model, x_T, SEED_TIMESTEPS, device=device, generator=generator)
    return generated_data.cpu().numpy()


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


class EvalCounter:
    """Counts forward calls of a module (= model evaluations, each on the whole batch)."""

    def __init__(self, module: nn.Module):
        self.calls = 0
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_1m": os.getloadavg()[0],
    }


def reference_draws(seed: int, count: int) -> list[np.ndarray]:
    """Independent reference draws, through denoiselab's draw(), 2000 at a time like seed 001's
    generator; the seeds [seed, 1, k] are disjoint from the training draw [seed, 0]."""
    return [draw("spiral", N_POINTS, np.random.default_rng([seed, 1, k])) for k in range(count)]


def summarise(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"values": arr.tolist(), "mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}


def quality(samples: list[np.ndarray], refs, floor: Floor) -> dict:
    """denoiselab.metrics.point_metrics, the same definition as `denoiselab evaluate`."""
    for s in samples:
        if not np.all(np.isfinite(s)):
            raise FloatingPointError("samples contain NaN or inf")
    return point_metrics(samples, refs, floor).to_dict()


def sample_seeds(seed: int, repeats: int) -> list[int]:
    return [1000 * seed + r for r in range(repeats)]


def run_seed001(args, refs, floor) -> dict:
    log(f"seed001: training {args.epochs} epochs ...")
    t0 = time.perf_counter()
    model, train_data, losses = train_seed001(args.seed, args.epochs)
    train_s = time.perf_counter() - t0
    log(f"seed001: trained in {train_s:.1f} s, final epoch loss {losses[-1]:.4f}")

    counter = EvalCounter(model)
    samples, sample_times, evals = [], [], []
    for s in sample_seeds(args.seed, args.repeats):
        counter.calls = 0
        t0 = time.perf_counter()
        samples.append(sample_seed001(model, N_POINTS, s))
        sample_times.append(time.perf_counter() - t0)
        evals.append(counter.calls)
    return {
        "recipe": f"seed 001 notebook, {args.epochs} epochs",
        "epochs": args.epochs,
        "train_s": train_s,
        "final_loss": losses[-1],
        "model_evals": evals[0],
        "sample_s": summarise(sample_times),
        **quality(samples, refs, floor),
        "_train_data": train_data,
    }


def flops_per_step(cfg) -> float:
    """FLOPs of one training step (forward and backward of the loss on one batch), counted by
    torch.utils.flop_counter on the recipe's own model and objective (matrix products; the
    elementwise work is not counted, so the achieved FLOP/s below is a lower bound)."""
    from torch.utils.flop_counter import FlopCounterMode

    from denoiselab.builders import model_from, objective_from, schedule_from

    model = model_from(cfg, 2, 0)
    objective = objective_from(cfg, schedule_from(cfg))
    x0 = torch.randn(cfg.train.batch_size, 2)
    with FlopCounterMode(display=False) as counter:
        objective(model, x0, torch.Generator().manual_seed(0)).backward()
    return float(counter.get_total_flops())


def peak_flops(threads: int) -> tuple[float, str]:
    """A nominal fp32 peak for ``threads`` cores: GHz x FLOP per cycle (two FMA units of 8 lanes,
    or 16 with AVX-512, x 2 for multiply and add), from /proc/cpuinfo's current clock."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        mhz = max(float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, ValueError, StopIteration):
        return float("nan"), "unknown"
    lanes = 16 if " avx512f" in flags else 8 if " avx2" in flags else 4
    per_cycle = 2 * 2 * lanes
    return threads * mhz * 1e6 * per_cycle, f"{threads} core(s) x {mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle"


def run_denoiselab(args, refs, floor) -> dict:
    overrides = [f"data.seed={args.seed}", f"train.seed={args.seed}"] if args.seed_given else []
    cfg = load_config("spiral", overrides)
    log(
        f"denoiselab: recipe 'spiral' ({cfg.train.steps} steps, batch {cfg.train.batch_size}, "
        f"T={cfg.schedule.T}, {cfg.sample.sampler} x {cfg.sample.steps} steps) ..."
    )
    with tempfile.TemporaryDirectory(prefix="denoiselab-bench-") as tmp:
        t0 = time.perf_counter()
        train(cfg, tmp, progress=False, log=lambda msg: log(f"  denoiselab: {msg}"))
        train_s = time.perf_counter() - t0
        run = load_run(tmp)
        log(f"denoiselab: trained in {train_s:.1f} s")

        counter = EvalCounter(run.model)
        samples, sample_times, evals = [], [], []
        for s in sample_seeds(args.seed, args.repeats):
            counter.calls = 0
            t0 = time.perf_counter()
            samples.append(sample_points(run, n=N_POINTS, seed=s))
            sample_times.append(time.perf_counter() - t0)
            evals.append(counter.calls)
        sc = run.config.sample
        threads = torch.get_num_threads()  # what train() trained with (train.threads or auto_threads)
        step_flops = flops_per_step(cfg)
        peak, peak_how = peak_flops(threads)
        return {
            "recipe": f"denoiselab 'spiral': {cfg.train.steps} steps, {sc.sampler} {sc.steps} steps",
            "threads": threads,
            "flops_per_step": step_flops,
            "flops_per_s": step_flops * cfg.train.steps / float(run.info.get("train_seconds", train_s)),
            "peak_flops_per_s": peak,
            "peak_how": peak_how,
            "config": run.config.to_dict(),
            "train_s": train_s,
            "train_s_run_json": float(run.info.get("train_seconds", float("nan"))),
            "sampler": sc.sampler,
            "sampler_steps": sc.steps,
            "model_evals": evals[0],
            "sample_s": summarise(sample_times),
            **quality(samples, refs, floor),
            "_train_data": run.data,
        }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_metric(res: dict, key: str, digits: int) -> str:
    return f"{res[key]:.{digits}f} ± {res[key + '_std']:.{digits}f} ({res[key + '_ratio']:.2f}x)"


def report(results: dict, training_set: dict, floor: Floor, args, machine: dict) -> None:
    print("# spiral: seed 001's recipe vs denoiselab's default recipe\n")
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"{machine['threads']} threads (torch's default here), Python {machine['python']}, "
        f"load average {machine['load_average_1m']:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    print(
        f"quality: {N_POINTS} samples vs {N_POINTS} reference points, {args.repeats} sample seeds against "
        f"{args.references} reference draws (denoiselab.metrics.point_metrics); mean ± std over pairs, "
        f"(Nx) = mean / floor mean"
    )
    print(
        f"floor (reference vs independent reference): W2 {floor.w2:.4f} ± {floor.w2_std:.4f} over {floor.w2_pairs} pairs, "
        f"energy {floor.energy:.5f} ± {floor.energy_std:.5f} over {floor.energy_pairs} pairs"
    )
    if "seed001" in results and args.epochs != SEED_EPOCHS:
        print(
            f"NOTE: seed001 trained for {args.epochs} epochs, not the seed's {SEED_EPOCHS}: "
            "a smoke run, its times and qualities are not the seed's"
        )
    if "seed001" in results:
        same = np.array_equal(results["seed001"]["_train_data"], results["denoiselab"]["_train_data"])
        print(f"training data: {'the same 2000 points for both' if same else 'different draws'}")
    print()
    print("| recipe | train s | model evals per sample | sample s | W2 (ratio to floor) | energy (ratio to floor) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, res in results.items():
        label = name if name != "seed001" or args.epochs == SEED_EPOCHS else f"seed001 ({args.epochs} epochs)"
        print(
            f"| {label} | {res['train_s']:.1f} | {res['model_evals']} | {res['sample_s']['mean']:.2f} | "
            f"{fmt_metric(res, 'w2', 4)} | {fmt_metric(res, 'energy', 5)} |"
        )
    ts = training_set
    print(f"| the training points themselves | | | | {fmt_metric(ts, 'w2', 4)} | {fmt_metric(ts, 'energy', 5)} |")
    print()
    dl = results["denoiselab"]
    speedup = None
    if "seed001" in results:
        sd = results["seed001"]
        speedup = sd["train_s"] / dl["train_s"]
        print(f"time ratio seed001/denoiselab = {speedup:.1f} (training)")
        if args.epochs != SEED_EPOCHS:
            # The seed's loop costs the same every epoch: its time scales with the epochs.
            speedup = sd["train_s"] * SEED_EPOCHS / args.epochs / dl["train_s"]
            print(f"time ratio seed001/denoiselab = {speedup:.1f} (training; seed001 extrapolated to its {SEED_EPOCHS} epochs)")
        print(f"sampling time ratio seed001/denoiselab = {sd['sample_s']['mean'] / dl['sample_s']['mean']:.1f}")
        print(f"model evals ratio seed001/denoiselab = {sd['model_evals'] / dl['model_evals']:.1f}")
        print(
            f"W2 ratio seed001/denoiselab = {sd['w2'] / dl['w2']:.2f} "
            f"(seed001 {sd['w2_ratio']:.2f}x floor, denoiselab {dl['w2_ratio']:.2f}x floor)"
        )
        print(
            f"energy ratio seed001/denoiselab = {sd['energy'] / dl['energy']:.2f} "
            f"(seed001 {sd['energy_ratio']:.2f}x floor, denoiselab {dl['energy_ratio']:.2f}x floor)"
        )
    print(
        f"denoiselab training: {dl['flops_per_step'] / 1e9:.3f} GFLOP per step (matrix products), "
        f"{dl['flops_per_s'] / 1e9:.1f} GFLOP/s achieved on {dl['threads']} thread(s), against a nominal peak of "
        f"{dl['peak_flops_per_s'] / 1e9:.0f} GFLOP/s ({dl['peak_how']}): {dl['flops_per_s'] / dl['peak_flops_per_s']:.0%}"
    )
    checks = [
        (f"train <= {TARGET_TRAIN_S:.0f} s", dl["train_s"] <= TARGET_TRAIN_S, f"{dl['train_s']:.1f} s"),
        (f"model evals <= {TARGET_EVALS}", dl["model_evals"] <= TARGET_EVALS, str(dl["model_evals"])),
        (f"W2 <= {TARGET_W2_RATIO}x floor", dl["w2_ratio"] <= TARGET_W2_RATIO, f"{dl['w2_ratio']:.2f}x"),
        (f"energy <= {TARGET_ENERGY_RATIO}x floor", dl["energy_ratio"] <= TARGET_ENERGY_RATIO, f"{dl['energy_ratio']:.2f}x"),
    ]
    if speedup is not None:
        checks.append((f">= {TARGET_SPEEDUP:.0f}x faster than seed001", speedup >= TARGET_SPEEDUP, f"{speedup:.1f}x"))
    print("denoiselab targets: " + ", ".join(f"{name}: {'PASS' if ok else 'FAIL'} ({got})" for name, ok, got in checks))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=SEED_EPOCHS, help=f"seed001 training epochs (default {SEED_EPOCHS}, the seed's; fewer = smoke run)")
    p.add_argument("--repeats", type=int, default=20, help="sample seeds averaged per metric (default 20)")
    p.add_argument(
        "--references", type=int, default=40, help="reference draws: the floor's W2 over half as many pairs, energy over all pairs (default 40)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of seed001's training, of the sample seeds and of the reference draws (default 0); "
        "when given, also denoiselab's data.seed and train.seed (otherwise the recipe's own)",
    )
    p.add_argument(
        "--reference-seed",
        type=int,
        help="seed of the reference draws only (default: --seed); shows how much the ratios depend on them",
    )
    p.add_argument("--json", type=Path, help="also write the results as JSON to this path")
    p.add_argument("--skip-seed", action="store_true", help="run only denoiselab")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or args.references < 2:
        p.error("--epochs and --repeats must be >= 1, --references >= 2")
    args.seed_given = args.seed is not None
    args.seed = args.seed if args.seed_given else 0

    machine = machine_info()
    refs = reference_draws(args.seed if args.reference_seed is None else args.reference_seed, args.references)
    log(f"floor: {args.references} reference draws ...")
    floor = reference_floor(refs)
    results = {}
    if not args.skip_seed:
        results["seed001"] = run_seed001(args, refs, floor)
    results["denoiselab"] = run_denoiselab(args, refs, floor)
    # What memorising the 2000 training points would score: each draw has its own max |x| scale,
    # and the training draw is compared with one reference at a time where the floor compares two.
    training_set = quality([results["denoiselab"]["_train_data"]] * args.repeats, refs, floor)
    report(results, training_set, floor, args, machine)

    if args.json:
        public = {name: {k: v for k, v in res.items() if not k.startswith("_")} for name, res in results.items()}
        payload = {
            "machine": machine,
            "args": {
                "epochs": args.epochs,
                "repeats": args.repeats,
                "references": args.references,
                "seed": args.seed,
                "reference_seed": args.reference_seed,
                "skip_seed": args.skip_seed,
            },
            "smoke": not args.skip_seed and args.epochs != SEED_EPOCHS,
            "floor": asdict(floor),
            "results": public,
            "training_set": training_set,
        }
        if "seed001" in results:
            sd, dl = results["seed001"], results["denoiselab"]
            payload["ratios_seed001_over_denoiselab"] = {
                "train_time": sd["train_s"] / dl["train_s"],
                "sample_time": sd["sample_s"]["mean"] / dl["sample_s"]["mean"],
                "model_evals": sd["model_evals"] / dl["model_evals"],
                "w2": sd["w2"] / dl["w2"],
                "energy": sd["energy"] / dl["energy"],
            }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
