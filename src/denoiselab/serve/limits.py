"""The API's bounds and fixed choices: the caps on every request, the data sets and schedules the
page offers, and the recipes its Train view and first use train with.

Every size a request can ask for is capped here, so no request can ask for unbounded memory.  An
image response holds 4 panels x steps x n x C x H x W numbers; ``MAX_FRAME_IMAGE_VALUES`` bounds
n x steps x C x H x W.
"""

from __future__ import annotations

import re

import numpy as np

from ..data import GENERATORS
from ..data import images as image_data
from ..schedules import SCHEDULE_KINDS

# --- caps (every request is bounded by these) --------------------------------------------------
MAX_T = 2000  # schedule length in the forward and schedules views
MAX_POINTS = 4000  # points in one request (forward view, samples without frames)
MAX_FRAME_POINTS = 1000  # points per panel when every reverse step is returned
DEFAULT_JUMP_POINTS = 48  # the jump view's starting points: few enough that each jump's segment can be followed
MAX_JUMP_IMAGES = 16  # the jump view's images of an image run: one strip each for 1, 2 and 4 jumps and the path's end
MAX_STEPS = 250  # sampler steps in one request
MAX_FRAME_VALUES = 200_000  # n * steps: bounds a reverse response to about 4 panels x 200k points
MAX_IMAGES = 16  # images in one forward request
MAX_SAMPLE_IMAGES = 64  # images in one sampling request of an image run
MAX_FRAME_IMAGE_VALUES = 500_000  # n x steps x C x H x W with frames: 4 panels make <= 2M numbers
# A prompt's cross-attention maps with frames (prompt_sampling.py): n x steps x words x H x W,
# as many numbers as the 4 panels of the largest reply.
MAX_ATTENTION_VALUES = 2_000_000
MAX_PROMPT_CHARS = 300  # a prompt's length (the tokenizer reads at most text.length words of it)
TEXT_EXAMPLES = 8  # held-out captions sent with a text run's details (examples for the prompt box)
DEFAULT_SAMPLE_IMAGES = 16  # an image run's default n on the page (a 4 x 4 grid)
IMAGE_PREVIEW = 16  # training images sent with an image run's details (the playground's x0)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 64
MAX_TRAIN_STEPS = 20_000
MIN_TRAIN_STEPS = 50
MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 20.0
# Gradient guidance (sample's gradient_guidance block): classifier scale, DPS scale, how many
# unknown boxes an inpainting mask may list, and the base64 length of the largest image's bitmask
# (64 x 64 bits = 512 bytes = 684 base64 characters).
MAX_CLASSIFIER_SCALE = 100.0
MAX_GUIDE_SCALE = 1000.0
MAX_BOXES = 16
MAX_MASK_B64 = 4 * ((MAX_IMAGE_SIZE * MAX_IMAGE_SIZE // 8 + 2) // 3)
# Twisted SMC's particles per sample (the largest K the issue measures); a reply holds n x K
# particles per frame, so n x K is held to MAX_FRAME_POINTS and n x K x steps to MAX_FRAME_VALUES.
MAX_PARTICLES = 64
HELD_OUT_PREVIEW = 8  # held-out images sent with an image run's details (the images to inpaint)
MAX_CONCURRENT_SAMPLING = 4  # sampling requests computing (and building their replies) at once
MAX_WAITING_SAMPLING = 8  # requests that may wait for a slot; more get 503 at once
SAMPLING_WAIT_S = 0.5  # the longest a request waits for a slot before 503 with Retry-After
MAX_BODY_BYTES = 2_000_000  # a request body (the largest valid one, 4000 labels, is ~25 kB)
RUN_CACHE_SIZE = 8
MAX_ECHO = 300  # characters of a user's string (or of any error message) echoed back
DATA_PREVIEW = 1000  # training points sent as the faint reference behind samples

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# The page's training recipe: the spiral recipe's model (residual MLP, Fourier features),
# trained for fewer steps: 3000 steps give W2 within a few % of the floor on the spiral.
TRAIN_RECIPE = "spiral"
DEFAULT_TRAIN_STEPS = 3000
DEFAULT_RUN = "playground-spiral"  # what the reverse view trains on first use
# The page's image demo: the patterns recipe (16 x 16, 4 classes) on a U-Net of 16 channels
# instead of 32, for a few hundred steps instead of 3000: about a minute on one CPU thread, and
# it draws recognisable (if rough) patterns.  `denoiselab train --config patterns` trains the
# full model.
IMAGE_TRAIN_RECIPE = "patterns"
IMAGE_TRAIN_DATA = ("patterns",)
DEFAULT_IMAGE_TRAIN_STEPS = 500
MAX_IMAGE_TRAIN_STEPS = 3000  # the full recipe's own step count
IMAGE_DEMO_OVERRIDES = ("model.hidden=16",)

FORWARD_SCHEDULES = (*SCHEDULE_KINDS, "flow")
PATTERN_PREFIX = "patterns:"  # image pattern sets are "patterns:checkerboard" etc. ("checkerboard" is the 2D set)


def point_sets() -> list[str]:
    """The built-in 2D point sets (bimodal-1d is 1D and has no place on a 2D canvas)."""
    rng = np.random.default_rng(0)
    return [name for name, fn in GENERATORS.items() if fn(2, rng).shape[1] == 2]


POINT_SETS = tuple(point_sets())


IMAGE_SETS = (*(f"{PATTERN_PREFIX}{k}" for k in image_data.PATTERN_KINDS), "digits")  # the Forward view's images
