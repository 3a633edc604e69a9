"""Training in several processes: data parallelism over torchrun's processes, with PyTorch's
DistributedDataParallel, on gloo (CPU) or NCCL (CUDA, one device per local rank).

torchrun (``python -m torch.distributed.run``) starts the processes and tells each its RANK,
LOCAL_RANK and WORLD_SIZE; ``Processes.start`` joins them into one process group.  What holds:

* The recipe's ``train.batch_size`` is the global batch.  Every process draws the whole batch's
  indices, dropped labels, noise and times from the same generator and trains its rows
  [r B / W, (r + 1) B / W) of it (batch_draws.py), so a run computes the same loss terms at any
  world size; DDP averages the gradients, and since every rank's rows are as many, the average
  of the ranks' mean losses is the global batch's mean loss.  Only the order of the all-reduce's
  summation differs from one process (float rounding).
* The optimiser steps the all-reduced gradients on every rank, so the weights, and the EMA
  updated once per optimiser step, stay identical; ``check_same`` compares them at every
  checkpoint (the idea of EDM's check_ddp_consistency) and stops the run if they ever differ.
* Rank 0 alone writes the run folder, its checkpoints and figures; the other ranks read the data
  rank 0 wrote (nothing is generated or read from the user's files twice).
* A stop (SIGINT, SIGTERM) reaches every rank at the same step boundary: the one all-reduce each
  step makes carries the loss and the signals any rank has received (``reduce_step``).
"""

from __future__ import annotations

import os
import signal
import warnings
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

# How long a process waits for the others at a collective before it gives up: longer than rank 0
# takes to write a new run folder (data, latents) while the others wait at the first barrier.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)

# The stop signals, in the order of reduce_step's slots.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ProcessGroupError(RuntimeError):
    """The processes of a run could not start together, or disagree."""


def environment_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@dataclass
class Processes:
    """This process's place among the run's processes (rank 0 of 1 outside torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_parallel(self) -> bool:
        return self.world_size > 1

    @classmethod
    def start(cls, device: str = "auto") -> "Processes":
        """Join torchrun's process group (gloo on a CPU, NCCL on CUDA); one process outside torchrun."""
        world = environment_world_size()
        if world <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        where = torch.device("cpu")
        if cuda:
            where = torch.device("cuda", local_rank)
            torch.cuda.set_device(where)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
        return cls(rank, world, local_rank, where)

    def close(self) -> None:
        """Leave the process group at the end of a command that every process completed.  All
        wait for each other first (no process tears down its connections while a peer's last
        collective is in flight), and the objects that hold gloo's work (DDP's reducer, in
        reference cycles) are collected while the interpreter is whole: collected at its exit,
        their destructors abort the process ("terminate called without an active exception",
        seen once in CI at the end of a 2-process run; pytorch PR 179291 describes the cause)."""
        import gc

        if self.is_parallel and dist.is_initialized():
            dist.barrier()
            gc.collect()
            dist.destroy_process_group()

    def abandon(self, code: int) -> None:
        """End this process after a peer died, without the peers and without the interpreter's
        teardown: gloo's threads of a broken group are still running, and destroying them at
        exit aborts the process ("terminate called without an active exception" after the one
        error line; seen in CI).  Everything the run keeps is on disk already (atomic writes)."""
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def barrier(self) -> None:
        if self.is_parallel:
            dist.barrier()

    def rows(self, batch: int, parts: int = 1) -> list[tuple[int, int]]:
        """This rank's rows of a global batch of ``batch``, in ``parts`` equal micro-batches (gradient
        accumulation): rank r's rows are the r-th of W equal slices, so ranks in order hold the
        batch in order."""
        per = batch // (self.world_size * parts)
        first = self.rank * parts
        return [((first + k) * per, (first + k + 1) * per) for k in range(parts)]

    def reduce_step(self, loss: float, stop) -> float:
        """The step's loss averaged over the processes; a stop signal that any process received is
        set on every process's ``stop`` (loop.StopSignals), so all stop after the same step."""
        if not self.is_parallel:
            return loss
        signum = None if stop is None else stop.signum
        slots = [loss] + [1.0 if signum == s else 0.0 for s in STOP_SIGNALS]
        values = torch.tensor(slots, dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        received = [s for s, count in zip(STOP_SIGNALS, values[1:].tolist()) if count > 0]
        if received and stop is not None and stop.agreed is None:
            stop.agreed = stop.signum if stop.signum in received else received[0]
        return float(values[0]) / self.world_size

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """Every rank's ``values`` (equal shapes), concatenated in rank order along dim 0."""
        if not self.is_parallel:
            return values
        parts = [torch.empty_like(values, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(parts, values.to(self.device))
        return torch.cat(parts).to(values.device)

    def check_same(self, modules: dict[str, torch.nn.Module]) -> None:
        """Raise ProcessGroupError when any named module's parameters or buffers differ between
        ranks (each tensor's float64 sum and index-weighted sum, compared by min and max)."""
        if not self.is_parallel:
            return
        names, sums = [], []
        for name, module in modules.items():
            for key, tensor in module.state_dict().items():
                flat = tensor.detach().double().flatten()
                names.append(f"{name}.{key}")
                sums += [flat.sum(), (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)).sum()]
        low = torch.stack(sums).to(self.device)
        high = low.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        differ = (low != high).view(-1, 2).any(1).nonzero().flatten().tolist()
        if differ:
            raise ProcessGroupError(f"the processes' weights differ in {', '.join(names[i] for i in differ[:3])}: the run's ranks diverged")


def data_parallel(model: torch.nn.Module, processes: Processes) -> torch.nn.Module:
    """The network every rank trains: ``wrap``ped ``model`` among several processes, ``model``
    itself in one."""
    return wrap(model, processes.device) if processes.is_parallel else model


def wrap(model: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """DistributedDataParallel around ``model`` in the current process group.  The networks'
    buffers are constants (frequency tables), so they are not synchronised at each forward:
    that in-place copy is also what torch.func.jvp (MeanFlow) cannot trace through."""
    ids = [device.index] if device.type == "cuda" else None
    # A convolution's gradient over a 1 x 1 map (a latent U-Net's lowest level) has other strides
    # on its size-1 axes than DDP's bucket: the same memory, and DDP copies it; not the user's concern.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
