"""Sampling a text-to-image run from prompts: each prompt tokenized by the run's tokenizer, its
token ids the condition of every sample in its row, with classifier-free guidance on the text
(the empty caption as the null condition; guidance.classifier_free).

A word the tokenizer never saw is read as the unknown token (a warning names it); the empty
prompt has no token, so it samples the unconditional model, whatever the guidance scale.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .load import Run
from .plan import PlanError, SamplingPlan
from .sampling import sample


@dataclass(frozen=True)
class PromptDraw:
    """One row of samples per prompt."""

    prompts: list[str]
    x: np.ndarray  # (P * n, C, H, W), prompt after prompt
    rows: np.ndarray  # (P * n,) the prompt of each sample
    evaluations: int  # model evaluations, all prompts together
    unknown: dict[str, list[str]]  # prompt -> its words the tokenizer never saw


def check_text_run(run: Run) -> None:
    """A prompt needs a run trained on captions (PlanError naming the run otherwise)."""
    if not run.is_text:
        raise PlanError("prompt", "is not a text-to-image run (trained without captions), so it takes no prompt; use --label or leave --prompt out", of_run=True)


def sample_prompts(run: Run, plan: SamplingPlan, prompts: list[str]) -> PromptDraw:
    """``plan.n`` samples of each prompt with ``plan``'s sampler, seed (the same x_T for every
    prompt, so the rows differ by their text only) and guidance scale."""
    check_text_run(run)
    tokenizer = run.tokenizer()
    xs, calls, unknown = [], 0, {}
    for prompt in prompts:
        missing = tokenizer.unknown_words(prompt)
        if missing:
            unknown[prompt] = missing
        drawn = sample(run, prompt_plan(run, plan, prompt))
        xs.append(drawn.x)
        calls += drawn.evaluations
    rows = np.repeat(np.arange(len(prompts)), plan.n)
    return PromptDraw(list(prompts), np.concatenate(xs), rows, calls, unknown)


def prompt_plan(run: Run, plan: SamplingPlan, prompt: str) -> SamplingPlan:
    """``plan`` with every sample conditioned on ``prompt`` (its token ids, one row per sample)."""
    check_text_run(run)
    return dataclasses.replace(plan, labels=np.repeat(run.tokenizer().encode_batch([prompt]), plan.n, axis=0))


def prompt_tokens(run: Run, prompt: str) -> list[dict]:
    """The prompt as the network reads it, one entry per token position it fills: the word, and
    whether the tokenizer knows it (an unknown word is read as the unknown token); words past
    the tokenizer's length are cut, as ``encode`` cuts them."""
    from ..text import UNK, words

    tokenizer = run.tokenizer()
    ids = tokenizer.encode(prompt)
    return [{"word": word, "known": ids[i] != UNK, "token": tokenizer.vocab[ids[i]]} for i, word in enumerate(words(prompt)[: tokenizer.length])]


def describe_prompts(plan: SamplingPlan, prompts: list[str]) -> str:
    """The draw in words: the plan, the prompts and the guidance scale."""
    said = ", ".join(f'"{p}"' if p.strip() else "the empty prompt (unconditional)" for p in prompts)
    return f"{plan.describe()}; prompt{'s' if len(prompts) > 1 else ''} {said}, classifier-free guidance {plan.guidance:g}"
