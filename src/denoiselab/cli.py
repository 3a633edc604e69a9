"""The denoiselab command line: train, distill, sample, evaluate, likelihood, plot, schedules, serve, tune-steps.

Usage errors (bad recipe keys or values, bad files, bad options) print one line naming the
problem and exit with status 2; nothing is left behind that looks like a finished run.

Only light modules are imported here: torch, numpy, matplotlib, scipy and the web stack are
imported inside the commands that use them, so `--help` and a bad option answer at once
(benchmarks/startup.py measures it; tests/test_startup.py checks what is imported).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, files
from .choices import GRIDS, JUMP_SAMPLER_NAMES, SAMPLER_NAMES, SCHEDULE_KINDS, TUNING_CALLS, VARIANCES
from .config import check_world_size, load_config, recipe_names
from .errors import InputError
from .runs.folder import CHECKPOINT, CONFIG, DATA, INFO, RunError, RunFolder, RunFolderError
from .serve import HELP as SERVE_HELP
from .serve import add_serve_arguments, run_serve

if TYPE_CHECKING:  # annotations only: numpy is imported inside the commands
    import numpy as np

# Every bad-input error derives from InputError (ConfigError, DataError, RunError, SamplingError,
# CheckpointError, RunBusyError, RunFolderError), so none of their heavy modules is imported here.
USAGE_ERRORS = (InputError,)
SAMPLE_SUFFIXES = (".npy", ".csv", ".png")


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value}")
    return value


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    from .choices import IMAGE_SAMPLE_BATCH
    p.add_argument("--sampler", choices=SAMPLER_NAMES + JUMP_SAMPLER_NAMES, help="default: the run's [sample] sampler")
    p.add_argument("--steps", type=_positive_int, help="sampler steps (<= T; = model evaluations, heun, edm-heun and dpm++2s: 2 x steps - 1)")
    p.add_argument("-n", type=_positive_int, help="number of points")
    p.add_argument("--eta", type=_nonneg_float, help="DDIM stochasticity (0 deterministic, 1 DDPM-like)")
    p.add_argument("--variance", choices=VARIANCES, help="DDPM reverse variance")
    p.add_argument("--spacing", choices=GRIDS, help=argparse.SUPPRESS)  # the older name of --grid NAME
    p.add_argument(
        "--grid", metavar="NAME|TIMES|FILE",
        help=f"the times the sampler visits: a named grid ({', '.join(GRIDS)}), a list such as 1,0.6,0.3,0.1,0 "
        "(strictly decreasing, ending at 0; it sets the steps), or a file of such times",
    )  # fmt: skip
    p.add_argument("--rho", type=float, help="karras grid: its exponent (default: the run's sample.rho, 7)")
    p.add_argument("--seed", type=int, help="seed of x_T and the sampler's noise, per sample: sample i's stream is keyed by (seed, i)")
    p.add_argument("--label", metavar="K|NAME", help="conditional runs: the class to draw (index or name); default: every class in proportion")
    p.add_argument("--guidance", type=_nonneg_float, metavar="S", help="conditional runs: classifier-free guidance scale (1 = conditional, 0 = unconditional)")
    p.add_argument(
        "--batch", type=_positive_int, metavar="B",
        help=f"samples drawn at a time (default: all at once for points, {IMAGE_SAMPLE_BATCH} for images); "
        "every sample has its own seed, so the samples are the same for any B",
    )  # fmt: skip


def _add_gradient_guidance_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gradient guidance (an unguided model steered at sampling time)")
    g.add_argument("--classifier-scale", type=_nonneg_float, metavar="S", help="classifier guidance towards --label by the run's classifier (denoiselab train-classifier)")
    g.add_argument("--observe", action="append", default=[], metavar="xI=V", help="points: fix coordinate I at V (data units) and sample the rest; x1 is the first coordinate (a sample CSV's column x1); repeatable")
    g.add_argument("--region", metavar="EXPR", help="points: steer into a region, e.g. 'x1 > 0.5' (x1, x2, numbers, + - * / **, abs, < <= > >=, and); prints the share inside")
    g.add_argument(
        "--method", choices=("replace", "dps", "universal", "smc"),
        help="--observe: replace (RePaint-style), dps (the default with --guide-scale or --sampler), universal or smc "
        "(twisted sequential Monte Carlo, the default for --observe; also for --region and --classifier-scale)",
    )  # fmt: skip
    g.add_argument("--particles", type=_positive_int, metavar="K", help="--method smc: particles per sample (default 16, on 4 x the run's steps unless --steps; K x steps = model evaluations per sample)")
    g.add_argument("--guide-scale", type=_nonneg_float, metavar="S", help="--observe (dps, universal) / --region guidance scale (defaults 3 / 10)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="denoiselab", description="Diffusion models you can run, see and measure.")
    parser.add_argument("--version", action="version", version=f"denoiselab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a recipe into a run folder")
    p.add_argument("--config", default="spiral", help=f"recipe name ({', '.join(recipe_names())}) or a .toml path")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a recipe key")
    p.add_argument("--out", help="run folder (default: runs/<recipe>, numbered if taken)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (recipe from the run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="measure the run but draw no figures (denoiselab plot RUN draws them later)")
    p.add_argument(
        "--nproc", type=_positive_int, metavar="N",
        help="train in N processes on this machine (torchrun started for you: data parallelism over gloo, or NCCL with one GPU "
        "each); train.batch_size is the global batch. Several machines: torchrun ... -m denoiselab train (README)",
    )  # fmt: skip

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run", metavar="RUN_DIR")
    _add_sampling_options(p)
    p.add_argument("--out", required=True, help="output file: .npy (N x D array), .csv or .png")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --method smc: the effective sample size over the steps)")
    p.add_argument("--prompt", action="append", metavar="TEXT", help="text-to-image runs: a caption to sample (-n images each, one row per prompt; repeatable; \"\" = unconditional)")
    _add_gradient_guidance_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")

    p = sub.add_parser("train-classifier", help="train a noise-conditional classifier of a run's classes, for classifier guidance")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--steps", type=_positive_int, help="optimiser steps (default 2000)")
    p.add_argument("--batch-size", type=_positive_int, help="samples per step (default 256)")
    p.add_argument("--lr", type=_nonneg_float, help="peak learning rate (default 2e-3)")
    p.add_argument("--hidden", type=_positive_int, help="width (default 128 for points, 32 for images)")
    p.add_argument("--seed", type=int, help="seed of initialisation, batches, times and noise (default 0)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default 1, as train: more are slower when another program holds a core)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted classifier training")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("inpaint", help="complete the unknown part of an image with an image run")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--image", required=True, metavar="FILE", help="the image (PNG or any format Pillow reads; resized to the run's size)")
    p.add_argument("--mask", required=True, metavar="left|top|box:X0,Y0,X1,Y1", help="the known pixels: the left or top half, or all but a box (pixel columns X0..X1-1, rows Y0..Y1-1)")
    p.add_argument("--out", required=True, metavar="FILE.png", help="a grid: masked input, completions, original")
    p.add_argument(
        "--method", default="replace", choices=("replace", "dps", "universal", "smc"),
        help="replace (RePaint-style), dps (gradient through the denoiser), universal (dps + a backward step) or smc (twisted sequential Monte Carlo); default replace",
    )  # fmt: skip
    p.add_argument("--particles", type=_positive_int, metavar="K", help="--method smc: particles per completion (default 16)")
    p.add_argument("--scale", type=_nonneg_float, help="dps/universal guidance scale (default 3)")
    p.add_argument("-n", type=_positive_int, default=8, help="completions (default 8)")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default: the run's [sample] sampler")
    p.add_argument("--steps", type=_positive_int, help="sampler steps")
    p.add_argument("--seed", type=int, help="seed of x_T and the sampler's noise")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")

    p = sub.add_parser("evaluate", help="sample a run and measure W2 and energy distance against the data")
    p.add_argument("run", metavar="RUN_DIR")
    _add_sampling_options(p)
    p.add_argument("--repeats", type=_positive_int, default=8, help="sample sets (seeds seed, seed + 1, ...) averaged per metric (default 8)")
    p.add_argument("--ema-length", type=_positive_float, nargs="+", metavar="L", help="runs with post-hoc EMA snapshots: measure the EMA of each length L instead of the run's weights (see denoiselab ema)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")

    p = sub.add_parser("likelihood", help="the model's negative log-likelihood of points (nats a point) or images (bits a dimension)")
    p.add_argument("run", metavar="RUN_DIR")
    points = p.add_mutually_exclusive_group()
    points.add_argument("--data", metavar="FILE", help="points in data units (.npy or .csv), or images (.npy, N x C x H x W in [-1, 1]); default: fresh draws of a built-in set, else the held-out points")
    points.add_argument("--held-out", action="store_true", help="the run's held-out points or images (a data file's or an image set's held-out split)")
    p.add_argument("-n", type=_positive_int, help="points to measure (default 2000 points, 100 images)")
    divergence = p.add_mutually_exclusive_group()
    divergence.add_argument("--exact", action="store_true", help="exact divergence (D backward passes a model call; the default up to 64 dimensions)")
    divergence.add_argument("--probes", type=_positive_int, metavar="K", help="Hutchinson's divergence estimate with K Rademacher probes (the default above 64 dimensions, K = 1)")
    solver = p.add_mutually_exclusive_group()
    solver.add_argument("--rtol", type=_positive_float, metavar="R", help="adaptive Dormand-Prince 5(4) with relative and absolute tolerance R (default 1e-3)")
    solver.add_argument("--steps", type=_positive_int, metavar="S", help="a fixed-step solver with S steps instead (--solver)")
    p.add_argument("--solver", choices=("rk4", "heun"), help="with --steps: rk4 (4 evaluations a step, the default) or heun (2)")
    p.add_argument("--label", metavar="K|NAME", help="conditional runs: log p(x | label); default: the mixture over the classes")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh draws, the probes and the dequantisation noise (default 0)")
    p.add_argument("--bound", action="store_true", help="DDPM chain runs: also the variational bound (Ho et al. 2020, Eq. 5; images: L_vlb with the discretised decoder, bits/dim; T model evaluations a point)")
    p.add_argument("--plot", metavar="FILE.png", help="1-D and 2-D point runs: also draw the learned log-density beside the true one (a grid of 64 x 64 solves)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("ema", help="post-hoc EMA: the run's weights averaged with another EMA length, from its stored snapshots (EDM2)")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--length", type=_positive_float, required=True, metavar="L", help="relative EMA length sigma_rel (EDM2: 0.05 to 0.2 are typical)")
    p.add_argument("--out", metavar="FILE.safetensors", help="write the weights here (default: the run's sampling weights, used by sample and evaluate)")

    p = sub.add_parser("plot", help="redraw every figure of a run")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--out", help="folder for the figures (default: the run folder)")

    p = sub.add_parser("paths", help="draw the sampling paths of 2-D point runs side by side, from the same noise")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="e.g. a diffusion, a flow and an OT-CFM run")
    p.add_argument("--sampler", choices=SAMPLER_NAMES + JUMP_SAMPLER_NAMES, help="default: each run's [sample] sampler")
    p.add_argument("--steps", type=_positive_int, help="default: each run's [sample] steps")
    p.add_argument("-n", type=_positive_int, default=300, help="paths drawn (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared starting noise")
    p.add_argument("--out", default="paths.png", help="output PNG (default paths.png)")

    p = sub.add_parser("schedules", help="draw the noise schedules side by side")
    p.add_argument("--T", type=_positive_int, default=1000, help="diffusion steps (default 1000)")
    p.add_argument("--beta-start", type=float, default=1e-4)
    p.add_argument("--beta-end", type=float, default=0.02)
    p.add_argument("--no-scale", action="store_true", help="keep the beta range as given (no x 1000/T)")
    p.add_argument("--out", default="schedules.png", help="output PNG (default schedules.png)")

    p = sub.add_parser("tune-steps", help="tune a sampler's time points to a run's model (written to the run folder only when they beat the start grid on held-out noise; exit status 0 either way)")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--sampler", choices=SAMPLER_NAMES, help="default: the run's [sample] sampler")
    p.add_argument("--nfe", type=_positive_int, required=True, help="model evaluations per sample (heun, edm-heun, dpm++2s: odd)")
    p.add_argument("--start", metavar="NAME|TIMES", help="grid to start from: trailing, logsnr, karras, time-uniform or times such as 1,0.6,0.3,0.1,0 (default: the best of the named ones)")
    p.add_argument("-n", type=_positive_int, default=2000, help="starting points for the search, and as many held out (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    p.add_argument("--max-calls", type=_positive_int, default=TUNING_CALLS, help=f"the search's budget in sampler runs (default {TUNING_CALLS}; the same grid on any machine); it stops sooner when it converges")
    p.add_argument("--max-seconds", type=float, help="stop the search after this many seconds as well (not counting the two reference solves before it); default: no time limit")

    p = sub.add_parser("distill", help="make a new run from a trained one: reflow (a straighter rectified flow, for 1 to 4 steps) or consistency (a consistency model)")
    p.add_argument("teacher", nargs="?", metavar="TEACHER_RUN", help="the trained run whose samples the new run learns from")
    p.add_argument("--method", choices=DISTILL_METHODS, default="reflow", help="reflow (Liu et al. 2023): a rectified flow on the teacher's (noise, sample) pairs; consistency (Song et al. 2023, Alg. 2): "
                   "consistency distillation along the teacher's ODE, sampled in 1 to 4 jumps; progressive (Salimans & Ho 2022): "
                   "DDIM steps halved per round down to one")
    p.add_argument("--out", required=True, help="the new run folder")
    p.add_argument("--steps", type=_positive_int, help="the new run's optimiser steps (default: the teacher's train.steps)")
    p.add_argument("--pairs", type=_positive_int, help="noise draws the teacher solves (default: its training points, at least 4000)")
    p.add_argument("--rounds", type=_positive_int, help="progressive: halvings of the teacher's 2^rounds DDIM steps down to 1 (default 4), each of --steps")
    p.add_argument("--init", choices=("scratch", "teacher"), help="consistency: the student's network starts from the teacher's (Song et al. 2023, App. C; "
                   "the default for a teacher trained with model.precondition = edm, the only kind it can start from) or from scratch (the default otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_serve_arguments(sub.add_parser("serve", help=SERVE_HELP))
    return parser


def _free_run_dir(name: str) -> Path:
    base = Path("runs") / name
    if not base.exists():
        return base
    i = 2
    while (Path("runs") / f"{name}-{i}").exists():
        i += 1
    return Path("runs") / f"{name}-{i}"


def _torchrun_place() -> tuple[int, int]:
    """(rank, world size) that torchrun gave this process; (0, 1) outside torchrun."""
    import os

    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


def cmd_train(args) -> int:
    rank, world = _torchrun_place()
    if args.nproc and world > 1:
        raise UsageError("--nproc: this process was started by torchrun already; give the processes to torchrun (--nproc_per_node) only")
    cfg, run_dir = _train_request(args, is_main=rank == 0, world=world)
    if args.nproc:
        return _start_processes(args, run_dir)
    if rank == 0:
        print(f"denoiselab {__version__}: training recipe {cfg.name!r} into {run_dir}" + (f" ({world} processes)" if world > 1 else ""))
    from .runs import complete_run, floors_in_background
    from .training import TrainingInterrupted, train
    from .training.parallel import Processes, ProcessGroupError

    processes = Processes.start(cfg.train.device)
    resume_command = f"denoiselab train --nproc {world} --resume {run_dir}" if world > 1 else None
    # The metrics' floors (the data's own, cached per machine) are measured on the idle core
    # while the model trains, so that a first run does not wait for them afterwards.
    floors = floors_in_background(cfg) if processes.is_main else None
    try:
        # A latent run may train its autoencoder first.
        train(
            cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress, processes=processes,
            resume_command=resume_command, figures=not args.no_figures,
        )  # fmt: skip
    except TrainingInterrupted as exc:
        if processes.is_main:
            print(f"\n{exc}", file=sys.stderr)
        processes.close()  # every process stopped after the same step (reduce_step agreed on it)
        return 128 + exc.signum  # the shell's convention: 130 after Ctrl-C, 143 after SIGTERM
    except FloatingPointError as exc:
        if processes.is_main:
            RunFolder(run_dir).mark_failed()
            print(f"denoiselab train: error: {exc}", file=sys.stderr)
        return 1
    except (ProcessGroupError, RuntimeError) as exc:
        if not processes.is_parallel or not _is_collective_failure(exc):
            raise
        step = RunFolder(run_dir).read_info().get("step", 0) if RunFolder(run_dir).info_path.is_file() else 0
        what = exc if isinstance(exc, ProcessGroupError) else f"another process of the run stopped ({_collective_reason(exc)})"
        print(
            f"denoiselab train: error: process {processes.rank} of {world}: {what}; "
            f"the last checkpoint (step {step}) is kept: resume with {resume_command}",
            file=sys.stderr,
        )
        if floors is not None:
            floors.stop()
        processes.abandon(1)
    finally:
        if floors is not None:
            floors.stop()
    processes.close()
    if not processes.is_main:
        return 0
    complete_run(run_dir, figures=not args.no_figures)
    print(f"run folder: {run_dir}")
    return 0


def _observe_reference(run, plan, request):
    """The true conditional beside the samples of `sample --observe` (runs.guided.conditional_reference)."""
    from .runs.guided import conditional_reference, reference_label

    if request is None or not request.observe:
        return None
    shown, label = reference_label(plan, request)
    return conditional_reference(run, request.observe, label=label) if shown else None


def _is_collective_failure(exc: BaseException) -> bool:
    """A failure of the process group (a peer died, a timeout), not a bug in the step."""
    import torch.distributed as dist

    from .training.parallel import ProcessGroupError

    text = str(exc).lower()
    return isinstance(exc, (dist.DistError, ProcessGroupError)) or any(w in text for w in ("gloo", "nccl", "connection", "timed out", "peer"))


def _collective_reason(exc: BaseException) -> str:
    """The backend's reason, without its source location: "Connection reset by peer"."""
    import re

    text = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", " ".join(str(exc).split()))
    text = re.sub(r"^Read error \[[^\]]*\]:\d+:\s*", "", text)
    return text.split(". ")[0][:120]


