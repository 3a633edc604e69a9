"""Run folders: load one, sample from it, evaluate it, draw its figures.

A run folder is self-describing: config.toml (the resolved recipe), run.json (data
normalisation, sizes, classes, status), data.npy (the training points), labels.npy (their
classes, conditional runs only) and model.safetensors are all that ``sample``, ``evaluate``,
``plot`` and the playground need.

Conditional runs: every sampling function takes ``label`` (a class index or name; None samples
every class in proportion to the training set) and ``guidance`` (the classifier-free guidance
scale, guidance.classifier_free; the run's sample.guidance by default).
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
from .data.sources import proportional_counts
from .guidance import classifier_free
from .metrics import REFERENCE_DRAWS, ClassMetrics, PointMetrics, cached_floor, label_accuracy, point_metrics
from .samplers import SAMPLERS, StepRecord
from .schedules import Schedule
from .training import HELD_OUT, HELD_OUT_LABELS, LABELS, WEIGHTS, model_from, pick_device, schedule_from, write_run_info


class RunError(ValueError):
    """A missing, incomplete or corrupt run folder; the message names the file."""


class SamplingError(ValueError):
    """A request this run cannot serve (a label it does not have, guidance without labels)."""


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
    labels: np.ndarray | None = None  # class of each training point (conditional runs)

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(D,) for points, (C, H, W) for images."""
        return tuple(int(v) for v in self.info.get("shape", [self.dim]))

    @property
    def is_image(self) -> bool:
        return len(self.sample_shape) == 3

    @property
    def num_classes(self) -> int:
        return int(self.info.get("num_classes", 0))

    @property
    def class_names(self) -> list[str]:
        names = self.info.get("class_names") or []
        return [str(n) for n in names] if len(names) == self.num_classes else [str(i) for i in range(self.num_classes)]

    @property
    def class_weights(self) -> np.ndarray:
        """Share of each class in the training set: the mix drawn when no label is asked for."""
        return np.bincount(self.labels, minlength=self.num_classes) / len(self.labels)

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
            raise RunError(f"{path}: not a complete denoiselab run (missing {name}); train one with: denoiselab train --out NEW_FOLDER")
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
    labels = None
    if int(info.get("num_classes", 0)):
        try:
            labels = np.load(path / LABELS, allow_pickle=False).astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise RunError(f"{path / LABELS}: cannot read the class labels of a conditional run ({exc})") from None
        if labels.shape != (len(data),):
            raise RunError(f"{path / LABELS}: {labels.shape} labels for {len(data)} points")
    return Run(path, cfg, info, schedule_from(cfg), model.to(dev).eval(), norm, data, dev, labels)


def resolve_label(run: Run, label) -> int:
    """A class index from an index or a class name (a name wins over a number-like string)."""
    names, given = run.class_names, label
    if run.num_classes == 0:
        raise SamplingError(f"label: {run.path} is unconditional (trained without classes), so it takes no label")
    if isinstance(label, str):
        if label in names:
            return names.index(label)
        try:
            label = int(label)
        except ValueError:
            raise SamplingError(f"label: unknown class {label!r}; expected one of {', '.join(names)} or 0..{len(names) - 1}") from None
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and 0 <= label < run.num_classes:
        return int(label)
    raise SamplingError(f"label: {given!r} is out of range; this run has classes 0..{run.num_classes - 1} ({', '.join(names)})")


def class_labels(run: Run, n: int, label=None) -> np.ndarray | None:
    """The class of each of ``n`` samples: all ``label``, or every class in proportion to the
    training set when ``label`` is None (exact counts, largest remainder, in class order).
    None for an unconditional run."""
    if run.num_classes == 0:
        if label is not None:
            resolve_label(run, label)  # raises: no classes
        return None
    if label is None:
        return np.repeat(np.arange(run.num_classes), proportional_counts(run.class_weights, n))
    return np.full(n, resolve_label(run, label), dtype=np.int64)


def guided_model_fn(run: Run, guidance: float | None = None):
    """The run's model function, wrapped in classifier-free guidance on a conditional run."""
    if run.num_classes == 0:
        if guidance is not None:
            raise SamplingError(f"guidance: {run.path} is unconditional (trained without classes), so it has nothing to guide")
        return run.model_fn()
    scale = run.config.sample.guidance if guidance is None else guidance
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale >= 0):
        raise SamplingError(f"guidance: expected a number >= 0, got {scale!r}")
    return classifier_free(run.model_fn(), float(scale))


