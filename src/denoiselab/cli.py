"""The denoiselab command line: train, sample, evaluate, plot, schedules, serve.

Usage errors (bad recipe keys or values, bad files, bad options) print one line naming the
problem and exit with status 2; nothing is left behind that looks like a finished run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__, files
from .config import ConfigError, load_config, recipe_names
from .data import DataError
from .files import RunBusyError
from .runs import (
    RunError,
    SamplingError,
    class_labels,
    complete_run,
    evaluate_run,
    load_run,
    render_figures,
    render_path_comparison,
    sample_points,
)
from .samplers import GRIDS, SAMPLERS, SPACINGS, VARIANCES, parse_grid
from .schedules import SCHEDULE_KINDS, make_schedule
from .serve import HELP as SERVE_HELP
from .serve import add_serve_arguments, run_serve
from .training import (
    CheckpointError,
    RunFolderError,
    TrainingInterrupted,
    check_new_run_folder,
    write_run_info,
)

USAGE_ERRORS = (ConfigError, DataError, RunError, SamplingError, CheckpointError, RunBusyError, RunFolderError)
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


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=tuple(SAMPLERS), help="default: the run's [sample] sampler")
    p.add_argument("--steps", type=_positive_int, help="sampler steps (<= T; = model evaluations, heun: 2 x steps - 1)")
    p.add_argument("-n", type=_positive_int, help="number of points")
    p.add_argument("--eta", type=_nonneg_float, help="DDIM stochasticity (0 deterministic, 1 DDPM-like)")
    p.add_argument("--variance", choices=VARIANCES, help="DDPM reverse variance")
    p.add_argument("--spacing", choices=SPACINGS, help=argparse.SUPPRESS)  # the older name of --grid NAME
    p.add_argument(
        "--grid", metavar="NAME|TIMES|FILE",
        help=f"the times the sampler visits: a named grid ({', '.join(GRIDS)}), a list such as 1,0.6,0.3,0.1,0 "
        "(strictly decreasing, ending at 0; it sets the steps), or a file of such times",
    )  # fmt: skip
    p.add_argument("--rho", type=float, help="karras grid: its exponent (default: the run's sample.rho, 7)")
    p.add_argument("--seed", type=int, help="seed of x_T and the sampler's noise")
    p.add_argument("--label", metavar="K|NAME", help="conditional runs: the class to draw (index or name); default: every class in proportion")
    p.add_argument("--guidance", type=_nonneg_float, metavar="S", help="conditional runs: classifier-free guidance scale (1 = conditional, 0 = unconditional)")


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

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run", metavar="RUN_DIR")
    _add_sampling_options(p)
    p.add_argument("--out", required=True, help="output file: .npy (N x D array), .csv or .png")

    p = sub.add_parser("evaluate", help="sample a run and measure W2 and energy distance against the data")
    p.add_argument("run", metavar="RUN_DIR")
    _add_sampling_options(p)
    p.add_argument("--repeats", type=_positive_int, default=8, help="sample sets (seeds seed, seed + 1, ...) averaged per metric (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("plot", help="redraw every figure of a run")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--out", help="folder for the figures (default: the run folder)")

    p = sub.add_parser("paths", help="draw the sampling paths of 2-D point runs side by side, from the same noise")
    p.add_argument("runs", metavar="RUN_DIR", nargs="+", help="e.g. a diffusion, a flow and an OT-CFM run")
    p.add_argument("--sampler", choices=tuple(SAMPLERS), help="default: each run's [sample] sampler")
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


def cmd_train(args) -> int:
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "checkpoint.safetensors").is_file() and (run_dir / "autoencoder" / "checkpoint.safetensors").is_file():
            raise UsageError(f"--resume {run_dir}: stopped in stage one (its autoencoder); run the command that started it again (same --config, --set and --out) to continue")
        if not (run_dir / "checkpoint.safetensors").is_file() or not (run_dir / "config.toml").is_file():
            raise UsageError(f"--resume {run_dir}: not a resumable run (no checkpoint.safetensors or config.toml)")
        not_train = [item for item in args.set if not item.strip().startswith("train.")]
        if not_train:
            raise UsageError(f"--set {not_train[0]}: only train.* keys can change when resuming (the model and data are fixed)")
        cfg = load_config(str(run_dir / "config.toml"), args.set)
        try:
            info = json.loads((run_dir / "run.json").read_text())
            np.load(run_dir / "data.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resume {run_dir}: cannot read run.json or data.npy ({exc})") from None
        if info.get("status") == "complete" and cfg.train.steps <= info.get("step", 0):
            raise UsageError(f"--resume {run_dir}: already complete at step {info['step']}; raise train.steps with --set to continue")
    else:
        cfg = load_config(args.config, args.set)
        run_dir = Path(args.out) if args.out else _free_run_dir(cfg.name)
        try:  # before anything is printed; train() checks the same
            from .latent_training import stage_one_names

            check_new_run_folder(run_dir, stage_one_names(cfg))
        except RunFolderError as exc:
            raise UsageError(f"--out {exc} (--resume)") from None
    print(f"denoiselab {__version__}: training recipe {cfg.name!r} into {run_dir}")
    from .latent_training import train_stages  # a latent run may train its autoencoder first

    try:
        train_stages(cfg, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    except TrainingInterrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        info = json.loads((run_dir / "run.json").read_text())
        write_run_info(run_dir, {**info, "status": "failed"})
        print(f"denoiselab train: error: {exc}", file=sys.stderr)
        return 1
    complete_run(run_dir)
    print(f"run folder: {run_dir}")
    return 0


def _sampling_kwargs(args, run) -> dict:
    kw = {"sampler": args.sampler, "steps": args.steps, "n": args.n, "seed": args.seed}
    T = run.schedule.T
    if args.steps is not None and args.steps > T:
        raise UsageError(f"--steps: must be at most the run's T = {T}, got {args.steps}")
    sampler = args.sampler or run.config.sample.sampler
    if args.eta is not None:
        if sampler != "ddim":
            raise UsageError(f"--eta applies to the ddim sampler only (this call uses {sampler})")
        kw["eta"] = args.eta
    if args.variance is not None:
        if sampler != "ddpm":
            raise UsageError(f"--variance applies to the ddpm sampler only (this call uses {sampler})")
        kw["variance"] = args.variance
    if args.spacing is not None and args.grid is not None:
        raise UsageError("--spacing and --grid name the same thing; give one")
    grid = args.grid if args.grid is not None else args.spacing
    if grid is not None and grid in GRIDS:
        kw["spacing"] = grid
    elif grid is not None:
        try:
            kw["grid"] = parse_grid(grid)
        except ValueError as exc:
            raise UsageError(f"--grid {grid[:80]}: {exc}") from None
        if args.steps is not None and args.steps != len(kw["grid"]) - 1:
            raise UsageError(f"--steps {args.steps}: the grid given has {len(kw['grid']) - 1} steps; give one or the other")
        kw["steps"] = len(kw["grid"]) - 1
    if args.rho is not None:
        if not args.rho > 0:
            raise UsageError(f"--rho: must be > 0, got {args.rho:g}")
        if kw.get("spacing", run.config.sample.spacing) != "karras":
            raise UsageError("--rho applies to the karras grid only (add --grid karras)")
        kw["rho"] = args.rho
    kw["counter"] = []
    if args.label is not None:
        kw["label"] = args.label
    if args.guidance is not None:
        kw["guidance"] = args.guidance  # runs.guided_model_fn refuses it on an unconditional run
    return kw


def _load_for_use(path: str):
    run = load_run(path)
    if run.info.get("status") != "complete":
        print(f"note: {path} is {run.info.get('status')} at step {run.info.get('step')}; using its last checkpoint", file=sys.stderr)
    return run


def cmd_sample(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in SAMPLE_SUFFIXES:
        raise UsageError(f"--out {out}: unknown extension {out.suffix!r}; expected one of {', '.join(SAMPLE_SUFFIXES)}")
    run = _load_for_use(args.run)
    if run.is_image and out.suffix.lower() == ".csv":
        raise UsageError(f"--out {out}: images are written as .npy (N x C x H x W, pixels in [-1, 1]) or .png (a grid)")
    kw = _sampling_kwargs(args, run)
    x = sample_points(run, **kw)
    labels = class_labels(run, len(x), kw.get("label"))
    if out.suffix.lower() == ".npy":
        files.write_array(out, x.astype(np.float32))
    elif out.suffix.lower() == ".csv":
        files.write_with(out, lambda tmp: _write_csv(tmp, x, labels, run.class_names))
    else:
        from . import viz

        sampler = args.sampler or run.config.sample.sampler
        title = f"{sampler}, {kw['steps'] or run.config.sample.steps} steps"
        if sampler == "ddim":
            title += f", eta {kw.get('eta', run.config.sample.eta):g}"
        title += f", n = {len(x)}"
        if labels is not None:
            title += f", guidance {kw.get('guidance', run.config.sample.guidance):g}"
        names = run.class_names or None
        if run.is_image:
            viz.plot_image_grid(x, out, labels=labels, class_names=names, title=title)
        else:
            viz.plot_samples(run.data, x, out, title=title, labels=labels, data_labels=run.labels, class_names=names)
    what = "" if labels is None or kw.get("label") is None else f" of class {run.class_names[int(labels[0])]}"
    print(f"wrote {len(x)} samples{what} to {out} ({_sampling_line(run, kw)})")
    return 0


def _write_csv(path, x: np.ndarray, labels: np.ndarray | None, class_names: list[str]) -> None:
    """Points as x0,x1,... columns; a conditional run's samples get a label column of class
    names, so the file can be trained on again (data.labels reads a column headed label)."""
    header = [f"x{i}" for i in range(x.shape[1])]
    with open(path, "w") as fh:
        fh.write(",".join(header + (["label"] if labels is not None else [])) + "\n")
        for i, row in enumerate(x):
            cells = [f"{v:.6g}" for v in row] + ([class_names[labels[i]]] if labels is not None else [])
            fh.write(",".join(cells) + "\n")


def cmd_evaluate(args) -> int:
    run = _load_for_use(args.run)
    kw = _sampling_kwargs(args, run)
    metrics, _ = evaluate_run(run, repeats=args.repeats, **kw)
    sampler = kw["sampler"] or run.config.sample.sampler
    steps = kw["steps"] or run.config.sample.steps
    evaluations = kw["counter"][0] if kw["counter"] else None
    if args.json:
        grid = kw["grid"].tolist() if "grid" in kw else kw.get("spacing", run.config.sample.spacing)
        print(json.dumps({"run": str(run.path), "sampler": sampler, "steps": steps, "grid": grid, "evaluations": evaluations, **metrics.to_dict()}))
    else:
        summary = metrics.summary()
        sep = "\n" if "\n" in summary else " "  # a conditional run's summary has a line per class
        print(f"{run.path} ({_sampling_line(run, kw)}):{sep}{summary}")
    return 0


def _sampling_line(run, kw: dict) -> str:
    """sampler, steps, grid and the model evaluations the first draw really made."""
    sc = run.config.sample
    grid = "given grid" if "grid" in kw else f"{kw.get('spacing', sc.spacing)} grid"
    evaluations = f", {kw['counter'][0]} model evaluations" if kw.get("counter") else ""
    return f"{kw['sampler'] or sc.sampler}, {kw['steps'] or sc.steps} steps, {grid}{evaluations}"


def cmd_plot(args) -> int:
    run = _load_for_use(args.run)
    for path in render_figures(run, Path(args.out) if args.out else None):
        print(f"wrote {path}")
    return 0


def cmd_paths(args) -> int:
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


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
    "plot": cmd_plot,
    "paths": cmd_paths,
    "schedules": cmd_schedules,
    "serve": run_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # bad options (status 2, one line already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return COMMANDS[args.command](args)
    except (UsageError, *USAGE_ERRORS) as exc:
        print(f"denoiselab {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
