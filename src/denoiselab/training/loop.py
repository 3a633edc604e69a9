"""The one training loop, for the denoiser, the autoencoder of a latent run and a run's
noise-conditional classifier alike (``fit``): optimiser steps until the last, a progress bar, a
checkpoint every ``checkpoint_every`` steps, and stopping at a step boundary.

A stop (SIGINT, SIGTERM, ``stop_at``, or KeyboardInterrupt raised by ``on_step``) writes a
resumable checkpoint of the step just finished and raises TrainingInterrupted; resuming from it
gives the bytes an uninterrupted run ends with.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from .checkpoint import TrainState


class TrainingInterrupted(Exception):
    """Training stopped at a step boundary after a resumable checkpoint; ``signum`` is the signal
    that stopped it (SIGINT for Ctrl-C, ``stop_at`` and a stop asked by ``on_step``)."""

    def __init__(self, run_dir: Path, step: int, signum: int = signal.SIGINT, resume: str | None = None):
        resume = resume or f"denoiselab train --resume {run_dir}"
        super().__init__(f"interrupted at step {step}; resume with: {resume}")
        self.run_dir, self.step, self.signum = run_dir, step, signum


class StopSignals:
    """While training, SIGINT (Ctrl-C) and SIGTERM only ask the loop to stop: the loop looks
    between optimiser steps, so a checkpoint never holds half a step (Python's own Ctrl-C raises
    KeyboardInterrupt wherever the loop is, e.g. after a step drew its batch but before it
    counted the step, and the resumed run would then skip a draw).  A signal during a checkpoint
    write lets the write finish.  Outside the main thread no handler can be set, and the signals
    keep Python's behaviour.

    ``run_dir`` and ``resume`` (the command that resumes, default ``denoiselab train --resume
    RUN``) go into the TrainingInterrupted raised.

    Among several processes (parallel.py) a process's own signal is not enough: the processes
    must stop after the same step, so each step's all-reduce carries the signals, and ``agreed``
    (set by parallel.Processes.reduce_step, ``shared`` then true) is what the loop obeys."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run_dir: Path, resume: str | None = None):
        self.run_dir, self.resume = run_dir, resume
        self.signum: int | None = None
        self.shared = False
        self.agreed: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def requested(self) -> int | None:
        """The signal the loop stops for: this process's own, or the one all processes agreed on."""
        return self.agreed if self.shared else self.signum

    def interrupted(self, step: int) -> TrainingInterrupted:
        return TrainingInterrupted(self.run_dir, step, self.requested or self.signum or signal.SIGINT, self.resume)

    def raise_if_stopped(self, step: int) -> None:
        """A signal that came after the last step: training is done, but the caller should stop too."""
        if self.requested is not None:
            raise self.interrupted(step)


def fit(
    state: TrainState,
    step: Callable[[TrainState], tuple[float, float]],
    *,
    steps: int,
    checkpoint_every: int,
    save: Callable[[str], None],
    stop: StopSignals,
    progress: bool = True,
    desc: str = "train",
    stop_at: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> float | None:
    """Run ``step(state) -> (loss, learning rate)`` until ``state.step`` reaches ``steps``;
    returns the smoothed loss (None when there was no step to take).

    ``save(status)`` writes a checkpoint: "training" every ``checkpoint_every`` steps before the
    last, "interrupted" on a stop.  The caller writes the last one ("trained") after any final
    measurement.  ``stop_at`` ends the loop after that step as if interrupted (to test resume);
    ``on_step(step, loss)`` is called after every step (the playground's live loss curve), and
    raising KeyboardInterrupt from it stops the run as Ctrl-C does.  ``after_step()`` is the
    compute's watch (compute.Compute.after_step: the busy-cores hint)."""
    state.model.train()
    bar = tqdm(
        total=steps,
        initial=state.step,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        desc=desc,
        # In a log file (CI, nohup) a redrawn bar becomes thousands of lines: update every 10 s.
        mininterval=0.1 if sys.stderr.isatty() else 10.0,
    )
    smooth = None
    try:
        while state.step < steps:
            if stop.requested is not None:
                raise KeyboardInterrupt
            value, lr = step(state)
            smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
            bar.update(1)
            if on_step is not None:
                on_step(state.step, value)
            if after_step is not None:
                after_step()
            if state.step % 50 == 0 or state.step == steps:
                bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.1e}", refresh=False)  # the bar redraws on its own interval
            if state.step % checkpoint_every == 0 and state.step < steps:
                save("training")
            if stop_at is not None and state.step >= stop_at and state.step < steps:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        save("interrupted")
        raise stop.interrupted(state.step) from None
    bar.close()
    return smooth