def _start_processes(args, run_dir: Path) -> int:
    """``train --nproc N``: torchrun's launcher run for the user on this machine (``--standalone``:
    its own rendezvous), with the same request and the run folder chosen here.  Ctrl-C reaches
    every process from the terminal, and torchrun passes SIGTERM on; each process stops after the
    same step and rank 0 writes one checkpoint.  The processes report a failure in one line each;
    torchrun's own report (a traceback of its agent) is left out, and its status is this command's."""
    import logging
    import os

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    argv = ["--standalone", f"--nproc_per_node={args.nproc}", "-m", "denoiselab", "train"]
    if args.resume:
        argv += ["--resume", str(run_dir)]
    else:
        argv += ["--config", args.config, "--out", str(run_dir)]
    argv += [f"--set={item}" for item in args.set] + (["--no-progress"] if args.no_progress else [])
    argv += ["--no-figures"] if args.no_figures else []
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default too, without its warning; train.threads decides
    for name in list(logging.root.manager.loggerDict):  # torchrun's agent logs each worker it stops
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(get_args_parser().parse_args(argv))
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        return next((c for c in codes if c > 0), 1)
    return 0


def _train_request(args, *, is_main: bool = True, world: int = 1):
    """The recipe and run folder of a train command, checked (UsageError) before anything runs;
    the checks of the folder's state are rank 0's (the others would see it begun)."""
    if args.resume:
        folder = RunFolder(args.resume)
        run_dir = folder.path
        if is_main and folder.is_busy():
            raise UsageError(f"--resume {run_dir}: another process is training this run; wait for it or stop it first")
        if not folder.has_checkpoint() and folder.stage_one().has_checkpoint():
            raise UsageError(f"--resume {run_dir}: stopped in stage one (its autoencoder); run the command that started it again (same --config, --set and --out) to continue")
        if not folder.has_checkpoint() and folder.text_stage().has_checkpoint():
            raise UsageError(f"--resume {run_dir}: stopped in the text stage (its text encoder); run the command that started it again (same --config, --set and --out) to continue")
        if not folder.has_checkpoint() or not folder.config_path.is_file():
            raise UsageError(f"--resume {run_dir}: not a resumable run (no {CHECKPOINT} or {CONFIG})")
        not_train = [item for item in args.set if not item.strip().startswith("train.")]
        if not_train:
            raise UsageError(f"--set {not_train[0]}: only train.* keys can change when resuming (the model and data are fixed)")
        cfg = load_config(str(folder.config_path), args.set, resolved=True)
        try:
            info = folder.read_info()
            folder.read_data()
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resume {run_dir}: cannot read {INFO} or {DATA} ({exc})") from None
        if is_main and info.get("status") == "complete" and cfg.train.steps <= info.get("step", 0):
            raise UsageError(f"--resume {run_dir}: already complete at step {info['step']}; raise train.steps with --set to continue")
    else:
        cfg = load_config(args.config, args.set)
        from .training.stages import stage_one_names

        if world > 1 and not args.out:
            raise UsageError("--out: name the run folder when torchrun starts the processes (each must find the same one)")
        run_dir = Path(args.out) if args.out else _free_run_dir(cfg.name)
        try:  # before anything is printed; train() checks the same
            if is_main:
                RunFolder(run_dir).check_new(stage_one_names(cfg))
        except RunFolderError as exc:
            raise UsageError(f"--out {exc} (--resume)") from None
    if args.nproc or world > 1:
        check_world_size(cfg, args.nproc or world)
    return cfg, run_dir


