"""Autoencoder runs and latent diffusion runs as run folders: the latent scale stored when an
autoencoder completes, their metrics and their figures.  (Loading a latent run attaches the
autoencoder it decodes with, checked by content hash: runs/load.py.)

Metrics (Rombach et al. 2022 report the autoencoder's reconstructions beside the samples for the
same reason): reconstruction MSE and PSNR on the held-out images; the Frechet distance of
reconstructions of training images against the held-out images, which is what a perfect
model of the encoded training set would score (the ceiling: the decoder is the last step of
every sample; guided samples, drawn towards typical latents of their class, can score below
it); and, for a flat latent of at most FLAT_METRICS_MAX_DIM dimensions, the exact W2 and
energy distance between sampled latents and encoded held-out images, beside the same distances
from encoded training images (the floor).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import files
from ..latent import encode_images, measure_latent_scale, reconstruct, reconstruction_error
from .evaluation import Progress, RunMetrics, Units, evaluate_images, held_out_images, image_classifier
from .figures import GRID_PER_CLASS, GUIDANCE_SWEEP, IMAGE_ANIMATION_STEPS, default_words, one_per_class, reverse_animation
from .load import Run
from .sampling import class_labels, resolve_label, sample_points

# Exact W2 (an assignment problem) and energy distance mean something in a few dimensions only.
FLAT_METRICS_MAX_DIM = 8
# Seeded training subsets averaged for the latent floor.
FLOOR_REPEATS = 5
# Images per class in the figures.
PER_CLASS = 8


def store_latent_scale(run: Run) -> float:
    """Measure 1 / std of the training set's latents and store it in the autoencoder's weights
    (and in the run's description, for reading); the latent runs trained on it record the
    weights' hash after."""
    model = run.model
    model.latent_scale.fill_(1.0)
    scale = measure_latent_scale(model, run.data)
    model.latent_scale.fill_(scale)
    files.write_tensors(run.folder.weights, {k: v.contiguous() for k, v in model.state_dict().items()}, {"step": str(run.info.get("step", 0))})
    run.folder.record_latent_scale(run.info, scale, model.latent_shape)
    return scale


def _autoencoder(run: Run):
    return run.model if run.is_autoencoder else run.autoencoder


def _train_subset(run: Run, n: int, seed: int, label: int | None):
    """n training images (of class ``label``) and their labels, a seeded draw."""
    idx = np.arange(len(run.data)) if label is None else np.flatnonzero(run.labels == label)
    idx = np.random.default_rng(seed).permutation(idx)[:n]
    return run.data[idx], None if run.labels is None else run.labels[idx]


def evaluate_latent_run(
    run: Run, *, seed: int, label=None, guidance: float | None = None, progress: Progress | None = None, **sample_options
) -> tuple[RunMetrics, np.ndarray]:
    """An autoencoder run: its reconstructions (returned); a latent run: evaluate_images' class
    accuracy and Frechet distance of decoded samples (returned), with the ceiling beside them.
    ``progress``: as evaluation.Progress, evaluate_images' units and then this function's."""
    from ..image_metrics import image_metrics

    ae = _autoencoder(run)
    held, held_labels = held_out_images(run)
    c = None if label is None else resolve_label(run, label)
    if c is not None:
        held = held[held_labels == c]
        held_labels = held_labels[held_labels == c]
    values: dict = {}
    samples = None
    n = sample_options.get("n") or run.config.sample.n
    flat = run.is_latent and len(run.sample_shape) == 1 and run.sample_shape[0] <= FLAT_METRICS_MAX_DIM
    own = 1 + bool(run.num_classes) + flat  # the reconstructions, their Frechet ceiling, the flat latent's distances
    units = Units(progress, own)
    if run.is_latent:

        def images_then_ours(done: int, total: int, now: str) -> None:
            units.done, units.total = done, total + own
            if now:
                units.now(now)

        base, samples = evaluate_images(run, seed=seed, label=label, guidance=guidance, progress=images_then_ours, **sample_options)
        values.update(base.to_dict())
        n = len(samples)
    values.update(units.one("the autoencoder's reconstructions", lambda: reconstruction_error(held, reconstruct(ae, held))), n_held_out=len(held))
    if run.num_classes:
        train_images, train_labels = _train_subset(run, n, seed, c)
        recon = reconstruct(ae, train_images)
        train_pool = run.data if c is None else run.data[run.labels == c]
        ceiling = units.one(
            "Frechet distance of the reconstructions (the ceiling)",
            lambda: image_metrics(image_classifier(run), torch.as_tensor(recon), torch.as_tensor(train_labels), torch.as_tensor(held), torch.as_tensor(train_pool), seed=seed),
        )  # fmt: skip
        values.update(
            frechet_reconstruction=ceiling["frechet"], reconstruction_accuracy=ceiling["accuracy"], n_reconstructed=len(recon),
        )  # fmt: skip
        values.setdefault("frechet_floor", ceiling["frechet_floor"])
    if flat:
        values.update(units.one("W2 and energy distance of the latents", lambda: _flat_latent_metrics(run, held, held_labels, seed, guidance, sample_options)))
    units.now("")
    if samples is None:
        samples = reconstruct(ae, held)
    return RunMetrics(values), samples


def _flat_latent_metrics(run: Run, held, held_labels, seed: int, guidance, sample_options) -> dict:
    """Exact W2 and energy distance between latents sampled for the held-out images' classes and
    the encoded held-out images; the floor: encoded training images (same class counts) against
    them, averaged over FLOOR_REPEATS draws."""
    from ..metrics import energy_distance, w2_exact

    ae = run.autoencoder
    reference = encode_images(ae, held)
    options = {k: v for k, v in sample_options.items() if k not in ("n", "counter", "label")}
    label = held_labels if run.num_classes else None
    sampled = sample_points(run, n=len(held), seed=seed, label=label, guidance=guidance, decode=False, **options)
    rng = np.random.default_rng(seed)
    floors_w2, floors_energy = [], []
    for _ in range(FLOOR_REPEATS):
        if run.num_classes:
            idx = np.concatenate([rng.choice(np.flatnonzero(run.labels == k), np.sum(held_labels == k), replace=False) for k in np.unique(held_labels)])
        else:
            idx = rng.choice(len(run.data), len(held), replace=False)
        z = encode_images(ae, run.data[idx])
        floors_w2.append(w2_exact(z, reference))
        floors_energy.append(energy_distance(z, reference))
    return {
        "latent_dim": int(reference.shape[1]),
        "latent_n": len(reference),
        "latent_w2": w2_exact(sampled, reference),
        "latent_w2_floor": float(np.mean(floors_w2)),
        "latent_energy": energy_distance(sampled, reference),
        "latent_energy_floor": float(np.mean(floors_energy)),
    }


def _per_class(images: np.ndarray, labels: np.ndarray | None, k: int):
    """The first k images of each class (all classes in order), with their labels."""
    if labels is None:
        return images[: k * 8], None
    idx = np.concatenate([np.flatnonzero(labels == c)[:k] for c in np.unique(labels)])
    return images[idx], labels[idx]


def render_latent_figures(run: Run, out_dir) -> list:
    """An autoencoder run: reconstructions, latent scatter, loss.  A latent run: samples (a row
    per class), the reverse process in latent space decoded at each step (GIF and strip),
    reconstructions, the latent space of held-out images beside that of samples, the ceiling
    figure, a guidance sweep, loss."""
    from .. import viz
    from ..viz.latent import plot_ceiling, plot_latent_scatter, plot_reconstructions

    ae = _autoencoder(run)
    names = run.class_names or None
    held, held_labels = held_out_images(run)
    shown, shown_labels = _per_class(held, held_labels, PER_CLASS)
    recon = reconstruct(ae, shown)
    err = reconstruction_error(shown, recon)
    data = run.info.get("data", run.config.data.name)
    z_held = encode_images(ae, held)
    latent_shape = " x ".join(map(str, z_held.shape[1:])) if z_held.ndim > 2 else f"{z_held.shape[1]}-D flat"
    written = [
        plot_reconstructions(
            shown, recon, out_dir / "reconstructions.png", labels=shown_labels, class_names=names,
            title=f"{data}: held-out images through the autoencoder ({latent_shape} latent); "
            f"MSE {err['reconstruction_mse']:.4f}, PSNR {err['reconstruction_psnr']:.1f} dB on these {len(shown)}",
        )
    ]  # fmt: skip
    scatter = {"held-out images, encoded": (z_held, held_labels)}
    if run.is_latent:
        sc = run.config.sample
        K = max(run.num_classes, 1)
        n_grid = GRID_PER_CLASS * K if run.num_classes else 64
        labels = class_labels(run, n_grid)
        frames, how = reverse_animation(run, n_grid, IMAGE_ANIMATION_STEPS)
        guidance = f", guidance {sc.guidance:g}" if run.num_classes else ""
        z_samples = sample_points(run, n=len(held), label=held_labels if run.num_classes else None, decode=False)
        scatter[f"sampled by the latent model{guidance}"] = (z_samples, held_labels if run.num_classes else None)
        samples = sample_points(run, n=n_grid)
        title = f"{data}, latent diffusion ({latent_shape} latent): {default_words(run, n_grid)}".replace("; ", "\n")
        m = run.folder.read_metrics() or {}
        fd = lambda key: f", Frechet {m[key]:.2f}" if m.get(key) is not None else ""  # noqa: E731
        floor = f" (floor {m['frechet_floor']:.2f})" if m.get("frechet_floor") is not None else ""
        # One sample of each shown image's class, so the three panels share their rows (a small
        # held-out split, e.g. of an IDX file, can hold fewer than PER_CLASS images of a class).
        ceiling_samples = sample_points(run, n=len(shown), label=shown_labels) if run.num_classes else samples[: len(shown)]
        written += [
            viz.plot_image_grid(samples, out_dir / "samples.png", labels=labels, class_names=names, title=title),
            viz.save_grid_gif(frames, out_dir / "trajectory.gif", labels=labels, class_names=names,
                              title="Reverse process in latent space, each step decoded", note=how),
            viz.plot_image_progression(one_per_class(frames, labels), out_dir / "progression.png", max_images=K if run.num_classes else 8, note=how),
            plot_ceiling(
                {"held-out images": shown, f"autoencoder alone{fd('frechet_reconstruction')}": recon,
                 f"latent diffusion samples{fd('frechet')}": ceiling_samples},
                out_dir / "ceiling.png", labels=shown_labels, class_names=names,
                title=f"{data}: a latent model can only produce what the decoder produces{floor}",
            ),
        ]  # fmt: skip
        if run.num_classes:
            sweep = {g: sample_points(run, n=n_grid, guidance=g) for g in GUIDANCE_SWEEP}
            written.append(viz.plot_guidance_sweep(sweep, out_dir / "guidance.png", labels=labels, class_names=names))
    written.append(plot_latent_scatter(scatter, out_dir / "latent-space.png", class_names=names, title=f"{data}: latent space"))
    losses = run.folder.read_losses()
    if len(losses):
        written.append(viz.plot_loss(losses, out_dir / "loss.png"))
    return written
