"""The figures of README's "Gradient guidance" section.

    python examples/gradient_guidance_figures.py --out docs/img                    # points (exact mixture), seconds
    python examples/gradient_guidance_figures.py --out docs/img --digits RUN_DIR   # + inpainting and classifier-guided digits

Points: the exact denoiser of oracles.labelled_mixture steered to a class (the exact classifier),
into a region (loss guidance) and to a fixed coordinate (DPS and replacement), each beside exact
draws of the conditional.  Digits: an image run (trained with train.label_dropout = 1, so the
model is unconditional) with its classifier (denoiselab train-classifier RUN_DIR); it also
prints the accuracy of classifier-guided digits at each scale.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from denoiselab.gradient_guidance import classifier_guidance, loss_guidance, observation_loss, paste_observed, replacement
from denoiselab.oracles import labelled_mixture
from denoiselab.regions import parse_region
from denoiselab.samplers import SAMPLERS, Denoiser, time_grid
from denoiselab.schedules import make_schedule
from denoiselab.viz.guidance import PointPanel, plot_classifier_scales, plot_guided_points, plot_inpainting


def points_figure(out: Path, n: int = 2000, steps: int = 50) -> Path:
    mix, schedule = labelled_mixture(), make_schedule("linear", 1000)
    denoiser = mix.denoiser(schedule)

    def draw(model):
        gen = torch.Generator().manual_seed(0)
        x_T = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        return SAMPLERS["dpm++2m"](Denoiser(model, schedule), x_T, time_grid(schedule, steps, "logsnr"), generator=gen)

    data = mix.sample(n, torch.Generator().manual_seed(1)).numpy()
    region = parse_region("x2 > 1", 2)
    truncated = mix.sample(20 * n, torch.Generator().manual_seed(2))
    truncated = truncated[region.contains(truncated)][:n].numpy()
    a = 0.0
    mask, values = torch.tensor([True, False]), torch.tensor([a, 0.0], dtype=torch.float64)
    exact_cond = mix.condition({0: a})
    grid = torch.linspace(-3.5, 3.5, 400, dtype=torch.float64)
    density = (grid.numpy(), exact_cond.log_prob(grid[:, None]).exp().numpy())
    panels = [
        PointPanel(
            "class 1: exact classifier, s = 1",
            draw(classifier_guidance(denoiser, mix.classifier(schedule), 1.0, schedule, "eps", label=1)).numpy(),
            reference=mix.class_conditional(1).sample(n, torch.Generator().manual_seed(3)).numpy(), data=data,
        ),
        PointPanel(
            "region x2 > 1: loss guidance, scale 10",
            draw(loss_guidance(denoiser, lambda x0, t: region.loss(x0), 10.0, schedule, "eps")).numpy(),
            reference=truncated, data=data, region=lambda p: region.contains(torch.as_tensor(p)).numpy(),
        ),
        PointPanel(
            f"x1 = {a:g} observed: DPS, s = 3",
            paste_observed(draw(loss_guidance(denoiser, observation_loss(mask, values, 1.0), 3.0, schedule, "eps")), mask, values).numpy(),
            observed={0: a}, reference_density=density,
        ),
        PointPanel(
            f"x1 = {a:g} observed: replacement (RePaint)",
            paste_observed(draw(replacement(denoiser, mask, values, schedule, "eps", generator=torch.Generator().manual_seed(4))), mask, values).numpy(),
            observed={0: a}, reference_density=density,
        ),
    ]  # fmt: skip
    title = "Exact mixture denoiser steered at sampling time (orange) beside the exact conditional (blue); dpm++2m, 50 steps"
    return plot_guided_points(panels, out / "guidance-points.png", title=title, limits=np.array([[-3.0, 3.0], [-3.0, 3.0]]))


def digits_figures(run_dir: Path, out: Path) -> list[Path]:
    from denoiselab.gradient_guidance import GuidanceCounts
    from denoiselab.runs import load_run
    from denoiselab.runs.guided import GuidanceRequest, inpaint, parse_mask, sample_guided

    run = load_run(run_dir)
    held = np.load(run_dir / "held_out.npy")
    h, w = run.sample_shape[1:]
    picks, masks, specs = [0, 7, 21], [], ["left", "top", f"box:{w // 4},{h // 4},{3 * w // 4},{3 * h // 4}"]
    images, completions, labels = [], [], []
    for image, spec in zip(held[picks], specs):
        mask = parse_mask(spec, h, w)
        for method in ("replace", "dps"):
            images.append(image)
            masks.append(mask.numpy())
            completions.append(inpaint(run, image, mask, method=method, n=6, seed=1))
            labels.append(f"{spec}\n{method}")
    title = "Inpainting digits: replacement (RePaint-style) and DPS (scale 3), dpm++2m, 20 steps"
    paths = [plot_inpainting(np.stack(images), np.stack(masks), np.stack(completions), out / "inpainting-digits.png", row_labels=labels, title=title)]
    # Scale 0 is the unconditional model (classifier_guidance calls the model without a label).
    by_scale = {s: sample_guided(run, GuidanceRequest(classifier_scale=s), GuidanceCounts(), n=10, label=np.arange(10), seed=0)
                for s in (0.0, 1.0, 3.0, 10.0)}  # fmt: skip
    # Accuracy of guided samples by the run's image-metrics classifier (trained apart from the
    # guiding one, on the same training split): 20 samples per digit and scale.
    from denoiselab.image_metrics import predict
    from denoiselab.runs import image_classifier

    judge, labels = image_classifier(run), np.repeat(np.arange(10), 20)
    for s in by_scale:
        counts = GuidanceCounts()
        x = sample_guided(run, GuidanceRequest(classifier_scale=s), counts, n=len(labels), label=labels, seed=0)
        accuracy = float((predict(judge, torch.as_tensor(x)).numpy() == labels).mean())
        print(f"classifier scale {s:g}: accuracy {accuracy:.3f} of {len(labels)} guided digits ({counts.summary()})")
    paths.append(plot_classifier_scales(by_scale, out / "classifier-guided-digits.png",
                                        title="Classifier guidance of an unconditional digits model: column k is guided to digit k"))  # fmt: skip
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--digits", metavar="RUN_DIR", help="an unconditional digits run with a classifier")
    args = ap.parse_args()
    out = Path(args.out)
    print(f"wrote {points_figure(out)}")
    if args.digits:
        for path in digits_figures(Path(args.digits), out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
