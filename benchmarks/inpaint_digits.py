"""Inpainting the digits against the held-out originals: twisted SMC against replacement, DPS and universal guidance.

For each of the first M held-out images of a trained digits run, the pixels outside the mask are
hidden and C completions drawn by each method (runs/guided.inpaint_draw, what `denoiselab
inpaint` runs).  Scored against the held-out originals:

* **class kept**: the share of completions that the image-metrics classifier (image_metrics.py's
  FeatureNet, trained on the run's training split) reads as the class of the held-out original
  whose pixels they keep; the same classifier's accuracy on the originals is the ceiling, and
  unguided samples (nothing known) score about chance;
* **Frechet distance** of the completions against the held-out split in that classifier's
  features, beside its floor (the training split against the held-out split at the same n),
  as for `denoiselab evaluate`.

The model runs unconditional (classifier-free guidance 0: the unconditional branch that label
dropout trained), so the known pixels alone decide the class.  Methods: replace, dps (scales 1,
3, 10), universal (scale 3) on the run's sampler (dpm++2m, 20 steps), and twisted SMC on
ancestral DDPM steps at K particles per completion (20 steps) and at K = 16 on 4 x the steps
(`inpaint --method smc`'s default).  "evals" is model evaluations per completion ("+bwd":
backward passes through the model); seconds are wall-clock for all completions, one thread.

    python benchmarks/inpaint_digits.py --run runs/digits
    python benchmarks/inpaint_digits.py --run runs/digits --images 20 --particles 4   # quick
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from denoiselab.gradient_guidance import GuidanceCounts


def methods(particles: list[int], default_smc: bool) -> list[tuple[str, str, float | None, int | None, int | None]]:
    """(label, method, scale, particles, steps): steps None is the run's own."""
    rows = [("replace", "replace", None, None, None)]
    rows += [(f"dps s = {s:g}", "dps", s, None, None) for s in (1.0, 3.0, 10.0)]
    rows += [("universal s = 3", "universal", 3.0, None, None)]
    rows += [(f"smc K = {k}", "smc", None, k, None) for k in particles]
    if default_smc:
        rows.append(("smc K = 16, 4 x steps (inpaint's default)", "smc", None, 16, -1))
    return rows


def complete(run, images: np.ndarray, mask: torch.Tensor, method: str, scale, particles, steps, copies: int, guidance: float):
    """``copies`` completions of each image (data units), evaluations and backward passes per
    completion, seconds."""
    from denoiselab.runs import plan_from_options
    from denoiselab.runs.guided import inpaint_draw
    from denoiselab.runs.guided_smc import default_steps

    counts, out = GuidanceCounts(), []
    sampler = "ddpm" if method == "smc" else None
    if steps == -1:
        steps = default_steps(run)
    start = time.perf_counter()
    for i, image in enumerate(images):
        plan = plan_from_options(run, n=copies, seed=i, sampler=sampler, steps=steps, guidance=guidance)
        out.append(inpaint_draw(run, image, mask, method, scale, counts, plan, particles).x)
    seconds = time.perf_counter() - start
    return np.concatenate(out), counts.evaluations // len(images), counts.model_backward // len(images), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a trained digits run (denoiselab train --config digits)")
    parser.add_argument("--images", type=int, default=60, help="held-out images completed (the first M)")
    parser.add_argument("--copies", type=int, default=2, help="completions of each image")
    parser.add_argument("--mask", default="top", help="the known pixels, as inpaint --mask (left, top, box:X0,Y0,X1,Y1)")
    parser.add_argument("--particles", default="4,16", help="smc particles per completion on the run's steps, comma-separated")
    parser.add_argument("--no-default-smc", action="store_true", help="leave out K = 16 on 4 x the steps")
    parser.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance of the model (0: unconditional)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from denoiselab.image_metrics import classifier_accuracy, image_metrics
    from denoiselab.runs import load_run, sample_points
    from denoiselab.runs.evaluation import held_out_images, image_classifier
    from denoiselab.runs.guided import parse_mask

    run = load_run(args.run)
    held, held_labels = held_out_images(run)
    images, labels = held[: args.images], np.repeat(held_labels[: args.images], args.copies)
    _, height, width = run.sample_shape
    mask = parse_mask(args.mask, height, width)
    classifier = image_classifier(run)
    ceiling = classifier_accuracy(classifier, torch.as_tensor(images), torch.as_tensor(held_labels[: args.images]))

    def scores(x: np.ndarray) -> dict:
        return image_metrics(classifier, torch.as_tensor(x), torch.as_tensor(labels), torch.as_tensor(held), torch.as_tensor(run.data), seed=0)

    start = time.perf_counter()
    n = len(labels)
    lines = [
        f"torch {torch.__version__}, {platform.machine()}, one thread; run {args.run} ({run.config.train.steps} training steps); "
        f"{args.images} held-out images x {args.copies} completions, mask {args.mask} (known), classifier-free guidance {args.guidance:g}",
        "",
        f"the classifier on the {args.images} originals: {ceiling:.2f}",
        "",
        "| method | class kept | Frechet (floor) | Frechet / floor | evals (+bwd) | s |",
        "|---|---|---|---|---|---|",
    ]
    t = time.perf_counter()
    free = sample_points(run, n=n, seed=0, guidance=args.guidance)
    v = scores(free)
    lines.append(f"| unguided samples (nothing known) | {v['accuracy']:.2f} | {v['frechet']:.2f} ({v['frechet_floor']:.2f}) | {v['frechet_ratio']:.2f} | {run.config.sample.steps} (+0) | {time.perf_counter() - t:.1f} |")
    print(lines[-1], flush=True)
    for label, method, scale, particles, steps in methods([int(k) for k in args.particles.split(",") if k], not args.no_default_smc):
        x, evals, backward, seconds = complete(run, images, mask, method, scale, particles, steps, args.copies, args.guidance)
        v = scores(x)
        lines.append(f"| {label} | {v['accuracy']:.2f} | {v['frechet']:.2f} ({v['frechet_floor']:.2f}) | {v['frechet_ratio']:.2f} | {evals} (+{backward}) | {seconds:.1f} |")
        print(lines[-1], flush=True)
    lines.append(f"total {time.perf_counter() - start:.0f} s")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
