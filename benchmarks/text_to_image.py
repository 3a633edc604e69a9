"""Prompt accuracy of a text-to-image run (recipe scenes-text): does a generated image show what
its prompt says?

Run (on a trained run; RUN defaults to runs/scenes-text):

    python benchmarks/text_to_image.py RUN [--n 200] [--guidance 1 3 5] [--classifier-steps 1500]

An attribute classifier (a small CNN with one head per attribute) is trained on fresh real
renders of the scenes (data/scenes.py, its own seed), and its accuracy on other real renders is
the ceiling of every number below.  Then prompts are written from attribute records with the
scenes' own templates and sampled at each guidance scale, and the classifier reads each image:

- one-object prompts on *seen* combinations (none of the recipe's text.held_out) and on the
  held-out *unseen* ones: the share whose shape, colour, size and position match the prompt;
- two-object prompts ("A left of B", "A above B", ...): the share whose layout (side by side or one
  above the other) and the colour and shape in each slot (left/top, right/bottom) match, all four
  together reported as "relation".

Beside them the Frechet distance between generated and real images in the classifier's
penultimate features (the one-object seen set), against its floor: two real sets of that size.
Writes a JSON line per guidance scale and, with --figure, the guidance sweep as a PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denoiselab.data.scenes import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, make_scenes, parse_combinations
from denoiselab.image_metrics import frechet_distance
from denoiselab.runs import load_run
from denoiselab.runs.plan import plan_sampling
from denoiselab.runs.sampling import sample

ONE = ("shape", "colour", "size", "position")
SLOTS = ("layout", "colour_a", "shape_a", "colour_b", "shape_b")  # a pair: side by side (0) or stacked (1), slot a = left/top
HEADS = {"shape": len(SHAPES), "colour": len(COLOURS), "size": len(SIZES), "position": len(POSITIONS),
         "layout": 2, "colour_a": len(COLOURS), "shape_a": len(SHAPES), "colour_b": len(COLOURS), "shape_b": len(SHAPES)}  # fmt: skip


def targets(at: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each head's answer per scene, -1 where it does not apply (one-object heads on a pair and
    the other way round).  A pair's slot a is the object on the left or at the top."""
    pair = at["relation"] >= 0
    first_in_a = np.isin(at["relation"], [RELATIONS.index("left of"), RELATIONS.index("above")])
    out = {k: np.where(pair, -1, at[k]) for k in ONE}
    out["layout"] = np.where(pair, np.isin(at["relation"], [RELATIONS.index("above"), RELATIONS.index("below")]).astype(int), -1)
    for attr in ("colour", "shape"):
        out[f"{attr}_a"] = np.where(pair, np.where(first_in_a, at[attr], at[attr + "2"]), -1)
        out[f"{attr}_b"] = np.where(pair, np.where(first_in_a, at[attr + "2"], at[attr]), -1)
    return out


class AttributeClassifier(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(), nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(), nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.SiLU(),
        )  # fmt: skip
        self.heads = nn.ModuleDict({k: nn.Linear(128, c) for k, c in HEADS.items()})

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        h = self.body(x)
        return {k: head(h) for k, head in self.heads.items()}


def train_classifier(steps: int, seed: int = 100) -> tuple[AttributeClassifier, dict]:
    """The classifier trained on 20000 real renders (half pairs), and its accuracy per head on 2000 others."""
    torch.manual_seed(seed)
    real = make_scenes(20000, seed=seed, pairs=0.5, held_out=())
    test = make_scenes(2000, seed=seed + 1, pairs=0.5, held_out=())
    y = {k: torch.as_tensor(v) for k, v in targets(real.attributes).items()}
    model = AttributeClassifier()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(real), (128,), generator=g)
        x = real.images[idx] + 0.02 * torch.randn(128, 3, 16, 16, generator=g)  # a little noise: generated pixels are not exact
        out = model(x)
        loss = sum(F.cross_entropy(out[k], y[k][idx], ignore_index=-1) for k in HEADS)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), accuracy(model, test.images, targets(test.attributes))


