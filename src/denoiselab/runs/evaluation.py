"""Measuring a run: W2 and energy distance against fresh draws of the data (points), per class
with label accuracy (conditional runs), or class accuracy and Frechet distance (images); and the
floors of a point run's metrics, measured while it trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data import make_source
from ..metrics import REFERENCE_DRAWS, ClassMetrics, PointMetrics, cached_floor, label_accuracy, point_metrics
from .folder import RunError
from .load import Run
from .plan import SamplingPlan
from .sampling import batch_count, plan_from_options, sample


# Where an evaluation is: progress(done, total, now) before each unit of work (a sample set, a
# sampler step of an image set, a set of metrics) with the units done so far, the units of the
# whole evaluation and what is being done now, and once more at the end with done == total.
# The command line draws it as a bar; an evaluation of a conditional point run at the default 8
# sets can take minutes.
Progress = Callable[[int, int, str], None]


class Units:
    """Counts an evaluation's units of work for a ``Progress`` (None: nothing is reported)."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def now(self, what: str) -> None:
        """``what`` starts; the units before it are done."""
        if self.progress is not None:
            self.progress(self.done, self.total, what)

    def next(self, what: str = "") -> None:
        """One unit done; ``what`` starts (nothing: the evaluation is done)."""
        self.done += 1
        self.now(what)

    def one(self, what: str, work):
        """``work()`` as one unit of work, named ``what``."""
        self.now(what)
        out = work()
        self.done += 1
        return out

    def sampler_steps(self, what: str):
        """An on_step for sample(): every sampler step a unit (for image sets, whose draw is long)."""

        def on_step(_record) -> None:
            self.next(what)

        return on_step


@dataclass(frozen=True)
class RunMetrics:
    """An image run's, an autoencoder's or a latent run's metrics: the cached classifier's class
    accuracy on samples and the Frechet distance in its feature space, with its floor
    (image_metrics.image_metrics); an autoencoder's reconstructions and a latent run's latent
    distances beside them (runs/latent.py)."""

    values: dict

    def to_dict(self) -> dict:
        return dict(self.values)

    def summary(self) -> str:
        v = self.values
        if "reconstruction_mse" not in v:  # a pixel-space image run
            return self._frechet_line() if v.get("frechet") is not None else f"n={v['n']}: {v.get('note', 'no metrics')}"
        lines = [self._frechet_line()] if v.get("frechet") is not None else []
        lines.append(
            f"autoencoder: reconstruction MSE {v['reconstruction_mse']:.4f}, PSNR {v['reconstruction_psnr']:.1f} dB "
            f"on {v['n_held_out']} held-out images"
        )
        if v.get("frechet_reconstruction") is not None:
            lines[-1] += (
                f"; ceiling: Frechet of reconstructions {v['frechet_reconstruction']:.2f} "
                f"({v['frechet_reconstruction'] / v['frechet_floor']:.2f}x floor), their class accuracy {v['reconstruction_accuracy']:.3f}"
            )
        if v.get("latent_w2") is not None:
            lines.append(
                f"latent ({v['latent_dim']}-D): W2 {v['latent_w2']:.4f} (floor {v['latent_w2_floor']:.4f})  "
                f"energy {v['latent_energy']:.5f} (floor {v['latent_energy_floor']:.5f})  n={v['latent_n']}"
            )
        return "\n".join(lines)

    def _frechet_line(self) -> str:
        v = self.values
        acc = "" if v.get("accuracy") is None else f"class accuracy {v['accuracy']:.3f}  "
        if acc and v.get("held_out_accuracy") is not None:
            acc = f"class accuracy {v['accuracy']:.3f} (held-out real images {v['held_out_accuracy']:.3f})  "
        guidance = "" if v.get("guidance") is None else f"guidance {v['guidance']:g}  "
        return (
            f"{guidance}{acc}Frechet {v['frechet']:.2f} (floor {v['frechet_floor']:.2f}, {v['frechet_ratio']:.2f}x)  "
            f"n={v['n']} samples vs {v['n_held_out']} held-out images"
        )


def image_classifier(run: Run):
    """The digit (or pattern) classifier of the run's training split, cached in the user's cache
    folder (files.cache_dir) and retrained when missing."""
    from ..image_metrics import load_or_train_feature_net

    images = torch.as_tensor(run.data)
    return load_or_train_feature_net(images, torch.as_tensor(run.labels), run.num_classes)


def held_out_images(run: Run) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        held = run.folder.read_held_out()
        labels = run.folder.read_held_out_labels() if run.num_classes else None
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"{run.path}: cannot read the held-out images ({exc})") from None
    return held, labels


