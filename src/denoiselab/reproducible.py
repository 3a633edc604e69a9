"""Whether a seeded result comes out as the same bits when it is computed again: the one wording,
for a training run (run.json's ``reproducible``) and for a draw of samples (``sample`` and
``evaluate``, their printout and --json).

On a CPU, torch's kernels sum in a fixed order for a fixed thread count: a seeded run trains to
the same bits when run again on the same machine (tests/test_golden.py; a resumed run equals an
uninterrupted one, tests/test_signals.py), and a draw gives the same samples.  Another CPU (other
vector instructions) or another thread count may change the last bits.  A draw gives every sample
its own seed and computes it on a fixed grid of rows (runs/sampling.py), so neither --batch nor
the number of processes sharing the draw changes a sample (tests/test_sample_batches.py,
tests/test_parallel_processes.py).

On CUDA, PyTorch's notes "Reproducibility" (docs/source/notes/randomness.rst) promise no bits from
run to run unless ``torch.use_deterministic_algorithms(True)`` is set: cuDNN picks its convolution
algorithm by benchmarking only when torch.backends.cudnn.benchmark is on (denoiselab leaves it
off), but the algorithm it picks may itself be nondeterministic unless
torch.backends.cudnn.deterministic is set, and some CUDA kernels accumulate with atomic adds.
TF32, which torch allows by default for cuDNN convolutions, is no such nondeterminism, but it
rounds their inputs to 10 mantissa bits, so a GPU's numbers differ from the CPU's more than
rounding order alone would.  None of this was measured here (no GPU was lent to this work): the
sentence says what torch documents, no more.
"""

from __future__ import annotations

import torch


def reproducibility(device: torch.device, threads: int | None, world_size: int = 1) -> str:
    """Whether running the same seeded training again gives the same bits, on this device."""
    if device.type == "cpu":
        return f"bit-exact when run again on this machine ({_cpu_place(threads, world_size)}); another CPU or thread count changes the last bits"
    return (
        f"not bit-exact on {device.type}: its convolution and reduction kernels may sum in another order each run "
        "(torch.use_deterministic_algorithms would make them so, slower); the same up to rounding"
    )


def draw_reproducibility(device: torch.device, world_size: int = 1) -> str:
    """Whether drawing the same seeded samples again gives the same bits, on this device (torch's
    thread count now is the draw's)."""
    seeds = "each sample has its own seed, so neither --batch nor the number of processes changes it"
    if device.type == "cpu":
        place = f"cpu, {_cpu_place(torch.get_num_threads(), world_size)}"
        return f"bit-exact when run again on this machine ({place}); {seeds}; another CPU or thread count may change the last bits"
    return (
        f"{seeds} up to rounding; on {device.type} the network's numbers are not promised bit-exact from run to run: "
        "cuDNN's convolution algorithms may be nondeterministic (torch.use_deterministic_algorithms would rule that out) "
        "and TF32 convolutions round unlike the CPU"
    )


def _cpu_place(threads: int | None, world_size: int) -> str:
    where = f"{threads} thread{'s' if (threads or 1) > 1 else ''}"
    return where + (f", {world_size} processes" if world_size > 1 else "")
