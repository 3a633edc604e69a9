"""Golden outputs: what denoiselab computes on fixed seeds, recorded so that a change of the code's
structure can be shown to change no number.

Everything is reached through the command line and the run folder's file formats, the two faces
that a restructuring keeps: every sampler on every named grid on a tiny trained point run, flow run
and image run, a tuned grid and a sample on it, classifier-free guidance, classifier guidance, an
observation and a region, a latent run's decoded sample, an evaluation, and the first losses of
every kind of training (denoiser on points, flow, images, the autoencoder, the latent denoiser, the
noise-conditional classifier).

    python tests/golden.py --record      # writes tests/data/golden.npz and golden.json

tests/test_golden.py recomputes them and compares.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import re
import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
ARRAYS, TEXTS = DATA / "golden.npz", DATA / "golden.json"

ONE_THREAD = ["train.threads=1", "train.checkpoint_every=10"]
POINTS = ["train.steps=40", "model.hidden=16", "sample.n=200", "sample.steps=5", *ONE_THREAD]
IMAGES = ["train.steps=20", "model.hidden=8", "model.time_dim=16", "sample.n=40", "sample.steps=4", *ONE_THREAD]
AUTOENCODER = ["autoencoder.hidden=8", "autoencoder.steps=30"]
GRIDS = ("trailing", "leading", "linspace", "logsnr", "karras", "time-uniform")
SAMPLERS = ("ddpm", "ddim", "dpm++2m", "dpm++3m", "dpm++2s", "unipc", "ipndm", "euler", "heun", "edm-heun")
FIRST_LOSSES = 10


def fingerprint() -> dict:
    """Where the numbers were computed: bit-identity is promised on the same platform only."""
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "machine": platform.machine(), "cpu": torch.backends.cpu.get_cpu_capability()}


def _cli(*args: str) -> tuple[int, str]:
    from denoiselab import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in args])
    if rc != 0:
        raise AssertionError(f"denoiselab {' '.join(map(str, args))} exited {rc}: {err.getvalue()[-500:]}")
    return rc, out.getvalue()


def _set(overrides: list[str]) -> list[str]:
    return [a for item in overrides for a in ("--set", item)]


def _train(root: Path, name: str, recipe: str, overrides: list[str]) -> Path:
    out = root / name
    _cli("train", "--config", recipe, *_set(overrides), "--out", out, "--no-progress", "--no-figures")
    return out


def _losses(path: Path) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.get_tensor("losses").numpy()[:FIRST_LOSSES]


def _sample(root: Path, run: Path, *args: str) -> tuple[np.ndarray, str]:
    out = root / "sample.npy"
    _, text = _cli("sample", run, *args, "--out", out)
    return np.load(out), text


def compute(root: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every golden array and printed line, computed in the (empty) folder ``root``."""
    import torch

    torch.set_num_threads(1)
    root = Path(root)
    arrays: dict[str, np.ndarray] = {}
    texts: dict[str, str] = {}

    def record(key: str, run: Path, *args: str) -> None:
        arrays[key], line = _sample(root, run, *args)
        texts[key] = line.replace(str(root), "ROOT").strip()

    runs = {
        "points": _train(root, "points", "quick", POINTS),
        "flow": _train(root, "flow", "spiral-flow", POINTS),
        "images": _train(root, "images", "digits", IMAGES),
        "shapes": _train(root, "shapes", "shapes", POINTS),
        "latent": _train(root, "latent", "digits-latent", [*AUTOENCODER, *IMAGES]),
    }
    for kind, run in runs.items():
        arrays[f"losses/{kind}"] = _losses(run / "checkpoint.safetensors")
    arrays["losses/autoencoder"] = _losses(runs["latent"] / "autoencoder" / "checkpoint.safetensors")

    for kind in ("points", "flow", "images"):
        n = "4" if kind == "images" else "16"
        for sampler in SAMPLERS:
            for grid in GRIDS:
                record(f"{kind}/{sampler}/{grid}", runs[kind], "--sampler", sampler, "--grid", grid, "--steps", "4", "-n", n, "--seed", "3")
    record("points/ddim-eta", runs["points"], "--sampler", "ddim", "--eta", "0.5", "--steps", "6", "-n", "16")
    record("points/ddpm-large", runs["points"], "--sampler", "ddpm", "--variance", "large", "--steps", "6", "-n", "16")
    record("points/karras-rho", runs["points"], "--sampler", "heun", "--grid", "karras", "--rho", "3", "--steps", "4", "-n", "16")
    record("points/given-grid", runs["points"], "--sampler", "unipc", "--grid", "1,0.7,0.4,0.1,0", "-n", "16")
    record("points/defaults", runs["points"])

    _, text = _cli("tune-steps", runs["points"], "--sampler", "dpm++2m", "--nfe", "3", "-n", "200", "--max-calls", "60")
    tuned = json.loads((runs["points"] / "tuned_grids.json").read_text())
    arrays["tuned/grid"] = np.asarray(tuned["grids"]["dpm++2m/3"]["grid"])
    record("tuned/sample", runs["points"], "--sampler", "dpm++2m", "--steps", "3", "-n", "16")

    record("cfg/images", runs["images"], "--label", "3", "--guidance", "2", "-n", "4")
    record("cfg/shapes-mixed", runs["shapes"], "--guidance", "1.5", "-n", "16")
    _cli("train-classifier", runs["shapes"], "--steps", "30", "--batch-size", "32", "--hidden", "16", "--threads", "1", "--no-progress")
    arrays["losses/classifier"] = _losses(runs["shapes"] / "classifier-checkpoint.safetensors")
    record("guided/classifier", runs["shapes"], "--label", "1", "--classifier-scale", "2", "-n", "16", "--steps", "5")
    record("guided/observe-dps", runs["points"], "--observe", "x1=0.5", "--method", "dps", "-n", "16", "--steps", "5")
    record("guided/observe-replace", runs["points"], "--observe", "x1=0.5", "--method", "replace", "-n", "16", "--steps", "5")
    record("guided/region", runs["points"], "--region", "abs(x1) < 0.3", "-n", "16", "--steps", "5")
    record("latent/decoded", runs["latent"], "--label", "7", "-n", "4", "--steps", "4")

    _, line = _cli("evaluate", runs["points"], "--json", "-n", "200", "--repeats", "2", "--steps", "5")
    metrics = json.loads(line)
    for key in ("w2", "energy"):
        arrays[f"evaluate/{key}"] = np.asarray(metrics[key], dtype=np.float64)
    return arrays, texts


def record() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        arrays, texts = compute(Path(tmp))
    DATA.mkdir(exist_ok=True)
    np.savez_compressed(ARRAYS, **arrays)
    TEXTS.write_text(json.dumps({"fingerprint": fingerprint(), "printed": texts}, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(arrays)} arrays and {len(texts)} printed lines into {DATA}")


def normalise_line(line: str) -> str:
    """A printed line without the parts that change from one run to the next (seconds) or from
    one machine to the next (a draw's statement of its reproducibility names the thread count)."""
    return re.sub(r"\d+(\.\d+)? s\b", "S s", re.sub(r"\n?reproducible: [^\n]*", "", line))


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/golden.py --record")
    record()
