"""The reverse process of a trained run: /api/runs/<name>/sample, for the Reverse and Playground
views.

Reverse processes are the real samplers, run through ``runs.sample_points``; with ``frames``
every step's record comes back (x_t, predicted noise, predicted x0, next sample), as point panels
for point runs and image grids (N, C, H, W) for image runs.  A latent run (diffusion in an
autoencoder's latent space) answers as an image run of its decoded shape: x_t, x0-hat and the
next sample are decoded by the run's own autoencoder (Run.to_data_units), and the predicted
noise, which has no image of its own, is shown as the latent it is (latent_noise_image).  Sampling keeps all its state in the
request (its own torch.Generator, sampler locals), so concurrent requests never share mutable
state; the loaded model is read-only.  At most MAX_CONCURRENT_SAMPLING requests compute at once,
and each builds its reply before it lets the next one in (gate.py); one that cannot get a slot
within SAMPLING_WAIT_S gets 503 with Retry-After, having held no worker thread while it waited.
Frames travel as compact float16 panels (payloads.frame_panel).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from ..runs import SamplingError, class_labels, guided_model_fn, resolve_label, sample_points
from ..samplers import time_grid
from ..samplers.stepping import evaluate
from .gate import give_memory_back
from .grid_choice import choose_tuned_grid
from .guided_sampling import prepare as prepare_guidance
from .limits import (
    DEFAULT_SAMPLE_IMAGES,
    MAX_FRAME_IMAGE_VALUES,
    MAX_FRAME_POINTS,
    MAX_FRAME_VALUES,
    MAX_SAMPLE_IMAGES,
    MAX_STEPS,
)
from .payloads import finite_or_none, frame_panel, json_response, panel
from .request_models import RunName, SampleRequest
from .state import ServeState


def sampling_router(state: ServeState) -> APIRouter:
    router = APIRouter()
    runs, gate = state.runs, state.sampling_gate

    @router.post("/api/runs/{name}/sample")
    async def sample(name: RunName, req: SampleRequest):
        """Run the reverse process; with ``frames`` every step's x_t, eps-hat, x0-hat and x_next.

        Point runs answer with point panels, image runs with image grids (N, C, H, W); both are
        capped so that no request can ask for an unbounded response.
        """
        async with gate.slot():  # 503 + Retry-After when busy; the reply is built inside the slot
            return await run_in_threadpool(sample_reply_and_trim, name, req)

    def sample_reply_and_trim(name: str, req: SampleRequest):
        try:
            return sample_reply(name, req)
        finally:
            if gate.in_use <= 1:  # the last request of a burst hands the freed heap back
                give_memory_back()

    def sample_reply(name: str, req: SampleRequest):
        runs.existing(name)  # 400 / 404 before anything is loaded
        run = runs.load(name)
        if run.is_autoencoder:
            raise HTTPException(422, f"run: {name!r} is an autoencoder (it encodes and decodes images and samples nothing); sample a latent run trained on it")
        if run.is_latent and req.gradient_guidance is not None:
            raise HTTPException(422, f"gradient_guidance: not available for {name!r}, a latent run (its guides work on pixels, the sampler steps in the latent space)")
        is_image = run.is_image
        # What the page draws: a latent run's samples decoded to images, pixel and point runs as sampled.
        shown = (lambda x: torch.from_numpy(run.to_data_units(x))) if run.is_latent else (lambda x: x)
        noise_shown = latent_noise_image if run.is_latent else (lambda x: x)
        sc = run.config.sample
        T = run.schedule.T
        steps = sc.steps if req.steps is None else req.steps
        if req.n is not None:
            n = req.n
        elif req.labels is not None:
            n = len(req.labels)
        else:
            n = min(sc.n, DEFAULT_SAMPLE_IMAGES if is_image else 500)
        seed = sc.seed if req.seed is None else req.seed
        sampler = req.sampler or sc.sampler
        if steps > T:
            raise HTTPException(422, f"steps: must be at most the run's T = {T}, got {steps}")
        steps = min(steps, MAX_STEPS)  # a run's own default can exceed the page's cap
        if is_image:
            shape = run.data_shape  # a latent run's frames are its decoded images
            size = int(np.prod(shape))
            if n > MAX_SAMPLE_IMAGES:
                raise HTTPException(422, f"n: at most {MAX_SAMPLE_IMAGES} images per request for an image run, got {n}")
            if req.frames and n * steps * size > MAX_FRAME_IMAGE_VALUES:
                dims = " x ".join(str(d) for d in shape)
                raise HTTPException(
                    422,
                    f"n: n x steps x C x H x W must be at most {MAX_FRAME_IMAGE_VALUES} with frames, got "
                    f"{n} x {steps} x {dims} = {n * steps * size}; ask for fewer images or steps",
                )
        else:
            if req.frames and n > MAX_FRAME_POINTS:
                raise HTTPException(422, f"n: at most {MAX_FRAME_POINTS} points when every step is returned (frames), got {n}")
            if req.frames and n * steps > MAX_FRAME_VALUES:
                raise HTTPException(422, f"n: n x steps must be at most {MAX_FRAME_VALUES} with frames, got {n} x {steps}")
        options: dict = {}
        if req.spacing is not None:
            options["spacing"] = req.spacing
        if req.eta is not None:
            if sampler != "ddim":
                raise HTTPException(422, f"eta: applies to the ddim sampler only (this request uses {sampler})")
            options["eta"] = req.eta
        num_classes = run.num_classes
        names = run.class_names
        try:
            label = None if req.label is None else resolve_label(run, req.label)
        except SamplingError as exc:
            raise HTTPException(422, str(exc)) from None
        if req.labels is not None:
            if req.label is not None:
                raise HTTPException(422, "labels: give either label (one class for all) or labels (one per sample), not both")
            if len(req.labels) != n:
                raise HTTPException(422, f"labels: expected one class per sample ({n}), got {len(req.labels)}")
        if req.label is not None or req.labels is not None or req.guidance is not None:
            if num_classes == 0:
                field = "label" if req.label is not None else "labels" if req.labels is not None else "guidance"
                raise HTTPException(422, f"{field}: run {name!r} has no classes (trained without labels)")
            if req.labels is not None and max(req.labels) >= num_classes:
                raise HTTPException(422, f"labels: each must be in 0..{num_classes - 1} for this run, got {max(req.labels)}")
            if label is not None:
                options["label"] = label
            if req.labels is not None:
                options["label"] = np.asarray(req.labels, dtype=np.int64)
            if req.guidance is not None:
                options["guidance"] = req.guidance
        tuned = choose_tuned_grid(run, name, sampler, steps, req)
        if tuned is not None:
            options["grid"] = tuned
        records: list = []
        on_step = records.append if req.frames else _keep_last(records)
        guided = None
        if req.gradient_guidance is not None:
            guided = prepare_guidance(run, name, req.gradient_guidance, seed)
            if guided.label is not None:
                if req.label is not None or req.labels is not None:
                    raise HTTPException(422, "gradient_guidance.classifier.label: the class to guide to goes here, not also in label or labels")
                options["label"] = label = guided.label  # every sample's class, as the reply names it
            # A gradient costs a backward pass per evaluation: such requests are held to the
            # frame bounds above even without frames.
            too_much = n * steps * int(np.prod(run.data_shape)) > MAX_FRAME_IMAGE_VALUES if is_image else n * steps > MAX_FRAME_VALUES
            if guided.uses_gradients and too_much:
                raise HTTPException(422, "n: n x steps (x the image size) is over the frame bound, which gradient guidance is held to with or without frames")
            options["model_wrapper"] = guided.model_wrapper(run, record=req.frames)
            on_step = _and_then(on_step, guided.step_done)
        try:
            t0 = time.perf_counter()
            # Gradient guidance differentiates inside the sampler: no inference tensors then.
            with torch.no_grad() if guided is not None else torch.inference_mode():
                _, x_T = sample_points(
                    run,
                    sampler=sampler,
                    steps=steps,
                    n=n,
                    seed=seed,
                    return_noise=True,
                    on_step=on_step,
                    **options,
                )
            seconds = time.perf_counter() - t0
        except ValueError as exc:  # runs.SamplingError and the samplers' own checks
            raise HTTPException(422, " ".join(str(exc).split())) from None
        schedule = run.schedule
        if req.frames:
            times = [r.t for r in records] + [0.0]
        elif tuned is not None:
            times = tuned.tolist()
        else:
            times = time_grid(schedule, steps, options.get("spacing", sc.spacing)).tolist()
        alphas, sigmas = schedule.alpha_at(times).tolist(), schedule.sigma_at(times).tolist()
        snr_db = (20.0 * schedule.log_snr_at(times) / math.log(10.0)).tolist()  # 10 log10(alpha^2 / sigma^2)
        final = records[-1].x_next
        if guided is not None and guided.known is not None:
            # The known values are observed, not sampled: pasted into the final samples as every
            # conditional draw returns them (gradient_guidance.paste_observed).
            final, paste_change = guided.paste(final)
        clip = run.info.get("x0_bound") if sc.clip_x0 else None  # the box runs.sample_points clamps x0-hat to
        out = {
            "run": name,
            "kind": "image" if is_image else "points",
            "sampler": sampler,
            "steps": steps,
            "n": n,
            "seed": seed,
            "spacing": "tuned" if tuned is not None else options.get("spacing", sc.spacing),
            "tuned_grid": tuned is not None,
            "label": label,
            "label_name": names[label] if label is not None and label < len(names) else None,
            "guidance": req.guidance,
            "T": T,
            "prediction": run.config.model.prediction,
            "explanation": explain_model(run.config),
            "grid": [grid_position(t, T) for t in times],
            "grid_times": [round(t, 6) for t in times],
            "grid_alphas": alphas,
            "grid_sigmas": sigmas,
            "grid_snr_db": [finite_or_none(v, 3) for v in snr_db],
            "clip_x0": clip,
            "seconds": round(seconds, 3),
            "units": "pixels: -1 black, 1 white (x_t and the predicted noise have unit variance)" if is_image else "normalised (the units the model sees)",
            "x_T": panel(shown(x_T)),
            "samples": panel(shown(final)),
        }
        if run.is_latent:
            out["latent"] = latent_summary(run)
            out["units"] = "pixels: -1 black, 1 white; x_t, x̂0 and the next sample are latents decoded by the autoencoder, the predicted noise is the latent noise (unit variance)"
            out["explanation"] += " " + out["latent"]["note"]
        if guided is not None:
            out["gradient_guidance"] = guided.summary()
            if guided.known is not None:
                mask, values = guided.known
                out["gradient_guidance"]["paste_max_change"] = round(paste_change, 6)
                if is_image:
                    out["gradient_guidance"]["known_mask"] = frame_panel(mask[None, :1].float())
                    out["gradient_guidance"]["known_image"] = frame_panel(values[None])
                else:
                    out["gradient_guidance"]["known_values"] = {f"x{i + 1}": float(v) for i, v in enumerate(guided.known_data) if bool(mask[i])}
        if num_classes:
            if req.labels is not None:
                sample_labels = req.labels
            else:
                sample_labels = class_labels(run, n, label).tolist()
            out["class_names"] = names
            out["labels"] = [names[int(c)] for c in sample_labels]  # the class of each sample, by name
            out["guidance_used"] = float(sc.guidance if req.guidance is None else req.guidance)
        if req.frames:
            labels_used = None
            if num_classes:
                labels_used = np.asarray(req.labels, dtype=np.int64) if req.labels is not None else class_labels(run, n, label)
            recorded = [None if g is None else g[1:] for g in guided.steps] if guided is not None else None
            network = _network_predictions(run, records, clip, req.guidance, labels_used, recorded, shown, noise_shown)
            out["frames"] = [
                {
                    "index": r.index,
                    "k": grid_position(r.t, T),
                    "k_next": grid_position(r.t_next, T),
                    "t": round(r.t, 6),
                    "t_next": round(r.t_next, 6),
                    "snr_db": finite_or_none(snr_db[i], 3),
                    "snr_db_next": finite_or_none(snr_db[i + 1], 3),
                    "x_t": frame_panel(shown(r.x_t)),
                    "eps": frame_panel(noise_shown(r.eps)),
                    "x0": frame_panel(shown(r.x0)),
                    "x_next": frame_panel(shown(final if i == len(records) - 1 else r.x_next)),
                    **network[i],
                    **({"guidance_term": frame_panel(guided.steps[i][0])} if guided is not None and guided.steps[i] is not None else {}),
                }
                for i, r in enumerate(records)
            ]
        return json_response(out)

    return router


def _network_predictions(run, records: list, clip: float | None, guidance: float | None, labels, recorded: list | None = None, shown=None, noise_shown=None) -> list[dict]:
    """Per frame: the share of x0-hat the sampler clamped to the box [-clip, clip], and where it
    clamped anything, the network's own x0-hat and eps-hat before clamping ("x0_net", "eps_net").

    The sampler's record holds x0-hat after the clamp and eps-hat recomputed from it (stepping.
    evaluate), which is what it stepped with but not what the network said; so the steps that
    were clamped are evaluated once more without the clamp, with the same model function
    (guidance included), input and time.  Steps without clamping cost nothing extra.  With
    gradient guidance ``recorded`` holds each step's guided (x0-hat, eps-hat) before the clamp,
    recorded as the sampler called the model (guided_sampling.py): nothing is evaluated again.
    ``shown`` / ``noise_shown`` turn x0-hat / eps-hat into what the page draws (a latent run's
    decoded image and latent noise image); as they are by default.
    """
    shown = shown or (lambda x: x)
    noise_shown = noise_shown or (lambda x: x)
    out: list[dict] = []
    model_fn = None
    for r in records:
        if clip is None:
            out.append({"clipped": 0.0})
            continue
        # A point (or pixel) counts as clamped when any coordinate sits on the box's edge.
        on_edge = r.x0.abs() >= clip * (1 - 1e-6)
        share = float((on_edge.flatten(1).any(dim=1) if r.x0.ndim == 2 else on_edge).float().mean())
        frame: dict = {"clipped": round(share, 4)}
        if share > 0 and recorded is not None:
            if recorded[len(out)] is not None:
                x0_net, eps_net = recorded[len(out)]
                frame.update(x0_net=frame_panel(shown(x0_net)), eps_net=frame_panel(noise_shown(eps_net)))
        elif share > 0:
            if model_fn is None:
                model_fn = guided_model_fn(run, guidance) if run.num_classes else run.model_fn()
            y = None if labels is None else torch.as_tensor(labels, device=r.x_t.device)
            with torch.inference_mode():
                raw = evaluate(model_fn, r.x_t, run.schedule, r.t, y=y, prediction=run.config.model.prediction)
            frame.update(x0_net=frame_panel(shown(raw.x0)), eps_net=frame_panel(noise_shown(raw.eps)))
        out.append(frame)
    return out


def latent_noise_image(eps: torch.Tensor) -> torch.Tensor:
    """A batch of latent noise (N, C, h, w) or (N, D) as one grey image per sample: the C
    channels side by side, (N, 1, h, C w), or the D entries in a row, (N, 1, 1, D).  The noise
    lives in the latent space, where no decoder gives it a picture (decoding noise is not the
    noise of the image), so the page shows the latent's own numbers."""
    eps = eps.detach().float()
    if eps.ndim == 2:
        return eps[:, None, None, :]
    n, c, h, w = eps.shape
    return eps.permute(0, 2, 1, 3).reshape(n, 1, h, c * w)