def sample_points(
    run: Run,
    *,
    sampler: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    seed: int | None = None,
    on_step=None,
    return_noise: bool = False,
    label=None,
    guidance: float | None = None,
    **options,
):
    """Draw ``n`` points from a run with any sampler; returns an (n, D) array in data units.

    Defaults come from the run's [sample] section.  ``options`` go to the sampler (eta,
    variance, spacing).  With ``return_noise`` the starting x_T (model units) is returned too.
    Conditional runs: ``label`` is a class (index or name), an array of n class indices, or
    None for every class in proportion (the order of ``class_labels(run, n)``).
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
    if isinstance(label, np.ndarray) and label.ndim == 1:
        if run.num_classes == 0 or len(label) != n or not ((label >= 0) & (label < run.num_classes)).all():
            raise SamplingError(f"label: expected {n} class indices in 0..{max(run.num_classes - 1, 0)}")
        labels = label.astype(np.int64)
    else:
        labels = class_labels(run, n, label)
    model_fn = guided_model_fn(run, guidance)
    y = None if labels is None else torch.as_tensor(labels, device=run.device)
    gen = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, *run.sample_shape, generator=gen).to(run.device)
    x0 = SAMPLERS[sampler](
        model_fn,
        x_T,
        run.schedule,
        steps,
        y=y,
        prediction=run.config.model.prediction,
        generator=gen if run.device.type == "cpu" else None,
        on_step=on_step,
        **options,
    )
    out = run.normalization.decode(x0.float().cpu().numpy())
    return (out, x_T) if return_noise else out


@dataclass(frozen=True)
class ImageRunMetrics:
    """An image run's metrics (image_metrics.image_metrics): accuracy of the cached classifier on
    class-conditional samples and the Frechet distance in its feature space, with its floor."""

    values: dict

    def to_dict(self) -> dict:
        return dict(self.values)

    def summary(self) -> str:
        v = self.values
        if v.get("frechet") is None:
            return f"n={v['n']}: {v.get('note', 'no metrics')}"
        acc = "" if v.get("accuracy") is None else f"class accuracy {v['accuracy']:.3f}  "
        guidance = "" if v.get("guidance") is None else f"guidance {v['guidance']:g}  "
        return (
            f"{guidance}{acc}Frechet {v['frechet']:.2f} (floor {v['frechet_floor']:.2f}, {v['frechet_ratio']:.2f}x)  "
            f"n={v['n']} samples vs {v['n_held_out']} held-out images"
        )


def image_classifier(run: Run):
    """The digit (or pattern) classifier of the run's training split, cached in the user's cache
    folder (files.cache_dir) and retrained when missing."""
    from .image_metrics import load_or_train_classifier

    images = torch.as_tensor(run.data)
    return load_or_train_classifier(images, torch.as_tensor(run.labels), run.num_classes)


def held_out_images(run: Run) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        held = np.load(run.path / HELD_OUT, allow_pickle=False)
        labels = np.load(run.path / HELD_OUT_LABELS, allow_pickle=False) if run.num_classes else None
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"{run.path}: cannot read the held-out images ({exc})") from None
    return held, labels


def evaluate_images(
    run: Run, *, seed: int, label=None, guidance: float | None = None, **sample_options
) -> tuple[ImageRunMetrics, np.ndarray]:
    """Class accuracy and Frechet distance of n samples (every class in proportion, or ``label``)."""
    from .image_metrics import image_metrics

    n = sample_options.pop("n", None)
    n = run.config.sample.n if n is None else n
    samples = sample_points(run, n=n, seed=seed, label=label, guidance=guidance, **sample_options)
    if not run.num_classes:
        note = "unlabelled images: no classifier to measure samples with"
        return ImageRunMetrics({"n": n, "frechet": None, "note": note}), samples
    labels = class_labels(run, n, label)
    held, held_labels = held_out_images(run)
    train = run.data
    if label is not None:
        c = resolve_label(run, label)
        held, train = held[held_labels == c], train[run.labels == c]
    values = image_metrics(image_classifier(run), torch.as_tensor(samples), torch.as_tensor(labels), torch.as_tensor(held), torch.as_tensor(train), seed=seed)
    scale = run.config.sample.guidance if guidance is None else guidance
    values = {"guidance": float(scale), **values}
    values["per_class_accuracy"] = {run.class_names[int(k)]: v for k, v in (values.get("per_class_accuracy") or {}).items()}
    return ImageRunMetrics(values), samples


def run_source(run: Run):
    cfg = run.config.data
    return make_source(cfg.name, cfg.n, cfg.seed, base=run.path, classes=cfg.classes, labels=cfg.labels)


def reference_draws(run: Run, n: int, count: int = REFERENCE_DRAWS, label: int | None = None, *, source=None) -> list[np.ndarray]:
    """Independent reference sets of size n: ``count`` fresh draws from the data's generator (of
    class ``label``, or of every class in proportion), or, for a data file, the two disjoint
    halves of its held-out points."""
    source = source or run_source(run)
    if source.has_generator:
        return [source.reference(n, seed=1 + i, label=label) for i in range(count)]
    # A file has no fresh draws, only its held-out points: draws from that one pool overlap (all
    # equal once n >= the pool), which drives the floor to 0.  Split it into two disjoint halves
    # instead, so the floor compares distinct points.
    pool = source.reference(2 * n, seed=1, label=label)
    half = len(pool) // 2
    if half < 1:
        raise RunError(f"{run.path}: too few held-out points{'' if label is None else f' of class {label}'} to measure against")
    return [pool[:half], pool[half : 2 * half]]


def evaluate_run(
    run: Run, *, repeats: int = 8, seed: int | None = None, label=None, guidance: float | None = None, **sample_options
) -> tuple[PointMetrics | ClassMetrics, np.ndarray]:
    """W2 and energy distance of ``repeats`` sample sets (seeds seed, seed + 1, ...) against
    REFERENCE_DRAWS fresh reference draws, beside the floor between those draws (see
    metrics.point_metrics); returns the first sample set too.

    A conditional run gets ClassMetrics: each class (or only ``label``) against its own
    reference draws, the proportional mixture against the mixture, and label accuracy."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    seed = run.config.sample.seed if seed is None else seed
    if run.is_image:
        return evaluate_images(run, seed=seed, label=label, guidance=guidance, **sample_options)
    if run.num_classes:
        return evaluate_classes(run, repeats=repeats, seed=seed, label=label, guidance=guidance, **sample_options)
    guided_model_fn(run, guidance)  # raises: guidance on an unconditional run
    if label is not None:
        resolve_label(run, label)  # raises: no classes
    samples = [sample_points(run, seed=seed + i, **sample_options) for i in range(repeats)]
    references = reference_draws(run, len(samples[0]))
    return point_metrics(samples, references, cached_floor(references)), samples[0]