# The command-line name of each field that a sampling plan (runs/plan.py) or gradient guidance
# (runs/guided.py) names in its errors; the others ("run", "tuned_grid", "inpaint") are about
# the run folder itself, which the message then names.
FLAGS = {
    "sampler": "--sampler", "steps": "--steps", "n": "-n", "seed": "--seed", "grid": "--grid", "rho": "--rho",
    "eta": "--eta", "variance": "--variance", "label": "--label", "labels": "--label", "guidance": "--guidance",
    "classifier_scale": "--classifier-scale", "observe": "--observe", "region": "--region", "method": "--method",
    "mask": "--mask", "image": "--image", "particles": "--particles", "prompt": "--prompt", "batch": "--batch",
}  # fmt: skip


@contextmanager
def _flag_errors(run):
    """A PlanError raised inside, as a usage error naming the flag (and the run folder where the
    message is about the run)."""
    from .runs import PlanError

    try:
        yield
    except PlanError as exc:
        flag = FLAGS.get(exc.field)
        message = f"{run.path} {exc.message}" if exc.of_run else exc.message
        raise UsageError(f"{flag}: {message}" if flag else message) from None


def _plan(args, run):
    """The plan of sample's and evaluate's options (runs/plan.py; the run's [sample] defaults)."""
    from .runs import plan_sampling

    return plan_sampling(
        run, sampler=args.sampler, steps=args.steps, grid=args.grid, spacing=args.spacing, rho=args.rho, eta=args.eta,
        variance=args.variance, n=args.n, seed=args.seed, label=args.label, guidance=args.guidance,
        conditioned=bool(getattr(args, "observe", None) or getattr(args, "region", None)),
    )  # fmt: skip