def latent_summary(run) -> dict:
    """What a latent run's reply adds: the two shapes and one sentence for the page."""
    latent, image = list(run.sample_shape), list(run.data_shape)
    layout = f"{latent[0]} channels of {latent[1]} x {latent[2]}, side by side" if len(latent) == 3 else f"{latent[0]} numbers in a row"
    note = (
        f"This is a latent run: the sampler steps in the autoencoder's latent space ({' x '.join(map(str, latent))}), and "
        f"x_t, x̂₀ and the next sample are shown decoded to {' x '.join(map(str, image))} images; the predicted noise ε̂ is "
        f"the latent noise itself ({layout}), which has no image of its own."
    )
    return {"shape": latent, "image_shape": image, "note": note}


def grid_position(t: float, T: int) -> int | float:
    """t * T: the chain's integer step k where t is on its grid, else the fractional position."""
    pos = t * T
    return round(pos) if abs(pos - round(pos)) <= 1e-9 else round(pos, 3)


def explain_model(cfg) -> str:
    """One paragraph for the page: what this run's network predicts, and what the sampler does with it."""
    if cfg.schedule.kind == "flow":
        ot = (
            " Its training paired each batch's data and noise by optimal transport (OT-CFM), so paths cross less and stay straighter."
            if cfg.train.coupling == "ot" else ""
        )  # fmt: skip
        return (
            "Flow matching: the path from data to noise is the straight line x_t = (1 − t) x₀ + t ε, and the network "
            "predicts its velocity u = ε − x₀. Sampling integrates dx/dt = u from t = 1 down to 0; where the model is "
            "right and the paths do not cross, each point moves along a straight line." + ot
        )
    what = {
        "eps": "the noise ε in x_t = α x₀ + σ ε; the clean estimate is x̂₀ = (x_t − σ ε̂) / α",
        "x0": "the clean data x₀ directly; the noise estimate is ε̂ = (x_t − α x̂₀) / σ",
        "v": "v = α ε − σ x₀ (Salimans & Ho), from which both x̂₀ and ε̂ follow",
        "velocity": "the velocity u = ε − x₀, from which both x̂₀ and ε̂ follow",
    }[cfg.model.prediction]
    return (
        f"Diffusion ({cfg.schedule.kind} schedule, variance preserving): the network predicts {what}. Each step "
        "moves x_t towards the prediction's x̂₀ and re-noises it to the next, lower noise level; the paths curve "
        "because the estimate x̂₀ changes as the noise comes off."
    )


def _and_then(first, then):
    def both(record):
        first(record)
        then()

    return both


def _keep_last(records: list):
    """on_step that keeps only the last record (the final sample), not every frame."""

    def keep(record):
        records[:] = [record]

    return keep
