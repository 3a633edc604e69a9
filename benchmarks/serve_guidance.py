"""What gradient guidance costs the playground's Reverse view: one image run's reverse process
through the real API (a TestClient over the app), unguided and with each guidance the page offers.

    python benchmarks/serve_guidance.py RUNS_DIR RUN [--label 3] [--image 3] [--repeats 3]

RUN must be an image run with a classifier (denoiselab train-classifier RUN).  Every request:
ddpm, 50 steps, 16 images, seed 0, classifier-free scale 0, every frame returned; the inpainting
mask is the right half unknown of held-out image --image.  Prints the median of the server's own
sampling seconds over --repeats requests, the reply's size, and the reply's counts: model
evaluations, backward passes through the model, classifier gradients, the plain evaluations made
only to draw the guidance panel (replacement), and the largest change pasting the known pixels
made (how far the sampler itself landed from them).  All cases run in one invocation, so the
ratios to "none" are the comparison; the absolute seconds depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from fastapi.testclient import TestClient

from denoiselab.serve.app import create_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs_dir")
    ap.add_argument("run")
    ap.add_argument("--label", type=int, default=3)
    ap.add_argument("--image", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    client = TestClient(create_app(args.runs_dir, job_threads=1, finish_runs=False))
    url = f"/api/runs/{args.run}/sample"
    width = client.get(f"/api/runs/{args.run}").json()["shape"][-1]
    unknown = [[width // 2, 0, width, width]]
    base = {"sampler": "ddpm", "steps": 50, "n": 16, "seed": 0, "guidance": 0.0}
    cases = {
        "none": {},
        "classifier s=3": {"classifier": {"label": args.label, "scale": 3.0}},
        "inpaint replace": {"inpaint": {"image": args.image, "boxes": unknown, "method": "replace"}},
        "inpaint dps": {"inpaint": {"image": args.image, "boxes": unknown, "method": "dps"}},
    }
    client.post(url, json={**base, "steps": 2})  # load the run once, outside the timings
    print("| guidance | sampling s (median) | x none | reply kB | evaluations | backward | classifier grads | display evals | paste change |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = None
    for name, block in cases.items():
        body = {**base, **({"gradient_guidance": block} if block else {})}
        seconds, size, reply = [], 0, {}
        for _ in range(args.repeats):
            r = client.post(url, json=body)
            r.raise_for_status()
            reply, size = r.json(), len(r.content)
            seconds.append(reply["seconds"])
        s = statistics.median(seconds)
        first = first or s
        g = reply.get("gradient_guidance", {})
        cells = [g.get(k, "") for k in ("evaluations", "backward_passes", "other_gradients", "display_evaluations")]
        paste = g.get("paste_max_change", "")
        print(f"| {name} | {s:.2f} | {s / first:.2f} | {size / 1e3:.0f} | " + " | ".join(str(c) for c in cells) + f" | {paste} |")


if __name__ == "__main__":
    main()