def _batch(args, run) -> int | None:
    """--batch, or its default: all at once for points, IMAGE_SAMPLE_BATCH images at a time."""
    from .choices import IMAGE_SAMPLE_BATCH

    if args.batch is not None:
        return args.batch
    return IMAGE_SAMPLE_BATCH if run.is_image else None


def _load_for_use(path: str):
    problem = RunFolder(path).problem()  # answered before torch is imported
    if problem is not None:
        raise UsageError(problem)
    from .runs import load_run

    run = load_run(path)
    if run.info.get("status") != "complete":
        print(f"note: {path} is {run.info.get('status')} at step {run.info.get('step')}; using its last checkpoint", file=sys.stderr)
    return run


def _load_among_processes(path: str):
    """The run that ``sample`` or ``evaluate`` draws from, and, under torchrun, this process's
    place among the processes that share its draws (None in one process)."""
    rank, world = _torchrun_place()
    processes = None
    if world > 1:  # before the run is loaded: each process's GPU is its local rank's
        from .training.parallel import Processes

        processes = Processes.start()
    return (_load_for_use(path) if rank == 0 else _load_quietly(path)), processes


def cmd_sample(args) -> int:
    import numpy as np

    out = Path(args.out)
    if out.suffix.lower() not in SAMPLE_SUFFIXES:
        raise UsageError(f"--out {out}: unknown extension {out.suffix!r}; expected one of {', '.join(SAMPLE_SUFFIXES)}")
    rank, world = _torchrun_place()
    if world > 1 and args.prompt is not None:
        raise UsageError("--prompt: draws prompts in one process; leave torchrun out")
    run, processes = _load_among_processes(args.run)
    if run.is_image and out.suffix.lower() == ".csv":
        raise UsageError(f"--out {out}: images are written as .npy (N x C x H x W, pixels in [-1, 1]) or .png (a grid)")
    if args.prompt is not None:
        if args.batch is not None:
            raise UsageError("--batch: applies to draws of -n samples, not to --prompt")
        return _sample_prompts(args, run, out)
    with _flag_errors(run):
        if args.method is None and _smc_by_default(args):
            args.method = "smc"
        _check_smc_options(args.method, args.particles, args.sampler)
        if args.method == "smc":
            from .runs.guided_smc import default_steps

            args.sampler = "ddpm"  # the transition whose densities weight the particles
            if args.steps is None and args.grid is None:
                args.steps = default_steps(run)
        plan = _plan(args, run)
        batch = _batch(args, run)
        if plan.n < world:
            raise UsageError(f"-n: {plan.n} samples cannot be shared by {world} processes; draw at least one a process")
        share = (plan.n * rank // world, plan.n * (rank + 1) // world)  # this process's samples
        with _step_progress(not args.no_progress and rank == 0, "sample", run, plan, batch) as on_step:
            drawn, guidance_cost, request = _draw(args, run, plan, on_step, batch, share)
    if processes is not None:
        from .runs.shared_draws import gather_drawn

        drawn = gather_drawn(drawn)
        processes.close()
        if drawn is None:  # rank 0 writes the one file
            return 0
    from .runs import describe_draw
    from .runs.guided import describe_inside, inside, request_region
    from .runs.plan import drawn_classes

    x, labels = drawn.x, drawn_classes(plan, request)
    what = describe_draw(run, plan, request)
    region = request_region(run, request) if request is not None else None
    if out.suffix.lower() == ".npy":
        files.write_array(out, x.astype(np.float32))
    elif out.suffix.lower() == ".csv":
        files.write_with(out, lambda tmp: _write_csv(tmp, x, labels, run.class_names))
    else:
        from . import viz

        names = run.class_names or None
        title = f"{len(x)} samples: {what}".replace("; ", "\n")  # a line per part
        if run.is_image:
            viz.plot_image_grid(x, out, labels=labels, class_names=names, title=title)
        else:
            viz.plot_samples(
                run.data, x, out, title=title, labels=labels, data_labels=run.labels, class_names=names,
                region=None if region is None else (lambda points: inside(region, points)),
                region_label=None if region is None else f"region {region.text}",
                observed=request.observe if request is not None else None,
                conditional=_observe_reference(run, plan, request),
            )  # fmt: skip
    line = f"wrote {len(x)} samples to {out} ({what}; {drawn.evaluations} model evaluations{guidance_cost})"
    inside_line = describe_inside(run, region, x) if region is not None else None
    reproducible = _reproducible(run, world)
    if args.json:
        from .runs.guided_smc import report

        smc = {} if drawn.particles is None else {"smc": report(drawn.particles, drawn.evaluations)}
        print(json.dumps({"run": str(run.path), "out": str(out), "what": what, "n": len(x), "evaluations": drawn.evaluations, **smc, "reproducible": reproducible}))
    else:
        print(line)
        if inside_line is not None:
            print(inside_line)
        print(f"reproducible: {reproducible}")
    _print_particles(drawn, ess=not args.json)
    return 0


def _smc_by_default(args) -> bool:
    """--observe alone is drawn by twisted SMC, the most accurate per evaluation on the trained
    spiral (BENCHMARKS.md, "Twisted SMC against the true conditional"); a --guide-scale, a
    --region, classifier guidance or a sampler other than ddpm keep DPS, which they belong to."""
    return bool(args.observe) and args.region is None and args.classifier_scale is None and args.guide_scale is None and args.sampler in (None, "ddpm")


def _check_smc_options(method: str | None, particles: int | None, sampler: str | None) -> None:
    """--particles only with --method smc, and smc only on DDPM's transition."""
    if particles is not None and method != "smc":
        raise UsageError("--particles: applies with --method smc only")
    if method == "smc" and sampler not in (None, "ddpm"):
        raise UsageError(f"--sampler {sampler}: --method smc weights particles by the densities of ancestral DDPM steps; leave --sampler out or name ddpm")


def _print_particles(drawn, ess: bool = True) -> None:
    """An SMC draw's ESS line (with ``ess``; --json has it in its object) and its collapse
    warning, one line on stderr."""
    if drawn.particles is None:
        return
    from .runs.guided_smc import collapse_warning, ess_line

    if ess:
        print(ess_line(drawn.particles, drawn.evaluations))
    warning = collapse_warning(drawn.particles)
    if warning is not None:
        print(warning, file=sys.stderr)


def _sample_prompts(args, run, out: Path) -> int:
    """sample --prompt: one row of -n images per prompt (runs/prompts.py)."""
    from .runs.prompts import check_text_run, describe_prompts, sample_prompts

    for flag, given in (("--label", args.label), ("--classifier-scale", args.classifier_scale), ("--observe", args.observe), ("--region", args.region)):
        if given:
            raise UsageError(f"{flag}: cannot be combined with --prompt (the prompt is the condition)")
    with _flag_errors(run):
        check_text_run(run)
        plan = _plan(args, run)
        drawn = sample_prompts(run, plan, args.prompt)
    for prompt, words in drawn.unknown.items():
        print(f"warning: --prompt {prompt!r}: the tokenizer never saw {', '.join(map(repr, words))}; read as the unknown token", file=sys.stderr)
    what = describe_prompts(plan, drawn.prompts)
    if out.suffix.lower() == ".npy":
        files.write_array(out, drawn.x.astype("float32"))
    else:
        from . import viz

        names = [p if p.strip() else "(empty prompt)" for p in drawn.prompts]
        viz.plot_image_grid(drawn.x, out, labels=drawn.rows, class_names=names, title=f"{plan.n} samples per prompt\n{plan.describe()}, guidance {plan.guidance:g}")
    print(f"wrote {len(drawn.x)} samples to {out} ({what}; {drawn.evaluations} model evaluations)")
    print(f"reproducible: {_reproducible(run)}")
    return 0


def _load_quietly(path: str):
    from .runs import load_run

    return load_run(path)


def _draw(args, run, plan, on_step=None, batch: int | None = None, share: tuple[int, int] | None = None):
    """``plan`` drawn ``batch`` samples at a time, with --classifier-scale / --observe / --region
    through runs.guided; returns the draw, the cost of the guidance as text (empty without
    guidance) and the guidance request (None without guidance).  ``on_step`` gets each sampler
    step's record."""
    from .gradient_guidance import GuidanceCounts
    from .runs import sample_range
    from .runs.guided import GuidanceRequest, draw_guided, parse_observations

    request = GuidanceRequest(
        classifier_scale=args.classifier_scale,
        observe=parse_observations(args.observe) if args.observe else {},
        region=args.region,
        method=args.method or "dps",
        scale=args.guide_scale,
        particles=args.particles,
    )
    if not request.active:
        for flag, value in (("--method", args.method), ("--guide-scale", args.guide_scale)):
            if value is not None:
                raise UsageError(f"{flag}: applies with --observe or --region only")
        return sample_range(run, plan, *(share or (0, plan.n)), on_step=on_step, batch=batch), "", None
    if args.classifier_scale is not None and args.guidance is not None:
        raise UsageError("--guidance and --classifier-scale: give one (classifier guidance steers the run's unconditional model)")
    if args.method is not None and not args.observe and not (args.method == "smc" and (args.region is not None or args.classifier_scale is not None)):
        raise UsageError("--method: applies with --observe (and smc with --region or --classifier-scale) only")
    if args.method == "smc" and args.guide_scale is not None:
        raise UsageError("--guide-scale: --method smc has no scale (its twist tightens to the exact condition by itself)")
    counts = GuidanceCounts()
    start, stop = share or (0, plan.n)
    drawn = draw_guided(run, plan, request, counts, on_step=on_step, batch=batch, start=start, stop=stop)
    return drawn, f"; guidance: {counts.summary()}", request


def _write_csv(path, x: np.ndarray, labels: np.ndarray | None, class_names: list[str]) -> None:
    """Points as x1,x2,... columns; a conditional run's samples get a label column of class
    names, so the file can be trained on again (data.labels reads a column headed label)."""
    header = [f"x{i + 1}" for i in range(x.shape[1])]  # x1, x2, ...: as --observe, regions and figure axes name them
    with open(path, "w") as fh:
        fh.write(",".join(header + (["label"] if labels is not None else [])) + "\n")
        for i, row in enumerate(x):
            cells = [f"{v:.6g}" for v in row] + ([class_names[labels[i]]] if labels is not None else [])
            fh.write(",".join(cells) + "\n")


@contextmanager
def _progress_bar(enabled: bool, desc: str, delay: float = 0.0):
    """A progress(done, total, now) callback drawn as a bar on stderr (None when not ``enabled``);
    as train's, redrawn at most every 10 s where stderr is not a terminal (a log file); with a
    ``delay``, drawn only once that many seconds have passed."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bars = []  # made at the first report, which knows the total

    def progress(done: int, total: int, now: str) -> None:
        if not bars:
            bars.append(tqdm(
                total=total, desc=desc, postfix=now, dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 10.0, delay=delay,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
            ))  # fmt: skip
        bar = bars[0]
        bar.total = total
        bar.set_postfix_str(now, refresh=False)
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


# A point run's draw takes well under a second unless it is guided or long: its bar shows only
# once the draw has taken this long, so a quick draw writes nothing to stderr.
POINT_DRAW_QUIET_SECONDS = 3.0


@contextmanager
def _step_progress(enabled: bool, desc: str, run, plan, batch: int | None = None):
    """An on_step for one draw of ``plan``, ``batch`` samples at a time, that counts the sampler
    steps of every batch on ``_progress_bar`` (None when not ``enabled``): an image draw shows
    from its first step, a point draw once it is slow.  Nothing shows before the first step, so a
    request refused before it is one line."""
    from .runs.evaluation import Units
    from .runs.sampling import batch_count

    delay = 0.0 if run.is_image else POINT_DRAW_QUIET_SECONDS
    with _progress_bar(enabled, desc, delay) as progress:
        if progress is None:
            yield None
            return
        what = f"sampling {plan.n} {'images' if run.is_image else 'points'}"
        yield Units(progress, plan.steps * batch_count(plan.n, batch)).sampler_steps(what)


def _measured(processes, run, work):
    """``work()``'s result; under torchrun, rank 0 computes it with its draws shared among the
    processes (runs/shared_draws.py), and the others draw their shares and get None."""
    if processes is None:
        return work()
    from .runs.shared_draws import serve_draws, shared_draws

    if processes.is_main:
        with shared_draws(run):
            return work()
    serve_draws(run)
    return None


def cmd_evaluate(args) -> int:
    from .runs import evaluate_run

    run, processes = _load_among_processes(args.run)
    if args.ema_length:
        return _evaluate_ema_lengths(args, run, processes)
    show = not args.no_progress and (processes is None or processes.is_main)
    with _flag_errors(run):
        if run.is_autoencoder:  # it samples nothing: its reconstructions are measured
            _refuse_sampling_options(args, f"{run.path} is an autoencoder: evaluate measures its reconstructions and samples nothing")
            if args.batch is not None:
                raise UsageError(f"--batch: {run.path} is an autoencoder: evaluate measures its reconstructions and samples nothing")
            with _progress_bar(show, "evaluate") as progress:
                measured = _measured(processes, run, lambda: evaluate_run(run, repeats=args.repeats, seed=args.seed, n=args.n, label=args.label, progress=progress))
            what, words = {}, "reconstructions of its held-out images"
        else:
            plan = _plan(args, run)
            with _progress_bar(show, "evaluate") as progress:
                measured = _measured(processes, run, lambda: evaluate_run(run, plan, repeats=args.repeats, progress=progress, batch=_batch(args, run)))
            grid = plan.grid if plan.named else plan.times.tolist()
            what = {"sampler": plan.sampler, "steps": plan.steps, "grid": grid, "tuned_grid": plan.tuned, "evaluations": plan.evaluations}
            words = f"{plan.describe()}, {plan.evaluations} model evaluations"
    if processes is not None:
        processes.close()
    if measured is None:  # rank 0 reports
        return 0
    metrics, reproducible = measured[0], _reproducible(run, processes.world_size if processes else 1)
    if args.json:
        print(json.dumps({"run": str(run.path), **what, **metrics.to_dict(), "reproducible": reproducible}))
    else:
        summary = metrics.summary()
        sep = "\n" if "\n" in summary else " "  # a conditional run's summary has a line per class
        print(f"{run.path} ({words}):{sep}{summary}")
        print(f"reproducible: {reproducible}")
    return 0


def _reproducible(run, world: int = 1) -> str:
    """Whether the draw gives the same bits when run again (reproducible.py), said by sample and evaluate."""
    from .reproducible import draw_reproducibility

    return draw_reproducibility(run.device, world)


def _evaluate_ema_lengths(args, run, processes=None) -> int:
    """``evaluate --ema-length L ...``: the run's metrics with the EMA of each length, reconstructed
    in memory from its snapshots (the run's weights file is left as it is)."""
    from .runs import evaluate_run
    from .runs.posthoc_ema import reconstruct

    if run.is_autoencoder:
        raise UsageError(f"--ema-length: {run.path} is an autoencoder; post-hoc EMA is a denoiser's")
    states = [reconstruct(run.folder, length) for length in args.ema_length]  # every length checked before the first is measured
    results = []
    with _flag_errors(run):
        plan = _plan(args, run)
        for result in states:
            run.model.load_state_dict({k: v.to(run.device) for k, v in result.state.items()})
            with _progress_bar(not args.no_progress and (processes is None or processes.is_main), f"evaluate, EMA length {result.sigma_rel:g}") as progress:
                measured = _measured(processes, run, lambda: evaluate_run(run, plan, repeats=args.repeats, progress=progress, batch=_batch(args, run)))
            results.append((result, measured and measured[0]))
    if processes is not None:
        processes.close()
        if not processes.is_main:
            return 0
    reproducible = _reproducible(run, processes.world_size if processes else 1)
    if args.json:
        rows = [{"ema_length": r.sigma_rel, "step": r.step, "profile_error": r.relative_error, **m.to_dict()} for r, m in results]
        print(json.dumps({"run": str(run.path), "sampler": plan.sampler, "evaluations": plan.evaluations, "ema": rows, "reproducible": reproducible}))
    else:
        print(f"{run.path} ({plan.describe()}, {plan.evaluations} model evaluations), post-hoc EMA at step {states[0].step}:")
        for r, m in results:
            print(f"  length {r.sigma_rel:g}: {' '.join(m.summary().split())}")
        print(f"reproducible: {reproducible}")
    return 0


def _refuse_sampling_options(args, why: str) -> None:
    """A sampling option given where nothing is sampled is refused, not ignored."""
    for name, flag in (("sampler", "--sampler"), ("steps", "--steps"), ("grid", "--grid"), ("spacing", "--spacing"), ("rho", "--rho"),
                       ("eta", "--eta"), ("variance", "--variance"), ("guidance", "--guidance")):  # fmt: skip
        if getattr(args, name, None) is not None:
            raise UsageError(f"{flag}: {why}")


def cmd_likelihood(args) -> int:
    from .runs import resolve_label
    from .runs.likelihood import DEFAULT_TOLERANCE, check_has_density, likelihood_points, measure_likelihood

    if args.solver and args.steps is None:
        raise UsageError("--solver: applies with --steps (the adaptive solver takes --rtol)")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UsageError(f"--plot {args.plot}: expected a .png file")
    run = _load_for_use(args.run)
    check_has_density(run)
    _likelihood_threads(run)
    if args.plot and (run.is_image or run.dim not in (1, 2)):
        raise UsageError(f"--plot: the likelihood figure is for 1-D and 2-D point runs; {run.path} has shape {run.sample_shape}")
    with _flag_errors(run):
        label = None if args.label is None else resolve_label(run, args.label)
    points = likelihood_points(run, data=args.data, held_out=args.held_out, n=args.n, seed=args.seed, label=label)
    divergence = "exact" if args.exact else ("hutchinson" if args.probes else "auto")
    solver = (args.solver or "rk4") if args.steps else "rk45"
    tolerance = args.rtol or DEFAULT_TOLERANCE
    result = measure_likelihood(
        run, points, label=label, divergence=divergence, probes=args.probes or 1, solver=solver, rtol=tolerance,
        atol=tolerance, steps=args.steps, seed=args.seed, bound=args.bound,
    )  # fmt: skip
    figure = None
    if args.plot:
        from .runs.likelihood_figure import render_likelihood_figure

        figure, _ = render_likelihood_figure(run, args.plot, label=label, rtol=tolerance)
    if args.json:
        print(json.dumps({"run": str(run.path), **result.to_dict(), **({"figure": str(figure)} if figure else {})}))
    else:
        label_words = "" if label is None else f", given class {run.class_names[label]}"
        print(f"{run.path} ({result.what}{label_words}):\n{result.summary()}")
        if figure:
            print(f"wrote {figure}")
    return 0


def _likelihood_threads(run) -> None:
    """Torch threads for the likelihood's solves as training sets them (training.compute.auto_threads):
    one for a point network, whose small kernels two threads share badly (2000 points of the
    spiral-flow run: 15 s with one thread, 47 s with two while other programs kept the cores busy)."""
    import torch

    from .training.compute import auto_threads

    threads = run.config.train.threads or auto_threads(run.config)
    if threads and run.device.type == "cpu":
        torch.set_num_threads(threads)


def cmd_train_classifier(args) -> int:
    from .classifiers import ClassifierError, ClassifierSettings
    from .training import TrainingInterrupted, check_classifiable, train_classifier

    folder = RunFolder(args.run)
    run_dir = folder.path
    if not folder.has_description():
        raise UsageError(f"{run_dir}: not a denoiselab run folder (no {INFO} or {CONFIG})")
    given = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr), ("hidden", args.hidden), ("seed", args.seed)) if v is not None}
    if "lr" in given and not given["lr"] > 0:
        raise UsageError(f"--lr: must be > 0, got {given['lr']:g}")
    settings = ClassifierSettings(**given) if given or not args.resume else None
    try:
        check_classifiable(folder)  # before anything is printed, trained or written
        print(f"training the classifier of {run_dir}")
        train_classifier(run_dir, settings, resume=args.resume, threads=args.threads or 0, progress=not args.no_progress)
    except ClassifierError as exc:
        raise UsageError(str(exc)) from None
    except TrainingInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 128 + exc.signum  # as train: 130 after Ctrl-C, 143 after SIGTERM
    print(f"classifier: {folder.classifier_weights}")
    return 0


