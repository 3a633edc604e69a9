"""A run's likelihood: the log-density its model gives to points, in the data's own units.

The model's density comes from its probability-flow ODE (cnf.likelihood).  This module picks the
points and the conventions of a run:

points       fresh draws of a built-in point set (the default for generated data, seeds far from
             the metrics' reference draws), the run's held-out points (a data file's or an image
             set's held-out split: the default there), or a file of points in data units.
labels       a conditional run gives log p(x | y) for a label, else the mixture over its classes,
             log p(x) = log sum_c w_c p(x | c), w_c the training set's class shares: one solve per
             class (with classifier-free guidance's scale 1, the conditional model itself).
prior        the Gaussian of the training data's mean and covariance in model units (of the
             class, for a class), read at the end of the solve (cnf.gaussian_prior).
units        points: nats per point in data units, log p_data(x) = log p_model(x_model) - D log
             scale (data.Normalization).  Images: bits per dimension of the uniformly dequantised
             pixels (Theis et al. 2016; Ho et al. 2019, Sec. 3.1): a pixel on the grid v_k of L
             levels in [-1, 1] (spacing delta = 2 / (L - 1): 256 levels for 8-bit data, 17 for
             the digits' 0..16) becomes v_k + delta (u - 1/2), u ~ U[0, 1), and since
             log P(k) >= E_u[log p(x)] + D log delta (Jensen on the cell's mass),
                 bits/dim <= NLL / (D ln 2) + log2((L - 1) / 2),
             an offset of 6.99 bits for 8-bit pixels and 3 for the digits.  score_sde adds 7 for
             its cells of width 1/256 in [0, 1] (2/256 here): ours are centred on the values the
             network was trained on, 2 / 255 wide.  Pixels on no such grid (the patterns) are
             continuous: their bits/dim is the density's, with no offset.
the bound    (``bound``) a DDPM chain's variational bound of the same points beside the ODE's NLL
             (variational_bound.py; Ho et al. 2020, Eq. 5).  Point runs: of their density, nats a
             point in data units.  Images on a pixel grid: Nichol & Dhariwal's (2021) L_vlb with
             the discretised Gaussian decoder (Ho et al. 2020, Eq. 13), a bound of the discrete
             -log P(pixels), in bits per dimension with NO dequantisation offset.  The two image
             numbers bound the same discrete quantity of two models: the ODE's dequantised
             bits/dim bounds -log2 P(pixels) / D of the ODE density integrated over the pixels'
             cells (Jensen, above), the chain's bound that of the chain with its decoder.
             Continuous pixels get the Gaussian decoder: a density bound, like their NLL.
the truth    where the data set's density is known (data.densities: the built-in point sets,
             and mixtures of them for a conditional run) the same points' true NLL is reported
             beside the model's, and the paired difference: an estimate of KL(p_data || p_model)
             with its standard error (Monte Carlo over the points).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..choices import CONSISTENCY_OBJECTIVES
from ..errors import InputError
from .load import Run

LIKELIHOOD_SEED = 20_000  # fresh draws' seeds: far from the reference draws (1..) and the classifier's (10_000)
DEFAULT_POINTS = 2000
DEFAULT_IMAGES = 100
# rk45's default tolerance for a run: on the spiral-flow recipe (500 points) the mean NLL is then
# within 1.3e-3 nats of a 400-step RK4 solve, each point within 0.1; 1e-4 costs twice the
# evaluations for 2e-4 and 0.02.
DEFAULT_TOLERANCE = 1e-3
# evaluate_run(likelihood=True) on a 2-D point run: the likelihood of this many fresh points, within
# this budget of model evaluations a solve (a network whose field needs more is reported as not
# measured).
EVALUATE_POINTS = 500
EVALUATE_MAX_EVALUATIONS = 1000
PIXEL_GRIDS = (17, 256)  # the digits' 0..16, and 8-bit pixels


class LikelihoodError(InputError):
    """A run, points or options that give no likelihood; the message says which and why."""


def bits_offset(levels: int | None) -> float:
    """log2((L - 1) / 2): the dequantisation's cell width in bits per dimension (0 when continuous)."""
    return math.log2((levels - 1) / 2) if levels else 0.0


def bits_per_dim(nll: np.ndarray, dim: int, levels: int | None) -> np.ndarray:
    """Bits per dimension of images whose dequantised pixels have NLL ``nll`` (nats an image): the
    upper bound of the module docstring, NLL / (D ln 2) + log2((L - 1) / 2)."""
    return np.asarray(nll) / (dim * math.log(2)) + bits_offset(levels)