def evaluate_images(run: Run, plan: SamplingPlan | None = None, *, progress: Progress | None = None, batch: int | None = None,
                    **plan_options) -> tuple[RunMetrics, np.ndarray]:  # fmt: skip
    """Class accuracy and Frechet distance of ``plan``'s samples (every class in proportion, or
    its one label), drawn ``batch`` at a time (None: all at once); without a plan, one is made of
    ``plan_options`` (plan_from_options)."""
    from ..image_metrics import classifier_accuracy, image_metrics

    plan = plan_from_options(run, **plan_options) if plan is None else plan
    units = Units(progress, plan.steps * batch_count(plan.n, batch) + (2 if run.num_classes else 0))
    drawing = f"sampling {plan.n} images"
    units.now(drawing)
    samples = sample(run, plan, on_step=units.sampler_steps(drawing), batch=batch).x
    if not run.num_classes:
        note = "unlabelled images: no classifier to measure samples with"
        return RunMetrics({"n": plan.n, "frechet": None, "note": note}), samples
    held, held_labels = held_out_images(run)
    train = run.data
    if plan.label is not None:
        keep = held_labels == plan.label
        held, held_labels, train = held[keep], held_labels[keep], train[run.labels == plan.label]
    classifier = units.one("the image classifier (trained once, then cached)", lambda: image_classifier(run))
    values = units.one(
        "class accuracy and Frechet distance",
        lambda: image_metrics(classifier, torch.as_tensor(samples), torch.as_tensor(plan.labels), torch.as_tensor(held), torch.as_tensor(train), seed=plan.seed),
    )
    units.now("")
    values = {"guidance": plan.guidance, **values}
    # The class accuracy's ceiling: the same classifier on the real held-out images.  Near 1 on
    # the digits; a small CNN reads CIFAR-10's photos far less surely, and samples cannot beat it.
    values["held_out_accuracy"] = classifier_accuracy(classifier, torch.as_tensor(held), torch.as_tensor(held_labels))
    values["per_class_accuracy"] = {run.class_names[int(k)]: v for k, v in (values.get("per_class_accuracy") or {}).items()}
    return RunMetrics(values), samples


def run_source(run: Run):
    cfg = run.config.data
    return make_source(cfg.name, cfg.n, cfg.seed, base=run.path, classes=cfg.classes, labels=cfg.labels)


def _generator_draws(source, n: int, count: int = REFERENCE_DRAWS, label: int | None = None) -> list[np.ndarray]:
    return [source.reference(n, seed=1 + i, label=label) for i in range(count)]


def reference_draws(run: Run, n: int, count: int = REFERENCE_DRAWS, label: int | None = None, *, source=None) -> list[np.ndarray]:
    """Independent reference sets of size n: ``count`` fresh draws from the data's generator (of
    class ``label``, or of every class in proportion), or, for a data file, the two disjoint
    halves of its held-out points."""
    source = source or run_source(run)
    if source.has_generator:
        return _generator_draws(source, n, count, label)
    # A file has no fresh draws, only its held-out points: draws from that one pool overlap (all
    # equal once n >= the pool), which drives the floor to 0.  Split it into two disjoint halves
    # instead, so the floor compares distinct points.
    pool = source.reference(2 * n, seed=1, label=label)
    half = len(pool) // 2
    if half < 1:
        raise RunError(f"{run.path}: too few held-out points{'' if label is None else f' of class {label}'} to measure against")
    return [pool[:half], pool[half : 2 * half]]


def _sample_sets(run: Run, plan: SamplingPlan, repeats: int, units: Units, what: str = "", batch: int | None = None) -> list[np.ndarray]:
    """``repeats`` sample sets of ``plan`` (seeds plan.seed, plan.seed + 1, ...), a unit each,
    each drawn ``batch`` at a time (None: all at once)."""
    return [
        units.one(f"{what}sample set {i + 1} of {repeats}", lambda i=i: sample(run, plan.with_seed(plan.seed + i), batch=batch).x)
        for i in range(repeats)
    ]


def evaluate_points(run: Run, plan: SamplingPlan, *, repeats: int, progress: Progress | None = None, batch: int | None = None) -> tuple[PointMetrics, np.ndarray]:
    """An unconditional point run: W2 and energy distance of ``repeats`` sample sets of ``plan``
    (seeds plan.seed, plan.seed + 1, ...) against REFERENCE_DRAWS fresh reference draws, beside
    the floor between those draws (see metrics.point_metrics); returns the first sample set too.
    ``batch``: samples drawn at a time (None: all at once)."""
    units = Units(progress, repeats + 1)
    samples = _sample_sets(run, plan, repeats, units, batch=batch)
    references = reference_draws(run, len(samples[0]))
    metrics = units.one(f"W2 and energy distance of {repeats} sets", lambda: point_metrics(samples, references, cached_floor(references)))
    units.now("")
    return metrics, samples[0]


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