def cmd_inpaint(args) -> int:
    from .gradient_guidance import GuidanceCounts
    from .runs import describe_draw, plan_sampling
    from .runs.guided import InpaintRequest, check_inpaintable, inpaint_draw, parse_mask
    from .viz.guidance import plot_inpainting

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: expected a .png file")
    run = _load_for_use(args.run)
    if not run.is_image:
        raise UsageError(f"{run.path}: inpainting is for image runs; for points use: denoiselab sample {run.path} --observe x1=VALUE")
    counts = GuidanceCounts()
    with _flag_errors(run):
        _check_smc_options(args.method, args.particles, args.sampler)
        if args.method == "smc" and args.scale is not None:
            raise UsageError("--scale: --method smc has no scale (its twist tightens to the exact condition by itself)")
        sampler, steps = args.sampler, args.steps
        if args.method == "smc":
            from .runs.guided_smc import default_steps

            sampler, steps = "ddpm", default_steps(run) if steps is None else steps
        # The run's named grid: a tuned grid was tuned without the known pixels' guidance.
        plan = plan_sampling(run, sampler=sampler, steps=steps, seed=args.seed, n=args.n, tuned=False, conditioned=True)
        check_inpaintable(run)  # before the image is read: a latent run's channels are its latents'
        channels, height, width = run.sample_shape
        image = _read_image(Path(args.image), channels, height, width)
        mask = parse_mask(args.mask, height, width)
        with _step_progress(not args.no_progress, "inpaint", run, plan) as on_step:
            drawn = inpaint_draw(run, image, mask, args.method, args.scale, counts, plan, args.particles, on_step)
    completions = drawn.x
    what = describe_draw(run, plan, InpaintRequest(Path(args.image).name, args.method, args.scale, args.particles))
    plot_inpainting(image, mask.numpy(), completions, out, title=f"{what}; mask {args.mask}".replace("; ", "\n"))
    print(f"wrote {len(completions)} completions to {out} ({what}; mask {args.mask}; guidance: {counts.summary()})")
    _print_particles(drawn)
    return 0