def dequantise(images: np.ndarray, levels: int, seed: int) -> np.ndarray:
    """Pixels on the grid of ``levels`` levels moved uniformly inside their cells of width
    2 / (L - 1), centred on the grid values (the module docstring), from the seed."""
    u = np.random.default_rng([seed, 3]).random(images.shape)
    return (images + (2.0 / (levels - 1)) * (u - 0.5)).astype(np.float32)


@dataclass(frozen=True)
class LikelihoodPoints:
    x: np.ndarray  # data units: (n, D) points or (n, C, H, W) pixels in [-1, 1]
    what: str  # where they come from, in words


@dataclass(frozen=True)
class RunLikelihood:
    """The NLL of each point (nats, data units; images: of the dequantised pixels) and how it was
    measured."""

    what: str
    nll: np.ndarray
    dim: int
    image: bool
    levels: int | None  # images: the pixel grid's levels (None: continuous pixels)
    settings: dict
    evaluations: float  # model calls a point, all solves (classes) together
    vector_jacobian_products: float
    seconds: float
    true_nll: np.ndarray | None = None
    label: str | None = None
    notes: list[str] = field(default_factory=list)
    bound: np.ndarray | None = None  # the DDPM chain's variational bound of each point (nats, data units; images: of the grid pixels)
    bound_evaluations: int = 0

    @property
    def n(self) -> int:
        return len(self.nll)

    @staticmethod
    def _mean_se(values: np.ndarray) -> tuple[float, float]:
        se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
        return float(values.mean()), se

    @property
    def bits_offset(self) -> float:
        return bits_offset(self.levels)

    def bits_per_dim(self) -> np.ndarray:
        return bits_per_dim(self.nll, self.dim, self.levels)

    def bound_bits_per_dim(self) -> np.ndarray:
        """The bound in bits per dimension: of the discrete pixels with no offset (the decoder's
        bins are the pixels' own), or of the continuous pixels' density."""
        return bits_per_dim(self.bound, self.dim, None)

    def to_dict(self) -> dict:
        mean, se = self._mean_se(self.nll)
        out = {"points": self.what, "n": self.n, "dim": self.dim, "label": self.label, "nll": mean, "nll_se": se}
        if self.image:
            bpd, bpd_se = self._mean_se(self.bits_per_dim())
            out |= {"bits_per_dim": bpd, "bits_per_dim_se": bpd_se, "pixel_levels": self.levels, "bits_offset": self.bits_offset}
        if self.true_nll is not None:
            out["true_nll"], out["true_nll_se"] = self._mean_se(self.true_nll)
            out["gap"], out["gap_se"] = self._mean_se(self.nll - self.true_nll)
        if self.bound is not None:
            out["bound"], out["bound_se"] = self._mean_se(self.bound)
            out["bound_evaluations"] = self.bound_evaluations
            if self.image:
                out["bound_bits_per_dim"], out["bound_bits_per_dim_se"] = self._mean_se(self.bound_bits_per_dim())
        return out | {"evaluations": self.evaluations, "vector_jacobian_products": self.vector_jacobian_products,
                      "seconds": self.seconds, **self.settings, "notes": self.notes}  # fmt: skip

    def summary(self) -> str:
        d = self.to_dict()
        if self.image:
            grid = f"dequantised, {self.levels} levels: +{self.bits_offset:.3g} bits/dim" if self.levels else "continuous pixels, no dequantisation"
            head = f"{d['bits_per_dim']:.4f} +- {d['bits_per_dim_se']:.4f} bits/dim ({grid}; NLL {d['nll']:.2f} nats an image)"
        else:
            head = f"NLL {d['nll']:.4f} +- {d['nll_se']:.4f} nats/point (data units)"
        lines = [head]
        if self.true_nll is not None:
            lines.append(
                f"the data's own density on the same points: NLL {d['true_nll']:.4f} +- {d['true_nll_se']:.4f}; "
                f"gap {d['gap']:.4f} +- {d['gap_se']:.4f} nats (paired: an estimate of KL(data || model))"
            )
        s = self.settings
        solver = f"rk45 (rtol {s['rtol']:g}, atol {s['atol']:g})" if s["solver"] == "rk45" else f"{s['solver']} ({s['steps']} steps)"
        divergence = "exact divergence" if s["divergence"] == "exact" else f"Hutchinson's divergence ({s['probes']} {s['probe_kind']} probes)"
        lines.append(
            f"{solver}, {divergence}: {self.evaluations:.0f} model evaluations a point "
            f"({self.vector_jacobian_products:.0f} vector-Jacobian products), {self.seconds:.1f} s"
        )
        if self.bound is not None and self.image:
            decoder = f"discretised decoder on the {self.levels} levels, Ho et al. 2020, Eq. 13" if self.levels else "Gaussian decoder"
            kind = ("of the discrete pixels: no dequantisation offset" if self.levels
                    else "of the continuous pixels' density")  # fmt: skip
            lines.append(
                f"DDPM variational bound L_vlb (Nichol & Dhariwal 2021; {decoder}; {s['bound_variance']} variance): "
                f"{d['bound_bits_per_dim']:.4f} +- {d['bound_bits_per_dim_se']:.4f} bits/dim {kind}, "
                f"{self.bound_evaluations} model evaluations an image (a bound of the chain's Gaussian-step model, not of the ODE's)"
            )
        elif self.bound is not None:
            lines.append(
                f"DDPM variational bound (Ho et al. 2020, Eq. 5; {s['bound_variance']} variance): {d['bound']:.4f} +- {d['bound_se']:.4f} "
                f"nats/point, {self.bound_evaluations} model evaluations a point (a bound of the chain's Gaussian-step model, not of the ODE's)"
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# -- which runs and points --------------------------------------------------------------------------


def check_has_density(run: Run) -> None:
    if run.is_autoencoder:
        raise LikelihoodError(f"{run.path}: an autoencoder run has no density (it encodes and decodes images; it models no distribution)")
    if run.is_latent:
        raise LikelihoodError(
            f"{run.path}: a latent run's model is a density of its autoencoder's latents, not of images "
            "(the decoder's term is not added); likelihood measures point and pixel-space image runs"
        )
    config = getattr(run, "config", None)  # a run's recipe (stand-ins for a run may carry only the flags above)
    if config is not None and config.train.objective in CONSISTENCY_OBJECTIVES:
        raise LikelihoodError(
            f"{run.path}: a consistency model maps noise to data in jumps (Song et al. 2023); its clean estimate defines no "
            "probability-flow ODE, so it has no density to measure; measure its teacher, or evaluate it"
        )


def _source(run: Run):
    from .evaluation import run_source

    return run_source(run)


def pixel_levels(images: np.ndarray) -> int | None:
    """The levels L of the grid -1 + 2 k / (L - 1) that every pixel lies on (17 or 256), or None."""
    for levels in PIXEL_GRIDS:
        k = (images.astype(np.float64) + 1) * (levels - 1) / 2
        if np.allclose(k, np.round(k), atol=1e-3):
            return levels
    return None


def likelihood_points(run: Run, *, data: str | Path | None = None, held_out: bool = False, n: int | None = None,
                      seed: int = 0, label: int | None = None) -> LikelihoodPoints:  # fmt: skip
    """The points to measure (see the module docstring), at most ``n`` of them."""
    check_has_density(run)
    if n is not None and n < 1:
        raise LikelihoodError(f"-n: expected a positive number of points, got {n}")
    if data is not None:
        x = _read_points(run, Path(data))
        x = x[:n] if n else x
        return LikelihoodPoints(x, f"{data} ({len(x)} {'images' if run.is_image else 'points'})")
    if run.is_image:
        from .evaluation import held_out_images

        images, labels = held_out_images(run)
        if label is not None and labels is not None:
            images = images[labels == label]
        images = images[: n or DEFAULT_IMAGES]
        if not len(images):
            raise LikelihoodError(f"{run.path}: no held-out images{'' if label is None else f' of class {run.class_names[label]}'} to measure")
        return LikelihoodPoints(images, f"{len(images)} held-out images" + ("" if label is None else f" of class {run.class_names[label]}"))
    source = _source(run)
    count = n or DEFAULT_POINTS
    of_class = "" if label is None else f" of class {run.class_names[label]}"
    if source.has_generator:
        if held_out:
            raise LikelihoodError(f"{run.path}: its data ({source.name}) are drawn fresh, so it holds no points out; leave out --held-out for fresh draws")
        x = source.reference(count, seed=LIKELIHOOD_SEED + seed, label=label)
        return LikelihoodPoints(x, f"{len(x)} fresh draws of {source.name}{of_class}")
    x = source.reference(count, seed=seed, label=label)  # the file's held-out points
    if not len(x):
        raise LikelihoodError(f"{run.path}: no held-out points{of_class} in {source.name}; give --data FILE")
    return LikelihoodPoints(x, f"{len(x)} held-out points of {source.name}{of_class}")


def _known(run: Run) -> bool:
    from ..data.densities import LOG_DENSITIES

    d = run.config.data
    return all(name in LOG_DENSITIES for name in (tuple(d.classes) or (d.name,)))


def _read_points(run: Run, path: Path) -> np.ndarray:
    from ..data.point_files import DataError, load_points_file

    if run.is_image:
        x = _read_images(run, path)
    else:
        try:
            x = load_points_file(path)
        except DataError as exc:
            raise LikelihoodError(f"--data {exc}") from None
        if x.shape[1] != run.dim:
            raise LikelihoodError(f"--data {path}: points of dimension {x.shape[1]}; the run models {run.dim}-D points")
    return x


def _read_images(run: Run, path: Path) -> np.ndarray:
    shape = run.sample_shape
    if path.suffix.lower() != ".npy":
        raise LikelihoodError(f"--data {path}: images are read from .npy (N x C x H x W pixels in [-1, 1], as `sample --out x.npy` writes)")
    if not path.is_file():
        raise LikelihoodError(f"--data {path}: no such file")
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise LikelihoodError(f"--data {path}: cannot read as .npy ({type(exc).__name__})") from None
    if x.ndim == 3 and shape[0] == 1:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape or not len(x):
        raise LikelihoodError(f"--data {path}: images of shape {tuple(x.shape)}; expected N x {' x '.join(map(str, shape))} with N >= 1")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise LikelihoodError(f"--data {path}: expected finite numbers")
    if x.min() < -1 - 1e-6 or x.max() > 1 + 1e-6:
        raise LikelihoodError(f"--data {path}: pixels in [{x.min():g}, {x.max():g}]; expected [-1, 1]")
    return x.astype(np.float32)


# -- the measurement -------------------------------------------------------------------------------


def true_log_density(run: Run, x: np.ndarray, label: int | None = None) -> np.ndarray | None:
    """The data set's own log-density of points x (data units), where it is known: a built-in set,
    or a conditional run's classes (one, or mixed in the training shares)."""
    from ..data.densities import log_density, mixture_log_density

    if run.is_image or not _known(run):
        return None
    d = run.config.data
    if not d.classes:
        return log_density(d.name, x)
    if label is not None:
        return log_density(d.classes[label], x)
    return mixture_log_density(d.classes, run.class_weights, x)


def _moments(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    flat = torch.as_tensor(x.reshape(len(x), -1), dtype=torch.float64)
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / max(len(flat) - 1, 1)


def measure_likelihood(
    run: Run, points: LikelihoodPoints, *, label: int | None = None, divergence: str = "auto", probes: int = 1,
    probe_kind: str = "rademacher", solver: str = "rk45", rtol: float = DEFAULT_TOLERANCE, atol: float = DEFAULT_TOLERANCE,
    steps: int | None = None, seed: int = 0, batch_size: int | None = None, max_evaluations: int | None = None,
    bound: bool = False,
) -> RunLikelihood:  # fmt: skip
    """The run's NLL of ``points`` (see the module docstring): log p(x | label), or the mixture over
    the classes of a conditional run when ``label`` is None.  A solve that fails (more than
    ``max_evaluations`` model calls, or a state that is not finite) raises LikelihoodError.  With
    ``bound``, a DDPM chain's variational bound of the same points too (variational_bound.py; the
    mixture over classes bounded by -log sum_c w_c exp(-bound_c))."""
    from ..cnf import SolverError, default_times, gaussian_prior, likelihood

    check_has_density(run)
    if bound and not run.schedule.is_chain:
        raise LikelihoodError(f"--bound: the variational bound is a DDPM chain's; {run.path} is on the {run.schedule.name} path "
                              "(continuous time: no chain of Gaussian steps to bound; its ODE NLL is the likelihood)")
    if label is not None and not run.num_classes:
        raise LikelihoodError(f"--label: {run.path} is unconditional (trained with no classes), so it takes no label")
    x = points.x
    notes = []
    levels = None
    if run.is_image:
        levels = pixel_levels(x)
        if levels is not None:  # uniform dequantisation inside each pixel's cell, seeded
            x = dequantise(x, levels, seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=run.device)
    train = run.normalization.encode(run.data) if not run.is_image else run.data
    classes = [None] if not run.num_classes else ([label] if label is not None else list(range(run.num_classes)))
    prediction = run.config.model.prediction
    options = dict(prediction=prediction, divergence=divergence, probes=probes, probe_kind=probe_kind, seed=seed, method=solver,
                   rtol=rtol, atol=atol, steps=steps, batch_size=batch_size, max_evaluations=max_evaluations)  # fmt: skip
    per_class, bounds, evaluations, products = [], [], 0.0, 0.0
    start = time.perf_counter()
    model_fn = run.model_fn()
    for c in classes:
        y = None if c is None else torch.full((len(xt),), c, dtype=torch.long, device=run.device)
        own = train if c is None else train[run.labels == c]
        _, t_end = default_times(run.schedule, prediction)
        prior = gaussian_prior(run.schedule, t_end, *(v.to(run.device) for v in _moments(own)))
        try:
            result = likelihood(model_fn, run.schedule, xt, y=y, prior=prior, normalization=None if run.is_image else run.normalization, **options)
        except SolverError as exc:
            raise LikelihoodError(f"{run.path}: the probability-flow ODE was not solved: {exc}") from None
        except ValueError as exc:
            raise LikelihoodError(str(exc)) from None
        per_class.append(result.log_prob.double().cpu().numpy())
        if bound:  # timed apart: ``seconds`` is the ODE solves'
            bound_start = time.perf_counter()
            bounds.append(_chain_bound(run, model_fn, points.x, levels, y, seed))
            start += time.perf_counter() - bound_start
        evaluations += result.evaluations
        products += result.vector_jacobian_products
        settings = {"divergence": result.divergence, "probes": result.probes, "probe_kind": probe_kind, "solver": solver,
                    "rtol": rtol, "atol": atol, "steps": steps, "t_start": result.t_start, "t_end": result.t_end}  # fmt: skip
    seconds = time.perf_counter() - start
    settings["bound_variance"] = run.config.sample.variance if bound else None
    if len(classes) > 1:
        from scipy.special import logsumexp

        log_w = np.log(run.class_weights)[:, None]
        log_prob = logsumexp(np.stack(per_class) + log_w, axis=0)
        bound_nll = -logsumexp(log_w - np.stack(bounds), axis=0) if bound else None
        notes.append(f"the mixture over {len(classes)} classes in the training shares: one solve per class")
    else:
        log_prob = per_class[0]
        bound_nll = bounds[0] if bound else None
    truth = true_log_density(run, points.x, label)
    if truth is not None and not np.isfinite(truth).all():
        notes.append(f"{int((~np.isfinite(truth)).sum())} of the points lie where the data's density is 0: no true NLL")
        truth = None
    return RunLikelihood(
        points.what, -log_prob, int(np.prod(run.sample_shape)), run.is_image, levels, settings, evaluations, products, seconds,
        None if truth is None else -truth, None if label is None else run.class_names[label], notes,
        bound_nll, run.schedule.T * len(classes) if bound else 0,
    )  # fmt: skip


def _chain_bound(run: Run, model_fn, x: np.ndarray, levels: int | None, y, seed: int) -> np.ndarray:
    """The variational bound of points x (data units) in nats, data units: the model units' bound
    plus D log scale (the normalisation's Jacobian, as for the NLL).  Images (not dequantised) on a
    grid of ``levels``: the discrete bound, the clean estimate clamped to the pixel box as the
    run's sampler clamps it (and improved-diffusion's calc_bpd_loop)."""
    from ..variational_bound import variational_bound

    options = dict(prediction=run.config.model.prediction, y=y, variance=run.config.sample.variance, seed=seed)
    if run.is_image:
        clip = run.info.get("x0_bound") if run.config.sample.clip_x0 else None
        x_image = torch.as_tensor(np.asarray(x, dtype=np.float32), device=run.device)
        result = variational_bound(model_fn, run.schedule, x_image, levels=levels, clip_x0=clip, **options)
        return result.bound.double().cpu().numpy()
    x_model = torch.as_tensor(run.normalization.encode(np.asarray(x, dtype=np.float32)), device=run.device)
    result = variational_bound(model_fn, run.schedule, x_model, **options)
    return result.bound.double().cpu().numpy() + run.dim * math.log(run.normalization.scale)



# -- beside the metrics of `evaluate` ----------------------------------------------------------------

ENTROPY_DRAWS = 20_000  # fresh draws (10 draws of 2000) for the data's entropy; cached per data set
ENTROPY_SEED = 30_000


def data_entropy(run: Run, label: int | None = None) -> tuple[float, float] | None:
    """The differential entropy of the run's data (of class ``label``, or the mixture of a conditional
    run's classes) in nats, with its standard error: the Monte Carlo mean of its true NLL over
    ENTROPY_DRAWS fresh draws (data.densities.monte_carlo_mean), kept in the cache folder
    (files.cache_dir) like the metrics' floors.  None where the density is not known."""
    import json

    from ..data.densities import monte_carlo_mean
    from ..files import cache_dir, write_json

    if run.is_image or run.is_latent or run.is_autoencoder or not _known(run):
        return None
    d = run.config.data
    names = tuple(d.classes) or (d.name,)
    weights = [1.0] if not d.classes else ([float(i == label) for i in range(len(names))] if label is not None else list(run.class_weights))
    key = "+".join(f"{n}:{w:.6f}" for n, w in zip(names, weights)) + f"@{d.seed}:{ENTROPY_DRAWS}"
    path = cache_dir() / "entropy" / f"{abs(hash_text(key)):016x}.json"
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key:
            return float(stored["entropy"]), float(stored["se"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    x = _source(run).reference(ENTROPY_DRAWS, seed=ENTROPY_SEED, label=label)
    h, se = monte_carlo_mean(-true_log_density(run, x, label))
    try:
        write_json(path, {"key": key, "entropy": h, "se": se})
    except OSError:
        pass  # a read-only cache folder costs time, not correctness
    return h, se


def hash_text(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class WithDensity:
    """A 2-D point run's metrics (metrics.PointMetrics or ClassMetrics) with the data's entropy
    beside them where its density is known, and the model's NLL when asked for (not by default:
    an ODE solve a point, hundreds of model evaluations).  Reads as the metrics otherwise."""

    metrics: object
    entropy: tuple[float, float] | None = None
    likelihood: RunLikelihood | None = None
    note: str = ""

    def __getattr__(self, name):  # only for names the dataclass itself lacks
        if name == "metrics":
            raise AttributeError(name)
        return getattr(self.metrics, name)

    def to_dict(self) -> dict:
        out = self.metrics.to_dict()
        if self.entropy is not None:
            out["entropy"], out["entropy_se"] = self.entropy
        if self.likelihood is not None:
            out["likelihood"] = self.likelihood.to_dict()
        elif self.note:
            out["likelihood"] = {"note": self.note}
        return out

    def summary(self) -> str:
        lines = [self.metrics.summary()]
        if self.entropy is not None:
            lines.append(f"the data's entropy {self.entropy[0]:.4f} +- {self.entropy[1]:.4f} nats (its true density, {ENTROPY_DRAWS} fresh draws)")
        if self.likelihood is not None:
            d = self.likelihood.to_dict()
            line = f"likelihood ({d['points']}, rk45 rtol {d['rtol']:g}): NLL {d['nll']:.4f} +- {d['nll_se']:.4f} nats/point"
            if "true_nll" in d:
                line += f"; gap to the data's own density on the same points {d['gap']:.4f} +- {d['gap_se']:.4f} nats"
            lines.append(f"{line}; {d['evaluations']:.0f} model evaluations a point, {d['seconds']:.1f} s")
        elif self.note:
            lines.append(f"likelihood: {self.note}")
        else:
            lines.append("the model's NLL: denoiselab likelihood RUN (an ODE solve a point)")
        return "\n".join(lines)


def with_density(run: Run, metrics, *, label: int | None = None, seed: int = 0, likelihood: bool = False) -> WithDensity:
    """``metrics`` with the data's entropy beside them (``data_entropy``), and with ``likelihood``
    the NLL of EVALUATE_POINTS fresh points (or held-out points of a file) at the default
    tolerance, within EVALUATE_MAX_EVALUATIONS model calls a solve."""
    entropy = data_entropy(run, label)
    if not likelihood:
        return WithDensity(metrics, entropy)
    try:
        points = likelihood_points(run, n=EVALUATE_POINTS, seed=seed, label=label)
        result = measure_likelihood(run, points, label=label, seed=seed, max_evaluations=EVALUATE_MAX_EVALUATIONS)
    except LikelihoodError as exc:
        return WithDensity(metrics, entropy, None, f"not measured ({exc}); see `denoiselab likelihood`")
    return WithDensity(metrics, entropy, result)