# Fresh draws that fit the nearest-neighbour classifier of label accuracy come from their own
# seeds, far from the reference draws' 1..REFERENCE_DRAWS.
_CLASSIFIER_SEED = 10_000


def _classifier_set(run: Run, source, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of every class with their labels, independent of the references, to fit the
    nearest-neighbour classifier on: fresh draws, or the training points of a file."""
    if not source.has_generator:
        return run.data, run.labels
    xs = [source.reference(n, seed=_CLASSIFIER_SEED, label=c) for c in range(run.num_classes)]
    return np.concatenate(xs), np.repeat(np.arange(run.num_classes), [len(x) for x in xs])


def evaluate_classes(
    run: Run, *, repeats: int, seed: int, label=None, guidance: float | None = None, **sample_options
) -> tuple[ClassMetrics, np.ndarray]:
    source = run_source(run)
    n = run.config.sample.n if sample_options.get("n") is None else sample_options["n"]
    scale = run.config.sample.guidance if guidance is None else guidance
    fit_x, fit_y = _classifier_set(run, source, n)
    wanted = list(range(run.num_classes)) if label is None else [resolve_label(run, label)]
    per_class, accuracy, reference_accuracy = {}, {}, {}
    for c in wanted:
        samples = [sample_points(run, seed=seed + i, label=c, guidance=scale, **sample_options) for i in range(repeats)]
        refs = reference_draws(run, len(samples[0]), label=c, source=source)
        name = run.class_names[c]
        per_class[name] = point_metrics(samples, refs, cached_floor(refs))
        accuracy[name] = float(np.mean([label_accuracy(fit_x, fit_y, x, np.full(len(x), c)) for x in samples]))
        reference_accuracy[name] = float(np.mean([label_accuracy(fit_x, fit_y, r, np.full(len(r), c)) for r in refs]))
        if c == wanted[0]:
            first = samples[0]
    mixture = mixture_accuracy = None
    if label is None:
        samples = [sample_points(run, seed=seed + i, guidance=scale, **sample_options) for i in range(repeats)]
        refs = reference_draws(run, len(samples[0]), source=source)
        mixture = point_metrics(samples, refs, cached_floor(refs))
        y = class_labels(run, len(samples[0]))
        mixture_accuracy = float(np.mean([label_accuracy(fit_x, fit_y, x, y) for x in samples]))
        first = samples[0]
    return ClassMetrics(float(scale), per_class, accuracy, reference_accuracy, mixture, mixture_accuracy), first


def records_to_frames(records: list[StepRecord], x_T: torch.Tensor, run: Run) -> list[tuple[float, np.ndarray]]:
    """Reverse-process snapshots [(t, points in data units)], from x_T to the final sample."""
    decode = run.normalization.decode
    T = run.schedule.T
    frames = [(records[0].k / T if records else 1.0, decode(x_T.float().cpu().numpy()))]
    frames += [(r.k_next / T, decode(r.x_next.float().cpu().numpy())) for r in records]
    return frames


# Guidance scales of a conditional run's guidance.png (seed 004's sweep).
GUIDANCE_SWEEP = (0.0, 1.0, 2.0, 4.0, 8.0)


def render_figures(run: Run, out_dir: Path | None = None, *, samples: np.ndarray | None = None) -> list[Path]:
    """Draw every figure of a run (samples, forward, trajectory GIF, progression, schedule, loss;
    a guidance sweep for a conditional run, whose points are coloured by class throughout)."""
    from . import viz  # matplotlib is imported only when figures are drawn

    out_dir = Path(out_dir or run.path)
    if run.is_image:
        return render_image_figures(run, out_dir)  # its grid has every class, not the metrics' mix
    records: list[StepRecord] = []
    sc = run.config.sample
    names = run.class_names or None
    # The trajectory takes at least 60 steps of the run's sampler (as many as T allows) so the
    # GIF shows the process rather than a handful of jumps.
    steps = max(sc.steps, min(run.schedule.T, 60))
    n_gif = min(sc.n, 1000)
    _, x_T = sample_points(run, n=n_gif, steps=steps, on_step=records.append, return_noise=True)
    frames = records_to_frames(records, x_T, run)
    if samples is None:
        samples = sample_points(run)
    by_class = dict(labels=class_labels(run, len(samples)), data_labels=run.labels, class_names=names)
    frame_classes = dict(labels=class_labels(run, n_gif), class_names=names)
    written = [
        viz.plot_samples(run.data, samples, out_dir / "samples.png", title=_sample_title(run), **by_class),
        # The forward process acts on the normalised data the model sees.
        viz.plot_forward(run.schedule, run.normalization.encode(run.data), out_dir / "forward.png", units="normalised units"),
        viz.save_trajectory_gif(frames, out_dir / "trajectory.gif", data=run.data, **frame_classes),
        viz.plot_progression(frames, out_dir / "progression.png", data=run.data, **frame_classes),
        viz.plot_schedule(run.schedule, out_dir / "schedule.png"),
    ]
    if run.num_classes:
        n = min(sc.n, 1000)
        sweep = {
            s: [sample_points(run, n=n, label=c, guidance=s) for c in range(run.num_classes)] for s in GUIDANCE_SWEEP
        }
        written.append(
            viz.plot_guidance_sweep_points(
                run.data, run.labels, sweep, out_dir / "guidance.png", class_names=run.class_names,
                title=f"Classifier-free guidance: {sc.sampler}, {sc.steps} steps, n = {n} per panel",
            )
        )  # fmt: skip
    losses = read_losses(run.path)
    if len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
    return written


# Images per class in an image run's sample grid, GIF and guidance sweep.
GRID_PER_CLASS = 10


def render_image_figures(run: Run, out_dir: Path) -> list[Path]:
    """An image run's figures: sample grid (a row per class), reverse-process GIF and strip, one
    image's forward process with SNR, linear vs cosine on that image, schedule, loss, and a
    guidance sweep for a conditional run."""
    from . import viz
    from .schedules import make_schedule

    sc = run.config.sample
    names = run.class_names or None
    K = max(run.num_classes, 1)
    n_grid = GRID_PER_CLASS * K if run.num_classes else 64
    records: list[StepRecord] = []
    steps = max(sc.steps, min(run.schedule.T, 40))
    _, x_T = sample_points(run, n=n_grid, steps=steps, on_step=records.append, return_noise=True)
    frames = records_to_frames(records, x_T, run)
    labels = class_labels(run, n_grid)
    # The grid has GRID_PER_CLASS of every class (metrics' samples are a proportional mix).
    samples = sample_points(run, n=n_grid)
    guidance = f", guidance {sc.guidance:g}" if run.num_classes else ""
    title = f"{run.info.get('data', run.config.data.name)}: {sc.sampler}, {sc.steps} steps{guidance}"
    image = run.data[:1]
    s = run.config.schedule
    compare = {k: make_schedule(k, s.T, s.beta_start, s.beta_end, s.scale_with_T) for k in ("linear", "cosine")}
    written = [
        viz.plot_image_grid(samples, out_dir / "samples.png", labels=labels, class_names=names, title=title),
        viz.save_grid_gif(frames, out_dir / "trajectory.gif", labels=labels, class_names=names, title="Reverse process: noise → images"),
        viz.plot_image_progression(_one_per_class(frames, labels), out_dir / "progression.png", max_images=K if run.num_classes else 8),
        viz.plot_forward_strip(run.schedule, image, out_dir / "forward.png"),
        viz.plot_schedule_compare_images(compare, image, out_dir / "schedules-compared.png"),
        viz.plot_schedule(run.schedule, out_dir / "schedule.png"),
    ]  # fmt: skip
    if run.num_classes:
        sweep = {g: sample_points(run, n=n_grid, guidance=g) for g in GUIDANCE_SWEEP}
        written.append(viz.plot_guidance_sweep(sweep, out_dir / "guidance.png", labels=labels, class_names=names))
    losses = read_losses(run.path)
    if len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
    return written


def _one_per_class(frames, labels: np.ndarray | None):
    """Reverse-process frames cut to the first image of each class (all images when unlabelled)."""
    if labels is None:
        return frames
    idx = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    return [(t, x[idx]) for t, x in frames]


def _sample_title(run: Run) -> str:
    sc = run.config.sample
    data = run.info.get("data", run.config.data.name)
    guidance = f", guidance {sc.guidance:g}" if run.num_classes else ""
    return f"{data}: {sc.sampler}, {sc.steps} steps{guidance}, n = {sc.n}"


def read_losses(run_dir: str | Path, max_points: int | None = None) -> np.ndarray:
    """The loss of every training step, from the run's checkpoint (empty when there is none or
    it cannot be read, e.g. while being replaced); thinned to ``max_points`` bin means."""
    from safetensors import safe_open

    path = Path(run_dir) / "checkpoint.safetensors"
    try:
        with safe_open(str(path), framework="pt") as fh:
            losses = fh.get_tensor("losses").numpy()
    except Exception:  # noqa: BLE001 - missing, being written, or corrupt: no curve
        return np.zeros(0)
    if max_points is not None and len(losses) > max_points:
        edges = np.linspace(0, len(losses), max_points + 1).astype(int)
        losses = np.add.reduceat(losses, edges[:-1]) / np.diff(edges)
    return losses


def write_metrics(run: Run, metrics: PointMetrics | ClassMetrics, extra: dict | None = None) -> Path:
    sc = run.config.sample
    return files.write_json(
        run.path / "metrics.json",
        {"sampler": sc.sampler, "steps": sc.steps, "spacing": sc.spacing, "seed": sc.seed, **metrics.to_dict(), **(extra or {})},
    )


def complete_run(run_dir: str | Path, log=print) -> tuple[Run, PointMetrics | ClassMetrics]:
    """After training: measure the run, draw its figures and mark it complete (the CLI's
    ``train`` and the playground's training jobs both end here)."""
    run = load_run(run_dir)
    metrics, samples = evaluate_run(run)
    write_metrics(run, metrics)
    for path in render_figures(run, samples=samples):
        log(f"wrote {path}")
    run.info["status"] = "complete"
    write_run_info(run.path, run.info)
    sc = run.config.sample
    log(f"metrics ({sc.sampler}, {sc.steps} steps): {metrics.summary()}")
    return run, metrics
