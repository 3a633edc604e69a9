"""The reply to a sampling request: what was sampled (the plan, in the words every face uses), the
grid's time points with alpha, sigma and SNR, x_T and the samples, and with ``frames`` every
step's x_t, predicted noise, predicted x0 and next sample (routes_sampling.py draws them).

Frames where the sampler clamped x0-hat (sample.clip_x0) also carry the network's own prediction
before the clamp (``_network_predictions``).  A latent run answers as an image run of its decoded
shape: x_t, x0-hat and the next sample are decoded by the run's own autoencoder
(Run.to_data_units), and the predicted noise, which has no image of its own, is shown as the
latent it is (``latent_noise_image``).  Frames travel as compact float16 panels
(payloads.frame_panel).
"""

from __future__ import annotations

import math

import torch

from ..choices import CONSISTENCY_OBJECTIVES, INTERVAL_OBJECTIVES
from ..runs import SamplingPlan, describe_draw, guided_model_fn
from ..runs.plan import drawn_classes
from ..runs.jumps import what_it_learned
from ..runs.sampling import denoiser
from .payloads import finite_or_none, frame_panel, panel


def build_reply(run, name: str, req, plan: SamplingPlan, x_T: torch.Tensor, records: list, seconds: float, guided) -> dict:
    """The reply to ``req`` on run ``name``, sampled as ``plan`` says: ``x_T``, the sampler's
    step ``records`` (every step with frames, else the last), the ``seconds`` it took and the
    gradient guidance ``guided`` (guided_sampling.GuidedSampling, or None)."""
    is_image, T, schedule = run.is_image, run.schedule.T, run.schedule
    shown, noise_shown = _what_is_shown(run)
    times = plan.times.tolist()
    snr_db = (20.0 * schedule.half_log_snr_at(times) / math.log(10.0)).tolist()  # 10 log10(alpha^2 / sigma^2)
    final = records[-1].x_next
    if guided is not None and guided.known is not None:
        # The known values are observed, not sampled: pasted into the final samples as every
        # conditional draw returns them (gradient_guidance.paste_observed).
        final, paste_change = guided.paste(final)
    names = run.class_names
    out = {
        "run": name,
        "kind": "image" if is_image else "points",
        "sampler": plan.sampler,
        "steps": plan.steps,
        "n": plan.n,
        "seed": plan.seed,
        "spacing": plan.grid,
        "tuned_grid": plan.tuned,
        "description": describe_draw(run, plan, guided.request if guided is not None else None),
        "label": plan.label,
        "label_name": names[plan.label] if plan.label is not None and plan.label < len(names) else None,
        "guidance": req.guidance,
        "T": T,
        "prediction": run.config.model.prediction,
        "explanation": explain_model(run.config),
        "grid": [grid_position(t, T) for t in times],
        "grid_times": [round(t, 6) for t in times],
        "grid_alphas": schedule.alpha_at(times).tolist(),
        "grid_sigmas": schedule.sigma_at(times).tolist(),
        "grid_snr_db": [finite_or_none(v, 3) for v in snr_db],
        "clip_x0": plan.clip_x0,
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
        out["gradient_guidance"] = _guidance_summary(guided, is_image, paste_change if guided.known is not None else None)
    if run.num_classes:
        out["class_names"] = names
        drawn = drawn_classes(plan, guided.request if guided is not None else None)
        # The class of each sample, by name; None where the model ran without a class (guidance 0).
        out["labels"] = None if drawn is None else [names[int(c)] for c in drawn]
        # Classifier guidance steers the unconditional model: no classifier-free scale applies.
        out["guidance_used"] = None if guided is not None and guided.request.steers_classes else plan.guidance
    if req.frames:
        out["frames"] = _frames(run, plan, records, final, snr_db, guided)
    return out


def _what_is_shown(run):
    """(shown, noise_shown): what the page draws of a sample and of predicted noise: a latent
    run's samples decoded to images and its noise as the latent's own numbers; pixel and point
    runs as sampled."""
    if run.is_latent:
        return (lambda x: torch.from_numpy(run.to_data_units(x))), latent_noise_image
    return (lambda x: x), (lambda x: x)


def _guidance_summary(guided, is_image: bool, paste_change: float | None) -> dict:
    out = guided.summary()
    if guided.known is not None:
        mask, values = guided.known
        out["paste_max_change"] = round(paste_change, 6)
        if is_image:
            out["known_mask"] = frame_panel(mask[None, :1].float())
            out["known_image"] = frame_panel(values[None])
        else:
            out["known_values"] = {f"x{i + 1}": float(v) for i, v in enumerate(guided.known_data) if bool(mask[i])}
    return out


def _frames(run, plan: SamplingPlan, records: list, final: torch.Tensor, snr_db: list, guided) -> list[dict]:
    """Every step's panels; the last step's next sample is the final one (known values pasted)."""
    T = run.schedule.T
    shown, noise_shown = _what_is_shown(run)
    recorded = [None if g is None else g[1:] for g in guided.steps] if guided is not None else None
    network = _network_predictions(run, plan, records, recorded, shown, noise_shown)
    return [
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


def _network_predictions(run, plan: SamplingPlan, records: list, recorded: list | None = None, shown=None, noise_shown=None) -> list[dict]:
    """Per frame: the share of x0-hat the sampler clamped to the box [-clip, clip] (plan.clip_x0),
    and where it clamped anything, the network's own x0-hat and eps-hat before clamping
    ("x0_net", "eps_net").

    The sampler's record holds x0-hat after the clamp and eps-hat recomputed from it (Denoiser
    with clip_x0), which is what it stepped with but not what the network said; so the steps that
    were clamped are evaluated once more without the clamp, with the same model function
    (guidance included), input and time.  Steps without clamping cost nothing extra.  With
    gradient guidance ``recorded`` holds each step's guided (x0-hat, eps-hat) before the clamp,
    recorded as the sampler called the model (guided_sampling.py): nothing is evaluated again.
    ``shown`` / ``noise_shown`` turn x0-hat / eps-hat into what the page draws (a latent run's
    decoded image and latent noise image); as they are by default.
    """
    shown = shown or (lambda x: x)
    noise_shown = noise_shown or (lambda x: x)
    clip = plan.clip_x0
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
                model_fn = guided_model_fn(run, plan.guidance)
            with torch.inference_mode():
                raw = denoiser(run, plan, model_fn, clip=False)(r.x_t, r.t)
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
    if cfg.train.objective in INTERVAL_OBJECTIVES + CONSISTENCY_OBJECTIVES:  # a network trained to jump
        return what_it_learned(cfg)
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
