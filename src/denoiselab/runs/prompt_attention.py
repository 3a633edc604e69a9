"""The cross-attention maps of a prompt over the steps of one sampling (Rombach et al. 2022,
Sec. 3.3; models/attention_maps.py): at each sampler step, for every sample and every token of
its prompt, the probability that a pixel attends to that token.

The maps of a step are those of the step's first network call, the one at the step's own x_t
(a second-order sampler calls the network again at an intermediate point).  Under
classifier-free guidance the guided call holds the conditional and the unconditional rows; only
the conditional rows have tokens, so only they give maps (attention_maps.CrossAttentionRecorder.maps).
"""

from __future__ import annotations

import torch

from ..models.attention_maps import CrossAttentionRecorder


class AttentionOverSteps:
    """``sample(run, plan, model_wrapper=capture.wrap, on_step=...)`` with ``capture.step_done``
    called after each step record; then ``capture.steps[i]`` is step i's maps, (n, L, H, W) for
    the prompt's L token positions, or None (the empty prompt has no token, so no map)."""

    def __init__(self, image_size: tuple[int, int]):
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.steps: list[torch.Tensor | None] = []
        self.resolution: tuple[int, int] | None = None  # where the maps were taken
        self.layers = 0  # how many cross-attention layers attend there
        self._calls: list[torch.Tensor | None] = []
        self._step_start = 0

    def wrap(self, model_fn):
        """``model_fn`` with every call's maps recorded; its outputs are the plain ones, bit for bit."""

        def recorded(x, t, y=None):
            with CrossAttentionRecorder() as recorder:
                out = model_fn(x, t, y)
            maps = recorder.maps(self.image_size)
            if maps is not None and self.resolution is None:
                found = recorder.resolutions()
                self.resolution = max(found, key=lambda s: s[0] * s[1])
                self.layers = found[self.resolution]
            self._calls.append(maps)
            return out

        return recorded

    def step_done(self, record=None) -> None:
        """A step ended: its maps are those of its first network call."""
        self.steps.append(self._calls[self._step_start] if len(self._calls) > self._step_start else None)
        self._step_start = len(self._calls)
