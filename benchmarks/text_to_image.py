"""Prompt accuracy of a text-to-image run (recipe scenes-text): does a generated image show what
its prompt says?

Run (on a trained run; RUN defaults to runs/scenes-text):

    python benchmarks/text_to_image.py RUN [--n 200] [--guidance 1 3 5] [--classifier-steps 1500] [--diagnose]

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

With --diagnose, where the two-object prompts go wrong, as three more JSON lines and a table:

- "data": how many of the run's training scenes hold two objects, and how many distinct
  two-object scenes (layout, each slot's colour and shape) they make among how many there are;
- "text": does the run's text encoder encode which attribute goes with which object?  The swap
  accuracy (text/contrastive.py: two-object images scoring their own caption above the caption
  with the objects' colours, shapes or both swapped; chance 0.5; the encoder as its contrastive
  stage left it, with that stage's image encoder), and a probe of the slot
  (left/top or right/bottom) of each colour and shape word from the token vectors the U-Net's
  cross-attention reads (linear, and a small MLP: the slot is an exclusive-or of the word's phrase
  and the relation's direction), beside the same probes on the encoder's input (word and position
  embeddings: no context, so they cannot know whether "red" ends up on the left);
- per guidance scale, the two-object images' errors: layout wrong, each slot's colour and shape
  wrong, swaps (both objects right in the other's slot, or only their colours or shapes
  exchanged), leaks (both slots given one colour or one shape where the prompt has two), and the
  number of objects counted in the pixels (connected lit regions) not 2; "right" among the
  prompts that name the left/top object first and among those that name it second; with the same
  readings of real renders of the same prompts, the ceiling of each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from denoiselab.data.images import split_indices
from denoiselab.data.scenes import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, attribute_words, make_scenes, parse_combinations
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


# --- --diagnose: where the two-object prompts go wrong ----------------------------------------
def count_objects(images: torch.Tensor, lit: float = -0.2, least: int = 2) -> np.ndarray:
    """(N,) the number of objects in each image: connected regions (4-neighbours) of pixels whose
    brightest channel is above ``lit`` (the background is -1), of ``least`` pixels or more."""
    from scipy import ndimage

    out = []
    for mask in (images.amax(1) > lit).numpy():
        labels, n = ndimage.label(mask)
        sizes = np.bincount(labels.ravel())[1:]
        out.append(int((sizes >= least).sum()))
    return np.asarray(out)


@torch.no_grad()
def read_pairs(model, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The classifier's reading of each two-object image, slot by slot, and the objects counted."""
    out = model(images)
    read = {k: out[k].argmax(1).numpy() for k in SLOTS}
    read["objects"] = count_objects(images)
    return read


_SLOT_A_FIRST = re.compile(r"\b(left of|above|over)\b")  # "X left of Y", "X above Y": the first-named object is in slot a


def named_first_in_a(captions: list[str]) -> np.ndarray:
    """(N,) bool: the two-object caption names the left/top object first ("a red circle left of
    a blue square"), not the other ("a blue square right of a red circle")."""
    return np.asarray([bool(_SLOT_A_FIRST.search(c)) for c in captions])


def relation_breakdown(read: dict[str, np.ndarray], truth: dict[str, np.ndarray], captions: list[str] | None = None) -> dict[str, float]:
    """Shares of two-object images (not exclusive, but "right"): what the reading gets wrong
    against the prompt's truth (``targets``).  A swap is counted where the prompt's two values
    differ and the reading has them the other way round; a leak where the prompt has two values
    and the reading gives both slots one.  With the ``captions``, "right" also among the prompts
    that name the left/top object first and among those that name it second (a model that puts
    the first-named object on the left/top whatever the relation says gets the first all right
    and the second all wrong)."""
    keep = truth["layout"] >= 0
    r = {k: v[keep] for k, v in read.items()}
    t = {k: v[keep] for k, v in truth.items()}
    right = {k: r[k] == t[k] for k in SLOTS}
    out = {"right": np.logical_and.reduce([right[k] for k in SLOTS]), "layout wrong": ~right["layout"]}
    for k in SLOTS[1:]:
        out[k.replace("_a", " a").replace("_b", " b") + " wrong"] = ~right[k]
    wrong = sum((~right[k]).astype(int) for k in SLOTS[1:])
    out["one slot attribute wrong"] = right["layout"] & (wrong == 1)
    swapped = {}
    for attr in ("colour", "shape"):
        a, b = f"{attr}_a", f"{attr}_b"
        differ = t[a] != t[b]
        swapped[attr] = differ & (r[a] == t[b]) & (r[b] == t[a])
        out[f"{attr} leak"] = differ & (r[a] == r[b])
    objects_differ = (t["colour_a"] != t["colour_b"]) | (t["shape_a"] != t["shape_b"])
    both = objects_differ & (r["colour_a"] == t["colour_b"]) & (r["shape_a"] == t["shape_b"]) & (r["colour_b"] == t["colour_a"]) & (r["shape_b"] == t["shape_a"])
    out["objects swapped"] = both
    out["colours only swapped"] = swapped["colour"] & right["shape_a"] & right["shape_b"]
    out["shapes only swapped"] = swapped["shape"] & right["colour_a"] & right["colour_b"]
    out["objects counted not 2"] = r["objects"] != 2
    shares = {k: round(float(v.mean()), 3) for k, v in out.items()}
    if captions is not None:
        first = named_first_in_a([c for c, k in zip(captions, keep) if k])
        shares["right, left/top object named first"] = round(float(out["right"][first].mean()), 3)
        shares["right, left/top object named second"] = round(float(out["right"][~first].mean()), 3)
    return shares


