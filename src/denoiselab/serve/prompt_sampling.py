"""A prompt in a sampling request (the ``prompt`` field): a text-to-image run denoises every
sample from that caption, with classifier-free guidance on it at the request's ``guidance``
(runs/prompts.py), and with frames each step carries the cross-attention maps of every token of
the prompt (runs/prompt_attention.py, Rombach et al. 2022, Sec. 3.3), which the Reverse view
draws for the word the user clicks (static/reverse-prompt.js).

The reply's ``prompt`` block says how the network read the prompt: one entry per token position
(an unknown word is the unknown token, and named in ``unknown``), and where the maps come from
(the finest resolution with cross-attention, the layers averaged there).  A frame's
``attention`` is an image panel (n, L, H, W): sample, token, pixel.
"""

from __future__ import annotations

from fastapi import HTTPException

from ..runs.prompt_attention import AttentionOverSteps
from ..runs.prompts import describe_prompts, prompt_plan, prompt_tokens
from ..samplers import JUMP_SAMPLERS
from .limits import MAX_ATTENTION_VALUES
from .payloads import frame_panel


class PromptSampling:
    """One request's prompt: its plan (the prompt's ids for every sample), its tokens, and the
    capture of its maps over the steps."""

    def __init__(self, run, plan, prompt: str, frames: bool):
        self.prompt = prompt
        self.plan = prompt_plan(run, plan, prompt)
        self.tokens = prompt_tokens(run, prompt)
        self.pooled_only = run.config.text.conditioning == "pooled"
        image_size = tuple(run.data_shape[-2:])
        # A jump sampler calls another network than the one whose layers are recorded.
        self.capture = AttentionOverSteps(image_size) if frames and self.tokens and plan.sampler not in JUMP_SAMPLERS else None

    def wrap(self, model_fn):
        return model_fn if self.capture is None else self.capture.wrap(model_fn)

    def step_done(self, record=None) -> None:
        if self.capture is not None:
            self.capture.step_done(record)

    def add_to_reply(self, reply: dict) -> dict:
        """The reply with the prompt block, the prompt's description and each frame's maps."""
        reply["description"] = describe_prompts(self.plan, [self.prompt])
        reply["guidance_used"] = self.plan.guidance
        block = {
            "text": self.prompt,
            "tokens": self.tokens,
            "unknown": list(dict.fromkeys(t["word"] for t in self.tokens if not t["known"])),
            "guidance": self.plan.guidance,
        }
        capture = self.capture
        if capture is not None and capture.resolution is not None and "frames" in reply:
            h, w = capture.resolution
            H, W = capture.image_size
            block["attention"] = {
                "resolution": [h, w],
                "layers": capture.layers,
                "note": (
                    f"the attention probabilities of the {capture.layers} cross-attention layer{'s' if capture.layers > 1 else ''} "
                    f"at {h} × {w}, averaged over their heads and layers and upsampled to {H} × {W}: for each pixel, the share of "
                    "its attention that goes to the word, at the step's first network call (the conditional half under guidance)"
                ),
            }
            for frame, maps in zip(reply["frames"], capture.steps):
                if maps is not None:  # the prompt's own positions; the padding after them draws no attention
                    frame["attention"] = frame_panel(maps[:, : len(self.tokens)])
        elif self.tokens:
            block["no_maps"] = self._why_no_maps("frames" in reply)
        reply["prompt"] = block
        return reply


    def _why_no_maps(self, frames: bool) -> str:
        if self.pooled_only:
            return "this run reads the prompt only as one pooled vector in the time embedding (text.conditioning = pooled): it has no cross-attention, so no word has a map"
        if self.plan.guidance == 0:
            return "at guidance 0 the model runs unconditional and reads no word, so no word has a map"
        if not frames:
            return "maps come with the frames (frames: true)"
        return "this sampler jumps with another network than the one whose attention is recorded"


def prepare(run, name: str, req, plan) -> PromptSampling | None:
    """The request's prompt, or None without one; 422 naming ``prompt`` for a run trained without
    captions, or for maps over the reply's bound."""
    if req.prompt is None:
        return None
    if not run.is_text:
        raise HTTPException(
            422,
            f"prompt: run {name!r} was trained without captions, so it takes no prompt; choose a text-to-image run "
            "(recipe scenes-text) or leave the prompt out",
        )
    prompted = PromptSampling(run, plan, req.prompt, req.frames)
    if prompted.capture is not None:
        values = plan.n * plan.steps * len(prompted.tokens) * prompted.capture.image_size[0] * prompted.capture.image_size[1]
        if values > MAX_ATTENTION_VALUES:
            raise HTTPException(
                422,
                f"n: n x steps x words x H x W of the attention maps must be at most {MAX_ATTENTION_VALUES} with frames, got "
                f"{plan.n} x {plan.steps} x {len(prompted.tokens)} x {prompted.capture.image_size[0]} x {prompted.capture.image_size[1]} = {values}; "
                "ask for fewer images, steps or words",
            )
    return prompted