@torch.no_grad()
def accuracy(model, images: torch.Tensor, truth: dict[str, np.ndarray]) -> dict[str, float]:
    out = model(images)
    acc = {}
    for k in HEADS:
        keep = truth[k] >= 0
        if keep.any():
            acc[k] = float((out[k].argmax(1).numpy()[keep] == truth[k][keep]).mean())
    if "layout" in acc:  # a pair is right when its layout and both slots are
        keep = truth["layout"] >= 0
        hit = np.ones(int(keep.sum()), dtype=bool)
        for k in SLOTS:
            hit &= out[k].argmax(1).numpy()[keep] == truth[k][keep]
        acc["relation"] = float(hit.mean())
    return acc


def prompts(n: int, seed: int, held_out, *, unseen: bool = False, pairs: bool = False):
    """n prompts with their attribute records, written by the scenes' own caption templates."""
    scenes = make_scenes(n, seed=seed, pairs=1.0 if pairs else 0.0, held_out=held_out, unseen=unseen)
    return scenes.captions, scenes.attributes, scenes.images


def generate(run, captions, guidance: float, seed: int) -> torch.Tensor:
    tokenizer = run.tokenizer()
    plan = plan_sampling(run, n=len(captions), seed=seed, guidance=guidance)
    drawn = sample(run, dataclasses.replace(plan, labels=tokenizer.encode_batch(captions)))
    return torch.as_tensor(drawn.x, dtype=torch.float32)


@torch.no_grad()
def frechet(model, a: torch.Tensor, b: torch.Tensor) -> float:
    fa, fb = model.features(a).double().numpy(), model.features(b).double().numpy()
    return float(frechet_distance(fa, fb))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/scenes-text", help="the run, or - to train the classifier only")
    ap.add_argument("--n", type=int, default=200, help="prompts per set (one image each)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    ap.add_argument("--classifier-steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--figure", help="write the guidance sweep as this PNG")
    ap.add_argument("--classifier", help="keep the trained attribute classifier in this file (trained only when it is missing)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.classifier and Path(args.classifier).is_file():
        saved = torch.load(args.classifier)
        classifier, ceiling = AttributeClassifier(), saved["ceiling"]
        classifier.load_state_dict(saved["state"])
        classifier.eval()
    else:
        classifier, ceiling = train_classifier(args.classifier_steps)
        if args.classifier:
            torch.save({"state": classifier.state_dict(), "ceiling": ceiling}, args.classifier)
    print(json.dumps({"ceiling": ceiling, "classifier_seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    if args.run == "-":  # the classifier only
        return 0
    run = load_run(args.run, device="cpu")
    held_out = run.config.text.held_out
    parse_combinations(held_out)
    sets = {
        "seen": prompts(args.n, args.seed, held_out),
        "unseen": prompts(args.n, args.seed + 1, held_out, unseen=True),
        "pairs": prompts(args.n, args.seed + 2, held_out, pairs=True),
    }
    real_b = make_scenes(args.n, seed=args.seed + 3, pairs=0.0, held_out=held_out).images
    floor = frechet(classifier, sets["seen"][2], real_b)
    rows = []
    for g in args.guidance:
        row = {"guidance": g}
        for name, (captions, at, real) in sets.items():
            x = generate(run, captions, g, args.seed)
            acc = accuracy(classifier, x, targets(at))
            keys = ("relation",) if name == "pairs" else ONE
            row[name] = {k: round(acc[k], 3) for k in keys}
            row[name + "_of_ceiling"] = {k: round(acc[k] / ceiling[k], 3) for k in keys}
            if name == "seen":
                row["frechet"] = round(frechet(classifier, x, real_b), 3)
                row["frechet_floor"] = round(floor, 3)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.figure:
        plot(rows, ceiling, Path(args.figure), args)
    return 0


def plot(rows, ceiling, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    gs = [r["guidance"] for r in rows]
    for ax, name, title in zip(axes, ("seen", "unseen", "pairs"), ("one object, seen combinations", "one object, held-out combinations", "two objects: relation")):
        for k in rows[0][name]:
            ax.plot(gs, [r[name][k] for r in rows], marker="o", label=f"{k} (ceiling {ceiling[k]:.2f})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("classifier-free guidance scale s")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("share of images matching the prompt")
    fig.suptitle(f"Prompt accuracy of {args.run} ({args.n} prompts per set, read by an attribute classifier trained on real renders)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