def data_diagnosis(cfg) -> dict:
    """The run's training scenes: how many hold two objects, how many distinct two-object scenes
    (layout and each slot's colour and shape) they make, of how many the recipe can draw."""
    scenes = make_scenes(cfg.data.n, cfg.data.size or 16, cfg.data.seed, pairs=cfg.text.pairs, held_out=cfg.text.held_out)
    train, _ = split_indices(len(scenes), None, cfg.data.held_out, cfg.data.seed)
    t = {k: v[train] for k, v in targets(scenes.attributes).items()}
    pair = t["layout"] >= 0
    combos, counts = np.unique(np.stack([t[k][pair] for k in SLOTS], 1), axis=0, return_counts=True)
    possible = make_scenes(20000, cfg.data.size or 16, 12345, pairs=1.0, held_out=cfg.text.held_out)
    every = np.unique(np.stack([v for k, v in targets(possible.attributes).items() if k in SLOTS], 1), axis=0)
    return {
        "training scenes": int(len(train)), "two-object scenes": int(pair.sum()), "distinct two-object scenes": int(len(combos)),
        "drawable two-object scenes": int(len(every)), "mean scenes per combination": round(float(counts.mean()), 2),
        "combinations seen once": int((counts == 1).sum()),
    }  # fmt: skip


def word_slots(ids: np.ndarray, at: dict[str, np.ndarray], table: dict[str, int], vocab: list[str], attr: str):
    """For each two-object caption, the positions of its two ``attr`` words and their objects'
    slots (0: left/top, 1: right/bottom), where the two values differ (else the word names both)."""
    truth = targets(at)
    value = np.vectorize(lambda i: table.get(vocab[i], -1))(ids)
    rows, positions, slots = [], [], []
    for i in range(len(ids)):
        where = np.flatnonzero(value[i] >= 0)
        a, b = truth[f"{attr}_a"][i], truth[f"{attr}_b"][i]
        if len(where) != 2 or a == b:
            continue
        for p in where:
            rows.append(i)
            positions.append(p)
            slots.append(0 if value[i, p] == a else 1)
    return np.asarray(rows), np.asarray(positions), np.asarray(slots)