def evaluate_classes(run: Run, plan: SamplingPlan, *, repeats: int, progress: Progress | None = None, batch: int | None = None) -> tuple[ClassMetrics, np.ndarray]:
    source = run_source(run)
    fit_x, fit_y = _classifier_set(run, source, plan.n)
    wanted = list(range(run.num_classes)) if plan.label is None else [plan.label]
    units = Units(progress, (len(wanted) + (plan.label is None)) * (repeats + 1))
    measure = f"W2, energy distance and label accuracy of {repeats} sets"

    per_class, accuracy, reference_accuracy = {}, {}, {}
    for c in wanted:
        name = run.class_names[c]
        samples = _sample_sets(run, plan.for_class(c), repeats, units, f"class {name}: ", batch)
        refs = reference_draws(run, len(samples[0]), label=c, source=source)

        def measured(samples=samples, refs=refs, c=c):
            return (
                point_metrics(samples, refs, cached_floor(refs)),
                float(np.mean([label_accuracy(fit_x, fit_y, x, np.full(len(x), c)) for x in samples])),
                float(np.mean([label_accuracy(fit_x, fit_y, r, np.full(len(r), c)) for r in refs])),
            )

        per_class[name], accuracy[name], reference_accuracy[name] = units.one(f"class {name}: {measure}", measured)
        if c == wanted[0]:
            first = samples[0]
    mixture = mixture_accuracy = None
    if plan.label is None:
        samples = _sample_sets(run, plan, repeats, units, "every class: ", batch)
        refs = reference_draws(run, len(samples[0]), source=source)
        mixture, mixture_accuracy = units.one(
            f"every class: {measure}",
            lambda: (point_metrics(samples, refs, cached_floor(refs)), float(np.mean([label_accuracy(fit_x, fit_y, x, plan.labels) for x in samples]))),
        )  # fmt: skip
        first = samples[0]
    units.now("")
    return ClassMetrics(plan.guidance, per_class, accuracy, reference_accuracy, mixture, mixture_accuracy), first


class FloorsInBackground:
    """The floors that a point run's metrics will need, measured on a background thread while
    it trains (``floors_in_background``), so that a first run on a machine does not wait for
    them after training.

    A point network trains on one thread (training.auto_threads), so on two cores the other
    core is free.  The floors depend only on the data (metrics.cached_floor keeps them in the
    cache folder), never on torch's random state, so measuring them here changes no weights.
    The thread runs at the lowest priority (nice 19, Linux): on a busy machine it takes almost
    nothing from the training or from the user's other programs.  ``stop()`` after training
    (or on an interruption) cancels what is not done: complete_run then measures the rest at
    normal priority, since a thread cannot raise its priority again once lowered."""

    def __init__(self, draw_sets):
        import threading

        self._cancel = threading.Event()
        self.measured = 0  # floors measured (or found in the cache) so far
        self._thread = threading.Thread(target=self._measure, args=(draw_sets,), name="floors", daemon=True)
        self._thread.start()

    def _measure(self, draw_sets) -> None:
        """``draw_sets`` yields lists of reference draws (drawn here, off the main thread)."""
        from ..metrics import FloorCancelled

        _lowest_priority()
        try:
            for refs in draw_sets:
                cached_floor(refs, cancel=self._cancel)
                self.measured += 1
        except FloorCancelled:
            pass
        except Exception:  # noqa: BLE001 - an early start only; complete_run measures and reports
            pass

    def stop(self) -> None:
        """Cancel what is left (it stops within one exact assignment, < 0.5 s) and wait."""
        self._cancel.set()
        self._thread.join()


def _lowest_priority() -> None:
    """Nice 19 for the calling thread only: on Linux the nice value belongs to a thread, and
    the threads it starts (metrics._w2_pairs's pool) inherit it.  Elsewhere nothing."""
    import os
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def drawn_by_generators(data) -> bool:
    """Whether a recipe's [data] is drawn by built-in generators (one, or one per class), so fresh
    draws of it exist; a data file has only its held-out points."""
    from ..data.toy import GENERATORS

    return all(name in GENERATORS for name in (tuple(data.classes) or (data.name,)))


def floors_in_background(cfg) -> FloorsInBackground | None:
    """Start measuring the floors that ``complete_run`` will need for a run of recipe ``cfg``
    (each class's and the mixture's for a conditional run, else the data's, at sample.n
    points).  None where there is nothing to do early: image data, and point files (whose
    floor is one cheap pair: the two halves of the held-out points)."""
    d, n = cfg.data, cfg.sample.n
    if not drawn_by_generators(d):
        return None

    def draw_sets():
        source = make_source(d.name, d.n, d.seed, classes=d.classes, labels=d.labels)
        for label in range(source.num_classes):
            yield _generator_draws(source, n, label=label)
        yield _generator_draws(source, n)  # the data, or a conditional run's mixture

    return FloorsInBackground(draw_sets())
