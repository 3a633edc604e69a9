"""Image quality against training compute: the `digits` recipe as shipped against cheaper options.

Each row trains the `digits` recipe with a few keys changed (same data draw, same training seed,
one torch thread), and is scored at several steps on the way (the run is interrupted there and
resumed, which is bit-exact; scoring time does not count as training time): the class accuracy
of 500 class-conditional samples (guidance 2, DPM-Solver++(2M), 20 evaluations) by the run's
cached digit classifier, and the Frechet distance in its feature space as a ratio to the
held-out floor (runs/evaluation.py, what `denoiselab evaluate` prints).  Training compute is
run.json's train_flops_per_step (torch's FlopCounterMode, one step's forward and backward,
training/flops.py) times the steps, and the training seconds on this machine.

Rows with post-hoc EMA snapshots (train.ema_snapshot_every) are scored, at their last step,
once per EMA length in --ema-lengths, reconstructed from the snapshots (EDM2, Karras et al.
2024, Sec. 3): the length is chosen after training.

    python benchmarks/image_compute.py --rows recipe --json recipe.json
    python benchmarks/image_compute.py --rows edm edm-small --json edm.json
    python benchmarks/image_compute.py --from-json recipe.json edm.json     # the tables again
    python benchmarks/image_compute.py --probe 250 --rows mp-small --lr 3e-4 1e-3 3e-3 1e-2   # a learning rate's first look
    python benchmarks/image_compute.py --rows small-lr3e-3 --independent --keep KEEP   # also an SVC's class accuracy
    python benchmarks/image_compute.py --score KEEP/small-lr3e-3 --seeds 1000 1001 1002 --independent   # several sample draws
    python benchmarks/image_compute.py --timing 20 10 --rows recipe small   # seconds a step, both in this one process
    python benchmarks/image_compute.py --from-json recipe.json small.json --figure quality.png   # quality against GFLOP
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from denoiselab.config import load_config
from denoiselab.runs import evaluate_run, load_run
from denoiselab.runs.sampling import plan_from_options
from denoiselab.training import TrainingInterrupted, train

EDM = ["model.precondition=edm", "model.prediction=x0", "train.weighting=edm", "train.timesteps=edm", "train.sigma_data=0.75"]  # the digits' pixel standard deviation
SNAPSHOTS = ["train.ema_snapshot_every=50"]

# name: (label, overrides, steps, steps at which to score)
ROWS = {
    "recipe": ("the recipe (eps, uniform time, EMA 0.999)", [], 4000, [250, 500, 1000, 2000, 4000]),
    "recipe-end": ("the recipe, scored at its end only", [], 4000, [4000]),
    "recipe-400": ("the recipe at 400 steps (a tenth)", ["train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "small": ("the recipe at width 16, 1600 steps (a tenth of its FLOPs)", ["model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "small-snap": ("the recipe at width 16, 1600 steps, post-hoc EMA snapshots", ["model.hidden=16", *SNAPSHOTS, "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "small-b64": ("the recipe at width 16, batch 64, 3200 steps (the same FLOPs)", ["model.hidden=16", "train.batch_size=64", "train.steps=3200", "train.warmup_steps=80"], 3200, [1600, 3200]),
    "small-lr3e-3": ("the recipe at width 16, 1600 steps, learning rate 3e-3", ["model.hidden=16", "train.lr=3e-3", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "small-lr1e-2": ("the recipe at width 16, 1600 steps, learning rate 1e-2", ["model.hidden=16", "train.lr=1e-2", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "edm-loss": ("EDM's weight and times only (eps, no preconditioning)", ["train.weighting=edm", "train.timesteps=edm", "train.sigma_data=0.75", "train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "edm": ("EDM preconditioning, x0, edm weight and time, post-hoc EMA", [*EDM, *SNAPSHOTS, "train.steps=400", "train.warmup_steps=40"], 400, [200, 400]),
    "edm-800": ("the same at 800 steps (a fifth)", [*EDM, *SNAPSHOTS, "train.steps=800", "train.warmup_steps=40"], 800, [400, 800]),
    "mp-small": ("magnitude-preserving U-Net (EDM2), width 16, 1600 steps", ["model.magnitude_preserving=true", "model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "mp-small-lr": ("the same at learning rate 1e-2 (the rate a 250-step probe chose)", ["model.magnitude_preserving=true", "model.hidden=16", "train.lr=1e-2", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
    "edm-small": ("the same, width 16 (a quarter of the FLOPs a step), 1600 steps", [*EDM, *SNAPSHOTS, "model.hidden=16", "train.steps=1600", "train.warmup_steps=40"], 1600, [800, 1600]),
}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def quiet(*args, **kwargs) -> None:
    pass


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_at_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def independent_classifier(run):
    """A classifier of another kind than the run's CNN (image_metrics.FeatureNet): scikit-learn's
    support-vector machine (RBF kernel) on the 64 pixels (in [-1, 1]) of the run's real training
    split, with its accuracy on the real held-out split.  C = 10, gamma = 0.03: the best of C in
    {1, 10, 100} x gamma in {'scale', 0.01, 0.03, 0.1} by 5-fold cross-validation on the
    training split alone (0.976; the held-out split was not looked at to choose)."""
    from sklearn.svm import SVC

    from denoiselab.runs.evaluation import held_out_images

    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # noqa: E731
    svc = SVC(C=10, gamma=0.03).fit(flat(run.data), run.labels)
    held, held_labels = held_out_images(run)
    return svc, float(svc.score(flat(held), held_labels)), flat


def image_scores(run_dir: Path, independent: bool = False, seed: int = 1000) -> dict:
    """What `denoiselab evaluate` prints (500 samples drawn from ``seed``, every class in
    proportion, the recipe's sampler, 20 evaluations, guidance 2), and with ``independent`` the
    SVC's class accuracy on the same samples."""
    run = load_run(run_dir, device="cpu")
    plan = plan_from_options(run, seed=seed)
    metrics, samples = evaluate_run(run, plan)
    v = metrics.values
    out = {"accuracy": v.get("accuracy"), "frechet_ratio": v.get("frechet_ratio")}
    if independent:
        svc, ceiling, flat = independent_classifier(run)
        out["svc_accuracy"] = float(svc.score(flat(samples), plan.labels))
        out["svc_held_out"] = ceiling
    return out


def run_row(key: str, root: Path, ema_lengths: list[float], independent: bool = False) -> dict:
    label, overrides, steps, stops = ROWS[key]
    cfg = load_config("digits", [*overrides, "train.threads=1"])
    run_dir = root / key
    points, t0, resume = [], time.perf_counter(), False
    for stop in stops:
        try:
            train(cfg, run_dir, resume=resume, progress=False, log=quiet, stop_at=stop if stop < steps else None)
        except TrainingInterrupted:
            pass
        resume = True
        seconds = time.perf_counter() - t0
        info = json.loads((run_dir / "run.json").read_text())
        scores = image_scores(run_dir, independent)
        point = {"step": stop, "train_s": seconds, "gflop": info["train_flops_per_step"] * stop / 1e9, "load": load_average(), **scores}
        log(f"{key} at step {stop}: {point}")
        points.append(point)
        t0 = time.perf_counter() - seconds  # scoring does not count as training time
    row = {"label": label, "overrides": overrides, "steps": steps, "gflop_per_step": info["train_flops_per_step"] / 1e9, "curve": points}
    if cfg.train.ema_snapshot_every and ema_lengths:
        from denoiselab.runs.posthoc_ema import reconstruct_into_run

        row["ema"] = []
        for length in ema_lengths:
            reconstruct_into_run(run_dir, length)
            scores = {"sigma_rel": length, **image_scores(run_dir, independent)}
            log(f"{key} post-hoc EMA {length}: {scores}")
            row["ema"].append(scores)
    return row


def score_runs(run_dirs: list[Path], seeds: list[int], independent: bool, label: str, json_path: Path | None) -> None:
    """Score trained run folders at their last step, once per sample seed (the draw's own scatter:
    the same weights, other samples), as rows of one point: the mean over the seeds."""
    out = {"machine": machine_info(), "rows": {}}
    for run_dir in run_dirs:
        info = json.loads((run_dir / "run.json").read_text())
        by_seed = []
        for seed in seeds:
            by_seed.append({"seed": seed, **image_scores(run_dir, independent, seed)})
            log(f"{run_dir} seed {seed}: {by_seed[-1]}")
        point = {"step": info["step"], "gflop": info["train_flops_per_step"] * info["step"] / 1e9, "train_s": float("nan"), "load": load_average()}
        for name in ("accuracy", "frechet_ratio", "svc_accuracy", "svc_held_out"):
            if name in by_seed[0]:
                point[name] = float(np.mean([b[name] for b in by_seed]))
        point["by_seed"] = by_seed
        key = f"{run_dir.name} {label}".strip()
        name = ROWS[run_dir.name][0] if run_dir.name in ROWS else run_dir.name  # a folder --keep trained is named by its row
        out["rows"][key] = {"label": f"{name}{', ' + label if label else ''}", "steps": info["step"], "curve": [point]}
        frechet = [b["frechet_ratio"] for b in by_seed]
        print(f"{key}: step {info['step']}, {point['gflop']:.0f} GFLOP; class accuracy {point['accuracy']:.3f}, Frechet ratio "
              f"{point['frechet_ratio']:.2f} (seeds {', '.join(str(s) for s in seeds)}: {', '.join(f'{f:.2f}' for f in frechet)})"
              + (f", SVC accuracy {point['svc_accuracy']:.3f} (held-out real {point['svc_held_out']:.3f})" if "svc_accuracy" in point else "")
              + f"; load {point['load']}", flush=True)  # fmt: skip
    if json_path:
        json_path.write_text(json.dumps(out, indent=1))


def figure(out: dict, path: Path) -> None:
    """Frechet ratio and class accuracy against training GFLOP (log x), one line per row."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_f, ax_a) = plt.subplots(1, 2, figsize=(12, 5.6))
    rows = []
    for key, row in out["rows"].items():
        label, name = row["label"], key.split()[0]
        if name in ROWS and label.startswith(name + ","):  # --score rows written before they were named by their row
            label = ROWS[name][0] + label[len(name) :]
        label = label if "draw" in label else label + ", this code's draw"
        # A reader of the figure knows neither commit: the draw is named by what it is.
        label = label.replace("56fe39c's draw", "the recipe's sample draw (commit 56fe39c)").replace("this code's draw", "today's sample draw")
        label = label.replace("current draw", "today's sample draw")
        rows.append((label, row, name.removesuffix("-end")))
    # Rows of one point at the same compute are drawn a little apart (x 1.06 each), to be seen.
    alone = [i for i, (_, row, _) in enumerate(rows) if len(row["curve"]) == 1]
    colours = {}  # one colour a configuration, whichever draw scored it
    shift = {i: 1.06 ** (j - (len(alone) - 1) / 2) for j, i in enumerate(alone)}
    for i, (label, row, config) in enumerate(rows):
        g = [p["gflop"] * shift.get(i, 1.0) for p in row["curve"]]
        seeds = any(len(p.get("by_seed", [])) > 1 for p in row["curve"])
        colour = colours.setdefault(config, f"C{len(colours)}")
        style = dict(marker="s" if seeds else "o", markerfacecolor="none" if seeds else None, linestyle="-" if len(g) > 1 else "none", color=colour)
        (line,) = ax_f.plot(g, [p["frechet_ratio"] for p in row["curve"]], label=label, **style)
        for x, p in zip(g, row["curve"]):
            if len(p.get("by_seed", [])) > 1:  # the sample draw's scatter: the seeds' lowest to highest
                f = [b["frechet_ratio"] for b in p["by_seed"]]
                ax_f.plot([x, x], [min(f), max(f)], color=line.get_color(), linewidth=1)
        ax_a.plot(g, [p["accuracy"] for p in row["curve"]], **style)
        pts = [(x, p["svc_accuracy"]) for x, p in zip(g, row["curve"]) if "svc_accuracy" in p]
        if pts:
            ax_a.plot(*zip(*pts), color=line.get_color(), marker="x", linestyle=":" if len(pts) > 1 else "none")
    recipe = out["rows"].get("recipe")
    if recipe:  # the target: a tenth of the recipe's FLOPs, its Frechet ratio, accuracy 0.99
        last = recipe["curve"][-1]
        for ax in (ax_f, ax_a):
            ax.axvline(last["gflop"] / 10, color="grey", linestyle="--", linewidth=0.8)
        ax_f.axhline(last["frechet_ratio"], color="grey", linestyle=":", linewidth=0.8)
        ax_a.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
        ax_f.annotate(" a tenth of the recipe's FLOPs", (last["gflop"] / 10, ax_f.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=7, color="grey")
    ticks = [1000, 2000, 5000, 10000, 20000, 50000]
    for ax in (ax_f, ax_a):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("training compute, GFLOP (FlopCounterMode per step x steps)")
        ax.grid(True, which="both", alpha=0.3)
    ax_f.set_ylabel("Frechet ratio to the held-out floor (lower is better)")
    ax_a.set_ylabel("class accuracy (x: the SVC; else the run's CNN)")
    ax_f.set_title("digits: Frechet distance against training compute")
    ax_a.set_title("digits: class accuracy against training compute")
    fig.legend(loc="lower center", ncol=2, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"wrote {path}")


def fresh_training(cfg):
    """What the training loop starts from for recipe ``cfg``: the data, a fresh seeded state, the
    objective, the training images and labels as tensors."""
    from denoiselab.builders import objective_from, schedule_from
    from denoiselab.training.checkpoint import init_state
    from denoiselab.training.denoiser import load_training_data

    data = load_training_data(cfg)
    x, y = torch.as_tensor(data.train, dtype=torch.float32), torch.as_tensor(data.labels, dtype=torch.long)
    state = init_state(cfg, x.shape[1], torch.device("cpu"), len(data.class_names), tuple(x.shape[1:]))
    return data, state, objective_from(cfg, schedule_from(cfg)), x, y


def timing(keys: list[str], block: int, rounds: int, warmup: int = 5, json_path: Path | None = None) -> None:
    """Seconds per optimiser step of each row, measured in this one process on one thread: after
    ``warmup`` untimed steps each, ``rounds`` rounds in which every row runs ``block`` steps
    (training.step.optimiser_step: the batch, forward, backward, AdamW, the EMA), the order
    reversed every other round (A B B A ...) so that a drift in the machine's load falls on
    both alike.  The whole run's seconds are the row's steps times its mean seconds a step;
    the loop's checkpoints, logging and the one FLOP count are not in them."""
    from denoiselab.training.step import optimiser_step

    setups = {}
    for key in keys:
        cfg = load_config("digits", [*ROWS[key][1], "train.threads=1"])
        _, state, objective, x, y = fresh_training(cfg)
        for _ in range(warmup):
            optimiser_step(cfg, state, objective, x, y)
        setups[key] = (cfg, state, objective, x, y)
    machine, seconds, loads = machine_info(), {k: [] for k in keys}, [load_average()]
    started = time.perf_counter()
    for r in range(rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            cfg, state, objective, x, y = setups[key]
            t0 = time.perf_counter()
            for _ in range(block):
                optimiser_step(cfg, state, objective, x, y)
            seconds[key].append((time.perf_counter() - t0) / block)
        loads.append(load_average())
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {seconds[k][-1]:.3f} s/step" for k in keys) + f"; load {loads[-1]}")
    wall = time.perf_counter() - started
    rows = {}
    for key in keys:
        per = np.array(seconds[key])
        steps = ROWS[key][2]
        rows[key] = {"label": ROWS[key][0], "steps": steps, "s_per_step": float(per.mean()), "s_per_step_min": float(per.min()),
                     "s_per_step_max": float(per.max()), "run_s": float(steps * per.mean()), "blocks": per.tolist()}  # fmt: skip
    out = {"machine": machine, "block": block, "rounds": rounds, "warmup": warmup, "loads": loads, "wall_s": wall, "rows": rows}
    if json_path:
        json_path.write_text(json.dumps(out, indent=1))
    timing_report(out)


def timing_report(out: dict) -> None:
    """The tables of a --timing run (also from its --json, through --from-json)."""
    rows, keys, loads = out["rows"], list(out["rows"]), out["loads"]
    print(f"machine: {out['machine']}")
    print(f"{out['rounds']} rounds of {out['block']} steps a row ({out['warmup']} untimed steps first), alternating A B B A; {out['wall_s']:.0f} s in all")
    print(f"load average (1/5/15 min) at each round's end: first {loads[0]}, then " + "; ".join(loads[1:]))
    print("\n| row | s a step (mean of blocks) | slowest / fastest block | steps | whole run, s (steps x s a step) |")
    print("|---|---:|---:|---:|---:|")
    for row in rows.values():
        print(f"| {row['label']} | {row['s_per_step']:.4f} | {row['s_per_step_max']:.4f} / {row['s_per_step_min']:.4f} | {row['steps']} | {row['run_s']:.0f} |")
    first = rows[keys[0]]
    for key in keys[1:]:
        steps = first["steps"] / rows[key]["steps"]
        # Each round's two blocks ran back to back, under nearly the same load: their ratio.
        paired = np.array(first["blocks"]) / np.array(rows[key]["blocks"])
        print(f"\nwhole-run wall-time ratio, {keys[0]} / {key}: {first['run_s'] / rows[key]['run_s']:.2f}x "
              f"(a step {first['s_per_step'] / rows[key]['s_per_step']:.2f}x, steps {steps:.2f}x); "
              f"from each round's pair of blocks: median {np.median(paired) * steps:.2f}x, "
              f"range {paired.min() * steps:.2f}x to {paired.max() * steps:.2f}x")  # fmt: skip


def probe(keys: list[str], steps: int, rates: list[float]) -> None:
    """The held-out loss (the training objective on the held-out digits, 8 fixed draws of times and
    noise, the network and its EMA) after ``steps`` optimiser steps of each row at each learning
    rate, the cosine schedule run over those steps: a cheap first look at a learning rate."""
    from denoiselab.training.step import optimiser_step

    print("| row | lr | training loss (last 50 steps) | held-out loss: network | held-out loss: EMA | train s |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in keys:
        for lr in rates:
            label, overrides, _, _ = ROWS[key]
            cfg = load_config("digits", [*overrides, f"train.steps={steps}", f"train.lr={lr}", "train.threads=1"])
            data, state, objective, x, y = fresh_training(cfg)
            xh, yh = torch.as_tensor(data.held_out, dtype=torch.float32), torch.as_tensor(data.held_out_labels, dtype=torch.long)
            t0 = time.perf_counter()
            for _ in range(steps):
                optimiser_step(cfg, state, objective, x, y)
            seconds = time.perf_counter() - t0
            held = []
            for model in (state.model, state.sampling_model()):
                model.eval()
                with torch.no_grad():
                    g = torch.Generator().manual_seed(123)
                    held.append(sum(objective(model, xh, g, y=yh).item() for _ in range(8)) / 8)
            print(f"| {label} | {lr:g} | {sum(state.losses[-50:]) / 50:.4f} | {held[0]:.4f} | {held[1]:.4f} | {seconds:.0f} |", flush=True)


def report(out: dict) -> None:
    print(f"machine: {out['machine']}")
    points = [p for row in out["rows"].values() for p in row["curve"]]
    svc = any("svc_accuracy" in p for p in points)
    ceilings = sorted({p["svc_held_out"] for p in points if "svc_held_out" in p})
    if svc:
        print(f"SVC (independent classifier) on the real held-out digits: {', '.join(f'{c:.3f}' for c in ceilings)}")
    print("\n| row | step | GFLOP (training) | train s | load (1/5/15 min) | class accuracy | Frechet ratio |" + (" SVC accuracy |" if svc else ""))
    print("|---|---:|---:|---:|---|---:|---:|" + ("---:|" if svc else ""))
    for key, row in out["rows"].items():
        for p in row["curve"]:
            extra = (f" {p['svc_accuracy']:.3f} |" if "svc_accuracy" in p else " - |") if svc else ""
            print(f"| {row['label']} | {p['step']} | {p['gflop']:.0f} | {p['train_s']:.0f} | {p['load']} | {p['accuracy']:.3f} | {p['frechet_ratio']:.2f} |{extra}")
    ema_rows = {k: r for k, r in out["rows"].items() if r.get("ema")}
    if ema_rows:
        print("\nPost-hoc EMA at the last step, by sigma_rel (class accuracy / Frechet ratio):\n")
        lengths = sorted({e["sigma_rel"] for r in ema_rows.values() for e in r["ema"]})
        print("| row | " + " | ".join(f"{v:g}" for v in lengths) + " |")
        print("|---|" + "---:|" * len(lengths))
        for row in ema_rows.values():
            cells = {e["sigma_rel"]: f"{e['accuracy']:.3f} / {e['frechet_ratio']:.2f}" for e in row["ema"]}
            print(f"| {row['label']} | " + " | ".join(cells.get(v, "-") for v in lengths) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=["recipe", "edm"])
    parser.add_argument("--ema-lengths", nargs="*", type=float, default=[0.04, 0.07, 0.1, 0.15])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--from-json", nargs="+", type=Path, help="print the tables of earlier results")
    parser.add_argument("--keep", type=Path, help="train into this folder (kept) instead of a temporary one")
    parser.add_argument("--probe", type=int, metavar="STEPS", help="instead: the held-out loss of --rows after STEPS steps at each --lr")
    parser.add_argument("--independent", action="store_true", help="also the class accuracy by an SVC on the real training pixels")
    parser.add_argument("--lr", nargs="+", type=float, default=[1e-3], help="--probe: the learning rates")
    parser.add_argument("--timing", nargs=2, type=int, metavar=("BLOCK", "ROUNDS"),
                        help="instead: seconds a step of --rows, timed in ROUNDS alternating blocks of BLOCK steps in this one process")  # fmt: skip
    parser.add_argument("--score", nargs="+", type=Path, metavar="RUN", help="instead: score these trained run folders as the rows are scored")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1000], help="--score: the sample seeds (the rows use 1000)")
    parser.add_argument("--label", default="", help="--score: added to each row's label (say which code scored it)")
    parser.add_argument("--figure", type=Path, help="--from-json: also draw quality against training GFLOP here")
    args = parser.parse_args(argv)
    if args.score:
        torch.set_num_threads(1)
        score_runs(args.score, args.seeds, args.independent, args.label, args.json)
        return 0
    if args.timing:
        torch.set_num_threads(1)
        timing(args.rows, *args.timing, json_path=args.json)
        return 0
    if args.probe:
        torch.set_num_threads(1)
        probe(args.rows, args.probe, args.lr)
        return 0
    if args.from_json:
        merged = {"machine": [], "rows": {}}
        for path in args.from_json:
            data = json.loads(path.read_text())
            if "block" in data:  # a --timing run
                timing_report(data)
                continue
            merged["machine"].append(data["machine"])
            merged["rows"].update(data["rows"])
        if merged["rows"]:
            report(merged)
        if args.figure:
            figure(merged, args.figure)
        return 0
    torch.set_num_threads(1)
    out = {"machine": machine_info(), "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for key in args.rows:
            out["rows"][key] = run_row(key, root, args.ema_lengths, args.independent)
            if args.json:
                args.json.write_text(json.dumps(out, indent=1))
    report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