def mlp_probe(x_train, y_train, x_test, y_test, steps: int = 600, hidden: int = 64) -> float:
    """Test accuracy of a one-hidden-layer MLP (Adam) on standardised features: whether the slot is
    in the vector at all, read any way (the slot is an exclusive-or of which phrase the word is in and
    which way the relation points, which a linear probe cannot read unless the encoder has formed it)."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(a.shape[1], hidden), nn.SiLU(), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(net(a)[:, 0], y_train.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((net(b)[:, 0] > 0).long() == y_test).float().mean())


def linear_probe(x_train, y_train, x_test, y_test, steps: int = 300) -> float:
    """Test accuracy of a logistic regression (L-BFGS, a little weight decay) on standardised features."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mu) / sd, (x_test - mu) / sd
    torch.manual_seed(0)
    w = torch.zeros(a.shape[1] + 1, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")
    ya = y_train.float()

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(a @ w[:-1] + w[-1], ya) + 1e-3 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((((b @ w[:-1] + w[-1]) > 0).long() == y_test).float().mean())


@torch.no_grad()
def text_diagnosis(run, n: int, seed: int) -> dict:
    """The run's text encoder on two-object captions: swap accuracy (with the image encoder it was
    pretrained against) and the linear probe of each colour and shape word's slot."""
    from safetensors.torch import load_file

    from denoiselab.text.contrastive import ContrastivePair
    from denoiselab.training.text_stage import score_swaps

    cfg, tokenizer = run.config, run.tokenizer()
    pair_model = ContrastivePair(type(run.model.encoder)(tokenizer.size, cfg.text.length, cfg.text.width, cfg.text.layers, cfg.text.heads), 3, embed=cfg.text.width)
    pair_model.load_state_dict(load_file(str(run.folder.text_stage().weights)))
    pair_model.eval()
    test = make_scenes(n, seed=seed, pairs=1.0, held_out=cfg.text.held_out)
    out = {"swap accuracy": {k: round(v["accuracy"], 3) for k, v in score_swaps(pair_model, tokenizer, test.images.numpy(), test.captions, "cpu").items()}}
    train = make_scenes(2000, seed=seed + 10, pairs=1.0, held_out=cfg.text.held_out)
    encoder = run.model.encoder.eval()  # what the U-Net reads (the stage's own unless text.train_encoder)

    def features(ids, contextual: bool):
        ids = torch.as_tensor(ids)
        if contextual:
            return encoder(ids).tokens
        return encoder.token_embed(ids.clamp(min=0)) + encoder.position

    for attr in ("colour", "shape"):
        table = attribute_words(attr)
        split = []
        for s in (train, test):
            ids = tokenizer.encode_batch(s.captions)
            rows, positions, slots = word_slots(ids, s.attributes, table, tokenizer.vocab, attr)
            split.append((ids, rows, positions, torch.as_tensor(slots)))
        for contextual, name in ((True, "token vectors"), (False, "input embeddings")):
            (ia, ra, pa, ya), (ib, rb, pb, yb) = split
            xa, xb = features(ia, contextual)[ra, pa], features(ib, contextual)[rb, pb]
            with torch.enable_grad():
                out[f"{attr} word slot from {name}, linear"] = round(linear_probe(xa, ya, xb, yb), 3)
                out[f"{attr} word slot from {name}, MLP"] = round(mlp_probe(xa, ya, xb, yb), 3)
    return out


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
    ap.add_argument("--diagnose", action="store_true", help="also where the two-object prompts go wrong: the data, the text encoder, the images' errors")
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
    if args.diagnose:
        diagnosis = {"data": data_diagnosis(run.config), "text": text_diagnosis(run, args.n, args.seed + 2)}
        pair_captions, at, real = sets["pairs"]
        diagnosis["real renders"] = relation_breakdown(read_pairs(classifier, real), targets(at), pair_captions)
        print(json.dumps(diagnosis), flush=True)
    for g in args.guidance:
        row = {"guidance": g}
        for name, (captions, at, real) in sets.items():
            x = generate(run, captions, g, args.seed)
            acc = accuracy(classifier, x, targets(at))
            keys = ("relation",) if name == "pairs" else ONE
            row[name] = {k: round(acc[k], 3) for k in keys}
            row[name + "_of_ceiling"] = {k: round(acc[k] / ceiling[k], 3) for k in keys}
            if name == "pairs" and args.diagnose:
                row["pairs_breakdown"] = relation_breakdown(read_pairs(classifier, x), targets(at), captions)
            if name == "seen":
                row["frechet"] = round(frechet(classifier, x, real_b), 3)
                row["frechet_floor"] = round(floor, 3)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.figure:
        plot(rows, ceiling, Path(args.figure), args)
    if args.diagnose:
        print_breakdown(rows, diagnosis, args.n)
    return 0


def print_breakdown(rows, diagnosis, n: int) -> None:
    """The two-object errors as a markdown table: one column per guidance scale, the real renders last."""
    keys = list(diagnosis["real renders"])
    head = [f"s = {r['guidance']:g}" for r in rows] + ["real renders"]
    print(f"\nTwo-object prompts ({n}): share of images\n")
    print("| | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{v:.3f}" for v in [r["pairs_breakdown"][k] for r in rows] + [diagnosis["real renders"][k]]) + " |")
    print()
    for part in ("data", "text"):
        print(f"{part}: " + "; ".join(f"{k} {v}" for k, v in diagnosis[part].items()))


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