def _read_image(path: Path, channels: int, height: int, width: int) -> np.ndarray:
    """An image file as (C, H, W) pixels in [-1, 1] at the run's size and channels."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (width, height):
                print(f"note: {path} is {im.size[0]} x {im.size[1]}; resized to the run's {width} x {height}", file=sys.stderr)
                im = im.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"--image {path}: cannot read an image ({exc})") from None
    if channels == 1:
        return pixels[None]
    if channels != 3:
        raise UsageError(f"--image {path}: the run has {channels} channels; images are read as 1 (grey) or 3 (RGB)")
    return pixels.transpose(2, 0, 1)


def cmd_tune_steps(args) -> int:
    import torch

    from .runs import check_samples, class_labels, guided_model_fn
    from .samplers import GRIDS as NAMED
    from .samplers import Denoiser, parse_grid
    from .training import auto_threads
    from .tuning import START_GRIDS, STOP_CALLS, STOP_CONVERGED, STOP_SECONDS, TuningError, steps_for, tune_grid

    run = _load_for_use(args.run)
    with _flag_errors(run):
        check_samples(run)
    if run.device.type == "cpu":  # the thread count training uses: a busy machine does not stall the search
        torch.set_num_threads(auto_threads(run.config))
    sampler = args.sampler or run.config.sample.sampler
    if sampler in JUMP_SAMPLER_NAMES:
        flag = f"--sampler {sampler}" if args.sampler else f"the run's sampler {sampler}"
        raise UsageError(f"{flag}: tune-steps tunes the time grid of an ODE or chain sampler; give --sampler (e.g. euler), a jump sampler has its own steps")
    try:
        steps_for(sampler, args.nfe)
    except TuningError as exc:
        raise UsageError(f"--nfe {args.nfe}: {exc}") from None
    start = args.start
    if start is not None and start not in START_GRIDS:
        if start in NAMED:
            raise UsageError(f"--start {start}: this grid does not start at t = 1; expected one of {', '.join(START_GRIDS)} or a list of times")
        try:
            start = parse_grid(start)
        except ValueError as exc:
            raise UsageError(f"--start {start[:80]}: {exc}") from None
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise UsageError(f"--max-seconds: must be > 0, got {args.max_seconds:g}")
    labels = class_labels(run, args.n)
    y = None if labels is None else torch.as_tensor(labels, device=run.device)
    denoise = Denoiser(guided_model_fn(run), run.schedule, run.config.model.prediction, y)
    try:
        run.folder.read_tuned_grids()  # a corrupt file is answered before the search, not after it
        result = tune_grid(
            denoise, sampler, args.nfe, shape=run.sample_shape, n=args.n, seed=args.seed, start=start,
            max_calls=args.max_calls, max_seconds=args.max_seconds, device=run.device, dtype=torch.float32,
        )
    except (TuningError, RunError) as exc:
        raise UsageError(str(exc)) from None
    why = {STOP_CALLS: "the budget of --max-calls", STOP_CONVERGED: "converged", STOP_SECONDS: "the --max-seconds cap"}[result.stopped]
    print(f"{result.objective_calls} search calls ({why}) in {result.seconds - result.reference_seconds:.1f} s, after {result.reference_seconds:g} s of reference solves")
    if not result.improved:
        # Exit status 0: the search ran; its answer is that the start grid stays the best.
        print(
            f"no tuned grid saved: {result.notes[0]}; {sampler} at {result.evaluations} evaluations keeps the "
            f"{result.start} grid (mean distance {result.start_error:.4g} on held-out noise); nothing written to {run.folder.tuned_grids_path}"
        )
        return 0
    try:
        path = run.folder.save_tuned_grid(result)
    except RunError as exc:
        raise UsageError(str(exc)) from None
    times = ",".join(f"{t:.4g}" for t in result.grid)
    print(
        f"{sampler} at {result.evaluations} model evaluations: mean distance to {result.reference} on held-out noise "
        f"{result.error:.4g} (start, {result.start} grid: {result.start_error:.4g}; {result.start_error / max(result.error, 1e-30):.2f}x)\n"
        f"grid {times}\nwritten to {path}; sample and evaluate use it for {sampler} at {result.evaluations} evaluations"
    )
    return 0


def cmd_ema(args) -> int:
    from .runs.posthoc_ema import reconstruct_into_run

    if args.out is not None and not args.out.endswith(".safetensors"):
        raise UsageError(f"--out {args.out}: expected a .safetensors file")
    result = reconstruct_into_run(args.run, args.length, args.out)
    where = args.out or f"{RunFolder(args.run).weights} (the run's sampling weights: sample and evaluate use them)"
    print(
        f"wrote {where}: the EMA of length {result.sigma_rel:g} at step {result.step}, from {len(result.coefficients)} stored EMAs "
        f"(profile error {result.relative_error:.1%})"
    )
    return 0


def cmd_plot(args) -> int:
    from .runs import render_figures

    run = _load_for_use(args.run)
    out = Path(args.out) if args.out else run.path
    print(f"drawing the figures of {run.path} into {out} ...", file=sys.stderr)  # listed below once all are drawn
    for path in render_figures(run, out):
        print(f"wrote {path}")
    return 0


def cmd_paths(args) -> int:
    from .runs import render_path_comparison

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: expected a .png file")
    runs = [_load_for_use(path) for path in args.runs]
    for run in runs:
        if run.sample_shape != (2,):
            raise UsageError(f"{run.path}: paths are drawn for 2-D point runs only (this one has shape {run.sample_shape})")
        if args.steps is not None and args.steps > run.schedule.T:
            raise UsageError(f"--steps: must be at most {run.path}'s T = {run.schedule.T}, got {args.steps}")
    options = {k: v for k, v in (("sampler", args.sampler), ("steps", args.steps)) if v is not None}
    render_path_comparison(runs, out, n=args.n, seed=args.seed, **options)
    print(f"wrote {out}")
    return 0


def cmd_schedules(args) -> int:
    from . import viz
    from .schedules import make_schedule

    for flag, value in (("--beta-start", args.beta_start), ("--beta-end", args.beta_end)):
        if not 0.0 < value < 1.0:  # make_schedule would silently clamp a beta_end >= 1
            raise UsageError(f"{flag}: must lie in (0, 1), got {value:g}")
    if args.beta_start > args.beta_end:
        raise UsageError(f"--beta-start: must be <= --beta-end ({args.beta_end:g}), got {args.beta_start:g}")
    try:
        schedules = [make_schedule(k, args.T, args.beta_start, args.beta_end, not args.no_scale) for k in SCHEDULE_KINDS]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: expected a .png file")
    viz.plot_schedules_compare(schedules, out)
    for s in schedules:
        print(f"{s.name:>9}: alpha_bar_T = {float(s.alpha_bars[-1]):.2e}, SNR_T = {s.terminal_snr_db():6.1f} dB")
    print(f"wrote {out}")
    return 0


# The commands whose first argument is a trained run folder.
RUN_COMMANDS = ("sample", "evaluate", "likelihood", "plot", "tune-steps", "inpaint", "ema")

DISTILL_METHODS = ("reflow", "consistency", "progressive")  # training/distill.py's METHODS; MeanFlow trains from scratch (recipe spiral-meanflow)


def cmd_distill(args) -> int:
    if not args.teacher:
        raise UsageError(f"TEACHER_RUN: --method {args.method} learns from a trained run; give its folder")
    problem = RunFolder(args.teacher).problem()  # answered before torch is imported
    if problem is not None:
        raise UsageError(f"TEACHER_RUN {problem}")
    if RunFolder(args.out).holds_anything():
        raise UsageError(f"--out {args.out}: folder exists and is not empty; choose another")
    from .training import TrainingInterrupted
    from .training.distill import distill

    try:
        out = distill(args.teacher, args.out, method=args.method, steps=args.steps, pairs=args.pairs, rounds=args.rounds,
                      init=args.init, progress=not args.no_progress)
    except TrainingInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 128 + exc.signum
    print(f"run folder: {out}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
    "likelihood": cmd_likelihood,
    "plot": cmd_plot,
    "ema": cmd_ema,
    "paths": cmd_paths,
    "schedules": cmd_schedules,
    "train-classifier": cmd_train_classifier,
    "inpaint": cmd_inpaint,
    "serve": run_serve,
    "tune-steps": cmd_tune_steps,
    "distill": cmd_distill,
}


# The commands that share their work among torchrun's processes (train: the batch; sample and evaluate: the samples).
PARALLEL_COMMANDS = ("train", "sample", "evaluate")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # bad options (status 2, one line already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    try:
        if _torchrun_place()[1] > 1 and args.command not in PARALLEL_COMMANDS:
            raise UsageError(f"{args.command} runs in one process; start it without torchrun (torchrun starts: {', '.join(PARALLEL_COMMANDS)})")
        if args.command in RUN_COMMANDS:  # a wrong run folder is answered before torch is imported
            problem = RunFolder(args.run).problem()
            if problem is not None:
                raise UsageError(problem)
        return COMMANDS[args.command](args)
    except (UsageError, *USAGE_ERRORS) as exc:
        print(f"denoiselab {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
