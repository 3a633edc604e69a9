"""Do a trained text-to-image run's cross-attention maps lie where the prompt puts the object?

Run (on a trained run of the scenes-text recipe; RUN defaults to runs/scenes-text):

    python benchmarks/cross_attention_maps.py RUN [--n 8] [--steps 20] [--guidance 3]

For every shape and colour, the prompt "a large COLOUR SHAPE on the left" and the same "on the
right" are sampled (n images each, the run's sampler) while the U-Net's cross-attention
probabilities are captured (runs/prompt_attention.py: the finest resolution with cross-attention,
heads and layers averaged, upsampled to the image).  For the shape's word and the colour's word
it reports the share of the map's mass in the left half of the image, averaged over the images
and over the last half of the steps (where the object has formed), for the left prompts and the
right prompts apart.  A map that follows the object gives more than 1/2 for "left" and less for
"right"; a map that ignores position gives 1/2 for both.  Writes one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from denoiselab.data.scenes import COLOURS, SHAPES
from denoiselab.runs import load_run
from denoiselab.runs.plan import plan_sampling
from denoiselab.runs.prompt_attention import AttentionOverSteps
from denoiselab.runs.prompts import prompt_plan, prompt_tokens
from denoiselab.runs.sampling import sample


def left_share(maps: torch.Tensor, position: int) -> float:
    """The mass of token ``position``'s maps (n, L, H, W) in the left half, over their whole mass."""
    m = maps[:, position]
    half = m.shape[-1] // 2
    return float(m[..., :half].sum() / m.sum())


def measure(run, plan, prompt: str, words: tuple[str, ...]) -> dict[str, float]:
    capture = AttentionOverSteps(tuple(run.data_shape[-2:]))
    with torch.inference_mode():
        sample(run, prompt_plan(run, plan, prompt), model_wrapper=capture.wrap, on_step=capture.step_done)
    tokens = [t["word"] for t in prompt_tokens(run, prompt)]
    late = capture.steps[len(capture.steps) // 2 :]
    return {w: float(np.mean([left_share(m, tokens.index(w)) for m in late])) for w in words}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/scenes-text")
    ap.add_argument("--n", type=int, default=8, help="images per prompt")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # small batches on a shared machine: more threads only contend
    run = load_run(args.run, device="cpu")
    plan = plan_sampling(run, n=args.n, steps=args.steps, seed=args.seed, guidance=args.guidance, tuned=False)
    t0 = time.perf_counter()
    shares: dict[str, dict[str, list[float]]] = {side: {"shape": [], "colour": []} for side in ("left", "right")}
    for shape in SHAPES:
        for colour in COLOURS:
            for side in ("left", "right"):
                got = measure(run, plan, f"a large {colour} {shape} on the {side}", (shape, colour))
                shares[side]["shape"].append(got[shape])
                shares[side]["colour"].append(got[colour])
    out = {
        "run": args.run,
        "n": args.n,
        "steps": args.steps,
        "guidance": args.guidance,
        "prompts": 2 * len(SHAPES) * len(COLOURS),
        "left_half_share": {side: {w: round(float(np.mean(v)), 3) for w, v in words.items()} for side, words in shares.items()},
        "left_prompts_with_more_on_the_left": {
            w: f"{sum(s > 0.5 for s in shares['left'][w])} of {len(shares['left'][w])}" for w in ("shape", "colour")
        },
        "right_prompts_with_more_on_the_right": {
            w: f"{sum(s < 0.5 for s in shares['right'][w])} of {len(shares['right'][w])}" for w in ("shape", "colour")
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
