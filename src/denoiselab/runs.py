"""Run folders: load one, sample from it, evaluate it, draw its figures.

A run folder is self-describing: config.toml (the resolved recipe), run.json (data
normalisation, sizes, status), data.npy (the training points) and model.safetensors are
all that ``sample``, ``evaluate``, ``plot`` and the playground need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from . import files
from .config import Config, ConfigError, config_from_run_file
from .data import Normalization, make_source
from .metrics import PointMetrics, point_metrics
from .samplers import SAMPLERS, StepRecord
from .schedules import Schedule
from .training import WEIGHTS, model_from, pick_device, schedule_from


class RunError(ValueError):
    """A missing, incomplete or corrupt run folder; the message names the file."""


@dataclass
class Run:
    path: Path
    config: Config
    info: dict
    schedule: Schedule
    model: torch.nn.Module
    normalization: Normalization
    data: np.ndarray  # training points, data units
    device: torch.device

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    def model_fn(self):
        """The network as a model function (x_t, t, y=None) -> prediction."""
        model = self.model
        return lambda x, t, y=None: model(x, t, y)


def load_run(path: str | Path, device: str | None = None) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    for name in ("run.json", "config.toml", WEIGHTS, "data.npy"):
        if not (path / name).is_file():
            raise RunError(f"{path}: not a complete denoiselab run (missing {name}); train one with: denoiselab train --out {path}")
    try:
        info = json.loads((path / "run.json").read_text())
        norm = Normalization.from_dict(info["normalization"])
        dim = int(info["dim"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{path / 'run.json'}: corrupt run description ({exc})") from None
    try:
        cfg = config_from_run_file(path / "config.toml")
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    dev = pick_device(device or cfg.train.device)
    model = model_from(cfg, dim, int(info.get("num_classes", 0)))
    try:
        model.load_state_dict(load_file(str(path / WEIGHTS)))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise RunError(f"{path / WEIGHTS}: cannot load weights ({type(exc).__name__}: {exc})") from None
    try:
        data = np.load(path / "data.npy", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"{path / 'data.npy'}: cannot read ({exc})") from None
    return Run(path, cfg, info, schedule_from(cfg), model.to(dev).eval(), norm, data, dev)


def sample_points(
    run: Run,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    on_step=None,
    return_noise: bool = False,
    **options,
):
    """Draw ``n`` points from a run with any sampler; returns an (n, D) array in data units.

    Defaults come from the run's [sample] section.  ``options`` go to the sampler (eta,
    variance, spacing).  With ``return_noise`` the starting x_T (model units) is returned too.
    """
    sc = run.config.sample
    sampler = sampler or sc.sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    steps = sc.steps if steps is None else steps
    n = sc.n if n is None else n
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seed = sc.seed if seed is None else seed
    options.setdefault("spacing", sc.spacing)
    if sampler == "ddim":
        options.setdefault("eta", sc.eta)
    if sampler == "ddpm":
        options.setdefault("variance", sc.variance)
    if sc.clip_x0:
        # eps-prediction reads x0 = (x - sigma eps) / alpha, which near alpha = 0 (the first
        # steps, especially of a cosine schedule) multiplies small errors of eps by sigma / alpha
        # (> 10^4 at the cosine schedule's last step); clamping to the data's box removes those
        # far outliers and leaves every estimate inside the box unchanged.
        options.setdefault("clip_x0", run.info.get("x0_bound"))
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, run.dim, generator=gen).to(run.device)
    x0 = SAMPLERS[sampler](
        run.model_fn(),
        x_T,
        run.schedule,
        steps,
        prediction=run.config.model.prediction,
        generator=gen if run.device.type == "cpu" else None,
        on_step=on_step,
        **options,
    )
    out = run.normalization.decode(x0.float().cpu().numpy())
    return (out, x_T) if return_noise else out


def reference_draws(run: Run, n: int, count: int) -> list[np.ndarray]:
    """``count`` independent reference sets of size n, fresh from the data's generator."""
    cfg = run.config.data
    source = make_source(cfg.name, cfg.n, cfg.seed, base=run.path)
    if source.has_generator:
        return [source.reference(n, seed=1 + i) for i in range(count)]
    # A file has no fresh draws, only its held-out points: draws from that one pool overlap (all
    # equal once n >= the pool), which drives the floor to 0.  Split it into two disjoint halves
    # instead, so the floor (references[i] vs references[count // 2 + i]) compares distinct points.
    pool = source.reference(2 * n, seed=1)
    half = len(pool) // 2
    return [pool[:half] if i < count // 2 else pool[half : 2 * half] for i in range(count)]


def evaluate_run(run: Run, *, repeats: int = 4, seed: int | None = None, **sample_options) -> tuple[PointMetrics, np.ndarray]:
    """W2 and energy distance of the run's samples, averaged over ``repeats`` sample seeds
    (seed, seed + 1, ...), each against its own reference draw; returns the first sample set too."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seed = run.config.sample.seed if seed is None else seed
    samples = [sample_points(run, seed=seed + i, **sample_options) for i in range(repeats)]
    references = reference_draws(run, len(samples[0]), 2 * repeats)
    return point_metrics(samples, references), samples[0]


def records_to_frames(records: list[StepRecord], x_T: torch.Tensor, run: Run) -> list[tuple[float, np.ndarray]]:
    """Reverse-process snapshots [(t, points in data units)], from x_T to the final sample."""
    decode = run.normalization.decode
    T = run.schedule.T
    frames = [(records[0].k / T if records else 1.0, decode(x_T.float().cpu().numpy()))]
    frames += [(r.k_next / T, decode(r.x_next.float().cpu().numpy())) for r in records]
    return frames


def render_figures(run: Run, out_dir: Path | None = None, *, samples: np.ndarray | None = None) -> list[Path]:
    """Draw every figure of a run (samples, forward, trajectory GIF, progression, schedule, loss)."""
    from . import viz  # matplotlib is imported only when figures are drawn

    out_dir = Path(out_dir or run.path)
    records: list[StepRecord] = []
    sc = run.config.sample
    # The trajectory takes at least 60 steps of the run's sampler (as many as T allows) so the
    # GIF shows the process rather than a handful of jumps.
    steps = max(sc.steps, min(run.schedule.T, 60))
    _, x_T = sample_points(run, n=min(sc.n, 1000), steps=steps, on_step=records.append, return_noise=True)
    frames = records_to_frames(records, x_T, run)
    if samples is None:
        samples = sample_points(run)
    written = [
        viz.plot_samples(run.data, samples, out_dir / "samples.png", title=_sample_title(run)),
        # The forward process acts on the normalised data the model sees.
        viz.plot_forward(run.schedule, run.normalization.encode(run.data), out_dir / "forward.png", units="normalised units"),
        viz.save_trajectory_gif(frames, out_dir / "trajectory.gif", data=run.data),
        viz.plot_progression(frames, out_dir / "progression.png", data=run.data),
        viz.plot_schedule(run.schedule, out_dir / "schedule.png"),
    ]
    losses = _losses(run)
    if losses is not None and len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
    return written


def _sample_title(run: Run) -> str:
    sc = run.config.sample
    return f"{run.config.data.name}: {sc.sampler}, {sc.steps} steps, n = {sc.n}"


def _losses(run: Run) -> np.ndarray | None:
    from safetensors import safe_open

    path = run.path / "checkpoint.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as fh:
        return fh.get_tensor("losses").numpy()


def write_metrics(run: Run, metrics: PointMetrics, extra: dict | None = None) -> Path:
    sc = run.config.sample
    return files.write_json(
        run.path / "metrics.json",
        {"sampler": sc.sampler, "steps": sc.steps, "spacing": sc.spacing, "seed": sc.seed, **metrics.to_dict(), **(extra or {})},
    )
